# -*- test-case-name: tests.test_control -*-
"""
C{xmppcert status}, C{sessions} and C{kick}: the live state of the running
server, through its control channel (L{xmppcert.control}). Unlike the
other commands they need the server: without it they say so and fail.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from xmppcert import x509
from xmppcert.cli.common import (
    CommandError,
    formatTime,
    loadConfigOf,
    parseUserJID,
    reachServer,
)
from xmppcert.config import Config
from xmppcert.control import ControlClient, Kick, Sessions, Status


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def formatDuration(seconds: float) -> str:
    """
    A duration for people, to the second below an hour, then coarser:
    C{"42 s"}, C{"5 min 3 s"}, C{"2 h 5 min"}, C{"3 d 4 h"}.
    """
    total = int(max(0.0, seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _server(config: Config) -> ControlClient:
    """
    @raise CommandError: no server answers on the control socket.
    """
    if config.control.socket is None:
        raise CommandError("the control channel is turned off ([control] socket is empty)")
    client = reachServer(config)
    if client is None:
        raise CommandError(f"the server is not running (nothing listens on {config.control.socket})")
    return client


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def _status(args: argparse.Namespace, out: TextIO) -> None:
    config = loadConfigOf(args)
    with _server(config) as client:
        status = client.call(Status)
    print(f"version: {status['version']}", file=out)
    print(f"up: {formatDuration(status['uptime'])} (since {formatTime(status['startedAt'])})", file=out)
    print("listeners:", file=out)
    for listener in status["listeners"]:
        print(f"  {listener['kind']:<10}  {listener['description']}", file=out)
    counts = status["sessions"]
    print(f"sessions: {sum(row['count'] for row in counts)}", file=out)
    if counts:
        rows = [("TRANSPORT", "MECHANISM", "SESSIONS")] + [
            (row["transport"], row["mechanism"] or "-", str(row["count"])) for row in counts
        ]
        for line in _table(rows):
            print("  " + line, file=out)


def _certificateCell(session: dict[str, Any]) -> str:
    if session.get("certificate"):
        return str(session["certificate"])
    fingerprint = session.get("fingerprint")
    if not fingerprint:
        return "-"
    # Not registered to the account (a CA's, or a custom checker's).
    try:
        return x509.displayFingerprint(fingerprint)[:23] + "..."
    except ValueError:
        return str(fingerprint)


def _sessions(args: argparse.Namespace, out: TextIO) -> None:
    config = loadConfigOf(args)
    target = parseUserJID(args.jid).full() if args.jid is not None else None
    found: list[dict[str, Any]] = []
    with _server(config) as client:
        after = None
        while True:
            page = client.call(Sessions, jid=target, after=after)
            found += page["sessions"]
            if not page["more"] or not page["sessions"]:
                break
            after = found[-1]["jid"]
    if not found:
        print("no sessions" + (f" of {target}" if target else ""), file=out)
        return
    rows = [("JID", "TRANSPORT", "ADDRESS", "MECHANISM", "CERTIFICATE", "SINCE")] + [
        (
            s["jid"],
            s["transport"] or "-",
            s["address"] or "-",
            s["mechanism"] or "-",
            _certificateCell(s),
            formatTime(s["boundAt"], never="-"),
        )
        for s in found
    ]
    for line in _table(rows):
        print(line, file=out)


def _kick(args: argparse.Namespace, out: TextIO) -> None:
    config = loadConfigOf(args)
    target = parseUserJID(args.jid)
    if target.host not in config.domains:
        raise CommandError(
            f"{target.host!r} is not served by this server (domains: {', '.join(config.domains)})"
        )
    client = reachServer(config)
    if client is None:
        raise CommandError("the server is not running: there are no sessions to end")
    with client:
        ended = int(client.call(Kick, jid=target.full())["sessions"])
    print(f"ended {_plural(ended, 'session')} of {target.full()}", file=out)


def addCommands(commands: Any, configOption: argparse.ArgumentParser) -> None:
    """
    Add C{status}, C{sessions [JID]} and C{kick JID}.
    """
    status = commands.add_parser(
        "status",
        parents=[configOption],
        help="show the running server's version, uptime, listeners and sessions",
    )
    status.set_defaults(func=_status)
    sessions = commands.add_parser(
        "sessions",
        parents=[configOption],
        help="list the running server's sessions: JID, address, mechanism, certificate, since",
    )
    sessions.add_argument(
        "jid", metavar="JID", nargs="?", help="only this account's (user@domain) or this session's (user@domain/res)"
    )
    sessions.set_defaults(func=_sessions)
    kick = commands.add_parser(
        "kick",
        parents=[configOption],
        help="end sessions at once: all of an account (user@domain) or one (user@domain/res)",
    )
    kick.add_argument("jid", metavar="JID", help="user@domain or user@domain/resource")
    kick.set_defaults(func=_kick)


__all__ = ["addCommands", "formatDuration"]
