"""
The control channel of the real server (C{twistd xmppcert}): C{xmppcert
status}, C{sessions}, C{kick}, C{user lock|unlock} and C{user passwd}
acting at once on clients logged in with slixmpp, and raw streams for the
exact SASL failure.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from slixmpp import JID

from tests.integration.clients import Client, LoginFailed, login, logout
from tests.integration.conftest import RunningServer, runAsync
from tests.integration.raw import RawStream
from xmppcert.store.sqlite import SQLiteDatabase

pytestmark = pytest.mark.integration


def certificateFor(server: RunningServer, directory: Path, account: str, name: str) -> tuple[str, str]:
    """
    Make a client certificate for C{account} with C{xmppcert gencert} and
    register it as C{name}; return the certificate and key file names.
    """
    prefix = directory / name
    result = server.cli("gencert", account, "--out", str(prefix))
    assert result.returncode == 0, result.stderr
    result = server.cli("cert", "add", account, name, str(prefix.with_suffix(".crt")))
    assert result.returncode == 0, result.stderr
    return str(prefix.with_suffix(".crt")), str(prefix.with_suffix(".key"))


async def ended(client: Client) -> list[str]:
    """
    Wait until the server ended the client's stream; return the stream
    error conditions it got.
    """
    await asyncio.wait_for(asyncio.shield(client.ended), 10)
    return client.streamErrors


def rawPlain(server: RunningServer, user: str, password: str) -> bytes:
    raw = RawStream(server.starttlsPort)
    try:
        raw.starttls(server.caFile)
        return raw.authPlain(user, password)
    finally:
        raw.close()


def rawExternal(server: RunningServer, certFile: str, keyFile: str) -> bytes:
    raw = RawStream(server.starttlsPort)
    try:
        raw.starttls(server.caFile, Path(certFile), Path(keyFile))
        return raw.authExternal()
    finally:
        raw.close()


def auditActions(server: RunningServer, account: str) -> list[tuple[str, str]]:
    database = SQLiteDatabase.open(server.dataDir / "xmppcert.sqlite")
    try:
        return [(e.actor, e.action) for e in database.auditTrail(account)]
    finally:
        database.close()


def test_controlSocketIsPrivate(server: RunningServer) -> None:
    """
    The control socket is in the data directory, a socket of mode 0600.
    """
    mode = os.stat(server.dataDir / "control.sock").st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_statusAndSessionsShowLogin(server: RunningServer) -> None:
    """
    `xmppcert status` counts a logged-in client by transport and mechanism;
    `xmppcert sessions` shows its full JID, address and mechanism.
    """

    async def run() -> None:
        client = await login(server, "alice@localhost/desk", "alice-pw", mechanism="SCRAM-SHA-256")
        try:
            status = server.cli("status")
            assert status.returncode == 0, status.stderr
            assert "version: " in status.stdout and "up: " in status.stdout
            assert f"starttls    tcp:{server.starttlsPort}:interface=127.0.0.1" in status.stdout
            assert "sessions: 1" in status.stdout
            assert "tcp        SCRAM-SHA-256  1" in status.stdout
            sessions = server.cli("sessions", "alice@localhost")
            assert sessions.returncode == 0, sessions.stderr
            row = sessions.stdout.splitlines()[1].split()
            assert row[0] == "alice@localhost/desk"
            assert row[1] == "tcp"
            assert row[2].startswith("127.0.0.1:")
            assert row[3:5] == ["SCRAM-SHA-256", "-"]
        finally:
            await logout(client)

    runAsync(run())


def test_kickEndsSession(server: RunningServer) -> None:
    """
    `xmppcert kick JID/resource` ends that session at once with
    policy-violation and says how many it ended; another resource stays;
    the audit trail has it.
    """

    async def run() -> None:
        desk = await login(server, "bob@localhost/desk", "bob-pw")
        phone = await login(server, "bob@localhost/phone", "bob-pw")
        result = server.cli("kick", "bob@localhost/desk")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "ended 1 session of bob@localhost/desk\n"
        assert "policy-violation" in await ended(desk)
        assert not phone.ended.done()
        await logout(phone)

    runAsync(run())
    assert auditActions(server, "bob@localhost")[-1][1] == "session.kick"


def test_lockAndUnlock(server: RunningServer, tmp_path: Path) -> None:
    """
    `xmppcert user lock` ends the live password and certificate sessions at
    once (not-authorized); new logins by password and by certificate fail
    with account-disabled (RFC 6120 §6.5.1); `user unlock` lets both in
    again.
    """
    certFile, keyFile = certificateFor(server, tmp_path, "alice@localhost", "Phone")

    async def run() -> None:
        desk = await login(server, "alice@localhost/desk", "alice-pw")
        phone = await login(
            server, "alice@localhost/phone", mechanism="EXTERNAL", certfile=certFile, keyfile=keyFile
        )
        result = server.cli("user", "lock", "alice@localhost")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "locked alice@localhost; ended 2 live sessions\n"
        assert "not-authorized" in await ended(desk)
        assert "not-authorized" in await ended(phone)
        with pytest.raises(LoginFailed):
            await login(server, "alice@localhost/desk", "alice-pw")

    runAsync(run())
    assert b"<account-disabled/>" in rawPlain(server, "alice", "alice-pw")
    assert b"<account-disabled/>" in rawExternal(server, certFile, keyFile)

    result = server.cli("user", "unlock", "alice@localhost")
    assert result.returncode == 0, result.stderr

    async def again() -> None:
        desk = await login(server, "alice@localhost/desk", "alice-pw")
        phone = await login(
            server, "alice@localhost/phone", mechanism="EXTERNAL", certfile=certFile, keyfile=keyFile
        )
        await logout(desk)
        await logout(phone)

    runAsync(again())
    assert [action for _, action in auditActions(server, "alice@localhost")][-2:] == ["user.lock", "user.unlock"]


def test_passwdEndsPasswordSession(server: RunningServer, tmp_path: Path) -> None:
    """
    `xmppcert user passwd` ends the account's password sessions at once
    (reset); its certificate session stays; the new password logs in.
    """
    certFile, keyFile = certificateFor(server, tmp_path, "bob@localhost", "Laptop")

    async def run() -> None:
        desk = await login(server, "bob@localhost/desk", "bob-pw")
        laptop = await login(
            server, "bob@localhost/laptop", mechanism="EXTERNAL", certfile=certFile, keyfile=keyFile
        )
        result = server.cli("user", "passwd", "bob@localhost", stdin="bob-pw-2\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "changed the password of bob@localhost\nended 1 password session\n"
        assert "reset" in await ended(desk)
        # The certificate session is still served: a ping over its stream,
        # sent after the server acted, is answered (a close would come
        # first and fail it).
        assert await laptop.plugin["xep_0199"].ping(JID("localhost"), timeout=10) is not None
        assert not laptop.ended.done() and laptop.streamErrors == []
        await logout(laptop)
        again = await login(server, "bob@localhost/desk", "bob-pw-2")
        await logout(again)

    runAsync(run())
