# -*- test-case-name: tests.test_sasl -*-
"""
Server-side SASL (RFC 6120 section 6): the mechanism interface, the results a
mechanism step produces, and the registry that decides which mechanisms a
stream offers and in which order.

A mechanism is a small object created per authentication attempt. It never
decides on its own who may log in: it turns the client's data into
L{twisted.cred} credentials and calls L{login}, which is also where failed
logins are throttled (L{xmppcert.throttle}) for every mechanism alike.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from twisted.cred import error as credError
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.words.protocols.jabber import jid as jidmod
from zope.interface import Attribute, Interface

from xmppcert import x509 as x509facts
from xmppcert.cred import Account, IAccount, IClientCertificate, IScramProof, SASLAuthFailure
from xmppcert.jids import makeJID, parseJID
from xmppcert.metrics import IMetrics, NullMetrics
from xmppcert.store.interfaces import IAccountStore
from xmppcert.throttle import LoginThrottle

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"

#: RFC 6120 section 6.5 conditions.
CONDITIONS = frozenset(
    {
        "aborted",
        "account-disabled",
        "credentials-expired",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "mechanism-too-weak",
        "not-authorized",
        "temporary-auth-failure",
    }
)


class SASLFailure(Exception):
    """
    The attempt failed; C{<failure><condition/></failure>} is sent.

    @ivar condition: one of L{CONDITIONS}.
    @ivar closeStream: close the stream after sending the failure.
    @ivar quiet: an expected refusal whose cause was logged once already
        (a lockout): logged per attempt at debug, not info, so a flood of
        attempts is not a flood of lines.
    @ivar account: for the log, never sent: who the attempt tried to log
        in as (the authcid's account; a certificate's JIDs and
        fingerprint, see L{describeCertificate}); C{""} when unknown.
    """

    def __init__(
        self,
        condition: str,
        text: str = "",
        closeStream: bool = False,
        detail: str = "",
        quiet: bool = False,
        account: str = "",
    ) -> None:
        assert condition in CONDITIONS, condition
        super().__init__(condition, text)
        self.condition = condition
        self.text = text
        self.closeStream = closeStream
        #: For the log, never sent.
        self.detail = detail or text
        self.quiet = quiet
        self.account = account


@dataclass(frozen=True)
class Challenge:
    """
    Send C{<challenge/>} with C{data} and wait for a C{<response/>}.
    """

    data: bytes


@dataclass(frozen=True)
class Success:
    """
    The client is authenticated as C{account}; C{<success/>} carries
    C{additionalData} when it is not C{None}.
    """

    account: Account
    additionalData: bytes | None = None


SASLResult = Challenge | Success


@dataclass
class MechanismContext:
    """
    What a mechanism may know about the stream it authenticates.

    @ivar domain: the domain the client addressed in its stream header.
    @ivar secure: whether TLS protects the stream.
    @ivar peerAddress: for logging.
    @ivar peerHost: the peer's IP address, which failed logins are counted
        against; C{""} for a peer without one (a UNIX socket).
    @ivar throttle: counts failed logins, delays their answers and locks
        out guessing (see L{login}); C{None} turns that off.
    @ivar peerChain: the client's TLS certificate chain, leaf first, unverified.
    @ivar scramIterations: the iteration count of new credentials, also used
        for the made-up credentials of unknown accounts.
    @ivar fakeCredentialSecret: the store's secret for those made-up
        credentials; a per-process one when C{None}.
    @ivar metrics: told about throttled attempts (L{xmppcert.metrics}).
    @ivar servedDomains: returns the domains served now (those of the live
        configuration, which a reload replaces): L{login} refuses a login
        to C{domain} once it is not among them. C{None}: not checked.
    """

    portal: Portal
    store: IAccountStore
    domain: str
    secure: bool
    peerAddress: str = ""
    peerChain: tuple[x509.Certificate, ...] = ()
    scramIterations: int = 4096
    fakeCredentialSecret: bytes | None = None
    peerHost: str = ""
    throttle: LoginThrottle | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    metrics: IMetrics = field(default_factory=NullMetrics)
    servedDomains: Callable[[], Container[str]] | None = None


class ISASLServerMechanism(Interface):
    """
    The server side of one SASL exchange.

    Both methods return a Deferred that fires with a L{Challenge} or a
    L{Success}, or fails with L{SASLFailure}.
    """

    name = Attribute("The mechanism name, e.g. C{'PLAIN'}.")

    def start(initialResponse):  # type: ignore[no-untyped-def]
        """
        @param initialResponse: the decoded initial response, C{b""} for an
            empty one (sent as C{=}), or C{None} when the client sent none.
        """

    def step(response):  # type: ignore[no-untyped-def]
        """
        @param response: the decoded data of a C{<response/>}.
        """


class MechanismFactory(Protocol):
    """
    What the registry holds: a mechanism class (or any factory) with a name,
    a priority and a predicate telling whether it can be offered.
    """

    name: str
    priority: int

    def isAvailable(self, context: MechanismContext) -> bool | defer.Deferred[bool]: ...

    def __call__(self, context: MechanismContext) -> Any: ...


class SingleResponseMechanism:
    """
    Base for a mechanism whose whole exchange is one client response
    (PLAIN, EXTERNAL): without an initial response, an empty challenge asks
    for it (RFC 4422 section 5). Subclasses implement L{respond}.
    """

    def __init__(self, context: MechanismContext) -> None:
        self.context = context

    def start(self, initialResponse: bytes | None) -> defer.Deferred[SASLResult]:
        if initialResponse is None:
            return defer.succeed(Challenge(b""))
        return self.step(initialResponse)

    def step(self, response: bytes) -> defer.Deferred[SASLResult]:
        return defer.ensureDeferred(self.respond(response))

    async def respond(self, response: bytes) -> SASLResult:
        raise NotImplementedError


class MechanismRegistry:
    """
    The mechanisms a server knows; the configuration picks and orders them.
    """

    def __init__(self, factories: Iterable[MechanismFactory] = ()) -> None:
        self._factories: dict[str, MechanismFactory] = {}
        for factory in factories:
            self.register(factory)

    def register(self, factory: MechanismFactory) -> None:
        """
        Add a mechanism, replacing one of the same name.
        """
        self._factories[factory.name] = factory

    def names(self) -> list[str]:
        """
        @return: every known mechanism name, highest priority first.
        """
        return [f.name for f in sorted(self._factories.values(), key=lambda f: -f.priority)]

    def get(self, name: str) -> MechanismFactory | None:
        return self._factories.get(name)

    async def offered(self, enabled: Sequence[str], context: MechanismContext) -> list[MechanismFactory]:
        """
        The mechanisms to offer on one stream: those in C{enabled} that are
        known and available for this stream, in the configured order
        (RFC 6120 section 6.3.3: the server's own preference), except that
        EXTERNAL, when offered, comes first (RFC 6120 section 6.3.4).
        """
        result = []
        for name in enabled:
            factory = self._factories.get(name)
            if factory is None:
                continue
            available: Any = factory.isAvailable(context)
            if isinstance(available, defer.Deferred):
                available = await available
            if available:
                result.append(factory)
        result.sort(key=lambda f: f.name != "EXTERNAL")
        return result


def accountJID(authcid: str, domain: str) -> jidmod.JID:
    """
    Map a SASL authentication identity to the bare JID of an account.

    RFC 6120 section 6.3.7: for client-to-server streams the simple user name
    is the localpart; a bare JID of the stream's domain is accepted too.

    @raise SASLFailure: C{not-authorized} when it names no possible account.
    """
    try:
        if "@" in authcid:
            parsed = parseJID(authcid)
        else:
            parsed = makeJID(authcid, domain, None)
    except jidmod.InvalidFormat:
        raise SASLFailure("not-authorized", account=_escaped(authcid)) from None
    if not parsed.user or parsed.resource is not None or parsed.host != domain:
        raise SASLFailure("not-authorized", account=_escaped(authcid))
    return parsed


def _escaped(text: str, limit: int = 100) -> str:
    """
    A peer's text for a log line: at most C{limit} characters, escaped so
    that it cannot break the line.
    """
    return text[:limit].encode("unicode_escape").decode("ascii")


def describeCertificate(certificate: x509.Certificate) -> str:
    """
    A client certificate for the log: the JIDs it names (id-on-xmppAddr)
    and its fingerprint, e.g. C{"alice@example.com (certificate 3f2a...)"}.
    """
    try:
        names = ", ".join(a.full() for a in x509facts.xmppAddrs(certificate)) or "no JID"
    except x509facts.CertificateError:
        names = "unreadable JIDs"
    return f"{names} (certificate {x509facts.fingerprint(certificate)})"


def checkAuthzid(authzid: str, account: jidmod.JID) -> None:
    """
    No proxy authorization: an authzid, if given, must name the account
    itself (RFC 6120 section 6.3.8).

    @raise SASLFailure: C{invalid-authzid}.
    """
    if not authzid:
        return
    try:
        wanted = parseJID(authzid)
    except jidmod.InvalidFormat:
        raise SASLFailure("invalid-authzid") from None
    if wanted.userhost() != account.userhost():
        raise SASLFailure("invalid-authzid", account=account.userhost())


def _claimedAccount(credentials: Any) -> tuple[str | None, bool]:
    """
    @return: the account the credentials claim before any checker ran (a
        bare JID), or C{None} when only the checker can tell (a
        certificate); and whether they hold a password (PLAIN, SCRAM), which
        a lockout refuses.
    """
    if IUsernamePassword.providedBy(credentials):
        return _accountName(credentials.username), True
    if IScramProof.providedBy(credentials):
        return _accountName(credentials.username), True
    return None, False


def _accountName(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, jidmod.JID):
        return value.userhost()
    if isinstance(value, str) and value:
        return value
    return None


async def login(context: MechanismContext, credentials: Any) -> Account:
    """
    Log in through the portal and translate cred failures into SASL ones.

    This is also the one place where an account locked by an administrator
    (C{IAccountStore.isAccountLocked}) is refused, for every mechanism:
    with C{account-disabled} (RFC 6120 section 6.5.1), only once the
    credentials were found good, so the lock is revealed to no one who
    could not log in otherwise; such a refusal is no failed guess for the
    throttle. Likewise a login to a domain no longer served
    (C{context.servedDomains}: a reload removed it after the stream's
    header), for every mechanism, with C{not-authorized}; the stream is
    closed, as nothing can log in on it any more.

    With a C{context.throttle} (L{xmppcert.throttle}), this is also the one
    place where failed logins are counted, for every mechanism:

     - a password login (PLAIN, SCRAM) to an account that is locked out,
       from this address or from everywhere, fails at once with
       C{temporary-auth-failure}, without the password being checked;
     - a password login waits, before it is checked, as long as the
       throttle says (L{LoginThrottle.wait}): aborting or reconnecting does
       not skip that; a certificate login never waits (there is nothing to
       guess);
     - a failure is counted against the peer's address, and against the
       account the credentials name, if any; its answer is not delayed;
     - each wait and each lockout refusal is told to C{context.metrics}.
    """
    throttle = context.throttle
    claimed, isPassword = _claimedAccount(credentials)
    # For the log of a failure: a certificate names its JIDs itself.
    tried = claimed
    if tried is None and IClientCertificate.providedBy(credentials) and credentials.chain:
        tried = describeCertificate(credentials.chain[0])
    if throttle is not None and isPassword and claimed is not None:
        _refuseLocked(throttle, context.peerHost, claimed, context.metrics)
        delay = throttle.wait(context.peerHost, claimed)
        if delay > 0:
            context.metrics.loginThrottled("delayed")
            await task.deferLater(throttle.clock, delay)
            # Failures of parallel attempts may have locked it meanwhile.
            _refuseLocked(throttle, context.peerHost, claimed, context.metrics)
    try:
        _, avatar, _ = await context.portal.login(credentials, None, IAccount)
    except SASLAuthFailure as e:
        refusal = SASLFailure(e.condition, e.text, e.closeStream, e.detail)
        account = claimed
    except credError.UnauthorizedLogin:
        refusal = SASLFailure("not-authorized")
        account = claimed
    except credError.UnhandledCredentials:
        # No checker for these credentials: the server's setup, not a guess.
        raise SASLFailure("not-authorized", account=tried or "") from None
    else:
        assert isinstance(avatar, Account)
        if context.servedDomains is not None and context.domain not in context.servedDomains():
            raise SASLFailure(
                "not-authorized", f"{context.domain} is no longer served here", closeStream=True,
                detail=f"{context.domain} is no longer served", account=avatar.jid.userhost(),
            )
        if await context.store.isAccountLocked(avatar.jid.userhost()):
            raise SASLFailure(
                "account-disabled", "This account is locked", detail=f"{avatar.jid.userhost()} is locked"
            )
        if throttle is not None:
            throttle.succeeded(context.peerHost, avatar.jid.userhost())
        return avatar
    if throttle is not None:
        throttle.failed(context.peerHost, account)
    refusal.account = tried or ""
    raise refusal


def _refuseLocked(throttle: LoginThrottle, host: str, account: str, metrics: IMetrics) -> None:
    reason = throttle.refusal(host, account)
    if reason is not None:
        metrics.loginThrottled("locked")
        raise SASLFailure(
            "temporary-auth-failure", "Too many failed attempts; try again later", detail=reason, quiet=True,
            account=account,
        )


def asDeferred(coroutineFunction: Callable[..., Any]) -> Callable[..., defer.Deferred[Any]]:
    """
    Decorate an C{async def} method so that it returns a Deferred.
    """

    def wrapper(*args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        return defer.ensureDeferred(coroutineFunction(*args, **kwargs))

    wrapper.__name__ = coroutineFunction.__name__
    wrapper.__doc__ = coroutineFunction.__doc__
    return wrapper


def defaultRegistry() -> MechanismRegistry:
    """
    @return: a registry with every mechanism xmppcert ships.
    """
    from xmppcert.sasl.external import External
    from xmppcert.sasl.plain import Plain
    from xmppcert.sasl.scram import ScramSHA1, ScramSHA256

    return MechanismRegistry([External, ScramSHA256, ScramSHA1, Plain])


__all__ = [
    "CONDITIONS",
    "Challenge",
    "ISASLServerMechanism",
    "MechanismContext",
    "MechanismFactory",
    "MechanismRegistry",
    "NS_SASL",
    "SASLFailure",
    "SASLResult",
    "SingleResponseMechanism",
    "Success",
    "accountJID",
    "checkAuthzid",
    "defaultRegistry",
    "describeCertificate",
    "login",
]
