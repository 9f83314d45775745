# -*- test-case-name: tests.integration.test_run -*-
"""
C{xmppcert run}: the server in the foreground, without twistd (so a
C{pipx install xmppcert} is enough), as a systemd service runs it.

The log goes to stdout, as text or JSON (C{log_format}). SIGTERM and SIGINT
shut down cleanly (every client stream gets C{system-shutdown}); SIGHUP
reloads the configuration. A problem at start is one line on stderr and
exit status 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from twisted.logger import Logger

from xmppcert import _log
from xmppcert.cli.common import CommandError, loadConfigOf
from xmppcert.logging import startLogging

log = Logger(observer=_log.observer)


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from twisted.internet import reactor

    from xmppcert import version
    from xmppcert.service import StartupError, makeService

    config = loadConfigOf(args)
    startLogging(config.log_format, out)
    path = Path(args.config).resolve()
    log.info("xmppcert {version} starting with {path}", version=version(), path=str(path))
    root = makeService(config)
    root.configPath = path
    try:
        root.privilegedStartService()
        root.startService()
    except StartupError as e:
        raise CommandError(str(e)) from None
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    reactor.run()
    log.info("xmppcert stopped")
    return 0


def addCommands(commands: Any, configOption: argparse.ArgumentParser) -> None:
    """
    Add C{run}.
    """
    run = commands.add_parser(
        "run",
        parents=[configOption],
        help="run the server in the foreground (SIGTERM stops it, SIGHUP reloads)",
        description=(
            "Run the server in the foreground with its log on stdout, as"
            " twistd -n xmppcert does, without needing twistd. SIGTERM or"
            " SIGINT stops it cleanly, SIGHUP reloads the configuration."
        ),
    )
    run.set_defaults(func=_run)
