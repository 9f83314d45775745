"""
Tests for L{xmppcert.c2s}: the receiving side of a client stream (RFC 6120),
driven in memory: stream headers, STARTTLS, SASL, resource binding and the
bound stream's stanza handling.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from scramp import ScramClient
from twisted.python import failure
from twisted.words.protocols.jabber import error, jid, xmlstream
from wokkel.subprotocols import XMPPHandler

from tests.helpers import (
    ALICE,
    DOMAIN,
    NS_BIND,
    NS_CLIENT,
    NS_STREAMS,
    NS_TLS,
    PASSWORD,
    ClientConnection,
    Received,
    ServerHarness,
    certificateHarness,
    makeConfig,
    makeServer,
    stanzaErrorCondition,
)
from xmppcert.c2s import CLOSE_GRACE, OnFirstRequest, StreamContext
from xmppcert.sasl import NS_SASL

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_PING = "urn:xmpp:ping"
MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


def rawHeader(
    to: str | None = DOMAIN,
    version: str | None = "1.0",
    content: str = NS_CLIENT,
    streams: str = NS_STREAMS,
) -> str:
    attributes = f" xmlns='{content}' xmlns:stream='{streams}'"
    if to is not None:
        attributes += f" to='{to}'"
    if version is not None:
        attributes += f" version='{version}'"
    return f"<stream:stream{attributes}>"


def harness(**config: Any) -> ServerHarness:
    config.setdefault("sasl", {"mechanisms": MECHANISMS})
    return makeServer(makeConfig(**config))


def mechanisms(received: Received) -> list[str]:
    features = received.only("features")
    found = [c for c in features.elements() if (c.uri, c.name) == (NS_SASL, "mechanisms")]
    if not found:
        return []
    return [str(m) for m in found[0].elements() if m.name == "mechanism"]


def saslFailure(received: Received) -> str:
    failure = received.only("failure")
    assert failure.uri == NS_SASL
    return [c.name for c in failure.elements() if c.name != "text"][0]


def plain(user: str = "alice", password: str = PASSWORD, authzid: str = "") -> bytes:
    return f"{authzid}\0{user}\0{password}".encode()


def tlsConnection(h: ServerHarness) -> ClientConnection:
    conn = h.connect()
    conn.startTLS()
    return conn


def boundConnection(h: ServerHarness, resource: str = "phone", user: str = "alice") -> ClientConnection:
    conn = h.connect()
    conn.bound(resource, user)
    return conn


# --- stream headers -------------------------------------------------------


def assertHeaderError(conn: ClientConnection, answer: Received, condition: str) -> None:
    assert answer.streamError() == condition
    # Our header comes first and names a served domain, never the peer's.
    assert answer.raw.startswith("<stream:stream")
    assert len(answer.headers) == 1
    assert answer.headers[0].getAttribute("from") == DOMAIN
    assert answer.headers[0].defaultUri == NS_CLIENT
    assert conn.closed


def test_headerWrongContentNamespace() -> None:
    """
    RFC 6120 §4.9.3.10: a content namespace other than jabber:client gets
    invalid-namespace.
    """
    h = harness()
    conn = h.connect()
    conn.send(rawHeader(content="jabber:server"))
    assertHeaderError(conn, conn.received(), "invalid-namespace")


def test_headerWrongStreamsNamespace() -> None:
    """
    RFC 6120 §4.9.3.10: a root element outside the streams namespace gets
    invalid-namespace.
    """
    h = harness()
    conn = h.connect()
    conn.send(rawHeader(streams="urn:example:not-streams"))
    assertHeaderError(conn, conn.received(), "invalid-namespace")


@pytest.mark.parametrize("version", [None, "0.9", "0.0", "x"])
def test_headerUnsupportedVersion(version: str | None) -> None:
    """
    RFC 6120 §4.7.5 and §4.9.3.25: a header without version, or with a
    major version below 1, gets unsupported-version.
    """
    h = harness()
    conn = h.connect()
    conn.send(rawHeader(version=version))
    assertHeaderError(conn, conn.received(), "unsupported-version")


@pytest.mark.parametrize("to", ["evil.example", "alice@example.com", "example.com/res"])
def test_headerHostUnknown(to: str) -> None:
    """
    RFC 6120 §4.9.3.6: a 'to' that is not a served domain gets host-unknown,
    after our own header, which names a served domain and not the one
    the peer asked for.
    """
    h = harness()
    conn = h.connect()
    answer = conn.header(to=to)
    assertHeaderError(conn, answer, "host-unknown")
    assert to not in answer.headers[0].toXml()


def test_headerHostWithEmptyLabel() -> None:
    """
    RFC 6120 §4.9.3.6: a 'to' that is not a valid domain (an empty label,
    'a..b') gets host-unknown rather than an exception out of dataReceived.
    """
    h = harness()
    conn = h.connect()
    answer = conn.header(to="a..example.com")
    assertHeaderError(conn, answer, "host-unknown")


def test_headerDomainCaseInsensitive() -> None:
    """
    RFC 7622 §3.2: the domain in 'to' is compared after preparation, so
    upper case is the same served domain.
    """
    h = harness()
    conn = h.connect()
    answer = conn.header(to="EXAMPLE.COM")
    assert answer.headers[0]["from"] == DOMAIN
    assert not conn.closed


def test_headerWithoutToOneDomain() -> None:
    """
    RFC 6120 §4.7.2: 'to' may be absent; with a single served domain the
    stream is accepted for that domain.
    """
    h = harness()
    conn = h.connect()
    answer = conn.header(to=None)
    assert answer.headers[0]["from"] == DOMAIN
    assert answer.only("features")
    assert conn.authenticator.domain == DOMAIN
    assert not conn.closed


def test_headerWithoutToSeveralDomains() -> None:
    """
    RFC 6120 §4.7.2: with several served domains a header without 'to'
    cannot be routed and gets host-unknown, naming the first served domain.
    """
    h = makeServer(makeConfig(domains=[DOMAIN, "second.example"]))
    conn = h.connect()
    assertHeaderError(conn, conn.header(to=None), "host-unknown")


def test_headerWithoutToAfterRestart() -> None:
    """
    RFC 6120 §4.7.2: a client that omitted 'to' in its first header (and
    was accepted) may omit it after the STARTTLS restart as well.
    """
    h = harness()
    conn = h.connect()
    conn.header(to=None)
    conn.send(f"<starttls xmlns='{NS_TLS}'/>")
    conn.received()
    answer = conn.header(to=None)
    assert mechanisms(answer) == MECHANISMS


def test_headerDomainChangeAcrossRestart() -> None:
    """
    RFC 6120 §4.3.3: the restarted stream is for the same domain; another
    served domain gets host-unknown.
    """
    h = makeServer(makeConfig(domains=[DOMAIN, "second.example"], sasl={"mechanisms": MECHANISMS}))
    conn = h.connect()
    conn.header()
    conn.send(f"<starttls xmlns='{NS_TLS}'/>")
    conn.received()
    assert conn.header(to="second.example").streamError() == "host-unknown"


# --- STARTTLS -------------------------------------------------------------


def test_firstFeaturesRequireTLS() -> None:
    """
    RFC 6120 §5.3.1 and §5.4.1: the first features offer STARTTLS with
    <required/> and nothing else: no SASL mechanisms before TLS.
    """
    h = harness()
    conn = h.connect()
    features = conn.header().only("features")
    children = list(features.elements())
    assert [(c.uri, c.name) for c in children] == [(NS_TLS, "starttls")]
    assert [c.name for c in children[0].elements()] == ["required"]
    assert "mechanism" not in features.toXml()


def test_authBeforeTLS() -> None:
    """
    RFC 6120 §6.4.1 (via §5.3.1): <auth/> before TLS gets
    <failure><encryption-required/></failure>, and the stream stays open.
    """
    h = harness()
    conn = h.connect()
    conn.header()
    answer = conn.auth("PLAIN", plain())
    assert saslFailure(answer) == "encryption-required"
    assert not conn.closed
    assert conn.authenticator.account is None


def test_stanzaBeforeAuthentication() -> None:
    """
    RFC 6120 §4.9.3.16: a stanza before authentication gets the
    not-authorized stream error.
    """
    h = harness()
    conn = h.connect()
    conn.header()
    conn.send("<message to='bob@example.com'><body>hi</body></message>")
    assert conn.received().streamError() == "not-authorized"
    assert conn.closed


def test_stanzaAfterTLSBeforeAuthentication() -> None:
    """
    RFC 6120 §4.9.3.16: a stanza after TLS but before SASL gets the
    not-authorized stream error too.
    """
    h = harness()
    conn = tlsConnection(h)
    conn.send("<iq type='get' id='1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert conn.received().streamError() == "not-authorized"


def test_startTLS() -> None:
    """
    RFC 6120 §5.4.2.3 and §5.4.3.3: <starttls/> is answered with <proceed/>,
    TLS is started with the server's context factory, the stream is reset,
    and the new header is answered with the SASL mechanisms in configured
    order.
    """
    h = harness()
    conn = h.connect()
    conn.header()
    oldParser = conn.xs.stream
    conn.send(f"<starttls xmlns='{NS_TLS}'/>")
    proceed = conn.received()
    assert [(e.uri, e.name) for e in proceed.elements] == [(NS_TLS, "proceed")]
    assert conn.transport.tlsStarts == [h.tlsFactory]
    assert conn.xs.stream is not oldParser
    assert conn.authenticator.secure

    answer = conn.header()
    assert len(answer.headers) == 1
    assert mechanisms(answer) == MECHANISMS
    assert not conn.closed


def test_mechanismsFollowConfig() -> None:
    """
    RFC 6120 §6.3.3: the server offers the configured mechanisms only, in
    the configured order.
    """
    h = makeServer(makeConfig(sasl={"mechanisms": ["PLAIN"]}))
    assert mechanisms(h.connect().startTLS()) == ["PLAIN"]

    h = makeServer(makeConfig(sasl={"mechanisms": ["PLAIN", "SCRAM-SHA-1"]}))
    assert mechanisms(h.connect().startTLS()) == ["PLAIN", "SCRAM-SHA-1"]


def test_directTLS() -> None:
    """
    XEP-0368: on a direct TLS connection the first features offer the SASL
    mechanisms (with PLAIN, as the stream is protected) and no STARTTLS.
    """
    h = harness()
    conn = h.connect(directTLS=True)
    answer = conn.header()
    assert mechanisms(answer) == MECHANISMS
    assert "starttls" not in answer.raw
    assert conn.authenticator.secure


def test_startTLSPipelinedData() -> None:
    """
    RFC 6120 §5.4.3.3 (STARTTLS command injection): data sent in the same
    chunk after <starttls/> is never processed as part of the new stream;
    the connection is aborted.
    """
    h = harness()
    conn = h.connect()
    conn.header()
    conn.send(
        f"<starttls xmlns='{NS_TLS}'/>"
        f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{base64.b64encode(plain()).decode()}</auth>"
    )
    answer = conn.received()
    assert [e.name for e in answer.elements] == ["proceed"]
    assert conn.transport.aborted
    assert conn.closed
    assert conn.authenticator.account is None


def test_successPipelinedData() -> None:
    """
    RFC 6120 §6.4.6: data sent after the last SASL step, before the client
    saw <success/>, is not processed in the restarted stream; the
    connection is aborted.
    """
    h = harness()
    conn = tlsConnection(h)
    conn.send(
        f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{base64.b64encode(plain()).decode()}</auth>"
        f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>"
    )
    answer = conn.received()
    assert [e.name for e in answer.elements] == ["success"]
    assert conn.transport.aborted
    assert conn.authenticator.session is None


def test_startTLSAgain() -> None:
    """
    RFC 6120 §5.4.3.3 / §4.9.3.16: STARTTLS is not offered again after TLS;
    a second <starttls/> is not accepted.
    """
    h = harness()
    conn = tlsConnection(h)
    conn.send(f"<starttls xmlns='{NS_TLS}'/>")
    assert conn.received().streamError() == "not-authorized"
    assert len(conn.transport.tlsStarts) == 1


# --- SASL -----------------------------------------------------------------


def test_unknownMechanism() -> None:
    """
    RFC 6120 §6.5.6: an unknown mechanism gets invalid-mechanism.
    """
    h = harness()
    conn = tlsConnection(h)
    assert saslFailure(conn.auth("DIGEST-MD5", b"x")) == "invalid-mechanism"
    assert not conn.closed


def test_mechanismNotEnabled() -> None:
    """
    RFC 6120 §6.5.6: a known mechanism that is not offered (not in the
    configuration) gets invalid-mechanism.
    """
    h = makeServer(makeConfig(sasl={"mechanisms": ["SCRAM-SHA-256"]}))
    conn = tlsConnection(h)
    assert saslFailure(conn.auth("PLAIN", plain())) == "invalid-mechanism"
    assert conn.authenticator.account is None


def test_incorrectEncoding() -> None:
    """
    RFC 6120 §6.5.4: data that is not base64 gets incorrect-encoding.
    """
    h = harness()
    conn = tlsConnection(h)
    assert saslFailure(conn.auth("PLAIN", raw="not base64!")) == "incorrect-encoding"


def test_incorrectEncodingInResponse() -> None:
    """
    RFC 6120 §6.5.4: a <response/> that is not base64 gets
    incorrect-encoding too.
    """
    h = harness()
    conn = tlsConnection(h)
    assert conn.auth("PLAIN").only("challenge")
    assert saslFailure(conn.response(raw="@@@")) == "incorrect-encoding"


def test_emptyInitialResponse() -> None:
    """
    RFC 6120 §6.4.2: an initial response of '=' is an empty response, not
    bad base64: PLAIN gets malformed-request for empty data, SCRAM (which
    needs its client-first) an empty challenge.
    """
    h = harness()
    conn = tlsConnection(h)
    assert saslFailure(conn.auth("PLAIN", raw="=")) == "malformed-request"
    challenge = conn.auth("SCRAM-SHA-256", raw="=").only("challenge")
    assert str(challenge) == ""


def test_plainWithoutInitialResponse() -> None:
    """
    RFC 4422 §5 and RFC 6120 §6.4.2: without an initial response the server
    sends an empty challenge; the credentials then come in a <response/>.
    """
    h = harness()
    conn = tlsConnection(h)
    challenge = conn.auth("PLAIN").only("challenge")
    assert str(challenge) == ""
    assert conn.response(plain()).only().name == "success"


def test_plainSuccess() -> None:
    """
    RFC 6120 §6.4.6: PLAIN with the right password gets <success/>, the
    stream is reset, and the new header is answered with the bind feature
    only.
    """
    h = harness()
    conn = tlsConnection(h)
    answer = conn.auth("PLAIN", plain())
    assert [(e.uri, e.name) for e in answer.elements] == [(NS_SASL, "success")]
    assert conn.authenticator.account is not None
    assert conn.authenticator.account.jid == jid.JID(ALICE)
    assert conn.authenticator.mechanism == "PLAIN"

    features = conn.header().only("features")
    assert [(c.uri, c.name) for c in features.elements()] == [(NS_BIND, "bind")]


def test_plainWrongPassword() -> None:
    """
    RFC 6120 §6.5.10: a wrong password gets not-authorized; the stream stays
    open for another attempt.
    """
    h = harness()
    conn = tlsConnection(h)
    assert saslFailure(conn.auth("PLAIN", plain(password="wrong"))) == "not-authorized"
    assert not conn.closed
    assert conn.authenticator.account is None
    assert conn.auth("PLAIN", plain()).only().name == "success"


def test_plainUnknownUser() -> None:
    """
    RFC 6120 §6.5.10: an unknown user gets not-authorized, like a wrong
    password.
    """
    h = harness()
    conn = tlsConnection(h)
    assert saslFailure(conn.auth("PLAIN", plain(user="nobody"))) == "not-authorized"


def test_retryLimit() -> None:
    """
    RFC 6120 §6.4.5: past the retry limit (sasl.max_failures) the stream is
    closed with policy-violation.
    """
    h = harness(sasl={"mechanisms": MECHANISMS, "max_failures": 2})
    conn = tlsConnection(h)
    first = conn.auth("PLAIN", plain(password="wrong"))
    assert saslFailure(first) == "not-authorized"
    assert not conn.closed
    second = conn.auth("PLAIN", plain(password="wrong"))
    assert [e.name for e in second.elements] == ["failure", "error"]
    assert second.streamError() == "policy-violation"
    assert conn.closed


def test_abort() -> None:
    """
    RFC 6120 §6.4.4: <abort/> gets <failure><aborted/></failure>, and a
    <response/> afterwards belongs to no exchange.
    """
    h = harness()
    conn = tlsConnection(h)
    conn.auth("PLAIN")
    conn.send(f"<abort xmlns='{NS_SASL}'/>")
    assert saslFailure(conn.received()) == "aborted"
    assert saslFailure(conn.response(plain())) == "malformed-request"
    assert conn.authenticator.account is None


def scramLogin(
    conn: ClientConnection, mechanism: str = "SCRAM-SHA-256", user: str = "alice", password: str = PASSWORD
) -> tuple[ScramClient, Received, dict[str, str]]:
    """
    Run a SCRAM exchange with a real scramp client; return the client, the
    server's answer to the client-final message and the server-first
    attributes.
    """
    client = ScramClient([mechanism], user, password)
    challenge = conn.auth(mechanism, client.get_client_first().encode()).only("challenge")
    serverFirst = base64.b64decode(str(challenge)).decode()
    attributes = dict(part.split("=", 1) for part in serverFirst.split(","))
    client.set_server_first(serverFirst)
    return client, conn.response(client.get_client_final().encode()), attributes


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scramSuccess(mechanism: str) -> None:
    """
    RFC 5802 §3 and RFC 7677: a full SCRAM exchange with a real client
    succeeds; <success/> carries the server signature, which the client
    verifies.
    """
    h = harness()
    conn = tlsConnection(h)
    client, answer, attributes = scramLogin(conn, mechanism)
    assert attributes["i"] == "4096"
    success = answer.only("success")
    client.set_server_final(base64.b64decode(str(success)).decode())
    assert conn.authenticator.account is not None
    assert conn.authenticator.account.jid == jid.JID(ALICE)
    assert conn.authenticator.mechanism == mechanism


def test_scramWrongPassword() -> None:
    """
    RFC 5802 §5 / RFC 6120 §6.5.10: a SCRAM proof from the wrong password
    gets not-authorized.
    """
    h = harness()
    conn = tlsConnection(h)
    _, answer, _ = scramLogin(conn, password="wrong")
    assert saslFailure(answer) == "not-authorized"
    assert conn.authenticator.account is None


def test_scramUnknownUser() -> None:
    """
    RFC 5802 §5.1: for an unknown user the server-first message looks like
    a real one (salt, the usual iteration count), and the exchange fails
    exactly like a wrong password.
    """
    h = harness()
    conn = tlsConnection(h)
    _, wrong, _ = scramLogin(conn, password="wrong")
    _, unknown, attributes = scramLogin(conn, user="nobody")
    assert set(attributes) == {"r", "s", "i"}
    assert base64.b64decode(attributes["s"])
    assert attributes["i"] == "4096"
    assert unknown.only("failure").toXml() == wrong.only("failure").toXml()


# --- resource binding -----------------------------------------------------


def test_bindWithResource() -> None:
    """
    RFC 6120 §7.6.1: binding a resource returns the full JID, and a session
    is registered for it.
    """
    h = harness()
    conn = h.connect()
    conn.loginPlain()
    result = conn.bind("phone").only("iq")
    assert result["type"] == "result"
    assert result["id"] == "bind1"
    assert str(result.bind.jid) == "alice@example.com/phone"
    assert h.sessions.sessionFor(jid.JID("alice@example.com/phone")) is conn.authenticator.session


def test_bindWithoutResource() -> None:
    """
    RFC 6120 §7.6.2.1: without a resource (or with an empty one) the server
    generates one, different for each session.
    """
    h = harness()
    full = []
    for resource in (None, ""):
        conn = h.connect()
        conn.loginPlain()
        result = conn.bind(resource).only("iq")
        full.append(jid.JID(str(result.bind.jid)))
    assert all(j.userhost() == ALICE and j.resource for j in full)
    assert full[0] != full[1]


@pytest.mark.parametrize("resource", ["\u202e", "r" * 1024], ids=["prohibited", "too-long"])
def test_bindInvalidResource(resource: str) -> None:
    """
    RFC 6120 §7.7.2.1: a resource that is not a valid resourcepart (a
    prohibited character, or over 1023 octets) gets bad-request.
    """
    h = harness()
    conn = h.connect()
    conn.loginPlain()
    result = conn.bind(resource).only("iq")
    assert stanzaErrorCondition(result) == "bad-request"
    assert conn.authenticator.session is None
    assert not conn.closed


def test_bindResourceEmptyAfterPreparation() -> None:
    """
    RFC 7622 §3.4: a resourcepart is at least one character after
    preparation; a resource made only of characters mapped to nothing
    (U+200B) gets bad-request, not a "full" JID without a resource.
    """
    h = harness()
    conn = h.connect()
    conn.loginPlain()
    result = conn.bind("\u200b").only("iq")
    assert stanzaErrorCondition(result) == "bad-request"


def test_secondBind() -> None:
    """
    RFC 6120 §7.7.2.2 (one resource per stream): a second bind request gets
    not-allowed and the first resource stays bound.
    """
    h = harness()
    conn = boundConnection(h)
    result = conn.bind("other", iqID="bind2").only("iq")
    assert result["id"] == "bind2"
    assert stanzaErrorCondition(result) == "not-allowed"
    assert conn.authenticator.session is not None
    assert conn.authenticator.session.jid.resource == "phone"


def test_bindConflict() -> None:
    """
    RFC 6120 §7.7.2.2: binding a resource already in use closes the older
    stream with the conflict stream error.
    """
    h = harness()
    old = boundConnection(h)
    new = boundConnection(h)
    assert old.received().streamError() == "conflict"
    assert old.closed
    assert not new.closed
    assert h.sessions.sessionFor(jid.JID("alice@example.com/phone")) is new.authenticator.session


def test_bindFeatureOnlyAfterAuthentication() -> None:
    """
    RFC 6120 §7.2: a bind request before SASL gets not-authorized.
    """
    h = harness()
    conn = tlsConnection(h)
    assert conn.bind("phone").streamError() == "not-authorized"
    assert conn.authenticator.session is None


# --- bound stream ---------------------------------------------------------


def test_fromStamped() -> None:
    """
    RFC 6120 §8.1.2.1: the server stamps 'from' with the sender's full JID,
    also when the client gave its bare JID.
    """
    h = harness()
    alice = boundConnection(h, "phone")
    bob = boundConnection(h, "laptop", user="bob")
    alice.send("<message to='bob@example.com/laptop' type='chat'><body>one</body></message>")
    alice.send(
        "<message from='alice@example.com' to='bob@example.com/laptop' type='chat'><body>two</body></message>"
    )
    messages = bob.received().named("message")
    assert [str(m.body) for m in messages] == ["one", "two"]
    assert [m["from"] for m in messages] == ["alice@example.com/phone"] * 2


def test_spoofedFrom() -> None:
    """
    RFC 6120 §4.9.3.9 and §8.1.2.1: a 'from' that is not the client's own
    JID gets the invalid-from stream error, and the stanza is not routed.
    """
    h = harness()
    alice = boundConnection(h)
    bob = boundConnection(h, "laptop", user="bob")
    alice.send("<message from='bob@example.com/laptop' to='bob@example.com/laptop'><body>x</body></message>")
    assert alice.received().streamError() == "invalid-from"
    assert bob.received().named("message") == []


def test_iqWithoutID() -> None:
    """
    RFC 6120 §8.2.3: an iq without 'id' gets bad-request.
    """
    h = harness()
    conn = boundConnection(h)
    conn.send(f"<iq type='get' to='{DOMAIN}'><ping xmlns='{NS_PING}'/></iq>")
    assert stanzaErrorCondition(conn.received().only("iq")) == "bad-request"
    assert not conn.closed


def test_iqGetWithTwoChildren() -> None:
    """
    RFC 6120 §8.2.3: an iq get has exactly one child; two get bad-request.
    """
    h = harness()
    conn = boundConnection(h)
    conn.send(f"<iq type='get' id='2' to='{DOMAIN}'><ping xmlns='{NS_PING}'/><ping xmlns='{NS_PING}'/></iq>")
    assert stanzaErrorCondition(conn.received().only("iq")) == "bad-request"


def test_iqUnknownNamespace() -> None:
    """
    RFC 6120 §8.4: an iq get to the server in a namespace nobody handles
    gets service-unavailable, with the id of the request.
    """
    h = harness()
    conn = boundConnection(h)
    conn.send(f"<iq type='get' id='u1' to='{DOMAIN}'><query xmlns='urn:example:unknown'/></iq>")
    reply = conn.received().only("iq")
    assert reply["id"] == "u1"
    assert reply["to"] == "alice@example.com/phone"
    assert stanzaErrorCondition(reply) == "service-unavailable"


def test_malformedTo() -> None:
    """
    RFC 6120 §8.3.3.8: a 'to' that is not a JID gets jid-malformed.
    """
    h = harness()
    conn = boundConnection(h)
    conn.send("<message id='m1' to='a@b@c'><body>x</body></message>")
    assert stanzaErrorCondition(conn.received().only("message")) == "jid-malformed"


def test_malformedToEmptyLabel() -> None:
    """
    RFC 6120 §8.3.3.8: a 'to' whose domain has an empty label gets
    jid-malformed (not an exception logged as an error).
    """
    h = harness()
    conn = boundConnection(h)
    conn.send("<message id='m1' to='bob@a..example.com'><body>x</body></message>")
    assert stanzaErrorCondition(conn.received().only("message")) == "jid-malformed"


def test_ping() -> None:
    """
    XEP-0199 §4: a ping to the server is answered with an empty result.
    """
    h = harness()
    conn = boundConnection(h)
    conn.send(f"<iq type='get' id='p1' to='{DOMAIN}'><ping xmlns='{NS_PING}'/></iq>")
    reply = conn.received().only("iq")
    assert reply["type"] == "result"
    assert reply["id"] == "p1"
    assert reply["to"] == "alice@example.com/phone"
    assert list(reply.elements()) == []


def discoInfo(conn: ClientConnection, to: str | None) -> tuple[list[tuple[str, str]], list[str]]:
    attribute = f" to='{to}'" if to is not None else ""
    conn.send(f"<iq type='get' id='d1'{attribute}><query xmlns='{NS_DISCO_INFO}'/></iq>")
    reply = conn.received().only("iq")
    assert reply["type"] == "result", reply.toXml()
    query = reply.query
    identities = [(i["category"], i["type"]) for i in query.elements(NS_DISCO_INFO, "identity")]
    features = [f["var"] for f in query.elements(NS_DISCO_INFO, "feature")]
    return identities, features


def test_discoInfoServer() -> None:
    """
    XEP-0030 §3.1: disco#info to the server gives identity server/im and
    the features disco#info, disco#items and urn:xmpp:ping.
    """
    h = harness()
    conn = boundConnection(h)
    identities, features = discoInfo(conn, DOMAIN)
    assert identities == [("server", "im")]
    assert set(features) == {NS_DISCO_INFO, "http://jabber.org/protocol/disco#items", NS_PING}
    assert len(features) == len(set(features))


@pytest.mark.parametrize("to", [None, ALICE])
def test_discoInfoAccount(to: str | None) -> None:
    """
    RFC 6120 §10.3.3 and XEP-0030: disco#info without 'to' or to the own
    bare JID is answered for the account: identity account/registered.
    """
    h = harness()
    conn = boundConnection(h)
    identities, features = discoInfo(conn, to)
    assert identities == [("account", "registered")]
    assert NS_DISCO_INFO in features


def test_unsupportedStanzaType() -> None:
    """
    RFC 6120 §4.9.3.24: a top-level element that is not a stanza gets
    unsupported-stanza-type.
    """
    h = harness()
    conn = boundConnection(h)
    conn.send("<foo xmlns='urn:example:foo'/>")
    assert conn.received().streamError() == "unsupported-stanza-type"


def test_messageWithoutTo() -> None:
    """
    RFC 6120 §10.3.1: a message without 'to' is handled as if sent to the
    sender's bare JID: the account's other available resource gets it.
    """
    h = harness()
    phone = boundConnection(h, "phone")
    laptop = boundConnection(h, "laptop")
    laptop.send("<presence/>")
    laptop.received()
    phone.send("<message type='chat'><body>note to self</body></message>")
    messages = laptop.received().named("message")
    assert [str(m.body) for m in messages] == ["note to self"]
    assert messages[0]["to"] == ALICE


# --- timers ---------------------------------------------------------------


def test_authTimeout() -> None:
    """
    Resource limits (RFC 6120 §4.9.3.4): a stream not bound within
    limits.auth_timeout is closed with connection-timeout.
    """
    h = harness(limits={"auth_timeout": 10})
    conn = tlsConnection(h)
    h.clock.advance(9.9)
    assert not conn.closed
    h.clock.advance(0.2)
    assert conn.received().streamError() == "connection-timeout"
    assert conn.closed


def test_authTimeoutNotForBound() -> None:
    """
    Resource limits: the authentication timeout does not close a stream
    that bound a resource in time.
    """
    h = harness(limits={"auth_timeout": 10})
    conn = boundConnection(h)
    h.clock.advance(100)
    assert conn.output() == ""
    assert not conn.closed
    assert h.clock.getDelayedCalls() == []


def test_authTimeoutBeforeHeader() -> None:
    """
    RFC 6120 §4.9.1.2 and §4.8.2: a stream error sent before the client's
    header (here: the authentication timeout of a connection that never
    sent one) still opens our stream properly: content namespace
    jabber:client, 'from' a served domain.
    """
    # The handshake timeout would drop the connection first, without a word.
    h = harness(limits={"auth_timeout": 10, "handshake_timeout": 20})
    conn = h.connect()
    h.clock.advance(11)
    answer = conn.received()
    assert answer.streamError() == "connection-timeout"
    assert answer.headers[0].defaultUri == NS_CLIENT
    assert answer.headers[0].getAttribute("from") == DOMAIN


def test_keepalive() -> None:
    """
    RFC 6120 §4.6.1: with keepalive_interval = 30 a bound stream gets one
    whitespace character every 30 seconds.
    """
    h = harness(keepalive_interval=30)
    conn = boundConnection(h)
    conn.output()
    h.clock.advance(29)
    assert conn.output() == ""
    h.clock.advance(1)
    assert conn.output() == " "
    h.clock.advance(30)
    assert conn.output() == " "
    h.clock.advance(15)
    assert conn.output() == ""


def test_keepaliveOff() -> None:
    """
    RFC 6120 §4.6.1: with keepalive_interval = 0 (the default) nothing is
    sent on an idle bound stream.
    """
    h = harness()
    conn = boundConnection(h)
    h.clock.advance(3600)
    assert conn.output() == ""


def test_keepaliveStopsOnClose() -> None:
    """
    Robustness: keepalives stop when the connection is gone.
    """
    h = harness(keepalive_interval=30)
    conn = boundConnection(h)
    conn.transport.loseConnection()
    assert h.clock.getDelayedCalls() == []


# --- closing --------------------------------------------------------------


def test_clientClosesStream() -> None:
    """
    RFC 6120 §4.4: the client's </stream:stream> is answered with ours and
    the connection is closed.
    """
    h = harness()
    conn = boundConnection(h)
    conn.send("</stream:stream>")
    assert conn.output() == "</stream:stream>"
    assert conn.closed


def test_peerNeverCloses() -> None:
    """
    RFC 6120 §4.4 and resource limits: after our stream error the peer
    should close its side; one that never does has its connection cut after
    CLOSE_GRACE seconds, and only then is the stream forgotten.
    """
    h = harness()
    conn = h.connect()
    conn.transport.lingering = True
    conn.send(rawHeader(version="0.9"))
    assert conn.received().streamError() == "unsupported-version"
    assert conn.transport.disconnecting
    h.clock.advance(CLOSE_GRACE - 0.1)
    assert not conn.transport.aborted
    assert h.server.streams == {conn.authenticator}
    h.clock.advance(0.2)
    assert conn.transport.aborted
    assert conn.closed
    assert h.server.streams == set()


def test_streamsRegistry() -> None:
    """
    C2SServer.streams holds every connected stream, bound or not, until the
    connection is gone.
    """
    h = harness()
    first = h.connect()
    second = boundConnection(h)
    assert h.server.streams == {first.authenticator, second.authenticator}
    first.transport.loseConnection()
    assert h.server.streams == {second.authenticator}
    second.transport.loseConnection()
    assert h.server.streams == set()


def test_connectionLostUnbinds() -> None:
    """
    RFC 6120 §4.4: when the connection is lost the session is unbound, and
    the authenticator's closed Deferred fires.
    """
    h = harness()
    conn = boundConnection(h)
    full = jid.JID("alice@example.com/phone")
    assert h.sessions.sessionFor(full) is not None
    conn.transport.loseConnection()
    assert h.sessions.sessionFor(full) is None
    assert len(h.sessions) == 0
    assert conn.authenticator.closed.called
    assert conn.authenticator.session is not None and conn.authenticator.session.closed


# --- SASL EXTERNAL and the certificate's lifetime -------------------------


def externalConnection(h: ServerHarness, certificate: Any) -> tuple[ClientConnection, Received]:
    """
    A stream whose TLS handshake presented C{certificate}; returns it and
    the features after STARTTLS.
    """
    conn = h.connect()
    conn.authenticator.peerChain = (certificate,)
    return conn, conn.startTLS()


def test_externalOfferedFirst() -> None:
    """
    RFC 6120 §6.3.4, XEP-0178 §2: with a certificate that can log in,
    EXTERNAL is offered, before the other mechanisms.
    """
    h, certificate = certificateHarness()
    conn, features = externalConnection(h, certificate)
    assert mechanisms(features) == ["EXTERNAL", *MECHANISMS]
    answer = conn.auth("EXTERNAL", raw="=")
    assert answer.only().name == "success", answer.raw
    conn.header()
    assert conn.bind("phone").only("iq")["type"] == "result"
    assert conn.authenticator.account is not None
    assert conn.authenticator.account.jid.userhost() == ALICE


def test_externalUnregisteredTriedAnyway() -> None:
    """
    XEP-0178 §2: a presented certificate that cannot be mapped is not
    offered EXTERNAL; trying it anyway gets not-authorized and the stream
    is closed.
    """
    h, _ = certificateHarness()
    import datetime

    from xmppcert import x509 as certs

    stranger = certs.issueClientCertificate(
        [ALICE], certs.generateClientKey("ec"), now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    )
    conn, features = externalConnection(h, stranger)
    assert "EXTERNAL" not in mechanisms(features)
    answer = conn.auth("EXTERNAL", raw="=")
    assert saslFailure(answer) == "not-authorized"
    assert conn.closed


def test_externalWithoutCertificate() -> None:
    """
    XEP-0178: EXTERNAL with no certificate at all is not-authorized, and the
    stream stays open so the client can use another mechanism.
    """
    h, _ = certificateHarness()
    conn = tlsConnection(h)
    answer = conn.auth("EXTERNAL", raw="=")
    assert saslFailure(answer) == "not-authorized"
    assert not conn.closed
    answer = conn.auth("PLAIN", plain())
    assert answer.only().name == "success", answer.raw


def test_certificateExpiryClosesStream() -> None:
    """
    RFC 6120 §13.7.2.3 and §4.9.3.16: a stream authenticated with a
    certificate is closed with reset when the certificate expires, not
    before.
    """
    h, certificate = certificateHarness(days=2)
    conn, _ = externalConnection(h, certificate)
    assert conn.auth("EXTERNAL", raw="=").only().name == "success"
    conn.header()
    conn.bind("phone")
    left = certificate.not_valid_after_utc.timestamp() - h.clock.seconds()
    h.clock.advance(left - 1)
    assert not conn.closed
    h.clock.advance(1)
    assert conn.received().streamError() == "reset"
    assert conn.closed
    assert h.sessions.sessionFor(jid.JID(f"{ALICE}/phone")) is None


def test_passwordSessionHasNoExpiry() -> None:
    """
    RFC 6120 §13.7.2.3 concerns certificate logins only: a password login
    on a stream that presented a certificate is not closed at its expiry.
    """
    h, certificate = certificateHarness(days=2)
    conn, _ = externalConnection(h, certificate)
    assert conn.auth("PLAIN", plain()).only().name == "success"
    conn.header()
    conn.bind("phone")
    h.clock.advance(10 * 86400)
    assert not conn.closed
    assert conn.authenticator._expiry is None


def test_expiryTimerCancelledOnClose() -> None:
    """
    A stream that ends before its certificate expires leaves no timer
    behind.
    """
    h, certificate = certificateHarness(days=2)
    conn, _ = externalConnection(h, certificate)
    assert conn.auth("EXTERNAL", raw="=").only().name == "success"
    assert h.clock.getDelayedCalls()
    conn.send("</stream:stream>")
    assert conn.closed
    assert conn.authenticator._expiry is None
    assert h.clock.getDelayedCalls() == []


def test_tcpNoDelay() -> None:
    """
    Latency: every client connection turns Nagle's algorithm off, so the
    features sent after an asynchronous store lookup are not held back.
    """
    h = harness()
    assert h.connect().transport.noDelay is True
    assert h.connect(directTLS=True).transport.noDelay is True


# --- nothing is acted on after the stream is closed ------------------------


def test_noLoginPastRetryLimit() -> None:
    """
    RFC 6120 §6.4.5: once the retry limit closed the stream, further
    attempts are not even checked, though a peer that does not close TLS
    keeps sending them: the right password does not log in.
    """
    h = harness(sasl={"mechanisms": MECHANISMS, "max_failures": 1})
    conn = tlsConnection(h)
    conn.transport.lingering = True
    assert conn.auth("PLAIN", plain(password="wrong")).streamError() == "policy-violation"
    assert conn.auth("PLAIN", plain()).raw == ""
    conn.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    assert conn.received().raw == ""
    assert conn.authenticator.account is None
    assert len(h.sessions) == 0


def test_closedSessionNotRoutedNorActing() -> None:
    """
    XEP-0257 §2.4 / RFC 6120 §4.4: a session closed by the server (here a
    revocation's reset) is unbound at once, even while the peer keeps its
    side open; what it still sends is dropped, and stanzas for it are no
    longer delivered to it.
    """
    h = harness()
    phone = boundConnection(h, "phone")
    desk = boundConnection(h, "desk")
    phone.transport.lingering = True
    phone.received()
    session = h.sessions.sessionFor(jid.JID(f"{ALICE}/phone"))
    assert session is not None
    session.close(error.StreamError("reset", text="The certificate of this session was revoked"))
    assert phone.received().streamError() == "reset"
    assert not phone.closed  # the peer has not closed its side yet
    assert h.sessions.sessionFor(jid.JID(f"{ALICE}/phone")) is None
    desk.received()
    phone.send(f"<message to='{ALICE}/desk' type='chat'><body>still here</body></message>")
    assert desk.received().raw == ""
    desk.send(f"<message to='{ALICE}/phone' type='chat' id='m1'><body>hello</body></message>")
    assert phone.received().raw == ""
    bounce = desk.received().only("message")
    assert stanzaErrorCondition(bounce) == "service-unavailable"


def test_revokedBetweenLoginAndBind() -> None:
    """
    XEP-0257 §2.4: a certificate revoked after the store accepted a login
    but before that stream bound (nothing to close yet) still ends it, with
    reset at the bind; the bind does not happen.
    """
    from xmppcert import x509 as certs

    h, certificate = certificateHarness()
    conn, _ = externalConnection(h, certificate)
    assert conn.auth("EXTERNAL", raw="=").only().name == "success"
    conn.header()
    assert h.sessions.closeSessionsWithCertificate(certs.fingerprint(certificate)) == 0
    answer = conn.bind("phone")
    assert answer.streamError() == "reset"
    assert answer.named("iq") == []
    assert h.sessions.sessionFor(jid.JID(f"{ALICE}/phone")) is None


def test_revokedBeforeLoginStarted() -> None:
    """
    Only revocations during the login count: a certificate whose sessions
    were closed before (e.g. removed, then registered again) binds.
    """
    from xmppcert import x509 as certs

    h, certificate = certificateHarness()
    h.sessions.closeSessionsWithCertificate(certs.fingerprint(certificate))
    conn, _ = externalConnection(h, certificate)
    assert conn.auth("EXTERNAL", raw="=").only().name == "success"
    conn.header()
    assert conn.bind("phone").only("iq")["type"] == "result"


def test_expiryFromLeafOnly() -> None:
    """
    RFC 6120 §13.7.2.3: the session lives as long as the client's own
    certificate; an expired extra certificate sent along (unverified, e.g.
    an old cross-signed root) does not cut it short.
    """
    import datetime

    from xmppcert import x509 as certs

    h, certificate = certificateHarness(days=30)
    old = certs.issueClientCertificate(
        [ALICE], certs.generateClientKey("ec"),
        now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=400), days=10,
    )
    conn = h.connect()
    conn.authenticator.peerChain = (certificate, old)
    conn.startTLS()
    assert conn.auth("EXTERNAL", raw="=").only().name == "success"
    conn.header()
    assert conn.bind("phone").only("iq")["type"] == "result"
    h.clock.advance(86400)
    assert not conn.closed


def test_expiryFromTheCheckersChain() -> None:
    """
    RFC 6120 §13.7.2.3: when the checker says the session must end earlier
    than the leaf expires (the CA checker: an intermediate of the
    validated chain expires first), the stream is closed with reset then.
    """
    from twisted.cred.checkers import ICredentialsChecker
    from twisted.cred.portal import Portal
    from twisted.internet import defer
    from zope.interface import implementer

    from xmppcert import x509 as certs
    from xmppcert.cred import AccountRealm, CertificateIdentity, IClientCertificate

    h, certificate = certificateHarness(days=30)
    deadline = h.clock.seconds() + 3600

    @implementer(ICredentialsChecker)
    class ShortChain:
        credentialInterfaces = (IClientCertificate,)

        def requestAvatarId(self, creds: Any) -> Any:
            return defer.succeed(
                CertificateIdentity(jid.JID(ALICE), certs.fingerprint(creds.chain[0]), notAfter=deadline)
            )

    h.server.portal = Portal(AccountRealm(), [ShortChain()])
    conn, _ = externalConnection(h, certificate)
    assert conn.auth("EXTERNAL", raw="=").only().name == "success"
    conn.header()
    assert conn.bind("phone").only("iq")["type"] == "result"
    h.clock.advance(3599)
    assert not conn.closed
    h.clock.advance(1)
    assert conn.received().streamError() == "reset"
    assert conn.closed


def test_fromComparedPrepared() -> None:
    """
    RFC 6120 §8.1.2.1: a 'from' that is the session's own JID in another
    case is accepted (and stamped); another JID is invalid-from.
    """
    h = harness()
    conn = boundConnection(h, "phone")
    conn.send("<presence from='Alice@Example.com/phone'/>")
    assert not conn.closed
    conn.send(f"<message from='bob@example.com/x' to='{ALICE}'><body>x</body></message>")
    assert conn.received().streamError() == "invalid-from"


def test_toNormalised() -> None:
    """
    RFC 7622 §3.2: 'to' is routed in its prepared form: a final dot and
    upper case still reach the local session.
    """
    h = harness()
    phone = boundConnection(h, "phone")
    desk = boundConnection(h, "desk", user="bob")
    phone.received()
    desk.send("<message to='Alice@Example.com./phone' type='chat'><body>hi</body></message>")
    message = phone.received().only("message")
    assert message["to"] == f"{ALICE}/phone"
    assert str(message.body) == "hi"


def test_pinnedResourceComparedPrepared() -> None:
    """
    XEP-0257 §3 with RFC 7622 §3.4: the requested resource is compared with
    the pinned one after preparation, so an equivalent spelling binds it;
    another resource is not-allowed.
    """
    h, certificate = certificateHarness()
    conn, _ = externalConnection(h, certificate)
    authzid = f"{ALICE}/fi".encode()
    assert conn.auth("EXTERNAL", authzid).only().name == "success"
    conn.header()
    refused = conn.bind("tablet").only("iq")
    assert stanzaErrorCondition(refused) == "not-allowed"
    bound = conn.bind("\ufb01", iqID="bind2").only("iq")
    assert bound["type"] == "result"
    assert str(bound.bind.jid) == f"{ALICE}/fi"


def test_abortWhileStepChecked() -> None:
    """
    RFC 6120 §6.4.4: an abort sent while a step is still being checked is
    answered with aborted, and that step's late outcome is dropped: never
    a failure followed by a success; a new attempt then works.
    """
    from twisted.cred.portal import Portal
    from twisted.internet import defer

    from xmppcert.cred import AccountRealm, ScramChecker, StoredPasswordChecker

    h = harness()
    calls: list[tuple[defer.Deferred[Any], Any, tuple[Any, ...]]] = []

    def slowThread(f: Any, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        calls.append((d, f, args))
        return d

    h.server.portal = Portal(AccountRealm(), [ScramChecker(), StoredPasswordChecker(h.store, deferToThread=slowThread)])
    conn = tlsConnection(h)
    assert conn.auth("PLAIN", plain()).raw == ""
    conn.send(f"<abort xmlns='{NS_SASL}'/>")
    assert saslFailure(conn.received()) == "aborted"
    d, f, args = calls.pop()
    d.callback(f(*args))
    assert conn.received().raw == ""
    assert conn.authenticator.account is None
    assert conn.auth("PLAIN", plain()).raw == ""
    d, f, args = calls.pop()
    d.callback(f(*args))
    assert conn.received().only().name == "success"


def test_boundSessionFacts() -> None:
    """
    Control channel, `xmppcert sessions`: a bound session records its
    transport, the peer's address and when it bound (the injected clock),
    beside how it logged in.
    """
    h = makeServer()
    h.clock.advance(1_700_000_000)
    conn = h.connect()
    conn.bound("phone")
    session = h.sessions.sessionFor(jid.JID(f"{ALICE}/phone"))
    assert session is not None
    assert session.info["transport"] == "tcp"
    assert session.info["address"] == "192.0.2.7:40000"
    assert session.info["boundAt"] == 1_700_000_000
    assert session.info["mechanism"] == "PLAIN"


def test_lockedBetweenLoginAndBind() -> None:
    """
    `xmppcert user lock`: an account locked after the store accepted a
    login but before that stream bound still loses it, with the lock's
    stream error at the bind; a login that starts after the lock is
    refused by SASL instead (account-disabled).
    """
    from tests.helpers import resultOf
    from xmppcert.sessions import accountLockedError

    h = makeServer()
    conn = h.connect()
    conn.loginPlain()
    h.sessions.closeSessionsOf(jid.JID(ALICE), accountLockedError(), barLogins=True)
    answer = conn.bind("phone")
    assert answer.streamError() == "not-authorized"
    assert answer.named("iq") == []
    assert h.sessions.sessionFor(jid.JID(f"{ALICE}/phone")) is None
    resultOf(h.store.setAccountLocked(ALICE, True))
    later = h.connect()
    later.startTLS()
    refusal = later.auth("PLAIN", f"\0alice\0{PASSWORD}".encode()).only("failure")
    assert [c.name for c in refusal.elements()][0] == "account-disabled"


def test_passwordChangedBetweenLoginAndBind() -> None:
    """
    `xmppcert user passwd`: a password login checked against the old
    password before the change, which binds after it, is ended with reset
    at the bind like the password sessions already bound; a certificate
    login in progress binds.
    """
    from tests.helpers import resultOf
    from xmppcert.control import ControlChannel

    h, certificate = certificateHarness()
    desk = h.connect()
    desk.loginPlain()
    phone, _ = externalConnection(h, certificate)
    assert phone.auth("EXTERNAL", raw="=").only().name == "success"
    phone.header()
    channel = ControlChannel(h.sessions, h.store, h.clock)
    assert resultOf(channel.passwordChanged(ALICE, "control:test")) == 0
    answer = desk.bind("desk")
    assert answer.streamError() == "reset"
    assert answer.named("iq") == []
    assert h.sessions.sessionFor(jid.JID(f"{ALICE}/desk")) is None
    assert phone.bind("phone").only("iq")["type"] == "result"


def removeDomain(h: ServerHarness) -> None:
    """
    Do what a reload that stops serving L{DOMAIN} does to the server.
    """
    import dataclasses

    from tests.helpers import OTHER_DOMAIN

    h.server.config = dataclasses.replace(h.server.config, domains=(OTHER_DOMAIN,))
    h.server.sessions.domains = frozenset([OTHER_DOMAIN])


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "EXTERNAL"])
def test_domainRemovedDuringLogin(mechanism: str) -> None:
    """
    Reload: a stream whose header named a domain that a reload then stopped
    serving cannot log in to it, by any mechanism, even with good
    credentials: not-authorized, and the stream is closed.
    """
    h, certificate = certificateHarness()
    conn, _ = externalConnection(h, certificate)
    if mechanism == "PLAIN":
        removeDomain(h)
        answer = conn.auth("PLAIN", plain())
    elif mechanism == "EXTERNAL":
        removeDomain(h)
        answer = conn.auth("EXTERNAL", raw="=")
    else:
        client = ScramClient([mechanism], "alice", PASSWORD)
        challenge = conn.auth(mechanism, client.get_client_first().encode()).only("challenge")
        client.set_server_first(base64.b64decode(str(challenge)).decode())
        removeDomain(h)
        answer = conn.response(client.get_client_final().encode())
    assert saslFailure(answer) == "not-authorized"
    assert conn.authenticator.account is None
    assert conn.closed


def test_domainRemovedBeforeBind() -> None:
    """
    Reload, RFC 6120 §4.9.3.5: a stream that logged in to a domain a reload
    then stopped serving cannot bind in it: host-gone, and no session.
    """
    h = harness()
    conn = h.connect()
    conn.loginPlain()
    removeDomain(h)
    answer = conn.bind("phone")
    assert answer.streamError() == "host-gone"
    assert answer.named("iq") == []
    assert h.sessions.sessionFor(jid.JID(f"{ALICE}/phone")) is None


def test_storeFailureAtLoginIsOneLogLine() -> None:
    """
    Rules that hold everywhere: a store that fails (locked, read-only) makes
    logins answer temporary-auth-failure (RFC 6120 §6.5.11), logged as one
    error line a minute at most, not as a traceback per attempt a peer can
    repeat at will; nothing at critical.
    """
    import sqlite3

    from twisted.logger import LogLevel, capturedLogs

    from xmppcert.testing import InMemoryAccountStore

    class BrokenStore(InMemoryAccountStore):
        def getScramCredential(self, jid: str, mechanism: str) -> Any:
            from twisted.internet import defer

            return defer.fail(sqlite3.OperationalError("database is locked"))

    store = BrokenStore()
    h = makeServer(makeConfig(sasl={"mechanisms": MECHANISMS, "max_failures": 10}), store=store)
    conn = h.connect()
    conn.startTLS()
    with capturedLogs() as events:
        for _ in range(3):
            assert saslFailure(conn.auth("PLAIN", plain())) == "temporary-auth-failure"
    levels = [e["log_level"] for e in events]
    assert LogLevel.critical not in levels
    assert levels.count(LogLevel.error) == 1


def test_localStreamObservers() -> None:
    """
    The bound stream's dispatcher behaves as Twisted's EventDispatcher for
    the handlers: higher priority first, then in registration order; a
    method registered twice for one query is one observer; a one-time
    observer runs once; observers added or removed while a stanza is
    dispatched take effect for the next one; named events still work; and
    dispatch says whether any observer matched.
    """
    from twisted.words.xish import domish

    from xmppcert.c2s.bound import LocalStream

    local = LocalStream(channel=None)
    calls: list[str] = []

    def record(name: str) -> Any:
        return lambda element, *args: calls.append(name + "".join(args))

    iqs = "/iq"
    first, late, once = record("first"), record("late"), record("once")
    local.addObserver(iqs, first)
    local.addObserver(iqs, first)
    local.addObserver("/iq[@type='get']", record("get"), 0, "!")
    local.addObserver(iqs, record("high"), 10)
    local.addOnetimeObserver(iqs, once)

    def addAndRemove(element: domish.Element) -> None:
        calls.append("changer")
        local.addObserver(iqs, late)
        local.removeObserver(iqs, first)

    local.addObserver(iqs, addAndRemove, 5)
    named: list[object] = []
    local.addObserver("//event/test", named.append)

    iq = domish.Element((None, "iq"))
    iq["type"] = "get"
    assert local.dispatch(iq) is True
    assert calls == ["high", "changer", "first", "get!", "once"]
    calls.clear()
    local.removeObserver(iqs, addAndRemove)
    assert local.dispatch(iq) is True
    assert calls == ["high", "get!", "late"]
    assert local.dispatch(domish.Element((None, "message"))) is False
    local.dispatch("payload", "//event/test")
    assert named == ["payload"]


# --- handlers made at the first request ---------------------------------------


class _Recording(XMPPHandler):
    """
    A handler that answers pings and records its life.
    """

    def __init__(self, log: list[str]) -> None:
        XMPPHandler.__init__(self)
        self.log = log

    def connectionInitialized(self) -> None:
        self.log.append("initialized")
        self.xmlstream.addObserver(f"/iq[@type='get']/ping[@xmlns='{NS_PING}']", self._onPing)

    def _onPing(self, iq: Any) -> None:
        iq.handled = True
        self.log.append("ping")
        self.xmlstream.send(xmlstream.toResponse(iq, "result"))

    def connectionLost(self, reason: Any) -> None:
        self.log.append("lost")


def _lazyHarness(log: list[str], eager: list[str]) -> ServerHarness:
    def lazyFactory(context: StreamContext) -> list[XMPPHandler]:
        log.append("made")
        return [_Recording(log)]

    def eagerFactory(context: StreamContext) -> list[XMPPHandler]:
        eager.append("made")
        return []

    h = harness()
    h.server.handlerFactories = [OnFirstRequest(lazyFactory), eagerFactory]
    return h


def test_onFirstRequestHandlersMadeAtFirstRequest() -> None:
    """
    Memory of idle sessions: the handlers of an OnFirstRequest factory are
    made when the client first sends an iq to the server, before that iq is
    dispatched (so they answer it), and only once; a plain factory's at
    bind.
    """
    log: list[str] = []
    eager: list[str] = []
    h = _lazyHarness(log, eager)
    conn = h.connect()
    full = conn.bound()
    assert eager == ["made"] and log == []
    conn.send(f"<presence/><message to='{full.userhost()}' type='chat'><body>hi</body></message>")
    conn.received()
    assert log == []
    conn.send(f"<iq type='get' id='p1' to='{DOMAIN}'><ping xmlns='{NS_PING}'/></iq>")
    assert conn.received().only("iq")["type"] == "result"
    conn.send(f"<iq type='get' id='p2' to='{DOMAIN}'><ping xmlns='{NS_PING}'/></iq>")
    assert conn.received().only("iq")["type"] == "result"
    assert log == ["made", "initialized", "ping", "ping"]
    conn.xs.connectionLost(failure.Failure(Exception("gone")))
    assert log[-1] == "lost"


def test_onFirstRequestNeverMade() -> None:
    """
    A session that ends before any request to the server never makes the
    handlers, and ends cleanly; an unanswered request still gets
    service-unavailable (RFC 6120 section 8.4) once they are made.
    """
    log: list[str] = []
    h = _lazyHarness(log, [])
    conn = h.connect()
    conn.bound()
    conn.xs.connectionLost(failure.Failure(Exception("gone")))
    assert log == []

    other = h.connect()
    other.bound(resource="laptop")
    other.send(f"<iq type='get' id='v1' to='{DOMAIN}'><query xmlns='jabber:iq:version'/></iq>")
    assert stanzaErrorCondition(other.received().only("iq")) == "service-unavailable"
    assert log == ["made", "initialized"]


def test_onFirstRequestEqualsItsFactory() -> None:
    """
    docs/extending.md: a wrapped factory compares equal to the factory it
    wraps, so handlerFactories.remove(factory) takes it out.
    """

    def factory(context: StreamContext) -> list[XMPPHandler]:
        return []

    factories: list[Any] = [OnFirstRequest(factory)]
    assert factory in factories
    factories.remove(factory)
    assert factories == []


class _CatchAll(XMPPHandler):
    """
    An embedder's fallback: answers any iq get no handler before it took.
    """

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/iq[@type='get']", self._onGet)

    def _onGet(self, iq: Any) -> None:
        if not getattr(iq, "handled", False):
            iq.handled = True
            self.xmlstream.send(xmlstream.toResponse(iq, "error"))


@pytest.mark.parametrize("wrapped", [False, True])
def test_onFirstRequestKeepsFactoryOrder(wrapped: bool) -> None:
    """
    docs/embedding.md: extra handler factories come after the built-in
    ones, also when the built-in handlers are made later (at the first
    request): one answer to one iq (RFC 6120 section 8.2.3).
    """
    from xmppcert.handlers import defaultHandlers

    h = harness()
    builtIn = OnFirstRequest(defaultHandlers) if wrapped else defaultHandlers
    h.server.handlerFactories = [builtIn, lambda context: [_CatchAll()]]
    conn = h.connect()
    conn.bound()
    conn.send(f"<iq type='get' id='p1' to='{DOMAIN}'><ping xmlns='{NS_PING}'/></iq>")
    assert [e.getAttribute("type") for e in conn.received().named("iq")] == ["result"]
