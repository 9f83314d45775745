"""
Tests for C{contrib/xmppcert.service}, the systemd unit: it verifies with
C{systemd-analyze}, runs C{xmppcert run} as the dedicated user, reloads with
SIGHUP, and is sandboxed.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xmppcert import cli

UNIT = Path(__file__).resolve().parents[1] / "contrib" / "xmppcert.service"


def directives() -> dict[str, list[str]]:
    """
    @return: every C{Key=value} of the unit's [Service] section, by key
        (systemd allows a key several times).
    """
    found: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemdAnalyzeVerify(tmp_path: Path) -> None:
    """
    The unit passes systemd-analyze verify (with ExecStart= pointing at
    this installation's xmppcert command, which verify requires to exist).
    """
    command = Path(sys.executable).parent / "xmppcert"
    unit = tmp_path / "xmppcert.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/xmppcert", str(command)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "xmppcert.service" not in result.stderr, result.stderr


def test_unitRunsTheServer() -> None:
    """
    ExecStart= is xmppcert run with the configuration in /etc/xmppcert, as
    the dedicated user, logging to the journal; ExecReload= sends SIGHUP.
    """
    unit = directives()
    [start] = unit["ExecStart"]
    arguments = shlex.split(start)
    assert arguments[0].endswith("/xmppcert")
    parsed = cli.buildParser().parse_args(arguments[1:])
    assert parsed.command == "run" and parsed.config == "/etc/xmppcert/xmppcert.toml"
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["User"] == ["xmppcert"] and unit["Group"] == ["xmppcert"]
    assert unit["StandardOutput"] == ["journal"]
    assert unit["ReadWritePaths"] == ["/var/lib/xmppcert"]


def test_unitIsSandboxed() -> None:
    """
    The unit has the usual sandboxing: no new privileges, a read-only
    system but for the data directory, no home, private /tmp, only UNIX and
    IP sockets, no capabilities, the system-service system calls.
    """
    unit = directives()
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "LockPersonality": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "CapabilityBoundingSet": "",
        "SystemCallFilter": "@system-service",
    }.items():
        assert unit.get(key) == [value], key
    assert "AmbientCapabilities" not in unit


def test_memoryDenyWriteExecuteStillBreaksTLS(tmp_path: Path) -> None:
    """
    The unit leaves MemoryDenyWriteExecute off because pyOpenSSL's verify
    callback, which requests the client certificate, needs memory that is
    writable and executable. This fails the day that is no longer so: then
    add MemoryDenyWriteExecute=yes to the unit.
    """
    assert "MemoryDenyWriteExecute" not in directives()
    script = textwrap.dedent(
        """
        import ctypes, sys
        from OpenSSL import SSL
        libc = ctypes.CDLL(None, use_errno=True)
        # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux 6.3): what
        # MemoryDenyWriteExecute=yes does.
        if libc.prctl(65, 1, 0, 0, 0) != 0:
            sys.exit(77)
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        try:
            context.set_verify(SSL.VERIFY_PEER, lambda *args: True)
        except MemoryError:
            sys.exit(3)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE")
    assert result.returncode == 3, result.stderr
