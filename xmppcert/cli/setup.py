# -*- test-case-name: tests.test_cli -*-
"""
C{xmppcert init}: a data directory with its configuration, server
certificate and database.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, TextIO

from xmppcert import x509
from xmppcert.cli.common import CONFIG_NAME, CommandError, openDatabase
from xmppcert.config import ConfigError, configFromDict, defaultConfigText, loadConfig


def _configText(domains: list[str], directory: Path, dataDir: str = ".") -> str:
    """
    The default configuration for C{domains}, checked by parsing it.

    @param directory: where the file will be.
    @param dataDir: the value of C{data_dir} (relative to C{directory}).
    @raise ConfigError: a domain is not valid.
    """
    text = defaultConfigText(domains[0])
    # defaultConfigText takes one domain; JSON strings are valid TOML strings.
    line = "domains = " + json.dumps(domains)
    text = re.sub(r"^domains = .*$", lambda match: line, text, count=1, flags=re.MULTILINE)
    if dataDir != ".":
        line = "data_dir = " + json.dumps(dataDir)
        text = re.sub(r"^data_dir = .*$", lambda match: line, text, count=1, flags=re.MULTILINE)
    try:
        configFromDict(tomllib.loads(text), directory)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"domains: not usable in a configuration file ({e})") from None
    return text


def _dataDirSetting(dataDir: Path, configDir: Path) -> str:
    """
    C{data_dir} for a file in C{configDir}: relative to it when the data
    directory is inside it, else absolute.
    """
    relative = os.path.relpath(dataDir.resolve(), configDir.resolve())
    return str(dataDir.resolve()) if relative.split(os.sep)[0] == ".." else relative


def _init(args: argparse.Namespace, out: TextIO) -> None:
    if getattr(args, "configGiven", False):
        # The file goes where --config says; the data directory is
        # --data-dir, or the file's own directory.
        configPath = Path(args.config)
        dataDir = Path(args.data_dir) if args.data_dir is not None else configPath.parent
    else:
        dataDir = Path(args.data_dir if args.data_dir is not None else "var")
        configPath = dataDir / CONFIG_NAME
    text = None
    if not configPath.exists():
        # Check the domains before creating anything.
        text = _configText(
            args.domain or ["localhost"], configPath.parent.resolve(),
            _dataDirSetting(dataDir, configPath.parent),
        )

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
        if not configPath.parent.is_dir():
            configPath.parent.mkdir(parents=True)
            print(f"created directory {configPath.parent}", file=out)
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
    openDatabase(config).close()
    print(f"{'kept' if existed else 'created'} database {databasePath}", file=out)
    if not existed:
        example = f"alice@{config.domains[0]}"
        print(
            f"next: add a user with  xmppcert --config {configPath} user add {example}\n"
            f"      and a device certificate with  xmppcert --config {configPath} gencert {example} --out alice-phone\n"
            f"      then  xmppcert --config {configPath} cert add {example} Phone alice-phone.crt",
            file=out,
        )



def addCommands(commands: Any, configOption: argparse.ArgumentParser) -> None:
    """
    Add C{init}.
    """
    init = commands.add_parser(
        "init",
        parents=[configOption],
        help="create the data directory, configuration, certificate and database",
        description=(
            "Create DIR with xmppcert.toml, a self-signed certificate and the"
            " database. With --config, the configuration is written to that"
            " file instead, and DIR defaults to its directory. Existing files"
            " are kept, so it is safe to run again."
        ),
    )
    init.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="default: the directory of --config if given, else var",
    )
    init.add_argument(
        "--domain",
        metavar="DOMAIN",
        action="append",
        help="a domain to serve (repeatable; default: localhost)",
    )
    init.set_defaults(func=_init)


