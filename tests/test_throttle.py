"""
Tests for L{xmppcert.throttle} and its use in L{xmppcert.sasl.login}, the
one place every SASL mechanism goes through: delays of failed logins,
lockouts, password spraying, memory bounds; all on a L{task.Clock}.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.cred import error as credError
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.logger import LogLevel, capturedLogs
from zope.interface import implementer

from tests.helpers import ALICE, BOB, DOMAIN, PASSWORD, addAccount, failureOf, makePortal, resultOf
from xmppcert.cred import (
    Account,
    AccountRealm,
    ClientCertificate,
    IClientCertificate,
    IScramProof,
    SASLAuthFailure,
    ScramChecker,
    StoredPasswordChecker,
)
from xmppcert.sasl import MechanismContext, SASLFailure, login
from xmppcert.testing import InMemoryAccountStore
from xmppcert.throttle import BASE_DELAY, FREE_FAILURES, LoginThrottle

HOST = "192.0.2.7"
OTHER_HOST = "198.51.100.1"


def refusalOf(d: Any) -> SASLFailure:
    """
    The SASLFailure a login already failed with.
    """
    value = failureOf(d, SASLFailure).value
    assert isinstance(value, SASLFailure)
    return value


def failures(counters: Any, key: Any, now: float = 0) -> float:
    """
    The decayed count of a counter table's key, 0 when it has none.
    """
    counter = counters.get(key, now)
    return 0.0 if counter is None else float(counter.value)


def throttle(clock: task.Clock | None = None, **kwargs: Any) -> LoginThrottle:
    return LoginThrottle(clock or task.Clock(), **kwargs)


# --- the counters -----------------------------------------------------------


def test_delayGrowsAndIsCapped() -> None:
    """
    limits.login_failure_max_delay: the first few failures are answered at
    once, then the delay starts at BASE_DELAY and doubles with each failure
    up to the configured maximum.
    """
    t = throttle(maxDelay=3.0, maxFailuresPerAccountAddress=0, maxFailuresPerAccount=0)
    delays = [t.failed(HOST, ALICE) for _ in range(FREE_FAILURES + 5)]
    assert delays == [0.0] * FREE_FAILURES + [BASE_DELAY, 2 * BASE_DELAY, 4 * BASE_DELAY, 3.0, 3.0]


def test_noDelayWhenMaxDelayZero() -> None:
    """
    limits.login_failure_max_delay = 0: failures are never delayed.
    """
    t = throttle(maxDelay=0.0, maxFailuresPerAccountAddress=0, maxFailuresPerAccount=0)
    assert {t.failed(HOST, ALICE) for _ in range(20)} == {0.0}


def test_failuresDecay() -> None:
    """
    limits.lockout_time: failure counts halve every lockout_time seconds, so
    an address that stopped failing is answered at once again.
    """
    clock = task.Clock()
    t = throttle(clock, lockoutTime=60.0, maxFailuresPerAccountAddress=0, maxFailuresPerAccount=0)
    for _ in range(10):
        t.failed(HOST, None)
    assert t.delayFor(10) > 0
    clock.advance(60 * 4)
    # 10 failures, four half-lives ago, weigh 0.625: the next one is free.
    assert t.failed(HOST, None) == 0.0


def test_pairLockout() -> None:
    """
    limits.max_failures_per_account_address: after that many failures of
    one account from one address, its password logins from there are
    refused for lockout_time; from another address, and for another
    account, they are not.
    """
    clock = task.Clock()
    t = throttle(clock, maxFailuresPerAccountAddress=5, maxFailuresPerAccount=0, lockoutTime=300)
    for _ in range(4):
        t.failed(HOST, ALICE)
        clock.advance(1)
    assert t.refusal(HOST, ALICE) is None
    t.failed(HOST, ALICE)
    assert t.refusal(HOST, ALICE) is not None
    assert t.refusal(OTHER_HOST, ALICE) is None
    assert t.refusal(HOST, BOB) is None
    clock.advance(299)
    assert t.refusal(HOST, ALICE) is not None
    clock.advance(1)
    assert t.refusal(HOST, ALICE) is None


def test_accountLockout() -> None:
    """
    limits.max_failures_per_account: after that many failures of one
    account from any addresses, its password logins are refused from
    everywhere for lockout_time.
    """
    clock = task.Clock()
    t = throttle(clock, maxFailuresPerAccountAddress=5, maxFailuresPerAccount=20, lockoutTime=300)
    for i in range(19):
        t.failed(f"203.0.113.{i}", ALICE)
    assert t.refusal(HOST, ALICE) is None
    t.failed("203.0.113.200", ALICE)
    assert t.refusal(HOST, ALICE) is not None
    assert t.refusal(HOST, BOB) is None
    clock.advance(300)
    assert t.refusal(HOST, ALICE) is None


def test_ipv6PrefixIsOneAddress() -> None:
    """
    limits.max_failures_per_account_address: the addresses of one IPv6 /64
    are one address, so rotating through them does not escape the lockout.
    """
    t = throttle(maxFailuresPerAccountAddress=5, maxFailuresPerAccount=0)
    for i in range(5):
        t.failed(f"2001:db8:0:1::{i + 1}", ALICE)
    assert t.refusal("2001:db8:0:1::ffff", ALICE) is not None
    assert t.refusal("2001:db8:0:2::1", ALICE) is None


def test_sprayingSlowsButNeverLocks() -> None:
    """
    Password spraying (one address, many accounts): failures from the
    address wait the maximum delay, but no account is locked out, so other
    users behind the same address still log in.
    """
    t = throttle(maxDelay=3.0)
    delays = [t.failed(HOST, f"user{i}@{DOMAIN}") for i in range(200)]
    assert delays[-1] == 3.0
    assert t.refusal(HOST, BOB) is None
    assert all(t.refusal(HOST, f"user{i}@{DOMAIN}") is None for i in range(200))


def test_successForgetsPair() -> None:
    """
    limits.max_failures_per_account_address: a successful login forgets the
    failures of that account from that address, so typos spread over days
    never add up to a lockout.
    """
    t = throttle(maxFailuresPerAccountAddress=5, maxFailuresPerAccount=0)
    for _ in range(3):
        for _ in range(4):
            t.failed(HOST, ALICE)
        t.succeeded(HOST, ALICE)
    assert t.refusal(HOST, ALICE) is None


def test_memoryBounded() -> None:
    """
    Throttle memory bound: an attacker rotating addresses and accounts makes
    each counter table forget its least recently failed keys, never grow
    past maxEntries.
    """
    t = throttle(maxEntries=1000)
    for i in range(5000):
        t.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", f"user{i}@{DOMAIN}")
    assert len(t.pairs) == 1000
    assert len(t.accounts) == 1000
    assert len(t.addresses) == 1000
    # The newest are kept.
    assert t.accounts.get(f"user4999@{DOMAIN}", 0) is not None
    assert t.accounts.get(f"user0@{DOMAIN}", 0) is None


def test_floodDoesNotEvictALockout() -> None:
    """
    Throttle memory bound: a flood of made-up account names, past
    maxEntries, does not make the tables forget an account locked out now
    (it would get fresh guesses); the table still stays within its bound.
    """
    t = throttle(maxEntries=100, maxFailuresPerAccountAddress=5, maxFailuresPerAccount=5)
    for _ in range(5):
        t.failed(HOST, ALICE)
    assert t.refusal(HOST, ALICE) is not None
    for i in range(1000):
        t.failed(f"10.0.{i // 256}.{i % 256}", f"user{i}@{DOMAIN}")
    assert t.refusal(HOST, ALICE) is not None
    assert t.refusal("192.0.2.99", ALICE) is not None
    assert len(t.accounts) == 100 and len(t.pairs) == 100


def test_lockoutLoggedOnce() -> None:
    """
    Failed-login lockouts are logged at info, with address and account,
    once when they start, not for each further attempt; the spraying
    slow-down once when it reaches the maximum delay.
    """
    t = throttle(maxDelay=3.0, maxFailuresPerAccountAddress=5, maxFailuresPerAccount=20)
    with capturedLogs() as events:
        for i in range(60):
            t.failed(HOST, ALICE)
            t.refusal(HOST, ALICE)
            t.failed(HOST, f"user{i}@{DOMAIN}")
    lines = [e for e in events if e.get("log_namespace") == "xmppcert.throttle"]
    assert {e["log_level"] for e in lines} == {LogLevel.info}
    pair = [e for e in lines if "from {address} for" in e["log_format"]]
    account = [e for e in lines if "from every address" in e["log_format"]]
    spraying = [e for e in lines if "now wait" in e["log_format"]]
    assert [(e["account"], e["address"]) for e in pair] == [(ALICE, HOST)]
    assert [e["account"] for e in account] == [ALICE]
    assert [e["address"] for e in spraying] == [HOST]


def test_fromConfig() -> None:
    """
    The [limits] keys of the throttle reach it.
    """
    from tests.helpers import makeConfig

    limits = makeConfig(
        limits={
            "login_failure_max_delay": 1.5,
            "max_failures_per_account_address": 7,
            "max_failures_per_account": 70,
            "lockout_time": 60,
        }
    ).limits
    t = LoginThrottle.fromConfig(limits, task.Clock())
    assert (t.maxDelay, t.maxFailuresPerAccountAddress, t.maxFailuresPerAccount, t.lockoutTime) == (
        1.5, 7, 70, 60.0,
    )


# --- through sasl.login -----------------------------------------------------


class CountingChecker(StoredPasswordChecker):
    """
    The password checker, counting how often it is asked.
    """

    calls = 0

    def requestAvatarId(self, credentials: Any) -> Any:
        self.calls += 1
        return super().requestAvatarId(credentials)


@implementer(ICredentialsChecker)
class CertificateChecker:
    """
    A certificate checker that accepts or refuses as told, the refusal
    """

    credentialInterfaces = (IClientCertificate,)

    def __init__(self) -> None:
        self.accept: str | None = None

    def requestAvatarId(self, credentials: Any) -> defer.Deferred[Any]:
        if self.accept is not None:
            return defer.succeed(self.accept.encode())
        return defer.fail(SASLAuthFailure("not-authorized", detail="unknown certificate"))


class Setup:
    def __init__(self, **kwargs: Any) -> None:
        from tests.helpers import syncDeferToThread

        self.clock = task.Clock()
        self.store = InMemoryAccountStore()
        for account in (ALICE, BOB):
            addAccount(self.store, account)
        self.passwords = CountingChecker(self.store, deferToThread=syncDeferToThread)
        self.certificates = CertificateChecker()
        self.portal = Portal(AccountRealm(), [ScramChecker(), self.passwords, self.certificates])
        self.throttle = LoginThrottle(self.clock, **kwargs)

    def context(self, host: str = HOST) -> MechanismContext:
        return MechanismContext(
            portal=self.portal, store=self.store, domain=DOMAIN, secure=True, peerHost=host, throttle=self.throttle
        )

    def password(self, account: str, password: str, host: str = HOST) -> defer.Deferred[Account]:
        creds = UsernamePassword(account.encode(), password.encode())
        return defer.ensureDeferred(login(self.context(host), creds))

    def certificate(self, host: str = HOST) -> defer.Deferred[Account]:
        creds = ClientCertificate((), None, DOMAIN)
        return defer.ensureDeferred(login(self.context(host), creds))

    def fail(self, account: str, host: str = HOST) -> SASLFailure:
        """
        A failed password login, waiting out its delay.
        """
        d = self.password(account, "wrong", host)
        self.clock.advance(self.throttle.maxDelay)
        return refusalOf(d)


def test_attemptWaitsBeforeItIsChecked() -> None:
    """
    limits.login_failure_max_delay: past the free failures, the next
    password login is checked only once the delay since the latest failure
    has passed (on the injected clock); failures themselves are answered at
    once, so nothing is gained by aborting or reconnecting, and attempts in
    parallel wait alike.
    """
    s = Setup(maxDelay=3.0, maxFailuresPerAccountAddress=0, maxFailuresPerAccount=0)
    for _ in range(FREE_FAILURES + 1):
        assert refusalOf(s.password(ALICE, "wrong")).condition == "not-authorized"
    first, second = s.password(ALICE, "wrong"), s.password(ALICE, PASSWORD)
    assert not first.called and not second.called
    s.clock.advance(BASE_DELAY - 0.01)
    assert not first.called and not second.called
    s.clock.advance(0.01)
    assert refusalOf(first).condition == "not-authorized"
    assert resultOf(second).jid.userhost() == ALICE


def test_successWaitsAtMostTheMaximum() -> None:
    """
    Failed-login throttling: from an address no failure was seen from, a
    correct password is checked at once; from one whose failures are at the
    maximum delay (an office or a carrier behind which someone sprays
    passwords), another account's correct password waits at most
    login_failure_max_delay, and is never refused.
    """
    s = Setup(maxDelay=3.0)
    assert resultOf(s.password(BOB, PASSWORD, host="198.51.100.7")).jid.userhost() == BOB
    for i in range(30):
        s.fail(f"user{i}@{DOMAIN}")
    assert s.throttle.delayFor(failures(s.throttle.addresses, HOST, s.clock.seconds())) == 3.0
    d = s.password(BOB, PASSWORD)
    s.clock.advance(3.0)
    assert resultOf(d).jid.userhost() == BOB


def test_lockedPairRefusedWithoutChecking() -> None:
    """
    limits.max_failures_per_account_address: once locked, a password login
    of that account from that address gets temporary-auth-failure at once,
    even with the right password, and the password is not checked; from
    another address the right password works.
    """
    s = Setup(maxFailuresPerAccountAddress=5, maxFailuresPerAccount=0)
    for _ in range(5):
        assert s.fail(ALICE).condition == "not-authorized"
    calls = s.passwords.calls
    refusal = refusalOf(s.password(ALICE, PASSWORD))
    assert refusal.condition == "temporary-auth-failure"
    assert refusal.quiet
    assert s.passwords.calls == calls
    assert resultOf(s.password(ALICE, PASSWORD, host=OTHER_HOST)).jid.userhost() == ALICE


def test_lockedAccountStillLogsInWithCertificate() -> None:
    """
    limits.max_failures_per_account: an account locked for password logins
    from everywhere still logs in with a certificate (EXTERNAL): a
    certificate cannot be guessed.
    """
    s = Setup(maxFailuresPerAccountAddress=0, maxFailuresPerAccount=3)
    for i in range(3):
        s.fail(ALICE, host=f"203.0.113.{i}")
    refusal = refusalOf(s.password(ALICE, PASSWORD, host=OTHER_HOST))
    assert refusal.condition == "temporary-auth-failure"
    s.certificates.accept = ALICE
    assert resultOf(s.certificate(host=OTHER_HOST)).jid.userhost() == ALICE


@implementer(IScramProof)
class WrongProof:
    """
    A SCRAM proof that never checks out, counting how often it is checked.
    """

    def __init__(self, username: str) -> None:
        self.username = username
        self.checks = 0

    def checkProof(self) -> bool:
        self.checks += 1
        return False


def test_scramLockedOut() -> None:
    """
    limits.max_failures_per_account_address: SCRAM proofs count against
    the account they name, and once it is locked the proof is not checked.
    """
    s = Setup(maxFailuresPerAccountAddress=2, maxFailuresPerAccount=0)
    proof = WrongProof(ALICE)
    for _ in range(2):
        failureOf(defer.ensureDeferred(login(s.context(), proof)), SASLFailure)
    assert proof.checks == 2
    refusal = refusalOf(defer.ensureDeferred(login(s.context(), proof)))
    assert refusal.condition == "temporary-auth-failure"
    assert proof.checks == 2


def test_certificateFailuresCountAgainstAddress() -> None:
    """
    Failed-login throttling of EXTERNAL: the account is known only after the
    checker, so a refused certificate counts against the address only.
    """
    s = Setup()
    failureOf(s.certificate(), SASLFailure)
    assert failures(s.throttle.addresses, HOST, 0) == 1
    assert len(s.throttle.accounts) == 0 and len(s.throttle.pairs) == 0


def test_unhandledCredentialsNotCounted() -> None:
    """
    Failed-login throttling: credentials no checker handles are the
    server's setup, not a guess, and are not counted.
    """
    s = Setup()
    s.portal = Portal(AccountRealm(), [])
    failureOf(s.password(ALICE, PASSWORD), SASLFailure)
    assert len(s.throttle.addresses) == 0


def test_noThrottle() -> None:
    """
    A context without a throttle (a mechanism's own unit tests, an embedder
    that turns it off) neither delays nor locks.
    """
    store = InMemoryAccountStore()
    addAccount(store, ALICE)
    context = MechanismContext(portal=makePortal(store), store=store, domain=DOMAIN, secure=True)
    for _ in range(20):
        d = defer.ensureDeferred(login(context, UsernamePassword(ALICE.encode(), b"wrong")))
        failureOf(d, SASLFailure)
    assert resultOf(defer.ensureDeferred(login(context, UsernamePassword(ALICE.encode(), PASSWORD.encode()))))


@pytest.mark.parametrize("error", [credError.UnauthorizedLogin(), SASLAuthFailure("not-authorized")])
def test_plainUnauthorizedCounted(error: Exception) -> None:
    """
    Failed-login throttling: a checker's plain UnauthorizedLogin counts like
    the SASL-aware failure.
    """

    @implementer(ICredentialsChecker)
    class Refuser:
        credentialInterfaces = (IClientCertificate,)

        def requestAvatarId(self, credentials: Any) -> defer.Deferred[Any]:
            return defer.fail(error)

    s = Setup()
    s.portal = Portal(AccountRealm(), [Refuser()])
    failureOf(s.certificate(), SASLFailure)
    assert failures(s.throttle.addresses, HOST, 0) == 1


def test_certificateFailureNotDelayed() -> None:
    """
    Failed-login throttling of EXTERNAL: a refused certificate is answered
    at once even from an address whose password failures wait the maximum
    delay (nothing to guess; clients try their certificate first).
    """
    s = Setup(maxDelay=3.0)
    for i in range(10):
        s.fail(f"user{i}@{DOMAIN}")
    assert s.throttle.delayFor(failures(s.throttle.addresses, HOST, s.clock.seconds())) == 3.0
    failureOf(s.certificate(), SASLFailure)
