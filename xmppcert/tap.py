# -*- test-case-name: tests.test_tap -*-
"""
The C{twistd xmppcert} command line: C{Options} and C{makeService}, as
C{twisted.application.service.ServiceMaker} expects.
"""

from __future__ import annotations

import os
import sys
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


def makeService(options: Options | dict[str, Any]) -> service.IService:
    config = options["parsedConfig"]
    try:
        return makeServerService(config)
    except (TLSConfigurationError, ValueError) as e:
        # twistd shows a traceback for exceptions here; an operator needs one
        # line (an unusable certificate, CA bundle or checker name).
        sys.stderr.write(f"xmppcert: {e}\n")
        raise SystemExit(1) from None


__all__ = ["Options", "makeService"]
