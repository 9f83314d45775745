# -*- test-case-name: tests.test_cli -*-
"""
C{xmppcert check}: what the server would find wrong at start, without
starting it (like C{prosodyctl check}), and what a client would see.

Run it as the user the server runs as (C{sudo -u xmppcert xmppcert check
--config ...}): whether the database and the key can be read and written is
a question about that user.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from xmppcert import checks
from xmppcert.config import ConfigError, loadConfig

#: How each level is shown, padded to one width.
LABELS = {checks.ERROR: "error", checks.WARN: "warn ", checks.OK: "ok   ", checks.INFO: "info "}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _check(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.config)
    try:
        config = loadConfig(path)
    except ConfigError as e:
        findings = [checks.Finding(checks.ERROR, str(e))]
    else:
        findings = [checks.Finding(checks.OK, f"configuration: {path} is valid")]
        findings += checks.offlineFindings(config)
        findings += checks.clientView(config)
    for finding in findings:
        print(f"{LABELS[finding.level]} {finding.message}", file=out)
    errors = len(checks.errors(findings))
    warnings = sum(1 for f in findings if f.level == checks.WARN)
    if errors or warnings:
        print(f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}", file=out)
    else:
        print("no problems found", file=out)
    return 1 if errors else 0


def addCommands(commands: Any, configOption: argparse.ArgumentParser) -> None:
    """
    Add C{check}.
    """
    check = commands.add_parser(
        "check",
        parents=[configOption],
        help="check the configuration, files, database and ports without starting the server",
        description=(
            "Check what the server checks when it starts (configuration, server"
            " certificate and key, client CAs and CRLs, database, checker"
            " factories) and whether the listeners' ports are free; then show"
            " what a client sees: TLS versions, whether a client certificate is"
            " requested, and the SASL mechanisms offered. Exit status 1 when"
            " anything is an error; warnings are shown but exit 0."
        ),
    )
    check.set_defaults(func=_check)
