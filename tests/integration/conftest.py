"""
The real server, run as C{twistd xmppcert} in a child process on loopback
ports, with its own server certificate and SQLite file; and helpers to drive
slixmpp, an independent client, against it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from xmppcert.x509 import writeServerCertificate

ROOT = Path(__file__).resolve().parents[2]
XMPPCERT = Path(sys.executable).parent / "xmppcert"
TWISTD = Path(sys.executable).parent / "twistd"


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def waitForPort(port: int, process: subprocess.Popen[bytes], logPath: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited:\n" + logPath.read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen in time:\n" + logPath.read_text())


@dataclass
class RunningServer:
    """
    A running C{twistd xmppcert}.
    """

    dataDir: Path
    configPath: Path
    starttlsPort: int
    directTLSPort: int
    caFile: Path
    httpsPort: int
    logPath: Path
    process: subprocess.Popen[bytes] | None = None
    extraConfig: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(XMPPCERT), "--config", str(self.configPath), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def addUser(self, jid: str, password: str) -> None:
        result = self.cli("user", "add", jid, stdin=password + "\n")
        assert result.returncode == 0, result.stderr

    def logText(self) -> str:
        return self.logPath.read_text(errors="replace")

    def start(self) -> None:
        log = self.logPath.open("ab")
        env = dict(os.environ)
        env.update(self.env)
        self.process = subprocess.Popen(
            [
                str(TWISTD), "--nodaemon", "--pidfile=",
                "xmppcert", "--config", str(self.configPath),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(self.dataDir),
            env=env,
        )
        log.close()
        waitForPort(self.starttlsPort, self.process, self.logPath)
        waitForPort(self.directTLSPort, self.process, self.logPath)
        waitForPort(self.httpsPort, self.process, self.logPath)
        # The control socket comes last, once startup checks have passed
        # (after the privilege drop); wait for it, if it is on.
        deadline = time.monotonic() + 10
        while "[control]" not in self.extraConfig and not (self.dataDir / "control.sock").exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                break
            time.sleep(0.02)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def errorLines(self) -> list[str]:
        """
        Log lines at error or critical level: a remote peer must never cause one.
        """
        return [
            line for line in self.logText().splitlines()
            if "#error]" in line or "#critical]" in line or "Traceback" in line
        ]


def makeServer(tmp: Path, extraConfig: str = "", domains: tuple[str, ...] = ("localhost",)) -> RunningServer:
    dataDir = tmp / "var"
    dataDir.mkdir(parents=True, exist_ok=True)
    # The server refuses to start with a certificate that does not name
    # every served domain.
    writeServerCertificate(dataDir / "server.crt", dataDir / "server.key", list(domains))
    starttls, direct, https = freePort(), freePort(), freePort()
    config = dataDir / "xmppcert.toml"
    config.write_text(
        f"""\
domains = [{", ".join(f'"{d}"' for d in domains)}]
data_dir = "."
log_level = "info"

[listen]
starttls = ["tcp:{starttls}:interface=127.0.0.1"]
direct_tls = ["tcp:{direct}:interface=127.0.0.1"]
https = ["tcp:{https}:interface=127.0.0.1"]

[sasl]
max_failures = 3

{extraConfig}
"""
    )
    return RunningServer(
        dataDir=dataDir,
        configPath=config,
        starttlsPort=starttls,
        directTLSPort=direct,
        caFile=dataDir / "server.crt",
        httpsPort=https,
        logPath=tmp / "server.log",
    )


def serveAliceAndBob(tmp: Path, extraConfig: str = "") -> Iterator[RunningServer]:
    """
    Run a server with alice and bob (passwords C{alice-pw}, C{bob-pw}) for
    a fixture to yield; afterwards no log line may be at error level.
    """
    s = makeServer(tmp, extraConfig)
    s.addUser("alice@localhost", "alice-pw")
    s.addUser("bob@localhost", "bob-pw")
    s.start()
    try:
        yield s
    finally:
        s.stop()
    assert s.errorLines() == [], s.logText()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """
    One server per test module, with alice and bob.
    """
    yield from serveAliceAndBob(tmp_path_factory.mktemp("server"))


def runAsync(coroutine: Any, timeout: float = 60) -> Any:
    """
    Run one test's client code on a fresh asyncio loop.
    """
    return asyncio.run(asyncio.wait_for(coroutine, timeout))
