"""
Property-based robustness tests for XEP-0257 request parsing
(L{xmppcert.saslcert}): L{AppendRequest}, L{NameRequest} and
L{CertificateItem} from random element trees, L{CertificateManager.append}
with random and odd certificates, and the same requests over a bound
client stream.

The rule (docs/xep-0257.md, "Errors"): a request gets a value object or a
C{StanzaError}; parsing refuses only with C{bad-request}, and the manager
only with the documented conditions; never another exception, which the
client would see as C{internal-server-error} and the log as an error.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from hypothesis import event, example, given
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.python import failure
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish

from tests.helpers import ALICE, BOB, addAccount, parseOutput, stanzaErrorCondition
from tests.test_properties_x509 import (
    EC_KEY,
    NOW,
    SEEDS,
    VERSION_4,
    anyCertificateInput,
    der,
    mutatedDER,
    sanCertificate,
)
from tests.test_properties_xmlstream import (
    FAST,
    SLOW,
    STARTTLS,
    assertStillServing,
    bindRequest,
    header,
    noUnexpectedLogs,
    plainAuth,
    serverHarness,
    settle,
    xmlChars,
)
from tests.test_saslcert import CertificateManager
from xmppcert import x509
from xmppcert.config import LimitsConfig
from xmppcert.saslcert import (
    MAX_X509CERT_TEXT,
    NS_SASLCERT,
    AppendRequest,
    CertificateItem,
    NameRequest,
    Requester,
)
from xmppcert.store.interfaces import MAX_CERTIFICATE_NAME
from xmppcert.testing import InMemoryAccountStore

#: Certificates for the account: the common case, and one per shape the
#: manager must refuse or accept.
ALICE_DER = der(x509.issueClientCertificate([ALICE], EC_KEY, now=NOW - datetime.timedelta(days=1), days=30))
CERTIFICATE_DERS = [
    ALICE_DER,
    der(x509.issueClientCertificate([ALICE, BOB], EC_KEY, now=NOW - datetime.timedelta(days=1), days=30)),
    der(x509.issueClientCertificate([f"{ALICE}/phone"], EC_KEY, now=NOW - datetime.timedelta(days=1), days=30)),
    der(x509.issueClientCertificate([BOB], EC_KEY, now=NOW - datetime.timedelta(days=1), days=30)),
    der(x509.issueClientCertificate([ALICE], EC_KEY, now=NOW - datetime.timedelta(days=100), days=30)),
    der(x509.issueClientCertificate([], EC_KEY, now=NOW - datetime.timedelta(days=1), days=30)),
    *SEEDS,
]

#: docs/xep-0257.md: what append may answer, besides success.
APPEND_CONDITIONS = {
    "bad-request": "modify",
    "not-acceptable": "modify",
    "conflict": "cancel",
    "resource-constraint": "wait",
}

#: docs/xep-0257.md: what any request of a session with certificate
#: management may get, besides a result.
REQUEST_CONDITIONS = {**APPEND_CONDITIONS, "item-not-found": "cancel", "forbidden": "auth"}


# --- random element trees -----------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """
    The description of an element: namespace, name, content (text pieces
    and child nodes, in order).
    """

    uri: str
    name: str
    content: tuple[Any, ...] = field(default=())

    def build(self) -> domish.Element:
        element = domish.Element((self.uri, self.name))
        for piece in self.content:
            if isinstance(piece, Node):
                element.addChild(piece.build())
            else:
                element.addContent(piece)
        return element


def b64Wrapped(data: bytes, width: int) -> str:
    """
    Base64 wrapped in lines, with the indentation of the XEP's examples.
    """
    encoded = base64.b64encode(data).decode()
    return "\n    " + "\n    ".join(encoded[i : i + width] for i in range(0, len(encoded), width)) + "\n  "


texts = st.one_of(
    st.text(xmlChars, max_size=20),
    st.sampled_from(["", " ", "\n\t ", "Phone", " Phone ", "a\u0085b", "\u00a0", "x" * MAX_CERTIFICATE_NAME,
                     " " + "x" * MAX_CERTIFICATE_NAME + " ", "x" * (MAX_CERTIFICATE_NAME + 1), "=", "AAAA", "QQ",
                     "QQ==", "Q Q = =", "A" * MAX_X509CERT_TEXT, "A" * (MAX_X509CERT_TEXT + 4), "é"]),
    st.sampled_from(CERTIFICATE_DERS).map(lambda d: base64.b64encode(d).decode()),
    st.tuples(st.sampled_from(CERTIFICATE_DERS), st.sampled_from([64, 76])).map(lambda t: b64Wrapped(*t)),
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
)

CHILD_NAMES = ["name", "name", "x509cert", "x509cert", "no-cert-management", "users", "resource", "item", "x"]
URIS = [NS_SASLCERT, NS_SASLCERT, NS_SASLCERT, "urn:xmpp:saslcert:0", "jabber:client", ""]


@st.composite
def node(draw: st.DrawFn, name: str | None = None, depth: int = 0) -> Node:
    uri = NS_SASLCERT if name is not None else draw(st.sampled_from(URIS))
    name = name if name is not None else draw(st.sampled_from(CHILD_NAMES))
    pieces: list[Any] = []
    if depth < 2:
        pieces = draw(st.lists(st.one_of(texts, texts, node(depth=depth + 1)), max_size=4 if depth else 6))
    return Node(uri, name, tuple(pieces))


@st.composite
def nearValid(draw: st.DrawFn, name: str) -> Node:
    """
    A request that is right but for a few details: a <name/> and an
    <x509cert/> with random or right text, maybe <no-cert-management/>, in
    any order with random extra children.
    """
    pieces: list[Any] = [
        Node(NS_SASLCERT, "name", (draw(st.sampled_from(["Phone", " Laptop\n", "été"])),)),
        Node(NS_SASLCERT, "x509cert", (draw(texts),)),
    ]
    if draw(st.booleans()):
        pieces.append(Node(NS_SASLCERT, "no-cert-management"))
    pieces.extend(draw(st.lists(node(depth=1), max_size=2)))
    return Node(NS_SASLCERT, name, tuple(draw(st.permutations(pieces))))


def firstText(element: domish.Element) -> str:
    return next((c for c in element.children if isinstance(c, str)), "")


def children(element: domish.Element, name: str) -> list[domish.Element]:
    return [c for c in element.elements() if (c.uri, c.name) == (NS_SASLCERT, name)]


def modelName(element: domish.Element) -> str | None:
    """
    docs/xep-0257.md: exactly one <name/> whose text, stripped, is 1 to 255
    characters without control characters; else bad-request (None).
    """
    found = children(element, "name")
    if len(found) != 1:
        return None
    stripped = firstText(found[0]).strip()
    if not stripped or len(stripped) > MAX_CERTIFICATE_NAME:
        return None
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in stripped):
        return None
    return stripped


def modelCertificate(element: domish.Element) -> bytes | None:
    """
    docs/xep-0257.md: exactly one non-empty <x509cert/> of at most 43698
    characters that is base64 once whitespace is removed; else
    bad-request (None).
    """
    found = children(element, "x509cert")
    if len(found) != 1:
        return None
    text = firstText(found[0])
    if not text.strip() or len(text) > MAX_X509CERT_TEXT:
        return None
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def parsed(parse: Any, element: domish.Element) -> Any:
    """
    The value object, or the StanzaError's condition and type.
    """
    try:
        return parse(element)
    except error.StanzaError as e:
        assert (e.condition, e.type) == ("bad-request", "modify"), (e.condition, e.type)
        return None


@FAST
@given(st.one_of(node(name="append"), nearValid("append")))
def test_appendFromElement(description: Node) -> None:
    """
    XEP-0257 §2.1 and docs/xep-0257.md: any <append/> tree gives exactly
    the AppendRequest the documented rules describe (stripped name, DER
    from whitespace-separated base64, canManage unless
    <no-cert-management/>), or bad-request; never another exception.
    """
    element = description.build()
    result = parsed(AppendRequest.fromElement, element)
    name, data = modelName(element), modelCertificate(element)
    if name is None or data is None:
        assert result is None, result
        event("bad-request")
        return
    assert result == AppendRequest(name, data, not children(element, "no-cert-management"))
    event("request")


@FAST
@given(st.sampled_from(["disable", "revoke"]), st.data())
def test_nameRequestFromElement(verb: str, data: st.DataObject) -> None:
    """
    XEP-0257 §2.3, §2.4 and docs/xep-0257.md: any <disable/> or <revoke/>
    tree gives the NameRequest with the stripped name, or bad-request.
    """
    element = data.draw(node(name=verb)).build()
    result = parsed(NameRequest.fromElement, element)
    name = modelName(element)
    if name is None:
        assert result is None, result
    else:
        assert result == NameRequest(verb, name)


@FAST
@given(st.one_of(node(name="item"), nearValid("item")))
def test_certificateItemFromElement(description: Node) -> None:
    """
    XEP-0257 §2.2: any <item/> tree gives the CertificateItem with the
    name, the DER and the resources of its <users/>, or bad-request.
    """
    element = description.build()
    result = parsed(CertificateItem.fromElement, element)
    name, data = modelName(element), modelCertificate(element)
    if name is None or data is None:
        assert result is None, result
        return
    resources = tuple(firstText(r) for users in children(element, "users") for r in children(users, "resource"))
    assert result == CertificateItem(name, data, resources)


# --- the manager ------------------------------------------------------------------------


class NoSessions:
    """
    What CertificateManager asks of the session registry: nobody is logged
    in.
    """

    def resourcesWithCertificate(self, account: jid.JID, fingerprint: str) -> list[str]:
        return []

    def closeSessionsWithCertificate(self, fingerprint: str, why: str = "revoked") -> int:
        return 0


def appendOutcome(d: defer.Deferred[None]) -> str:
    """
    C{"ok"}, or the condition of the StanzaError C{d} failed with, after
    checking it is a documented one with its documented type.
    """
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the manager did not answer at once over an in-memory store"
    if not isinstance(results[0], failure.Failure):
        return "ok"
    assert results[0].check(error.StanzaError), results[0].getTraceback()
    value = results[0].value
    assert isinstance(value, error.StanzaError)
    assert APPEND_CONDITIONS.get(value.condition) == value.type, (value.condition, value.type)
    return str(value.condition)


certificateData = st.one_of(
    anyCertificateInput,
    mutatedDER(),
    st.sampled_from(CERTIFICATE_DERS),
    sanCertificate().map(lambda made: der(made.certificate)),
    st.sampled_from(CERTIFICATE_DERS).map(lambda d: d + b"\0"),
)


@SLOW
@given(
    st.lists(st.tuples(st.sampled_from(["Phone", "Laptop", " Phone "]), certificateData), min_size=1, max_size=3),
    st.booleans(),
    st.integers(0, 2),
)
@example([("Phone", VERSION_4)], True, 0)
def test_managerAppend(requests: list[tuple[str, bytes]], requireXmppAddr: bool, maxPerAccount: int) -> None:
    """
    XEP-0257 §2.1 and docs/xep-0257.md: appending any data as a
    certificate (random bytes, mutated or trailing DER, expired, foreign,
    huge or odd subjectAltNames), once or repeatedly, succeeds or fails
    with a documented StanzaError (bad-request, not-acceptable, conflict,
    resource-constraint) of the documented type; never another exception.
    Only data that loads as one canonical X.509 certificate is ever stored.
    """
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    store = InMemoryAccountStore(clock=clock.seconds)
    addAccount(store, ALICE)
    manager = CertificateManager(store, NoSessions(), clock, requireXmppAddr, maxPerAccount)
    with noUnexpectedLogs():
        for name, data in requests:
            answer = appendOutcome(manager.append(Requester(jid.JID(ALICE)), AppendRequest(name, data)))
            event(f"append: {answer}")
            if answer == "ok":
                certificate = x509.loadCertificate(data)
                assert der(certificate) == data
                assert store.certificates[x509.fingerprint(certificate)].der == data


# --- over a bound client stream ---------------------------------------------------------------


@st.composite
def saslcertRequest(draw: st.DrawFn) -> Node:
    verb = draw(st.sampled_from(["append", "append", "append", "disable", "revoke", "items"]))
    if verb == "append" and draw(st.booleans()):
        # A well-formed append: only the certificate varies.
        data = draw(certificateData)
        return Node(
            NS_SASLCERT,
            "append",
            (
                Node(NS_SASLCERT, "name", (draw(st.sampled_from(["Phone", "Laptop"])),)),
                Node(NS_SASLCERT, "x509cert", (base64.b64encode(data).decode(),)),
            ),
        )
    return draw(st.one_of(node(name=verb), nearValid(verb)))


def boundAlice(h: Any) -> Any:
    conn = h.connect()
    for data in (header(), STARTTLS, header(), plainAuth(), header(), bindRequest("phone")):
        conn.send(data)
    conn.output()
    return conn


def appendIQ(payload: Node, iqID: str) -> bytes:
    iq = domish.Element((None, "iq"))
    iq["type"] = "get" if payload.name == "items" else "set"
    iq["id"] = iqID
    iq.addChild(payload.build())
    return iq.toXml().encode("utf-8")


#: What a request may weigh to reach the handler: a larger stanza ends the
#: stream with policy-violation (docs/protocol.md, limits.max_stanza_size),
#: which tests/test_properties_xmlstream.py covers; huge subjectAltNames
#: (sanCertificate) and several maximal texts in one tree can exceed it.
MAX_REQUEST = LimitsConfig().max_stanza_size - 1024


def fitsInStanza(payload: Node) -> bool:
    return len(appendIQ(payload, "r0")) <= MAX_REQUEST


@SLOW
@given(st.lists(saslcertRequest().filter(fitsInStanza), min_size=1, max_size=3))
@example(
    [Node(NS_SASLCERT, "append", (Node(NS_SASLCERT, "name", ("Phone",)), Node(NS_SASLCERT, "x509cert", (base64.b64encode(VERSION_4).decode(),))))]
)
def test_streamRequests(payloads: list[Node]) -> None:
    """
    XEP-0257 §2 and docs/xep-0257.md over a bound stream: each request,
    whatever its tree or certificate, gets exactly one iq answer, a result
    or an error with a documented condition, never internal-server-error;
    nothing is logged as an error, the stream stays up, and the server
    still serves a new client.
    """
    h = serverHarness()
    h.clock.advance(NOW.timestamp())
    with noUnexpectedLogs():
        conn = boundAlice(h)
        for i, payload in enumerate(payloads):
            iqID = f"r{i}"
            conn.send(appendIQ(payload, iqID))
            received = parseOutput(conn.output())
            answers = [e for e in received.elements if e.name == "iq" and e.getAttribute("id") == iqID]
            assert len(answers) == 1, received.raw
            answer = answers[0]
            if answer["type"] == "error":
                condition = stanzaErrorCondition(answer)
                errorType = next(c for c in answer.elements() if c.name == "error").getAttribute("type")
                assert REQUEST_CONDITIONS.get(condition) == errorType, received.raw
                event(f"{payload.name}: {condition}")
            else:
                assert answer["type"] == "result", received.raw
                event(f"{payload.name}: result")
        assert not conn.closed
        settle(h, conn)
        assertStillServing(h)


def test_modelRefusesWhatTheDocsRefuse() -> None:
    """
    The models above follow docs/xep-0257.md: two names, a control
    character, 256 characters, and non-base64 are all refused.
    """
    refused = [
        Node(NS_SASLCERT, "append", (Node(NS_SASLCERT, "name", ("a",)), Node(NS_SASLCERT, "name", ("b",)))),
        Node(NS_SASLCERT, "append", (Node(NS_SASLCERT, "name", ("a\x07b",)),)),
        Node(NS_SASLCERT, "append", (Node(NS_SASLCERT, "name", ("x" * 256,)),)),
    ]
    for description in refused:
        assert modelName(description.build()) is None
    notBase64 = Node(NS_SASLCERT, "append", (Node(NS_SASLCERT, "x509cert", ("QQ",)),))
    assert modelCertificate(notBase64.build()) is None
