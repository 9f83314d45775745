# -*- test-case-name: tests.test_cli -*-
"""
What the command groups of the C{xmppcert} command share: the error they
report, the clock, loading the configuration and the database, and reading
JIDs and passwords.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import os
import sqlite3
import sys
from typing import Any, TextIO

from twisted.protocols import amp
from twisted.words.protocols.jabber import jid as jabberJID

from xmppcert.config import Config, loadConfig
from xmppcert.control import ControlClient, ControlError, ServerNotRunning
from xmppcert.jids import parseJID
from xmppcert.store.interfaces import StoreError
from xmppcert.store.sqlite import SQLiteDatabase

#: Used when neither C{--config} nor C{$XMPPCERT_CONFIG} is given.
DEFAULT_CONFIG = "var/xmppcert.toml"

#: Name of the configuration file that C{init} writes in the data directory.
CONFIG_NAME = "xmppcert.toml"


class CommandError(Exception):
    """
    An expected failure, reported as one line on stderr with exit status 1.
    """


def now() -> datetime.datetime:
    """
    The current time (timezone-aware, UTC) for the validity checks of
    certificates; tests replace this function.
    """
    return datetime.datetime.now(datetime.UTC)


def defaultConfigPath() -> str:
    return os.environ.get("XMPPCERT_CONFIG") or DEFAULT_CONFIG


def loadConfigOf(args: argparse.Namespace) -> Config:
    return loadConfig(args.config)


def openDatabase(config: Config) -> SQLiteDatabase:
    return SQLiteDatabase.open(config.store.sqlite)


def cliActor() -> str:
    """
    Who runs this command, as the audit trail names them:
    C{cli:<operating-system user name>}.
    """
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        # No user name for this uid (a container without /etc/passwd).
        return f"cli:uid {os.getuid()}"


def recordAudit(database: SQLiteDatabase, action: str, target: str, detail: str = "") -> None:
    """
    Record a change this command made in the audit trail (see
    L{xmppcert.store.interfaces.IAuditLog}), once it succeeded.

    The change is made whatever happens here: a failure to record it is a
    warning on stderr, not an error of the command.
    """
    try:
        database.recordAudit(cliActor(), action, target, detail)
    except (sqlite3.Error, StoreError) as e:
        print(
            f"xmppcert: warning: the change was made but not recorded in the audit trail: {e}",
            file=sys.stderr,
        )


def parseAccountJID(text: str, config: Config) -> str:
    """
    @return: the normalised bare JID C{text}.
    @raise CommandError: C{text} is not a bare JID with a localpart of a
        domain that C{config} serves.
    """
    try:
        parsed = parseJID(text)
    except jabberJID.InvalidFormat as e:
        raise CommandError(str(e)) from None
    if not parsed.user:
        raise CommandError(f"{text!r} is not an account JID: it has no localpart (user@domain)")
    if parsed.resource is not None:
        raise CommandError(
            f"{text!r} is a full JID; give the bare JID {parsed.userhost()!r} instead"
        )
    if parsed.host not in config.domains:
        raise CommandError(
            f"{parsed.host!r} is not served by this server"
            f" (domains: {', '.join(config.domains)})"
        )
    return parsed.userhost()


def readLine(stdin: TextIO) -> str:
    """
    One line of C{stdin} without its line ending; spaces are kept.
    """
    line = stdin.readline()
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    return line


def readPassword(stdin: TextIO) -> str:
    """
    Read a new password: asked twice without echo on a terminal, otherwise
    one line of C{stdin} without its line ending (for scripts).

    @raise CommandError: the password is empty, or the two entries differ.
    """
    if stdin.isatty():
        try:
            password = getpass.getpass("New password: ")
            again = getpass.getpass("New password (again): ")
        except EOFError:
            raise CommandError("no password given") from None
        if password != again:
            raise CommandError("the passwords do not match")
    else:
        # Only the line ending: spaces may be part of a password.
        password = readLine(stdin)
    if not password:
        raise CommandError("the password must not be empty")
    return password


def formatTime(moment: datetime.datetime | float | None, never: str = "never") -> str:
    """
    A time for people, in UTC to the minute.
    """
    if moment is None:
        return never
    if not isinstance(moment, datetime.datetime):
        moment = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def parseUserJID(text: str) -> jabberJID.JID:
    """
    @return: the JID C{text}, which must have a localpart; a resource is
        allowed (it pins a certificate to that resource).
    @raise CommandError: it is not such a JID.
    """
    try:
        parsed = jabberJID.JID(text)
    except (jabberJID.InvalidFormat, IndexError, RuntimeError, UnicodeError, ValueError) as e:
        raise CommandError(f"{text!r} is not a valid JID: {e}") from None
    if not parsed.user:
        raise CommandError(f"{text!r} is not a user's JID: it has no localpart (user@domain)")
    return parsed


def positiveInt(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def reachServer(config: Config) -> ControlClient | None:
    """
    Connect to the running server's control channel (L{xmppcert.control}).

    @return: a client, or C{None} when no server listens (or the channel is
        turned off in the configuration).
    @raise CommandError: the control socket is there but cannot be used
        (e.g. it belongs to another user).
    """
    if config.control.socket is None:
        return None
    try:
        return ControlClient.connect(config.control.socket)
    except ServerNotRunning:
        return None
    except ControlError as e:
        raise CommandError(str(e)) from None


def notifyServer(config: Config, command: type[amp.Command], **arguments: Any) -> int | None:
    """
    Tell a running server about a change this command made in the store, so
    that it ends the sessions concerned at once.

    @param command: an L{xmppcert.control} command answering C{sessions}.
    @return: how many sessions the server ended, or C{None} when no server
        was reached; a server that could not be told is a warning on stderr
        (the change in the store stands).
    """
    try:
        client = reachServer(config)
        if client is None:
            return None
        with client:
            return int(client.call(command, **arguments)["sessions"])
    except (CommandError, ControlError) as e:
        print(f"xmppcert: warning: the running server was not told: {e}", file=sys.stderr)
        return None
