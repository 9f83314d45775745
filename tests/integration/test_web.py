"""
Web clients against the real server over real TLS on loopback: BOSH and
WebSocket with client certificates (SASL EXTERNAL) and passwords, messages
between BOSH, WebSocket and TCP sessions, revocation, the certificate pin of
a BOSH session, rids, size limits and origins.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
import websockets.exceptions
from slixmpp import JID

from tests.integration.clients import login, logout
from tests.integration.conftest import RunningServer, makeServer, runAsync
from tests.integration.test_external import makeCertificate, register
from tests.integration.web import (
    NS_CLIENT,
    NS_STREAMS,
    BOSHClient,
    HTTPSConnection,
    WebSocketClient,
    bodyText,
    message,
    q,
    streamErrorCondition,
    webContext,
)

pytestmark = pytest.mark.integration

ALLOWED = "https://chat.example"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    """
    A server with alice and bob, web clients allowed from one origin, and a
    directory with registered certificates: alice's laptop and phone,
    bob's laptop.
    """
    tmp = tmp_path_factory.mktemp("web")
    server = makeServer(
        tmp,
        f"""
[http]
allowed_origins = ["{ALLOWED}"]
max_body_size = 4096
max_websocket_message = 4096
bosh_max_wait = 5
""",
    )
    server.addUser("alice@localhost", "alice-pw")
    server.addUser("bob@localhost", "bob-pw")
    certs = tmp / "certs"
    certs.mkdir()
    for name, account in (("alice-laptop", "alice"), ("alice-phone", "alice"), ("bob-laptop", "bob")):
        certPath, keyPath, _ = makeCertificate(certs, name, [f"{account}@localhost"])
        register(server, f"{account}@localhost", name, certPath)
    server.start()
    try:
        yield server, certs
    finally:
        server.stop()
    assert server.errorLines() == [], server.logText()


def context(server: RunningServer, certs: Path, name: str | None) -> ssl.SSLContext:
    if name is None:
        return webContext(server.caFile)
    return webContext(server.caFile, (certs / f"{name}.crt", certs / f"{name}.key"))


def test_boshCertificateLogin(web: tuple[RunningServer, Path]) -> None:
    """
    XEP-0206 + XEP-0178: over BOSH, the certificate the browser presented
    in the HTTPS handshake logs in with EXTERNAL, no password.
    """
    server, certs = web
    client = BOSHClient(server.httpsPort, context(server, certs, "alice-laptop"))
    fullJID = client.loginExternal()
    assert fullJID.startswith("alice@localhost/")
    sessions = server.cli("sessions")
    assert "bosh" in sessions.stdout and "alice@localhost" in sessions.stdout, sessions
    client.terminate()
    assert "Authenticated alice@localhost with EXTERNAL" in server.logText()


def test_websocketCertificateLogin(web: tuple[RunningServer, Path]) -> None:
    """
    RFC 7395 + XEP-0178: over WebSocket, the certificate of the upgraded
    connection logs in with EXTERNAL, no password.
    """
    server, certs = web
    client = WebSocketClient(server.httpsPort, context(server, certs, "bob-laptop"))
    try:
        fullJID = client.loginExternal()
        assert fullJID.startswith("bob@localhost/")
        sessions = server.cli("sessions")
        assert "websocket" in sessions.stdout, sessions
    finally:
        client.close()


def test_noCertificateNoExternal(web: tuple[RunningServer, Path]) -> None:
    """
    XEP-0178 section 3: EXTERNAL is offered only when a certificate was
    presented, on web transports as on TCP.
    """
    server, certs = web
    client = BOSHClient(server.httpsPort, context(server, certs, None))
    features = client.features(client.create())
    mechanisms = [m.text for m in features.iter("{urn:ietf:params:xml:ns:xmpp-sasl}mechanism")]
    assert "EXTERNAL" not in mechanisms and "PLAIN" in mechanisms
    client.connection.close()


def test_passwordLogins(web: tuple[RunningServer, Path]) -> None:
    """
    Password logins work over both web transports (PLAIN over TLS).
    """
    server, certs = web
    bosh = BOSHClient(server.httpsPort, context(server, certs, None))
    assert bosh.loginPlain("alice", "alice-pw").startswith("alice@localhost/")
    bosh.terminate()
    ws = WebSocketClient(server.httpsPort, context(server, certs, None))
    try:
        assert ws.loginPlain("bob", "bob-pw").startswith("bob@localhost/")
    finally:
        ws.close()


def receiveOverBOSH(client: BOSHClient, text: str, attempts: int = 5) -> ElementTree.Element:
    for _ in range(attempts):
        body = client.exchange()
        for stanza in body.findall(q(NS_CLIENT, "message")):
            if bodyText(stanza) == text:
                return stanza
    raise AssertionError(f"no message {text!r}")


def receiveOverWebSocket(client: WebSocketClient, text: str) -> ElementTree.Element:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        element = client.receive(timeout=max(0.1, deadline - time.monotonic()))
        if element.tag == q(NS_CLIENT, "message") and bodyText(element) == text:
            return element
    raise AssertionError(f"no message {text!r}")


def test_messagesBetweenTransports(web: tuple[RunningServer, Path]) -> None:
    """
    RFC 6120 section 10: stanzas are routed between sessions whatever their
    transport: BOSH, WebSocket and TCP, of the same account and of others.
    """
    server, certs = web
    bosh = BOSHClient(server.httpsPort, context(server, certs, "alice-laptop"))
    boshJID = bosh.loginExternal()
    ws = WebSocketClient(server.httpsPort, context(server, certs, "alice-phone"))
    wsJID = ws.loginExternal()

    async def run() -> None:
        # The web clients block: they run in threads, so that slixmpp's
        # loop goes on sending and receiving.
        thread = asyncio.to_thread
        tcp = await login(server, "bob@localhost", "bob-pw")
        try:
            # Same account, BOSH to WebSocket and back.
            await thread(bosh.exchange, message(wsJID, "bosh to ws"))
            await thread(receiveOverWebSocket, ws, "bosh to ws")
            await thread(ws.send, message(boshJID, "ws to bosh"))
            got = await thread(receiveOverBOSH, bosh, "ws to bosh")
            assert got.get("from") == wsJID
            # Another account over TCP, to and from both.
            tcp.send_message(mto=JID(boshJID), mbody="tcp to bosh", mtype="chat")
            await thread(receiveOverBOSH, bosh, "tcp to bosh")
            tcp.send_message(mto=JID(wsJID), mbody="tcp to ws", mtype="chat")
            await thread(receiveOverWebSocket, ws, "tcp to ws")
            await thread(bosh.exchange, message(str(tcp.boundjid), "bosh to tcp"))
            received = await tcp.messages.get()
            assert received["body"] == "bosh to tcp" and str(received["from"]) == boshJID
            await thread(ws.send, message(str(tcp.boundjid), "ws to tcp"))
            received = await tcp.messages.get()
            assert received["body"] == "ws to tcp" and str(received["from"]) == wsJID
        finally:
            await logout(tcp)

    try:
        runAsync(run())
    finally:
        bosh.terminate()
        ws.close()


def test_revocationClosesWebSessions(tmp_path: Path) -> None:
    """
    XEP-0257 section 3.3: revoking a certificate closes its sessions at
    once, over BOSH and WebSocket too, with the reset condition.
    """
    server = makeServer(tmp_path)
    server.addUser("alice@localhost", "alice-pw")
    certPath, keyPath, _ = makeCertificate(tmp_path, "laptop", ["alice@localhost"])
    register(server, "alice@localhost", "laptop", certPath)
    server.start()
    try:
        ctx = webContext(server.caFile, (certPath, keyPath))
        bosh = BOSHClient(server.httpsPort, ctx)
        bosh.loginExternal()
        ws = WebSocketClient(server.httpsPort, ctx)
        ws.loginExternal()
        result = server.cli("cert", "revoke", "alice@localhost", "laptop")
        assert result.returncode == 0, result.stderr
        body = bosh.exchange()
        for _ in range(3):
            if body.get("type") == "terminate":
                break
            body = bosh.exchange()
        assert body.get("type") == "terminate", ElementTree.tostring(body)
        assert body.get("condition") == "remote-stream-error"
        assert streamErrorCondition(body) == "reset"
        error = ws.until(q(NS_STREAMS, "error"))
        assert streamErrorCondition(error) == "reset"
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            for _ in range(5):
                ws.receive()
        # And the certificate logs in no more.
        again = BOSHClient(server.httpsPort, ctx)
        features = again.features(again.create())
        mechanisms = [m.text for m in features.iter("{urn:ietf:params:xml:ns:xmpp-sasl}mechanism")]
        if "EXTERNAL" in mechanisms:
            body = again.exchange("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
            assert body.find("{urn:ietf:params:xml:ns:xmpp-sasl}success") is None
    finally:
        server.stop()
    assert server.errorLines() == [], server.logText()


def test_boshSessionPinnedToItsCertificate(web: tuple[RunningServer, Path]) -> None:
    """
    A BOSH session takes the certificate of the connection that created it:
    a request of that session over a connection with another certificate
    (or none) is refused and the session terminated, so a stolen sid never
    rides on someone else's certificate login.
    """
    server, certs = web
    for intruder in ("bob-laptop", None):
        alice = BOSHClient(server.httpsPort, context(server, certs, "alice-laptop"))
        alice.loginExternal()
        other = HTTPSConnection(server.httpsPort, context(server, certs, intruder))
        status, response = alice.post(alice.body(message("bob@localhost", "stolen")), other)
        assert status == 200
        refused = ElementTree.fromstring(response)
        assert refused.get("type") == "terminate"
        assert refused.get("condition") == "policy-violation"
        assert refused.find(q(NS_CLIENT, "message")) is None
        # The session is gone for its owner too.
        body = alice.exchange()
        assert body.get("type") == "terminate"
        other.close()
        alice.connection.close()
    assert "stolen" not in server.logText()


def test_boshSameCertificateNewConnection(web: tuple[RunningServer, Path]) -> None:
    """
    XEP-0124 section 6: a client may use several HTTP connections; one
    that presents the session's certificate is served.
    """
    server, certs = web
    alice = BOSHClient(server.httpsPort, context(server, certs, "alice-laptop"))
    alice.loginExternal()
    second = HTTPSConnection(server.httpsPort, context(server, certs, "alice-laptop"))
    status, response = alice.post(alice.body(), second)
    assert status == 200 and ElementTree.fromstring(response).get("type") != "terminate"
    second.close()
    alice.terminate()


def test_boshRidReplayAndWindow(web: tuple[RunningServer, Path]) -> None:
    """
    XEP-0124 section 14.3: a repeated rid gets the same response again; a
    rid beyond the window terminates the session with item-not-found.
    """
    server, certs = web
    client = BOSHClient(server.httpsPort, context(server, certs, None))
    client.loginPlain("alice", "alice-pw")
    rid = client.rid
    first = client.post(client.body(f"<iq xmlns='{NS_CLIENT}' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"))
    assert first[0] == 200
    replay = client.post(client.body(f"<iq xmlns='{NS_CLIENT}' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>", rid=rid))
    assert replay == first
    status, response = client.post(client.body(rid=client.rid + 50))
    body = ElementTree.fromstring(response)
    assert body.get("type") == "terminate" and body.get("condition") == "item-not-found"
    client.connection.close()


def test_boshUnknownSid(web: tuple[RunningServer, Path]) -> None:
    """
    XEP-0124 section 14.4: a request for an unknown session gets
    item-not-found.
    """
    server, certs = web
    client = BOSHClient(server.httpsPort, context(server, certs, None))
    client.sid = "nosuchsession"
    status, response = client.post(client.body())
    assert status in (200, 404)
    if status == 200:
        body = ElementTree.fromstring(response)
        assert body.get("type") == "terminate" and body.get("condition") == "item-not-found"
    client.connection.close()


def test_boshOversizedBody(web: tuple[RunningServer, Path]) -> None:
    """
    [http] max_body_size: a larger body is refused with 413 before it is
    read.
    """
    server, certs = web
    client = BOSHClient(server.httpsPort, context(server, certs, None))
    client.create()
    status, _ = client.post(client.body("<message xmlns='jabber:client'><body>" + "x" * 5000 + "</body></message>"))
    assert status == 413
    client.connection.close()


def test_websocketOversizedMessage(web: tuple[RunningServer, Path]) -> None:
    """
    [http] max_websocket_message: a larger message ends the stream with
    policy-violation (close code 1009).
    """
    server, certs = web
    client = WebSocketClient(server.httpsPort, context(server, certs, None))
    client.open()
    client.send("<message xmlns='jabber:client'><body>" + "x" * 5000 + "</body></message>")
    closedWith: int | None = None
    sawError = None
    try:
        for _ in range(5):
            element = client.receive()
            if element.tag == q(NS_STREAMS, "error"):
                sawError = streamErrorCondition(element)
    except websockets.exceptions.ConnectionClosed as e:
        closedWith = e.rcvd.code if e.rcvd is not None else None
    assert sawError == "policy-violation"
    assert closedWith == 1009


def test_disallowedOrigin(web: tuple[RunningServer, Path]) -> None:
    """
    http.allowed_origins: a page of another origin can neither use BOSH
    (403, no CORS headers) nor open a WebSocket (403); an allowed one can.
    """
    server, certs = web
    conn = HTTPSConnection(server.httpsPort, context(server, certs, "alice-laptop"))
    client = BOSHClient(server.httpsPort, context(server, certs, "alice-laptop"), origin="https://evil.example")
    status, headers, _ = conn.post("/http-bind", client.body(to="localhost", wait="5", hold="1"), client.headers())
    assert status == 403
    assert "access-control-allow-origin" not in headers
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        WebSocketClient(server.httpsPort, context(server, certs, "alice-laptop"), origin="https://evil.example")
    assert info.value.response.status_code == 403
    # The allowed origin: CORS headers on the preflight and the request.
    status, headers, _ = conn.request(
        "OPTIONS", "/http-bind", {"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    )
    assert status in (200, 204) and headers.get("access-control-allow-origin") == ALLOWED
    allowed = BOSHClient(server.httpsPort, context(server, certs, "alice-laptop"), origin=ALLOWED)
    allowed.create()
    assert allowed.sid
    allowed.connection.close()
    ws = WebSocketClient(server.httpsPort, context(server, certs, None), origin=ALLOWED)
    ws.close()
    conn.close()


def test_websocketNeedsXMPPSubprotocol(web: tuple[RunningServer, Path]) -> None:
    """
    RFC 7395 section 3.1: the server answers with the xmpp subprotocol.
    """
    server, certs = web
    ws = WebSocketClient(server.httpsPort, context(server, certs, None))
    assert ws.ws.subprotocol == "xmpp"
    ws.close()


def test_hostMeta(web: tuple[RunningServer, Path]) -> None:
    """
    XEP-0156: host-meta and host-meta.json announce both endpoints at the
    host and port the client used.
    """
    server, certs = web
    conn = HTTPSConnection(server.httpsPort, context(server, certs, None))
    status, headers, data = conn.request("GET", "/.well-known/host-meta.json", {"Host": f"localhost:{server.httpsPort}"})
    assert status == 200
    links = {link["rel"]: link["href"] for link in json.loads(data)["links"]}
    assert links["urn:xmpp:alt-connections:xbosh"] == f"https://localhost:{server.httpsPort}/http-bind"
    assert links["urn:xmpp:alt-connections:websocket"] == f"wss://localhost:{server.httpsPort}/xmpp-websocket"
    status, headers, data = conn.request("GET", "/.well-known/host-meta", {"Host": f"localhost:{server.httpsPort}"})
    assert status == 200 and b"urn:xmpp:alt-connections:xbosh" in data
    conn.close()


def test_httpsListenerALPN(web: tuple[RunningServer, Path]) -> None:
    """
    The HTTPS listener negotiates ALPN http/1.1.
    """
    server, certs = web
    conn = http.client.HTTPSConnection("localhost", server.httpsPort, context=context(server, certs, None))
    conn.connect()
    sock = conn.sock
    assert isinstance(sock, ssl.SSLSocket)
    assert sock.selected_alpn_protocol() == "http/1.1"
    conn.close()

