# -*- test-case-name: tests.test_cli -*-
"""
C{xmppcert user}: accounts and their passwords.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from twisted.words.protocols.jabber import jid as jabberJID

from xmppcert import passwords
from xmppcert.cli.common import (
    CommandError,
    loadConfigOf,
    openDatabase,
    parseAccountJID,
    readPassword,
)
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
    finally:
        database.close()
    print(f"changed the password of {account}", file=out)


def _userDelete(args: argparse.Namespace, out: TextIO) -> None:
    config = loadConfigOf(args)
    account = parseAccountJID(args.jid, config)
    database = openDatabase(config)
    try:
        database.removeAccount(account)
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
    Add C{user add|passwd|delete|list}.
    """
    user = commands.add_parser("user", parents=[configOption], help="manage accounts")
    userCommands = user.add_subparsers(dest="userCommand", metavar="COMMAND", required=True)
    for name, func, helpText in [
        ("add", _userAdd, "create an account; the password is read from the terminal or stdin"),
        ("passwd", _userPasswd, "change the password of an account"),
        ("delete", _userDelete, "delete an account, its credentials and certificates"),
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


