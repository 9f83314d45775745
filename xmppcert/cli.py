# -*- test-case-name: tests.test_cli -*-
"""
The C{xmppcert} command: set up a data directory and manage accounts.

It works on the database file directly through the synchronous
L{SQLiteDatabase}, without a reactor; it may run while the server is using
the same file.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sqlite3
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from twisted.words.protocols.jabber import jid as jabberJID

from xmppcert import passwords, x509
from xmppcert.config import Config, ConfigError, configFromDict, defaultConfigText, loadConfig
from xmppcert.store.interfaces import AccountExists, NoSuchAccount, StoreError
from xmppcert.store.sqlite import SQLiteDatabase

#: Used when neither C{--config} nor C{$XMPPCERT_CONFIG} is given.
DEFAULT_CONFIG = "var/xmppcert.toml"

#: Name of the configuration file that C{init} writes in the data directory.
CONFIG_NAME = "xmppcert.toml"


class CommandError(Exception):
    """
    An expected failure, reported as one line on stderr with exit status 1.
    """


def _defaultConfigPath() -> str:
    return os.environ.get("XMPPCERT_CONFIG") or DEFAULT_CONFIG


def _loadConfig(args: argparse.Namespace) -> Config:
    return loadConfig(args.config)


def _openDatabase(config: Config) -> SQLiteDatabase:
    return SQLiteDatabase.open(config.store.sqlite)


def _parseAccountJID(text: str, config: Config) -> str:
    """
    @return: the normalised bare JID C{text}.
    @raise CommandError: C{text} is not a bare JID with a localpart of a
        domain that C{config} serves.
    """
    try:
        parsed = jabberJID.JID(text)
    except (jabberJID.InvalidFormat, RuntimeError, UnicodeError, ValueError) as e:
        raise CommandError(f"{text!r} is not a valid JID: {e}") from None
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


def _readPassword(stdin: TextIO) -> str:
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
        password = stdin.readline()
        # Only the line ending: spaces may be part of a password.
        if password.endswith("\n"):
            password = password[:-1]
            if password.endswith("\r"):
                password = password[:-1]
    if not password:
        raise CommandError("the password must not be empty")
    return password


def _configText(domains: list[str], directory: Path) -> str:
    """
    The default configuration for C{domains}, checked by parsing it.

    @raise ConfigError: a domain is not valid.
    """
    text = defaultConfigText(domains[0])
    # defaultConfigText takes one domain; JSON strings are valid TOML strings.
    line = "domains = " + json.dumps(domains)
    text = re.sub(r"^domains = .*$", lambda match: line, text, count=1, flags=re.MULTILINE)
    try:
        configFromDict(tomllib.loads(text), directory)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"domains: not usable in a configuration file ({e})") from None
    return text


def _init(args: argparse.Namespace, out: TextIO) -> None:
    dataDir = Path(args.data_dir)
    configPath = dataDir / CONFIG_NAME
    text = None
    if not configPath.exists():
        # Check the domains before creating anything.
        text = _configText(args.domain or ["localhost"], dataDir.resolve())

    if dataDir.is_dir():
        print(f"kept directory {dataDir}", file=out)
    else:
        # The database holds password-equivalent keys: keep others out.
        dataDir.mkdir(parents=True, mode=0o700)
        print(f"created directory {dataDir}", file=out)

    if text is None:
        note = " (--domain ignored; edit the file instead)" if args.domain else ""
        print(f"kept existing configuration {configPath}{note}", file=out)
    else:
        # O_EXCL: never overwrite a file that appeared in the meantime.
        with open(configPath, "x", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote configuration {configPath}", file=out)
    config = loadConfig(configPath)

    certPath, keyPath = config.tls.certificate, config.tls.key
    if certPath.exists() and keyPath.exists():
        print(f"kept certificate {certPath} and key {keyPath}", file=out)
    elif certPath.exists() or keyPath.exists():
        present, missing = (certPath, keyPath) if certPath.exists() else (keyPath, certPath)
        raise CommandError(
            f"{present} exists but {missing} does not; restore it, or remove {present}"
            " to generate a new self-signed pair"
        )
    else:
        x509.writeServerCertificate(certPath, keyPath, config.domains)
        print(
            f"generated self-signed certificate {certPath} and key {keyPath}"
            f" for {', '.join(config.domains)}",
            file=out,
        )

    databasePath = config.store.sqlite
    existed = databasePath.exists()
    _openDatabase(config).close()
    print(f"{'kept' if existed else 'created'} database {databasePath}", file=out)


def _userAdd(args: argparse.Namespace, out: TextIO) -> None:
    config = _loadConfig(args)
    account = _parseAccountJID(args.jid, config)
    database = _openDatabase(config)
    try:
        # Fail before asking for a password that would be thrown away.
        if database.accountExists(account):
            raise CommandError(f"account {account} already exists")
        password = _readPassword(sys.stdin)
        credentials = passwords.makeScramCredentials(password, config.sasl.scram_iterations)
        try:
            database.addAccount(account, credentials)
        except AccountExists:
            raise CommandError(f"account {account} already exists") from None
    finally:
        database.close()
    print(f"added {account}", file=out)


def _userPasswd(args: argparse.Namespace, out: TextIO) -> None:
    config = _loadConfig(args)
    account = _parseAccountJID(args.jid, config)
    database = _openDatabase(config)
    try:
        if not database.accountExists(account):
            raise CommandError(f"no account {account}")
        password = _readPassword(sys.stdin)
        credentials = passwords.makeScramCredentials(password, config.sasl.scram_iterations)
        try:
            database.setCredentials(account, credentials)
        except NoSuchAccount:
            raise CommandError(f"no account {account}") from None
    finally:
        database.close()
    print(f"changed the password of {account}", file=out)


def _userDelete(args: argparse.Namespace, out: TextIO) -> None:
    config = _loadConfig(args)
    account = _parseAccountJID(args.jid, config)
    database = _openDatabase(config)
    try:
        database.removeAccount(account)
    except NoSuchAccount:
        raise CommandError(f"no account {account}") from None
    finally:
        database.close()
    print(f"deleted {account}", file=out)


def _userList(args: argparse.Namespace, out: TextIO) -> None:
    config = _loadConfig(args)
    domain = None
    if args.domain is not None:
        try:
            parsed = jabberJID.JID(args.domain)
        except (jabberJID.InvalidFormat, RuntimeError, UnicodeError, ValueError) as e:
            raise CommandError(f"{args.domain!r} is not a valid domain: {e}") from None
        if parsed.user is not None or parsed.resource is not None:
            raise CommandError(f"{args.domain!r} is not a domain")
        domain = parsed.host
    database = _openDatabase(config)
    try:
        accounts = database.listAccounts(domain)
    finally:
        database.close()
    for account in accounts:
        print(account, file=out)


def buildParser() -> argparse.ArgumentParser:
    """
    @return: the parser of the C{xmppcert} command line; each subcommand
        sets C{func}, a callable taking the parsed arguments and stdout.
    """
    # --config is accepted before and after the subcommand; SUPPRESS keeps a
    # subcommand's default from overwriting a value given before it.
    configOption = argparse.ArgumentParser(add_help=False)
    configOption.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"configuration file (default: $XMPPCERT_CONFIG or {DEFAULT_CONFIG})",
    )

    parser = argparse.ArgumentParser(
        prog="xmppcert", description="Set up and manage an xmppcert server."
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"configuration file (default: $XMPPCERT_CONFIG or {DEFAULT_CONFIG})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init = commands.add_parser(
        "init",
        parents=[configOption],
        help="create the data directory, configuration, certificate and database",
        description=(
            "Create DIR with xmppcert.toml, a self-signed certificate and the"
            " database. Existing files are kept, so it is safe to run again."
        ),
    )
    init.add_argument("--data-dir", metavar="DIR", default="var", help="default: var")
    init.add_argument(
        "--domain",
        metavar="DOMAIN",
        action="append",
        help="a domain to serve (repeatable; default: localhost)",
    )
    init.set_defaults(func=_init)

    user = commands.add_parser("user", parents=[configOption], help="manage accounts")
    userCommands = user.add_subparsers(dest="userCommand", metavar="COMMAND", required=True)
    for name, func, helpText in [
        ("add", _userAdd, "create an account; the password is read from the terminal or stdin"),
        ("passwd", _userPasswd, "change the password of an account"),
        ("delete", _userDelete, "delete an account and its credentials"),
    ]:
        sub = userCommands.add_parser(name, parents=[configOption], help=helpText)
        sub.add_argument("jid", metavar="JID", help="bare JID, user@domain")
        sub.set_defaults(func=func)
    listCommand = userCommands.add_parser(
        "list", parents=[configOption], help="list accounts, one JID a line"
    )
    listCommand.add_argument("domain", metavar="DOMAIN", nargs="?", help="only this domain")
    listCommand.set_defaults(func=_userList)
    return parser


def main(argv: list[str] | None = None) -> int:
    """
    Run the C{xmppcert} command.

    @param argv: the arguments after the program name; C{sys.argv[1:]} if
        C{None}.
    @return: the exit status: 0 on success, 1 on an error, 2 on a usage
        error.
    """
    parser = buildParser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        # argparse exits for --help (0) and usage errors (2).
        return e.code if isinstance(e.code, int) else 2
    if args.config is None:
        args.config = _defaultConfigPath()
    func: Callable[[argparse.Namespace, TextIO], None] = args.func
    try:
        func(args, sys.stdout)
    except (CommandError, ConfigError, StoreError, ValueError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.filename}: {e.strerror}" if e.filename else str(e))
    except sqlite3.Error as e:
        return _fail(f"database error: {e}")
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    return 0


def _fail(message: str) -> int:
    print(f"xmppcert: error: {message}", file=sys.stderr)
    return 1


__all__ = ["CommandError", "buildParser", "main"]
