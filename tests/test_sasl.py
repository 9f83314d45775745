"""
Tests for L{xmppcert.sasl}: the mechanism registry, the mapping of SASL
identities to accounts, and the PLAIN, SCRAM and EXTERNAL mechanisms on
their own (the stream side is in test_c2s).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509 as cx509
from scramp import ScramClient
from twisted.cred import error as credError
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.words.protocols.jabber import jid
from zope.interface import implementer
from zope.interface.verify import verifyClass, verifyObject

from tests.helpers import ALICE, BOB, DOMAIN, PASSWORD, addAccount, failureOf, makePortal, resultOf
from xmppcert import x509
from xmppcert.cred import (
    Account,
    ClientCertificate,
    IClientCertificate,
    SASLAuthFailure,
    StoredCertificateChecker,
)
from xmppcert.sasl import (
    CONDITIONS,
    Challenge,
    ISASLServerMechanism,
    MechanismContext,
    MechanismRegistry,
    SASLFailure,
    Success,
    accountJID,
    checkAuthzid,
    defaultRegistry,
    login,
)
from xmppcert.sasl.external import MAX_AUTHZID, External
from xmppcert.sasl.plain import Plain
from xmppcert.sasl.scram import ScramSHA1, ScramSHA256, _parseClientFirst, _unescapeSaslname
from xmppcert.testing import InMemoryAccountStore


def makeContext(secure: bool = True, portal: Portal | None = None) -> MechanismContext:
    store = InMemoryAccountStore()
    addAccount(store, ALICE)
    return MechanismContext(
        portal=portal or makePortal(store),
        store=store,
        domain=DOMAIN,
        secure=secure,
        peerAddress="192.0.2.7:40000",
    )


def condition(d: object) -> str:
    value = failureOf(d, SASLFailure).value
    assert isinstance(value, SASLFailure)
    return value.condition


# --- the registry ---------------------------------------------------------


@dataclass
class FakeFactory:
    name: str
    priority: int
    available: bool = True

    def isAvailable(self, context: MechanismContext) -> bool:
        return self.available

    def __call__(self, context: MechanismContext) -> object:
        return object()


def offeredNames(registry: MechanismRegistry, enabled: list[str], context: MechanismContext) -> list[str]:
    # offered() may return a list or (for availability checks that need
    # I/O) a coroutine; resultOf takes both.
    return [f.name for f in resultOf(registry.offered(enabled, context))]


def test_registryConfigOrder() -> None:
    """
    RFC 6120 §6.3.3: mechanisms are offered in the configured order, not
    in priority order.
    """
    registry = MechanismRegistry([FakeFactory("A", 30), FakeFactory("B", 20), FakeFactory("C", 10)])
    assert offeredNames(registry, ["C", "A", "B"], makeContext()) == ["C", "A", "B"]
    assert offeredNames(registry, ["B"], makeContext()) == ["B"]


def test_registryUnknownSkipped() -> None:
    """
    Configuration: an enabled name the registry does not know is skipped.
    """
    registry = MechanismRegistry([FakeFactory("A", 30)])
    assert offeredNames(registry, ["X-UNKNOWN", "A", "Y"], makeContext()) == ["A"]


def test_registryAvailability() -> None:
    """
    RFC 6120 §6.3.3: a mechanism that is not available for the stream is
    not offered.
    """
    registry = MechanismRegistry([FakeFactory("A", 30, available=False), FakeFactory("B", 20)])
    assert offeredNames(registry, ["A", "B"], makeContext()) == ["B"]


def test_plainNeedsTLS() -> None:
    """
    RFC 6120 §13.8 / RFC 4616 §6: PLAIN is offered only on TLS-protected
    streams; SCRAM on any.
    """
    registry = defaultRegistry()
    enabled = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    assert offeredNames(registry, enabled, makeContext(secure=True)) == enabled
    assert offeredNames(registry, enabled, makeContext(secure=False)) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]


def test_registryNamesAndReplace() -> None:
    """
    The registry lists names by priority, and registering a name again
    replaces the factory.
    """
    registry = MechanismRegistry([FakeFactory("LOW", 1), FakeFactory("HIGH", 50)])
    assert registry.names() == ["HIGH", "LOW"]
    replacement = FakeFactory("LOW", 99)
    registry.register(replacement)
    assert registry.names() == ["LOW", "HIGH"]
    assert registry.get("LOW") is replacement
    assert registry.get("NONE") is None


def test_defaultRegistry() -> None:
    """
    The shipped mechanisms are known, strongest first.
    """
    names = defaultRegistry().names()
    ours = [n for n in names if n in ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")]
    assert ours == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


def test_saslFailureConditions() -> None:
    """
    RFC 6120 §6.5: a SASLFailure carries one of the defined conditions only.
    """
    assert "not-authorized" in CONDITIONS
    failure = SASLFailure("malformed-request", "why", closeStream=True)
    assert (failure.condition, failure.text, failure.closeStream) == ("malformed-request", "why", True)
    with pytest.raises(AssertionError):
        SASLFailure("no-such-condition")


# --- identities -----------------------------------------------------------


@pytest.mark.parametrize("authcid", ["alice", "alice@example.com", "Alice", "ALICE@EXAMPLE.COM"])
def test_accountJID(authcid: str) -> None:
    """
    RFC 6120 §6.3.7: the authentication identity is a localpart, or the
    bare JID of an account of the stream's domain; both are prepared.
    """
    assert accountJID(authcid, DOMAIN) == jid.JID(ALICE)


@pytest.mark.parametrize(
    "authcid",
    [
        "alice@other.example",
        "alice@example.com/phone",
        "alice/phone",
        "al:ice",
        "",
        "@example.com",
        "a@b@c",
    ],
)
def test_accountJIDRefused(authcid: str) -> None:
    """
    RFC 6120 §6.3.7: an identity of another domain, a full JID, or anything
    that is not a possible account gets not-authorized.
    """
    with pytest.raises(SASLFailure) as info:
        accountJID(authcid, DOMAIN)
    assert info.value.condition == "not-authorized"


def test_accountJIDEmptyLabel() -> None:
    """
    RFC 6120 §6.3.7: an identity whose domain has an empty label gets
    not-authorized, not an unexpected exception (temporary-auth-failure).
    """
    with pytest.raises(SASLFailure) as info:
        accountJID("alice@a..example.com", DOMAIN)
    assert info.value.condition == "not-authorized"


@pytest.mark.parametrize("authzid", ["", "alice@example.com", "ALICE@example.com"])
def test_checkAuthzidOwn(authzid: str) -> None:
    """
    RFC 6120 §6.3.8: no authzid, or the account's own bare JID, is accepted.
    """
    checkAuthzid(authzid, jid.JID(ALICE))


@pytest.mark.parametrize("authzid", ["bob@example.com", "alice@other.example", "a@b@c"])
def test_checkAuthzidOther(authzid: str) -> None:
    """
    RFC 6120 §6.3.8 / §6.5.5: acting as another entity (or an authzid that
    is no JID) gets invalid-authzid.
    """
    with pytest.raises(SASLFailure) as info:
        checkAuthzid(authzid, jid.JID(ALICE))
    assert info.value.condition == "invalid-authzid"


def test_checkAuthzidEmptyLabel() -> None:
    """
    RFC 6120 §6.5.5: an authzid whose domain has an empty label gets
    invalid-authzid.
    """
    with pytest.raises(SASLFailure) as info:
        checkAuthzid("bob@a..example.com", jid.JID(ALICE))
    assert info.value.condition == "invalid-authzid"


# --- login ----------------------------------------------------------------


class FailingPortal:
    def __init__(self, exception: Exception) -> None:
        self.exception = exception

    def login(self, credentials: object, mind: object, *interfaces: object) -> defer.Deferred[object]:
        return defer.fail(self.exception)


@pytest.mark.parametrize(
    "exception, expected, closeStream",
    [
        (SASLAuthFailure("invalid-authzid", "no", closeStream=True), "invalid-authzid", True),
        (SASLAuthFailure(), "not-authorized", False),
        (credError.UnauthorizedLogin(), "not-authorized", False),
        (credError.UnhandledCredentials(), "not-authorized", False),
    ],
)
def test_loginTranslatesFailures(exception: Exception, expected: str, closeStream: bool) -> None:
    """
    RFC 6120 §6.5: cred failures become SASL failures; a SASLAuthFailure
    keeps its condition and closeStream.
    """
    context = makeContext(portal=FailingPortal(exception))  # type: ignore[arg-type]
    value = failureOf(login(context, object()), SASLFailure).value
    assert isinstance(value, SASLFailure)
    assert (value.condition, value.closeStream) == (expected, closeStream)


# --- PLAIN ----------------------------------------------------------------


def test_plainInterface() -> None:
    """
    Plain provides ISASLServerMechanism.
    """
    assert verifyClass(ISASLServerMechanism, Plain)
    assert verifyObject(ISASLServerMechanism, Plain(makeContext()))


def test_plainSuccess() -> None:
    """
    RFC 4616 §2: authzid NUL authcid NUL password with the right password
    logs in as the account.
    """
    result = resultOf(Plain(makeContext()).start(f"\0alice\0{PASSWORD}".encode()))
    assert isinstance(result, Success)
    assert isinstance(result.account, Account)
    assert result.account.jid == jid.JID(ALICE)
    assert result.additionalData is None


def test_plainOwnAuthzid() -> None:
    """
    RFC 6120 §6.3.8: an authzid naming the account itself is accepted.
    """
    result = resultOf(Plain(makeContext()).start(f"alice@example.com\0alice\0{PASSWORD}".encode()))
    assert result.account.jid == jid.JID(ALICE)


def test_plainNoInitialResponse() -> None:
    """
    RFC 4422 §5: without an initial response PLAIN sends an empty challenge.
    """
    assert resultOf(Plain(makeContext()).start(None)) == Challenge(b"")


def test_plainWrongPassword() -> None:
    """
    RFC 6120 §6.5.10: a wrong password gets not-authorized.
    """
    assert condition(Plain(makeContext()).start(b"\0alice\0wrong")) == "not-authorized"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"alice",
        b"\0alice",
        b"\0alice\0pw\0extra",
        b"\0\0" + PASSWORD.encode(),
        b"\0alice\0",
        b"\0" + b"a" * 256 + b"\0pw",
        b"\0alice\0" + b"p" * 256,
        b"z" * 256 + b"\0alice\0pw",
        b"\0al\xffice\0pw",
        b"\0alice\0\xc3(",
    ],
    ids=[
        "empty",
        "no-nul",
        "one-nul",
        "three-nuls",
        "empty-authcid",
        "empty-password",
        "long-authcid",
        "long-password",
        "long-authzid",
        "bad-utf8-authcid",
        "bad-utf8-password",
    ],
)
def test_plainMalformed(data: bytes) -> None:
    """
    RFC 4616 §2 and RFC 6120 §6.5.8: a message without exactly two NULs,
    with an empty authcid or password, a field over 255 octets, or bad
    UTF-8 gets malformed-request.
    """
    assert condition(Plain(makeContext()).start(data)) == "malformed-request"


def test_plainLongestField() -> None:
    """
    RFC 4616 §2: a field of exactly 255 octets is not malformed (the wrong
    password is then simply not-authorized).
    """
    assert condition(Plain(makeContext()).start(b"\0alice\0" + b"p" * 255)) == "not-authorized"


def test_plainOtherAuthzid() -> None:
    """
    RFC 6120 §6.5.5: an authzid of another user gets invalid-authzid, even
    with the right password.
    """
    data = f"bob@example.com\0alice\0{PASSWORD}".encode()
    assert condition(Plain(makeContext()).start(data)) == "invalid-authzid"


def test_plainOtherDomain() -> None:
    """
    RFC 6120 §6.3.7: an authcid of another domain gets not-authorized.
    """
    data = f"\0alice@other.example\0{PASSWORD}".encode()
    assert condition(Plain(makeContext()).start(data)) == "not-authorized"


# --- SCRAM ----------------------------------------------------------------


def test_scramInterface() -> None:
    """
    The SCRAM mechanisms provide ISASLServerMechanism and are available
    without TLS (the password never travels).
    """
    for cls in (ScramSHA256, ScramSHA1):
        assert verifyClass(ISASLServerMechanism, cls)
        assert verifyObject(ISASLServerMechanism, cls(makeContext()))
        assert cls.isAvailable(makeContext(secure=False))
    assert (ScramSHA256.name, ScramSHA1.name) == ("SCRAM-SHA-256", "SCRAM-SHA-1")


@pytest.mark.parametrize(
    "message, expected",
    [
        ("n,,n=alice,r=abc", ("", "alice")),
        ("y,,n=alice,r=abc", ("", "alice")),
        ("n,a=alice@example.com,n=alice,r=abc", ("alice@example.com", "alice")),
        ("n,,n=a=2Cb=3Dc,r=abc", ("", "a,b=c")),
        ("n,a=x=3Dy,n=alice,r=abc", ("x=y", "alice")),
    ],
)
def test_parseClientFirst(message: str, expected: tuple[str, str]) -> None:
    """
    RFC 5802 §5.1 and §7: the gs2 header gives the authzid, n= the user
    name, both with =2C and =3D unescaped.
    """
    assert _parseClientFirst(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        "p=tls-unique,,n=alice,r=abc",
        "p=tls-exporter,,n=alice,r=abc",
        "x,,n=alice,r=abc",
        "n,b=bob,n=alice,r=abc",
        "n,,m=ext,n=alice,r=abc",
        "n,,r=abc",
        "n,,",
        "n",
        "",
        "n,,n=al=ice,r=abc",
    ],
)
def test_parseClientFirstMalformed(message: str) -> None:
    """
    RFC 5802 §5.1 and §7: channel binding (p=, which needs a -PLUS
    mechanism), a bad gs2 header, a missing or reserved attribute, or a
    bad escape get malformed-request.
    """
    with pytest.raises(SASLFailure) as info:
        _parseClientFirst(message)
    assert info.value.condition == "malformed-request"


@pytest.mark.parametrize(
    "escaped, plainName",
    [("alice", "alice"), ("a=2Cb", "a,b"), ("a=3Db", "a=b"), ("=3D2C", "=2C"), ("=3D3D", "=3D"), ("=2C=3D", ",=")],
)
def test_unescapeSaslname(escaped: str, plainName: str) -> None:
    """
    RFC 5802 §5.1: =2C is ',' and =3D is '='; what an escape produces is
    not unescaped again.
    """
    assert _unescapeSaslname(escaped) == plainName


@pytest.mark.parametrize("escaped", ["=", "a=", "=2", "=2c", "=3d", "==2C", "a=b", "=41"])
def test_unescapeSaslnameBad(escaped: str) -> None:
    """
    RFC 5802 §5.1: '=' not followed by 2C or 3D gets malformed-request.
    """
    with pytest.raises(SASLFailure) as info:
        _unescapeSaslname(escaped)
    assert info.value.condition == "malformed-request"


def test_unescapeSaslnameBadAcrossEscape() -> None:
    """
    RFC 5802 §5.1: in '=3=2CD' the first '=' is followed by '3=', a bad
    escape, which must fail even though deleting '=2C' leaves '=3D'.
    """
    with pytest.raises(SASLFailure):
        _unescapeSaslname("=3=2CD")


def test_scramNoInitialResponse() -> None:
    """
    RFC 6120 §6.4.2: without an initial response (or an empty one) SCRAM
    sends an empty challenge and waits for the client-first message.
    """
    assert resultOf(ScramSHA256(makeContext()).start(None)) == Challenge(b"")
    assert resultOf(ScramSHA256(makeContext()).start(b"")) == Challenge(b"")


def serverFirst(mechanism: ScramSHA256 | ScramSHA1, user: str) -> dict[str, str]:
    client = ScramClient([mechanism.name], user, PASSWORD)
    challenge = resultOf(mechanism.start(client.get_client_first().encode()))
    assert isinstance(challenge, Challenge)
    return dict(part.split("=", 1) for part in challenge.data.decode().split(","))


def test_scramExchange() -> None:
    """
    RFC 5802 §3: a full exchange with a real client succeeds and the
    server-final message carries a signature the client accepts.
    """
    mechanism = ScramSHA256(makeContext())
    client = ScramClient(["SCRAM-SHA-256"], "alice", PASSWORD)
    challenge = resultOf(mechanism.start(client.get_client_first().encode()))
    client.set_server_first(challenge.data.decode())
    success = resultOf(mechanism.step(client.get_client_final().encode()))
    assert isinstance(success, Success)
    assert success.account.jid == jid.JID(ALICE)
    assert success.additionalData is not None
    client.set_server_final(success.additionalData.decode())
    assert condition(mechanism.step(b"c=biws")) == "malformed-request"


def test_scramUnknownUserLooksNormal() -> None:
    """
    RFC 5802 §5.1: for an unknown user the server-first message has a salt
    and the usual iteration count, and the same salt on every attempt (so
    a changing salt does not give the user away).
    """
    first = serverFirst(ScramSHA256(makeContext()), "nobody")
    second = serverFirst(ScramSHA256(makeContext()), "nobody")
    assert set(first) == {"r", "s", "i"}
    assert first["i"] == "4096"
    assert first["s"] == second["s"]
    assert first["r"] != second["r"]


def test_scramUnknownUserSaltFromContextSecret() -> None:
    """
    RFC 5802 §5.1: the made-up salt comes from the context's secret (the
    store's, stable across restarts); another secret gives another salt.
    """
    import dataclasses

    from xmppcert import passwords

    context = dataclasses.replace(makeContext(), fakeCredentialSecret=b"s" * 32)
    salt = serverFirst(ScramSHA256(context), "nobody")["s"]
    expected = passwords.fakeScramCredential(b"s" * 32, "nobody@example.com", "SCRAM-SHA-256", 4096)
    assert base64.b64decode(salt) == expected.salt
    other = dataclasses.replace(context, fakeCredentialSecret=b"t" * 32)
    assert serverFirst(ScramSHA256(other), "nobody")["s"] != salt


def test_scramOtherAuthzid() -> None:
    """
    RFC 6120 §6.5.5: a client-first message asking for another user's
    authzid gets invalid-authzid.
    """
    mechanism = ScramSHA256(makeContext())
    assert condition(mechanism.start(b"n,a=bob@example.com,n=alice,r=abcdefgh")) == "invalid-authzid"


def test_scramBadUTF8() -> None:
    """
    RFC 5802 §5.1: messages are UTF-8; anything else gets malformed-request.
    """
    assert condition(ScramSHA256(makeContext()).start(b"n,,n=al\xffice,r=abc")) == "malformed-request"


def test_scramBadNonce() -> None:
    """
    RFC 5802 §5.1: a client-first message without a nonce gets
    malformed-request.
    """
    assert condition(ScramSHA256(makeContext()).start(b"n,,n=alice")) == "malformed-request"


# --- EXTERNAL -------------------------------------------------------------

#: The fixed "now" of the EXTERNAL tests.
NOW = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=datetime.UTC)

CLIENT_KEY = x509.generateClientKey()


def clientCertificate(jids: Sequence[str], **kwargs: Any) -> cx509.Certificate:
    """
    A self-signed client certificate naming C{jids}, issued at NOW.
    """
    return x509.issueClientCertificate(jids, CLIENT_KEY, now=NOW, **kwargs)


@implementer(ICredentialsChecker)
class RecordingCertificateChecker:
    """
    A certificate checker without couldAccept that accepts everything as
    C{answer} and records the credentials it saw.
    """

    credentialInterfaces = (IClientCertificate,)

    def __init__(self, answer: Any = b"alice@example.com") -> None:
        self.answer = answer
        self.seen: list[ClientCertificate] = []

    def requestAvatarId(self, credentials: ClientCertificate) -> defer.Deferred[Any]:
        self.seen.append(credentials)
        return defer.succeed(self.answer)


class DecidingCertificateChecker(RecordingCertificateChecker):
    """
    A certificate checker whose couldAccept answers C{could}.
    """

    def __init__(self, could: bool) -> None:
        super().__init__()
        self.could = could
        self.asked: list[ClientCertificate] = []

    async def couldAccept(self, credentials: ClientCertificate) -> bool:
        self.asked.append(credentials)
        return self.could


@dataclass
class ExternalSetup:
    context: MechanismContext
    store: InMemoryAccountStore
    clock: task.Clock


def externalContext(
    chain: Sequence[cx509.Certificate] = (),
    *,
    secure: bool = True,
    checker: Any = None,
    stored: bool = False,
) -> ExternalSetup:
    """
    A context for EXTERNAL with the peer chain C{chain}, over a store with
    alice and bob, at NOW. The portal has C{checker} for client
    certificates, or with C{stored} the real StoredCertificateChecker, or
    no certificate checker at all.
    """
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    store = InMemoryAccountStore(clock=clock.seconds)
    addAccount(store, ALICE)
    addAccount(store, BOB)
    portal = makePortal(store)
    if stored:
        checker = StoredCertificateChecker(store, clock, [DOMAIN])
    if checker is not None:
        portal.registerChecker(checker)
    context = MechanismContext(
        portal=portal,
        store=store,
        domain=DOMAIN,
        secure=secure,
        peerAddress="192.0.2.7:40000",
        peerChain=tuple(chain),
    )
    return ExternalSetup(context, store, clock)


def registerCertificate(store: InMemoryAccountStore, certificate: cx509.Certificate, account: str = ALICE) -> None:
    resultOf(
        store.addCertificate(
            account,
            "laptop",
            b"",
            x509.fingerprint(certificate),
            certificate.not_valid_after_utc.timestamp(),
        )
    )


def externalFailure(d: object) -> SASLFailure:
    value = failureOf(d, SASLFailure).value
    assert isinstance(value, SASLFailure)
    return value


def test_externalInterface() -> None:
    """
    RFC 4422 appendix A: External provides ISASLServerMechanism under the
    name EXTERNAL, and is the shipped mechanism of highest priority.
    """
    assert verifyClass(ISASLServerMechanism, External)
    assert verifyObject(ISASLServerMechanism, External(externalContext().context))
    assert External.name == "EXTERNAL"
    assert defaultRegistry().names()[0] == "EXTERNAL"
    assert defaultRegistry().get("EXTERNAL") is External


def test_externalAvailableWithCertificate() -> None:
    """
    RFC 6120 §6.3.4: EXTERNAL is available on a TLS stream with a client
    certificate when the certificate checker has no couldAccept (it cannot
    tell in advance).
    """
    setup = externalContext([clientCertificate([ALICE])], checker=RecordingCertificateChecker())
    assert resultOf(External.isAvailable(setup.context)) is True


@pytest.mark.parametrize("could", [True, False])
def test_externalAvailableAsksChecker(could: bool) -> None:
    """
    RFC 6120 §6.3.4: the checker's couldAccept decides, asked with the
    peer chain, no authzid and the stream's domain; no login happens.
    """
    leaf = clientCertificate([ALICE])
    checker = DecidingCertificateChecker(could)
    setup = externalContext([leaf], checker=checker)
    assert resultOf(External.isAvailable(setup.context)) is could
    assert checker.asked == [ClientCertificate((leaf,), None, DOMAIN)]
    assert checker.seen == []


@pytest.mark.parametrize(
    "withChain, secure, withChecker",
    [(False, True, True), (True, False, True), (True, True, False)],
    ids=["no-certificate", "no-tls", "no-certificate-checker"],
)
def test_externalNotAvailable(withChain: bool, secure: bool, withChecker: bool) -> None:
    """
    RFC 6120 §6.3.4 / XEP-0178 §2: EXTERNAL is not offered without a client
    certificate, without TLS, or when no checker handles certificates.
    """
    chain = [clientCertificate([ALICE])] if withChain else []
    checker = DecidingCertificateChecker(True) if withChecker else None
    setup = externalContext(chain, secure=secure, checker=checker)
    assert resultOf(External.isAvailable(setup.context)) is False
    if checker is not None:
        assert checker.asked == []


def test_externalAvailableStoredChecker() -> None:
    """
    RFC 6120 §6.3.4 / XEP-0257 §3: with the stored checker, EXTERNAL is
    offered for a registered certificate and not for an unregistered one.
    """
    registered = clientCertificate([ALICE])
    setup = externalContext([registered], stored=True)
    registerCertificate(setup.store, registered)
    assert resultOf(External.isAvailable(setup.context)) is True
    stranger = externalContext([clientCertificate([ALICE])], stored=True)
    assert resultOf(External.isAvailable(stranger.context)) is False


def test_externalOfferedFirst() -> None:
    """
    RFC 6120 §6.3.4: when EXTERNAL is offered it comes first, whatever its
    place in the configured order; the others keep the configured order.
    """
    setup = externalContext([clientCertificate([ALICE])], checker=DecidingCertificateChecker(True))
    registry = defaultRegistry()
    enabled = ["SCRAM-SHA-1", "PLAIN", "EXTERNAL", "SCRAM-SHA-256"]
    assert offeredNames(registry, enabled, setup.context) == [
        "EXTERNAL", "SCRAM-SHA-1", "PLAIN", "SCRAM-SHA-256",
    ]
    assert offeredNames(registry, ["PLAIN", "SCRAM-SHA-256"], setup.context) == ["PLAIN", "SCRAM-SHA-256"]


def test_externalNotOfferedWhenUnavailable() -> None:
    """
    RFC 6120 §6.3.4: EXTERNAL enabled but unavailable (the checker could
    not accept the certificate) is left out; the rest is offered as
    configured.
    """
    setup = externalContext([clientCertificate([ALICE])], checker=DecidingCertificateChecker(False))
    enabled = ["SCRAM-SHA-256", "EXTERNAL", "PLAIN"]
    assert offeredNames(defaultRegistry(), enabled, setup.context) == ["SCRAM-SHA-256", "PLAIN"]


def test_externalNoInitialResponse() -> None:
    """
    RFC 4422 appendix A.1 / RFC 6120 §6.4.2: without an initial response
    EXTERNAL sends an empty challenge; the response then carries the
    authzid (here empty: the certificate's identity).
    """
    leaf = clientCertificate([ALICE])
    checker = RecordingCertificateChecker()
    mechanism = External(externalContext([leaf], checker=checker).context)
    assert resultOf(mechanism.start(None)) == Challenge(b"")
    assert checker.seen == []
    result = resultOf(mechanism.step(b""))
    assert isinstance(result, Success)
    assert result.account.jid == jid.JID(ALICE)
    assert checker.seen == [ClientCertificate((leaf,), None, DOMAIN)]


def test_externalAuthzidAfterChallenge() -> None:
    """
    RFC 4422 appendix A.1: the response to the empty challenge is the
    authzid, passed on to the checker as text.
    """
    leaf = clientCertificate([ALICE])
    checker = RecordingCertificateChecker(b"alice@example.com/phone")
    mechanism = External(externalContext([leaf], checker=checker).context)
    assert resultOf(mechanism.start(None)) == Challenge(b"")
    result = resultOf(mechanism.step(b"alice@example.com/phone"))
    assert isinstance(result, Success)
    assert (result.account.jid, result.account.resource) == (jid.JID(ALICE), "phone")
    assert [c.authzid for c in checker.seen] == ["alice@example.com/phone"]


def test_externalEmptyInitialResponse() -> None:
    """
    RFC 6120 §6.4.2: an initial response of "=" (empty, b"" here) means no
    authzid: the login proceeds at once, with no challenge.
    """
    leaf = clientCertificate([ALICE])
    checker = RecordingCertificateChecker()
    result = resultOf(External(externalContext([leaf], checker=checker).context).start(b""))
    assert isinstance(result, Success)
    assert [c.authzid for c in checker.seen] == [None]


def test_externalInitialResponseAuthzid() -> None:
    """
    RFC 4422 appendix A.1: an initial response is the authzid, UTF-8
    decoded, with the peer chain and the stream's domain.
    """
    leaf = clientCertificate([ALICE])
    other = clientCertificate([BOB])
    checker = RecordingCertificateChecker()
    setup = externalContext([leaf, other], checker=checker)
    result = resultOf(External(setup.context).start("älice@example.com".encode()))
    assert isinstance(result, Success)
    assert checker.seen == [ClientCertificate((leaf, other), "älice@example.com", DOMAIN)]


@pytest.mark.parametrize(
    "response",
    [b"a" * (MAX_AUTHZID + 1), b"\xff", b"alice@example.com\xc3(", b"\xc3"],
    ids=["oversized", "invalid-byte", "invalid-sequence", "truncated"],
)
def test_externalMalformedAuthzid(response: bytes) -> None:
    """
    RFC 6120 §6.5.8: an authzid longer than a JID can be (3071 octets,
    RFC 7622) or that is not UTF-8 is malformed-request, the stream is
    closed, and no checker is asked.
    """
    checker = RecordingCertificateChecker()
    mechanism = External(externalContext([clientCertificate([ALICE])], checker=checker).context)
    failure = externalFailure(mechanism.start(response))
    assert (failure.condition, failure.closeStream) == ("malformed-request", True)
    mechanism = External(externalContext([clientCertificate([ALICE])], checker=checker).context)
    resultOf(mechanism.start(None))
    failure = externalFailure(mechanism.step(response))
    assert (failure.condition, failure.closeStream) == ("malformed-request", True)
    assert checker.seen == []


def test_externalLongestAuthzid() -> None:
    """
    RFC 7622 §3: an authzid of exactly 3071 octets is not malformed; it
    goes to the checker.
    """
    assert MAX_AUTHZID == 3071
    checker = RecordingCertificateChecker()
    mechanism = External(externalContext([clientCertificate([ALICE])], checker=checker).context)
    resultOf(mechanism.start(b"a" * MAX_AUTHZID))
    assert [len(c.authzid or "") for c in checker.seen] == [MAX_AUTHZID]


def test_externalNoPeerChain() -> None:
    """
    XEP-0178 §2: EXTERNAL without a client certificate is not-authorized at
    once, without asking a checker; the stream stays open so that the
    client may try another mechanism (RFC 6120 §6.4.5).
    """
    checker = RecordingCertificateChecker()
    mechanism = External(externalContext([], checker=checker).context)
    failure = externalFailure(mechanism.start(b""))
    assert (failure.condition, failure.closeStream) == ("not-authorized", False)
    assert checker.seen == []


def test_externalSuccessStoredCertificate() -> None:
    """
    XEP-0178 §2 / XEP-0257 §3: a registered certificate logs in through the
    portal; the Success carries the account with its certificate
    fingerprint and no additional data.
    """
    leaf = clientCertificate([ALICE])
    setup = externalContext([leaf], stored=True)
    registerCertificate(setup.store, leaf)
    result = resultOf(External(setup.context).start(b""))
    assert isinstance(result, Success)
    assert isinstance(result.account, Account)
    assert result.account.jid == jid.JID(ALICE)
    assert result.account.resource is None
    assert result.account.certificateFingerprint == x509.fingerprint(leaf)
    assert result.additionalData is None
    assert setup.store.certificates[x509.fingerprint(leaf)].lastUsedAt == NOW.timestamp()


@pytest.mark.parametrize(
    "jids, registered, authzid, condition",
    [
        ([ALICE], False, b"", "not-authorized"),
        ([ALICE, BOB], True, b"", "invalid-authzid"),
        ([ALICE], True, b"bob@example.com", "invalid-authzid"),
        ([ALICE], True, b"alice@other.example", "invalid-authzid"),
    ],
    ids=["unregistered", "several-jids", "authzid-not-named", "authzid-unserved-domain"],
)
def test_externalRefusedClosesStream(jids: list[str], registered: bool, authzid: bytes, condition: str) -> None:
    """
    XEP-0178 §2: a checker's refusal reaches the client with its condition,
    and the stream is closed.
    """
    leaf = clientCertificate(jids)
    setup = externalContext([leaf], stored=True)
    if registered:
        registerCertificate(setup.store, leaf)
    failure = externalFailure(External(setup.context).start(authzid))
    assert (failure.condition, failure.closeStream) == (condition, True)


# --- a locked account (xmppcert user lock) ------------------------------------


def lockedContext() -> MechanismContext:
    context = makeContext()
    resultOf(context.store.setAccountLocked(ALICE, True))
    return context


def test_lockedAccountRefusedPlain() -> None:
    """
    RFC 6120 §6.5.1: PLAIN with the right password for a locked account
    fails with account-disabled.
    """
    failure = externalFailure(Plain(lockedContext()).start(f"\0alice\0{PASSWORD}".encode()))
    assert failure.condition == "account-disabled"


@pytest.mark.parametrize("mechanism", [ScramSHA256, ScramSHA1])
def test_lockedAccountRefusedScram(mechanism: Any) -> None:
    """
    RFC 6120 §6.5.1: a SCRAM exchange with the right password for a locked
    account ends in account-disabled instead of success.
    """
    scram = mechanism(lockedContext())
    client = ScramClient([mechanism.name], "alice", PASSWORD)
    challenge = resultOf(scram.start(client.get_client_first().encode()))
    client.set_server_first(challenge.data.decode())
    assert condition(scram.step(client.get_client_final().encode())) == "account-disabled"


def test_lockedAccountRefusedExternal() -> None:
    """
    RFC 6120 §6.5.1: a registered certificate of a locked account fails
    EXTERNAL with account-disabled; unlocked, it logs in again.
    """
    leaf = clientCertificate([ALICE])
    setup = externalContext([leaf], stored=True)
    registerCertificate(setup.store, leaf)
    resultOf(setup.store.setAccountLocked(ALICE, True))
    assert externalFailure(External(setup.context).start(b"")).condition == "account-disabled"
    resultOf(setup.store.setAccountLocked(ALICE, False))
    assert isinstance(resultOf(External(setup.context).start(b"")), Success)


def test_lockNotRevealedWithoutCredentials() -> None:
    """
    The lock is checked only after the credentials: a wrong password for a
    locked account is not-authorized, as for any other, so the lock is
    told to no one who could not log in.
    """
    assert condition(Plain(lockedContext()).start(b"\0alice\0wrong")) == "not-authorized"
