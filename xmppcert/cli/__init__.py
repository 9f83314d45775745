# -*- test-case-name: tests.test_cli -*-
"""
The C{xmppcert} command: set up a data directory, manage accounts and their
client certificates (XEP-0257), and make client certificates for SASL
EXTERNAL (XEP-0178).

It works on the database file directly through the synchronous
L{SQLiteDatabase}, without a reactor; it may run while the server is using
the same file (a running server notices state changes through
L{SQLiteDatabase.changesSince}). Commands that need the running server
(C{status}, C{sessions}, C{kick}), or whose changes it should act on at
once (C{user lock}, C{user passwd}, C{cert revoke}), reach it through its
control channel (L{xmppcert.control}).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable
from typing import TextIO

from xmppcert import version
from xmppcert.cli import audit, certificates, check, run, server, setup, users
from xmppcert.cli.common import DEFAULT_CONFIG, CommandError, defaultConfigPath, now
from xmppcert.config import ConfigError
from xmppcert.control import ControlError
from xmppcert.store.interfaces import StoreError


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for group in (setup, users, certificates, audit, server, check, run):
        group.addCommands(commands, configOption)
    return parser


def main(argv: list[str] | None = None) -> int:
    """
    Run the C{xmppcert} command.

    @param argv: the arguments after the program name; C{sys.argv[1:]} if
        C{None}.
    @return: the exit status: 0 on success, 1 on an error, 2 on a usage
        error, 3 when C{cert inspect} finds the certificate would not log in.
    """
    parser = buildParser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        # argparse exits for --help (0) and usage errors (2).
        return e.code if isinstance(e.code, int) else 2
    # init writes its file where --config says, and only then.
    args.configGiven = args.config is not None
    if args.config is None:
        args.config = defaultConfigPath()
    func: Callable[[argparse.Namespace, TextIO], int | None] = args.func
    try:
        status = func(args, sys.stdout)
    except (CommandError, ConfigError, ControlError, StoreError, ValueError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.filename}: {e.strerror}" if e.filename else str(e))
    except sqlite3.Error as e:
        return _fail(f"database error: {e}")
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    return status or 0


def _fail(message: str) -> int:
    print(f"xmppcert: error: {message}", file=sys.stderr)
    return 1


__all__ = ["CommandError", "buildParser", "main", "now", "version"]
