# -*- test-case-name: tests.test_config -*-
"""
One typed configuration object, loaded from TOML and validated with errors
that name the offending key.

Relative paths in the file are resolved against the directory holding the
file (for C{data_dir}) and against C{data_dir} (for everything else), so a
generated C{var/xmppcert.toml} keeps working from any working directory.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from twisted.words.protocols.jabber import jid

from xmppcert.jids import parseJID

#: SASL mechanism names this server implements, strongest first
#: (RFC 6120 section 6.3.3: an ordered list of preferred mechanisms).
KNOWN_MECHANISMS = ("EXTERNAL", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")

#: Built-in certificate checkers; anything else must be a dotted name.
BUILTIN_CHECKERS = ("stored", "ca")

LOG_LEVELS = ("debug", "info", "warn", "error", "critical")

#: What C{log_format} may say: twistd's text lines, or one JSON object a line.
LOG_FORMATS = ("text", "json")


class ConfigError(ValueError):
    """
    The configuration is not usable; the message names the key.
    """


#: TLS versions C{tls.min_version} may name.
TLS_VERSIONS = ("1.2", "1.3")

#: What C{crl_failure} may say when no CRL can be had for a certificate.
CRL_FAILURE_POLICIES = ("soft", "hard")


@dataclass(frozen=True)
class TLSConfig:
    """
    @ivar certificate: PEM file with the server certificate (and chain).
    @ivar key: PEM file with the server private key.
    @ivar min_version: the oldest TLS version accepted, C{"1.2"} or
        C{"1.3"}. Under TLS 1.2 the client certificate (and the JID in it)
        crosses the network in clear.
    """

    certificate: Path
    key: Path
    min_version: str = "1.2"


@dataclass(frozen=True)
class ListenConfig:
    """
    Listening endpoints as Twisted endpoint descriptions (C{tcp:5222:interface=...}).

    @ivar starttls: plain TCP endpoints on which STARTTLS is offered and required.
    @ivar direct_tls: plain TCP endpoints on which xmppcert itself layers TLS
        from the first byte (XEP-0368), with ALPN C{xmpp-client}.
    @ivar https: plain TCP endpoints on which xmppcert serves HTTPS (ALPN
        C{http/1.1}) for web clients: BOSH, WebSocket and host-meta
        (C{[http]}, docs/web.md).
    """

    starttls: tuple[str, ...] = ("tcp:5222:interface=127.0.0.1",)
    direct_tls: tuple[str, ...] = ("tcp:5223:interface=127.0.0.1",)
    https: tuple[str, ...] = ("tcp:5281:interface=127.0.0.1",)


@dataclass(frozen=True)
class StoreConfig:
    """
    @ivar sqlite: the SQLite database file.
    """

    sqlite: Path


@dataclass(frozen=True)
class SASLConfig:
    """
    @ivar mechanisms: enabled mechanisms, in the order they are offered.
    @ivar max_failures: failed attempts allowed on one stream before it is
        closed (RFC 6120 section 6.4.5 asks for 2 to 5).
    @ivar scram_iterations: PBKDF2 iteration count for new SCRAM credentials.
    """

    mechanisms: tuple[str, ...] = KNOWN_MECHANISMS
    max_failures: int = 3
    scram_iterations: int = 4096


@dataclass(frozen=True)
class LimitsConfig:
    """
    @ivar max_stanza_size: bytes of one top-level element (and the stream header).
    @ivar max_stanza_elements: elements in one top-level element.
    @ivar handshake_timeout: seconds a connection may take to finish the TLS
        handshake (direct TLS) and send its stream header; after STARTTLS's
        C{<proceed/>}, again for the handshake and the restarted header.
    @ivar auth_timeout: seconds a connection may take to authenticate and bind.
    @ivar max_unauthenticated_per_address: connections from one address (an
        IPv6 /64) that may be open and not yet authenticated at once.
    @ivar listen_backlog: the listen queue of every listener whose endpoint
        description does not give C{backlog=} itself.
    @ivar login_failure_max_delay: the longest a failed login's answer is
        held back (see L{xmppcert.throttle}); 0 for no delay.
    @ivar max_failures_per_account_address: recent failed logins of one
        account from one address that lock its password logins from there
        for C{lockout_time}; 0 for no such lockout.
    @ivar max_failures_per_account: recent failed logins of one account from
        anywhere that lock its password logins for C{lockout_time}; 0 for
        no such lockout.
    @ivar command_session_timeout: seconds an ad-hoc command session
        (XEP-0050) may stay idle before it expires.
    @ivar lockout_time: seconds a lockout lasts; also the half-life of the
        failure counts.
    """

    max_stanza_size: int = 256 * 1024
    max_stanza_elements: int = 2000
    handshake_timeout: float = 10.0
    auth_timeout: float = 30.0
    max_unauthenticated_per_address: int = 20
    listen_backlog: int = 511
    login_failure_max_delay: float = 3.0
    max_failures_per_account_address: int = 5
    max_failures_per_account: int = 20
    lockout_time: float = 300.0
    command_session_timeout: float = 600.0


@dataclass(frozen=True)
class CAConfig:
    """
    One trusted client CA (C{[[certificates.ca]]}), bound to the domains it
    may vouch for.

    @ivar bundle: PEM file of the CA's root certificates.
    @ivar domains: served domains whose accounts its certificates may log
        in to; a CA never authenticates accounts of other domains.
    @ivar crls: CRL files (PEM or DER) of the CA and its intermediates,
        read again when they change on disk.
    @ivar fetch_crls: whether CRLs are also fetched from the distribution
        points certificates name (HTTP or HTTPS), and cached.
    @ivar crl_failure: C{"soft"} lets a certificate log in when its CRL
        cannot be had (logged); C{"hard"} refuses it.
    """

    bundle: Path
    domains: tuple[str, ...]
    crls: tuple[Path, ...] = ()
    fetch_crls: bool = True
    crl_failure: str = "soft"


@dataclass(frozen=True)
class CertificatesConfig:
    """
    Client certificates and SASL EXTERNAL.

    @ivar policy: C{"disabled"}, C{"wanted"} or C{"needed"}: whether the TLS
        layer asks for a client certificate, and whether one is required.
    @ivar checkers: names of the checkers tried in order: C{"stored"}
        (fingerprints registered per account), C{"ca"} (chains to one of
        C{ca}), or the dotted name of a checker factory. Before any of
        them, a certificate that is disabled or revoked in the store is
        refused, whatever the order; the order only decides which checker
        answers for a certificate several would accept.
    @ivar require_xmppaddr: whether a stored certificate must name the
        account in an id-on-xmppAddr to log in (and to be registered).
    @ivar ca: the trusted client CAs of the C{ca} checker; their names are
        also sent to clients with the certificate request.
    @ivar ca_bundle: the first release's single PEM file of client CA
        roots, kept for custom checkers that read it; its names are sent
        with the certificate request too. With the C{ca} checker it becomes
        the one entry of C{ca}.
    @ivar max_per_account: enabled certificates an account may register
        (XEP-0257 append); 0 means no limit.
    @ivar prune_expired_after: days after its expiry that a certificate is
        removed from the store (XEP-0257 section 2.3 MAY); 0 keeps them.
    @ivar revocation_poll_interval: seconds between looks at the store for
        certificates revoked elsewhere (the CLI, another node), whose
        sessions are then closed.
    @ivar session_check_interval: seconds between checks that every live
        session's registered certificate and account still exist (removals
        leave no change to poll for).
    """

    policy: str = "wanted"
    checkers: tuple[str, ...] = ("stored",)
    require_xmppaddr: bool = True
    ca: tuple[CAConfig, ...] = ()
    ca_bundle: Path | None = None
    max_per_account: int = 32
    prune_expired_after: float = 90.0
    revocation_poll_interval: float = 2.0
    session_check_interval: float = 30.0

    def clientCABundles(self) -> list[Path]:
        """
        @return: every client CA bundle, each once: those of C{ca}, then
            the first release's C{ca_bundle}; their names go with the TLS
            certificate request.
        """
        bundles = [ca.bundle for ca in self.ca]
        if self.ca_bundle is not None and self.ca_bundle not in bundles:
            bundles.append(self.ca_bundle)
        return list(dict.fromkeys(bundles))


@dataclass(frozen=True)
class MetricsConfig:
    """
    Prometheus metrics over HTTP (docs/operations.md, "Metrics").

    @ivar listen: endpoint descriptions (C{tcp:9090:interface=127.0.0.1})
        where C{/metrics} is served; none (the default) serves nothing.
    """

    listen: tuple[str, ...] = ()


@dataclass(frozen=True)
class HTTPConfig:
    """
    Web clients on the C{[listen] https} endpoints (docs/web.md): BOSH
    (XEP-0124, XEP-0206) at C{/http-bind}, WebSocket (RFC 7395) at
    C{/xmpp-websocket}, and host-meta (XEP-0156).

    @ivar allowed_origins: web origins (C{https://chat.example.com}) whose
        pages may use BOSH (CORS) and open WebSockets (the C{Origin}
        check); C{"*"} allows any. Requests that carry no C{Origin} (not
        from a browser page) are always served. None by default.
    @ivar certificate: the HTTPS server certificate (PEM); by default the
        one of C{[tls]}.
    @ivar key: its private key; given exactly when C{certificate} is.
    @ivar max_body_size: bytes of one HTTP request body (a BOSH body).
    @ivar max_websocket_message: bytes of one WebSocket message.
    @ivar websocket_ping_interval: seconds between WebSocket pings on a
        quiet connection; 0 sends none.
    @ivar bosh_max_sessions: BOSH sessions open at once.
    @ivar bosh_max_wait: the longest, in seconds, a BOSH request is held.
    @ivar bosh_max_hold: requests a BOSH session may have held at once.
    @ivar bosh_max_inactivity: seconds a BOSH session may go with no
        request held before it ends.
    @ivar bosh_polling: the shortest interval, in seconds, between two
        empty requests of a polling session (C{hold} 0).
    """

    allowed_origins: tuple[str, ...] = ()
    certificate: Path | None = None
    key: Path | None = None
    max_body_size: int = 256 * 1024
    max_websocket_message: int = 256 * 1024
    websocket_ping_interval: float = 30.0
    bosh_max_sessions: int = 1000
    bosh_max_wait: float = 60.0
    bosh_max_hold: int = 1
    bosh_max_inactivity: float = 60.0
    bosh_polling: float = 2.0

    def allowsOrigin(self, origin: str | None) -> bool:
        """
        @param origin: a request's C{Origin} header, C{None} when it has
            none (not a page in a browser).
        @return: whether a page of C{origin} may use this server.
        """
        if origin is None:
            return True
        return "*" in self.allowed_origins or origin.rstrip("/").lower() in self.allowed_origins


@dataclass(frozen=True)
class IMConfig:
    """
    Limits of the instant messaging features (RFC 6121, XEP-0160,
    XEP-0191).

    @ivar max_roster_items: contacts in one roster (pending subscription
        requests included).
    @ivar max_offline_messages: messages stored for one offline account;
        more are refused with C{service-unavailable}; 0 stores none.
    @ivar max_blocked: JIDs in one block list.
    @ivar presence_rate: presence stanzas a session may send per second,
        on average; more are dropped (a flood does not reach contacts).
    @ivar presence_burst: presence stanzas a session may send at once
        before L{presence_rate} applies.
    @ivar max_vcard_bytes: bytes of one vCard (XEP-0054).
    @ivar max_private_fragment_bytes: bytes of one namespace's private XML
        (XEP-0049).
    @ivar max_private_bytes: bytes of an account's private XML together.
    @ivar max_pep_nodes: personal eventing nodes (XEP-0163) of one account.
    @ivar max_pep_items: items one PEP node keeps (its C{pubsub#max_items}
        is at most this; C{max} means this).
    @ivar max_pep_item_bytes: bytes of one published item.
    @ivar max_pep_bytes: bytes of an account's stored PEP items together
        (id, payload and publisher of each).
    @ivar caps_cache_size: verified entity capabilities (XEP-0115) kept in
        memory, least recently used dropped first.
    """

    max_roster_items: int = 1000
    max_offline_messages: int = 200
    max_blocked: int = 1000
    presence_rate: float = 5.0
    presence_burst: int = 30
    max_vcard_bytes: int = 64 * 1024
    max_private_fragment_bytes: int = 64 * 1024
    max_private_bytes: int = 1024 * 1024
    max_pep_nodes: int = 256
    max_pep_items: int = 256
    max_pep_item_bytes: int = 128 * 1024
    max_pep_bytes: int = 8 * 1024 * 1024
    caps_cache_size: int = 1000


@dataclass(frozen=True)
class ControlConfig:
    """
    The local control channel (docs/operations.md, "Live sessions and the
    control channel").

    @ivar socket: the UNIX socket (mode 0600) through which the C{xmppcert}
        command reaches the running server; C{None} turns the channel off.
    """

    socket: Path | None = None


@dataclass(frozen=True)
class Config:
    """
    The whole server configuration.

    @ivar domains: the domains this server serves (RFC 7622 domainparts).
    @ivar data_dir: directory for the database and generated files.
    @ivar keepalive_interval: seconds between the whitespace keepalives sent
        on every bound client stream; 0 turns them off.
    @ivar log_format: C{"text"} or C{"json"} (one object a line on stdout,
        see L{xmppcert.logging}).
    @ivar admins: bare JIDs (prepared) of the accounts that may administer
        the server from a client (XEP-0133 ad-hoc commands, certificates of
        any account).
    """

    domains: tuple[str, ...]
    data_dir: Path
    tls: TLSConfig
    store: StoreConfig
    listen: ListenConfig = field(default_factory=ListenConfig)
    sasl: SASLConfig = field(default_factory=SASLConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    certificates: CertificatesConfig = field(default_factory=CertificatesConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    im: IMConfig = field(default_factory=IMConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    log_level: str = "info"
    keepalive_interval: float = 0.0
    log_format: str = "text"
    admins: tuple[str, ...] = ()

    def replace(self, **changes: Any) -> Config:
        """
        @return: a copy with C{changes} applied.
        """
        return replace(self, **changes)


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _table(data: Mapping[str, Any], key: str, prefix: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    _check(isinstance(value, dict), prefix + key, "must be a table")
    return value


def _noUnknownKeys(data: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for key in data:
        _check(key in allowed, prefix + key, "unknown key")


def _get(
    data: Mapping[str, Any],
    key: str,
    prefix: str,
    kind: type | tuple[type, ...],
    default: Any,
    valid: Callable[[Any], bool] | None = None,
    hint: str = "",
) -> Any:
    if key not in data:
        return default
    value = data[key]
    # TOML booleans are ints in Python; never accept one where a number is meant.
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
    _check(ok, prefix + key, f"must be {hint or _kindName(kind)}, not {value!r}")
    if valid is not None:
        _check(valid(value), prefix + key, f"must be {hint}, not {value!r}")
    return value


def _kindName(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return {str: "a string", int: "an integer", list: "a list", bool: "true or false"}.get(
        kind, kind.__name__
    )


def _stringList(data: Mapping[str, Any], key: str, prefix: str, default: Any) -> Any:
    value = _get(data, key, prefix, list, default)
    if value is default:
        return default
    for item in value:
        _check(isinstance(item, str) and item != "", prefix + key, "must be a list of non-empty strings")
    return tuple(value)


def _domain(name: str) -> str:
    try:
        parsed = parseJID(name)
    except jid.InvalidFormat as e:
        raise ConfigError(f"domains: {name!r} is not a valid domain ({e})") from None
    _check(
        parsed.user is None and parsed.resource is None,
        "domains",
        f"{name!r} must be a bare domain, not a JID",
    )
    return parsed.host


def _checkEndpoint(key: str, description: str, hint: str = "xmppcert adds TLS itself") -> None:
    # Parse now, so a typo stops the server with the key's name rather than
    # a traceback from deep inside twistd.
    from twisted.internet import endpoints

    try:
        endpoint = endpoints.serverFromString(None, description)
    except Exception as e:
        raise ConfigError(f"{key}: {description!r} is not a server endpoint description ({e})") from None
    _check(
        type(endpoint).__name__ in ("TCP4ServerEndpoint", "TCP6ServerEndpoint", "UNIXServerEndpoint"),
        key,
        f"{description!r}: use a tcp: (or unix:) endpoint; {hint}",
    )
    # Twisted takes any integer here and fails only when binding, with a
    # traceback. 0 (a free port the kernel picks) is for tests.
    port = getattr(endpoint, "_port", None)
    _check(
        not isinstance(port, int) or 0 <= port <= 65535,
        key,
        f"{description!r}: the port must be from 1 to 65535, not {port}",
    )


def _isDottedName(name: str) -> bool:
    parts = name.split(".")
    return len(parts) >= 2 and all(p.isidentifier() for p in parts)


def _caEntries(
    certData: Mapping[str, Any], domains: tuple[str, ...], path: Callable[[str], Path], caChecker: bool
) -> tuple[CAConfig, ...]:
    """
    The C{[[certificates.ca]]} tables, and the C{ca_bundle} key of the
    first release: for the C{ca} checker, with a single served domain it
    still means a CA for that domain; with several it must say which, and
    the one-line error says how. Without the C{ca} checker it is left to
    custom checkers, as before.
    """
    legacy = _get(certData, "ca_bundle", "certificates.", str, "")
    entries = certData.get("ca", [])
    _check(
        isinstance(entries, list) and all(isinstance(e, dict) for e in entries),
        "certificates.ca",
        "must be an array of tables: [[certificates.ca]] with bundle and domains",
    )
    if legacy and not caChecker and not entries:
        return ()
    if legacy:
        _check(
            not entries,
            "certificates.ca_bundle",
            "give either ca_bundle or [[certificates.ca]] tables, not both; move it into a"
            " [[certificates.ca]] table",
        )
        _check(
            len(domains) == 1,
            "certificates.ca_bundle",
            "a CA must be bound to the domains it may vouch for: replace it with"
            f' [[certificates.ca]] bundle = "{legacy}" domains = ["..."]',
        )
        return (CAConfig(bundle=path(legacy), domains=domains),)
    result = []
    for index, entry in enumerate(entries):
        prefix = f"certificates.ca[{index}]."
        _noUnknownKeys(entry, {"bundle", "domains", "crls", "fetch_crls", "crl_failure"}, prefix)
        bundle = _get(entry, "bundle", prefix, str, "")
        _check(bool(bundle), prefix + "bundle", "is required: the PEM file of the CA's roots")
        caDomains = _stringList(entry, "domains", prefix, None)
        _check(
            bool(caDomains),
            prefix + "domains",
            "is required: the served domains whose accounts this CA may vouch for",
        )
        prepared = tuple(dict.fromkeys(_domain(d) for d in caDomains))
        for domain in prepared:
            _check(domain in domains, prefix + "domains", f"{domain!r} is not in the served domains")
        crlFiles = _stringList(entry, "crls", prefix, ())
        result.append(
            CAConfig(
                bundle=path(bundle),
                domains=prepared,
                crls=tuple(path(c) for c in crlFiles),
                fetch_crls=_get(entry, "fetch_crls", prefix, bool, True),
                crl_failure=_get(
                    entry, "crl_failure", prefix, str, "soft",
                    lambda v: v in CRL_FAILURE_POLICIES, '"soft" or "hard"',
                ),
            )
        )
    return tuple(result)


def configFromDict(data: Mapping[str, Any], baseDir: Path) -> Config:
    """
    Build and validate a L{Config} from parsed TOML.

    @param baseDir: directory that a relative C{data_dir} is resolved against.
    @raise ConfigError: naming the first offending key.
    """
    _noUnknownKeys(
        data,
        {
            "domains", "data_dir", "log_level", "keepalive_interval", "log_format",
            "tls", "listen", "store", "sasl", "limits", "certificates", "metrics",
            "control", "http", "im", "admins",
        },
        "",
    )
    domains = _stringList(data, "domains", "", None)
    _check(bool(domains), "domains", "at least one served domain is required")
    domains = tuple(dict.fromkeys(_domain(d) for d in domains))

    dataDir = Path(_get(data, "data_dir", "", str, "."))
    if not dataDir.is_absolute():
        dataDir = (baseDir / dataDir).resolve()

    def path(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else dataDir / p

    tlsData = _table(data, "tls", "")
    _noUnknownKeys(tlsData, {"certificate", "key", "min_version"}, "tls.")
    tls = TLSConfig(
        certificate=path(_get(tlsData, "certificate", "tls.", str, "server.crt")),
        key=path(_get(tlsData, "key", "tls.", str, "server.key")),
        min_version=_get(
            tlsData, "min_version", "tls.", str, "1.2", lambda v: v in TLS_VERSIONS, '"1.2" or "1.3"'
        ),
    )

    listenData = _table(data, "listen", "")
    _noUnknownKeys(listenData, {"starttls", "direct_tls", "https"}, "listen.")
    defaults = ListenConfig()
    listen = ListenConfig(
        starttls=_stringList(listenData, "starttls", "listen.", defaults.starttls),
        direct_tls=_stringList(listenData, "direct_tls", "listen.", defaults.direct_tls),
        https=_stringList(listenData, "https", "listen.", defaults.https),
    )
    for key, descriptions in (
        ("listen.starttls", listen.starttls),
        ("listen.direct_tls", listen.direct_tls),
        ("listen.https", listen.https),
    ):
        for description in descriptions:
            _checkEndpoint(key, description)
    _check(
        bool(listen.starttls or listen.direct_tls),
        "listen",
        "at least one of starttls or direct_tls must list an endpoint",
    )

    storeData = _table(data, "store", "")
    _noUnknownKeys(storeData, {"sqlite"}, "store.")
    store = StoreConfig(sqlite=path(_get(storeData, "sqlite", "store.", str, "xmppcert.sqlite")))

    saslData = _table(data, "sasl", "")
    _noUnknownKeys(saslData, {"mechanisms", "max_failures", "scram_iterations"}, "sasl.")
    saslDefaults = SASLConfig()
    mechanisms = _stringList(saslData, "mechanisms", "sasl.", saslDefaults.mechanisms)
    for name in mechanisms:
        _check(
            name in KNOWN_MECHANISMS,
            "sasl.mechanisms",
            f"unknown mechanism {name!r} (known: {', '.join(KNOWN_MECHANISMS)})",
        )
    _check(len(set(mechanisms)) == len(mechanisms), "sasl.mechanisms", "lists a mechanism twice")
    _check(bool(mechanisms), "sasl.mechanisms", "must enable at least one mechanism")
    sasl = SASLConfig(
        mechanisms=mechanisms,
        max_failures=_get(
            saslData, "max_failures", "sasl.", int, saslDefaults.max_failures,
            lambda v: 1 <= v <= 10, "an integer from 1 to 10",
        ),
        scram_iterations=_get(
            saslData, "scram_iterations", "sasl.", int, saslDefaults.scram_iterations,
            lambda v: 4096 <= v <= 10_000_000, "an integer of at least 4096",
        ),
    )

    limitsData = _table(data, "limits", "")
    _noUnknownKeys(
        limitsData,
        {
            "max_stanza_size", "max_stanza_elements", "handshake_timeout", "auth_timeout",
            "max_unauthenticated_per_address", "listen_backlog", "login_failure_max_delay",
            "max_failures_per_account_address", "max_failures_per_account", "lockout_time",
            "command_session_timeout",
        },
        "limits.",
    )
    limitDefaults = LimitsConfig()

    def limit(key: str, kind: type | tuple[type, ...], low: float, high: float, hint: str) -> Any:
        value = _get(
            limitsData, key, "limits.", kind, getattr(limitDefaults, key),
            lambda v: low <= v <= high, hint,
        )
        return value if kind is int else float(value)

    number = (int, float)
    limits = LimitsConfig(
        max_stanza_size=limit(
            "max_stanza_size", int, 10_000, 16 * 1024 * 1024, "an integer from 10000 to 16777216"
        ),
        max_stanza_elements=limit("max_stanza_elements", int, 10, 100_000, "an integer from 10 to 100000"),
        handshake_timeout=limit("handshake_timeout", number, 1, 300, "a number of seconds from 1 to 300"),
        auth_timeout=limit("auth_timeout", number, 1, 3600, "a number of seconds from 1 to 3600"),
        max_unauthenticated_per_address=limit(
            "max_unauthenticated_per_address", int, 1, 10_000, "an integer from 1 to 10000"
        ),
        listen_backlog=limit("listen_backlog", int, 1, 65535, "an integer from 1 to 65535"),
        login_failure_max_delay=limit(
            "login_failure_max_delay", number, 0, 60, "a number of seconds from 0 (no delay) to 60"
        ),
        max_failures_per_account_address=limit(
            "max_failures_per_account_address", int, 0, 10_000, "an integer from 0 (no lockout) to 10000"
        ),
        max_failures_per_account=limit(
            "max_failures_per_account", int, 0, 1_000_000, "an integer from 0 (no lockout) to 1000000"
        ),
        lockout_time=limit("lockout_time", number, 1, 86400, "a number of seconds from 1 to 86400"),
        command_session_timeout=limit(
            "command_session_timeout", number, 1, 86400, "a number of seconds from 1 to 86400"
        ),
    )

    certData = _table(data, "certificates", "")
    _noUnknownKeys(
        certData,
        {
            "policy", "checkers", "require_xmppaddr", "ca_bundle", "ca",
            "max_per_account", "prune_expired_after", "revocation_poll_interval",
            "session_check_interval",
        },
        "certificates.",
    )
    certDefaults = CertificatesConfig()
    checkerNames = _stringList(certData, "checkers", "certificates.", certDefaults.checkers)
    for name in checkerNames:
        _check(
            name in BUILTIN_CHECKERS or _isDottedName(name),
            "certificates.checkers",
            f"{name!r} is neither a built-in checker ({', '.join(BUILTIN_CHECKERS)}) nor a dotted name",
        )
        _check(
            checkerNames.count(name) == 1,
            "certificates.checkers",
            f"lists {name!r} twice; the list is an order of preference (the first checker that"
            " accepts a certificate decides the login), so each checker appears once",
        )
    cas = _caEntries(certData, domains, path, "ca" in checkerNames)
    legacyBundle = _get(certData, "ca_bundle", "certificates.", str, "")
    certificates = CertificatesConfig(
        policy=_get(
            certData, "policy", "certificates.", str, certDefaults.policy,
            lambda v: v in ("disabled", "wanted", "needed"), "one of disabled, wanted, needed",
        ),
        checkers=checkerNames,
        require_xmppaddr=_get(certData, "require_xmppaddr", "certificates.", bool, True),
        ca=cas,
        ca_bundle=path(legacyBundle) if legacyBundle else None,
        max_per_account=_get(
            certData, "max_per_account", "certificates.", int, certDefaults.max_per_account,
            lambda v: 0 <= v <= 10_000, "an integer from 0 (no limit) to 10000",
        ),
        prune_expired_after=float(_get(
            certData, "prune_expired_after", "certificates.", (int, float), certDefaults.prune_expired_after,
            lambda v: 0 <= v <= 36500, "a number of days from 0 (never) to 36500",
        )),
        revocation_poll_interval=float(_get(
            certData, "revocation_poll_interval", "certificates.", (int, float),
            certDefaults.revocation_poll_interval,
            lambda v: 0.1 <= v <= 3600, "a number of seconds from 0.1 to 3600",
        )),
        session_check_interval=float(_get(
            certData, "session_check_interval", "certificates.", (int, float),
            certDefaults.session_check_interval,
            lambda v: 1 <= v <= 86400, "a number of seconds from 1 to 86400",
        )),
    )
    _check(
        "ca" not in checkerNames or bool(cas),
        "certificates.checkers",
        'the ca checker needs at least one [[certificates.ca]] with bundle and domains',
    )
    _check(
        not cas or "ca" in checkerNames,
        "certificates.ca",
        'CAs are configured but "ca" is not in certificates.checkers: add it, or remove the CAs',
    )
    if "EXTERNAL" in mechanisms:
        _check(
            certificates.policy != "disabled",
            "sasl.mechanisms",
            "EXTERNAL needs certificates.policy wanted or needed",
        )
        _check(
            bool(certificates.checkers),
            "certificates.checkers",
            "EXTERNAL needs at least one checker (remove EXTERNAL from sasl.mechanisms to turn it off)",
        )

    metricsData = _table(data, "metrics", "")
    _noUnknownKeys(metricsData, {"listen"}, "metrics.")
    metricsListen = metricsData.get("listen", [])
    if isinstance(metricsListen, str):
        # One endpoint may be given as a plain string.
        metricsListen = [metricsListen]
    _check(
        isinstance(metricsListen, list) and all(isinstance(d, str) and d for d in metricsListen),
        "metrics.listen",
        f"must be an endpoint description or a list of them, not {metricsData.get('listen')!r}",
    )
    _check(len(set(metricsListen)) == len(metricsListen), "metrics.listen", "lists an endpoint twice")
    metrics = MetricsConfig(listen=tuple(metricsListen))
    for description in metrics.listen:
        _checkEndpoint("metrics.listen", description, "the metrics are plain HTTP")

    http = _httpConfig(_table(data, "http", ""), path)
    im = _imConfig(_table(data, "im", ""))

    controlData = _table(data, "control", "")
    _noUnknownKeys(controlData, {"socket"}, "control.")
    controlSocket = _get(controlData, "socket", "control.", str, "control.sock")
    control = ControlConfig(socket=path(controlSocket) if controlSocket else None)

    logLevel = _get(data, "log_level", "", str, "info", lambda v: v in LOG_LEVELS, "one of " + ", ".join(LOG_LEVELS))
    logFormat = _get(
        data, "log_format", "", str, "text", lambda v: v in LOG_FORMATS, "one of " + ", ".join(LOG_FORMATS)
    )
    keepalive = float(_get(
        data, "keepalive_interval", "", (int, float), 0,
        lambda v: v == 0 or 5 <= v <= 3600, "0 or a number of seconds from 5 to 3600",
    ))

    admins = tuple(dict.fromkeys(_admin(a, domains) for a in _stringList(data, "admins", "", [])))

    return Config(
        domains=domains,
        data_dir=dataDir,
        tls=tls,
        store=store,
        listen=listen,
        sasl=sasl,
        limits=limits,
        certificates=certificates,
        metrics=metrics,
        http=http,
        im=im,
        control=control,
        log_level=logLevel,
        keepalive_interval=keepalive,
        log_format=logFormat,
        admins=admins,
    )


def _admin(value: str, domains: tuple[str, ...]) -> str:
    try:
        parsed = parseJID(value)
    except jid.InvalidFormat as e:
        raise ConfigError(f"admins: {value!r} is not a JID: {e}") from None
    _check(
        parsed.user is not None and parsed.resource is None,
        "admins",
        f"{value!r} is not a bare JID such as admin@{domains[0]}",
    )
    _check(parsed.host in domains, "admins", f"{value!r} is not on a served domain ({', '.join(domains)})")
    return parsed.userhost()


def _origin(value: str) -> str:
    # An origin is scheme://host[:port] (RFC 6454), compared as browsers
    # send it: lower case, no path, no trailing slash.
    if value == "*":
        return value
    scheme, sep, rest = value.rstrip("/").partition("://")
    _check(
        bool(sep) and scheme in ("http", "https") and bool(rest) and "/" not in rest and " " not in rest,
        "http.allowed_origins",
        f"{value!r} is not an origin such as https://chat.example.com (or \"*\")",
    )
    # Browsers leave out the scheme's default port.
    default = {"https": ":443", "http": ":80"}[scheme]
    if rest.endswith(default):
        rest = rest[: -len(default)]
    return f"{scheme}://{rest}".lower()


def _httpConfig(data: Mapping[str, Any], path: Callable[[str], Path]) -> HTTPConfig:
    _noUnknownKeys(
        data,
        {
            "allowed_origins", "certificate", "key", "max_body_size", "max_websocket_message",
            "websocket_ping_interval", "bosh_max_sessions", "bosh_max_wait", "bosh_max_hold",
            "bosh_max_inactivity", "bosh_polling",
        },
        "http.",
    )
    defaults = HTTPConfig()
    origins = tuple(dict.fromkeys(_origin(o) for o in _stringList(data, "allowed_origins", "http.", ())))
    certificate = _get(data, "certificate", "http.", str, "")
    key = _get(data, "key", "http.", str, "")
    _check(bool(certificate) == bool(key), "http.certificate", "give both certificate and key, or neither")

    def number(name: str, kind: Any, low: float, high: float, what: str) -> Any:
        return _get(
            data, name, "http.", kind, getattr(defaults, name), lambda v: low <= v <= high, what
        )

    return HTTPConfig(
        allowed_origins=origins,
        certificate=path(certificate) if certificate else None,
        key=path(key) if key else None,
        max_body_size=number("max_body_size", int, 1024, 64 * 1024 * 1024, "bytes from 1024 to 67108864"),
        max_websocket_message=number(
            "max_websocket_message", int, 1024, 64 * 1024 * 1024, "bytes from 1024 to 67108864"
        ),
        websocket_ping_interval=float(number(
            "websocket_ping_interval", (int, float), 0, 3600, "0 or a number of seconds up to 3600"
        )),
        bosh_max_sessions=number("bosh_max_sessions", int, 0, 10_000_000, "an integer from 0 (no BOSH)"),
        bosh_max_wait=float(number("bosh_max_wait", (int, float), 1, 3600, "seconds from 1 to 3600")),
        bosh_max_hold=number("bosh_max_hold", int, 0, 16, "an integer from 0 to 16"),
        bosh_max_inactivity=float(number(
            "bosh_max_inactivity", (int, float), 5, 3600, "seconds from 5 to 3600"
        )),
        bosh_polling=float(number("bosh_polling", (int, float), 0, 600, "seconds from 0 to 600")),
    )


def _imConfig(data: Mapping[str, Any]) -> IMConfig:
    _noUnknownKeys(
        data,
        {
            "max_roster_items", "max_offline_messages", "max_blocked", "presence_rate", "presence_burst",
            "max_vcard_bytes", "max_private_fragment_bytes", "max_private_bytes",
            "max_pep_nodes", "max_pep_items", "max_pep_item_bytes", "max_pep_bytes", "caps_cache_size",
        },
        "im.",
    )
    defaults = IMConfig()

    def number(name: str, kind: Any, low: float, high: float, what: str) -> Any:
        return _get(data, name, "im.", kind, getattr(defaults, name), lambda v: low <= v <= high, what)

    return IMConfig(
        max_roster_items=number("max_roster_items", int, 1, 100_000, "an integer from 1 to 100000"),
        max_offline_messages=number("max_offline_messages", int, 0, 100_000, "an integer from 0 to 100000"),
        max_blocked=number("max_blocked", int, 1, 100_000, "an integer from 1 to 100000"),
        presence_rate=float(number("presence_rate", (int, float), 0.1, 1000, "a number from 0.1 to 1000")),
        presence_burst=number("presence_burst", int, 1, 10_000, "an integer from 1 to 10000"),
        max_vcard_bytes=number("max_vcard_bytes", int, 1024, 16 * 1024 * 1024, "bytes from 1024 to 16777216"),
        max_private_fragment_bytes=number(
            "max_private_fragment_bytes", int, 1024, 16 * 1024 * 1024, "bytes from 1024 to 16777216"
        ),
        max_private_bytes=number("max_private_bytes", int, 1024, 256 * 1024 * 1024, "bytes from 1024 to 268435456"),
        max_pep_nodes=number("max_pep_nodes", int, 1, 100_000, "an integer from 1 to 100000"),
        max_pep_items=number("max_pep_items", int, 1, 100_000, "an integer from 1 to 100000"),
        max_pep_item_bytes=number("max_pep_item_bytes", int, 1024, 16 * 1024 * 1024, "bytes from 1024 to 16777216"),
        max_pep_bytes=number(
            "max_pep_bytes", int, 64 * 1024, 4 * 1024 * 1024 * 1024, "bytes from 65536 to 4294967296"
        ),
        caps_cache_size=number("caps_cache_size", int, 10, 1_000_000, "an integer from 10 to 1000000"),
    )


def loadConfig(path: Path | str) -> Config:
    """
    Read and validate a TOML configuration file.

    @raise ConfigError: the file is missing, is not TOML, or has a bad value.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    return configFromDict(data, path.resolve().parent)


def defaultConfigText(domain: str = "localhost") -> str:
    """
    The configuration written by C{xmppcert init}: every key with its default,
    so that an operator can see and edit it.
    """
    limits = LimitsConfig()
    sasl = SASLConfig()
    listen = ListenConfig()
    http = HTTPConfig()
    im = IMConfig()

    def strings(values: tuple[str, ...]) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    return f"""\
# xmppcert configuration; every key is described in docs/configuration.md.
domains = ["{domain}"]
# Relative to the directory of this file.
data_dir = "."
log_level = "info"
# "text", or "json": one JSON object a line on stdout (journal, log shippers).
log_format = "text"
keepalive_interval = 0
# Accounts that may administer the server from a client (XEP-0133 ad-hoc
# commands, certificates of any account), e.g. ["admin@{domain}"].
admins = []

[tls]
# Relative to data_dir.
certificate = "server.crt"
key = "server.key"
# "1.2" or "1.3". Under TLS 1.2 the client certificate, and the JID in it,
# is visible to anyone on the path; prefer "1.3" where clients allow.
min_version = "1.2"

[listen]
starttls = {strings(listen.starttls)}
direct_tls = {strings(listen.direct_tls)}
# HTTPS for web clients: BOSH, WebSocket, host-meta (see [http]).
https = {strings(listen.https)}

[store]
sqlite = "xmppcert.sqlite"

[sasl]
mechanisms = {strings(sasl.mechanisms)}
max_failures = {sasl.max_failures}
scram_iterations = {sasl.scram_iterations}

[certificates]
# disabled | wanted | needed
policy = "wanted"
# A certificate disabled or revoked in the store never logs in. Then these
# are tried in order, the first that accepts decides: "stored", "ca", or
# the dotted name of a checker factory.
checkers = ["stored"]
require_xmppaddr = true
# A client CA, bound to the domains it may vouch for (add "ca" to checkers):
# [[certificates.ca]]
# bundle = "ca.pem"
# domains = ["{domain}"]
# crls = ["ca.crl"]        # reloaded when they change
# fetch_crls = true        # from the certificates' distribution points
# crl_failure = "soft"     # or "hard": refuse when no CRL can be had
# XEP-0257: enabled certificates per account (0: no limit), days after
# expiry before a certificate is removed (0: never), how often to look
# for revocations made by the CLI or another node, and how often to check
# that live sessions' certificates and accounts were not removed.
max_per_account = 32
prune_expired_after = 90
revocation_poll_interval = 2
session_check_interval = 30

[limits]
max_stanza_size = {limits.max_stanza_size}
max_stanza_elements = {limits.max_stanza_elements}
# Seconds to finish TLS and send the stream header; to log in and bind.
handshake_timeout = {limits.handshake_timeout:g}
auth_timeout = {limits.auth_timeout:g}
# Connections from one address (IPv6: one /64) not yet logged in.
max_unauthenticated_per_address = {limits.max_unauthenticated_per_address}
# For listeners whose description does not say backlog=.
listen_backlog = {limits.listen_backlog}
# Failed logins: the longest an answer waits (seconds), the failures that
# lock password logins to an account from one address and from anywhere
# (0: never), and how long a lockout lasts (seconds).
login_failure_max_delay = {limits.login_failure_max_delay:g}
max_failures_per_account_address = {limits.max_failures_per_account_address}
max_failures_per_account = {limits.max_failures_per_account}
lockout_time = {limits.lockout_time:g}
# Seconds an ad-hoc command (XEP-0050) may wait for the next step.
command_session_timeout = {limits.command_session_timeout:g}

[metrics]
# Prometheus metrics at /metrics over HTTP, served on these endpoints;
# none by default. Keep them on loopback or a private network, e.g.
# listen = ["tcp:9090:interface=127.0.0.1"]
listen = []

[http]
# Web pages (origins such as "https://chat.example.com") that may log in
# through BOSH and WebSocket; none by default. Clients that are not pages
# in a browser send no Origin and are always served. See docs/web.md.
allowed_origins = []
# The HTTPS certificate and key; by default those of [tls].
# certificate = "web.crt"
# key = "web.key"
max_body_size = {http.max_body_size}
max_websocket_message = {http.max_websocket_message}
websocket_ping_interval = {http.websocket_ping_interval:g}
bosh_max_sessions = {http.bosh_max_sessions}
bosh_max_wait = {http.bosh_max_wait:g}
bosh_max_hold = {http.bosh_max_hold}
bosh_max_inactivity = {http.bosh_max_inactivity:g}
bosh_polling = {http.bosh_polling:g}

[im]
# Contacts per roster, messages kept for an offline account (0: none),
# JIDs per block list; presence a session may send per second on average,
# and at once.
max_roster_items = {im.max_roster_items}
max_offline_messages = {im.max_offline_messages}
max_blocked = {im.max_blocked}
presence_rate = {im.presence_rate:g}
presence_burst = {im.presence_burst}
# Bytes of a vCard, of one namespace of private XML, and of an account's
# private XML together.
max_vcard_bytes = {im.max_vcard_bytes}
max_private_fragment_bytes = {im.max_private_fragment_bytes}
max_private_bytes = {im.max_private_bytes}
# Personal eventing (PEP): nodes per account, items a node keeps, bytes of
# one item and of an account's items together; verified client
# capabilities kept in memory.
max_pep_nodes = {im.max_pep_nodes}
max_pep_items = {im.max_pep_items}
max_pep_item_bytes = {im.max_pep_item_bytes}
max_pep_bytes = {im.max_pep_bytes}
caps_cache_size = {im.caps_cache_size}

[control]
# The UNIX socket (mode 0600; relative to data_dir) through which the
# xmppcert command reaches the running server: status, sessions, kick,
# and locks, password changes and revocations that take effect at once.
# "" turns it off.
socket = "control.sock"
"""


__all__ = [
    "CAConfig",
    "CertificatesConfig",
    "Config",
    "ConfigError",
    "ControlConfig",
    "HTTPConfig",
    "IMConfig",
    "LimitsConfig",
    "ListenConfig",
    "MetricsConfig",
    "SASLConfig",
    "StoreConfig",
    "TLSConfig",
    "configFromDict",
    "defaultConfigText",
    "loadConfig",
]
