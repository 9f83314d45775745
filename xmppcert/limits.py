# -*- test-case-name: tests.test_limits -*-
"""
Per-address limits on connections that have not authenticated yet.

A client that never finishes logging in costs a socket, a parser and
(for TLS) a handshake. L{AddressLimiter} caps how many such connections one
address may hold at once, so one host cannot take every socket of the
server. Addresses are grouped the way an attacker gets them: an IPv6 host
usually owns a whole /64, so the /64 counts as one address; an IPv4 address
seen through an IPv6 socket (C{::ffff:192.0.2.1}) is that IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.logger import Logger

from xmppcert import _log

log = Logger(observer=_log.observer)

#: Bits of an IPv6 address that name one host (RFC 4291: a /64 per link;
#: hosts pick any address inside it).
IPV6_HOST_PREFIX = 64

#: Seconds between two log lines about refused connections of one address.
REFUSAL_LOG_INTERVAL = 60.0

#: Addresses whose refusals are remembered for that summary; the oldest
#: are forgotten first.
MAX_REFUSAL_LOG_ENTRIES = 10_000


def addressKey(host: str) -> str:
    """
    The key an address is counted under.

    @param host: an IPv4 or IPv6 address as a transport reports it (an
        IPv6 zone such as C{%eth0} is allowed); anything else (a UNIX
        socket's name) is returned as it is.
    @return: the IPv4 address; for IPv6, its /64 as C{"2001:db8::/64"}; an
        IPv4-mapped IPv6 address as the IPv4 address.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        network = ipaddress.IPv6Network((address, IPV6_HOST_PREFIX), strict=False)
        return str(network)
    return str(address)


def peerHost(address: IAddress) -> str | None:
    """
    @return: the host of an IP peer address, or C{None} for any other kind
        of peer (a UNIX socket), which has no address to count.
    """
    if isinstance(address, (IPv4Address, IPv6Address)):
        return address.host
    return None


class AddressSlot:
    """
    One unauthenticated connection counted against its address. Release it
    when the connection authenticates or closes; releasing twice is
    harmless, so both events may do it.
    """

    def __init__(self, limiter: AddressLimiter, key: str) -> None:
        self.key = key
        self._limiter: AddressLimiter | None = limiter

    def release(self) -> None:
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release(self.key)


class AddressLimiter:
    """
    Counts unauthenticated connections per address (see L{addressKey}) and
    refuses those over C{maxPerAddress}.

    Memory holds one counter per address with open connections, plus a
    bounded record of recent refusals for the log.

    @ivar counts: open unauthenticated connections per address key.
    """

    def __init__(self, maxPerAddress: int, clock: IReactorTime) -> None:
        self.maxPerAddress = maxPerAddress
        self.clock = clock
        self.counts: dict[str, int] = {}
        #: Per address: when its last refusal was logged, and how many were
        #: refused since without a line.
        self._refusals: OrderedDict[str, list[float]] = OrderedDict()

    def acquire(self, host: str) -> AddressSlot | None:
        """
        Count one more unauthenticated connection from C{host}.

        @return: the slot to release later, or C{None} when the address
            already has C{maxPerAddress} of them (the caller closes the
            connection; the refusal is logged here, at most once every
            L{REFUSAL_LOG_INTERVAL} seconds per address).
        """
        key = addressKey(host)
        count = self.counts.get(key, 0)
        if count >= self.maxPerAddress:
            self._refused(key)
            return None
        self.counts[key] = count + 1
        return AddressSlot(self, key)

    def _release(self, key: str) -> None:
        count = self.counts.get(key, 0) - 1
        if count > 0:
            self.counts[key] = count
        else:
            self.counts.pop(key, None)

    def _refused(self, key: str) -> None:
        # A flood of refusals is one line a minute per address, counting
        # what was not logged, rather than one line per connection.
        now = self.clock.seconds()
        entry = self._refusals.get(key)
        if entry is not None and now - entry[0] < REFUSAL_LOG_INTERVAL:
            entry[1] += 1
            return
        suppressed = int(entry[1]) if entry is not None else 0
        self._refusals[key] = [now, 0]
        self._refusals.move_to_end(key)
        while len(self._refusals) > MAX_REFUSAL_LOG_ENTRIES:
            self._refusals.popitem(last=False)
        log.info(
            "Refusing connections from {address}: {limit} unauthenticated connections from it are open"
            " (limits.max_unauthenticated_per_address); {suppressed} refused since the last such line",
            address=key,
            limit=self.maxPerAddress,
            suppressed=suppressed,
        )


__all__ = ["AddressLimiter", "AddressSlot", "addressKey", "peerHost"]
