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

from twisted.words.protocols.jabber import jid

#: RFC 7622 section 3: each part is at most 1023 octets.
MAX_PART_OCTETS = 1023


def parseJID(text: str) -> jid.JID:
    """
    @return: the prepared JID.
    @raise jid.InvalidFormat: C{text} is not a valid JID; the message says why.
    """
    if not text:
        raise jid.InvalidFormat("the JID is empty")
    if text.endswith("/"):
        # Twisted drops an empty resource; RFC 7622 section 3.4 forbids it.
        raise jid.InvalidFormat(f"{text!r} has an empty resourcepart")
    try:
        parsed = jid.internJID(text)
    except jid.InvalidFormat as e:
        raise jid.InvalidFormat(f"{text!r} is not a valid JID: {e}") from None
    except (UnicodeError, ValueError, IndexError, RuntimeError):
        raise jid.InvalidFormat(f"{text!r} is not a valid JID") from None
    for part in (parsed.user or "", parsed.host, parsed.resource or ""):
        if len(part.encode("utf-8")) > MAX_PART_OCTETS:
            raise jid.InvalidFormat(f"{text!r} has a part longer than {MAX_PART_OCTETS} octets")
    if parsed.resource is not None and not parsed.resource:
        raise jid.InvalidFormat(f"{text!r} has an empty resourcepart")
    return parsed


def makeJID(user: str | None, host: str, resource: str | None) -> jid.JID:
    """
    Build a JID from parts, with the same checks as L{parseJID} (a resource
    that preparation maps to nothing is refused).

    @raise jid.InvalidFormat: a part is invalid.
    """
    try:
        parsed = jid.JID(tuple=(user, host, resource))
    except jid.InvalidFormat:
        raise
    except (UnicodeError, ValueError, IndexError, RuntimeError):
        raise jid.InvalidFormat("not a valid JID") from None
    if resource is not None and not parsed.resource:
        raise jid.InvalidFormat("the resource is empty after preparation")
    for part in (parsed.user or "", parsed.host, parsed.resource or ""):
        if len(part.encode("utf-8")) > MAX_PART_OCTETS:
            raise jid.InvalidFormat(f"a part is longer than {MAX_PART_OCTETS} octets")
    return parsed


__all__ = ["MAX_PART_OCTETS", "makeJID", "parseJID"]
