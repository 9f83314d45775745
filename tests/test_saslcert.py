# -*- test-case-name: tests.test_saslcert -*-
"""
Tests for L{xmppcert.saslcert} (XEP-0257, C{urn:xmpp:saslcert:1}): parsing
and rendering of the request and result payloads (L{AppendRequest},
L{NameRequest}, L{CertificateItem}, L{itemsElement}); the decisions and
error conditions of L{CertificateManager} over an L{InMemoryAccountStore},
a L{task.Clock} and a fake session registry; and L{SASLCertHandler}'s
service discovery and iq dispatch on a stub stream.
"""

from __future__ import annotations

import base64
import datetime
import inspect
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import defer, task
from twisted.logger import LogEvent, LogLevel, capturedLogs
from twisted.python import failure
from twisted.trial import unittest
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from zope.interface.verify import verifyObject

# wokkel 18 imports only once xmppcert has installed its compatibility shim.
import xmppcert  # noqa: F401

# isort: split
from wokkel import disco
from wokkel.generic import parseXml
from wokkel.iwokkel import IDisco
from wokkel.test import helpers as wokkelHelpers

from tests.helpers import ALICE, BOB, addAccount, failureOf, resultOf, stanzaErrorCondition
from xmppcert import certificates
from xmppcert.saslcert import (
    MAX_X509CERT_TEXT,
    NS_SASLCERT,
    STORE_UNAVAILABLE,
    AppendRequest,
    CertificateItem,
    ISASLCertBackend,
    NameRequest,
    Requester,
    SASLCertBackend,
    SASLCertHandler,
    itemsElement,
)
from xmppcert.sessions import SessionManager
from xmppcert.store import SQLiteDatabase, SQLiteStore
from xmppcert.store.interfaces import MAX_CERTIFICATE_NAME, AuditEntry, StoreError
from xmppcert.testing import InMemoryAccountStore
from xmppcert.x509 import (
    XMPP_ADDR_OID,
    ClientPrivateKey,
    certificatePEM,
    fingerprint,
    generateClientKey,
    issueClientCertificate,
)

NOW = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)
KEY: ClientPrivateKey = generateClientKey("ec")
ALICE_JID = jid.JID(ALICE)
CAROL = "carol@example.com"


# --- certificates -----------------------------------------------------------


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def issue(jids: Sequence[str] = (ALICE,), *, now: datetime.datetime = NOW, days: int = 30) -> bytes:
    """
    A self-signed client certificate (DER) naming C{jids} in id-on-xmppAddr,
    valid from 5 minutes before C{now} for C{days} days.
    """
    return der(issueClientCertificate(jids, KEY, now=now, days=days))


def handMade(
    otherNames: Sequence[bytes] = (),
    usages: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
    extra: Sequence[x509.ExtensionType] = (),
) -> bytes:
    """
    A certificate built with cryptography directly, valid around L{NOW}: one
    id-on-xmppAddr otherName per raw DER value in C{otherNames}, an
    extendedKeyUsage of C{usages} (none at all when C{None}), and the
    C{extra} extensions (critical).
    """
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hand made")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
    )
    if otherNames:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.OtherName(XMPP_ADDR_OID, v) for v in otherNames]),
            critical=False,
        )
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    for extension in extra:
        builder = builder.add_extension(extension, critical=True)
    return der(builder.sign(KEY, hashes.SHA256()))


def keyUsage(digitalSignature: bool) -> x509.KeyUsage:
    """
    A keyUsage extension allowing only keyEncipherment, and
    digitalSignature if asked.
    """
    return x509.KeyUsage(
        digital_signature=digitalSignature, content_commitment=False, key_encipherment=True,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )


def utf8String(text: str) -> bytes:
    """
    The DER encoding of C{text} as a UTF8String (short form length).
    """
    value = text.encode("utf-8")
    assert len(value) < 128
    return bytes([0x0C, len(value)]) + value


def fingerprintOf(data: bytes) -> str:
    return fingerprint(x509.load_der_x509_certificate(data))


# --- payloads ---------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def payload(verb: str, inner: str) -> domish.Element:
    return parseXml(f"<{verb} xmlns='{NS_SASLCERT}'>{inner}</{verb}>")


def reparsed(e: domish.Element) -> domish.Element:
    """
    C{e} serialised and parsed again, as a peer would see it.
    """
    return parseXml(e.toXml())


def badRequest(parse: object, e: domish.Element) -> error.StanzaError:
    """
    The StanzaError C{parse(e)} raises, checked to be bad-request/modify.
    """
    assert callable(parse)
    with pytest.raises(error.StanzaError) as info:
        parse(e)
    assert (info.value.condition, info.value.type) == ("bad-request", "modify")
    return info.value


def test_appendFromElement() -> None:
    """
    XEP-0257 §2.1: <append/> carries a name and the base64 DER of the
    certificate; the name loses surrounding whitespace, and without
    <no-cert-management/> the certificate may manage certificates.
    """
    data = issue()
    request = AppendRequest.fromElement(
        payload("append", f"<name>  Phone </name><x509cert>{b64(data)}</x509cert>")
    )
    assert request == AppendRequest("Phone", data, True)


def test_appendNoCertManagement() -> None:
    """
    XEP-0257 §2.1: <no-cert-management/> marks a certificate whose sessions
    must not manage certificates.
    """
    data = issue()
    request = AppendRequest.fromElement(
        payload(
            "append",
            f"<name>Kiosk</name><no-cert-management/><x509cert>{b64(data)}</x509cert>",
        )
    )
    assert (request.name, request.der, request.canManage) == ("Kiosk", data, False)


def test_appendPresentationWhitespace() -> None:
    """
    XEP-0257 §2.1 examples: the base64 may be wrapped in whitespace for
    presentation; it is ignored.
    """
    data = issue()
    text = b64(data)
    wrapped = "\n  " + "\n  ".join(text[i : i + 64] for i in range(0, len(text), 64)) + "\n"
    request = AppendRequest.fromElement(payload("append", f"<name>Phone</name><x509cert>{wrapped}</x509cert>"))
    assert request.der == data


@pytest.mark.parametrize("canManage", [True, False])
def test_appendRoundTrip(canManage: bool) -> None:
    """
    XEP-0257 §2.1: what AppendRequest.toElement renders, serialised and
    parsed again, is the same request.
    """
    request = AppendRequest("Laptop", issue(), canManage)
    rendered = request.toElement()
    assert (rendered.uri, rendered.name) == (NS_SASLCERT, "append")
    assert AppendRequest.fromElement(reparsed(rendered)) == request


BAD_APPEND = {
    "no name": "<x509cert>{cert}</x509cert>",
    "empty name": "<name/><x509cert>{cert}</x509cert>",
    "whitespace name": "<name> \n\t </name><x509cert>{cert}</x509cert>",
    "name in another namespace": "<name xmlns='urn:example'>Phone</name><x509cert>{cert}</x509cert>",
    "two names": "<name>A</name><name>B</name><x509cert>{cert}</x509cert>",
    "name too long": "<name>" + "n" * (MAX_CERTIFICATE_NAME + 1) + "</name><x509cert>{cert}</x509cert>",
    "control character in name": "<name>a\tb</name><x509cert>{cert}</x509cert>",
    "no x509cert": "<name>Phone</name>",
    "empty x509cert": "<name>Phone</name><x509cert/>",
    "whitespace x509cert": "<name>Phone</name><x509cert>  \n </x509cert>",
    "two x509certs": "<name>Phone</name><x509cert>{cert}</x509cert><x509cert>{cert}</x509cert>",
    "not base64": "<name>Phone</name><x509cert>not*base64!</x509cert>",
    "truncated base64": "<name>Phone</name><x509cert>QUJDR</x509cert>",
    "padding inside": "<name>Phone</name><x509cert>QU==JD</x509cert>",
    "too large": "<name>Phone</name><x509cert>" + "A" * (MAX_X509CERT_TEXT + 4) + "</x509cert>",
}


@pytest.mark.parametrize("inner", BAD_APPEND.values(), ids=BAD_APPEND.keys())
def test_appendBadRequest(inner: str) -> None:
    """
    XEP-0257 §2.1 and RFC 6120 §8.3.3.1: an <append/> without exactly one
    usable name (1 to 255 characters after stripping, no control
    characters) or without exactly one non-empty, valid base64 certificate
    of bounded size is refused with bad-request (type modify).
    """
    badRequest(AppendRequest.fromElement, payload("append", inner.format(cert=b64(issue()))))


@pytest.mark.parametrize("verb", ["disable", "revoke"])
def test_nameRequestFromElement(verb: str) -> None:
    """
    XEP-0257 §2.3, §2.4: <disable/> and <revoke/> name one certificate; the
    verb is the element's name and the name is stripped.
    """
    request = NameRequest.fromElement(payload(verb, "<name> Old phone </name>"))
    assert request == NameRequest(verb, "Old phone")


@pytest.mark.parametrize("verb", ["disable", "revoke"])
def test_nameRequestRoundTrip(verb: str) -> None:
    """
    XEP-0257 §2.3, §2.4: what NameRequest.toElement renders parses back to
    the same request.
    """
    request = NameRequest(verb, "Tablet")
    rendered = request.toElement()
    assert (rendered.uri, rendered.name) == (NS_SASLCERT, verb)
    assert NameRequest.fromElement(reparsed(rendered)) == request


BAD_NAMES = {
    "no name": "",
    "empty name": "<name/>",
    "whitespace name": "<name>   </name>",
    "two names": "<name>A</name><name>B</name>",
}


@pytest.mark.parametrize("verb", ["disable", "revoke"])
@pytest.mark.parametrize("inner", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_nameRequestBadRequest(verb: str, inner: str) -> None:
    """
    XEP-0257 §2.3, §2.4: a <disable/> or <revoke/> without exactly one
    non-empty name is refused with bad-request (type modify).
    """
    badRequest(NameRequest.fromElement, payload(verb, inner))


def test_itemToElement() -> None:
    """
    XEP-0257 §2.2: an <item/> holds the name, the base64 DER and, when
    resources are logged in with the certificate, <users/> with one
    <resource/> each, in order.
    """
    data = issue()
    item = CertificateItem("Phone", data, ("phone", "tablet")).toElement()
    assert (item.uri, item.name) == (NS_SASLCERT, "item")
    assert [(c.uri, c.name) for c in item.elements()] == [
        (NS_SASLCERT, "name"),
        (NS_SASLCERT, "x509cert"),
        (NS_SASLCERT, "users"),
    ]
    names = list(item.elements(NS_SASLCERT, "name"))
    assert str(names[0]) == "Phone"
    assert base64.b64decode(str(next(item.elements(NS_SASLCERT, "x509cert")))) == data
    users = next(item.elements(NS_SASLCERT, "users"))
    assert [str(r) for r in users.elements(NS_SASLCERT, "resource")] == ["phone", "tablet"]


def test_itemWithoutUsers() -> None:
    """
    XEP-0257 §2.2: a certificate nobody is logged in with has no <users/>.
    """
    item = CertificateItem("Phone", issue()).toElement()
    assert [c.name for c in item.elements()] == ["name", "x509cert"]


@pytest.mark.parametrize("resources", [(), ("phone",), ("phone", "laptop")])
def test_itemRoundTrip(resources: tuple[str, ...]) -> None:
    """
    XEP-0257 §2.2: what CertificateItem.toElement renders parses back to
    the same item.
    """
    item = CertificateItem("Phone", issue(), resources)
    assert CertificateItem.fromElement(reparsed(item.toElement())) == item


BAD_ITEMS = {
    "no name": "<x509cert>{cert}</x509cert>",
    "empty name": "<name/><x509cert>{cert}</x509cert>",
    "whitespace name": "<name> </name><x509cert>{cert}</x509cert>",
    "no x509cert": "<name>Phone</name>",
    "empty x509cert": "<name>Phone</name><x509cert/>",
    "not base64": "<name>Phone</name><x509cert>not*base64!</x509cert>",
    "only junk": "<name>Phone</name><x509cert>%%%%</x509cert>",
}


@pytest.mark.parametrize("inner", BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
def test_itemBadRequest(inner: str) -> None:
    """
    XEP-0257 §2.2: an <item/> has a name and a certificate; one without a
    non-empty name or without valid base64 certificate data is refused with
    bad-request like a request, not read as an empty or garbled
    certificate.
    """
    badRequest(CertificateItem.fromElement, payload("item", inner.format(cert=b64(issue()))))


def test_itemsElement() -> None:
    """
    XEP-0257 §2.2: the result is <items xmlns='urn:xmpp:saslcert:1'/> with
    one <item/> per certificate, in the order given, each parsing back to
    the item.
    """
    items = [CertificateItem("A", issue(), ("phone",)), CertificateItem("B", issue())]
    result = reparsed(itemsElement(items))
    assert (result.uri, result.name) == (NS_SASLCERT, "items")
    children = list(result.elements())
    assert [(c.uri, c.name) for c in children] == [(NS_SASLCERT, "item")] * 2
    assert [CertificateItem.fromElement(c) for c in children] == items


def test_itemsElementEmpty() -> None:
    """
    XEP-0257 §2.2: an account without certificates gets an empty <items/>.
    """
    result = itemsElement([])
    assert (result.uri, result.name) == (NS_SASLCERT, "items")
    assert list(result.elements()) == []


# --- the XEP-0257 backend ----------------------------------------------------


def CertificateManager(
    store: Any, sessions: Any, clock: Any, requireXmppAddr: bool = True, maxPerAccount: int = 0
) -> SASLCertBackend:
    """
    The XEP-0257 backend as the server builds it: over the one certificate
    manager (L{xmppcert.certificates.CertificateManager}).
    """
    return SASLCertBackend(
        certificates.CertificateManager(
            store, clock, sessions, requireXmppAddr=requireXmppAddr, maxPerAccount=maxPerAccount
        )
    )


@dataclass
class FakeSessions:
    """
    The two methods of L{SessionManager} that L{CertificateManager} uses,
    recording their calls.

    @ivar resources: (bare JID, fingerprint) to the resources to report.
    """

    resources: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    asked: list[tuple[jid.JID, str]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    def resourcesWithCertificate(self, account: jid.JID, fingerprint: str) -> list[str]:
        self.asked.append((account, fingerprint))
        return list(self.resources.get((account.userhost(), fingerprint), []))

    def closeSessionsWithCertificate(self, fingerprint: str, why: str = "revoked") -> int:
        self.closed.append(fingerprint)
        return 0


_T = TypeVar("_T")


class SteppedStore(InMemoryAccountStore):
    """
    An in-memory store whose certificate calls, while C{stepping} is set,
    wait in a queue instead of running at once; L{step} and L{runAll} run
    them in the order they were made. Several requests started together
    then take turns store call by store call, as concurrent streams (or a
    node and the command line) do against SQLite.

    @ivar queue: the waiting calls and the Deferreds they will fire.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.stepping = False
        self.queue: list[tuple[Callable[[], Any], defer.Deferred[Any]]] = []

    def _answer(self, f: Callable[[], _T]) -> defer.Deferred[_T]:
        if not self.stepping:
            return super()._answer(f)
        d: defer.Deferred[_T] = defer.Deferred()
        self.queue.append((f, d))
        return d

    def step(self) -> None:
        """
        Run the oldest waiting call; what its caller does next may queue
        more.
        """
        f, d = self.queue.pop(0)
        super()._answer(f).chainDeferred(d)

    def runAll(self) -> None:
        """
        Run waiting calls until none is left, then stop stepping: later
        calls (the test's checks) run at once again.
        """
        while self.queue:
            self.step()
        self.stepping = False


@dataclass
class Env:
    clock: task.Clock
    store: InMemoryAccountStore
    sessions: FakeSessions
    manager: SASLCertBackend


def clockAndStore(
    storeClass: type[InMemoryAccountStore] = InMemoryAccountStore,
) -> tuple[task.Clock, InMemoryAccountStore]:
    """
    A clock at L{NOW}, and a store on it holding ALICE and BOB.

    @param storeClass: the store's class, called with the clock.
    """
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    store = storeClass(clock=clock.seconds)
    for account in (ALICE, BOB):
        addAccount(store, account)
    return clock, store


def makeEnv(
    requireXmppAddr: bool = True,
    maxPerAccount: int = 0,
    storeClass: type[InMemoryAccountStore] = InMemoryAccountStore,
) -> Env:
    """
    A CertificateManager over a store holding ALICE and BOB, its clock at
    L{NOW}.

    @param storeClass: the store's class, called with the clock.
    """
    clock, store = clockAndStore(storeClass)
    sessions = FakeSessions()
    manager = CertificateManager(store, sessions, clock, requireXmppAddr, maxPerAccount)
    return Env(clock, store, sessions, manager)


def requester(account: str = ALICE, canManage: bool = True) -> Requester:
    return Requester(jid.JID(account), canManage)


def append(
    env: Env, data: bytes, name: str = "Phone", account: str = ALICE, canManage: bool = True
) -> defer.Deferred[None]:
    return env.manager.append(requester(account), AppendRequest(name, data, canManage))


def stanzaError(d: defer.Deferred[object] | defer.Deferred[None]) -> error.StanzaError:
    """
    The StanzaError C{d} failed with.
    """
    value = failureOf(d, error.StanzaError).value
    assert isinstance(value, error.StanzaError)
    return value


def refusal(d: defer.Deferred[object] | defer.Deferred[None]) -> tuple[str, str]:
    """
    The condition and type of the StanzaError C{d} failed with.
    """
    value = stanzaError(d)
    return value.condition, value.type


def states(env: Env, account: str = ALICE) -> list[tuple[str, str]]:
    return [(c.name, c.state) for c in resultOf(env.store.listCertificates(account))]


def outcome(d: defer.Deferred[Any]) -> tuple[str, str] | None:
    """
    C{None} if C{d} succeeded, else the condition and type of the
    StanzaError it failed with; any other failure (an internal-server-error
    for the client, and an error in the log) fails the test.
    """
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, f"{d!r} has not fired"
    if not isinstance(results[0], failure.Failure):
        return None
    value = results[0].value
    assert isinstance(value, error.StanzaError), results[0].getTraceback()
    return value.condition, value.type


def stepped(env: Env) -> SteppedStore:
    """
    The store of an env made with C{storeClass=SteppedStore}, stepping from
    now on.
    """
    assert isinstance(env.store, SteppedStore)
    env.store.stepping = True
    return env.store


def test_managerInterface() -> None:
    """
    CertificateManager provides ISASLCertBackend, the backend interface
    of SASLCertHandler.
    """
    assert verifyObject(ISASLCertBackend, makeEnv(maxPerAccount=3).manager)


def test_fakeSessionsMatchSessionManager() -> None:
    """
    The fake session registry has the signatures of the two SessionManager
    methods CertificateManager calls, so these tests exercise the real
    contract.
    """
    for name in ("resourcesWithCertificate", "closeSessionsWithCertificate"):
        real = list(inspect.signature(getattr(SessionManager, name)).parameters)
        fake = list(inspect.signature(getattr(FakeSessions, name)).parameters)
        assert fake == real


def test_append() -> None:
    """
    XEP-0257 §2.1: an acceptable certificate is registered, enabled, for
    the requester's account under its name, with its fingerprint, DER and
    end of validity.
    """
    env = makeEnv()
    data = issue()
    assert resultOf(append(env, data, "Phone")) is None
    [stored] = resultOf(env.store.listCertificates(ALICE))
    assert (stored.account, stored.name, stored.der, stored.state, stored.canManage) == (
        ALICE,
        "Phone",
        data,
        "enabled",
        True,
    )
    assert stored.fingerprint == fingerprintOf(data)
    assert stored.notAfter == (NOW + datetime.timedelta(days=30)).timestamp()
    assert env.sessions.closed == []


def test_appendNoCertManagementStored() -> None:
    """
    XEP-0257 §2.1: <no-cert-management/> is stored with the certificate.
    """
    env = makeEnv()
    resultOf(append(env, issue(), "Kiosk", canManage=False))
    [stored] = resultOf(env.store.listCertificates(ALICE))
    assert stored.canManage is False


def test_appendNameInUse() -> None:
    """
    XEP-0257 §2.1: a name already used by an enabled certificate of the
    account MUST be rejected: conflict (type cancel), and nothing changes.
    """
    env = makeEnv()
    first = issue()
    resultOf(append(env, first, "Phone"))
    value = stanzaError(append(env, issue(), "Phone"))
    assert (value.condition, value.type, value.text) == (
        "conflict",
        "cancel",
        "A certificate named 'Phone' exists",
    )
    assert refusal(append(env, issue(), "  Phone ")) == ("conflict", "cancel")
    [stored] = resultOf(env.store.listCertificates(ALICE))
    assert stored.der == first


def test_appendNameOfOtherAccount() -> None:
    """
    XEP-0257 §2.1: names are per account: Bob may use a name Alice uses.
    """
    env = makeEnv()
    resultOf(append(env, issue([ALICE]), "Phone"))
    resultOf(append(env, issue([BOB]), "Phone", account=BOB))
    assert states(env, BOB) == [("Phone", "enabled")]


def test_appendNameOfDisabledCertificate() -> None:
    """
    XEP-0257 §2.1 with §2.3: a disabled certificate no longer holds its
    name, so a new certificate may take it.
    """
    env = makeEnv()
    resultOf(append(env, issue(), "Phone"))
    resultOf(env.manager.disable(requester(), "Phone"))
    resultOf(append(env, issue(), "Phone"))
    assert sorted(states(env)) == [("Phone", "disabled"), ("Phone", "enabled")]


def test_appendRetried() -> None:
    """
    An append is safe to retry (its answer may have been lost when the
    server stopped after storing it): the identical certificate appended
    again under the same name to the same account, while it is enabled,
    succeeds, and there is still one record.
    """
    env = makeEnv()
    data = issue()
    resultOf(append(env, data, "Phone"))
    assert outcome(append(env, data, "Phone")) is None
    assert outcome(append(env, data, " Phone  ")) is None
    [stored] = resultOf(env.store.listCertificates(ALICE))
    assert (stored.name, stored.fingerprint, stored.state) == ("Phone", fingerprintOf(data), "enabled")


@pytest.mark.parametrize(
    "name, canManage", [("Other name", True), ("Phone", False)], ids=["other name", "other flag"]
)
def test_appendSameCertificateTwice(name: str, canManage: bool) -> None:
    """
    XEP-0257 §2.1: a certificate already registered for the account under
    another name (or with another <no-cert-management/>: not a retry of
    the same append) cannot be added again: conflict (type cancel).
    """
    env = makeEnv()
    data = issue()
    resultOf(append(env, data, "Phone"))
    assert refusal(append(env, data, name, canManage=canManage)) == ("conflict", "cancel")
    assert states(env) == [("Phone", "enabled")]


@pytest.mark.parametrize("state", ["disabled", "revoked"])
def test_appendRetriedAfterStateChange(state: str) -> None:
    """
    A repeated append is only a retry while the certificate is still
    enabled: once revoked it is a conflict (revocation is final), and a
    disabled one is enabled again (XEP-0257 §2.3), never both at once.
    """
    env = makeEnv()
    data = issue()
    resultOf(append(env, data, "Phone"))
    resultOf(env.store.setCertificateStateByFingerprint(fingerprintOf(data), state))
    expected = ("conflict", "cancel") if state == "revoked" else None
    assert outcome(append(env, data, "Phone")) == expected
    assert states(env) == [("Phone", "revoked" if state == "revoked" else "enabled")]


@pytest.mark.parametrize("aliceState", ["enabled", "disabled", "revoked"])
def test_appendCertificateOfOtherAccount(aliceState: str) -> None:
    """
    One certificate logs in to one account: a certificate registered by
    another account, in any state, is refused with conflict (type cancel)
    without naming that account, and the other account's record stays.
    """
    env = makeEnv()
    data = issue([ALICE, BOB])
    resultOf(append(env, data, "Shared"))
    if aliceState != "enabled":
        resultOf(env.store.setCertificateStateByFingerprint(fingerprintOf(data), aliceState))
    value = stanzaError(append(env, data, "Shared", account=BOB))
    assert (value.condition, value.type, value.text) == (
        "conflict",
        "cancel",
        "This certificate is already registered",
    )
    assert states(env, BOB) == []
    assert states(env) == [("Shared", aliceState)]


def test_appendRevokedAgain() -> None:
    """
    XEP-0257 §2.4: revocation is final: the account cannot register a
    revoked certificate again (conflict, type cancel).
    """
    env = makeEnv()
    data = issue()
    resultOf(append(env, data, "Phone"))
    resultOf(env.manager.revoke(requester(), "Phone"))
    assert refusal(append(env, data, "Phone again")) == ("conflict", "cancel")
    assert states(env) == [("Phone", "revoked")]


@pytest.mark.parametrize("canManage", [True, False])
def test_appendDisabledAgain(canManage: bool) -> None:
    """
    XEP-0257 §2.3: a disabled certificate of the same account can be
    appended again; it is enabled under the new name and flag, and the old
    record does not remain beside it.
    """
    env = makeEnv()
    data = issue()
    resultOf(append(env, data, "Phone"))
    resultOf(env.manager.disable(requester(), "Phone"))
    resultOf(append(env, data, "Phone 2", canManage=canManage))
    [stored] = resultOf(env.store.listCertificates(ALICE))
    assert (stored.name, stored.state, stored.canManage, stored.fingerprint) == (
        "Phone 2",
        "enabled",
        canManage,
        fingerprintOf(data),
    )


def test_appendDisabledAgainRefusedKeepsRecord() -> None:
    """
    Bad input never loses stored data: appending a disabled certificate
    again under a name in use (conflict) or past the limit
    (resource-constraint) is refused and leaves its disabled record as it
    was.
    """
    env = makeEnv(maxPerAccount=2)
    data = issue()
    resultOf(append(env, data, "Phone"))
    resultOf(env.manager.disable(requester(), "Phone"))
    resultOf(append(env, issue(), "Laptop"))
    assert refusal(append(env, data, "Laptop")) == ("conflict", "cancel")
    assert sorted(states(env)) == [("Laptop", "enabled"), ("Phone", "disabled")]
    resultOf(append(env, issue(), "Tablet"))
    assert refusal(append(env, data, "Phone")) == ("resource-constraint", "wait")
    assert sorted(states(env)) == [("Laptop", "enabled"), ("Phone", "disabled"), ("Tablet", "enabled")]


def test_appendDisabledOfOtherAccount() -> None:
    """
    XEP-0257 §2.3: only the account that disabled a certificate may bring
    it back; for another account it stays a conflict.
    """
    env = makeEnv()
    data = issue([ALICE, BOB])
    resultOf(append(env, data, "Shared"))
    resultOf(env.manager.disable(requester(), "Shared"))
    assert refusal(append(env, data, "Mine", account=BOB)) == ("conflict", "cancel")
    assert states(env) == [("Shared", "disabled")]


def test_appendDisabledAgainAfterRevoke() -> None:
    """
    XEP-0257 §2.4: revocation is final, also for a certificate that was
    disabled first: once revoked (here by the command line or another
    node, as a stream cannot revoke a disabled certificate), appending it
    again is a conflict (type cancel) and it stays revoked.
    """
    env = makeEnv()
    data = issue()
    resultOf(append(env, data, "Phone"))
    resultOf(env.manager.disable(requester(), "Phone"))
    resultOf(env.store.setCertificateStateByFingerprint(fingerprintOf(data), "revoked"))
    assert refusal(append(env, data, "Phone")) == ("conflict", "cancel")
    assert refusal(append(env, data, "Phone 2")) == ("conflict", "cancel")
    assert states(env) == [("Phone", "revoked")]


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 4, 5])
def test_appendDisabledAgainRacingRevoke(steps: int) -> None:
    """
    XEP-0257 §2.4: a revocation is never undone. Appending a disabled
    certificate again while a revocation of it lands after any number of
    the append's store calls never leaves it enabled: it ends up revoked,
    in one record, and the append either succeeded before the revocation
    or is refused with conflict (type cancel), never with an internal
    error.
    """
    env = makeEnv(storeClass=SteppedStore)
    data = issue()
    fp = fingerprintOf(data)
    resultOf(append(env, data, "Phone"))
    resultOf(env.manager.disable(requester(), "Phone"))
    store = stepped(env)
    appended = append(env, data, "Phone 2")
    for _ in range(steps):
        if store.queue:
            store.step()
    revoked = store.setCertificateStateByFingerprint(fp, "revoked")
    store.runAll()
    assert resultOf(revoked).state == "revoked"
    assert outcome(appended) in (None, ("conflict", "cancel"))
    assert [c.state for c in store.certificates.values() if c.fingerprint == fp] == ["revoked"]
    assert [state for _, state in states(env)] == ["revoked"]


def test_appendDisabledAgainConcurrently() -> None:
    """
    Two streams appending the same disabled certificate again at the same
    time, their store calls interleaved: one brings it back, the other is
    refused with conflict (type cancel, the certificate is registered by
    then), never an internal error; one enabled record remains.
    """
    env = makeEnv(storeClass=SteppedStore)
    data = issue()
    resultOf(append(env, data, "Phone"))
    resultOf(env.manager.disable(requester(), "Phone"))
    store = stepped(env)
    first = append(env, data, "Phone 2")
    second = append(env, data, "Phone 3")
    store.runAll()
    assert [outcome(first), outcome(second)] == [None, ("conflict", "cancel")]
    assert states(env) == [("Phone 2", "enabled")]


UNACCEPTABLE = {
    "expired": lambda: issue(now=NOW - datetime.timedelta(days=31), days=30),
    "not yet valid": lambda: issue(now=NOW + datetime.timedelta(days=1)),
    "serverAuth only": lambda: handMade([utf8String(ALICE)], [ExtendedKeyUsageOID.SERVER_AUTH]),
    "no xmppAddr": lambda: issue([]),
    "xmppAddr of another account": lambda: issue([BOB]),
    "xmppAddr of another domain": lambda: issue(["alice@example.org"]),
    "xmppAddr not a UTF8String": lambda: handMade([b"\x16\x11" + ALICE.encode()]),
    "xmppAddr not a JID": lambda: handMade([utf8String("@example.com")]),
    "CA certificate": lambda: handMade(
        [utf8String(ALICE)], extra=[x509.BasicConstraints(ca=True, path_length=None)]
    ),
    "keyUsage without digitalSignature": lambda: handMade(
        [utf8String(ALICE)], extra=[keyUsage(digitalSignature=False)]
    ),
}


@pytest.mark.parametrize("make", UNACCEPTABLE.values(), ids=UNACCEPTABLE.keys())
def test_appendNotAcceptable(make: object) -> None:
    """
    XEP-0257 §2.1 with XEP-0178 and RFC 5280: a certificate that could not
    log in to the account (outside its validity period, not for TLS client
    authentication, no valid id-on-xmppAddr naming the account) is refused
    with not-acceptable (type modify), and nothing is stored; so is one
    that is not a client certificate at all (basicConstraints CA:TRUE, or
    a keyUsage without digitalSignature).
    """
    assert callable(make)
    env = makeEnv()
    assert refusal(append(env, make())) == ("not-acceptable", "modify")
    assert states(env) == []


@pytest.mark.parametrize(
    "offset, accepted",
    [
        (-datetime.timedelta(minutes=5, seconds=1), False),
        (-datetime.timedelta(minutes=5), True),
        (datetime.timedelta(days=30), True),
        (datetime.timedelta(days=30, seconds=1), False),
    ],
    ids=["before notBefore", "at notBefore", "at notAfter", "after notAfter"],
)
def test_appendValidityBounds(offset: datetime.timedelta, accepted: bool) -> None:
    """
    RFC 5280 §4.1.2.5: the validity period includes both bounds; the
    manager decides by its clock.
    """
    env = makeEnv()
    data = issue()
    env.clock.advance(offset.total_seconds())
    if accepted:
        resultOf(append(env, data))
        assert states(env) == [("Phone", "enabled")]
    else:
        assert refusal(append(env, data)) == ("not-acceptable", "modify")


ACCEPTABLE = {
    "no extendedKeyUsage": lambda: handMade([utf8String(ALICE)], None),
    "anyExtendedKeyUsage": lambda: handMade(
        [utf8String(ALICE)], [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]
    ),
    "full JID": lambda: issue([ALICE + "/phone"]),
    "keyUsage with digitalSignature": lambda: handMade(
        [utf8String(ALICE)], extra=[keyUsage(digitalSignature=True)]
    ),
    "basicConstraints CA:FALSE": lambda: handMade(
        [utf8String(ALICE)], extra=[x509.BasicConstraints(ca=False, path_length=None)]
    ),
    "unprepared JID": lambda: handMade([utf8String("ALICE@Example.COM")]),
    "several JIDs": lambda: issue([BOB, ALICE]),
}


@pytest.mark.parametrize("make", ACCEPTABLE.values(), ids=ACCEPTABLE.keys())
def test_appendAcceptable(make: object) -> None:
    """
    RFC 5280 §4.2.1.12 and XEP-0178: a certificate without
    extendedKeyUsage or with anyExtendedKeyUsage is for client
    authentication, and an id-on-xmppAddr names the account when its bare
    JID, prepared, is the account's (a full JID limits it to a resource,
    XEP-0257 §3).
    """
    assert callable(make)
    env = makeEnv()
    resultOf(append(env, make()))
    assert states(env) == [("Phone", "enabled")]


def test_appendWithoutRequireXmppAddr() -> None:
    """
    Configuration require_xmppaddr = false: the registration itself ties a
    certificate that names no JID to the account.
    """
    env = makeEnv(requireXmppAddr=False)
    resultOf(append(env, issue([])))
    assert states(env) == [("Phone", "enabled")]


@pytest.mark.parametrize("requireXmppAddr", [True, False])
def test_appendOfAnotherUsersCertificate(requireXmppAddr: bool) -> None:
    """
    Certificates are public (under TLS 1.2 they cross the network in
    clear): a certificate naming bob can never be appended by alice, with
    require_xmppaddr on or off, or bob's key would log in as alice.
    not-acceptable, type modify; nothing is stored.
    """
    env = makeEnv(requireXmppAddr=requireXmppAddr)
    value = stanzaError(append(env, issue([BOB])))
    assert (value.condition, value.type) == ("not-acceptable", "modify")
    assert BOB in (value.text or "")
    assert states(env) == []


def test_appendWithoutRequireXmppAddrStillChecks() -> None:
    """
    Configuration require_xmppaddr = false does not admit a certificate
    with a malformed id-on-xmppAddr (not-acceptable, type modify).
    """
    env = makeEnv(requireXmppAddr=False)
    assert refusal(append(env, handMade([b"\x16\x05alice"]))) == ("not-acceptable", "modify")


NOT_CERTIFICATES = {
    "empty": lambda: b"",
    "random bytes": lambda: b"\x00\x01\x02 not a certificate",
    "public key": lambda: KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ),
    "truncated": lambda: issue()[:-10],
    "trailing byte": lambda: issue() + b"\x00",
    "trailing certificate": lambda: issue() + issue(),
    "over 16 KiB": lambda: b"\x30\x82\x42\x68" + b"\x00" * 0x4268,
    "PEM instead of DER": lambda: certificatePEM(x509.load_der_x509_certificate(issue())),
}


@pytest.mark.parametrize("make", NOT_CERTIFICATES.values(), ids=NOT_CERTIFICATES.keys())
def test_appendNotCertificate(make: object) -> None:
    """
    XEP-0257 §2.1: <x509cert/> holds exactly one DER certificate; other
    data, trailing data or another encoding is refused with bad-request
    (type modify), and nothing is stored.
    """
    assert callable(make)
    env = makeEnv()
    assert refusal(append(env, make())) == ("bad-request", "modify")
    assert states(env) == []


def test_appendLimit() -> None:
    """
    Configuration max_per_account: at the limit of enabled certificates an
    append is refused with resource-constraint (type wait), which RFC 3920
    clients understand; disabled certificates do not count.
    """
    env = makeEnv(maxPerAccount=2)
    resultOf(append(env, issue(), "A"))
    resultOf(append(env, issue(), "B"))
    value = stanzaError(append(env, issue(), "C"))
    assert (value.condition, value.type) == ("resource-constraint", "wait")
    assert (value.text or "").startswith("An account may have at most 2 enabled certificates")
    assert states(env) == [("A", "enabled"), ("B", "enabled")]
    resultOf(env.manager.disable(requester(), "A"))
    resultOf(append(env, issue(), "C"))
    assert sorted(states(env)) == [("A", "disabled"), ("B", "enabled"), ("C", "enabled")]


def test_appendLimitPerAccount() -> None:
    """
    Configuration max_per_account counts each account's certificates
    separately.
    """
    env = makeEnv(maxPerAccount=1)
    resultOf(append(env, issue([ALICE]), "A"))
    resultOf(append(env, issue([BOB]), "B", account=BOB))
    assert states(env, BOB) == [("B", "enabled")]


def test_appendUnknownAccount() -> None:
    """
    A session whose account no longer exists cannot register certificates:
    forbidden (type auth), without a text.
    """
    env = makeEnv()
    value = stanzaError(append(env, issue([CAROL]), account=CAROL))
    assert (value.condition, value.type, value.text) == ("forbidden", "auth", None)
    assert env.store.certificates == {}


@pytest.mark.parametrize("verb", ["append", "disable", "revoke"])
def test_noCertManagementForbidden(verb: str) -> None:
    """
    XEP-0257 §2.1: a session that logged in with a certificate registered
    with <no-cert-management/> may not add, disable or revoke
    certificates: forbidden (type auth), nothing changes and no session is
    closed.
    """
    env = makeEnv()
    resultOf(append(env, issue(), "Phone"))
    limited = requester(canManage=False)
    if verb == "append":
        d = env.manager.append(limited, AppendRequest("Other", issue()))
    elif verb == "disable":
        d = env.manager.disable(limited, "Phone")
    else:
        d = env.manager.revoke(limited, "Phone")
    value = stanzaError(d)
    assert (value.condition, value.type, value.text) == (
        "forbidden",
        "auth",
        "This session's certificate may not manage certificates",
    )
    assert states(env) == [("Phone", "enabled")]
    assert env.sessions.closed == []


def test_noCertManagementMayList() -> None:
    """
    XEP-0257 §2.1: <no-cert-management/> forbids managing, not listing.
    """
    env = makeEnv()
    data = issue()
    resultOf(append(env, data, "Phone"))
    assert resultOf(env.manager.items(requester(canManage=False))) == [CertificateItem("Phone", data)]


def test_disable() -> None:
    """
    XEP-0257 §2.3: a disabled certificate can no longer log in, but the
    sessions that logged in with it stay.
    """
    env = makeEnv()
    data = issue()
    resultOf(append(env, data, "Phone"))
    assert resultOf(env.manager.disable(requester(), " Phone ")) is None
    assert states(env) == [("Phone", "disabled")]
    assert env.sessions.closed == []


def test_revoke() -> None:
    """
    XEP-0257 §2.4: a revoked certificate can no longer log in, and every
    session that logged in with it is closed: closeSessionsWithCertificate
    is called once with its fingerprint.
    """
    env = makeEnv()
    data = issue()
    resultOf(append(env, data, "Phone"))
    resultOf(append(env, issue(), "Laptop"))
    assert resultOf(env.manager.revoke(requester(), "Phone")) is None
    assert sorted(states(env)) == [("Laptop", "enabled"), ("Phone", "revoked")]
    # Closed right after the answer, which the requester may be waiting for.
    assert env.sessions.closed == []
    env.clock.advance(0)
    assert env.sessions.closed == [fingerprintOf(data)]


def test_revokeDisabled() -> None:
    """
    XEP-0257 §2.4: a disabled certificate can still be revoked by name,
    and its live sessions (which disabling left up: a thief's, say) are
    closed. The enabled certificate of a name comes first.
    """
    env = makeEnv()
    data = issue()
    resultOf(append(env, data, "Phone"))
    resultOf(env.manager.disable(requester(), "Phone"))
    env.clock.advance(0)
    assert env.sessions.closed == []
    assert resultOf(env.manager.revoke(requester(), " Phone ")) is None
    assert states(env) == [("Phone", "revoked")]
    env.clock.advance(0)
    assert env.sessions.closed == [fingerprintOf(data)]
    # A disabled and an enabled certificate named alike: revoke takes the
    # enabled one, and revoking again then reaches the disabled one.
    older, newer = issue(), issue()
    resultOf(append(env, older, "Tablet"))
    resultOf(env.manager.disable(requester(), "Tablet"))
    resultOf(append(env, newer, "Tablet"))
    resultOf(env.manager.revoke(requester(), "Tablet"))
    assert env.store.certificates[fingerprintOf(newer)].state == "revoked"
    assert env.store.certificates[fingerprintOf(older)].state == "disabled"
    resultOf(env.manager.revoke(requester(), "Tablet"))
    assert env.store.certificates[fingerprintOf(older)].state == "revoked"


@pytest.mark.parametrize(
    "verb, state",
    [
        (verb, state)
        for verb in ("disable", "revoke")
        for state in ("unknown", "disabled", "revoked", "of another account")
        if (verb, state) != ("revoke", "disabled")
    ],
)
def test_unknownName(verb: str, state: str) -> None:
    """
    XEP-0257 §2.3, §2.4: disabling a name that has no enabled certificate
    of the requester's account, or revoking one that has neither an
    enabled nor a disabled one, is refused with item-not-found (type
    cancel) rather than answered with success; nothing changes and no
    session is closed.
    """
    env = makeEnv()
    data = issue()
    if state == "of another account":
        resultOf(append(env, issue([BOB]), "Phone", account=BOB))
    elif state != "unknown":
        resultOf(append(env, data, "Phone"))
        resultOf(env.store.setCertificateStateByFingerprint(fingerprintOf(data), state))
    before = dict(env.store.certificates)
    value = stanzaError(getattr(env.manager, verb)(requester(), "Phone"))
    assert (value.condition, value.type, value.text) == (
        "item-not-found",
        "cancel",
        "No certificate named 'Phone'",
    )
    assert env.store.certificates == before
    assert env.sessions.closed == []


@pytest.mark.parametrize(
    "verb, other",
    [("disable", "revoked"), ("disable", "removed"), ("revoke", "removed")],
)
def test_stateChangeRacingOtherChange(verb: str, other: str) -> None:
    """
    XEP-0257 §2.3, §2.4: a certificate revoked or removed (by another
    stream, node or the command line) between the lookup of its name and
    the state change is no longer one the request can change: item-not-found
    (type cancel) as for an unknown name, not an internal error; the other
    change stands and no session is closed for the refused request.
    """
    env = makeEnv(storeClass=SteppedStore)
    data = issue()
    fp = fingerprintOf(data)
    resultOf(append(env, data, "Phone"))
    store = stepped(env)
    d = getattr(env.manager, verb)(requester(), "Phone")
    store.step()  # the lookup: still enabled; the state change now waits
    assert len(store.queue) == 1
    # The other change lands at once, before the waiting state change.
    store.stepping = False
    if other == "revoked":
        resultOf(store.setCertificateStateByFingerprint(fp, "revoked"))
    else:
        resultOf(store.removeCertificateByFingerprint(fp))
    store.stepping = True
    store.runAll()
    value = stanzaError(d)
    assert (value.condition, value.type, value.text) == (
        "item-not-found",
        "cancel",
        "No certificate named 'Phone'",
    )
    assert states(env) == ([("Phone", "revoked")] if other == "revoked" else [])
    env.clock.advance(0)
    assert env.sessions.closed == []


def test_disableRacingRevoke() -> None:
    """
    XEP-0257 §2.3, §2.4: a revoke and a disable of the same certificate
    from two streams, their store calls interleaved, the revoke first:
    the revoke succeeds and closes the certificate's sessions, the disable
    gets item-not-found (type cancel), and the certificate stays revoked
    (revocation is final).
    """
    env = makeEnv(storeClass=SteppedStore)
    data = issue()
    resultOf(append(env, data, "Phone"))
    store = stepped(env)
    revoked = env.manager.revoke(requester(), "Phone")
    disabled = env.manager.disable(requester(), "Phone")
    store.runAll()
    assert outcome(revoked) is None
    assert outcome(disabled) == ("item-not-found", "cancel")
    assert states(env) == [("Phone", "revoked")]
    env.clock.advance(0)
    assert env.sessions.closed == [fingerprintOf(data)]


def test_items() -> None:
    """
    XEP-0257 §2.2: the list holds the account's enabled certificates (not
    disabled, revoked or other accounts' ones), oldest first, each with the
    resources logged in with it as the session registry reports them.
    """
    env = makeEnv()
    phone, laptop, old, gone = issue(), issue(), issue(), issue()
    resultOf(append(env, phone, "Phone"))
    env.clock.advance(1)
    resultOf(append(env, laptop, "Laptop"))
    resultOf(append(env, old, "Old"))
    resultOf(append(env, gone, "Gone"))
    resultOf(append(env, issue([BOB]), "Bob's", account=BOB))
    resultOf(env.manager.disable(requester(), "Old"))
    resultOf(env.manager.revoke(requester(), "Gone"))
    env.sessions.resources[(ALICE, fingerprintOf(phone))] = ["phone", "watch"]
    env.sessions.resources[(BOB, fingerprintOf(laptop))] = ["not alice"]
    env.sessions.asked.clear()
    items = resultOf(env.manager.items(requester()))
    assert items == [
        CertificateItem("Phone", phone, ("phone", "watch")),
        CertificateItem("Laptop", laptop, ()),
    ]
    assert env.sessions.asked == [(ALICE_JID, fingerprintOf(phone)), (ALICE_JID, fingerprintOf(laptop))]


def test_itemsEmpty() -> None:
    """
    XEP-0257 §2.2: an account without certificates gets an empty list.
    """
    assert resultOf(makeEnv().manager.items(requester())) == []


# --- SASLCertHandler --------------------------------------------------------


def makeHandler(canManage: bool = True) -> tuple[Env, SASLCertHandler, wokkelHelpers.TestableStreamManager]:
    """
    A SASLCertHandler for ALICE on a stream manager with a stub stream.
    """
    env = makeEnv()
    handler = SASLCertHandler(env.manager, requester(canManage=canManage))
    streamManager = wokkelHelpers.TestableStreamManager()
    handler.setHandlerParent(streamManager)
    return env, handler, streamManager


def request(streamManager: wokkelHelpers.TestableStreamManager, xml: str) -> domish.Element | None:
    """
    Dispatch an iq from alice's phone as if received, and return the one
    response the handler sent, if any.
    """
    iq = parseXml(xml.replace("<iq ", f"<iq from='{ALICE}/phone' to='{ALICE}' ", 1))
    output: list[domish.Element] = streamManager.stub.output
    before = len(output)
    streamManager.stub.send(iq)
    sent = output[before:]
    assert len(sent) <= 1, [e.toXml() for e in sent]
    return sent[0] if sent else None


def answer(streamManager: wokkelHelpers.TestableStreamManager, xml: str) -> domish.Element:
    response = request(streamManager, xml)
    assert response is not None, "no response"
    assert response.name == "iq"
    assert (response.getAttribute("id"), response.getAttribute("to")) == ("r1", f"{ALICE}/phone")
    return response


def test_handlerDiscoInterface() -> None:
    """
    XEP-0030: SASLCertHandler provides IDisco, so the disco handler asks it.
    """
    _, handler, _ = makeHandler()
    assert verifyObject(IDisco, handler)


@pytest.mark.parametrize("target", [None, ALICE_JID, jid.JID("example.com")])
def test_handlerDiscoInfo(target: jid.JID | None) -> None:
    """
    XEP-0257 §4: urn:xmpp:saslcert:1 is advertised on the server and on
    the account, with no identity and no items.
    """
    _, handler, _ = makeHandler()
    info = handler.getDiscoInfo(jid.JID(ALICE + "/phone"), target)
    assert [type(i) for i in info] == [disco.DiscoFeature]
    assert [str(i) for i in info] == [NS_SASLCERT]
    assert handler.getDiscoItems(jid.JID(ALICE + "/phone"), target) == []


def test_handlerDiscoNode() -> None:
    """
    XEP-0030 §3.2: the handler knows no nodes: nothing for a node.
    """
    _, handler, _ = makeHandler()
    assert handler.getDiscoInfo(jid.JID(ALICE + "/phone"), ALICE_JID, "some-node") == []
    assert handler.getDiscoItems(jid.JID(ALICE + "/phone"), ALICE_JID, "some-node") == []


def test_handlerItems() -> None:
    """
    XEP-0257 §2.2: an items get is answered with a result holding
    <items/> and the account's certificates.
    """
    env, _, streamManager = makeHandler()
    data = issue()
    resultOf(append(env, data, "Phone"))
    response = answer(streamManager, f"<iq type='get' id='r1'><items xmlns='{NS_SASLCERT}'/></iq>")
    assert response.getAttribute("type") == "result"
    [items] = list(response.elements())
    assert (items.uri, items.name) == (NS_SASLCERT, "items")
    assert [CertificateItem.fromElement(i) for i in items.elements()] == [CertificateItem("Phone", data)]


def test_handlerItemsEmpty() -> None:
    """
    XEP-0257 §2.2: without certificates the result still holds an empty
    <items/>.
    """
    _, _, streamManager = makeHandler()
    response = answer(streamManager, f"<iq type='get' id='r1'><items xmlns='{NS_SASLCERT}'/></iq>")
    assert response.getAttribute("type") == "result"
    [items] = list(response.elements())
    assert (items.uri, items.name, list(items.elements())) == (NS_SASLCERT, "items", [])


def test_handlerAppend() -> None:
    """
    XEP-0257 §2.1: an append set is answered with an empty result and the
    certificate is registered.
    """
    env, _, streamManager = makeHandler()
    data = issue()
    response = answer(
        streamManager,
        f"<iq type='set' id='r1'><append xmlns='{NS_SASLCERT}'>"
        f"<name>Phone</name><no-cert-management/><x509cert>{b64(data)}</x509cert></append></iq>",
    )
    assert response.getAttribute("type") == "result"
    assert list(response.elements()) == []
    [stored] = resultOf(env.store.listCertificates(ALICE))
    assert (stored.name, stored.der, stored.canManage) == ("Phone", data, False)


@pytest.mark.parametrize(
    "inner, condition",
    [
        ("<name>Phone</name><x509cert>***</x509cert>", "bad-request"),
        ("<x509cert>{cert}</x509cert>", "bad-request"),
        ("<name>Phone</name><x509cert>{cert}</x509cert>", "conflict"),
    ],
    ids=["bad base64", "no name", "name in use"],
)
def test_handlerAppendError(inner: str, condition: str) -> None:
    """
    RFC 6120 §8.3: a refused append is answered with an error iq carrying
    the condition the parser or the manager chose and the request's
    payload.
    """
    env, _, streamManager = makeHandler()
    resultOf(append(env, issue(), "Phone"))
    content = inner.format(cert=b64(issue()))
    response = answer(
        streamManager, f"<iq type='set' id='r1'><append xmlns='{NS_SASLCERT}'>{content}</append></iq>"
    )
    assert stanzaErrorCondition(response) == condition
    assert [(c.uri, c.name) for c in response.elements()][0] == (NS_SASLCERT, "append")
    assert states(env) == [("Phone", "enabled")]


def test_handlerMalformedBeforeForbidden() -> None:
    """
    docs/xep-0257.md: malformed requests are refused before the forbidden
    check, so a session without certificate management still gets
    bad-request for them.
    """
    _, _, streamManager = makeHandler(canManage=False)
    response = answer(
        streamManager,
        f"<iq type='set' id='r1'><revoke xmlns='{NS_SASLCERT}'><name> </name></revoke></iq>",
    )
    assert stanzaErrorCondition(response) == "bad-request"


def test_handlerDisable() -> None:
    """
    XEP-0257 §2.3: a disable set is answered with a result; the
    certificate is disabled and no session is closed.
    """
    env, _, streamManager = makeHandler()
    resultOf(append(env, issue(), "Phone"))
    response = answer(
        streamManager,
        f"<iq type='set' id='r1'><disable xmlns='{NS_SASLCERT}'><name>Phone</name></disable></iq>",
    )
    assert response.getAttribute("type") == "result"
    assert states(env) == [("Phone", "disabled")]
    assert env.sessions.closed == []


def test_handlerRevoke() -> None:
    """
    XEP-0257 §2.4: a revoke set is answered with a result; the certificate
    is revoked and its sessions are closed.
    """
    env, _, streamManager = makeHandler()
    data = issue()
    resultOf(append(env, data, "Phone"))
    response = answer(
        streamManager,
        f"<iq type='set' id='r1'><revoke xmlns='{NS_SASLCERT}'><name>Phone</name></revoke></iq>",
    )
    assert response.getAttribute("type") == "result"
    assert states(env) == [("Phone", "revoked")]
    # The result is out before any stream closes: it may be the requester's.
    assert env.sessions.closed == []
    env.clock.advance(0)
    assert env.sessions.closed == [fingerprintOf(data)]


@pytest.mark.parametrize("verb", ["disable", "revoke"])
def test_handlerUnknownName(verb: str) -> None:
    """
    XEP-0257 §2.3, §2.4: disabling or revoking an unknown name is answered
    with item-not-found.
    """
    _, _, streamManager = makeHandler()
    response = answer(
        streamManager,
        f"<iq type='set' id='r1'><{verb} xmlns='{NS_SASLCERT}'><name>Nope</name></{verb}></iq>",
    )
    assert stanzaErrorCondition(response) == "item-not-found"


def test_handlerForbidden() -> None:
    """
    XEP-0257 §2.1: on a session limited by <no-cert-management/> a revoke
    is answered with forbidden, while listing works.
    """
    env, _, streamManager = makeHandler(canManage=False)
    resultOf(append(env, issue(), "Phone"))
    response = answer(
        streamManager,
        f"<iq type='set' id='r1'><revoke xmlns='{NS_SASLCERT}'><name>Phone</name></revoke></iq>",
    )
    assert stanzaErrorCondition(response) == "forbidden"
    assert states(env) == [("Phone", "enabled")]
    listed = answer(streamManager, f"<iq type='get' id='r1'><items xmlns='{NS_SASLCERT}'/></iq>")
    assert listed.getAttribute("type") == "result"


@pytest.mark.parametrize(
    "xml",
    [
        f"<iq type='set' id='r1'><items xmlns='{NS_SASLCERT}'/></iq>",
        f"<iq type='get' id='r1'><revoke xmlns='{NS_SASLCERT}'><name>Phone</name></revoke></iq>",
        "<iq type='set' id='r1'><revoke xmlns='urn:example'><name>Phone</name></revoke></iq>",
        f"<iq type='result' id='r1'><items xmlns='{NS_SASLCERT}'/></iq>",
    ],
    ids=["items set", "revoke get", "other namespace", "result"],
)
def test_handlerIgnoresOthers(xml: str) -> None:
    """
    XEP-0257 §2: items is a get and append, disable and revoke are sets in
    urn:xmpp:saslcert:1; anything else is left to other handlers (which
    answer service-unavailable) and changes nothing.
    """
    env, _, streamManager = makeHandler()
    resultOf(append(env, issue(), "Phone"))
    assert request(streamManager, xml) is None
    assert states(env) == [("Phone", "enabled")]


# --- store failures and the audit trail ---------------------------------------


def breakStore(env: Env, method: str, exception: BaseException) -> None:
    """
    Make C{env.store.<method>} fail with C{exception}, as a store fails
    when its file is locked too long, the disk is full or the file is
    read-only.
    """
    setattr(env.store, method, lambda *args, **kwargs: defer.fail(exception))


def xmppcertEvents(events: Sequence[LogEvent], level: LogLevel | None = None) -> list[LogEvent]:
    """
    The events of C{events} logged by xmppcert (at C{level}, if given).
    """
    return [
        e for e in events
        if e.get("log_namespace", "").startswith("xmppcert") and (level is None or e["log_level"] == level)
    ]


def errorEvents(events: Sequence[LogEvent]) -> list[LogEvent]:
    """
    Every event at error level or above, whoever logged it (wokkel's
    "Unhandled error in iq handler" included).
    """
    return [
        e for e in events
        if e.get("log_level") in (LogLevel.error, LogLevel.critical) or e.get("isError")
    ]


#: (verb, the store method that fails, a request making that verb).
STORE_CALLS = [
    ("append", "addCertificate", lambda env: append(env, issue([ALICE]), "Tablet")),
    ("items", "listCertificates", lambda env: env.manager.items(requester())),
    ("disable", "listCertificates", lambda env: env.manager.disable(requester(), "Phone")),
    ("disable", "setCertificateStateByFingerprint", lambda env: env.manager.disable(requester(), "Phone")),
    ("revoke", "setCertificateStateByFingerprint", lambda env: env.manager.revoke(requester(), "Phone")),
]

STORE_EXCEPTIONS = [
    sqlite3.OperationalError("database is locked"),
    sqlite3.OperationalError("database or disk is full"),
    StoreError("the store is closed"),
    OSError(28, "No space left on device"),
]


@pytest.mark.parametrize("exception", STORE_EXCEPTIONS, ids=lambda e: type(e).__name__ + ": " + str(e))
@pytest.mark.parametrize("verb, method, call", STORE_CALLS, ids=lambda v: v if isinstance(v, str) else "")
def test_storeFailure(verb: str, method: str, call: Callable[[Env], Any], exception: BaseException) -> None:
    """
    A request meeting a store failure (not the store's answer about the
    certificate) is answered internal-server-error, type wait, with a
    short text; xmppcert logs it as one line at error level (an operator
    must act), naming the request and the account, without a traceback.
    """
    env = makeEnv()
    resultOf(append(env, issue(), "Phone"))
    breakStore(env, method, exception)
    with capturedLogs() as events:
        value = stanzaError(call(env))
    assert (value.condition, value.type, value.text) == ("internal-server-error", "wait", STORE_UNAVAILABLE)
    [line] = errorEvents(events)
    assert line["log_namespace"].startswith("xmppcert") and line["log_level"] == LogLevel.error
    assert (line["verb"], line["account"]) == (verb, ALICE)
    assert str(exception) in line["error"]
    assert "log_failure" not in line
    delattr(env.store, method)
    assert states(env) == [("Phone", "enabled")]


def test_storeFailureLogRateLimited() -> None:
    """
    A peer can repeat a request that meets a broken store at will, but
    cannot flood the log: at most one error line a minute, and the next
    one counts the failures left out meanwhile. Every request still gets
    its answer.
    """
    env = makeEnv()
    breakStore(env, "listCertificates", sqlite3.OperationalError("database is locked"))
    with capturedLogs() as events:
        for _ in range(5):
            assert outcome(env.manager.items(requester())) == ("internal-server-error", "wait")
            env.clock.advance(10)
        assert len(errorEvents(events)) == 1
        env.clock.advance(10)
        assert outcome(env.manager.items(requester())) == ("internal-server-error", "wait")
    first, second = errorEvents(events)
    assert (first["suppressed"], second["suppressed"]) == (0, 4)


def test_storeAnswersAreNotFailures() -> None:
    """
    The store's answers (here NoSuchCertificate, a certificate removed
    meanwhile) keep their own stanza errors and log nothing at error: only
    a failing store is an operator's matter.
    """
    env = makeEnv()
    resultOf(append(env, issue(), "Phone"))
    from xmppcert.store.interfaces import NoSuchCertificate

    breakStore(env, "setCertificateStateByFingerprint", NoSuchCertificate("gone"))
    with capturedLogs() as events:
        assert outcome(env.manager.revoke(requester(), "Phone")) == ("item-not-found", "cancel")
    assert errorEvents(events) == []


def test_handlerStoreFailure() -> None:
    """
    On the stream, a store failure is an error reply carrying
    internal-server-error (type wait) and the short text, and only
    xmppcert's one line is logged at error: not wokkel's "Unhandled error
    in iq handler" traceback.
    """
    env, _, streamManager = makeHandler()
    breakStore(env, "addCertificate", sqlite3.OperationalError("attempt to write a readonly database"))
    with capturedLogs() as events:
        response = answer(
            streamManager,
            f"<iq type='set' id='r1'><append xmlns='{NS_SASLCERT}'><name>Phone</name>"
            f"<x509cert>{b64(issue())}</x509cert></append></iq>",
        )
    assert stanzaErrorCondition(response) == "internal-server-error"
    [errorElement] = [c for c in response.elements() if c.name == "error"]
    assert errorElement.getAttribute("type") == "wait"
    assert [str(c) for c in errorElement.elements() if c.name == "text"] == [STORE_UNAVAILABLE]
    [line] = errorEvents(events)
    assert line["log_namespace"].startswith("xmppcert")


class RealStoreFailureTests(unittest.TestCase):
    """
    Store failures of a real SQLite file, through L{CertificateManager}.
    """

    def makeManager(self, breakConnection: Callable[[sqlite3.Connection], object]) -> SASLCertBackend:
        """
        A manager over an SQLite store holding ALICE, whose connections
        are passed to C{breakConnection} when opened.
        """
        directory = tempfile.mkdtemp(prefix="xmppcert-test-")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        path = f"{directory}/accounts.sqlite"
        setup = SQLiteDatabase.open(path)
        setup.addAccount(ALICE, [])
        setup.close()

        class BrokenStore(SQLiteStore):
            def _openDatabase(self) -> SQLiteDatabase:
                database = super()._openDatabase()
                breakConnection(database._conn)
                return database

        store = BrokenStore(path)
        self.addCleanup(store.close)
        clock = task.Clock()
        clock.advance(NOW.timestamp())
        return CertificateManager(store, FakeSessions(), clock)

    async def assertAppendRefused(self, manager: SASLCertBackend) -> None:
        with capturedLogs() as events:
            d = manager.append(requester(), AppendRequest("Phone", issue()))
            with pytest.raises(error.StanzaError) as caught:
                await d
        assert (caught.value.condition, caught.value.type) == ("internal-server-error", "wait")
        [line] = errorEvents(events)
        assert line["log_namespace"].startswith("xmppcert")
        # Reading still works: the list is answered, and empty.
        assert await manager.items(requester()) == []

    async def test_readOnlyFile(self) -> None:
        """
        A store that cannot write (a read-only database: SQLite's
        "attempt to write a readonly database", as for a file the server
        may not write) refuses an append with internal-server-error (type
        wait) and one error line, while the list is still answered.
        """
        await self.assertAppendRefused(
            self.makeManager(lambda conn: conn.execute("PRAGMA query_only = ON"))
        )


def test_auditXEP0257() -> None:
    """
    Every change made with XEP-0257 is in the audit trail after it
    succeeded: the session's full JID as the actor, cert.append,
    cert.disable or cert.revoke, the certificate as the target
    (<jid>/<name>) and its fingerprint as the detail; refused requests
    and listing record nothing.
    """
    env = makeEnv()
    session = Requester(ALICE_JID, True, jid.JID(ALICE + "/desk"))
    phone, tablet = issue(), issue()
    resultOf(env.manager.append(session, AppendRequest("Phone", phone)))
    resultOf(env.manager.append(session, AppendRequest("Tablet", tablet)))
    failureOf(env.manager.append(session, AppendRequest("Phone", issue())), error.StanzaError)
    resultOf(env.manager.items(session))
    resultOf(env.manager.disable(session, "Phone"))
    resultOf(env.manager.revoke(session, "Tablet"))
    failureOf(env.manager.revoke(session, "Nothing"), error.StanzaError)
    assert [(e.actor, e.action, e.target, e.detail) for e in resultOf(env.store.auditTrail())] == [
        (ALICE + "/desk", "cert.append", ALICE + "/Phone", fingerprintOf(phone)),
        (ALICE + "/desk", "cert.append", ALICE + "/Tablet", fingerprintOf(tablet)),
        (ALICE + "/desk", "cert.disable", ALICE + "/Phone", fingerprintOf(phone)),
        (ALICE + "/desk", "cert.revoke", ALICE + "/Tablet", fingerprintOf(tablet)),
    ]
    assert all(isinstance(e, AuditEntry) and e.at == NOW.timestamp() for e in resultOf(env.store.auditTrail()))


def test_auditRetriedAppend() -> None:
    """
    A retried append is recorded again, marked as repeated: if the first
    one's entry was lost with its answer, the trail still shows the add.
    """
    env = makeEnv()
    data = issue()
    resultOf(append(env, data, "Phone"))
    resultOf(append(env, data, "Phone"))
    assert [(e.action, e.detail) for e in resultOf(env.store.auditTrail())] == [
        ("cert.append", fingerprintOf(data)),
        ("cert.append", fingerprintOf(data) + " (repeated)"),
    ]


def test_auditFailureDoesNotFailRequest() -> None:
    """
    An audit write that fails does not fail the request, which is done: it
    succeeds, and the failure is one line at warn (rate-limited), never at
    error.
    """
    env = makeEnv()
    breakStore(env, "recordAudit", sqlite3.OperationalError("database is locked"))
    with capturedLogs() as events:
        assert outcome(append(env, issue(), "Phone")) is None
        assert outcome(env.manager.revoke(requester(), "Phone")) is None
    assert errorEvents(events) == []
    [line] = [e for e in xmppcertEvents(events, LogLevel.warn) if "audit" in e["log_format"]]
    assert (line["action"], line["target"]) == ("cert.append", ALICE + "/Phone")
    assert states(env) == [("Phone", "revoked")]


def test_handlerAnswersInOrder() -> None:
    """
    RFC 6120 §10.1: a stream's requests are processed in the order they
    came: an append and then a revoke of that name, sent without waiting,
    revoke the appended certificate: the revoke does not look before the
    append is stored, even with a store whose reads overtake its writes.
    """


    class ReadsOvertakeWrites(InMemoryAccountStore):
        """
        Writes wait until released; reads answer at once, as SQLiteStore's
        reader thread does while its writer is busy.
        """

        held: list[tuple[Callable[[], Any], defer.Deferred[Any]]] = []

        def addCertificate(self, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
            d: defer.Deferred[Any] = defer.Deferred()
            self.held.append((lambda: InMemoryAccountStore.addCertificate(self, *args, **kwargs), d))
            return d

    env = makeEnv(storeClass=ReadsOvertakeWrites)
    handler = SASLCertHandler(env.manager, requester())
    streamManager = wokkelHelpers.TestableStreamManager()
    handler.setHandlerParent(streamManager)
    store = cast(ReadsOvertakeWrites, env.store)
    certificate = base64.b64encode(issue()).decode()
    output: list[domish.Element] = streamManager.stub.output
    for xml in (
        f"<iq type='set' id='a1'><append xmlns='{NS_SASLCERT}'><name>Phone</name>"
        f"<x509cert>{certificate}</x509cert></append></iq>",
        f"<iq type='set' id='r1'><revoke xmlns='{NS_SASLCERT}'><name>Phone</name></revoke></iq>",
    ):
        streamManager.stub.send(parseXml(xml.replace("<iq ", f"<iq from='{ALICE}/phone' to='{ALICE}' ", 1)))
    while store.held:
        run, d = store.held.pop(0)
        run().chainDeferred(d)
    assert sorted((e.getAttribute("id"), e.getAttribute("type")) for e in output) == [
        ("a1", "result"), ("r1", "result")
    ]
    assert states(env) == [("Phone", "revoked")]
