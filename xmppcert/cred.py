# -*- test-case-name: tests.test_cred -*-
"""
Authentication with L{twisted.cred}: credentials, checkers, the realm and the
avatar (the account a stream acts as).

Every SASL mechanism ends in one C{Portal.login}: the mechanism builds
credentials, the first checker that accepts them yields the account JID, and
the realm turns that into an L{Account}. Operators plug in their own checkers
without touching the SASL code.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import verification
from scramp import ScramException
from scramp.core import ScramServer
from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.reflect import namedAny
from twisted.words.protocols.jabber import jid as jidmod
from zope.interface import Attribute, Interface, implementer

from xmppcert import _log, passwords
from xmppcert import x509 as x509facts
from xmppcert.jids import parseJID
from xmppcert.store.interfaces import IAccountStore

log = Logger(observer=_log.observer)

#: Key for the made-up credentials of unknown accounts; per process, so
#: nobody can compute them.
FAKE_CREDENTIAL_SECRET = os.urandom(32)


class SASLAuthFailure(error.UnauthorizedLogin):
    """
    A login failure that knows which SASL condition (RFC 6120 section 6.5)
    to report.

    @ivar condition: e.g. C{"not-authorized"}, C{"invalid-authzid"}.
    @ivar closeStream: whether the stream must be closed after the failure
        (XEP-0178 asks for that in some cases).
    @ivar final: the other checkers of a chain must not be tried.
    """

    def __init__(
        self,
        condition: str = "not-authorized",
        text: str = "",
        closeStream: bool = False,
        detail: str = "",
        final: bool = False,
    ):
        """
        @param text: sent to the client in the failure's C{<text/>}.
        @param detail: for logs and C{xmppcert cert inspect} only, where it
            may say more than the client should learn (e.g. "revoked").
        """
        super().__init__(detail or text or condition)
        self.condition = condition
        self.text = text
        self.closeStream = closeStream
        self.detail = detail or text
        self.final = final


class IAccount(Interface):
    """
    The avatar of a logged-in stream: the account it acts as.
    """

    jid = Attribute("The bare JID of the account (L{jid.JID}).")
    resource = Attribute("The only resource this login may bind, or C{None}.")
    certificateFingerprint = Attribute("SHA-256 hex of the certificate used, or C{None}.")
    canManageCertificates = Attribute("Whether this login may add or remove certificates (XEP-0257).")


@implementer(IAccount)
@dataclass(frozen=True)
class Account:
    """
    @ivar jid: the bare JID of the account.
    @ivar resource: set when the certificate pins a resource (XEP-0257 §3).
    @ivar certificateFingerprint: set for certificate logins.
    @ivar canManageCertificates: C{False} for a certificate registered with
        C{<no-cert-management/>}.
    @ivar certificateRegistered: the login relied on the certificate's
        record in the store (the C{stored} checker), so the session ends
        when that record goes.
    """

    jid: jidmod.JID
    resource: str | None = None
    certificateFingerprint: str | None = None
    canManageCertificates: bool = True
    certificateRegistered: bool = False


@dataclass(frozen=True)
class CertificateIdentity:
    """
    What a certificate checker returns as the avatar id: the JID the login
    acts as (a full JID when a resource is pinned) and the certificate facts
    the realm puts on the L{Account}.

    Checkers may also return a plain JID (C{bytes} or C{str}), as any
    C{twisted.cred} checker does.
    """

    jid: jidmod.JID
    fingerprint: str
    canManageCertificates: bool = True
    registered: bool = False


@implementer(portal.IRealm)
class AccountRealm:
    """
    Turns what a checker returned into an L{Account}.
    """

    def requestAvatar(
        self, avatarId: Any, mind: object, *interfaces: Any
    ) -> tuple[Any, Account, Any]:
        if IAccount not in interfaces:
            raise NotImplementedError("only IAccount avatars are available")
        if isinstance(avatarId, CertificateIdentity):
            account = Account(
                jid=avatarId.jid.userhostJID(),
                resource=avatarId.jid.resource,
                certificateFingerprint=avatarId.fingerprint,
                canManageCertificates=avatarId.canManageCertificates,
                certificateRegistered=avatarId.registered,
            )
            return IAccount, account, lambda: None
        if isinstance(avatarId, bytes):
            avatarId = avatarId.decode("utf-8")
        parsed = jidmod.internJID(avatarId)
        return IAccount, Account(parsed.userhostJID(), resource=parsed.resource), lambda: None


class IScramProof(credentials.ICredentials):
    """
    The final client message of a SCRAM exchange, ready to be checked.
    """

    username = Attribute("The bare JID (str) the client authenticates as.")

    def checkProof() -> bool:
        """
        @return: whether the client proof matches the stored credential.
        """


@implementer(IScramProof)
class ScramProof:
    """
    Credentials carrying a SCRAM client-final message and the server state
    that can verify it (scramp checks the proof against StoredKey).
    """

    def __init__(self, username: str, server: ScramServer, clientFinal: str, genuine: bool) -> None:
        """
        @param genuine: C{False} when the salt and keys were faked for an
            unknown account: the proof can then never be right.
        """
        self.username = username
        self._server = server
        self._clientFinal = clientFinal
        self._genuine = genuine

    def checkProof(self) -> bool:
        try:
            self._server.set_client_final(self._clientFinal)
        except ScramException:
            return False
        return self._genuine

    def serverFinal(self) -> str:
        """
        @return: the server-final message (carrying the server signature).
        """
        return str(self._server.get_server_final())


@implementer(checkers.ICredentialsChecker)
class ScramChecker:
    """
    Accepts a verified SCRAM proof.
    """

    credentialInterfaces = (IScramProof,)

    def requestAvatarId(self, credentials: IScramProof) -> defer.Deferred[bytes | tuple[()]]:
        if credentials.checkProof():
            return defer.succeed(str(credentials.username).encode("utf-8"))
        return defer.fail(SASLAuthFailure("not-authorized"))


@implementer(checkers.ICredentialsChecker)
class StoredPasswordChecker:
    """
    Checks a plain password against the SCRAM-SHA-256 credential of the
    account, so no password is ever stored.

    PBKDF2 runs in a thread: it costs milliseconds of CPU, which must not
    stall every other stream.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(
        self,
        store: IAccountStore,
        deferToThread: Any = threads.deferToThread,
        iterations: int = 4096,
        fakeSecret: bytes | None = None,
    ) -> None:
        """
        @param iterations: the configured SCRAM iteration count, so that an
            unknown account costs as much as a real one.
        """
        self.store = store
        self._deferToThread = deferToThread
        self.iterations = iterations
        self.fakeSecret = fakeSecret or FAKE_CREDENTIAL_SECRET

    async def _check(self, creds: credentials.IUsernamePassword) -> bytes:
        rawUsername: Any = creds.username
        rawPassword: Any = creds.password
        username = rawUsername.decode("utf-8") if isinstance(rawUsername, bytes) else str(rawUsername)
        password = rawPassword.decode("utf-8") if isinstance(rawPassword, bytes) else str(rawPassword)
        credential = await self.store.getScramCredential(username, "SCRAM-SHA-256")
        if credential is None:
            # Spend the same work as for a real account, so that timing does
            # not tell which accounts exist.
            credential = passwords.fakeScramCredential(
                self.fakeSecret, username, "SCRAM-SHA-256", self.iterations
            )
            await self._deferToThread(passwords.verifyPassword, credential, password)
            raise SASLAuthFailure("not-authorized")
        ok = await self._deferToThread(passwords.verifyPassword, credential, password)
        if not ok:
            raise SASLAuthFailure("not-authorized")
        return username.encode("utf-8")

    def requestAvatarId(self, credentials: credentials.IUsernamePassword) -> defer.Deferred[bytes | tuple[()]]:
        return defer.ensureDeferred(self._check(credentials))


class IClientCertificate(credentials.ICredentials):
    """
    A TLS client certificate offered for SASL EXTERNAL (XEP-0178).
    """

    chain = Attribute(
        "The peer's certificates as presented, leaf first "
        "(C{cryptography.x509.Certificate}); nothing in it is verified."
    )
    authzid = Attribute("The authorization identity the client asked for, or C{None}.")
    domain = Attribute("The served domain the stream is addressed to.")


@implementer(IClientCertificate)
@dataclass(frozen=True)
class ClientCertificate:
    """
    Credentials built by the EXTERNAL mechanism from the TLS layer.
    """

    chain: tuple[x509.Certificate, ...]
    authzid: str | None
    domain: str

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def _now(clock: IReactorTime) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(clock.seconds(), datetime.UTC)


def _parseAuthzid(authzid: str | None, domains: frozenset[str]) -> jidmod.JID | None:
    if not authzid:
        return None
    try:
        wanted = parseJID(authzid)
    except jidmod.InvalidFormat:
        raise SASLAuthFailure("invalid-authzid", "the authzid is not a JID", closeStream=True) from None
    if wanted.user is None or wanted.host not in domains:
        raise SASLAuthFailure("invalid-authzid", "the authzid is not an account here", closeStream=True)
    return wanted


def selectIdentity(
    addrs: list[jidmod.JID],
    authzid: str | None,
    domains: frozenset[str],
    mappedAccount: jidmod.JID | None = None,
) -> jidmod.JID:
    """
    Choose the JID a certificate login acts as, by the rules of XEP-0178
    section 2 (and XEP-0257 section 3 for resources).

    @param addrs: the certificate's id-on-xmppAddr values.
    @param authzid: what the client asked for (C{None} or empty for nothing).
    @param mappedAccount: the account the certificate maps to by other
        means (e.g. its registered fingerprint), used when it names none.
    @return: a bare JID, or a full JID when the login may bind only that
        resource.
    @raise SASLAuthFailure: C{invalid-authzid} or C{not-authorized}, always
        closing the stream, as XEP-0178 asks.
    """
    wanted = _parseAuthzid(authzid, domains)
    if addrs:
        if wanted is not None:
            matches = [
                a for a in addrs
                if a.userhost() == wanted.userhost()
                and (a.resource is None or wanted.resource is None or a.resource == wanted.resource)
            ]
            if not matches:
                raise SASLAuthFailure(
                    "invalid-authzid", "the certificate does not name the authzid", closeStream=True
                )
            resource = wanted.resource
            if resource is None and all(m.resource is not None for m in matches):
                # Only full JIDs of the account: the login is pinned, which
                # must not depend on the order of the subjectAltNames.
                pinned = {m.resource for m in matches}
                if len(pinned) > 1:
                    raise SASLAuthFailure(
                        "invalid-authzid", "the certificate names several resources: send a full JID",
                        closeStream=True,
                    )
                resource = pinned.pop()
            chosen = jidmod.JID(tuple=(wanted.user, wanted.host, resource))
        elif len(addrs) > 1 and len({a for a in addrs if a.host in domains}) == 1:
            # XEP-0178 section 2 counts the identities that can be accounts
            # here: JIDs of other domains do not make the choice ambiguous.
            chosen = next(a for a in addrs if a.host in domains)
        elif len(addrs) > 1:
            # XEP-0178 section 2: several identities and no authzid.
            raise SASLAuthFailure(
                "invalid-authzid", "the certificate names several JIDs: send an authzid", closeStream=True
            )
        else:
            chosen = addrs[0]
        if chosen.host not in domains:
            raise SASLAuthFailure("invalid-authzid", "the JID is not of a domain served here", closeStream=True)
        return chosen
    if mappedAccount is None:
        raise SASLAuthFailure("not-authorized", "the certificate names no JID", closeStream=True)
    if wanted is not None and wanted.userhost() != mappedAccount.userhost():
        raise SASLAuthFailure("invalid-authzid", "not the certificate's account", closeStream=True)
    resource = wanted.resource if wanted is not None else None
    return jidmod.JID(tuple=(mappedAccount.user, mappedAccount.host, resource))


def checkStoredCertificate(
    leaf: x509.Certificate,
    stored: Any,
    authzid: str | None,
    domains: frozenset[str],
    requireXmppAddr: bool,
    now: datetime.datetime,
) -> CertificateIdentity:
    """
    Decide a login with a registered certificate: the whole rule set of the
    C{stored} checker, as a pure function, so that C{xmppcert cert inspect}
    explains exactly what a login would do.

    @param stored: the L{xmppcert.store.interfaces.StoredCertificate} with
        the leaf's fingerprint, or C{None}.
    @raise SASLAuthFailure: with the condition a client would get, and a
        C{detail} saying why.
    """
    if stored is None:
        raise SASLAuthFailure(
            "not-authorized", "the certificate is not registered", closeStream=True,
            detail="no account has registered this certificate",
        )
    if stored.state != "enabled":
        # Unknown, disabled and revoked look the same to the client. Final:
        # no other checker (a CA) may let a certificate its owner turned
        # off log in.
        raise SASLAuthFailure(
            "not-authorized", "the certificate is not registered", closeStream=True,
            detail=f"the certificate is {stored.state}", final=True,
        )
    addrs = _certificateFacts(leaf, now)
    account = jidmod.internJID(stored.account)
    if requireXmppAddr and not any(a.userhost() == account.userhost() for a in addrs):
        raise SASLAuthFailure(
            "not-authorized", "the certificate does not name its account", closeStream=True,
            detail=f"no id-on-xmppAddr names {account.userhost()} (certificates.require_xmppaddr is on)",
        )
    if not requireXmppAddr and not any(a.userhost() == account.userhost() for a in addrs):
        # The registration alone names the account; JIDs of others in the
        # certificate say nothing about this login.
        addrs = []
    chosen = selectIdentity(addrs, authzid, domains, mappedAccount=account)
    if chosen.userhost() != account.userhost():
        raise SASLAuthFailure(
            "invalid-authzid", "not the certificate's account", closeStream=True,
            detail=f"the certificate is registered to {account.userhost()}, not {chosen.userhost()}",
        )
    return CertificateIdentity(chosen, stored.fingerprint, stored.canManage, registered=True)


def checkIdentityOfTrustedCertificate(
    leaf: x509.Certificate, authzid: str | None, domains: frozenset[str], now: datetime.datetime
) -> CertificateIdentity:
    """
    For a certificate whose chain is already trusted: the XEP-0178 identity
    rules on its xmppAddrs.

    @raise SASLAuthFailure: as for a login.
    """
    addrs = _certificateFacts(leaf, now)
    return CertificateIdentity(selectIdentity(addrs, authzid, domains), x509facts.fingerprint(leaf), True)


def _certificateFacts(leaf: x509.Certificate, now: datetime.datetime) -> list[jidmod.JID]:
    """
    The checks every certificate login shares: in its validity window,
    usable for client authentication, well-formed identities.

    @return: its xmppAddrs.
    """
    state = x509facts.validity(leaf, now)
    if state is not x509facts.Validity.VALID:
        raise SASLAuthFailure("not-authorized", f"the certificate is {state.value}", closeStream=True)
    if not x509facts.hasClientAuth(leaf):
        raise SASLAuthFailure("not-authorized", "the certificate is not for client authentication", closeStream=True)
    try:
        return x509facts.xmppAddrs(leaf)
    except x509facts.CertificateError as e:
        raise SASLAuthFailure("not-authorized", str(e), closeStream=True) from None


@implementer(checkers.ICredentialsChecker)
class StoredCertificateChecker:
    """
    Accepts a certificate whose fingerprint an account registered and has
    not disabled or revoked (XEP-0257): no CA needed, self-signed is fine.
    Modelled on C{twisted.conch.checkers.SSHPublicKeyChecker}.
    """

    credentialInterfaces = (IClientCertificate,)

    def __init__(
        self,
        store: Any,
        clock: IReactorTime,
        domains: Iterable[str],
        requireXmppAddr: bool = True,
    ) -> None:
        """
        @param store: provides L{ICertificateStore}.
        """
        self.store = store
        self.clock = clock
        self.domains = frozenset(domains)
        self.requireXmppAddr = requireXmppAddr

    async def couldAccept(self, creds: IClientCertificate) -> bool:
        """
        Cheap pre-check for offering EXTERNAL (RFC 6120 section 6.3.4): the
        same decision as a login without an authzid, minus the authzid rules.
        """
        if not creds.chain:
            return False
        stored = await self.store.certificateByFingerprint(x509facts.fingerprint(creds.chain[0]))
        try:
            checkStoredCertificate(creds.chain[0], stored, None, self.domains, self.requireXmppAddr, _now(self.clock))
        except SASLAuthFailure as e:
            return e.condition == "invalid-authzid"
        return True

    async def _check(self, creds: IClientCertificate) -> CertificateIdentity:
        if not creds.chain:
            raise SASLAuthFailure("not-authorized", "no client certificate", closeStream=True)
        stored = await self.store.certificateByFingerprint(x509facts.fingerprint(creds.chain[0]))
        identity = checkStoredCertificate(
            creds.chain[0], stored, creds.authzid, self.domains, self.requireXmppAddr, _now(self.clock)
        )
        touched = self.store.touchCertificate(identity.fingerprint, self.clock.seconds())
        touched.addErrback(lambda f: log.failure("Could not record certificate use", f, level=LogLevel.warn))
        return identity

    def requestAvatarId(self, credentials: IClientCertificate) -> Any:
        return defer.ensureDeferred(self._check(credentials))


@implementer(checkers.ICredentialsChecker)
class CACertificateChecker:
    """
    Accepts a certificate that chains to a configured CA (company
    deployments, XEP-0257 section 3), carries clientAuth, and names an
    existing account of a served domain in an id-on-xmppAddr.
    """

    credentialInterfaces = (IClientCertificate,)

    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        store: IAccountStore,
        clock: IReactorTime,
        domains: Iterable[str],
    ) -> None:
        self.store = store
        self.clock = clock
        self.domains = frozenset(domains)
        self._trust = verification.Store(list(roots))

    def _verify(self, creds: IClientCertificate) -> None:
        if not creds.chain:
            raise SASLAuthFailure("not-authorized", "no client certificate", closeStream=True)
        verifier = (
            verification.PolicyBuilder().store(self._trust).time(_now(self.clock)).build_client_verifier()
        )
        try:
            verifier.verify(creds.chain[0], list(creds.chain[1:]))
        except (verification.VerificationError, ValueError, TypeError, UnsupportedAlgorithm) as e:
            # What the peer sent decides which: never an unexpected error.
            raise SASLAuthFailure("not-authorized", f"not issued by a trusted CA: {e}", closeStream=True) from None

    async def couldAccept(self, creds: IClientCertificate) -> bool:
        try:
            self._verify(creds)
        except SASLAuthFailure:
            return False
        return True

    async def _check(self, creds: IClientCertificate) -> CertificateIdentity:
        self._verify(creds)
        identity = checkIdentityOfTrustedCertificate(creds.chain[0], creds.authzid, self.domains, _now(self.clock))
        if not await self.store.accountExists(identity.jid.userhost()):
            raise SASLAuthFailure(
                "not-authorized", "no such account", closeStream=True,
                detail=f"there is no account {identity.jid.userhost()}",
            )
        return identity

    def requestAvatarId(self, credentials: IClientCertificate) -> Any:
        return defer.ensureDeferred(self._check(credentials))


@implementer(checkers.ICredentialsChecker)
class CertificateCheckerChain:
    """
    Tries certificate checkers in the configured order; the first that
    accepts wins. When all refuse, the most specific refusal is reported
    (an C{invalid-authzid} says more than a C{not-authorized}).
    """

    credentialInterfaces = (IClientCertificate,)

    def __init__(self, chain: Sequence[checkers.ICredentialsChecker]) -> None:
        self.chain = list(chain)

    async def couldAccept(self, creds: IClientCertificate) -> bool:
        for checker in self.chain:
            couldAccept = getattr(checker, "couldAccept", None)
            if couldAccept is None or await couldAccept(creds):
                return True
        return False

    async def _check(self, creds: IClientCertificate) -> Any:
        refusals: list[SASLAuthFailure] = []
        for checker in self.chain:
            try:
                return await defer.maybeDeferred(checker.requestAvatarId, creds)
            except SASLAuthFailure as e:
                if e.final:
                    raise
                refusals.append(e)
            except error.UnauthorizedLogin as e:
                refusals.append(SASLAuthFailure("not-authorized", str(e), closeStream=True))
        specific = [r for r in refusals if r.condition != "not-authorized"]
        if specific:
            raise specific[0]
        if refusals:
            raise refusals[0]
        raise SASLAuthFailure("not-authorized", "no certificate checker configured", closeStream=True)

    def requestAvatarId(self, credentials: IClientCertificate) -> Any:
        return defer.ensureDeferred(self._check(credentials))


def loadCertificateCheckers(
    names: Sequence[str],
    *,
    config: Any,
    store: Any,
    clock: IReactorTime,
) -> CertificateCheckerChain:
    """
    Build the configured checker chain. A name that is not built in is the
    dotted name of a callable, called as C{factory(config=, store=, clock=)}
    and returning an L{ICredentialsChecker} for L{IClientCertificate}.

    @raise ValueError: a name cannot be loaded or does not give a checker.
    """
    built: list[checkers.ICredentialsChecker] = []
    for name in names:
        if name == "stored":
            built.append(
                StoredCertificateChecker(store, clock, config.domains, config.certificates.require_xmppaddr)
            )
        elif name == "ca":
            from xmppcert.tls import loadCABundle

            built.append(CACertificateChecker(loadCABundle(config.certificates.ca_bundle), store, clock, config.domains))
        else:
            try:
                factory = namedAny(name)
            except (ImportError, AttributeError, ValueError) as e:
                raise ValueError(f"certificates.checkers: cannot load {name!r}: {e}") from None
            if not callable(factory):
                raise ValueError(f"certificates.checkers: {name!r} is not a checker factory")
            try:
                checker = factory(config=config, store=store, clock=clock)
            except TypeError as e:
                raise ValueError(
                    f"certificates.checkers: {name!r} must accept config=, store=, clock=: {e}"
                ) from None
            if not checkers.ICredentialsChecker.providedBy(checker) or IClientCertificate not in tuple(
                checker.credentialInterfaces
            ):
                raise ValueError(
                    f"certificates.checkers: {name!r} did not return a checker for IClientCertificate"
                )
            built.append(checker)
    return CertificateCheckerChain(built)


def makePortal(
    store: IAccountStore,
    extraCheckers: Sequence[checkers.ICredentialsChecker] | None = None,
    iterations: int = 4096,
    fakeSecret: bytes | None = None,
) -> portal.Portal:
    """
    The portal every SASL mechanism logs in through. Extra checkers replace
    the built-in one for the same credential interface.

    @param fakeSecret: the store's L{IAccountStore.fakeCredentialSecret}.
    """
    p = portal.Portal(
        AccountRealm(),
        [ScramChecker(), StoredPasswordChecker(store, iterations=iterations, fakeSecret=fakeSecret)],
    )
    for checker in extraCheckers or []:
        p.registerChecker(checker)
    return p


__all__ = [
    "Account",
    "AccountRealm",
    "CACertificateChecker",
    "CertificateCheckerChain",
    "CertificateIdentity",
    "ClientCertificate",
    "IAccount",
    "IClientCertificate",
    "StoredCertificateChecker",
    "checkIdentityOfTrustedCertificate",
    "checkStoredCertificate",
    "loadCertificateCheckers",
    "selectIdentity",
    "IScramProof",
    "SASLAuthFailure",
    "ScramChecker",
    "ScramProof",
    "StoredPasswordChecker",
    "makePortal",
]
