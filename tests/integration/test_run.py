"""
C{xmppcert run}: the server without twistd, as systemd runs it: log on
stdout (text or JSON), clean shutdown on SIGTERM, reload on SIGHUP, one
line and exit status 1 when it cannot start.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import XMPPCERT, RunningServer, makeServer, waitForPort
from tests.integration.raw import RawStream
from tests.integration.test_reload import waitForLog

pytestmark = pytest.mark.integration


def startRun(server: RunningServer) -> subprocess.Popen[bytes]:
    log = server.logPath.open("ab")
    process = subprocess.Popen(
        [str(XMPPCERT), "run", "--config", str(server.configPath)],
        stdout=log, stderr=subprocess.STDOUT, cwd=str(server.dataDir),
    )
    log.close()
    server.process = process
    waitForPort(server.starttlsPort, process, server.logPath)
    waitForPort(server.directTLSPort, process, server.logPath)
    return process


def test_runShutsDownCleanly(tmp_path: Path) -> None:
    """
    xmppcert run serves like twistd; SIGTERM gives a connected stream
    system-shutdown (RFC 6120 section 4.9.3.20) and exits with status 0.
    """
    server = makeServer(tmp_path)
    process = startRun(server)
    raw = RawStream(server.starttlsPort)
    raw.header()
    raw.readUntil(b"</stream:features>")
    process.send_signal(signal.SIGTERM)
    assert b"<system-shutdown" in raw.waitClosed()
    assert process.wait(timeout=20) == 0
    log = server.logText()
    assert "Closed 1 client streams for shutdown" in log
    assert server.errorLines() == [], log


def test_runJSONLogAndReload(tmp_path: Path) -> None:
    """
    log_format = "json": every line of the log is one JSON object with
    time, level, namespace, message and the event's fields; SIGHUP reloads.
    """
    server = makeServer(tmp_path)
    server.configPath.write_text(server.configPath.read_text().replace(
        'log_level = "info"', 'log_level = "info"\nlog_format = "json"'
    ))
    process = startRun(server)
    process.send_signal(signal.SIGHUP)
    waitForLog(server, "Reloaded the configuration")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    records = [json.loads(line) for line in server.logText().splitlines()]
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records)
    [reloaded] = [r for r in records if r["message"].startswith("Reloaded the configuration")]
    assert reloaded["level"] == "info"
    assert reloaded["namespace"] == "xmppcert.reload"
    assert "server certificate unchanged" in reloaded["what"]


def test_runStartFailureIsOneLine(tmp_path: Path) -> None:
    """
    xmppcert run with a port in use: exit status 1 and one line on stderr
    naming the endpoint.
    """
    server = makeServer(tmp_path)
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", server.directTLSPort))
        busy.listen()
        result = subprocess.run(
            [str(XMPPCERT), "run", "--config", str(server.configPath)],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"xmppcert: error: listen.direct_tls: tcp:{server.directTLSPort}:interface=127.0.0.1:"
        " cannot listen: Address already in use\n"
    )
    assert "Traceback" not in result.stdout
