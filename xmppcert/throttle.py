# -*- test-case-name: tests.test_throttle -*-
"""
Failed-login throttling: slow down and lock out password guessing without
slowing down the people who know their password.

Three counters of recent failures are kept, each failure weighing less as
it ages (halving every C{lockout_time} seconds):

 - per address and account: one host guessing one account's password.
   Past C{max_failures_per_account_address}, password logins to that
   account from that address are refused for C{lockout_time} without
   checking the password.
 - per account, from any address: a botnet guessing one account. Past
   C{max_failures_per_account}, password logins to that account are
   refused from everywhere for C{lockout_time}.
 - per address, across accounts: password spraying (one password tried on
   many accounts). This one never locks anybody out: an office or a mobile
   carrier puts many users behind one address, and a lockout would shut
   out all of them, including those who type their password right. Instead
   each failure from the address waits longer, up to
   C{login_failure_max_delay}; with at most
   C{max_unauthenticated_per_address} connections open at once, that caps
   the guesses one address can make per second.

After a few free failures, a password login is checked only once a delay
has passed since the latest failure of any of its three counters (the
largest counter decides, doubling up to C{login_failure_max_delay}). The
wait comes before the check, not before the answer, so a client cannot
skip it by aborting or reconnecting, and streams in parallel share it. A
login from an address with no recent failures never waits; one from a
busy address waits at most C{login_failure_max_delay}. Certificate logins
(EXTERNAL) are never refused by a lockout and never wait: a certificate
cannot be guessed. Their failures still count against the
address (and the account, when the checker names it).

Addresses are grouped as L{xmppcert.limits.addressKey} does (an IPv6 /64 is
one address). Memory is bounded: each counter table keeps at most
C{maxEntries} keys and forgets the least recently failed first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from xmppcert import _log
from xmppcert.config import LimitsConfig
from xmppcert.limits import addressKey

log = Logger(observer=_log.observer)

#: Failures (by the largest counter) answered without delay.
FREE_FAILURES = 3

#: The delay of the first failure past the free ones; it doubles with each
#: further failure up to the configured maximum.
BASE_DELAY = 0.5

#: Keys each counter table keeps at most.
MAX_ENTRIES = 100_000

#: A failure counts fully when it happens and decays afterwards, so a
#: count of five failures a few seconds apart is a little under 5: compare
#: with this much slack.
_SLACK = 0.5

K = TypeVar("K", bound=Hashable)


class _Counter:
    """
    A decaying count of failures.

    @ivar value: the count as of C{stamp}.
    @ivar lastFailure: when the latest failure was counted.
    @ivar lockedUntil: until when password logins are refused, or 0.
    @ivar noticed: whether the current slow-down was logged.
    """

    __slots__ = ("lastFailure", "lockedUntil", "noticed", "stamp", "value")

    def __init__(self, now: float) -> None:
        self.value = 0.0
        self.stamp = now
        self.lastFailure = now
        self.lockedUntil = 0.0
        self.noticed = False


class _Counters(Generic[K]):
    """
    Decaying counters by key, the least recently failed forgotten first once
    there are more than C{maxEntries}.
    """

    def __init__(self, halfLife: float, maxEntries: int) -> None:
        self.halfLife = halfLife
        self.maxEntries = maxEntries
        self._entries: OrderedDict[K, _Counter] = OrderedDict()
        #: Keys pushed out of C{_entries} while locked out: kept, within
        #: their own bound, until the lock ends.
        self._locked: dict[K, _Counter] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _decay(self, counter: _Counter, now: float) -> None:
        if now <= counter.stamp:
            return  # a clock that went back: nothing decays
        counter.value *= 0.5 ** ((now - counter.stamp) / self.halfLife)
        counter.stamp = now

    def get(self, key: K, now: float) -> _Counter | None:
        counter = self._entries.get(key)
        if counter is None:
            counter = self._locked.get(key)
            if counter is not None and counter.lockedUntil <= now:
                del self._locked[key]
                counter = None
        if counter is not None:
            self._decay(counter, now)
        return counter

    def add(self, key: K, now: float) -> _Counter:
        """
        Count one failure for C{key}.
        """
        counter = self._entries.get(key)
        if counter is None:
            counter = self._locked.pop(key, None) or _Counter(now)
            self._entries[key] = counter
            self._evict(now)
            self._decay(counter, now)
        else:
            self._entries.move_to_end(key)
            self._decay(counter, now)
        counter.value += 1
        counter.lastFailure = now
        return counter

    def _evict(self, now: float) -> None:
        """
        Forget the least recently failed keys beyond C{maxEntries}, but not
        a lockout in force while there is anything else to forget: a flood
        of made-up names must not buy a locked account fresh guesses.
        """
        while len(self._entries) > self.maxEntries:
            key, counter = self._entries.popitem(last=False)
            if counter.lockedUntil > now:
                if len(self._locked) >= self.maxEntries:
                    self._locked = {k: c for k, c in self._locked.items() if c.lockedUntil > now}
                if len(self._locked) < self.maxEntries:
                    self._locked[key] = counter

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)
        self._locked.pop(key, None)


class LoginThrottle:
    """
    Decides, per login attempt, whether a password login is refused without
    checking, and how long a failure's answer waits. Used by
    L{xmppcert.sasl.login}, the one place every mechanism goes through.

    @ivar clock: the time source, also used for the delays.
    """

    def __init__(
        self,
        clock: IReactorTime,
        maxDelay: float = 3.0,
        maxFailuresPerAccountAddress: int = 5,
        maxFailuresPerAccount: int = 20,
        lockoutTime: float = 300.0,
        maxEntries: int = MAX_ENTRIES,
    ) -> None:
        """
        @param maxDelay: the longest a failure's answer waits; 0 for none.
        @param maxFailuresPerAccountAddress: recent failures of one account
            from one address that lock its password logins from there; 0
            for no such lockout.
        @param maxFailuresPerAccount: recent failures of one account from
            anywhere that lock its password logins; 0 for none.
        @param lockoutTime: seconds a lockout lasts, and the half-life of
            every counter.
        @param maxEntries: keys each counter table keeps at most.
        """
        self.clock = clock
        self.maxDelay = maxDelay
        self.maxFailuresPerAccountAddress = maxFailuresPerAccountAddress
        self.maxFailuresPerAccount = maxFailuresPerAccount
        self.lockoutTime = lockoutTime
        self.pairs: _Counters[tuple[str, str]] = _Counters(lockoutTime, maxEntries)
        self.accounts: _Counters[str] = _Counters(lockoutTime, maxEntries)
        self.addresses: _Counters[str] = _Counters(lockoutTime, maxEntries)

    @classmethod
    def fromConfig(cls, limits: LimitsConfig, clock: IReactorTime) -> LoginThrottle:
        """
        @return: a throttle with the C{[limits]} settings.
        """
        return cls(
            clock,
            maxDelay=limits.login_failure_max_delay,
            maxFailuresPerAccountAddress=limits.max_failures_per_account_address,
            maxFailuresPerAccount=limits.max_failures_per_account,
            lockoutTime=limits.lockout_time,
        )

    def reconfigure(self, limits: LimitsConfig) -> None:
        """
        Take new C{[limits]} settings (a configuration reload), keeping the
        failures counted so far: a reload must not give a guesser fresh
        attempts. Lockouts in force keep their end time.
        """
        self.maxDelay = limits.login_failure_max_delay
        self.maxFailuresPerAccountAddress = limits.max_failures_per_account_address
        self.maxFailuresPerAccount = limits.max_failures_per_account
        self.lockoutTime = limits.lockout_time
        for counters in (self.pairs, self.accounts, self.addresses):
            counters.halfLife = limits.lockout_time

    def refusal(self, host: str, account: str) -> str | None:
        """
        Whether a password login to C{account} from C{host} is refused now,
        without checking it.

        @return: the reason, for the log, or C{None} when it may go ahead.
        """
        now = self.clock.seconds()
        pair = self.pairs.get((addressKey(host), account), now)
        if pair is not None and pair.lockedUntil > now:
            return "password logins to this account from this address are locked out"
        counter = self.accounts.get(account, now)
        if counter is not None and counter.lockedUntil > now:
            return "password logins to this account are locked out"
        return None

    def wait(self, host: str, account: str | None) -> float:
        """
        How long a password login from C{host} to C{account} must wait
        before it is checked: each counter lets the next attempt through
        L{delayFor} its count after its latest failure. Waiting before the
        check, rather than before answering a failure, is what makes it
        hold: aborting or reconnecting gains nothing, and every stream from
        the address shares the same clock.

        @return: seconds, at most C{maxDelay}.
        """
        now = self.clock.seconds()
        address = addressKey(host)
        counters = [self.addresses.get(address, now)]
        if account is not None:
            counters += [self.pairs.get((address, account), now), self.accounts.get(account, now)]
        waits = [c.lastFailure + self.delayFor(c.value) - now for c in counters if c is not None]
        return min(self.maxDelay, max([0.0, *waits]))

    def failed(self, host: str, account: str | None) -> float:
        """
        Count a failed login from C{host}, to C{account} when it is known.

        @return: the wait the next password login to that account from
            that address gets (see L{wait}).
        """
        now = self.clock.seconds()
        address = addressKey(host)
        byAddress = self.addresses.add(address, now)
        worst = byAddress.value
        if account is not None:
            pair = self.pairs.add((address, account), now)
            if self._lock(pair, self.maxFailuresPerAccountAddress, now):
                log.info(
                    "Locking out password logins to {account} from {address} for {seconds:g} s"
                    " after {count} recent failures",
                    account=account,
                    address=address,
                    seconds=self.lockoutTime,
                    count=round(pair.value),
                )
            byAccount = self.accounts.add(account, now)
            if self._lock(byAccount, self.maxFailuresPerAccount, now):
                log.info(
                    "Locking out password logins to {account} from every address for {seconds:g} s"
                    " after {count} recent failures (the last from {address})",
                    account=account,
                    address=address,
                    seconds=self.lockoutTime,
                    count=round(byAccount.value),
                )
            worst = max(worst, pair.value, byAccount.value)
        slowest = self.delayFor(byAddress.value) >= self.maxDelay > 0
        if slowest and not byAddress.noticed:
            log.info(
                "Password logins from {address} now wait {delay:g} s each: {count} recent failures"
                " (password spraying or many users with wrong passwords behind one address)",
                address=address,
                delay=self.maxDelay,
                count=round(byAddress.value),
            )
        byAddress.noticed = slowest
        return self.delayFor(worst)

    def succeeded(self, host: str, account: str) -> None:
        """
        A login to C{account} from C{host} succeeded: that pair's failures
        are forgotten (but not a lockout in force, which only a certificate
        login can get past).
        """
        key = (addressKey(host), account)
        pair = self.pairs.get(key, self.clock.seconds())
        if pair is not None and pair.lockedUntil <= self.clock.seconds():
            self.pairs.discard(key)

    def delayFor(self, failures: float) -> float:
        """
        @return: the wait for a failure answered at a count of C{failures}:
            none for the first L{FREE_FAILURES}, then L{BASE_DELAY} doubling
            with each further one, at most C{maxDelay}.
        """
        excess = failures - FREE_FAILURES
        if excess <= 0 or self.maxDelay <= 0:
            return 0.0
        return min(self.maxDelay, BASE_DELAY * 2 ** min(excess - 1, 64))

    def _lock(self, counter: _Counter, limit: int, now: float) -> bool:
        """
        Start a lockout when C{counter} reached C{limit} and none is in force.

        @return: whether one started.
        """
        if not limit or counter.value < limit - _SLACK or counter.lockedUntil > now:
            return False
        counter.lockedUntil = now + self.lockoutTime
        return True


__all__ = ["BASE_DELAY", "FREE_FAILURES", "MAX_ENTRIES", "LoginThrottle"]
