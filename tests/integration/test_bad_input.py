"""
Bad input against the real server over real sockets: each case gets the error
RFC 6120 names, the server keeps serving everyone else, and nothing a peer
sends makes it log at error level (checked by the C{server} fixture).
"""

from __future__ import annotations

import threading

import pytest
from slixmpp import JID

from tests.integration.clients import login, logout
from tests.integration.conftest import RunningServer, runAsync
from tests.integration.raw import RawStream

pytestmark = pytest.mark.integration

STREAM_ERROR = "<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"

BILLION_LAUGHS = (
    "<?xml version='1.0'?><!DOCTYPE lolz ["
    "<!ENTITY lol 'lol'>"
    + "".join(f"<!ENTITY lol{i} '{('&lol%s;' % (i - 1 if i > 1 else '')) * 10}'>" for i in range(1, 10))
    + "]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='localhost' version='1.0'>&lol9;"
)


def assertStreamError(raw: RawStream, condition: str) -> None:
    data = raw.waitClosed()
    assert STREAM_ERROR.format(condition=condition).encode() in data, data
    assert data.rstrip().endswith(b"</stream:stream>"), data


def test_malformedXML(server: RunningServer) -> None:
    """
    RFC 6120 §4.9.3.13: XML that is not well-formed ends the stream with
    not-well-formed.
    """
    raw = RawStream(server.starttlsPort)
    raw.header()
    raw.readUntil(b"</stream:features>")
    raw.send("<iq type='get' id='1'><query></iq>")
    assertStreamError(raw, "not-well-formed")


def test_doctypeRefused(server: RunningServer) -> None:
    """
    RFC 6120 §11.1: a DOCTYPE (here the "billion laughs" document) is refused
    with restricted-xml before any entity is expanded.
    """
    raw = RawStream(server.starttlsPort)
    raw.send(BILLION_LAUGHS)
    assertStreamError(raw, "restricted-xml")


def test_entityDeclarationAfterHeader(server: RunningServer) -> None:
    """
    RFC 6120 §11.1: comments and processing instructions inside the stream are
    restricted XML too.
    """
    raw = RawStream(server.starttlsPort)
    raw.header()
    raw.readUntil(b"</stream:features>")
    raw.send("<?evil instruction?>")
    assertStreamError(raw, "restricted-xml")


def test_stanzaOverSizeLimit(server: RunningServer) -> None:
    """
    RFC 6120 §13.12: a stanza over the configured maximum size closes the
    stream with policy-violation.
    """
    raw = RawStream(server.starttlsPort)
    raw.header()
    raw.readUntil(b"</stream:features>")
    raw.send("<message><body>" + "x" * (300 * 1024) + "</body></message>")
    assertStreamError(raw, "policy-violation")


def test_stanzaBeforeAuthentication(server: RunningServer) -> None:
    """
    RFC 6120 §4.9.3.12: a stanza before authentication is not-authorized.
    """
    raw = RawStream(server.starttlsPort)
    raw.starttls(server.caFile)
    raw.send("<message to='bob@localhost'><body>hi</body></message>")
    assertStreamError(raw, "not-authorized")


def test_saslBeforeTLS(server: RunningServer) -> None:
    """
    RFC 6120 §6.4.1 / §6.5.4: SASL before STARTTLS fails with
    encryption-required; no mechanisms are offered before TLS.
    """
    raw = RawStream(server.starttlsPort)
    raw.header()
    features = raw.readUntil(b"</stream:features>")
    assert b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>" in features
    assert b"mechanism" not in features
    raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXB3</auth>")
    data = raw.readUntil(b"</failure>")
    assert b"<encryption-required/>" in data
    raw.close()


def test_unknownMechanism(server: RunningServer) -> None:
    """
    RFC 6120 §6.5.7: a mechanism that is not offered fails with invalid-mechanism.
    """
    raw = RawStream(server.starttlsPort)
    raw.starttls(server.caFile)
    raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>")
    assert b"<invalid-mechanism/>" in raw.readUntil(b"</failure>")
    raw.close()


def test_badBase64(server: RunningServer) -> None:
    """
    RFC 6120 §6.5.5: SASL data that is not base64 fails with incorrect-encoding.
    """
    raw = RawStream(server.starttlsPort)
    raw.starttls(server.caFile)
    raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!not base64!!</auth>")
    assert b"<incorrect-encoding/>" in raw.readUntil(b"</failure>")
    raw.close()


def test_wrongPasswordRetryLimit(server: RunningServer) -> None:
    """
    RFC 6120 §6.4.5: each wrong password is not-authorized (logged at info);
    past the retry limit the stream is closed with policy-violation.
    """
    raw = RawStream(server.starttlsPort)
    raw.starttls(server.caFile)
    for _ in range(2):
        assert b"<not-authorized/>" in raw.authPlain("alice", "wrong")
    raw.received = b""
    raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>")
    assertStreamError(raw, "policy-violation")
    assert "SASL failure not-authorized for PLAIN" in server.logText()


def test_bindTwice(server: RunningServer) -> None:
    """
    RFC 6120 §7: one resource per stream; a second bind is not-allowed.
    """
    raw = RawStream(server.starttlsPort)
    raw.login(server.caFile, "alice", "alice-pw", resource="twice")
    raw.received = b""
    raw.send(
        "<iq type='set' id='bind2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        "<resource>other</resource></bind></iq>"
    )
    data = raw.readUntil(b"</iq>")
    assert b"type='error'" in data and b"<not-allowed" in data
    raw.close()


def test_unservedDomain(server: RunningServer) -> None:
    """
    RFC 6120 §4.9.3.6: a stream to a domain not served here is host-unknown.
    """
    raw = RawStream(server.starttlsPort)
    raw.header(to="example.org")
    data = raw.waitClosed()
    assert b"<host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" in data
    assert b"from='localhost'" in data


def test_spoofedFrom(server: RunningServer) -> None:
    """
    RFC 6120 §8.1.2.1: a 'from' that is not the client's own JID is invalid-from.
    """
    raw = RawStream(server.starttlsPort)
    raw.login(server.caFile, "alice", "alice-pw", resource="spoof")
    raw.send("<message from='bob@localhost/x' to='alice@localhost'><body>x</body></message>")
    assertStreamError(raw, "invalid-from")


def test_attackDoesNotStallOthers(server: RunningServer) -> None:
    """
    DESIGN, XML denial of service: while peers send the billion-laughs document
    and a flood of character references, another client still logs in and is
    served (an unhardened parser blocks the reactor for minutes).
    """
    stop = threading.Event()

    def attack() -> None:
        while not stop.is_set():
            raw = RawStream(server.starttlsPort)
            try:
                raw.send(BILLION_LAUGHS)
                raw.waitClosed()
                raw = RawStream(server.starttlsPort)
                raw.header()
                raw.send("<message><body>" + "&amp;" * 50_000 + "</body></message>")
            finally:
                raw.close()

    attackers = [threading.Thread(target=attack) for _ in range(2)]
    for thread in attackers:
        thread.start()
    try:

        async def run() -> None:
            client = await login(server, "bob@localhost/served", "bob-pw", timeout=10)
            rtt = await client.plugin["xep_0199"].ping(JID("localhost"), timeout=10)
            assert rtt is not None
            await logout(client)

        runAsync(run())
    finally:
        stop.set()
        for thread in attackers:
            thread.join(30)


def test_serverStillServes(server: RunningServer) -> None:
    """
    After all the bad input above, a normal login still works.
    """

    async def run() -> None:
        client = await login(server, "alice@localhost/after", "alice-pw")
        await logout(client)

    runAsync(run())
