# -*- test-case-name: tests.test_jids -*-
"""
One way to parse a JID from the network, a file or a certificate.

Twisted's C{jid.JID} applies nodeprep, nameprep and resourceprep (RFC 6122
preparation, which RFC 7622 replaced with the same strictness for these
purposes), but fails on some malformed input with C{IndexError} or
C{RuntimeError} (an empty domain label, C{"a@b..c"}), accepts an empty
resourcepart, and has no length limits. L{parseJID} turns every failure into
L{jid.InvalidFormat} and adds the RFC 7622 checks.
"""

from __future__ import annotations

from functools import lru_cache

from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.xmpp_stringprep import nameprep, nodeprep, resourceprep

#: RFC 7622 section 3: each part is at most 1023 octets.
MAX_PART_OCTETS = 1023

#: Preparation (stringprep) is a large share of the server's work, and the
#: same few JIDs come again and again: this many prepared JIDs are kept,
#: least recently used dropped first. Only valid JIDs are kept (a failure
#: is not cached), and only short texts, so the cache stays small however
#: long the JIDs peers send (at most about 4 MiB with 1 KiB JID objects).
JID_CACHE_SIZE = 8192
_CACHED_LENGTH = 256


def _prepareResource(resource: str) -> str:
    # Printable ASCII is its own resourceprep (RFC 3920 appendix B: no
    # mapping, NFKC leaves it alone, nothing prohibited, no bidi), and it is
    # what clients bind: a new resource on every login need not go through
    # Twisted's pure-Python stringprep.
    if resource.isascii() and resource.isprintable():
        return str(resource)
    return str(resourceprep.prepare(resource))


def _prepareLocal(user: str) -> str:
    return str(nodeprep.prepare(user))


def _prepareDomain(host: str) -> str:
    return str(nameprep.prepare(host))


# The same few localparts and domains come with every resource.
_cachedLocal = lru_cache(maxsize=JID_CACHE_SIZE)(_prepareLocal)
_cachedDomain = lru_cache(maxsize=JID_CACHE_SIZE)(_prepareDomain)


def _prepare(user: str | None, host: str, resource: str | None) -> jid.JID:
    """
    Twisted's C{jid.prep}, part by part: localparts and domains from
    bounded caches, printable ASCII resources as they are.
    """
    if user:
        try:
            user = _cachedLocal(user) if len(user) <= _CACHED_LENGTH else _prepareLocal(user)
        except UnicodeError:
            raise jid.InvalidFormat("Invalid character in username") from None
    else:
        user = None
    if not host:
        raise jid.InvalidFormat("Server address required.")
    try:
        host = _cachedDomain(host) if len(host) <= _CACHED_LENGTH else _prepareDomain(host)
    except UnicodeError:
        raise jid.InvalidFormat("Invalid character in hostname") from None
    if resource:
        try:
            resource = _prepareResource(resource)
        except UnicodeError:
            raise jid.InvalidFormat("Invalid character in resource") from None
    else:
        resource = None
    return _preparedJID(user, host, resource)


def _preparedJID(user: str | None, host: str, resource: str | None) -> jid.JID:
    # Parts already prepared: JID() would prepare them again.
    made = jid.JID.__new__(jid.JID)
    made.user, made.host, made.resource = user, host, resource
    return made


def _split(text: str) -> tuple[str | None, str, str | None]:
    """
    The parts of a JID's text, as Twisted's C{jid.parse} splits it: the
    first C{/} starts the resource, an C{@} before it ends the localpart.
    """
    bare, slash, resource = text.partition("/")
    user, at, host = bare.partition("@")
    if not at:
        user, host = "", bare
    return user or None, host, (resource or None) if slash else None


def _checkParts(parsed: jid.JID, hasLocal: bool, hasResource: bool, what: str) -> jid.JID:
    """
    The RFC 7622 rules Twisted's preparation leaves out; returns the JID
    with a final dot of the domainpart stripped.
    """
    if hasLocal and not parsed.user:
        # RFC 7622 section 3.3.1, also after preparation (U+00AD maps to nothing).
        raise jid.InvalidFormat(f"{what} has an empty localpart")
    if hasResource and not parsed.resource:
        raise jid.InvalidFormat(f"{what} has an empty resourcepart")
    host = parsed.host
    if host.endswith("."):
        # RFC 7622 section 3.2: the final dot MUST be stripped before use.
        host = host[:-1]
        if not host or host.endswith("."):
            raise jid.InvalidFormat(f"{what} has an empty domain label")
        parsed = _preparedJID(parsed.user, host, parsed.resource)
    for part in (parsed.user or "", parsed.host, parsed.resource or ""):
        if len(part.encode("utf-8")) > MAX_PART_OCTETS:
            raise jid.InvalidFormat(f"{what} has a part longer than {MAX_PART_OCTETS} octets")
    for label in host.split("."):
        try:
            # RFC 5890 section 2.3.1: at most 63 octets in the A-label form.
            label.encode("idna")
        except UnicodeError:
            raise jid.InvalidFormat(f"{what} has a domain label longer than 63 octets") from None
    return parsed


def parseJID(text: str) -> jid.JID:
    """
    @return: the prepared JID, a final dot of its domainpart stripped. The
        same text may give the same object: JIDs are never changed.
    @raise jid.InvalidFormat: C{text} is not a valid JID; the message says why.
    """
    if len(text) <= _CACHED_LENGTH:
        return _cachedParse(text)
    return _parse(text)


def _parse(text: str) -> jid.JID:
    if not text:
        raise jid.InvalidFormat("the JID is empty")
    if text.endswith("/"):
        # Twisted drops an empty resource; RFC 7622 section 3.4 forbids it.
        raise jid.InvalidFormat(f"{text!r} has an empty resourcepart")
    try:
        # Not internJID: its cache never forgets, and this parses what
        # unauthenticated peers send.
        parsed = _prepare(*_split(text))
    except jid.InvalidFormat as e:
        raise jid.InvalidFormat(f"{text!r} is not a valid JID: {e}") from None
    except (UnicodeError, ValueError, IndexError, RuntimeError):
        raise jid.InvalidFormat(f"{text!r} is not a valid JID") from None
    bare, slash, _ = text.partition("/")
    try:
        return _checkParts(parsed, "@" in bare, bool(slash), repr(text))
    except (UnicodeError, ValueError, IndexError, RuntimeError) as e:
        if isinstance(e, jid.InvalidFormat):
            raise
        raise jid.InvalidFormat(f"{text!r} is not a valid JID") from None


def makeJID(user: str | None, host: str, resource: str | None) -> jid.JID:
    """
    Build a JID from parts, with the same checks as L{parseJID} (a localpart
    or resource that preparation maps to nothing is refused).

    @raise jid.InvalidFormat: a part is invalid.
    """
    if len(user or "") + len(host) + len(resource or "") <= _CACHED_LENGTH:
        return _cachedMake(user, host, resource)
    return _make(user, host, resource)


def _make(user: str | None, host: str, resource: str | None) -> jid.JID:
    try:
        parsed = _prepare(user, host, resource)
    except jid.InvalidFormat:
        raise
    except (UnicodeError, ValueError, IndexError, RuntimeError):
        raise jid.InvalidFormat("not a valid JID") from None
    try:
        return _checkParts(parsed, user is not None, resource is not None, "the JID")
    except (UnicodeError, ValueError, IndexError, RuntimeError) as e:
        if isinstance(e, jid.InvalidFormat):
            raise
        raise jid.InvalidFormat("not a valid JID") from None


_cachedParse = lru_cache(maxsize=JID_CACHE_SIZE)(_parse)
_cachedMake = lru_cache(maxsize=JID_CACHE_SIZE)(_make)


__all__ = ["JID_CACHE_SIZE", "MAX_PART_OCTETS", "makeJID", "parseJID"]
