"""
Certificate management and administration over ad-hoc commands (XEP-0050)
against the real server, driven by slixmpp's own XEP-0050 client plugin
over real TLS: users with a password or a client certificate (SASL
EXTERNAL), and an administrator named in the configuration.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from tests.integration.clients import Client, LoginFailed, login, logout
from tests.integration.conftest import RunningServer, makeServer, runAsync
from tests.integration.test_external import makeCertificate, register
from xmppcert import x509
from xmppcert.adhoc.admin import ADD_USER, NS_ADMIN
from xmppcert.adhoc.certificates import (
    ADD,
    ADMIN_ADD,
    ADMIN_DISABLE,
    ADMIN_LIST,
    ADMIN_REVOKE,
    ADMIN_SESSIONS,
    DISABLE,
    LIST,
    REVOKE,
    SESSIONS,
)
from xmppcert.config import LimitsConfig

pytestmark = pytest.mark.integration

ADMIN = "admin@localhost"
SERVER = JID("localhost")
TIMEOUT = 15

USER_NODES = [LIST, ADD, DISABLE, REVOKE, SESSIONS]
ADMIN_NODES = [ADMIN_LIST, ADMIN_ADD, ADMIN_DISABLE, ADMIN_REVOKE, ADMIN_SESSIONS]


def serveWithAdmin(tmp: Path, extraConfig: str = "") -> Iterator[RunningServer]:
    """
    Run a server with alice, bob and the administrator admin@localhost;
    afterwards no log line may be at error level.

    C{admins} is a top-level key, so it goes before the tables of the
    configuration.
    """
    s = makeServer(tmp, extraConfig)
    s.configPath.write_text(f'admins = ["{ADMIN}"]\n' + s.configPath.read_text())
    s.addUser("alice@localhost", "alice-pw")
    s.addUser("bob@localhost", "bob-pw")
    s.addUser(ADMIN, "admin-pw")
    s.start()
    try:
        yield s
    finally:
        s.stop()
    assert s.errorLines() == [], s.logText()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from serveWithAdmin(tmp_path_factory.mktemp("adhoc"))


class CommandRun:
    """
    One execution of a command through slixmpp's XEP-0050 plugin
    (C{start_command}, C{continue_command}, C{complete_command},
    C{cancel_command}), its callbacks turned into answers to await.
    """

    def __init__(self, client: Client, node: str) -> None:
        self.client = client
        self.plugin = client.plugin["xep_0050"]
        self.node = node
        self.session: dict[str, Any] = {"next": self._answered, "error": self._failed}
        self._answer: asyncio.Future[Any] | None = None
        self.last: Any = None

    def _answered(self, iq: Any, session: dict[str, Any]) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(iq)

    def _failed(self, iq: Any, session: dict[str, Any]) -> None:
        # The plugin forgets a session only when no error handler is set;
        # one refused at execute has no id, and would take the answers to
        # the next command started if it stayed.
        self.plugin.terminate_command(session)
        self._answered(iq, session)

    async def _wait(self, send: Any) -> Any:
        self._answer = asyncio.get_running_loop().create_future()
        send()
        self.last = await asyncio.wait_for(self._answer, TIMEOUT)
        return self.last

    def _filled(self, values: Mapping[str, Any]) -> Any:
        """
        The last form shown, filled in and turned into a submission, as a
        client does.
        """
        form = self.last["command"]["form"]
        form.reply()
        form.set_values(dict(values))
        return form

    async def start(self) -> Any:
        return await self._wait(lambda: self.plugin.start_command(SERVER, self.node, self.session))

    async def next(self, values: Mapping[str, Any]) -> Any:
        self.session["payload"] = self._filled(values)
        return await self._wait(lambda: self.plugin.continue_command(self.session))

    async def complete(self, values: Mapping[str, Any]) -> Any:
        self.session["payload"] = self._filled(values)
        return await self._wait(lambda: self.plugin.complete_command(self.session))

    async def prev(self) -> Any:
        self.session["payload"] = None
        return await self._wait(lambda: self.plugin.continue_command(self.session, "prev"))

    async def cancel(self) -> Any:
        self.session["payload"] = None
        return await self._wait(lambda: self.plugin.cancel_command(self.session))


async def withCommands(client: Client) -> Client:
    client.register_plugin("xep_0050")
    return client


async def passwordClient(server: RunningServer, jid: str, password: str) -> Client:
    return await withCommands(await login(server, jid, password))


async def certificateClient(server: RunningServer, jid: str, certPath: Path, keyPath: Path) -> Client:
    return await withCommands(
        await login(server, jid, "", mechanism="EXTERNAL", certfile=str(certPath), keyfile=str(keyPath))
    )


async def commandNodes(client: Client) -> list[str]:
    items = await client.plugin["xep_0050"].get_commands(SERVER, timeout=TIMEOUT)
    # In the order of the answer (the "items" interface is a set).
    return [item["node"] for item in items["disco_items"]]


def status(iq: Any) -> str:
    assert iq["type"] == "result", iq
    return str(iq["command"]["status"])


def notes(iq: Any) -> list[tuple[str, str]]:
    return [(kind, text) for kind, text in iq["command"]["notes"]]


def condition(iq: Any) -> str:
    assert iq["type"] == "error", iq
    return str(iq["error"]["condition"])


def rows(iq: Any) -> list[dict[str, str]]:
    """
    The items of the table (XEP-0004 section 3.4) a command completed with.
    """
    form = iq["command"]["form"]
    assert list(form.get_reported()) == [
        "name", "state", "fingerprint", "expires", "last-used", "may-manage", "resources",
    ]
    return list(form["items"])


def options(iq: Any, var: str) -> list[str]:
    return [o["value"] for o in iq["command"]["form"].get_fields()[var]["options"]]


def pemOf(certPath: Path) -> str:
    return certPath.read_text()


def audit(server: RunningServer, account: str) -> list[str]:
    result = server.cli("audit", account)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


# --- discovery ---------------------------------------------------------------------


def test_discoverCommands(server: RunningServer) -> None:
    """
    XEP-0050 section 3.2: a user's command list holds the certificate
    commands for their own account and none of the administrators'; the
    administrator's also holds the commands on any account and XEP-0133's.
    """

    async def run() -> None:
        alice = await passwordClient(server, "alice@localhost/disco", "alice-pw")
        assert await commandNodes(alice) == USER_NODES
        admin = await passwordClient(server, f"{ADMIN}/disco", "admin-pw")
        nodes = await commandNodes(admin)
        assert ADD_USER in nodes
        assert nodes[-len(USER_NODES + ADMIN_NODES):] == USER_NODES + ADMIN_NODES
        await logout(alice)
        await logout(admin)

    runAsync(run())


# --- an account's own certificates ---------------------------------------------------------


def test_addLoginListDisable(server: RunningServer, tmp_path: Path) -> None:
    """
    A user adds a certificate by pasting its PEM (the note gives its
    fingerprint), logs in with it (EXTERNAL), sees it in the list with that
    session, and disables it: it can no longer log in, the live session
    stays.
    """
    certPath, keyPath, cert = makeCertificate(tmp_path, "phone", ["alice@localhost"])
    fingerprint = x509.displayFingerprint(x509.fingerprint(cert))

    async def run() -> None:
        desk = await passwordClient(server, "alice@localhost/desk", "alice-pw")
        add = CommandRun(desk, ADD)
        shown = await add.start()
        assert status(shown) == "executing"
        assert set(shown["command"]["form"].get_fields()) >= {"name", "certificate", "may-manage"}
        done = await add.complete({"name": "Phone", "certificate": pemOf(certPath)})
        assert status(done) == "completed"
        [(kind, text)] = notes(done)
        assert kind == "info" and fingerprint in text

        phone = await certificateClient(server, "alice@localhost/phone", certPath, keyPath)
        listed = await CommandRun(desk, LIST).start()
        assert status(listed) == "completed"
        byName = {r["name"]: r for r in rows(listed)}
        assert byName["Phone"]["state"] == "enabled"
        assert byName["Phone"]["fingerprint"] == fingerprint
        assert byName["Phone"]["resources"] == "phone"

        disable = CommandRun(desk, DISABLE)
        shown = await disable.start()
        assert "Phone" in options(shown, "certificates")
        done = await disable.complete({"certificates": ["Phone"]})
        assert status(done) == "completed"
        assert notes(done)[0][1].startswith("Disabled: 'Phone'")
        # XEP-0257 section 2.3: the session stays, a new login fails.
        assert await phone.plugin["xep_0199"].ping(SERVER, timeout=TIMEOUT) is not None
        with pytest.raises(LoginFailed):
            await certificateClient(server, "alice@localhost/phone2", certPath, keyPath)
        await logout(phone)
        await logout(desk)

    runAsync(run())


def test_addBadPEMShowsFormAgain(server: RunningServer) -> None:
    """
    A paste that is no certificate shows the form again with the reason as
    an error note; the command goes on.
    """

    async def run() -> None:
        desk = await passwordClient(server, "alice@localhost/bad", "alice-pw")
        add = CommandRun(desk, ADD)
        await add.start()
        again = await add.complete({"name": "Broken", "certificate": "-----BEGIN CERTIFICATE-----\nnope\n"})
        assert status(again) == "executing"
        [(kind, text)] = notes(again)
        assert kind == "error" and "not a certificate" in text
        assert status(await add.cancel()) == "canceled"
        await logout(desk)

    runAsync(run())


def test_revokeEndsSession(server: RunningServer, tmp_path: Path) -> None:
    """
    XEP-0257 section 2.4 from any client: revoking a certificate (choice,
    then confirmation) ends its live session at once with reset; it can
    never log in again.
    """
    certPath, keyPath, cert = makeCertificate(tmp_path, "tablet", ["alice@localhost"])
    register(server, "alice@localhost", "Tablet", certPath)

    async def run() -> None:
        tablet = await certificateClient(server, "alice@localhost/tablet", certPath, keyPath)
        desk = await passwordClient(server, "alice@localhost/desk2", "alice-pw")
        revoke = CommandRun(desk, REVOKE)
        await revoke.start()
        confirm = await revoke.next({"certificates": ["Tablet"]})
        assert status(confirm) == "executing"
        assert any(x509.displayFingerprint(x509.fingerprint(cert)) in str(f["value"])
                   for f in confirm["command"]["form"].get_fields().values() if f["type"] == "fixed")
        done = await revoke.complete({"confirm": True})
        assert status(done) == "completed"
        await asyncio.wait_for(asyncio.shield(tablet.ended), TIMEOUT)
        assert "reset" in tablet.streamErrors
        with pytest.raises(LoginFailed):
            await certificateClient(server, "alice@localhost/tablet", certPath, keyPath)
        await logout(desk)

    runAsync(run())


def test_prevAndCancel(server: RunningServer, tmp_path: Path) -> None:
    """
    XEP-0050 sections 3.4.2 and 3.4.4: prev goes back from the
    confirmation to the choice; cancel ends the command and nothing is
    revoked; the canceled session is over (session-expired).
    """
    certPath, _, _ = makeCertificate(tmp_path, "watch", ["alice@localhost"])
    register(server, "alice@localhost", "Watch", certPath)

    async def run() -> None:
        desk = await passwordClient(server, "alice@localhost/desk3", "alice-pw")
        revoke = CommandRun(desk, REVOKE)
        await revoke.start()
        confirm = await revoke.next({"certificates": ["Watch"]})
        assert "prev" in confirm["command"]["actions"]
        back = await revoke.prev()
        assert status(back) == "executing"
        assert "Watch" in options(back, "certificates")
        sessionid = back["command"]["sessionid"]
        assert status(await revoke.cancel()) == "canceled"
        with pytest.raises(IqError) as caught:
            await desk.plugin["xep_0050"].send_command(
                SERVER, REVOKE, sessionid=sessionid, action="next", timeout=TIMEOUT
            )
        assert caught.value.iq["error"]["condition"] == "not-allowed"
        assert "session-expired" in str(caught.value.iq)
        listed = await CommandRun(desk, LIST).start()
        assert {r["name"]: r["state"] for r in rows(listed)}["Watch"] == "enabled"
        await logout(desk)

    runAsync(run())


@pytest.mark.skipif(
    not hasattr(LimitsConfig, "command_session_timeout"),
    reason="the command session timeout is not a setting yet",
)
def test_idleSessionExpires(tmp_path: Path) -> None:
    """
    XEP-0050 section 4.6: a command session left alone past the timeout
    has expired (not-allowed, session-expired), and what it was about to
    do is not done.
    """
    for running in serveWithAdmin(tmp_path, "[limits]\ncommand_session_timeout = 1\n"):
        certPath, _, _ = makeCertificate(tmp_path, "idle", ["alice@localhost"])
        register(running, "alice@localhost", "Idle", certPath)

        async def run(running: RunningServer = running) -> None:
            desk = await passwordClient(running, "alice@localhost/idle", "alice-pw")
            revoke = CommandRun(desk, REVOKE)
            await revoke.start()
            await revoke.next({"certificates": ["Idle"]})
            await asyncio.sleep(2)
            answer = await revoke.complete({"confirm": True})
            assert condition(answer) == "not-allowed"
            assert "session-expired" in str(answer)
            listed = await CommandRun(desk, LIST).start()
            assert {r["name"]: r["state"] for r in rows(listed)}["Idle"] == "enabled"
            await logout(desk)

        runAsync(run())


def test_noCertManagementForbidden(server: RunningServer, tmp_path: Path) -> None:
    """
    XEP-0257 section 2.1 over ad-hoc commands: a device logged in with a
    no-cert-management certificate is offered only the list and its
    sessions; adding, disabling and revoking are forbidden.
    """
    certPath, keyPath, _ = makeCertificate(tmp_path, "kiosk", ["bob@localhost"])
    register(server, "bob@localhost", "Kiosk", certPath, "--no-cert-management")

    async def run() -> None:
        kiosk = await certificateClient(server, "bob@localhost/kiosk", certPath, keyPath)
        assert await commandNodes(kiosk) == [LIST, SESSIONS]
        for node in (ADD, DISABLE, REVOKE):
            assert condition(await CommandRun(kiosk, node).start()) == "forbidden"
        listed = await CommandRun(kiosk, LIST).start()
        assert {r["name"]: r["may-manage"] for r in rows(listed)}["Kiosk"] in ("false", "0")
        await logout(kiosk)

    runAsync(run())


# --- the administrator ---------------------------------------------------------------


def test_adminOnAnotherAccount(server: RunningServer, tmp_path: Path) -> None:
    """
    An administrator (admins in the configuration) lists bob's
    certificates, revokes one (its session ends) and adds a user with
    XEP-0133 add-user; `xmppcert audit` shows the administrator as the
    actor of both changes. bob cannot run the administrators' commands.
    """
    certPath, keyPath, _ = makeCertificate(tmp_path, "laptop", ["bob@localhost"])
    register(server, "bob@localhost", "Laptop", certPath)

    async def run() -> None:
        laptop = await certificateClient(server, "bob@localhost/laptop", certPath, keyPath)
        assert condition(await CommandRun(laptop, ADMIN_LIST).start()) == "forbidden"
        admin = await passwordClient(server, f"{ADMIN}/console", "admin-pw")

        listing = CommandRun(admin, ADMIN_LIST)
        shown = await listing.start()
        assert shown["command"]["form"].get_fields()["accountjid"]["type"] == "jid-single"
        listed = await listing.complete({"accountjid": "bob@localhost"})
        assert {r["name"]: r["resources"] for r in rows(listed)}["Laptop"] == "laptop"

        revoke = CommandRun(admin, ADMIN_REVOKE)
        await revoke.start()
        await revoke.next({"accountjid": "bob@localhost"})
        await revoke.next({"certificates": ["Laptop"]})
        assert status(await revoke.complete({"confirm": True})) == "completed"
        await asyncio.wait_for(asyncio.shield(laptop.ended), TIMEOUT)
        assert "reset" in laptop.streamErrors

        addUser = CommandRun(admin, ADD_USER)
        shown = await addUser.start()
        assert shown["command"]["form"].get_fields()["FORM_TYPE"]["value"] == [NS_ADMIN]
        done = await addUser.complete(
            {"accountjid": "dave@localhost", "password": "dave-pw", "password-verify": "dave-pw"}
        )
        assert status(done) == "completed"
        await logout(admin)
        dave = await passwordClient(server, "dave@localhost/first", "dave-pw")
        await logout(dave)

    runAsync(run())
    assert any(f"  {ADMIN}  cert.revoke  bob@localhost/Laptop" in line for line in audit(server, "bob@localhost"))
    assert any(f"  {ADMIN}  user.add  dave@localhost" in line for line in audit(server, "dave@localhost"))


def test_cliSeesCommandChanges(server: RunningServer, tmp_path: Path) -> None:
    """
    The commands change the same store as the command line: a certificate
    added from a client is listed by `xmppcert cert list`.
    """
    certPath, _, _ = makeCertificate(tmp_path, "e-reader", ["alice@localhost"])

    async def run() -> None:
        desk = await passwordClient(server, "alice@localhost/desk4", "alice-pw")
        add = CommandRun(desk, ADD)
        await add.start()
        done = await add.complete({"name": "E-reader", "certificate": pemOf(certPath), "may-manage": False})
        assert status(done) == "completed"
        await logout(desk)

    runAsync(run())
    result: subprocess.CompletedProcess[str] = server.cli("cert", "list", "alice@localhost")
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("E-reader")]
    assert line.split()[1] == "enabled" and line.split()[-1] == "no"
