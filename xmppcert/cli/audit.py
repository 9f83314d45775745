# -*- test-case-name: tests.test_cli -*-
"""
C{xmppcert audit}: who changed which account or certificate, and when
(L{xmppcert.store.interfaces.IAuditLog}).
"""

from __future__ import annotations

import argparse
import unicodedata
from typing import Any, TextIO

from twisted.words.protocols.jabber import jid as jabberJID

from xmppcert.cli.common import CommandError, formatTime, loadConfigOf, openDatabase, positiveInt
from xmppcert.jids import parseJID
from xmppcert.store.interfaces import AuditEntry

#: How many entries C{audit} shows without C{--limit}.
DEFAULT_LIMIT = 100


def _printable(text: str) -> str:
    """
    C{text} with control characters escaped: part of an entry may come
    from a client (a certificate name), and must not drive the terminal.
    """
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in ("Cc", "Cf", "Cs") else c
        for c in text
    )


def formatEntry(entry: AuditEntry) -> str:
    """
    One line for an entry: time (UTC), actor, action, target and detail,
    separated by two spaces.
    """
    fields = [formatTime(entry.at), entry.actor, entry.action, entry.target]
    if entry.detail:
        fields.append(entry.detail)
    return "  ".join(_printable(field) for field in fields)


def _audit(args: argparse.Namespace, out: TextIO) -> None:
    config = loadConfigOf(args)
    target = None
    if args.jid is not None:
        try:
            parsed = parseJID(args.jid)
        except jabberJID.InvalidFormat as e:
            raise CommandError(str(e)) from None
        if not parsed.user or parsed.resource is not None:
            raise CommandError(f"{args.jid!r} is not an account JID (user@domain)")
        # Any domain: the history of one no longer served is still there.
        target = parsed.userhost()
    database = openDatabase(config)
    try:
        entries = database.auditTrail(target, args.limit)
    finally:
        database.close()
    if not entries:
        print("no audit entries" + (f" for {target}" if target else ""), file=out)
        return
    for entry in entries:
        print(formatEntry(entry), file=out)


def addCommands(commands: Any, configOption: argparse.ArgumentParser) -> None:
    """
    Add C{audit [JID] [--limit N]}.
    """
    audit = commands.add_parser(
        "audit",
        parents=[configOption],
        help="show the audit trail: who changed accounts and certificates",
        description=(
            "Show the newest entries of the audit trail, oldest first: when (UTC), who"
            " (cli:<user> for this command, the session's JID for XEP-0257), what, on"
            " which account or certificate (<jid>/<name>), and details."
        ),
    )
    audit.add_argument("jid", metavar="JID", nargs="?", help="only this account and its certificates")
    audit.add_argument(
        "--limit",
        type=positiveInt,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"the newest N entries (default: {DEFAULT_LIMIT})",
    )
    audit.set_defaults(func=_audit)
