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

import dataclasses
import datetime
import importlib
import os
import traceback
import types
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
from twisted.words.protocols.jabber import jid as jidmod
from zope.interface import Attribute, Interface, implementer

from xmppcert import _log, certificates, passwords
from xmppcert import x509 as x509facts
from xmppcert.certificates import accountNamingProblem
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
    @ivar certificateNotAfter: for certificate logins, when the session
        must end (POSIX timestamp): the earliest notAfter of the
        certificates that vouched for it (RFC 6120 section 13.7.2.3).
    """

    jid: jidmod.JID
    resource: str | None = None
    certificateFingerprint: str | None = None
    canManageCertificates: bool = True
    certificateRegistered: bool = False
    certificateNotAfter: float | None = None


@dataclass(frozen=True)
class CertificateIdentity:
    """
    What a certificate checker returns as the avatar id: the JID the login
    acts as (a full JID when a resource is pinned) and the certificate facts
    the realm puts on the L{Account}.

    Checkers may also return a plain JID (C{bytes} or C{str}), as any
    C{twisted.cred} checker does; L{CertificateCheckerChain} turns it into
    one of these.

    @ivar notAfter: when a session logged in with it must end (POSIX
        timestamp): the earliest notAfter of the validated chain; the
        leaf's when C{None}.
    """

    jid: jidmod.JID
    fingerprint: str
    canManageCertificates: bool = True
    registered: bool = False
    notAfter: float | None = None


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
                certificateNotAfter=avatarId.notAfter,
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


#: L{ClientCertificate.registration} before anyone looked in the store.
NOT_LOOKED_UP: Any = object()


@implementer(IClientCertificate)
@dataclass(frozen=True)
class ClientCertificate:
    """
    Credentials built by the EXTERNAL mechanism from the TLS layer.

    @ivar registration: the leaf's L{StoredCertificate} (or C{None}) once
        L{CertificateCheckerChain} looked it up, so no checker needs to ask
        the store again; L{NOT_LOOKED_UP} until then.
    """

    chain: tuple[x509.Certificate, ...]
    authzid: str | None
    domain: str
    registration: Any = NOT_LOOKED_UP

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def _now(clock: IReactorTime) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(clock.seconds(), datetime.UTC)


def streamDomains(domain: str, served: frozenset[str]) -> frozenset[str]:
    """
    The domains a certificate login on a stream may act in: only the one
    the stream addressed (as for PLAIN and SCRAM), and only while it is
    served.
    """
    return frozenset({domain}) & served


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
            # Nothing the client could ask for would make this an account
            # of the stream's domain.
            raise SASLAuthFailure(
                "not-authorized", "the certificate names no account of this domain", closeStream=True,
                detail=f"it names {chosen.userhost()}, not an account of this stream's domain",
            )
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
        raise _turnedOff(stored.state)
    addrs = _certificateFacts(leaf, now)
    account = jidmod.internJID(stored.account)
    if account.host not in domains:
        # Another domain's account, or one of a domain no longer served.
        raise SASLAuthFailure(
            "not-authorized", "the certificate is not registered", closeStream=True,
            detail=f"registered to {account.userhost()}, not an account of this stream's domain",
        )
    problem = accountNamingProblem(addrs, account.userhost(), requireXmppAddr)
    if problem is not None:
        raise SASLAuthFailure(
            "not-authorized", "the certificate does not name its account", closeStream=True,
            detail=problem,
        )
    chosen = selectIdentity(addrs, authzid, domains, mappedAccount=account)
    if chosen.userhost() != account.userhost():
        raise SASLAuthFailure(
            "invalid-authzid", "not the certificate's account", closeStream=True,
            detail=f"the certificate is registered to {account.userhost()}, not {chosen.userhost()}",
        )
    return CertificateIdentity(
        chosen, stored.fingerprint, stored.canManage, registered=True,
        notAfter=leaf.not_valid_after_utc.timestamp(),
    )


def _turnedOff(state: str) -> SASLAuthFailure:
    # Unknown, disabled and revoked look the same to the client. Final: no
    # other checker (a CA, a custom one) may let a certificate its owner
    # turned off log in.
    return SASLAuthFailure(
        "not-authorized", "the certificate is not registered", closeStream=True,
        detail=f"the certificate is {state}", final=True,
    )


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


def _refusal(e: certificates.CertificateNotAcceptable) -> SASLAuthFailure:
    """
    The login's answer to a certificate that breaks the rules registration
    applies too (L{certificates.certificateIdentities}): C{not-authorized},
    saying little to the client; the reason is the detail, for the log.
    """
    if e.problem in (certificates.Problem.EXPIRED, certificates.Problem.NOT_YET_VALID):
        return SASLAuthFailure("not-authorized", f"the certificate is {e.problem.value}", closeStream=True)
    if e.problem is certificates.Problem.NOT_CLIENT:
        return SASLAuthFailure(
            "not-authorized", "the certificate is not for client authentication", closeStream=True,
            detail=e.reason,
        )
    return SASLAuthFailure("not-authorized", e.reason, closeStream=True)


def _certificateFacts(leaf: x509.Certificate, now: datetime.datetime) -> list[jidmod.JID]:
    """
    The checks every certificate login shares: in its validity window,
    usable for client authentication, well-formed identities.

    @return: its xmppAddrs.
    """
    try:
        return list(certificates.certificateIdentities(leaf, now))
    except certificates.CertificateNotAcceptable as e:
        raise _refusal(e) from None


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
        stored = await self._registration(creds)
        try:
            checkStoredCertificate(
                creds.chain[0], stored, None, streamDomains(creds.domain, self.domains),
                self.requireXmppAddr, _now(self.clock),
            )
        except SASLAuthFailure as e:
            return e.condition == "invalid-authzid"
        return True

    async def _registration(self, creds: IClientCertificate) -> Any:
        known = getattr(creds, "registration", NOT_LOOKED_UP)
        if known is not NOT_LOOKED_UP:
            return known
        return await self.store.certificateByFingerprint(x509facts.fingerprint(creds.chain[0]))

    async def _check(self, creds: IClientCertificate) -> CertificateIdentity:
        if not creds.chain:
            raise SASLAuthFailure("not-authorized", "no client certificate", closeStream=True)
        stored = await self._registration(creds)
        identity = checkStoredCertificate(
            creds.chain[0], stored, creds.authzid, streamDomains(creds.domain, self.domains),
            self.requireXmppAddr, _now(self.clock),
        )
        touched = self.store.touchCertificate(identity.fingerprint, self.clock.seconds())
        touched.addErrback(lambda f: log.failure("Could not record certificate use", f, level=LogLevel.warn))
        return identity

    def requestAvatarId(self, credentials: IClientCertificate) -> Any:
        return defer.ensureDeferred(self._check(credentials))


@dataclass(frozen=True)
class TrustedCA:
    """
    A client CA the C{ca} checker trusts, bound to the domains it may vouch
    for (C{[[certificates.ca]]}).

    @ivar roots: its root certificates.
    @ivar domains: the served domains whose accounts it may log in to.
    @ivar revocation: checks the validated chain against CRLs; anything
        with an C{async check(chain)} that raises
        L{xmppcert.crl.RevocationCheckError} to refuse; C{None} for none.
    @ivar name: how logs name it (its bundle file).
    """

    roots: tuple[x509.Certificate, ...]
    domains: frozenset[str]
    revocation: Any = None
    name: str = "CA"


@implementer(checkers.ICredentialsChecker)
class CACertificateChecker:
    """
    Accepts a certificate that chains to a CA trusted for the stream's
    domain (company deployments, XEP-0257 section 3), is not revoked by its
    CA's CRLs, is a client certificate, and names an existing account of
    that domain in an id-on-xmppAddr.

    Why a chain is refused (the validator's text, with certificate
    subjects) goes to the log, never to the client.
    """

    credentialInterfaces = (IClientCertificate,)

    def __init__(
        self,
        authorities: Sequence[TrustedCA] | Sequence[x509.Certificate],
        store: IAccountStore,
        clock: IReactorTime,
        domains: Iterable[str],
    ) -> None:
        """
        @param authorities: the trusted CAs; plain root certificates are one
            CA trusted for all of C{domains}.
        @param domains: the served domains.
        """
        self.store = store
        self.clock = clock
        self.domains = frozenset(domains)
        listed = list(authorities)
        roots = [a for a in listed if isinstance(a, x509.Certificate)]
        if roots and len(roots) != len(listed):
            raise TypeError("give either TrustedCA entries or root certificates, not both")
        if roots:
            listed = [TrustedCA(tuple(roots), self.domains)]
        self.authorities: list[TrustedCA] = listed  # type: ignore[assignment]
        self._trust = [(a, verification.Store(list(a.roots))) for a in self.authorities]

    def verify(self, creds: IClientCertificate) -> tuple[TrustedCA, list[x509.Certificate]]:
        """
        Validate the presented chain against the CAs trusted for the
        stream's domain.

        @return: the CA and the validated chain, leaf first, root last.
        @raise SASLAuthFailure: no such CA validates it.
        """
        if not creds.chain:
            raise SASLAuthFailure("not-authorized", "no client certificate", closeStream=True)
        now = _now(self.clock)
        reasons: list[str] = []
        for authority, store in self._trust:
            if creds.domain not in authority.domains:
                continue
            verifier = verification.PolicyBuilder().store(store).time(now).build_client_verifier()
            try:
                verified = verifier.verify(creds.chain[0], list(creds.chain[1:]))
            except (verification.VerificationError, ValueError, TypeError, UnsupportedAlgorithm) as e:
                # What the peer sent decides which: never an unexpected error.
                reasons.append(f"{authority.name}: {e}")
                continue
            return authority, list(verified.chain)
        raise SASLAuthFailure(
            "not-authorized", "the certificate is not trusted", closeStream=True,
            detail=(
                "not issued by a trusted CA: " + "; ".join(reasons)
                if reasons else f"no CA is trusted for {creds.domain}"
            ),
        )

    async def _checkRevocation(self, authority: TrustedCA, chain: list[x509.Certificate]) -> None:
        if authority.revocation is None:
            return
        from xmppcert.crl import CertificateRevokedError, RevocationCheckError

        try:
            await authority.revocation.check(chain)
        except RevocationCheckError as e:
            # Revoked by its CA is final, like a revocation in the store: no
            # later checker may let it in. An unknown status is not.
            raise SASLAuthFailure(
                "not-authorized", "the certificate is not trusted", closeStream=True, detail=str(e),
                final=isinstance(e, CertificateRevokedError),
            ) from None

    def identityOf(
        self, creds: IClientCertificate, authzid: str | None, authority: TrustedCA, chain: list[x509.Certificate]
    ) -> CertificateIdentity:
        """
        Who a certificate validated by C{authority} logs in as.

        @raise SASLAuthFailure: by the XEP-0178 identity rules.
        """
        domains = streamDomains(creds.domain, self.domains) & authority.domains
        identity = checkIdentityOfTrustedCertificate(creds.chain[0], authzid, domains, _now(self.clock))
        # RFC 6120 section 13.7.2.3: the session ends when any certificate
        # that vouched for it expires.
        notAfter = min(c.not_valid_after_utc for c in chain).timestamp()
        return CertificateIdentity(identity.jid, identity.fingerprint, identity.canManageCertificates, notAfter=notAfter)

    async def couldAccept(self, creds: IClientCertificate) -> bool:
        try:
            authority, chain = self.verify(creds)
            await self._checkRevocation(authority, chain)
            self.identityOf(creds, None, authority, chain)
        except SASLAuthFailure as e:
            return e.condition == "invalid-authzid"
        return True

    async def _check(self, creds: IClientCertificate) -> CertificateIdentity:
        authority, chain = self.verify(creds)
        await self._checkRevocation(authority, chain)
        identity = self.identityOf(creds, creds.authzid, authority, chain)
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

    Before any checker runs, the leaf's state in the store is looked up
    once: a certificate disabled or revoked there (or revoked and since
    removed) never logs in, whatever checker would accept it and in
    whatever order. After one accepts, the rules every path shares are
    applied: the account is of the stream's domain, and a registration made
    with C{<no-cert-management/>} restricts the session whichever checker
    let it in. Every certificate login carries the leaf's fingerprint, so a
    revocation closes its sessions.
    """

    credentialInterfaces = (IClientCertificate,)

    def __init__(
        self,
        chain: Sequence[checkers.ICredentialsChecker],
        store: Any = None,
        domains: Iterable[str] | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param store: provides L{ICertificateStore}; without one the stored
            state is not consulted (for tests of custom checkers alone).
        @param domains: the served domains; when C{None}, the domain each
            stream addressed (which the stream checked) is taken as served.
        @param clock: for the leaf's validity; the global reactor's when
            C{None}.
        """
        self.chain = list(chain)
        self.store = store
        self.domains = None if domains is None else frozenset(domains)
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.clock: IReactorTime = clock

    async def _registration(self, creds: IClientCertificate) -> tuple[IClientCertificate, Any]:
        """
        Refuse a certificate turned off in the store.

        @return: the credentials (with the registration attached when they
            are a L{ClientCertificate}) and the leaf's L{StoredCertificate}
            or C{None}.
        """
        if not creds.chain:
            raise SASLAuthFailure("not-authorized", "no client certificate", closeStream=True)
        leaf = creds.chain[0]
        # Whatever checker would decide: only a client certificate in its
        # validity period (a custom checker may not look).
        try:
            certificates.checkClientCertificate(leaf, _now(self.clock))
        except certificates.CertificateNotAcceptable as e:
            raise _refusal(e) from None
        if self.store is None:
            return creds, None
        fingerprint = x509facts.fingerprint(creds.chain[0])
        stored = await self.store.certificateByFingerprint(fingerprint)
        if stored is not None and stored.state != "enabled":
            raise _turnedOff(stored.state)
        if stored is None and await self.store.isCertificateRevoked(fingerprint):
            raise _turnedOff("revoked (its record was removed)")
        if isinstance(creds, ClientCertificate):
            return dataclasses.replace(creds, registration=stored), stored
        return creds, stored

    async def couldAccept(self, creds: IClientCertificate) -> bool:
        try:
            creds, _ = await self._registration(creds)
        except SASLAuthFailure:
            return False
        for checker in self.chain:
            couldAccept = getattr(checker, "couldAccept", None)
            if couldAccept is None or await couldAccept(creds):
                return True
        return False

    async def _check(self, creds: IClientCertificate) -> CertificateIdentity:
        creds, stored = await self._registration(creds)
        refusals: list[SASLAuthFailure] = []
        for checker in self.chain:
            try:
                accepted = await defer.maybeDeferred(checker.requestAvatarId, creds)
            except SASLAuthFailure as e:
                if e.final:
                    raise
                refusals.append(e)
                continue
            except error.UnauthorizedLogin as e:
                # A custom checker's own words are for the log, not the peer.
                refusals.append(SASLAuthFailure(
                    "not-authorized", "the certificate is not accepted", closeStream=True, detail=str(e)
                ))
                continue
            return self._shared(creds, accepted, stored)
        specific = [r for r in refusals if r.condition != "not-authorized"]
        if specific:
            raise specific[0]
        if refusals:
            raise refusals[0]
        raise SASLAuthFailure("not-authorized", "no certificate checker configured", closeStream=True)

    def _shared(self, creds: IClientCertificate, accepted: Any, stored: Any) -> CertificateIdentity:
        leaf = creds.chain[0]
        if isinstance(accepted, CertificateIdentity):
            identity = accepted
        else:
            text = accepted.decode("utf-8") if isinstance(accepted, bytes) else str(accepted)
            try:
                identity = CertificateIdentity(parseJID(text), x509facts.fingerprint(leaf))
            except jidmod.InvalidFormat:
                raise SASLAuthFailure(
                    "not-authorized", "the certificate is not accepted", closeStream=True,
                    detail=f"a checker answered {text!r}, which is not a JID",
                ) from None
        served = frozenset({creds.domain}) if self.domains is None else self.domains
        if identity.jid.user is None or identity.jid.host not in streamDomains(creds.domain, served):
            # As PLAIN and SCRAM: a stream logs in only to its own domain.
            raise SASLAuthFailure(
                "not-authorized", "the certificate is not for an account of this domain", closeStream=True,
                detail=f"a checker mapped it to {identity.jid.full()} on a stream to {creds.domain}",
            )
        changes: dict[str, Any] = {}
        fingerprint = x509facts.fingerprint(leaf)
        if identity.fingerprint != fingerprint:
            changes["fingerprint"] = fingerprint
        if stored is not None and not stored.canManage:
            changes["canManageCertificates"] = False
        leafNotAfter = leaf.not_valid_after_utc.timestamp()
        if identity.notAfter is None or identity.notAfter > leafNotAfter:
            # Never longer than the leaf, whatever a checker says.
            changes["notAfter"] = leafNotAfter
        return dataclasses.replace(identity, **changes) if changes else identity

    def requestAvatarId(self, credentials: IClientCertificate) -> Any:
        return defer.ensureDeferred(self._check(credentials))

    def revocationCheckers(self) -> list[Any]:
        """
        @return: the CRL checkers of the chain's CA checkers, which have a
            C{start} and C{stop} for their background work.
        """
        return [
            authority.revocation
            for checker in self.chain if isinstance(checker, CACertificateChecker)
            for authority in checker.authorities if authority.revocation is not None
        ]

    def describe(self, names: Sequence[str]) -> str:
        """
        One line for the log saying what decides a certificate login.
        """
        listed = ", ".join(names)
        return (
            "a certificate disabled or revoked in the store is refused first; then the checkers"
            f" ({listed}) are tried in that order and the first that accepts decides"
        )


def _exceptionText(e: BaseException) -> str:
    """
    One line for an exception raised by an operator's code: its type, its
    message and the line of that code that raised it.
    """
    text = f"{type(e).__name__}: {e}"
    if isinstance(e, SyntaxError):
        return text  # its message has the file and line
    frames = [
        f for f in traceback.extract_tb(e.__traceback__)
        if not f.filename.startswith("<frozen") and "importlib" not in f.filename
    ]
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


def loadCheckerFactory(name: str) -> Any:
    """
    Import what a dotted name in C{certificates.checkers} names.

    @raise ValueError: one line with the cause: no such module, no such
        name in it, or a module that failed to import (then with the error
        it raised and where, e.g. a dependency that is not installed).
    """
    parts = name.split(".")

    def failed(detail: str) -> ValueError:
        return ValueError(f"certificates.checkers: cannot load {name!r}: {detail}")

    def importModule(moduleName: str) -> Any:
        try:
            return importlib.import_module(moduleName)
        except ModuleNotFoundError as e:
            if e.name == moduleName:
                return None
            raise failed(f"importing {moduleName} failed: {_exceptionText(e)}") from None
        except Exception as e:
            raise failed(f"importing {moduleName} failed: {_exceptionText(e)}") from None

    found = importModule(parts[0])
    if found is None:
        raise failed(f"no module named {parts[0]!r}")
    for part in parts[1:]:
        try:
            found = getattr(found, part)
            continue
        except AttributeError:
            pass
        owner = getattr(found, "__name__", repr(found))
        submodule = importModule(f"{owner}.{part}") if isinstance(found, types.ModuleType) else None
        if submodule is None:
            raise failed(f"{owner} has no {part!r}")
        found = submodule
    return found


def loadCertificateCheckers(
    names: Sequence[str],
    *,
    config: Any,
    store: Any,
    clock: IReactorTime,
    trustedCAs: Sequence[TrustedCA] | None = None,
) -> CertificateCheckerChain:
    """
    Build the configured checker chain. A name that is not built in is the
    dotted name of a callable, called as C{factory(config=, store=, clock=)}
    and returning an L{ICredentialsChecker} for L{IClientCertificate}.

    @param trustedCAs: the C{ca} checker's CAs, already prepared (a reload
        keeps their CRL checkers); read from C{config} when C{None}.

    @raise ValueError: a name cannot be loaded or does not give a checker.
    """
    built: list[checkers.ICredentialsChecker] = []
    for name in names:
        if name == "stored":
            built.append(
                StoredCertificateChecker(store, clock, config.domains, config.certificates.require_xmppaddr)
            )
        elif name == "ca":
            authorities = loadTrustedCAs(config, clock) if trustedCAs is None else list(trustedCAs)
            built.append(CACertificateChecker(authorities, store, clock, config.domains))
        else:
            factory = loadCheckerFactory(name)
            if not callable(factory):
                raise ValueError(f"certificates.checkers: {name!r} is not a checker factory")
            try:
                checker = factory(config=config, store=store, clock=clock)
            except TypeError as e:
                raise ValueError(
                    f"certificates.checkers: {name!r} must accept config=, store=, clock=: {e}"
                ) from None
            except Exception as e:
                raise ValueError(
                    f"certificates.checkers: {name!r} failed: {_exceptionText(e)}"
                ) from None
            if not checkers.ICredentialsChecker.providedBy(checker) or IClientCertificate not in tuple(
                checker.credentialInterfaces
            ):
                raise ValueError(
                    f"certificates.checkers: {name!r} did not return a checker for IClientCertificate"
                )
            built.append(checker)
    return CertificateCheckerChain(built, store, config.domains, clock)


def loadTrustedCAs(config: Any, clock: IReactorTime, revocation: bool = True) -> list[TrustedCA]:
    """
    The C{[[certificates.ca]]} entries of C{config}, with their bundles
    read and, with C{revocation}, a CRL checker each.

    @raise xmppcert.tls.TLSConfigurationError: a bundle cannot be read.
    @raise xmppcert.crl.CRLError: a CRL file cannot be read.
    """
    from xmppcert.crl import RevocationChecker
    from xmppcert.tls import loadCABundle

    return [
        TrustedCA(
            roots=tuple(loadCABundle(ca.bundle)),
            domains=frozenset(ca.domains),
            revocation=RevocationChecker(
                clock, crlFiles=ca.crls, fetch=ca.fetch_crls, failurePolicy=ca.crl_failure
            ) if revocation else None,
            name=ca.bundle.name,
        )
        for ca in config.certificates.ca
    ]



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
    "NOT_LOOKED_UP",
    "TrustedCA",
    "accountNamingProblem",
    "loadTrustedCAs",
    "streamDomains",
    "IAccount",
    "IClientCertificate",
    "StoredCertificateChecker",
    "checkIdentityOfTrustedCertificate",
    "checkStoredCertificate",
    "loadCertificateCheckers",
    "loadCheckerFactory",
    "selectIdentity",
    "IScramProof",
    "SASLAuthFailure",
    "ScramChecker",
    "ScramProof",
    "StoredPasswordChecker",
    "makePortal",
]
