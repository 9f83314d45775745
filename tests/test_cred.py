"""
Tests for L{xmppcert.cred}: the realm and account avatar, the stored
password checker (for PLAIN), the SCRAM proof checker, and the certificate
side: client-certificate credentials, the XEP-0178 identity rules, the
stored (XEP-0257) and CA checkers, the checker chain and its loading.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from scramp import ScramClient, ScramMechanism
from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, task
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.trial import unittest
from twisted.words.protocols.jabber import jid
from zope.interface import implementer, provider
from zope.interface.verify import verifyObject

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    OTHER_DOMAIN,
    PASSWORD,
    addAccount,
    failureOf,
    makeConfig,
    resultOf,
    syncDeferToThread,
)
from tests.helpers import credentials as scramCredentials
from xmppcert import passwords
from xmppcert import x509 as x509facts
from xmppcert.config import Config
from xmppcert.cred import (
    Account,
    AccountRealm,
    CACertificateChecker,
    CertificateCheckerChain,
    CertificateIdentity,
    ClientCertificate,
    IAccount,
    IClientCertificate,
    IScramProof,
    SASLAuthFailure,
    ScramChecker,
    ScramProof,
    StoredCertificateChecker,
    StoredPasswordChecker,
    TrustedCA,
    checkIdentityOfTrustedCertificate,
    checkStoredCertificate,
    loadCertificateCheckers,
    makePortal,
    selectIdentity,
)
from xmppcert.store.interfaces import StoredCertificate
from xmppcert.testing import InMemoryAccountStore


def authFailure(d: object) -> str:
    """
    The SASL condition of a login that failed with SASLAuthFailure.
    """
    value = failureOf(d, SASLAuthFailure).value
    assert isinstance(value, SASLAuthFailure)
    return value.condition


def makeStore() -> InMemoryAccountStore:
    store = InMemoryAccountStore()
    addAccount(store, ALICE)
    return store


# --- realm ----------------------------------------------------------------


@pytest.mark.parametrize("avatarId", [b"alice@example.com", "alice@example.com", "Alice@Example.com"])
def test_realmAccount(avatarId: bytes | str) -> None:
    """
    twisted.cred: the realm turns the avatar id a checker returned (bytes
    or str) into an Account with the prepared bare JID.
    """
    realm = AccountRealm()
    assert verifyObject(portal.IRealm, realm)
    interface, account, logout = realm.requestAvatar(avatarId, None, IAccount)
    assert interface is IAccount
    assert isinstance(account, Account)
    assert verifyObject(IAccount, account)
    assert account.jid == jid.JID(ALICE)
    assert account.jid.resource is None
    assert callable(logout)
    logout()


def test_realmBareJIDFromFullJID() -> None:
    """
    twisted.cred: the account's jid is always a bare JID.
    """
    _, account, _ = AccountRealm().requestAvatar("alice@example.com/phone", None, IAccount)
    assert account.jid.full() == ALICE


def test_realmWrongInterface() -> None:
    """
    twisted.cred: asking for an avatar interface other than IAccount raises
    NotImplementedError.
    """
    with pytest.raises(NotImplementedError):
        AccountRealm().requestAvatar(b"alice@example.com", None, credentials.ICredentials)


# --- StoredPasswordChecker ------------------------------------------------


class RecordingDeferToThread:
    """
    A synchronous deferToThread that records what it ran.
    """

    def __init__(self) -> None:
        self.calls: list[Callable[..., Any]] = []

    def __call__(self, f: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        self.calls.append(f)
        return syncDeferToThread(f, *args)


def test_storedPasswordInterface() -> None:
    """
    StoredPasswordChecker provides ICredentialsChecker for usernames and
    passwords.
    """
    checker = StoredPasswordChecker(makeStore())
    assert verifyObject(checkers.ICredentialsChecker, checker)
    assert checker.credentialInterfaces == (credentials.IUsernamePassword,)


@pytest.mark.parametrize(
    "username, password",
    [(b"alice@example.com", PASSWORD.encode()), ("alice@example.com", PASSWORD)],
    ids=["bytes", "str"],
)
def test_storedPasswordRight(username: Any, password: Any) -> None:
    """
    SASL PLAIN (RFC 4616): the right password, checked against the stored
    SCRAM-SHA-256 credential, gives the bare JID as avatar id; PBKDF2 runs
    through deferToThread, never on the caller's thread.
    """
    runner = RecordingDeferToThread()
    checker = StoredPasswordChecker(makeStore(), deferToThread=runner)
    result = resultOf(checker.requestAvatarId(credentials.UsernamePassword(username, password)))
    assert result == b"alice@example.com"
    assert runner.calls == [passwords.verifyPassword]


def test_storedPasswordWrong() -> None:
    """
    RFC 6120 §6.5.10: a wrong password fails with not-authorized.
    """
    checker = StoredPasswordChecker(makeStore(), deferToThread=syncDeferToThread)
    creds = credentials.UsernamePassword(b"alice@example.com", b"wrong")
    assert authFailure(checker.requestAvatarId(creds)) == "not-authorized"


def test_storedPasswordUnknownAccount() -> None:
    """
    RFC 6120 §6.5.10: an unknown account fails with not-authorized, after
    the same PBKDF2 work as a real one (timing does not reveal accounts).
    """
    runner = RecordingDeferToThread()
    checker = StoredPasswordChecker(makeStore(), deferToThread=runner)
    creds = credentials.UsernamePassword(b"nobody@example.com", PASSWORD.encode())
    assert authFailure(checker.requestAvatarId(creds)) == "not-authorized"
    assert runner.calls == [passwords.verifyPassword]


def test_storedPasswordNoSHA256Credential() -> None:
    """
    An account without a SCRAM-SHA-256 credential (e.g. certificate-only)
    cannot log in with a password.
    """
    store = InMemoryAccountStore()
    store.accounts[ALICE] = {}
    checker = StoredPasswordChecker(store, deferToThread=syncDeferToThread)
    creds = credentials.UsernamePassword(ALICE.encode(), PASSWORD.encode())
    failureOf(checker.requestAvatarId(creds), SASLAuthFailure)


# --- ScramChecker ---------------------------------------------------------


def scramProof(password: str, genuine: bool = True, mechanism: str = "SCRAM-SHA-256") -> tuple[ScramProof, ScramClient]:
    """
    Run a real scramp exchange against the stored credential of alice up to
    the client-final message, and wrap that in a ScramProof.
    """
    stored = {c.mechanism: c for c in scramCredentials()}[mechanism]
    info = (stored.salt, stored.storedKey, stored.serverKey, stored.iterations)
    server = ScramMechanism(mechanism).make_server(lambda username: info)
    client = ScramClient([mechanism], "alice", password)
    server.set_client_first(client.get_client_first())
    client.set_server_first(server.get_server_first())
    return ScramProof(ALICE, server, client.get_client_final(), genuine), client


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scramCheckerRight(mechanism: str) -> None:
    """
    RFC 5802 §3: a correct client proof gives the bare JID, and the
    server-final message satisfies the client.
    """
    checker = ScramChecker()
    assert verifyObject(checkers.ICredentialsChecker, checker)
    proof, client = scramProof(PASSWORD, mechanism=mechanism)
    assert verifyObject(IScramProof, proof)
    assert resultOf(checker.requestAvatarId(proof)) == b"alice@example.com"
    client.set_server_final(proof.serverFinal())


def test_scramCheckerWrong() -> None:
    """
    RFC 5802 §5: a proof from the wrong password fails with not-authorized.
    """
    proof, _ = scramProof("wrong")
    assert authFailure(ScramChecker().requestAvatarId(proof)) == "not-authorized"


def test_scramCheckerFakeCredential() -> None:
    """
    RFC 5802 §5.1: a proof against made-up credentials (unknown account)
    never succeeds, even if it matched.
    """
    proof, _ = scramProof(PASSWORD, genuine=False)
    failureOf(ScramChecker().requestAvatarId(proof), SASLAuthFailure)


def test_scramProofGarbage() -> None:
    """
    RFC 5802 §7: a client-final message that does not parse is a failed
    proof, not an exception.
    """
    proof, _ = scramProof(PASSWORD)
    garbage = ScramProof(ALICE, proof._server, "not a scram message", True)
    assert garbage.checkProof() is False


# --- the portal -------------------------------------------------------------


def test_makePortal() -> None:
    """
    twisted.cred: the portal handles passwords and SCRAM proofs; an extra
    checker is registered for its own credential interface.
    """

    class IOther(credentials.ICredentials):
        pass

    class OtherChecker:
        credentialInterfaces = (IOther,)

        def requestAvatarId(self, creds: Any) -> defer.Deferred[bytes]:
            return defer.succeed(b"bob@example.com")

    p = makePortal(makeStore(), [OtherChecker()])  # type: ignore[list-item]
    interfaces = set(p.listCredentialsInterfaces())
    assert {credentials.IUsernamePassword, IScramProof, IOther} <= interfaces
    assert isinstance(p.realm, AccountRealm)


class PortalTests(unittest.TestCase):
    """
    The real portal on the real reactor, with PBKDF2 in a real thread.
    """

    async def test_passwordLogin(self) -> None:
        """
        SASL PLAIN through makePortal: the right password logs in as the
        account (PBKDF2 in the reactor's thread pool); a wrong one is
        refused with not-authorized.
        """
        p = makePortal(makeStore())
        interface, avatar, _ = await p.login(
            credentials.UsernamePassword(b"alice@example.com", PASSWORD.encode()), None, IAccount
        )
        assert interface is IAccount
        assert isinstance(avatar, Account)
        assert avatar.jid == jid.JID(ALICE)
        with pytest.raises(SASLAuthFailure) as info:
            await p.login(credentials.UsernamePassword(b"alice@example.com", b"nope"), None, IAccount)
        assert info.value.condition == "not-authorized"


# ===========================================================================
# Client certificates (SASL EXTERNAL, XEP-0178; XEP-0257)
# ===========================================================================

#: The fixed "now" of the certificate tests.
NOW = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=datetime.UTC)

DOMAINS = frozenset({DOMAIN})

#: One key for the client certificates: each certificate still gets its own
#: fingerprint (random serial number), and EC keys are cheap but not free.
CLIENT_KEY = x509facts.generateClientKey()

#: A CA certificate and its key.
Issuer = tuple[cx509.Certificate, x509facts.ClientPrivateKey]


def clientCertificate(
    jids: Sequence[str],
    *,
    now: datetime.datetime = NOW,
    days: int = 365,
    issuer: Issuer | None = None,
) -> cx509.Certificate:
    """
    A client certificate naming C{jids} in id-on-xmppAddr, issued at
    C{now}: self-signed, or by C{issuer} (certificate, key).
    """
    if issuer is None:
        return x509facts.issueClientCertificate(jids, CLIENT_KEY, now=now, days=days)
    return x509facts.issueClientCertificate(
        jids, CLIENT_KEY, now=now, days=days, issuerCertificate=issuer[0], issuerKey=issuer[1]
    )


def _utf8String(text: str) -> bytes:
    raw = text.encode("utf-8")
    assert len(raw) < 128
    return b"\x0c" + bytes([len(raw)]) + raw


def handMadeCertificate(
    xmppAddrs: Sequence[str], usages: Sequence[cx509.ObjectIdentifier] | None = None
) -> cx509.Certificate:
    """
    A self-signed certificate valid at NOW whose id-on-xmppAddr values are
    C{xmppAddrs} as given (not checked or prepared), with extendedKeyUsage
    C{usages} (none when C{None}).
    """
    name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "hand made")])
    builder = (
        cx509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(CLIENT_KEY.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(
            cx509.SubjectAlternativeName(
                [cx509.OtherName(x509facts.XMPP_ADDR_OID, _utf8String(j)) for j in xmppAddrs]
            ),
            critical=False,
        )
    )
    if usages is not None:
        builder = builder.add_extension(cx509.ExtendedKeyUsage(list(usages)), critical=False)
    return builder.sign(CLIENT_KEY, hashes.SHA256())


def clockAt(moment: datetime.datetime = NOW) -> task.Clock:
    """
    A task.Clock showing C{moment}.
    """
    clock = task.Clock()
    clock.advance(moment.timestamp())
    return clock


def certificateStore(clock: task.Clock | None = None) -> InMemoryAccountStore:
    """
    A store with the accounts alice and bob, whose certificate times come
    from C{clock}.
    """
    store = InMemoryAccountStore(clock=(clock or clockAt()).seconds)
    addAccount(store, ALICE)
    addAccount(store, BOB)
    return store


def register(
    store: InMemoryAccountStore,
    certificate: cx509.Certificate,
    account: str = ALICE,
    name: str = "laptop",
    canManage: bool = True,
) -> StoredCertificate:
    """
    Register C{certificate} for C{account} directly in the store, skipping
    the checks of the CLI and XEP-0257 handler (so that the login path's
    own checks are what is tested).
    """
    stored: StoredCertificate = resultOf(
        store.addCertificate(
            account,
            name,
            certificate.public_bytes(Encoding.DER),
            x509facts.fingerprint(certificate),
            certificate.not_valid_after_utc.timestamp(),
            canManage=canManage,
        )
    )
    return stored


def setState(store: InMemoryAccountStore, certificate: cx509.Certificate, state: str) -> None:
    resultOf(store.setCertificateStateByFingerprint(x509facts.fingerprint(certificate), state))


def refusal(d: object) -> SASLAuthFailure:
    """
    The SASLAuthFailure a Deferred (or coroutine) failed with.
    """
    value = failureOf(d, SASLAuthFailure).value
    assert isinstance(value, SASLAuthFailure)
    return value


def creds(
    *chain: cx509.Certificate, authzid: str | None = None, domain: str = DOMAIN
) -> ClientCertificate:
    return ClientCertificate(tuple(chain), authzid, domain)


def jids(*texts: str) -> list[jid.JID]:
    return [jid.JID(t) for t in texts]


# --- ClientCertificate ------------------------------------------------------


def test_clientCertificateCredentials() -> None:
    """
    XEP-0178 §2: the EXTERNAL credentials provide IClientCertificate and
    carry the chain as presented (leaf first), the authzid and the domain;
    they are immutable.
    """
    leaf = clientCertificate([ALICE])
    other = clientCertificate([BOB])
    c = ClientCertificate((leaf, other), "alice@example.com", DOMAIN)
    assert verifyObject(IClientCertificate, c)
    assert credentials.ICredentials.providedBy(c)
    assert c.leaf is leaf
    assert c.chain == (leaf, other)
    assert (c.authzid, c.domain) == ("alice@example.com", DOMAIN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.authzid = "bob@example.com"  # type: ignore[misc]


# --- selectIdentity: the XEP-0178 rules --------------------------------------


def selectRefusal(addrs: list[jid.JID], authzid: str | None, mapped: jid.JID | None = None) -> SASLAuthFailure:
    with pytest.raises(SASLAuthFailure) as info:
        selectIdentity(addrs, authzid, DOMAINS, mappedAccount=mapped)
    return info.value


@pytest.mark.parametrize("authzid", [None, ""])
def test_selectOneAddrNoAuthzid(authzid: str | None) -> None:
    """
    XEP-0178 §2: one xmppAddr and no authzid (absent or empty) logs in as
    that JID.
    """
    chosen = selectIdentity(jids(ALICE), authzid, DOMAINS)
    assert chosen == jid.JID(ALICE)
    assert chosen.resource is None


def test_selectOneAddrOwnAuthzid() -> None:
    """
    XEP-0178 §2: an authzid naming the certificate's xmppAddr (any case,
    prepared before comparing) logs in as it.
    """
    assert selectIdentity(jids(ALICE), "Alice@EXAMPLE.com", DOMAINS) == jid.JID(ALICE)


def test_selectSeveralAddrsNoAuthzid() -> None:
    """
    XEP-0178 §2: several xmppAddrs and no authzid is invalid-authzid, and
    the stream is closed.
    """
    failure = selectRefusal(jids(ALICE, BOB), None)
    assert (failure.condition, failure.closeStream) == ("invalid-authzid", True)
    assert "authzid" in failure.text


@pytest.mark.parametrize("authzid", [ALICE, BOB])
def test_selectSeveralAddrsWithAuthzid(authzid: str) -> None:
    """
    XEP-0178 §2: with several xmppAddrs, an authzid naming one of them
    chooses it.
    """
    assert selectIdentity(jids(ALICE, BOB), authzid, DOMAINS) == jid.JID(authzid)


@pytest.mark.parametrize(
    "addrs, authzid",
    [
        ([ALICE, BOB], "carol@example.com"),
        ([ALICE], BOB),
        (["alice@example.com/phone"], "alice@example.com/other"),
        (["alice@example.com/phone"], BOB),
    ],
    ids=["other-user", "existing-other-account", "other-resource", "pinned-other-user"],
)
def test_selectAuthzidNotNamed(addrs: list[str], authzid: str) -> None:
    """
    XEP-0178 §2: an authzid the certificate does not name (another user,
    or another resource than the one the certificate pins) is
    invalid-authzid, and the stream is closed.
    """
    failure = selectRefusal(jids(*addrs), authzid)
    assert (failure.condition, failure.closeStream) == ("invalid-authzid", True)
    assert failure.text == "the certificate does not name the authzid"


@pytest.mark.parametrize("authzid", [None, "", "alice@example.com"])
def test_selectNoAddr(authzid: str | None) -> None:
    """
    XEP-0178 §2: a certificate that names no JID, and that nothing else
    maps to an account, is not-authorized, and the stream is closed.
    """
    failure = selectRefusal([], authzid)
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)


def test_selectAddrOfUnservedDomain() -> None:
    """
    XEP-0178 §2: the certificate's only JID is of a domain this stream
    does not address (or the server does not serve): the certificate
    cannot be mapped to an account here, so not-authorized (no authzid
    could help), and the stream is closed.
    """
    failure = selectRefusal(jids(f"alice@{OTHER_DOMAIN}"), None)
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)


@pytest.mark.parametrize(
    "authzid",
    [f"alice@{OTHER_DOMAIN}", DOMAIN, "example.com/res", "a@b@c", "alice@exa..mple.com", "alice@example.com/"],
)
def test_selectAuthzidNotAnAccountHere(authzid: str) -> None:
    """
    RFC 6120 §6.5.5 / XEP-0178 §2: an authzid of an unserved domain,
    without a localpart, or that is not a JID at all, is invalid-authzid
    with the stream closed, even when the certificate names that JID.
    """
    addrs = jids(f"alice@{OTHER_DOMAIN}", ALICE)
    for failure in [
        selectRefusal(addrs, authzid),
        selectRefusal([], authzid, mapped=jid.JID(ALICE)),
        selectRefusal([], authzid),
    ]:
        assert (failure.condition, failure.closeStream) == ("invalid-authzid", True)


def test_selectCertificatePinsResource() -> None:
    """
    XEP-0257 §3: a certificate naming a full JID logs in as that full JID
    (the only resource it may bind), with or without the bare JID as
    authzid.
    """
    addrs = jids("alice@example.com/phone")
    for authzid in [None, ALICE, "alice@example.com/phone"]:
        chosen = selectIdentity(addrs, authzid, DOMAINS)
        assert chosen.full() == "alice@example.com/phone", authzid


def test_selectAuthzidPinsResource() -> None:
    """
    RFC 6120 §6.3.8 / XEP-0257 §3: a full-JID authzid for a bare-JID
    certificate pins that resource.
    """
    chosen = selectIdentity(jids(ALICE), "alice@example.com/tablet", DOMAINS)
    assert (chosen.userhost(), chosen.resource) == (ALICE, "tablet")


def test_selectBareAddrWinsOverPinned() -> None:
    """
    XEP-0257 §3: a certificate that names the bare JID as well as a full JID
    of it allows any resource for a bare authzid, whatever the order of its
    xmppAddrs.
    """
    for order in [("alice@example.com/phone", ALICE), (ALICE, "alice@example.com/phone")]:
        chosen = selectIdentity(jids(*order), ALICE, DOMAINS)
        assert chosen.resource is None, order


def test_selectSeveralPinnedResources() -> None:
    """
    XEP-0257 §3 with XEP-0178 §2: a certificate naming two full JIDs of the
    account and no bare JID needs a full-JID authzid to pick one; a bare
    authzid is invalid-authzid (closing the stream), never an arbitrary pick.
    """
    addrs = jids("alice@example.com/phone", "alice@example.com/tablet")
    failure = selectRefusal(addrs, ALICE)
    assert (failure.condition, failure.closeStream) == ("invalid-authzid", True)
    assert selectIdentity(addrs, "alice@example.com/tablet", DOMAINS).resource == "tablet"
    assert selectIdentity(jids("alice@example.com/phone"), ALICE, DOMAINS).resource == "phone"


def test_selectMappedAccount() -> None:
    """
    XEP-0178 §2: a certificate without xmppAddr that maps to an account
    by other means logs in as that account; an authzid may name the
    account (optionally with a resource, which is then pinned) but not
    another one (invalid-authzid).
    """
    mapped = jid.JID(ALICE)
    assert selectIdentity([], None, DOMAINS, mappedAccount=mapped) == mapped
    assert selectIdentity([], "ALICE@example.com", DOMAINS, mappedAccount=mapped) == mapped
    pinned = selectIdentity([], "alice@example.com/desk", DOMAINS, mappedAccount=mapped)
    assert pinned.full() == "alice@example.com/desk"
    failure = selectRefusal([], BOB, mapped=mapped)
    assert (failure.condition, failure.closeStream) == ("invalid-authzid", True)


def test_selectAddrsBeforeMappedAccount() -> None:
    """
    XEP-0178 §2: when the certificate names JIDs, they decide; the mapped
    account is only used for certificates that name none.
    """
    chosen = selectIdentity(jids(BOB), None, DOMAINS, mappedAccount=jid.JID(ALICE))
    assert chosen == jid.JID(BOB)


# --- checkIdentityOfTrustedCertificate -----------------------------------------


def test_trustedCertificateIdentity() -> None:
    """
    XEP-0178 §2 for a trusted chain: the identity is the certificate's
    xmppAddr, with the leaf's fingerprint; certificate management is
    allowed.
    """
    leaf = clientCertificate(["alice@example.com/phone"])
    identity = checkIdentityOfTrustedCertificate(leaf, None, DOMAINS, NOW)
    assert isinstance(identity, CertificateIdentity)
    assert identity.jid.full() == "alice@example.com/phone"
    assert identity.fingerprint == x509facts.fingerprint(leaf)
    assert identity.canManageCertificates is True
    # Not a stored record: the session check does not look it up.
    assert identity.registered is False


@pytest.mark.parametrize(
    "jidsInCertificate, authzid, condition",
    [
        ([ALICE, BOB], None, "invalid-authzid"),
        ([ALICE], BOB, "invalid-authzid"),
        ([], None, "not-authorized"),
        ([f"alice@{OTHER_DOMAIN}"], None, "not-authorized"),
    ],
    ids=["several-no-authzid", "authzid-not-named", "no-xmppaddr", "unserved-domain"],
)
def test_trustedCertificateRules(jidsInCertificate: list[str], authzid: str | None, condition: str) -> None:
    """
    XEP-0178 §2: the identity rules apply to trusted certificates too;
    every refusal closes the stream.
    """
    with pytest.raises(SASLAuthFailure) as info:
        checkIdentityOfTrustedCertificate(clientCertificate(jidsInCertificate), authzid, DOMAINS, NOW)
    assert (info.value.condition, info.value.closeStream) == (condition, True)


# --- checkStoredCertificate --------------------------------------------------


def storedRefusal(
    leaf: cx509.Certificate,
    stored: StoredCertificate | None,
    authzid: str | None = None,
    requireXmppAddr: bool = True,
    now: datetime.datetime = NOW,
) -> SASLAuthFailure:
    with pytest.raises(SASLAuthFailure) as info:
        checkStoredCertificate(leaf, stored, authzid, DOMAINS, requireXmppAddr, now)
    return info.value


def test_storedAccepted() -> None:
    """
    XEP-0257 §3: an enabled registered certificate naming its account logs
    in as that account, with its fingerprint and management right.
    """
    store = certificateStore()
    leaf = clientCertificate([ALICE])
    stored = register(store, leaf, canManage=False)
    identity = checkStoredCertificate(leaf, stored, None, DOMAINS, True, NOW)
    assert identity.jid == jid.JID(ALICE)
    assert identity.jid.resource is None
    assert identity.fingerprint == x509facts.fingerprint(leaf)
    assert identity.canManageCertificates is False
    # The session depends on this record: removing it ends the session.
    assert identity.registered is True
    _, account, _ = AccountRealm().requestAvatar(identity, None, IAccount)
    assert account.certificateRegistered is True
    assert account.certificateFingerprint == identity.fingerprint


def test_storedUnregisteredDisabledRevokedLookAlike() -> None:
    """
    XEP-0257 §2.3 / RFC 6120 §6.5.10: an unregistered, a disabled and a
    revoked certificate are all not-authorized with the same text for the
    client (it does not learn which), the stream closed; only the detail
    for logs and cert inspect says which.
    """
    store = certificateStore()
    leaf = clientCertificate([ALICE])
    unregistered = storedRefusal(leaf, None)
    stored = register(store, leaf)
    setState(store, leaf, "disabled")
    disabled = storedRefusal(leaf, resultOf(store.certificateByFingerprint(stored.fingerprint)))
    setState(store, leaf, "revoked")
    revoked = storedRefusal(leaf, resultOf(store.certificateByFingerprint(stored.fingerprint)))
    seen = {(f.condition, f.text, f.closeStream) for f in (unregistered, disabled, revoked)}
    assert seen == {("not-authorized", "the certificate is not registered", True)}
    assert "disabled" in disabled.detail and "revoked" in revoked.detail
    assert "disabled" not in disabled.text and "revoked" not in revoked.text
    assert "registered" in unregistered.detail


@pytest.mark.parametrize(
    "issued, days, expected",
    [
        (NOW - datetime.timedelta(days=400), 1, "expired"),
        (NOW + datetime.timedelta(days=2), 365, "not-yet-valid"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_storedOutsideValidity(issued: datetime.datetime, days: int, expected: str) -> None:
    """
    XEP-0257 §3 / RFC 5280 §4.1.2.5: a registered certificate outside its
    validity period is not-authorized (the stream closed), saying why.
    """
    store = certificateStore()
    leaf = clientCertificate([ALICE], now=issued, days=days)
    failure = storedRefusal(leaf, register(store, leaf))
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)
    assert failure.text == f"the certificate is {expected}"


def test_storedValidityBoundsIncluded() -> None:
    """
    RFC 5280 §4.1.2.5: notBefore and notAfter are both inside the
    validity period; a second outside is not.
    """
    store = certificateStore()
    leaf = clientCertificate([ALICE])
    stored = register(store, leaf)
    second = datetime.timedelta(seconds=1)
    for moment in [leaf.not_valid_before_utc, leaf.not_valid_after_utc]:
        assert checkStoredCertificate(leaf, stored, None, DOMAINS, True, moment).jid == jid.JID(ALICE)
    assert storedRefusal(leaf, stored, now=leaf.not_valid_before_utc - second).text == (
        "the certificate is not-yet-valid"
    )
    assert storedRefusal(leaf, stored, now=leaf.not_valid_after_utc + second).text == (
        "the certificate is expired"
    )


def test_storedNotClientAuth() -> None:
    """
    RFC 5280 §4.2.1.12: a registered certificate whose extendedKeyUsage
    does not allow clientAuth is not-authorized, and the stream is closed.
    """
    store = certificateStore()
    leaf = handMadeCertificate([ALICE], [ExtendedKeyUsageOID.SERVER_AUTH])
    assert x509facts.xmppAddrs(leaf) == jids(ALICE)
    failure = storedRefusal(leaf, register(store, leaf))
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)
    assert "client authentication" in failure.text


def test_storedRequireXmppAddrOn() -> None:
    """
    certificates.require_xmppaddr on: a registered certificate that does
    not name its account (names nobody, or someone else) is
    not-authorized, the detail naming the setting or the other JID.
    """
    store = certificateStore()
    leaf = clientCertificate([])
    failure = storedRefusal(leaf, register(store, leaf, name="nobody"))
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)
    assert "require_xmppaddr" in failure.detail and ALICE in failure.detail
    leaf = clientCertificate([BOB])
    failure = storedRefusal(leaf, register(store, leaf, name="bob's"))
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)
    assert BOB in failure.detail and ALICE in failure.detail


def test_storedRequireXmppAddrOnFullJIDCounts() -> None:
    """
    certificates.require_xmppaddr on: a full JID of the account names it
    (and pins that resource).
    """
    store = certificateStore()
    leaf = clientCertificate(["alice@example.com/phone"])
    identity = checkStoredCertificate(leaf, register(store, leaf), None, DOMAINS, True, NOW)
    assert identity.jid.full() == "alice@example.com/phone"


def test_storedRequireXmppAddrOff() -> None:
    """
    certificates.require_xmppaddr off: a registered certificate that names
    no JID logs in as the account it is registered to (XEP-0178 §2: the
    server assigns the identity), also with that account as authzid.
    """
    store = certificateStore()
    leaf = clientCertificate([])
    stored = register(store, leaf)
    for authzid in [None, ALICE]:
        identity = checkStoredCertificate(leaf, stored, authzid, DOMAINS, False, NOW)
        assert identity.jid == jid.JID(ALICE)
    failure = storedRefusal(leaf, stored, authzid=BOB, requireXmppAddr=False)
    assert (failure.condition, failure.closeStream) == ("invalid-authzid", True)


def test_storedRequireXmppAddrOffOtherJID() -> None:
    """
    certificates.require_xmppaddr off: certificates are public, so a
    certificate naming bob that alice registered never logs in to alice
    (bob's key would): not-authorized, the stream closed, with or without
    an authzid. Only a certificate naming no JID is mapped by its
    registration alone.
    """
    store = certificateStore()
    leaf = clientCertificate([BOB])
    stored = register(store, leaf)
    for authzid in [None, ALICE]:
        failure = storedRefusal(leaf, stored, authzid=authzid, requireXmppAddr=False)
        assert (failure.condition, failure.closeStream) == ("not-authorized", True)
        assert f"names {BOB}, not {ALICE}" in failure.detail


def test_storedAuthzidOfAnotherAccount() -> None:
    """
    RFC 6120 §6.3.8 / XEP-0178 §2: a certificate registered to alice that
    also names bob cannot act as bob: invalid-authzid, the stream closed,
    the detail naming the registered account.
    """
    store = certificateStore()
    leaf = clientCertificate([ALICE, BOB])
    stored = register(store, leaf)
    failure = storedRefusal(leaf, stored, authzid=BOB)
    assert (failure.condition, failure.closeStream) == ("invalid-authzid", True)
    assert f"registered to {ALICE}, not {BOB}" in failure.detail
    assert checkStoredCertificate(leaf, stored, ALICE, DOMAINS, True, NOW).jid == jid.JID(ALICE)
    failure = storedRefusal(leaf, stored)
    assert failure.condition == "invalid-authzid"


def test_storedAuthzidNotNamed() -> None:
    """
    XEP-0178 §2: for a registered certificate naming only alice, an
    authzid of bob (an existing account) is invalid-authzid.
    """
    store = certificateStore()
    leaf = clientCertificate([ALICE])
    failure = storedRefusal(leaf, register(store, leaf), authzid=BOB)
    assert (failure.condition, failure.closeStream) == ("invalid-authzid", True)


def test_storedResourcePinned() -> None:
    """
    XEP-0257 §3: a registered certificate for a full JID pins its
    resource; a full-JID authzid pins its own resource; another resource
    than the certificate's is invalid-authzid.
    """
    store = certificateStore()
    phone = clientCertificate(["alice@example.com/phone"])
    storedPhone = register(store, phone, name="phone")
    assert checkStoredCertificate(phone, storedPhone, None, DOMAINS, True, NOW).jid.resource == "phone"
    failure = storedRefusal(phone, storedPhone, authzid="alice@example.com/desk")
    assert failure.condition == "invalid-authzid"
    laptop = clientCertificate([ALICE])
    storedLaptop = register(store, laptop)
    identity = checkStoredCertificate(laptop, storedLaptop, "alice@example.com/desk", DOMAINS, True, NOW)
    assert identity.jid.full() == "alice@example.com/desk"


def test_storedUnservedDomain() -> None:
    """
    XEP-0178 §2: a registered certificate whose account is of a domain
    no longer served is not-authorized, whether it names the account or
    no JID at all (mapped by its registration).
    """
    store = InMemoryAccountStore(clock=clockAt().seconds)
    other = f"alice@{OTHER_DOMAIN}"
    addAccount(store, other)
    for named, requireXmppAddr in (([other], True), ([], False)):
        leaf = clientCertificate(named)
        stored = register(store, leaf, account=other, name=f"n{len(named)}")
        failure = storedRefusal(leaf, stored, requireXmppAddr=requireXmppAddr)
        assert (failure.condition, failure.closeStream) == ("not-authorized", True)
        assert "not an account of this stream's domain" in failure.detail


def test_storedMalformedXmppAddr() -> None:
    """
    RFC 6120 §13.7.1.4: a registered certificate whose xmppAddr is not a
    valid JID is not-authorized (never an exception).
    """
    store = certificateStore()
    leaf = handMadeCertificate(["a b@example.com"])
    failure = storedRefusal(leaf, register(store, leaf), requireXmppAddr=False)
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)
    assert "xmppAddr" in failure.text


# --- StoredCertificateChecker ---------------------------------------------------


def storedChecker(
    store: InMemoryAccountStore | None = None,
    clock: task.Clock | None = None,
    requireXmppAddr: bool = True,
) -> StoredCertificateChecker:
    clock = clock or clockAt()
    return StoredCertificateChecker(store or certificateStore(clock), clock, [DOMAIN], requireXmppAddr)


def test_storedCheckerInterface() -> None:
    """
    twisted.cred: StoredCertificateChecker provides ICredentialsChecker for
    IClientCertificate.
    """
    checker = storedChecker()
    assert verifyObject(checkers.ICredentialsChecker, checker)
    assert checker.credentialInterfaces == (IClientCertificate,)
    assert checker.domains == DOMAINS


def test_storedCheckerAccepts() -> None:
    """
    XEP-0257 §3: a registered certificate logs in; the avatar id is a
    CertificateIdentity with the pinned resource, fingerprint and
    management right.
    """
    clock = clockAt()
    store = certificateStore(clock)
    leaf = clientCertificate(["alice@example.com/phone"])
    register(store, leaf, canManage=False)
    identity = resultOf(storedChecker(store, clock).requestAvatarId(creds(leaf)))
    assert isinstance(identity, CertificateIdentity)
    assert identity.jid.full() == "alice@example.com/phone"
    assert identity.fingerprint == x509facts.fingerprint(leaf)
    assert identity.canManageCertificates is False


def test_storedCheckerTouches() -> None:
    """
    XEP-0257 §2.2: a successful login records when the certificate was last
    used, with the checker's clock; a refused one records nothing.
    """
    clock = clockAt()
    store = certificateStore(clock)
    leaf = clientCertificate([ALICE])
    other = clientCertificate([ALICE, BOB])
    register(store, leaf)
    register(store, other, name="other")
    clock.advance(3600)
    checker = storedChecker(store, clock)
    resultOf(checker.requestAvatarId(creds(leaf)))
    assert store.certificates[x509facts.fingerprint(leaf)].lastUsedAt == clock.seconds()
    assert store.certificates[x509facts.fingerprint(leaf)].lastUsedAt == NOW.timestamp() + 3600
    assert refusal(checker.requestAvatarId(creds(other))).condition == "invalid-authzid"
    assert store.certificates[x509facts.fingerprint(other)].lastUsedAt is None


def test_storedCheckerTouchFailureDoesNotFailLogin() -> None:
    """
    Recording the last use is best effort: when the store fails to, the
    login still succeeds and a warning is logged.
    """
    clock = clockAt()
    store = certificateStore(clock)
    leaf = clientCertificate([ALICE])
    register(store, leaf)

    def failingTouch(fingerprint: str, when: float) -> defer.Deferred[None]:
        return defer.fail(RuntimeError("disk full"))

    store.touchCertificate = failingTouch  # type: ignore[method-assign]
    events: list[LogEvent] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        events.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        identity = resultOf(storedChecker(store, clock).requestAvatarId(creds(leaf)))
    finally:
        globalLogPublisher.removeObserver(observe)
    assert identity.jid == jid.JID(ALICE)
    assert any("Could not record certificate use" in str(e.get("log_format")) for e in events)


def test_storedCheckerRefusals() -> None:
    """
    XEP-0178 §2 / XEP-0257 §3: no certificate, an unregistered or revoked
    one, and one that expired by the checker's clock are not-authorized,
    each closing the stream.
    """
    clock = clockAt()
    store = certificateStore(clock)
    checker = storedChecker(store, clock)
    assert refusal(checker.requestAvatarId(creds())).condition == "not-authorized"
    assert refusal(checker.requestAvatarId(creds(clientCertificate([ALICE])))).condition == "not-authorized"
    revoked = clientCertificate([ALICE])
    register(store, revoked, name="revoked")
    setState(store, revoked, "revoked")
    assert refusal(checker.requestAvatarId(creds(revoked))).condition == "not-authorized"
    leaf = clientCertificate([ALICE], days=1)
    register(store, leaf)
    assert resultOf(checker.requestAvatarId(creds(leaf))).jid == jid.JID(ALICE)
    clock.advance(2 * 86400)
    failure = refusal(checker.requestAvatarId(creds(leaf)))
    assert (failure.condition, failure.closeStream, failure.text) == (
        "not-authorized", True, "the certificate is expired"
    )


def test_storedCheckerAuthzid() -> None:
    """
    XEP-0178 §2: the authzid of the credentials is applied (the checker
    does not drop it).
    """
    clock = clockAt()
    store = certificateStore(clock)
    leaf = clientCertificate([ALICE, BOB])
    register(store, leaf)
    checker = storedChecker(store, clock)
    assert resultOf(checker.requestAvatarId(creds(leaf, authzid=ALICE))).jid == jid.JID(ALICE)
    assert refusal(checker.requestAvatarId(creds(leaf, authzid=BOB))).condition == "invalid-authzid"


def test_storedCheckerRequireXmppAddrSetting() -> None:
    """
    certificates.require_xmppaddr is the checker's requireXmppAddr: a
    registered certificate naming no JID is refused with it, accepted
    without.
    """
    clock = clockAt()
    store = certificateStore(clock)
    leaf = clientCertificate([])
    register(store, leaf)
    assert refusal(storedChecker(store, clock, True).requestAvatarId(creds(leaf))).condition == (
        "not-authorized"
    )
    identity = resultOf(storedChecker(store, clock, False).requestAvatarId(creds(leaf)))
    assert identity.jid == jid.JID(ALICE)


def test_storedCheckerCouldAccept() -> None:
    """
    RFC 6120 §6.3.4: couldAccept (whether to offer EXTERNAL) is true for a
    registered certificate, and for one that only needs an authzid
    (several xmppAddrs); false without a certificate, for an unregistered,
    disabled or expired one.
    """
    clock = clockAt()
    store = certificateStore(clock)
    checker = storedChecker(store, clock)
    good = clientCertificate([ALICE])
    several = clientCertificate([ALICE, BOB])
    disabled = clientCertificate([ALICE])
    expired = clientCertificate([ALICE], now=NOW - datetime.timedelta(days=400), days=1)
    register(store, good)
    register(store, several, name="several")
    register(store, disabled, name="disabled")
    setState(store, disabled, "disabled")
    register(store, expired, name="expired")
    assert resultOf(checker.couldAccept(creds(good))) is True
    assert resultOf(checker.couldAccept(creds(several))) is True
    assert resultOf(checker.couldAccept(creds())) is False
    assert resultOf(checker.couldAccept(creds(clientCertificate([ALICE])))) is False
    assert resultOf(checker.couldAccept(creds(disabled))) is False
    assert resultOf(checker.couldAccept(creds(expired))) is False


def test_storedCheckerPortalLogin() -> None:
    """
    twisted.cred: through a portal, a stored-certificate login gives an
    Account with the bare JID, the pinned resource and the fingerprint.
    """
    clock = clockAt()
    store = certificateStore(clock)
    leaf = clientCertificate(["alice@example.com/phone"])
    register(store, leaf)
    p = makePortal(store, [storedChecker(store, clock)])
    interface, account, _ = resultOf(p.login(creds(leaf), None, IAccount))
    assert interface is IAccount
    assert isinstance(account, Account)
    assert account.jid.full() == ALICE
    assert account.resource == "phone"
    assert account.certificateFingerprint == x509facts.fingerprint(leaf)
    assert account.canManageCertificates is True


# --- CACertificateChecker ------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> tuple[Issuer, Issuer]:
    """
    A root CA and an intermediate it issued, both valid at NOW.
    """
    rootKey = x509facts.generateClientKey()
    root = x509facts.issueCACertificate("Test Root", rootKey, now=NOW - datetime.timedelta(days=30))
    interKey = x509facts.generateClientKey()
    inter = x509facts.issueCACertificate(
        "Test Intermediate", interKey, now=NOW - datetime.timedelta(days=30),
        issuerCertificate=root, issuerKey=rootKey,
    )
    return (root, rootKey), (inter, interKey)


def caChecker(
    root: cx509.Certificate, store: InMemoryAccountStore | None = None, clock: task.Clock | None = None
) -> CACertificateChecker:
    clock = clock or clockAt()
    return CACertificateChecker([root], store or certificateStore(clock), clock, [DOMAIN])


def test_caCheckerInterface(ca: tuple[Issuer, Issuer]) -> None:
    """
    twisted.cred: CACertificateChecker provides ICredentialsChecker for
    IClientCertificate.
    """
    checker = caChecker(ca[0][0])
    assert verifyObject(checkers.ICredentialsChecker, checker)
    assert checker.credentialInterfaces == (IClientCertificate,)


def test_caCheckerAcceptsChain(ca: tuple[Issuer, Issuer]) -> None:
    """
    XEP-0257 §3 (CA mode): a certificate issued by an intermediate of the
    trusted root, presented with the intermediate, logs in as its xmppAddr
    without being registered; one issued by the root directly too.
    """
    (root, rootKey), inter = ca
    checker = caChecker(root)
    leaf = clientCertificate(["alice@example.com/phone"], issuer=inter)
    identity = resultOf(checker.requestAvatarId(creds(leaf, inter[0])))
    assert isinstance(identity, CertificateIdentity)
    assert identity.jid.full() == "alice@example.com/phone"
    assert identity.fingerprint == x509facts.fingerprint(leaf)
    assert identity.canManageCertificates is True
    direct = clientCertificate([BOB], issuer=(root, rootKey))
    assert resultOf(checker.requestAvatarId(creds(direct))).jid == jid.JID(BOB)
    assert resultOf(checker.couldAccept(creds(leaf, inter[0]))) is True


def test_caCheckerRefusesOtherCA(ca: tuple[Issuer, Issuer]) -> None:
    """
    XEP-0257 §3 (CA mode): a chain from another CA, a self-signed
    certificate, a leaf without the intermediate it needs, or no
    certificate at all are not-authorized (stream closed), and couldAccept
    is false for them.
    """
    root, inter = ca
    otherKey = x509facts.generateClientKey()
    otherRoot = x509facts.issueCACertificate("Other Root", otherKey, now=NOW - datetime.timedelta(days=30))
    checker = caChecker(root[0])
    chains = [
        (clientCertificate([ALICE], issuer=(otherRoot, otherKey)), otherRoot),
        (clientCertificate([ALICE], issuer=(otherRoot, otherKey)),),
        (clientCertificate([ALICE]),),
        (clientCertificate([ALICE], issuer=inter),),
        (),
    ]
    for chain in chains:
        failure = refusal(checker.requestAvatarId(creds(*chain)))
        assert (failure.condition, failure.closeStream) == ("not-authorized", True), chain
        assert resultOf(checker.couldAccept(creds(*chain))) is False


def test_caCheckerValidityByClock(ca: tuple[Issuer, Issuer]) -> None:
    """
    RFC 5280 §6.1.3: the chain is verified at the checker's clock time: an
    expired leaf is not-authorized.
    """
    root, inter = ca
    clock = clockAt()
    checker = caChecker(root[0], clock=clock)
    leaf = clientCertificate([ALICE], days=1, issuer=inter)
    assert resultOf(checker.requestAvatarId(creds(leaf, inter[0]))).jid == jid.JID(ALICE)
    clock.advance(2 * 86400)
    assert refusal(checker.requestAvatarId(creds(leaf, inter[0]))).condition == "not-authorized"


def test_caCheckerAccountMustExist(ca: tuple[Issuer, Issuer]) -> None:
    """
    XEP-0257 §3 (CA mode): a trusted certificate for an account that does
    not exist is not-authorized, the detail naming the account.
    """
    root, inter = ca
    leaf = clientCertificate(["ghost@example.com"], issuer=inter)
    failure = refusal(caChecker(root[0]).requestAvatarId(creds(leaf, inter[0])))
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)
    assert "ghost@example.com" in failure.detail
    assert "ghost" not in failure.text


def test_caCheckerIdentityRules(ca: tuple[Issuer, Issuer]) -> None:
    """
    XEP-0178 §2 (CA mode): the identity rules apply to trusted chains:
    several xmppAddrs need an authzid, which must be one of them.
    """
    root, inter = ca
    checker = caChecker(root[0])
    leaf = clientCertificate([ALICE, BOB], issuer=inter)
    assert refusal(checker.requestAvatarId(creds(leaf, inter[0]))).condition == "invalid-authzid"
    assert resultOf(checker.requestAvatarId(creds(leaf, inter[0], authzid=BOB))).jid == jid.JID(BOB)
    failure = refusal(checker.requestAvatarId(creds(leaf, inter[0], authzid="carol@example.com")))
    assert failure.condition == "invalid-authzid"


def test_caCheckerScopedToDomains(ca: tuple[Issuer, Issuer]) -> None:
    """
    [[certificates.ca]] domains: a CA vouches only for accounts of the
    domains it is bound to. A certificate it issued for an account of
    another served domain is refused (not-authorized, stream closed), on a
    stream to that domain and also on a stream to the CA's own domain; a
    second CA bound to the other domain vouches for its own accounts.
    """
    (root, rootKey), inter = ca
    clock = clockAt()
    store = certificateStore(clock)
    addAccount(store, f"alice@{OTHER_DOMAIN}")
    corpKey = x509facts.generateClientKey()
    corpRoot = x509facts.issueCACertificate("Corp Root", corpKey, now=NOW - datetime.timedelta(days=30))
    checker = CACertificateChecker(
        [TrustedCA((root,), frozenset({DOMAIN})), TrustedCA((corpRoot,), frozenset({OTHER_DOMAIN}))],
        store, clock, [DOMAIN, OTHER_DOMAIN],
    )
    # The example.com CA issued a certificate for the other domain.
    stray = clientCertificate([f"alice@{OTHER_DOMAIN}"], issuer=inter)
    for domain in (DOMAIN, OTHER_DOMAIN):
        failure = refusal(checker.requestAvatarId(creds(stray, inter[0], domain=domain)))
        # On its own domain's stream the CA does not apply at all; on the
        # CA's domain the certificate names no account of it.
        assert (failure.condition, failure.closeStream) == ("not-authorized", True), domain
        assert resultOf(checker.couldAccept(creds(stray, inter[0], domain=domain))) is False
    own = clientCertificate([f"alice@{OTHER_DOMAIN}"], issuer=(corpRoot, corpKey))
    identity = resultOf(checker.requestAvatarId(creds(own, domain=OTHER_DOMAIN)))
    assert identity.jid == jid.JID(f"alice@{OTHER_DOMAIN}")
    # The corp CA cannot vouch for example.com's alice either.
    forged = clientCertificate([ALICE], issuer=(corpRoot, corpKey))
    assert refusal(checker.requestAvatarId(creds(forged, domain=DOMAIN))).condition == "not-authorized"


def test_caCheckerValidatorTextOnlyInDetail(ca: tuple[Issuer, Issuer]) -> None:
    """
    The path validator's explanation (with certificate subjects) is for
    the log (the detail, logged at info), never for the client: the text
    the client gets is generic.
    """
    root, inter = ca
    otherKey = x509facts.generateClientKey()
    otherRoot = x509facts.issueCACertificate("Secret Other Root", otherKey, now=NOW - datetime.timedelta(days=30))
    leaf = clientCertificate([ALICE], issuer=(otherRoot, otherKey))
    failure = refusal(caChecker(root[0]).requestAvatarId(creds(leaf, otherRoot)))
    assert failure.text == "the certificate is not trusted"
    assert "not issued by a trusted CA" in failure.detail
    assert "Secret" not in failure.text and "candidates" not in failure.text


def test_caCheckerSessionEndsWithChain(ca: tuple[Issuer, Issuer]) -> None:
    """
    RFC 6120 §13.7.2.3: a CA login's session ends at the earliest notAfter
    of the validated chain: here the intermediate's, which expires before
    the leaf. The account carries it to the stream.
    """
    (root, rootKey), _ = ca
    shortKey = x509facts.generateClientKey()
    shortLived = x509facts.issueCACertificate(
        "Short Intermediate", shortKey, now=NOW - datetime.timedelta(days=1), days=10,
        issuerCertificate=root, issuerKey=rootKey,
    )
    leaf = clientCertificate([ALICE], issuer=(shortLived, shortKey))
    assert leaf.not_valid_after_utc > shortLived.not_valid_after_utc
    identity = resultOf(caChecker(root).requestAvatarId(creds(leaf, shortLived)))
    assert identity.notAfter == shortLived.not_valid_after_utc.timestamp()
    _, account, _ = AccountRealm().requestAvatar(identity, None, IAccount)
    assert account.certificateNotAfter == identity.notAfter


class _RevokingAll:
    """
    A revocation check that refuses every chain, naming the leaf.
    """

    def __init__(self) -> None:
        self.chains: list[list[cx509.Certificate]] = []

    async def check(self, chain: Sequence[cx509.Certificate]) -> None:
        from xmppcert.crl import CertificateRevokedError

        self.chains.append(list(chain))
        raise CertificateRevokedError(f"serial {chain[0].serial_number:x} is on the CRL", chain[0])


def test_caCheckerConsultsRevocation(ca: tuple[Issuer, Issuer]) -> None:
    """
    RFC 5280 §6.3: after path validation the CA's revocation check gets
    the validated chain (leaf first, root last); a revoked certificate is
    not-authorized, the reason in the detail only, and EXTERNAL is not
    offered for it.
    """
    root, inter = ca
    clock = clockAt()
    revocation = _RevokingAll()
    checker = CACertificateChecker(
        [TrustedCA((root[0],), frozenset({DOMAIN}), revocation)], certificateStore(clock), clock, [DOMAIN]
    )
    leaf = clientCertificate([ALICE], issuer=inter)
    failure = refusal(checker.requestAvatarId(creds(leaf, inter[0])))
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)
    assert "on the CRL" in failure.detail and "CRL" not in failure.text
    # Final: a later checker (stored, say) may not let it in.
    assert failure.final
    assert revocation.chains == [[leaf, inter[0], root[0]]]
    assert resultOf(checker.couldAccept(creds(leaf, inter[0]))) is False


@pytest.mark.parametrize("kind", ["CA:TRUE", "keyUsage without digitalSignature"])
def test_notClientCertificateRefusedAtLogin(ca: tuple[Issuer, Issuer], kind: str) -> None:
    """
    RFC 5280 §4.2.1.9 and §4.2.1.3: a CA certificate, or one whose
    keyUsage does not allow digitalSignature, is not a client certificate:
    a registered one is refused at login (not-authorized, stream closed),
    and so is one a trusted CA issued.
    """
    (root, rootKey), _ = ca
    name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "not a client")])
    extension: cx509.ExtensionType = (
        cx509.BasicConstraints(ca=True, path_length=None) if kind == "CA:TRUE"
        else cx509.KeyUsage(False, False, True, False, False, False, False, False, False)
    )
    def build(issuerName: cx509.Name, key: Any) -> cx509.Certificate:
        return (
            cx509.CertificateBuilder()
            .subject_name(name).issuer_name(issuerName).public_key(CLIENT_KEY.public_key())
            .serial_number(cx509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(
                cx509.SubjectAlternativeName([cx509.OtherName(x509facts.XMPP_ADDR_OID, _utf8String(ALICE))]),
                critical=False,
            )
            .add_extension(cx509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                cx509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
            )
            .add_extension(extension, critical=True)
            .sign(key, hashes.SHA256())
        )

    store = certificateStore()
    selfSigned = build(name, CLIENT_KEY)
    failure = storedRefusal(selfSigned, register(store, selfSigned))
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)
    issued = build(root.subject, rootKey)
    failure = refusal(caChecker(root).requestAvatarId(creds(issued)))
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)


def test_storedOnlyTheStreamDomain() -> None:
    """
    RFC 6120 §6.3.7, as PLAIN and SCRAM: a stored certificate of
    alice@example.com does not log in on a stream to other.example (also
    served): not-authorized, and EXTERNAL is not offered there.
    """
    clock = clockAt()
    store = certificateStore(clock)
    leaf = clientCertificate([ALICE])
    register(store, leaf)
    checker = StoredCertificateChecker(store, clock, [DOMAIN, OTHER_DOMAIN])
    assert resultOf(checker.requestAvatarId(creds(leaf))).jid == jid.JID(ALICE)
    failure = refusal(checker.requestAvatarId(creds(leaf, domain=OTHER_DOMAIN)))
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)
    assert resultOf(checker.couldAccept(creds(leaf, domain=OTHER_DOMAIN))) is False
    failure = refusal(checker.requestAvatarId(creds(leaf, authzid=ALICE, domain=OTHER_DOMAIN)))
    assert failure.condition in ("not-authorized", "invalid-authzid") and failure.closeStream


# --- CertificateCheckerChain ------------------------------------------------------


@implementer(checkers.ICredentialsChecker)
class ScriptedChecker:
    """
    A certificate checker that answers what it is told, and records calls.
    """

    credentialInterfaces = (IClientCertificate,)

    def __init__(self, answer: object, could: bool | None = None) -> None:
        """
        @param answer: the avatar id, or an exception to fail with.
        @param could: what couldAccept answers; C{None} for no couldAccept.
        """
        self.answer = answer
        self.calls: list[IClientCertificate] = []
        if could is not None:
            self.couldAccept = self._couldAccept
            self.could = could

    async def _couldAccept(self, creds: IClientCertificate) -> bool:
        return self.could

    def requestAvatarId(self, credentials: IClientCertificate) -> defer.Deferred[Any]:
        self.calls.append(credentials)
        if isinstance(self.answer, Exception):
            return defer.fail(self.answer)
        return defer.succeed(self.answer)


def checkerChain(
    chain: Sequence[Any], store: Any = None, domains: Sequence[str] | None = None
) -> CertificateCheckerChain:
    """
    A chain whose clock shows NOW, when the test certificates are valid.
    """
    return CertificateCheckerChain(chain, store, domains, clockAt())


def test_chainInterface() -> None:
    """
    twisted.cred: the chain is itself a checker for IClientCertificate.
    """
    chain = checkerChain([])
    assert verifyObject(checkers.ICredentialsChecker, chain)
    assert chain.credentialInterfaces == (IClientCertificate,)


def test_chainFirstAcceptanceWins() -> None:
    """
    Configuration order: the first checker that accepts gives the avatar
    id; later ones are not asked. Refusals before it do not matter.
    """
    refuser = ScriptedChecker(SASLAuthFailure("invalid-authzid", closeStream=True))
    first = ScriptedChecker(b"alice@example.com")
    second = ScriptedChecker(b"bob@example.com")
    c = creds(clientCertificate([ALICE]))
    identity = resultOf(checkerChain([refuser, first, second]).requestAvatarId(c))
    assert identity.jid == jid.JID(ALICE)
    assert refuser.calls == [c] and first.calls == [c] and second.calls == []


def test_chainPlainJIDCarriesTheCertificate() -> None:
    """
    XEP-0257 §2.4: a custom checker answering a plain JID still gives a
    certificate login: the leaf's fingerprint and notAfter go with it, so
    a revocation or expiry ends the session.
    """
    leaf = clientCertificate([ALICE])
    identity = resultOf(checkerChain([ScriptedChecker("alice@example.com")]).requestAvatarId(creds(leaf)))
    assert identity.fingerprint == x509facts.fingerprint(leaf)
    assert identity.notAfter == leaf.not_valid_after_utc.timestamp()
    _, account, _ = AccountRealm().requestAvatar(identity, None, IAccount)
    assert account.certificateFingerprint == identity.fingerprint


def test_chainCertificateRulesForEveryChecker() -> None:
    """
    RFC 5280 §4.1.2.5 and §4.2.1.9: whatever a custom checker answers, an
    expired or not yet valid certificate, or one that is not a client
    certificate, is refused; and a session never outlives the leaf, even
    when the checker says it may.
    """
    expired = clientCertificate([ALICE], now=NOW - datetime.timedelta(days=400))
    future = clientCertificate([ALICE], now=NOW + datetime.timedelta(days=2))
    name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "a CA")])
    caCertificate = (
        cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(CLIENT_KEY.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(CLIENT_KEY, hashes.SHA256())
    )
    for leaf in (expired, future, caCertificate):
        failure = refusal(checkerChain([ScriptedChecker(ALICE)]).requestAvatarId(creds(leaf)))
        assert (failure.condition, failure.closeStream) == ("not-authorized", True)
    leaf = clientCertificate([ALICE])
    generous = CertificateIdentity(jid.JID(ALICE), x509facts.fingerprint(leaf), notAfter=4e9)
    identity = resultOf(checkerChain([ScriptedChecker(generous)]).requestAvatarId(creds(leaf)))
    assert identity.notAfter == leaf.not_valid_after_utc.timestamp()


def test_chainCheckerWordsStayInTheLog() -> None:
    """
    A custom checker's plain UnauthorizedLogin message goes to the detail
    (the log), not to the client's <text/>.
    """
    failure = refusal(
        checkerChain([ScriptedChecker(error.UnauthorizedLogin("LDAP said: uid=alice locked"))])
        .requestAvatarId(creds(clientCertificate([ALICE])))
    )
    assert "LDAP" in failure.detail and "LDAP" not in failure.text


def test_chainOnlyTheStreamDomain() -> None:
    """
    RFC 6120 §6.3.7 as for PLAIN and SCRAM: whatever a checker answers, a
    certificate login acts only in the domain the stream addressed, and
    only while it is served; a domain part alone is no account.
    """
    leaf = clientCertificate([ALICE])
    for answer, domain, served in (
        (f"alice@{OTHER_DOMAIN}", DOMAIN, [DOMAIN, OTHER_DOMAIN]),
        (ALICE, OTHER_DOMAIN, [DOMAIN, OTHER_DOMAIN]),
        (ALICE, DOMAIN, [OTHER_DOMAIN]),
        (DOMAIN, DOMAIN, [DOMAIN]),
    ):
        chain = checkerChain([ScriptedChecker(answer)], domains=served)
        failure = refusal(chain.requestAvatarId(creds(leaf, domain=domain)))
        assert (failure.condition, failure.closeStream) == ("not-authorized", True)


def test_chainNoCertManagementForEveryChecker(ca: tuple[Issuer, Issuer]) -> None:
    """
    XEP-0257 §2.1: a certificate registered with <no-cert-management/>
    may not manage certificates whichever checker lets it in (here the CA
    checker first, and a custom one).
    """
    root, inter = ca
    clock = clockAt()
    store = certificateStore(clock)
    issued = clientCertificate([ALICE], issuer=inter)
    register(store, issued, canManage=False)
    for first in (caChecker(root[0], store, clock), ScriptedChecker(ALICE)):
        chain = checkerChain([first, storedChecker(store, clock)], store, [DOMAIN])
        identity = resultOf(chain.requestAvatarId(creds(issued, inter[0])))
        assert identity.jid == jid.JID(ALICE)
        assert identity.canManageCertificates is False


def test_chainMostSpecificRefusal() -> None:
    """
    When every checker refuses, the most specific refusal is reported: an
    invalid-authzid over any not-authorized, whatever the order; among
    equals the first.
    """
    c = creds(clientCertificate([ALICE]))
    notAuthorized = SASLAuthFailure("not-authorized", "first", closeStream=True)
    invalid = SASLAuthFailure("invalid-authzid", "specific", closeStream=True)
    for order in [[notAuthorized, invalid], [invalid, notAuthorized]]:
        chain = checkerChain([ScriptedChecker(e) for e in order])
        assert refusal(chain.requestAvatarId(c)) is invalid
    later = SASLAuthFailure("not-authorized", "second", closeStream=True)
    chain = checkerChain([ScriptedChecker(notAuthorized), ScriptedChecker(later)])
    assert refusal(chain.requestAvatarId(c)) is notAuthorized
    laterInvalid = SASLAuthFailure("invalid-authzid", "second", closeStream=True)
    chain = checkerChain(
        [ScriptedChecker(notAuthorized), ScriptedChecker(invalid), ScriptedChecker(laterInvalid)]
    )
    assert refusal(chain.requestAvatarId(c)) is invalid


def test_chainPlainUnauthorizedLogin() -> None:
    """
    A custom checker's plain UnauthorizedLogin becomes not-authorized with
    the stream closed.
    """
    chain = checkerChain([ScriptedChecker(error.UnauthorizedLogin("nope"))])
    failure = refusal(chain.requestAvatarId(creds(clientCertificate([ALICE]))))
    assert (failure.condition, failure.closeStream) == ("not-authorized", True)


def test_chainEmpty() -> None:
    """
    No checker configured: not-authorized, and EXTERNAL is not offered.
    """
    chain = checkerChain([])
    c = creds(clientCertificate([ALICE]))
    assert refusal(chain.requestAvatarId(c)).condition == "not-authorized"
    assert resultOf(chain.couldAccept(c)) is False


def test_chainCouldAccept() -> None:
    """
    RFC 6120 §6.3.4: the chain could accept when one checker could, or
    when a checker has no couldAccept (it cannot say no in advance).
    """
    c = creds(clientCertificate([ALICE]))

    def chainOf(*coulds: bool | None) -> CertificateCheckerChain:
        return checkerChain([ScriptedChecker(b"x", could) for could in coulds])

    assert resultOf(chainOf(False, True).couldAccept(c)) is True
    assert resultOf(chainOf(False, None).couldAccept(c)) is True
    assert resultOf(chainOf(False, False).couldAccept(c)) is False


def test_chainStoredThenCA(ca: tuple[Issuer, Issuer]) -> None:
    """
    XEP-0257 §3: with the stored and CA checkers, a registered self-signed
    certificate and an unregistered CA-issued one both log in; an
    unregistered self-signed one is refused.
    """
    root, inter = ca
    clock = clockAt()
    store = certificateStore(clock)
    registered = clientCertificate([ALICE])
    register(store, registered)
    chain = checkerChain([storedChecker(store, clock), caChecker(root[0], store, clock)])
    assert resultOf(chain.requestAvatarId(creds(registered))).jid == jid.JID(ALICE)
    issued = clientCertificate([BOB], issuer=inter)
    assert resultOf(chain.requestAvatarId(creds(issued, inter[0]))).jid == jid.JID(BOB)
    stranger = clientCertificate([ALICE])
    assert refusal(chain.requestAvatarId(creds(stranger))).condition == "not-authorized"
    assert resultOf(chain.couldAccept(creds(stranger))) is False


@pytest.mark.parametrize("order", [("ca",), ("ca", "stored"), ("stored", "ca"), ("custom", "stored")])
@pytest.mark.parametrize("state", ["disabled", "revoked", "removed after revoke"])
def test_chainStoredStateBeforeAnyChecker(ca: tuple[Issuer, Issuer], state: str, order: tuple[str, ...]) -> None:
    """
    XEP-0257 §2.3, §2.4: a certificate its owner disabled or revoked never
    logs in, through any checker in any order: its stored state is checked
    once before the chain runs. A revocation is permanent: removing the
    revoked record does not let the CA (or anyone) vouch for it again.
    EXTERNAL is not offered for it either.
    """
    root, inter = ca
    clock = clockAt()
    store = certificateStore(clock)
    issued = clientCertificate([ALICE], issuer=inter)
    named = {
        "ca": caChecker(root[0], store, clock),
        "stored": storedChecker(store, clock),
        "custom": ScriptedChecker(ALICE),
    }
    chain = checkerChain([named[n] for n in order], store, [DOMAIN])
    c = creds(issued, inter[0])
    register(store, issued)
    assert resultOf(chain.requestAvatarId(c)).jid == jid.JID(ALICE)
    setState(store, issued, "revoked" if state == "removed after revoke" else state)
    if state == "removed after revoke":
        resultOf(store.removeCertificateByFingerprint(x509facts.fingerprint(issued)))
    failure = refusal(chain.requestAvatarId(c))
    assert (failure.condition, failure.final, failure.closeStream) == ("not-authorized", True, True)
    assert failure.text == "the certificate is not registered"
    assert resultOf(chain.couldAccept(c)) is False


@pytest.mark.parametrize("state", ["disabled", "revoked"])
def test_chainStoredStateIsFinal(ca: tuple[Issuer, Issuer], state: str) -> None:
    """
    XEP-0257 §2.3, §2.4: a CA-issued certificate that its owner registered
    and then disabled or revoked cannot log in through the CA checker
    instead: the stored checker's refusal ends the chain.
    """
    root, inter = ca
    clock = clockAt()
    store = certificateStore(clock)
    issued = clientCertificate([ALICE], issuer=inter)
    chain = checkerChain([storedChecker(store, clock), caChecker(root[0], store, clock)])
    # Unregistered, the CA vouches for it.
    assert resultOf(chain.requestAvatarId(creds(issued, inter[0]))).jid == jid.JID(ALICE)
    register(store, issued)
    setState(store, issued, state)
    failure = refusal(chain.requestAvatarId(creds(issued, inter[0])))
    assert (failure.condition, failure.final) == ("not-authorized", True)


def test_selectIgnoresUnservedForAmbiguity() -> None:
    """
    XEP-0178 §2: only identities that can be accounts here make a
    certificate ambiguous: one JID of a served domain and one of another
    domain log in as the first without an authzid.
    """
    chosen = selectIdentity(jids(ALICE, "alice@elsewhere.org"), None, DOMAINS)
    assert chosen == jid.JID(ALICE)
    failure = selectRefusal(jids(ALICE, BOB), None)
    assert failure.condition == "invalid-authzid"


# --- loadCertificateCheckers ------------------------------------------------------

#: What the factories below were called with.
factoryCalls: list[dict[str, Any]] = []


def recordingCheckerFactory(*, config: Config, store: Any, clock: Any) -> ScriptedChecker:
    """
    A checker factory as the configuration names it (dotted name).
    """
    factoryCalls.append({"config": config, "store": store, "clock": clock})
    return ScriptedChecker(b"alice@example.com")


def passwordCheckerFactory(*, config: Config, store: Any, clock: Any) -> StoredPasswordChecker:
    """
    A factory that returns a checker for the wrong credentials.
    """
    return StoredPasswordChecker(store)


def notACheckerFactory(*, config: Config, store: Any, clock: Any) -> object:
    return object()


def noKeywordsFactory() -> ScriptedChecker:
    """
    Callable, but not with config=, store=, clock=.
    """
    return ScriptedChecker(b"alice@example.com")


def test_loadBuiltinCheckers(tmp_path: Path) -> None:
    """
    certificates.checkers: "stored" and "ca" build the built-in checkers,
    in the configured order, with the configured domains,
    require_xmppaddr and CA bundle.
    """
    rootKey = x509facts.generateClientKey()
    root = x509facts.issueCACertificate("Bundle Root", rootKey, now=NOW - datetime.timedelta(days=1))
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(x509facts.certificatePEM(root))
    config = makeConfig(
        tmp_path,
        certificates={"checkers": ["ca", "stored"], "ca_bundle": str(bundle), "require_xmppaddr": False},
    )
    clock = clockAt()
    store = certificateStore(clock)
    chain = loadCertificateCheckers(config.certificates.checkers, config=config, store=store, clock=clock)
    assert isinstance(chain, CertificateCheckerChain)
    caCheck, storedCheck = chain.chain
    assert isinstance(caCheck, CACertificateChecker)
    assert isinstance(storedCheck, StoredCertificateChecker)
    assert storedCheck.requireXmppAddr is False
    assert storedCheck.domains == DOMAINS == caCheck.domains
    assert storedCheck.store is store and caCheck.store is store
    assert storedCheck.clock is clock and caCheck.clock is clock
    # The CA checker trusts the bundle's root.
    leaf = clientCertificate([ALICE], issuer=(root, rootKey))
    assert resultOf(chain.requestAvatarId(creds(leaf))).jid == jid.JID(ALICE)


def test_loadDottedFactory(tmp_path: Path) -> None:
    """
    certificates.checkers: a dotted name is a factory called as
    factory(config=, store=, clock=); its checker joins the chain in order.
    """
    del factoryCalls[:]
    config = makeConfig(tmp_path)
    clock = clockAt()
    store = certificateStore(clock)
    chain = loadCertificateCheckers(
        ["stored", "tests.test_cred.recordingCheckerFactory"], config=config, store=store, clock=clock
    )
    assert factoryCalls == [{"config": config, "store": store, "clock": clock}]
    assert isinstance(chain.chain[0], StoredCertificateChecker)
    assert isinstance(chain.chain[1], ScriptedChecker)


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("tests.no_such_module.factory", "cannot load"),
        ("tests.test_cred.noSuchFactory", "cannot load"),
        ("tests.test_cred.passwordCheckerFactory", "did not return a checker for IClientCertificate"),
        ("tests.test_cred.notACheckerFactory", "did not return a checker for IClientCertificate"),
    ],
)
def test_loadBadName(tmp_path: Path, name: str, fragment: str) -> None:
    """
    certificates.checkers: a name that cannot be imported, or whose
    factory does not give a checker for IClientCertificate, fails with a
    ValueError naming the key and the name.
    """
    with pytest.raises(ValueError) as info:
        loadCertificateCheckers([name], config=makeConfig(tmp_path), store=certificateStore(), clock=clockAt())
    message = str(info.value)
    assert "certificates.checkers" in message and repr(name) in message and fragment in message


@pytest.mark.parametrize(
    "name", ["xmppcert.cred", "xmppcert.cred.FAKE_CREDENTIAL_SECRET", "tests.test_cred.noKeywordsFactory"]
)
def test_loadNotAFactory(tmp_path: Path, name: str) -> None:
    """
    certificates.checkers: a dotted name that is not a checker factory (not
    callable, or not with config=, store=, clock=) fails with a ValueError
    naming the key.
    """
    with pytest.raises(ValueError, match="certificates.checkers"):
        loadCertificateCheckers([name], config=makeConfig(tmp_path), store=certificateStore(), clock=clockAt())


def test_loadCABundleMissing(tmp_path: Path) -> None:
    """
    certificates.ca_bundle: an unreadable bundle fails with a ValueError
    (TLSConfigurationError) naming the file.
    """
    missing = tmp_path / "missing.pem"
    config = makeConfig(tmp_path, certificates={"checkers": ["ca"], "ca_bundle": str(missing)})
    with pytest.raises(ValueError, match="missing.pem"):
        loadCertificateCheckers(["ca"], config=config, store=certificateStore(), clock=clockAt())


# --- AccountRealm for certificate logins ----------------------------------------


def test_realmCertificateIdentity() -> None:
    """
    twisted.cred / XEP-0257 §3: the realm turns a CertificateIdentity into
    an Account with the bare JID, the pinned resource, the certificate's
    fingerprint and its management right.
    """
    store = certificateStore()
    leaf = clientCertificate(["alice@example.com/phone"])
    identity = checkStoredCertificate(leaf, register(store, leaf, canManage=False), None, DOMAINS, True, NOW)
    interface, account, logout = AccountRealm().requestAvatar(identity, None, IAccount)
    assert interface is IAccount
    assert isinstance(account, Account)
    assert verifyObject(IAccount, account)
    assert account.jid.full() == ALICE
    assert account.jid.resource is None
    assert account.resource == "phone"
    assert account.certificateFingerprint == x509facts.fingerprint(leaf)
    assert account.canManageCertificates is False
    logout()


def test_realmCertificateIdentityBare() -> None:
    """
    twisted.cred: a CertificateIdentity without resource gives an Account
    that may bind any resource and, by default, manage certificates.
    """
    leaf = clientCertificate([ALICE])
    identity = checkIdentityOfTrustedCertificate(leaf, None, DOMAINS, NOW)
    _, account, _ = AccountRealm().requestAvatar(identity, None, IAccount)
    assert (account.jid.full(), account.resource) == (ALICE, None)
    assert account.certificateFingerprint == x509facts.fingerprint(leaf)
    assert account.canManageCertificates is True


def test_realmPasswordLoginHasNoCertificate() -> None:
    """
    twisted.cred: a plain JID avatar id (password login) has no certificate
    fingerprint.
    """
    _, account, _ = AccountRealm().requestAvatar(b"alice@example.com", None, IAccount)
    assert account.certificateFingerprint is None
    assert account.canManageCertificates is True
