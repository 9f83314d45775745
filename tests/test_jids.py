"""
Tests for L{xmppcert.jids}: the one JID parser for input from the network,
files and certificates (RFC 7622 on top of Twisted's C{jid.JID}).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.xmpp_stringprep import resourceprep

from xmppcert import jids
from xmppcert.jids import MAX_PART_OCTETS, makeJID, parseJID

#: A localpart or resourcepart of exactly the longest allowed size (in
#: octets of UTF-8, RFC 7622 §3).
LONGEST = "x" * MAX_PART_OCTETS

#: 1023 octets of domainpart in labels of at most 63 octets.
LONGEST_DOMAIN = ".".join(["d" * 63] * 16)


# --- parseJID: valid input ---------------------------------------------------


@pytest.mark.parametrize(
    "text, parts",
    [
        ("alice@example.com", ("alice", "example.com", None)),
        ("alice@example.com/phone", ("alice", "example.com", "phone")),
        ("example.com", (None, "example.com", None)),
        ("example.com/service", (None, "example.com", "service")),
        ("alice@example.com/a/b@c", ("alice", "example.com", "a/b@c")),
        ("example.com/a@b", (None, "example.com", "a@b")),
        ("alice@example.com/ phone ", ("alice", "example.com", " phone ")),
        ("a.b_c-d@example.com", ("a.b_c-d", "example.com", None)),
        ("alice@192.0.2.1", ("alice", "192.0.2.1", None)),
        ("jürgen@münchen.example/Bü", ("jürgen", "münchen.example", "Bü")),
    ],
)
def test_parseValid(text: str, parts: tuple[str | None, str, str | None]) -> None:
    """
    RFC 7622 §3.1: localpart@domainpart/resourcepart with optional
    localpart and resourcepart; the first '/' starts the resourcepart,
    which may hold '/' and '@'; internationalised parts are allowed.
    """
    parsed = parseJID(text)
    assert isinstance(parsed, jid.JID)
    assert (parsed.user, parsed.host, parsed.resource) == parts


@pytest.mark.parametrize(
    "text, prepared",
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("Alice@Example.COM/Phone", "alice@example.com/Phone"),
        ("JÜRGEN@MÜNCHEN.example", "jürgen@münchen.example"),
        ("\u2163@example.com/\u2163", "iv@example.com/IV"),
        ("al\u00adice@example.com/ph\u00adone", "alice@example.com/phone"),
    ],
    ids=["ascii-case", "resource-case-kept", "unicode-case", "compatibility", "mapped-to-nothing"],
)
def test_parsePrepared(text: str, prepared: str) -> None:
    """
    RFC 7622 §3.2-3.4 (with the RFC 6122 profiles Twisted applies):
    localpart and domainpart are case-folded, the resourcepart keeps its
    case; compatibility characters are normalised and characters mapped to
    nothing are dropped.
    """
    assert parseJID(text).full() == prepared


def test_parsePreparedEqual() -> None:
    """
    RFC 7622 §3: two spellings of one JID parse to equal JIDs.
    """
    assert parseJID("ALICE@EXAMPLE.COM/res") == parseJID("alice@example.com/res")
    assert parseJID("ALICE@EXAMPLE.COM/res") != parseJID("alice@example.com/Res")


def test_parseLongestParts() -> None:
    """
    RFC 7622 §3.2.1, 3.3.1, 3.4.1: each part may be 1023 octets.
    """
    assert len(LONGEST_DOMAIN.encode("utf-8")) == MAX_PART_OCTETS == 1023
    parsed = parseJID(f"{LONGEST}@{LONGEST_DOMAIN}/{LONGEST}")
    assert (parsed.user, parsed.host, parsed.resource) == (LONGEST, LONGEST_DOMAIN, LONGEST)


def test_parseLongestMultibyte() -> None:
    """
    RFC 7622 §3: the limit is in octets of UTF-8, not characters: 341
    three-octet characters (1023 octets) are fine.
    """
    euro = "\u20ac" * 341
    assert parseJID(f"{euro}@example.com/{euro}").resource == euro


# --- parseJID: malformed input ---------------------------------------------------


def malformed(text: str) -> jid.InvalidFormat:
    with pytest.raises(jid.InvalidFormat) as info:
        parseJID(text)
    # The message says why, never an empty string.
    assert str(info.value)
    return info.value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice@",
        "alice@/phone",
        "/phone",
        "@",
    ],
    ids=["empty", "no-domain", "no-domain-with-resource", "only-resource", "only-at"],
)
def test_parseNoDomain(text: str) -> None:
    """
    RFC 7622 §3.2: the domainpart is required.
    """
    malformed(text)


@pytest.mark.parametrize(
    "text",
    ["alice@example.com/", "example.com/", "alice@example.com/\u00ad", "alice@example.com/\u200b"],
    ids=["trailing-slash", "domain-trailing-slash", "maps-to-nothing", "zero-width-space"],
)
def test_parseEmptyResource(text: str) -> None:
    """
    RFC 7622 §3.4: a resourcepart, when the '/' is there, must not be
    empty, also not after preparation.
    """
    assert "empty resourcepart" in str(malformed(text))


@pytest.mark.parametrize(
    "text",
    [
        "alice@a..example.com",
        "alice@.example.com",
        "alice@example..",
        "alice@.",
        "alice@..",
        "a..b",
        "alice@a..b/phone",
    ],
)
def test_parseEmptyLabel(text: str) -> None:
    """
    RFC 7622 §3.2 / RFC 1034 §3.1: an empty label in the domainpart is
    refused with InvalidFormat (Twisted's own IndexError does not escape).
    """
    malformed(text)


@pytest.mark.parametrize(
    "text",
    [
        "a b@example.com",
        'a"b@example.com',
        "a&b@example.com",
        "a'b@example.com",
        "a:b@example.com",
        "a<b@example.com",
        "a>b@example.com",
        "a\x00b@example.com",
        "a@b@example.com",
    ],
)
def test_parseBadLocalpart(text: str) -> None:
    """
    RFC 7622 §3.3.1 / RFC 6122 appendix A: the localpart must not hold a
    space, '"', '&', "'", ':', '<', '>', '@' or control characters.
    """
    malformed(text)


@pytest.mark.parametrize(
    "text",
    ["alice@exa mple.com", "alice@-example.com", "alice@example-.com", "alice@exa_mple.com",
     "alice@[::1", "alice@example.com\x00"],
)
def test_parseBadDomainpart(text: str) -> None:
    """
    RFC 7622 §3.2: the domainpart must be a host name: no spaces,
    leading or trailing hyphens in a label, underscores or controls.
    """
    malformed(text)


def test_parseBadResourcepart() -> None:
    """
    RFC 7622 §3.4 / RFC 6122 appendix B: control characters are not allowed
    in the resourcepart.
    """
    malformed("alice@example.com/ph\x00one")
    malformed("alice@example.com/ph\x07one")


@pytest.mark.parametrize(
    "text",
    [
        f"{LONGEST}x@example.com",
        f"alice@example.com/{LONGEST}x",
        f"alice@{LONGEST_DOMAIN}x",
        "\u00e9" * 512 + "@example.com",
        "alice@example.com/" + "\u20ac" * 342,
    ],
    ids=["localpart", "resourcepart", "domainpart", "localpart-multibyte", "resourcepart-multibyte"],
)
def test_parseOverlongPart(text: str) -> None:
    """
    RFC 7622 §3.2.1, 3.3.1, 3.4.1: a part of more than 1023 octets of
    UTF-8 is refused, counted after preparation and in octets.
    """
    assert str(MAX_PART_OCTETS) in str(malformed(text))


def test_parseMessageNamesInput() -> None:
    """
    parseJID's docstring: the message of InvalidFormat says why, naming
    the input.
    """
    assert "'a b@example.com'" in str(malformed("a b@example.com"))
    assert "'alice@a..b'" in str(malformed("alice@a..b"))


@pytest.mark.parametrize("text", ["@example.com", "@example.com/phone"])
def test_parseEmptyLocalpart(text: str) -> None:
    """
    RFC 7622 §3.3.1: when the '@' is there, the localpart must not be empty.
    """
    malformed(text)


def test_parseLocalpartEmptyAfterPreparation() -> None:
    """
    RFC 7622 §3.3.1: a localpart that preparation maps to nothing is empty,
    hence refused.
    """
    malformed("\u00ad@example.com")


def test_parseOverlongLabel() -> None:
    """
    RFC 7622 §3.2 / RFC 5890 §2.3.1: a domain label has at most 63 octets.
    """
    assert parseJID("alice@" + "x" * 63 + ".com").host == "x" * 63 + ".com"
    malformed("alice@" + "x" * 64 + ".com")


def test_parseTrailingDot() -> None:
    """
    RFC 7622 §3.2: a final '.' of the domainpart is stripped before
    the JID is compared or used.
    """
    assert parseJID("alice@example.com.") == parseJID("alice@example.com")


# --- makeJID -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "parts, full",
    [
        (("alice", "example.com", None), "alice@example.com"),
        (("Alice", "EXAMPLE.com", "Phone"), "alice@example.com/Phone"),
        ((None, "example.com", None), "example.com"),
        ((None, "example.com", "res"), "example.com/res"),
        (("alice", "example.com", "a/b@c"), "alice@example.com/a/b@c"),
        ((LONGEST, LONGEST_DOMAIN, LONGEST), f"{LONGEST}@{LONGEST_DOMAIN}/{LONGEST}"),
    ],
)
def test_makeValid(parts: tuple[str | None, str, str | None], full: str) -> None:
    """
    RFC 7622 §3: makeJID builds the prepared JID from its parts, up to
    1023 octets each.
    """
    made = makeJID(*parts)
    assert isinstance(made, jid.JID)
    assert made.full() == full
    assert made == parseJID(full)


@pytest.mark.parametrize(
    "parts",
    [
        ("alice", "", None),
        ("alice", "a..b", None),
        ("alice", ".example.com", None),
        ("a b", "example.com", None),
        ("a@b", "example.com", None),
        ("alice", "exa mple.com", None),
        ("alice", "example.com/x", None),
        ("alice", "example.com", ""),
        ("alice", "example.com", "\u00ad"),
        ("alice", "example.com", "ph\x00one"),
        (LONGEST + "x", "example.com", None),
        ("alice", LONGEST_DOMAIN + "x", None),
        ("alice", "example.com", LONGEST + "x"),
        ("\u00e9" * 512, "example.com", None),
    ],
    ids=[
        "empty-domain",
        "empty-label",
        "leading-empty-label",
        "space-in-localpart",
        "at-in-localpart",
        "space-in-domain",
        "slash-in-domain",
        "empty-resource",
        "resource-maps-to-nothing",
        "control-in-resource",
        "long-localpart",
        "long-domainpart",
        "long-resourcepart",
        "long-localpart-multibyte",
    ],
)
def test_makeInvalid(parts: tuple[str | None, str, str | None]) -> None:
    """
    makeJID's docstring: the same checks as parseJID (empty labels,
    prohibited characters, a resource empty after preparation, parts over
    1023 octets), each raising InvalidFormat.
    """
    with pytest.raises(jid.InvalidFormat) as info:
        makeJID(*parts)
    assert str(info.value)


def test_makeLocalpartEmptyAfterPreparation() -> None:
    """
    RFC 7622 §3.3.1: a localpart that preparation maps to nothing is
    refused, as an empty resourcepart is.
    """
    with pytest.raises(jid.InvalidFormat):
        makeJID("\u00ad", "example.com", None)


def test_parseDoesNotIntern() -> None:
    """
    Memory: JIDs parsed from what peers send are not kept in Twisted's
    intern cache, which never forgets.
    """
    cache = vars(jid)["__internJIDs"]
    before = len(cache)
    for i in range(100):
        parseJID(f"user{i}@never-seen-{i}.example/r{i}")
        makeJID(f"user{i}", f"never-seen-{i}.example", None)
    assert len(cache) == before


def test_preparedJIDsAreCached() -> None:
    """
    Preparation is done once per JID text (bounded cache): the same short
    text gives the same prepared JID object; a long one is prepared again
    (it would fill the cache); an invalid one is refused every time.
    """
    assert parseJID("Alice@Example.com/Phone") is parseJID("Alice@Example.com/Phone")
    assert makeJID("alice", "example.com", "phone") is makeJID("alice", "example.com", "phone")
    long = "a" * 300 + "@example.com"
    assert parseJID(long) == parseJID(long) and parseJID(long) is not parseJID(long)
    for _ in range(2):
        with pytest.raises(jid.InvalidFormat):
            parseJID("a@b@c")


def _twistedParts(prepare: Callable[[], jid.JID]) -> tuple[str | None, str, str | None] | None:
    try:
        made = prepare()
    except (jid.InvalidFormat, UnicodeError, ValueError, IndexError, RuntimeError):
        return None
    return (made.user, made.host, made.resource)


_JID_TEXT = st.text(
    alphabet=st.sampled_from("aZ09 .-_@/\t\x7f\u00ad\u00dfÄü\u0130\u05d0\u200b\ufb01\ue000"),
    min_size=1,
    max_size=24,
)


@settings(max_examples=400, deadline=None)
@given(_JID_TEXT)
def test_preparationMatchesTwisted(text: str) -> None:
    """
    RFC 6122 preparation (nodeprep, nameprep, resourceprep): the part by
    part preparation, with its caches and the printable-ASCII resource
    shortcut, gives exactly Twisted's C{jid.JID} parts, and refuses what
    Twisted refuses.
    """
    expected = _twistedParts(lambda: jid.JID(text))
    got = _twistedParts(lambda: jids._prepare(*jids._split(text)))
    assert got == expected


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=40))
def test_asciiResourceprep(resource: str) -> None:
    """
    RFC 3920 appendix B (resourceprep): an ASCII resource is prepared as
    Twisted's stringprep profile prepares it, control characters refused.
    """
    try:
        expected: str | None = resourceprep.prepare(resource)
    except UnicodeError:
        expected = None
    try:
        got: str | None = jids._prepareResource(resource)
    except UnicodeError:
        got = None
    assert got == expected
