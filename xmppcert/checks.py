# -*- test-case-name: tests.test_checks -*-
"""
What can be known about a configuration before a client connects: the
checks the server runs when it starts (after twistd dropped privileges, so
as the user that will serve) and C{xmppcert check} runs offline, in the
manner of C{prosodyctl check}.

Each check returns L{Finding}s, one line each: an C{error} stops the server
(or makes C{xmppcert check} exit 1), a C{warn} is printed and logged, C{ok}
and C{info} lines only inform. The checks read files and open the database
synchronously; they run at start-up and on a reload, never per login.
"""

from __future__ import annotations

import datetime
import errno
import os
import socket
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import extract_patterns, verify_certificate_hostname
from service_identity.hazmat import SRV_ID, DNSPattern, SRVPattern, verify_service_identity
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import Portal
from twisted.internet import defer, endpoints, task
from zope.interface import implementer

from xmppcert.config import BUILTIN_CHECKERS, Config
from xmppcert.tls import MIN_VERSIONS, ServerTLSContextFactory, TLSConfigurationError, loadCABundle

ERROR = "error"
WARN = "warn"
OK = "ok"
INFO = "info"

#: A server certificate that expires within this many days gets a warning.
EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True)
class Finding:
    """
    One result of a check.

    @ivar level: L{ERROR}, L{WARN}, L{OK} or L{INFO}.
    @ivar message: one line, starting with the configuration key concerned.
    """

    level: str
    message: str


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """
    @return: the findings at level L{ERROR}.
    """
    return [f for f in findings if f.level == ERROR]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _day(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _userName() -> str:
    uid = os.geteuid()
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name}"
    except (ImportError, KeyError):
        return f"uid {uid}"


def certificateNames(certificate: x509.Certificate) -> list[str]:
    """
    @return: the DNS names and SRV names of the certificate's
        subjectAltName, as clients match them (RFC 6125).
    """
    names = []
    for pattern in extract_patterns(certificate):
        if isinstance(pattern, DNSPattern):
            names.append(pattern.pattern.decode("ascii", "replace"))
        elif isinstance(pattern, SRVPattern):
            names.append(
                "_" + pattern.name_pattern.decode("ascii", "replace")
                + "." + pattern.dns_pattern.pattern.decode("ascii", "replace")
            )
    return names


def coversDomain(certificate: x509.Certificate, domain: str) -> bool:
    """
    Whether an XMPP client connecting to C{domain} accepts C{certificate}'s
    identity (RFC 6120 section 13.7.2.1): a DNS-ID for the domain (a
    wildcard counts) or an SRV-ID for C{_xmpp-client.domain}.
    """
    try:
        name = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    try:
        verify_certificate_hostname(certificate, name)
        return True
    except (VerificationError, CertificateError, ValueError):
        pass
    try:
        verify_service_identity(extract_patterns(certificate), [SRV_ID(f"_xmpp-client.{name}")], [])
        return True
    except (VerificationError, CertificateError, ValueError):
        return False


def checkServerCertificate(config: Config, now: datetime.datetime | None = None) -> list[Finding]:
    """
    The C{[tls]} files load and the key is the certificate's; then
    L{serverCertificateFindings}.
    """
    tls = config.tls
    try:
        factory = ServerTLSContextFactory.fromFiles(tls.certificate, tls.key, minVersion=tls.min_version)
    except TLSConfigurationError as e:
        return [Finding(ERROR, f"tls: {e}")]
    findings = serverCertificateFindings(factory.certificate(), config, now)
    http = getattr(config, "http", None)
    if http is not None and http.certificate is not None and http.key is not None and config.listen.https:
        # The HTTPS listener's own certificate: web clients check it for
        # the domain too (the URL's host).
        try:
            web = ServerTLSContextFactory.fromFiles(http.certificate, http.key, minVersion=tls.min_version)
        except TLSConfigurationError as e:
            return findings + [Finding(ERROR, f"http: {e}")]
        findings += [
            Finding(f.level, "http: " + f.message) for f in serverCertificateFindings(web.certificate(), config, now)
        ]
    return findings


def serverCertificateFindings(
    leaf: x509.Certificate, config: Config, now: datetime.datetime | None = None
) -> list[Finding]:
    """
    The server certificate names every served domain and is in its
    validity period (a warning within L{EXPIRY_WARNING_DAYS} days of its
    end).

    @param leaf: the certificate loaded from C{config.tls.certificate}.
    """
    now = now or _now()
    path = config.tls.certificate
    findings = []
    if now < leaf.not_valid_before_utc:
        findings.append(Finding(
            ERROR, f"tls.certificate: {path} is not valid before {_day(leaf.not_valid_before_utc)}"
        ))
    elif now > leaf.not_valid_after_utc:
        findings.append(Finding(
            ERROR, f"tls.certificate: {path} expired on {_day(leaf.not_valid_after_utc)}; renew it"
        ))
    else:
        left = leaf.not_valid_after_utc - now
        if left < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
            findings.append(Finding(
                WARN,
                f"tls.certificate: {path} expires in {left.days} days"
                f" ({_day(leaf.not_valid_after_utc)}); renew it",
            ))
    names = certificateNames(leaf)
    for domain in config.domains:
        if not coversDomain(leaf, domain):
            findings.append(Finding(
                ERROR,
                f"tls.certificate: {path} does not name {domain}"
                f" (it names {', '.join(names) or 'nothing in subjectAltName'});"
                f" clients connecting to {domain} will refuse it",
            ))
    if not errors(findings):
        findings.append(Finding(
            OK,
            f"tls: {path} and its key match; it names {', '.join(config.domains)}"
            f" and is valid until {_day(leaf.not_valid_after_utc)}",
        ))
    return findings


def checkClientCAs(config: Config) -> list[Finding]:
    """
    Every client CA bundle and CRL file of C{[certificates]} can be read.
    """
    from xmppcert.cred import loadTrustedCAs
    from xmppcert.crl import CRLError

    findings = []
    for bundle in config.certificates.clientCABundles():
        try:
            roots = loadCABundle(bundle)
        except TLSConfigurationError as e:
            findings.append(Finding(ERROR, f"certificates.ca: {e}"))
        else:
            findings.append(Finding(OK, f"certificates.ca: {bundle}: {len(roots)} CA certificates"))
    if not errors(findings) and config.certificates.ca:
        try:
            loadTrustedCAs(config, task.Clock())
        except (CRLError, TLSConfigurationError, ValueError) as e:
            findings.append(Finding(ERROR, f"certificates.ca: {e}"))
        else:
            crls = [crl for ca in config.certificates.ca for crl in ca.crls]
            if crls:
                findings.append(Finding(OK, f"certificates.ca: {len(crls)} CRL files read"))
    return findings


def _schemaVersion(connection: sqlite3.Connection) -> int | None:
    if connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone() is None:
        return None
    row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row is not None else None


def checkStore(config: Config, busyTimeout: float = 10.0) -> list[Finding]:
    """
    The database can be read and written by this process's user: a write
    in a transaction that is rolled back, so nothing changes. A missing
    database is not created (C{xmppcert check} may run as another user than
    the server); its directory must then be writable.
    """
    from xmppcert.store.sqlite import SCHEMA_VERSION

    path = config.store.sqlite.absolute()
    key = "store.sqlite"
    try:
        exists = path.exists()
    except OSError as e:
        return [Finding(ERROR, f"{key}: cannot reach {path} as {_userName()}: {e.strerror or e}")]
    if not exists:
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if os.access(parent, os.W_OK | os.X_OK):
            return [Finding(OK, f"{key}: {path} does not exist yet; it will be created")]
        return [Finding(
            ERROR, f"{key}: {path} does not exist and {parent} is not writable by {_userName()}"
        )]
    try:
        connection = sqlite3.connect(
            f"{path.as_uri()}?mode=rw", uri=True, timeout=busyTimeout, isolation_level=None
        )
    except sqlite3.Error as e:
        return [Finding(ERROR, f"{key}: cannot open {path} as {_userName()}: {e}")]
    try:
        connection.execute("BEGIN IMMEDIATE")
        version = _schemaVersion(connection)
        if version is not None and version > SCHEMA_VERSION:
            connection.execute("ROLLBACK")
            return [Finding(
                ERROR,
                f"{key}: {path} has schema version {version}, newer than this xmppcert's"
                f" ({SCHEMA_VERSION}); use a newer xmppcert",
            )]
        # A real write (rolled back): read-only files, directories and
        # -wal/-shm files owned by someone else only show here.
        if version is None:
            connection.execute("CREATE TABLE xmppcert_check (x)")
        else:
            connection.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
        connection.execute("ROLLBACK")
    except sqlite3.Error as e:
        return [Finding(ERROR, f"{key}: cannot write {path} as {_userName()}: {e}")]
    finally:
        connection.close()
    state = "empty" if version is None else f"schema version {version}"
    return [Finding(OK, f"{key}: {path} is readable and writable ({state})")]


def checkCheckers(config: Config) -> list[Finding]:
    """
    Every checker factory named in C{certificates.checkers} imports and is
    callable (it is not called: that needs the store).
    """
    from xmppcert.cred import loadCheckerFactory

    findings = []
    for name in config.certificates.checkers:
        if name in BUILTIN_CHECKERS:
            continue
        try:
            factory = loadCheckerFactory(name)
        except ValueError as e:
            findings.append(Finding(ERROR, str(e)))
            continue
        if not callable(factory):
            findings.append(Finding(ERROR, f"certificates.checkers: {name!r} is not a checker factory"))
        else:
            findings.append(Finding(OK, f"certificates.checkers: {name} imports"))
    return findings


def listeners(config: Config) -> list[tuple[str, str]]:
    """
    @return: (configuration key, endpoint description) of every listener.
    """
    result = [("listen.starttls", d) for d in config.listen.starttls]
    result += [("listen.direct_tls", d) for d in config.listen.direct_tls]
    result += [("listen.https", d) for d in getattr(config.listen, "https", ())]
    metrics = getattr(config, "metrics", None)
    result += [("metrics.listen", d) for d in getattr(metrics, "listen", ())]
    return result


def _bindFinding(key: str, description: str) -> Finding:
    endpoint: Any = endpoints.serverFromString(None, description)
    kind = type(endpoint).__name__
    if kind == "UNIXServerEndpoint":
        directory = Path(endpoint._address).parent
        if os.access(directory, os.W_OK | os.X_OK):
            return Finding(OK, f"{key}: {description}: {directory} is writable")
        return Finding(ERROR, f"{key}: {description}: {directory} is not writable by {_userName()}")
    family = socket.AF_INET6 if kind == "TCP6ServerEndpoint" else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As Twisted's listening ports do.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((endpoint._interface, endpoint._port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return Finding(
                    WARN, f"{key}: {description}: {e.strerror} (fine if that is this server, running)"
                )
            hint = ""
            if e.errno == errno.EACCES and 0 < endpoint._port < 1024:
                hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            return Finding(ERROR, f"{key}: {description}: cannot listen: {e.strerror or e}{hint}")
    return Finding(OK, f"{key}: {description}: free")


def checkListeners(config: Config) -> list[Finding]:
    """
    Each listener's address can be bound now (the probe is closed at
    once). A port in use is a warning: it is in use by the running server
    when the configuration is checked before a reload.
    """
    return [_bindFinding(key, description) for key, description in listeners(config)]


def startupFindings(
    config: Config, *, store: bool = True, now: datetime.datetime | None = None
) -> list[Finding]:
    """
    What the server checks when it starts, after dropping privileges: the
    server certificate and key, the client CAs and CRLs, and (with
    C{store}, for the built-in SQLite store) the database. The listeners
    are checked by listening; the checkers by building them.
    """
    findings = checkServerCertificate(config, now) + checkClientCAs(config)
    if store:
        findings += checkStore(config)
    return findings


def offlineFindings(config: Config, now: datetime.datetime | None = None) -> list[Finding]:
    """
    Everything C{xmppcert check} checks: L{startupFindings}, the checker
    factories and the listeners.
    """
    return startupFindings(config, now=now) + checkCheckers(config) + checkListeners(config)


@implementer(ICredentialsChecker)
class _StandInChecker:
    """
    Stands for the configured certificate checkers in L{clientView}, which
    only asks whether EXTERNAL would be offered: for a certificate that one
    of them accepts, or that none does.
    """

    def __init__(self, accepts: bool) -> None:
        from xmppcert.cred import IClientCertificate

        self.credentialInterfaces = (IClientCertificate,)
        self.accepts = accepts

    async def couldAccept(self, creds: object) -> bool:
        return self.accepts

    def requestAvatarId(self, credentials: object) -> defer.Deferred[Any]:
        raise NotImplementedError("a stand-in never logs anyone in")


def _offered(config: Config, chain: Sequence[x509.Certificate], accepts: bool) -> list[str]:
    from xmppcert.cred import AccountRealm
    from xmppcert.sasl import MechanismContext, defaultRegistry

    portal = Portal(AccountRealm(), [_StandInChecker(accepts)])
    context = MechanismContext(
        portal=portal, store=None, domain=config.domains[0], secure=True,  # type: ignore[arg-type]
        peerChain=tuple(chain),
    )
    result: list[str] = []
    d = defer.ensureDeferred(defaultRegistry().offered(config.sasl.mechanisms, context))
    d.addCallback(lambda offered: result.extend(f.name for f in offered))
    return result


def _placeholderCertificate() -> x509.Certificate:
    from xmppcert.x509 import generateServerCertificate

    return x509.load_pem_x509_certificate(generateServerCertificate(["client.invalid"])[1])


def clientView(config: Config) -> list[Finding]:
    """
    What a client sees: the TLS versions, whether a client certificate is
    requested, and the SASL mechanisms offered (in order) without a client
    certificate and with one a checker accepts.
    """
    versions = [v for v in MIN_VERSIONS if float(v) >= float(config.tls.min_version)]
    certs = config.certificates
    findings = [Finding(INFO, f"tls: TLS {' and '.join(versions)} (tls.min_version = {config.tls.min_version!r})")]
    if certs.policy == "disabled":
        findings.append(Finding(INFO, "tls: no client certificate is requested (certificates.policy = 'disabled')"))
    else:
        how = "required: the handshake fails without one" if certs.policy == "needed" else "optional"
        subjects: list[str] = []
        for bundle in config.certificates.clientCABundles():
            try:
                subjects += [root.subject.rfc4514_string() for root in loadCABundle(bundle)]
            except TLSConfigurationError:
                pass  # reported by checkClientCAs
        names = f"naming the CAs {'; '.join(subjects)}" if subjects else "naming no CA (any certificate may be offered)"
        findings.append(Finding(
            INFO, f"tls: a client certificate is requested, {how} (certificates.policy = {certs.policy!r}), {names}"
        ))
    if certs.policy == "needed":
        findings.append(Finding(INFO, "sasl: without a client certificate: no stream (TLS fails first)"))
    else:
        plain = _offered(config, (), False)
        findings.append(Finding(INFO, f"sasl: without a client certificate: {', '.join(plain) or 'nothing'}"))
    if certs.policy != "disabled":
        placeholder = (_placeholderCertificate(),)
        accepted = _offered(config, placeholder, True)
        refused = _offered(config, placeholder, False)
        findings.append(Finding(
            INFO, f"sasl: with a client certificate a checker accepts: {', '.join(accepted) or 'nothing'}"
        ))
        findings.append(Finding(
            INFO, f"sasl: with a client certificate no checker accepts: {', '.join(refused) or 'nothing'}"
        ))
        if "EXTERNAL" in config.sasl.mechanisms:
            from xmppcert.cred import CertificateCheckerChain

            rule = CertificateCheckerChain([]).describe(certs.checkers)
            findings.append(Finding(INFO, f"certificates: {rule}"))
        else:
            findings.append(Finding(INFO, "sasl: EXTERNAL is not in sasl.mechanisms: no certificate logins"))
    return findings


__all__ = [
    "ERROR",
    "EXPIRY_WARNING_DAYS",
    "Finding",
    "INFO",
    "OK",
    "WARN",
    "checkCheckers",
    "checkClientCAs",
    "checkListeners",
    "checkServerCertificate",
    "serverCertificateFindings",
    "checkStore",
    "clientView",
    "certificateNames",
    "coversDomain",
    "errors",
    "listeners",
    "offlineFindings",
    "startupFindings",
]
