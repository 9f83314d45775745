# -*- test-case-name: tests.test_tap -*-
"""
The C{twistd xmppcert} command line: C{Options} and C{makeService}, as
C{twisted.application.service.ServiceMaker} expects.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.python import usage

from xmppcert.config import ConfigError, loadConfig
from xmppcert.service import makeService as makeServerService
from xmppcert.tls import TLSConfigurationError


class Options(usage.Options):
    """
    C{twistd xmppcert --config FILE}.
    """

    optParameters = [
        [
            "config",
            "c",
            os.environ.get("XMPPCERT_CONFIG", "var/xmppcert.toml"),
            "The TOML configuration file (default: $XMPPCERT_CONFIG or var/xmppcert.toml).",
        ],
    ]

    def postOptions(self) -> None:
        try:
            self["parsedConfig"] = loadConfig(self["config"])
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        if self["parsedConfig"].log_format == "json":
            self._useJSONLog()

    def _useJSONLog(self) -> None:
        """
        C{log_format = "json"}: have twistd log through
        L{xmppcert.logging.jsonObserver} when its log goes to stdout
        (C{-n} without C{--logfile} or C{--syslog}) and no C{--logger} was
        given. twistd builds its log observer after this plugin's options,
        from its own options, so setting C{--logger} here is enough. A log
        file stays in twistd's text format.
        """
        twistd = getattr(self, "parent", None)
        if twistd is None:
            return
        toStdout = twistd.get("logfile") in (None, "", "-") and not twistd.get("syslog")
        if twistd.get("nodaemon") and toStdout and twistd.get("logger") is None:
            # twistd's own postOptions, which runs after this, imports it.
            twistd["logger"] = "xmppcert.logging.jsonObserver"


def makeService(options: Options | dict[str, Any]) -> service.IService:
    config = options["parsedConfig"]
    try:
        root = makeServerService(config)
    except (TLSConfigurationError, ValueError) as e:
        # twistd shows a traceback for exceptions here; an operator needs one
        # line (an unusable certificate, CA bundle or checker name).
        sys.stderr.write(f"xmppcert: {e}\n")
        raise SystemExit(1) from None
    # The checks at start (after twistd's -u/-g) end the process with one
    # log line and status 1, and SIGHUP reads this file again.
    root.exitOnStartupError = True
    if options.get("config"):
        root.configPath = Path(options["config"]).resolve()
    return root


__all__ = ["Options", "makeService"]
