"""
Tests for L{xmppcert.limits}: address keys and the per-address limit on
unauthenticated connections.
"""

from __future__ import annotations

import pytest
from twisted.internet import task
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.logger import LogLevel, capturedLogs

from xmppcert.limits import REFUSAL_LOG_INTERVAL, AddressLimiter, addressKey, peerHost


@pytest.mark.parametrize(
    "host, key",
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        ("/run/xmppcert.sock", "/run/xmppcert.sock"),
    ],
)
def test_addressKey(host: str, key: str) -> None:
    """
    limits.max_unauthenticated_per_address: an IPv4 address counts as
    itself, an IPv6 address as its /64, an IPv4-mapped IPv6 address as the
    IPv4 address; anything else is left as it is.
    """
    assert addressKey(host) == key


def test_peerHost() -> None:
    """
    limits.max_unauthenticated_per_address: IP peers have a host to count;
    a UNIX socket peer has none.
    """
    assert peerHost(IPv4Address("TCP", "192.0.2.7", 1)) == "192.0.2.7"
    assert peerHost(IPv6Address("TCP", "2001:db8::1", 1)) == "2001:db8::1"
    assert peerHost(UNIXAddress(b"/tmp/socket")) is None


def test_limitPerAddress() -> None:
    """
    limits.max_unauthenticated_per_address: the connection over the limit
    is refused; other addresses are not affected.
    """
    limiter = AddressLimiter(3, task.Clock())
    slots = [limiter.acquire("192.0.2.7") for _ in range(3)]
    assert all(slot is not None for slot in slots)
    assert limiter.acquire("192.0.2.7") is None
    assert limiter.acquire("::ffff:192.0.2.7") is None
    assert limiter.acquire("192.0.2.8") is not None


def test_ipv6SlashSixtyFour() -> None:
    """
    limits.max_unauthenticated_per_address: addresses of one IPv6 /64 share
    one count; the next /64 has its own.
    """
    limiter = AddressLimiter(2, task.Clock())
    assert limiter.acquire("2001:db8:0:1::1") is not None
    assert limiter.acquire("2001:db8:0:1::2") is not None
    assert limiter.acquire("2001:db8:0:1:ffff::3") is None
    assert limiter.acquire("2001:db8:0:2::1") is not None


def test_releaseIdempotent() -> None:
    """
    limits.max_unauthenticated_per_address: releasing a slot frees one
    place, releasing it again (authenticated, then closed) frees nothing
    more; an address without connections is forgotten.
    """
    limiter = AddressLimiter(2, task.Clock())
    first = limiter.acquire("192.0.2.7")
    second = limiter.acquire("192.0.2.7")
    assert first is not None and second is not None
    first.release()
    first.release()
    assert limiter.counts == {"192.0.2.7": 1}
    assert limiter.acquire("192.0.2.7") is not None
    assert limiter.acquire("192.0.2.7") is None
    second.release()
    second.release()
    assert limiter.counts == {"192.0.2.7": 1}


def test_refusalsLoggedOncePerInterval() -> None:
    """
    limits.max_unauthenticated_per_address: a flood of refused connections
    is one info line per address per interval, which counts the refusals
    since the previous line; never a warning or an error.
    """
    clock = task.Clock()
    limiter = AddressLimiter(1, clock)
    limiter.acquire("192.0.2.7")
    with capturedLogs() as events:
        for _ in range(100):
            limiter.acquire("192.0.2.7")
        clock.advance(REFUSAL_LOG_INTERVAL)
        limiter.acquire("192.0.2.7")
    lines = [e for e in events if "Refusing connections" in e.get("log_format", "")]
    assert len(lines) == 2
    assert {e["log_level"] for e in lines} == {LogLevel.info}
    assert [e["address"] for e in lines] == ["192.0.2.7", "192.0.2.7"]
    assert [e["suppressed"] for e in lines] == [0, 99]
