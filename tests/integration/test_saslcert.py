"""
XEP-0257 against the real server, driven by slixmpp's own xep_0257 plugin
(and a raw client where slixmpp cannot send the malformed request).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from slixmpp import JID
from slixmpp.exceptions import IqError

from tests.integration.clients import Client, LoginFailed, login, logout
from tests.integration.conftest import RunningServer, runAsync, serveAliceAndBob
from tests.integration.raw import RawStream
from xmppcert import x509

pytestmark = pytest.mark.integration

NS = "urn:xmpp:saslcert:1"
MAX_PER_ACCOUNT = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """
    A server of its own (a small certificate limit, quick revocation polls),
    with alice and bob; no log line at error level afterwards.
    """
    yield from serveAliceAndBob(
        tmp_path_factory.mktemp("saslcert"),
        f"[certificates]\nmax_per_account = {MAX_PER_ACCOUNT}\nrevocation_poll_interval = 0.5\n"
        "session_check_interval = 1\n",
    )


class Device:
    """
    A key pair and certificate, as a device would make them.
    """

    def __init__(self, directory: Path, name: str, jids: list[str], **kwargs: object) -> None:
        key = x509.generateClientKey("ec")
        self.certificate = x509.issueClientCertificate(jids, key, **kwargs)  # type: ignore[arg-type]
        self.certPath = directory / f"{name}.crt"
        self.keyPath = directory / f"{name}.key"
        self.certPath.write_bytes(x509.certificatePEM(self.certificate))
        x509.writePrivateKey(self.keyPath, key)

    @property
    def base64(self) -> str:
        return base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()

    async def login(self, server: RunningServer, jid: str) -> Client:
        client = await login(
            server, jid, "", mechanism="EXTERNAL", certfile=str(self.certPath), keyfile=str(self.keyPath)
        )
        client.register_plugin("xep_0257")
        return client


async def passwordClient(server: RunningServer, jid: str, password: str) -> Client:
    client = await login(server, jid, password)
    client.register_plugin("xep_0257")
    return client


async def condition(coroutine: object) -> str:
    """
    @return: the stanza error condition the request fails with.
    """
    with pytest.raises(IqError) as caught:
        await coroutine  # type: ignore[misc]
    return str(caught.value.iq["error"]["condition"])


def test_appendLoginItemsRevoke(server: RunningServer, tmp_path: Path) -> None:
    """
    XEP-0257 §2.1, §2.2, §2.4: a certificate appended from one client logs in
    from another; <users/> lists exactly its live resources; revoking it closes
    that session, while a session on another certificate of the account stays.
    """
    phone = Device(tmp_path, "phone", ["alice@localhost"])
    laptop = Device(tmp_path, "laptop", ["alice@localhost"])

    async def run() -> None:
        desk = await passwordClient(server, "alice@localhost/desk", "alice-pw")
        await desk.plugin["xep_0257"].add_cert("Phone", phone.base64)
        await desk.plugin["xep_0257"].add_cert("Laptop", laptop.base64)

        phoneClient = await phone.login(server, "alice@localhost/phone")
        laptopClient = await laptop.login(server, "alice@localhost/laptop")
        items = await desk.plugin["xep_0257"].get_certs(timeout=10)
        byName = {name: (cert, users) for name, cert, users in items}
        assert byName["Phone"] == (phone.base64, ("phone",))
        assert byName["Laptop"][1] == ("laptop",)

        await desk.plugin["xep_0257"].revoke_cert("Phone", timeout=10)
        await asyncio.wait_for(asyncio.shield(phoneClient.ended), 10)
        assert "reset" in phoneClient.streamErrors
        # The laptop's session is untouched and still served.
        assert await laptopClient.plugin["xep_0199"].ping(JID("localhost"), timeout=10) is not None
        items = await desk.plugin["xep_0257"].get_certs(timeout=10)
        assert {name for name, _, _ in items} == {"Laptop"}
        # A revoked certificate no longer logs in.
        with pytest.raises(LoginFailed):
            await phone.login(server, "alice@localhost/phone")
        await logout(laptopClient)
        await logout(desk)

    runAsync(run())


def test_revokeOwnCertificate(server: RunningServer, tmp_path: Path) -> None:
    """
    XEP-0257 §2.4: a session may revoke the certificate it logged in with;
    it gets the result first, then its stream is closed with reset.
    """
    lost = Device(tmp_path, "lost", ["alice@localhost"])

    async def run() -> None:
        desk = await passwordClient(server, "alice@localhost/desk3", "alice-pw")
        await desk.plugin["xep_0257"].add_cert("Lost", lost.base64, timeout=10)
        await logout(desk)
        client = await lost.login(server, "alice@localhost/lost")
        result = await client.plugin["xep_0257"].revoke_cert("Lost", timeout=10)
        assert result["type"] == "result"
        await asyncio.wait_for(asyncio.shield(client.ended), 10)
        assert "reset" in client.streamErrors

    runAsync(run())


def test_disableKeepsSessions(server: RunningServer, tmp_path: Path) -> None:
    """
    XEP-0257 §2.3: a disabled certificate can no longer log in, but its live
    session stays; its name can be used again.
    """
    tablet = Device(tmp_path, "tablet", ["alice@localhost"])
    newer = Device(tmp_path, "tablet2", ["alice@localhost"])

    async def run() -> None:
        desk = await passwordClient(server, "alice@localhost/desk2", "alice-pw")
        await desk.plugin["xep_0257"].add_cert("Tablet", tablet.base64)
        tabletClient = await tablet.login(server, "alice@localhost/tablet")
        await desk.plugin["xep_0257"].disable_cert("Tablet", timeout=10)
        await asyncio.sleep(1.5)  # three revocation polls: nothing may close it
        assert await tabletClient.plugin["xep_0199"].ping(JID("localhost"), timeout=10) is not None
        with pytest.raises(LoginFailed):
            await tablet.login(server, "alice@localhost/tablet-again")
        await desk.plugin["xep_0257"].add_cert("Tablet", newer.base64)
        await logout(tabletClient)
        await logout(desk)

    runAsync(run())


def test_noCertManagement(server: RunningServer, tmp_path: Path) -> None:
    """
    XEP-0257 §2.1: a session that logged in with a certificate appended with
    <no-cert-management/> may list certificates (the MAY) but not add,
    disable or revoke them (auth/forbidden).
    """
    bot = Device(tmp_path, "bot", ["bob@localhost"])
    other = Device(tmp_path, "other", ["bob@localhost"])

    async def run() -> None:
        owner = await passwordClient(server, "bob@localhost/owner", "bob-pw")
        await owner.plugin["xep_0257"].add_cert("Bot", bot.base64, allow_management=False)
        botClient = await bot.login(server, "bob@localhost/bot")
        items = await botClient.plugin["xep_0257"].get_certs(timeout=10)
        assert {name for name, _, _ in items} == {"Bot"}
        api = botClient.plugin["xep_0257"]
        assert await condition(api.add_cert("Other", other.base64, timeout=10)) == "forbidden"
        assert await condition(api.disable_cert("Bot", timeout=10)) == "forbidden"
        assert await condition(api.revoke_cert("Bot", timeout=10)) == "forbidden"
        await logout(botClient)
        await owner.plugin["xep_0257"].revoke_cert("Bot", timeout=10)
        await logout(owner)

    runAsync(run())


def test_appendErrors(server: RunningServer, tmp_path: Path) -> None:
    """
    XEP-0257 §2.1 and docs/xep-0257.md: a name in use (MUST) and a certificate
    already registered are conflicts; expired, not-yet-valid, or not naming
    the account is not-acceptable; an unknown name is item-not-found.
    """
    # Names both accounts, so only the fingerprint rule can refuse it for alice.
    first = Device(tmp_path, "first", ["bob@localhost", "alice@localhost"])
    second = Device(tmp_path, "second", ["bob@localhost"])
    now = datetime.datetime.now(datetime.UTC)
    expired = Device(tmp_path, "expired", ["bob@localhost"], now=now - datetime.timedelta(days=10), days=2)
    future = Device(tmp_path, "future", ["bob@localhost"], now=now + datetime.timedelta(days=10), days=2)
    stranger = Device(tmp_path, "stranger", ["alice@localhost"])

    async def run() -> None:
        bob = await passwordClient(server, "bob@localhost/errors", "bob-pw")
        api = bob.plugin["xep_0257"]
        await api.add_cert("First", first.base64, timeout=10)
        assert await condition(api.add_cert("First", second.base64, timeout=10)) == "conflict"
        assert await condition(api.add_cert("Again", first.base64, timeout=10)) == "conflict"
        assert await condition(api.add_cert("Expired", expired.base64, timeout=10)) == "not-acceptable"
        assert await condition(api.add_cert("Future", future.base64, timeout=10)) == "not-acceptable"
        assert await condition(api.add_cert("Alice's", stranger.base64, timeout=10)) == "not-acceptable"
        assert await condition(api.disable_cert("Nope", timeout=10)) == "item-not-found"
        assert await condition(api.revoke_cert("Nope", timeout=10)) == "item-not-found"
        items = await api.get_certs(timeout=10)
        assert {name for name, _, _ in items} == {"First"}
        # The same certificate may not be registered to another account either.
        alice = await passwordClient(server, "alice@localhost/steal", "alice-pw")
        assert await condition(alice.plugin["xep_0257"].add_cert("Bob's", first.base64, timeout=10)) == "conflict"
        await logout(alice)
        await api.revoke_cert("First", timeout=10)
        await logout(bob)

    runAsync(run())


def test_limitPerAccount(server: RunningServer, tmp_path: Path) -> None:
    """
    Operator option max_per_account: past it, append is resource-constraint
    (docs/xep-0257.md); a disabled certificate frees its place.
    """

    async def run() -> None:
        bob = await passwordClient(server, "bob@localhost/limit", "bob-pw")
        api = bob.plugin["xep_0257"]
        present = len(await api.get_certs(timeout=10))
        for i in range(MAX_PER_ACCOUNT - present):
            await api.add_cert(f"Device {i}", Device(tmp_path, f"d{i}", ["bob@localhost"]).base64, timeout=10)
        extra = Device(tmp_path, "extra", ["bob@localhost"])
        assert await condition(api.add_cert("One too many", extra.base64, timeout=10)) == "resource-constraint"
        await api.disable_cert("Device 0", timeout=10)
        await api.add_cert("One too many", extra.base64, timeout=10)
        for i in range(1, MAX_PER_ACCOUNT - present):
            await api.disable_cert(f"Device {i}", timeout=10)
        await api.disable_cert("One too many", timeout=10)
        await logout(bob)

    runAsync(run())


def test_concurrentAppendsOfOneName(server: RunningServer, tmp_path: Path) -> None:
    """
    XEP-0257 §2.1 under concurrency: two clients append different
    certificates under one name at once; exactly one succeeds, the other is a
    conflict.
    """
    one = Device(tmp_path, "c1", ["alice@localhost"])
    two = Device(tmp_path, "c2", ["alice@localhost"])

    async def run() -> None:
        a = await passwordClient(server, "alice@localhost/c1", "alice-pw")
        b = await passwordClient(server, "alice@localhost/c2", "alice-pw")
        results = await asyncio.gather(
            a.plugin["xep_0257"].add_cert("Shared", one.base64, timeout=10),
            b.plugin["xep_0257"].add_cert("Shared", two.base64, timeout=10),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, IqError)]
        assert len(errors) == 1, results
        assert errors[0].iq["error"]["condition"] == "conflict"
        await a.plugin["xep_0257"].disable_cert("Shared", timeout=10)
        await logout(a)
        await logout(b)

    runAsync(run())


def test_discoAdvertisesSaslcert(server: RunningServer) -> None:
    """
    XEP-0257 §4: urn:xmpp:saslcert:1 is in disco#info of the server, of the
    account, and of a request with no 'to'.
    """

    async def run() -> None:
        alice = await passwordClient(server, "alice@localhost/disco", "alice-pw")
        for target in ("localhost", "alice@localhost"):
            info = await alice.plugin["xep_0030"].get_info(jid=JID(target), timeout=10)
            assert NS in info["disco_info"]["features"], target
        # slixmpp answers get_info(jid=None) from its own cache, so send the
        # 'to'-less query by hand.
        iq = alice.Iq()
        iq["type"] = "get"
        iq.enable("disco_info")
        info = await iq.send(timeout=10)
        assert NS in info["disco_info"]["features"]
        await logout(alice)

    runAsync(run())


def test_malformedRequestsAndAddressing(server: RunningServer) -> None:
    """
    docs/xep-0257.md: bad base64, DER that is not a certificate, a missing or
    empty name are bad-request; a request to another user's JID is
    service-unavailable, as for any account one does not own.
    """
    raw = RawStream(server.starttlsPort)
    raw.login(server.caFile, "alice", "alice-pw", resource="raw257")

    def ask(payload: str, to: str | None = None) -> bytes:
        raw.received = b""
        address = f" to='{to}'" if to else ""
        raw.send(f"<iq type='set' id='r1'{address}>{payload}</iq>")
        return raw.readUntil(b"</iq>")

    def append(name: str, cert: str) -> str:
        return f"<append xmlns='{NS}'><name>{name}</name><x509cert>{cert}</x509cert></append>"

    assert b"<bad-request" in ask(append("Bad", "!!!not base64!!!"))
    assert b"<bad-request" in ask(append("Junk", base64.b64encode(b"not a certificate").decode()))
    assert b"<bad-request" in ask(f"<append xmlns='{NS}'><x509cert>AAAA</x509cert></append>")
    assert b"<bad-request" in ask(append("   ", "AAAA"))
    assert b"<bad-request" in ask(f"<disable xmlns='{NS}'/>")
    answer = ask(f"<revoke xmlns='{NS}'><name>Phone</name></revoke>", to="bob@localhost")
    assert b"<service-unavailable" in answer
    raw.close()


def test_cliRevokeClosesLiveSession(server: RunningServer, tmp_path: Path) -> None:
    """
    The CLI and XEP-0257 share the store and the live sessions: `xmppcert
    cert revoke` while the server runs closes the sessions of that
    certificate within a revocation poll.
    """
    watch = Device(tmp_path, "watch", ["bob@localhost"])
    result = server.cli("cert", "add", "bob@localhost", "Watch", str(watch.certPath))
    assert result.returncode == 0, result.stderr

    async def run() -> None:
        client = await watch.login(server, "bob@localhost/watch")
        result = server.cli("cert", "revoke", "bob@localhost", "Watch")
        assert result.returncode == 0, result.stderr
        await asyncio.wait_for(asyncio.shield(client.ended), 10)
        assert "reset" in client.streamErrors

    runAsync(run())


def test_cliRemoveAndUserDeleteCloseLiveSessions(server: RunningServer, tmp_path: Path) -> None:
    """
    Removals leave nothing to poll for, yet end sessions too: `cert remove`
    closes the sessions of that certificate (reset), and `user delete`
    every session of the account (not-authorized), within a session check.
    """
    server.addUser("carol@localhost", "carol-pw")
    watch = Device(tmp_path, "watch2", ["carol@localhost"])
    result = server.cli("cert", "add", "carol@localhost", "Watch", str(watch.certPath))
    assert result.returncode == 0, result.stderr

    async def run() -> None:
        client = await watch.login(server, "carol@localhost/watch")
        desk = await passwordClient(server, "carol@localhost/desk", "carol-pw")
        result = server.cli("cert", "remove", "carol@localhost", "Watch")
        assert result.returncode == 0, result.stderr
        await asyncio.wait_for(asyncio.shield(client.ended), 10)
        assert "reset" in client.streamErrors
        assert await desk.plugin["xep_0199"].ping(JID("localhost"), timeout=10) is not None
        result = server.cli("user", "delete", "carol@localhost")
        assert result.returncode == 0, result.stderr
        await asyncio.wait_for(asyncio.shield(desk.ended), 10)
        assert "not-authorized" in desk.streamErrors

    runAsync(run())
