"""
Password login, messaging, ping and disco against the real server
(C{twistd xmppcert} on loopback, real TLS), with slixmpp as the client.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from slixmpp import JID

from tests.integration.clients import LoginFailed, clientContext, login, logout
from tests.integration.conftest import RunningServer, runAsync

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
def test_passwordLoginOverSTARTTLS(server: RunningServer, mechanism: str) -> None:
    """
    RFC 6120 sections 5-7: STARTTLS, SASL with each enabled mechanism, then a
    bound resource.
    """

    async def run() -> None:
        client = await login(server, "alice@localhost/desk", "alice-pw", mechanism=mechanism)
        assert client.boundjid.full == "alice@localhost/desk"
        await logout(client)

    runAsync(run())
    assert f"Authenticated alice@localhost with {mechanism}" in server.logText()


def test_passwordLoginOverDirectTLS(server: RunningServer) -> None:
    """
    XEP-0368: TLS from the first byte on the direct TLS port, then SASL and bind.
    """

    async def run() -> None:
        client = await login(server, "alice@localhost", "alice-pw", directTLS=True)
        assert client.boundjid.bare == "alice@localhost"
        assert client.boundjid.resource
        await logout(client)

    runAsync(run())


def test_directTLSNegotiatesALPN(server: RunningServer) -> None:
    """
    XEP-0368 section 3: the direct TLS port selects ALPN C{xmpp-client} and
    then speaks XMPP.
    """
    context = clientContext(server.caFile)
    with socket.create_connection(("127.0.0.1", server.directTLSPort), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "xmpp-client"
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            tls.sendall(
                b"<stream:stream xmlns='jabber:client' "
                b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
            )
            data = b""
            while b"</stream:features>" not in data:
                chunk = tls.recv(4096)
                assert chunk
                data += chunk
    assert b"<mechanism>SCRAM-SHA-256</mechanism>" in data
    assert b"starttls" not in data


def test_wrongPasswordFails(server: RunningServer) -> None:
    """
    RFC 6120 section 6.5.10: a wrong password is C{not-authorized}, logged at
    info, never at error.
    """

    async def run() -> None:
        with pytest.raises(LoginFailed):
            await login(server, "alice@localhost", "wrong", mechanism="PLAIN", timeout=15)

    runAsync(run())
    assert "SASL failure not-authorized for PLAIN" in server.logText()


def test_messageBetweenUsers(server: RunningServer) -> None:
    """
    RFC 6121 section 8.5: a message to a full JID reaches that session, and one
    to a bare JID reaches the available resources.
    """

    async def run() -> None:
        alice = await login(server, "alice@localhost/a", "alice-pw")
        bob = await login(server, "bob@localhost/b", "bob-pw")
        bob.send_presence()
        await asyncio.sleep(0.2)
        alice.send_message(mto=JID("bob@localhost/b"), mbody="to the full JID", mtype="chat")
        message = await asyncio.wait_for(bob.messages.get(), 10)
        assert message["body"] == "to the full JID"
        assert message["from"].full == "alice@localhost/a"
        alice.send_message(mto=JID("bob@localhost"), mbody="to the bare JID", mtype="chat")
        message = await asyncio.wait_for(bob.messages.get(), 10)
        assert message["body"] == "to the bare JID"
        await logout(alice)
        await logout(bob)

    runAsync(run())


def test_messageToUnknownAccountBounces(server: RunningServer) -> None:
    """
    RFC 6121 section 8.5.2.2.1: a chat message to an account that does not
    exist (so nothing stores it) returns C{service-unavailable}.
    """

    async def run() -> None:
        alice = await login(server, "alice@localhost/a2", "alice-pw")
        alice.send_message(mto=JID("nobody@localhost"), mbody="anyone?", mtype="chat")
        reply = await asyncio.wait_for(alice.messages.get(), 10)
        assert reply["type"] == "error"
        assert reply["error"]["condition"] == "service-unavailable"
        await logout(alice)

    runAsync(run())


def test_pingAndDisco(server: RunningServer) -> None:
    """
    XEP-0199 and XEP-0030: the server answers ping, and disco#info for itself
    and for the user's own account.
    """

    async def run() -> None:
        alice = await login(server, "alice@localhost/p", "alice-pw")
        rtt = await alice.plugin["xep_0199"].ping(JID("localhost"), timeout=10)
        assert rtt is not None
        info = await alice.plugin["xep_0030"].get_info(jid=JID("localhost"), timeout=10)
        identities = {(i[0], i[1]) for i in info["disco_info"]["identities"]}
        features = set(info["disco_info"]["features"])
        assert ("server", "im") in identities
        assert {"urn:xmpp:ping", "http://jabber.org/protocol/disco#info"} <= features
        own = await alice.plugin["xep_0030"].get_info(jid=JID("alice@localhost"), timeout=10)
        assert ("account", "registered") in {(i[0], i[1]) for i in own["disco_info"]["identities"]}
        await logout(alice)

    runAsync(run())


def test_sameResourceReplacesSession(server: RunningServer) -> None:
    """
    RFC 6120 section 7.7.2.2: a second session with the same resource closes
    the first with a C{conflict} stream error.
    """

    async def run() -> None:
        first = await login(server, "alice@localhost/same", "alice-pw")
        second = await login(server, "alice@localhost/same", "alice-pw")
        await asyncio.wait_for(asyncio.shield(first.ended), 10)
        assert "conflict" in first.streamErrors
        assert second.boundjid.full == "alice@localhost/same"
        await logout(second)

    runAsync(run())


def test_presenceToOwnResources(server: RunningServer) -> None:
    """
    RFC 6121 section 4.2.2: available presence is broadcast to the user's
    other available resources.
    """

    async def run() -> None:
        one = await login(server, "bob@localhost/one", "bob-pw")
        one.send_presence()
        await asyncio.sleep(0.2)
        two = await login(server, "bob@localhost/two", "bob-pw")
        two.send_presence(pstatus="here")
        while True:
            presence = await asyncio.wait_for(one.presences.get(), 10)
            if presence["from"].full == "bob@localhost/two":
                break
        assert presence["status"] == "here"
        await logout(two)
        await logout(one)

    runAsync(run())
