# -*- test-case-name: tests.test_cli -*-
"""
C{xmppcert user}: accounts, their passwords, and locks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TextIO

from twisted.words.protocols.jabber import jid as jabberJID

from xmppcert import passwords
from xmppcert.cli.common import (
    CommandError,
    loadConfigOf,
    notifyServer,
    openDatabase,
    parseAccountJID,
    reachServer,
    readPassword,
    recordAudit,
)
from xmppcert.control import Lock, PasswordChanged
from xmppcert.store.interfaces import (
    AccountExists,
    NoSuchAccount,
)


def _userAdd(args: argparse.Namespace, out: TextIO) -> None:
    config = loadConfigOf(args)
    account = parseAccountJID(args.jid, config)
    database = openDatabase(config)
    try:
        # Fail before asking for a password that would be thrown away.
        if database.accountExists(account):
            raise CommandError(f"account {account} already exists")
        if args.no_password:
            # Certificate-only: no SCRAM credentials, so PLAIN and SCRAM
            # always fail for it; it logs in with SASL EXTERNAL.
            credentials = []
        else:
            password = readPassword(sys.stdin)
            credentials = passwords.makeScramCredentials(password, config.sasl.scram_iterations)
        try:
            database.addAccount(account, credentials)
        except AccountExists:
            raise CommandError(f"account {account} already exists") from None
        recordAudit(database, "user.add", account, "without a password" if args.no_password else "")
    finally:
        database.close()
    if args.no_password:
        print(f"added {account} without a password (it logs in with a certificate)", file=out)
    else:
        print(f"added {account}", file=out)


def _userPasswd(args: argparse.Namespace, out: TextIO) -> None:
    config = loadConfigOf(args)
    account = parseAccountJID(args.jid, config)
    database = openDatabase(config)
    try:
        if not database.accountExists(account):
            raise CommandError(f"no account {account}")
        password = readPassword(sys.stdin)
        credentials = passwords.makeScramCredentials(password, config.sasl.scram_iterations)
        try:
            database.setCredentials(account, credentials)
        except NoSuchAccount:
            raise CommandError(f"no account {account}") from None
        recordAudit(database, "user.passwd", account)
    finally:
        database.close()
    print(f"changed the password of {account}", file=out)
    # Sessions that logged in with the old password end now.
    ended = notifyServer(config, PasswordChanged, jid=account)
    if ended:
        print(f"ended {_plural(ended, 'password session')}", file=out)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _userLock(locked: bool) -> Callable[[argparse.Namespace, TextIO], None]:
    """
    The command that locks (or unlocks) an account: a locked account
    cannot log in by any mechanism. Through a running server's control
    channel, which also ends its sessions at once; without one, in the
    store alone (a server sharing it ends them at its next session check).
    """
    what = "locked" if locked else "unlocked"

    def command(args: argparse.Namespace, out: TextIO) -> None:
        config = loadConfigOf(args)
        account = parseAccountJID(args.jid, config)
        client = reachServer(config)
        if client is not None:
            with client:
                try:
                    ended = int(client.call(Lock, jid=account, locked=locked)["sessions"])
                except NoSuchAccount:
                    raise CommandError(f"no account {account}") from None
            print(f"{what} {account}" + (f"; ended {_plural(ended, 'live session')}" if locked else ""), file=out)
            return
        database = openDatabase(config)
        try:
            try:
                database.setAccountLocked(account, locked)
            except NoSuchAccount:
                raise CommandError(f"no account {account}") from None
            recordAudit(database, "user.lock" if locked else "user.unlock", account)
        finally:
            database.close()
        note = " (no running server answered; a server sharing the database ends its sessions at its next session check)"
        print(f"{what} {account}" + (note if locked else ""), file=out)

    command.__name__ = f"_user_{what}"
    return command


def _userDelete(args: argparse.Namespace, out: TextIO) -> None:
    config = loadConfigOf(args)
    account = parseAccountJID(args.jid, config)
    database = openDatabase(config)
    try:
        database.removeAccount(account)
        recordAudit(database, "user.delete", account)
    except NoSuchAccount:
        raise CommandError(f"no account {account}") from None
    finally:
        database.close()
    print(f"deleted {account}", file=out)


def _userList(args: argparse.Namespace, out: TextIO) -> None:
    config = loadConfigOf(args)
    domain = None
    if args.domain is not None:
        try:
            parsed = jabberJID.JID(args.domain)
        except (jabberJID.InvalidFormat, RuntimeError, UnicodeError, ValueError) as e:
            raise CommandError(f"{args.domain!r} is not a valid domain: {e}") from None
        if parsed.user is not None or parsed.resource is not None:
            raise CommandError(f"{args.domain!r} is not a domain")
        domain = parsed.host
    database = openDatabase(config)
    try:
        accounts = database.listAccounts(domain)
    finally:
        database.close()
    for account in accounts:
        print(account, file=out)


# ---------------------------------------------------------------------------
# Client certificates: gencert and cert ...
# ---------------------------------------------------------------------------



def addCommands(commands: Any, configOption: argparse.ArgumentParser) -> None:
    """
    Add C{user add|passwd|delete|lock|unlock|list}.
    """
    user = commands.add_parser("user", parents=[configOption], help="manage accounts")
    userCommands = user.add_subparsers(dest="userCommand", metavar="COMMAND", required=True)
    for name, func, helpText in [
        ("add", _userAdd, "create an account; the password is read from the terminal or stdin"),
        ("passwd", _userPasswd, "change the password of an account"),
        ("delete", _userDelete, "delete an account, its credentials and certificates"),
        ("lock", _userLock(True), "lock an account: no login by any mechanism, its sessions end"),
        ("unlock", _userLock(False), "let a locked account log in again"),
    ]:
        sub = userCommands.add_parser(name, parents=[configOption], help=helpText)
        sub.add_argument("jid", metavar="JID", help="bare JID, user@domain")
        if name == "add":
            sub.add_argument(
                "--no-password",
                action="store_true",
                help="no password: the account logs in with a client certificate only",
            )
        sub.set_defaults(func=func)
    listCommand = userCommands.add_parser(
        "list", parents=[configOption], help="list accounts, one JID a line"
    )
    listCommand.add_argument("domain", metavar="DOMAIN", nargs="?", help="only this domain")
    listCommand.set_defaults(func=_userList)


