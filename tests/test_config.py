"""
Tests for L{xmppcert.config}: defaults, validation errors that name their
key, path resolution, the generated default file, and loading.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from xmppcert.config import (
    KNOWN_MECHANISMS,
    CAConfig,
    Config,
    ConfigError,
    LimitsConfig,
    ListenConfig,
    SASLConfig,
    configFromDict,
    defaultConfigText,
    loadConfig,
)

TOP_LEVEL_SCALARS = {"domains", "data_dir", "log_level", "keepalive_interval", "log_format", "admins"}
#: Every table of the file, from the Config dataclass itself.
TABLES = [f.name for f in dataclasses.fields(Config) if f.name not in TOP_LEVEL_SCALARS]


def build(**data: Any) -> Config:
    document: dict[str, Any] = {"domains": ["example.com"]}
    document.update(data)
    return configFromDict(document, Path("/srv/xmpp"))


def assertNames(key: str, **data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        build(**data)
    message = str(info.value)
    assert message.startswith(key + ":"), message
    return message


def test_defaults() -> None:
    """
    Configuration: only 'domains' is required; everything else has the
    documented default, with files in the directory of the configuration.
    """
    config = configFromDict({"domains": ["example.com"]}, Path("/srv/xmpp"))
    assert config.domains == ("example.com",)
    assert config.data_dir == Path("/srv/xmpp")
    assert config.tls.certificate == Path("/srv/xmpp/server.crt")
    assert config.tls.key == Path("/srv/xmpp/server.key")
    assert config.store.sqlite == Path("/srv/xmpp/xmppcert.sqlite")
    assert config.listen == ListenConfig()
    assert config.listen.starttls == ("tcp:5222:interface=127.0.0.1",)
    assert config.listen.direct_tls == ("tcp:5223:interface=127.0.0.1",)
    assert config.sasl == SASLConfig()
    assert config.sasl.mechanisms == KNOWN_MECHANISMS
    assert (config.sasl.max_failures, config.sasl.scram_iterations) == (3, 4096)
    assert config.limits == LimitsConfig()
    assert (config.limits.max_stanza_size, config.limits.max_stanza_elements) == (256 * 1024, 2000)
    assert config.limits.auth_timeout == 30.0
    assert config.log_level == "info"
    assert config.keepalive_interval == 0.0


def test_limitsDefaults() -> None:
    """
    limits.handshake_timeout, auth_timeout, max_unauthenticated_per_address,
    listen_backlog and the failed-login throttle have their documented
    defaults (auth_timeout 30 s since hostile clients got their own limits).
    """
    limits = build().limits
    assert limits.handshake_timeout == 10.0
    assert limits.auth_timeout == 30.0
    assert limits.max_unauthenticated_per_address == 20
    assert limits.listen_backlog == 511
    assert limits.login_failure_max_delay == 3.0
    assert limits.max_failures_per_account_address == 5
    assert limits.max_failures_per_account == 20
    assert limits.lockout_time == 300.0


def test_limitsNumbersAreFloats() -> None:
    """
    Configuration: the seconds of [limits] may be written as integers and
    are floats; the counts stay integers.
    """
    limits = build(
        limits={"handshake_timeout": 2, "login_failure_max_delay": 1, "lockout_time": 60, "listen_backlog": 128}
    ).limits
    assert (limits.handshake_timeout, limits.login_failure_max_delay, limits.lockout_time) == (2.0, 1.0, 60.0)
    assert all(isinstance(v, float) for v in (limits.handshake_timeout, limits.login_failure_max_delay))
    assert isinstance(limits.lockout_time, float)
    assert limits.listen_backlog == 128 and isinstance(limits.listen_backlog, int)


def test_domainsNormalised() -> None:
    """
    RFC 7622 §3.2: domains are prepared (lower case) and listed once.
    """
    assert build(domains=["EXAMPLE.com", "example.com", "Chat.Example.com"]).domains == (
        "example.com",
        "chat.example.com",
    )


def test_numbersAccepted() -> None:
    """
    Configuration: seconds may be integers or floats; integers stay integers.
    """
    config = build(limits={"auth_timeout": 30}, keepalive_interval=12.5, sasl={"max_failures": 5})
    assert config.limits.auth_timeout == 30.0
    assert isinstance(config.limits.auth_timeout, float)
    assert config.keepalive_interval == 12.5
    assert config.sasl.max_failures == 5


def test_replace() -> None:
    """
    Config.replace returns a changed copy.
    """
    config = build()
    changed = config.replace(log_level="debug")
    assert changed.log_level == "debug"
    assert config.log_level == "info"


# --- validation -----------------------------------------------------------


def test_unknownTopLevelKey() -> None:
    """
    Configuration errors name the key: an unknown top-level key.
    """
    assert "unknown key" in assertNames("colour", colour="blue")


@pytest.mark.parametrize("table", TABLES)
def test_unknownKeyInTable(table: str) -> None:
    """
    Configuration errors name the key: an unknown key in every table is
    refused as table.key.
    """
    assert "unknown key" in assertNames(f"{table}.colour", **{table: {"colour": "blue"}})


@pytest.mark.parametrize("table", TABLES)
def test_tableNotATable(table: str) -> None:
    """
    Configuration errors name the key: a table given as a value.
    """
    assertNames(table, **{table: "yes"})


@pytest.mark.parametrize(
    "key, data",
    [
        ("domains", {"domains": "example.com"}),
        ("domains", {"domains": [1]}),
        ("domains", {"domains": [""]}),
        ("data_dir", {"data_dir": 1}),
        ("log_level", {"log_level": 3}),
        ("keepalive_interval", {"keepalive_interval": "30"}),
        ("keepalive_interval", {"keepalive_interval": True}),
        ("tls.certificate", {"tls": {"certificate": 1}}),
        ("tls.key", {"tls": {"key": ["a"]}}),
        ("listen.starttls", {"listen": {"starttls": "tcp:5222"}}),
        ("listen.direct_tls", {"listen": {"direct_tls": [5223]}}),
        ("store.sqlite", {"store": {"sqlite": False}}),
        ("sasl.mechanisms", {"sasl": {"mechanisms": "PLAIN"}}),
        ("sasl.max_failures", {"sasl": {"max_failures": "3"}}),
        ("sasl.max_failures", {"sasl": {"max_failures": True}}),
        ("sasl.max_failures", {"sasl": {"max_failures": 2.5}}),
        ("sasl.scram_iterations", {"sasl": {"scram_iterations": True}}),
        ("limits.max_stanza_size", {"limits": {"max_stanza_size": 65536.0}}),
        ("limits.max_stanza_elements", {"limits": {"max_stanza_elements": False}}),
        ("limits.auth_timeout", {"limits": {"auth_timeout": True}}),
        ("limits.auth_timeout", {"limits": {"auth_timeout": "60"}}),
        ("limits.handshake_timeout", {"limits": {"handshake_timeout": True}}),
        ("limits.max_unauthenticated_per_address", {"limits": {"max_unauthenticated_per_address": 20.0}}),
        ("limits.listen_backlog", {"limits": {"listen_backlog": "511"}}),
        ("limits.login_failure_max_delay", {"limits": {"login_failure_max_delay": False}}),
        ("limits.max_failures_per_account_address", {"limits": {"max_failures_per_account_address": 5.5}}),
        ("limits.max_failures_per_account", {"limits": {"max_failures_per_account": "20"}}),
        ("limits.lockout_time", {"limits": {"lockout_time": [300]}}),
    ],
)
def test_wrongType(key: str, data: dict[str, Any]) -> None:
    """
    Configuration errors name the key: a value of the wrong type, including
    a boolean where a number is expected (TOML booleans are Python ints).
    """
    assertNames(key, **data)


@pytest.mark.parametrize(
    "key, data",
    [
        ("sasl.max_failures", {"sasl": {"max_failures": 0}}),
        ("sasl.max_failures", {"sasl": {"max_failures": 11}}),
        ("sasl.scram_iterations", {"sasl": {"scram_iterations": 4095}}),
        ("limits.max_stanza_size", {"limits": {"max_stanza_size": 9999}}),
        ("limits.max_stanza_size", {"limits": {"max_stanza_size": 16 * 1024 * 1024 + 1}}),
        ("limits.max_stanza_elements", {"limits": {"max_stanza_elements": 9}}),
        ("limits.auth_timeout", {"limits": {"auth_timeout": 0.5}}),
        ("limits.auth_timeout", {"limits": {"auth_timeout": 3601}}),
        ("limits.auth_timeout", {"limits": {"auth_timeout": float("nan")}}),
        ("limits.handshake_timeout", {"limits": {"handshake_timeout": 0.9}}),
        ("limits.handshake_timeout", {"limits": {"handshake_timeout": 301}}),
        ("limits.handshake_timeout", {"limits": {"handshake_timeout": float("nan")}}),
        ("limits.max_unauthenticated_per_address", {"limits": {"max_unauthenticated_per_address": 0}}),
        ("limits.max_unauthenticated_per_address", {"limits": {"max_unauthenticated_per_address": 10_001}}),
        ("limits.listen_backlog", {"limits": {"listen_backlog": 0}}),
        ("limits.listen_backlog", {"limits": {"listen_backlog": 65536}}),
        ("limits.login_failure_max_delay", {"limits": {"login_failure_max_delay": -0.1}}),
        ("limits.login_failure_max_delay", {"limits": {"login_failure_max_delay": 61}}),
        ("limits.max_failures_per_account_address", {"limits": {"max_failures_per_account_address": -1}}),
        ("limits.max_failures_per_account_address", {"limits": {"max_failures_per_account_address": 10_001}}),
        ("limits.max_failures_per_account", {"limits": {"max_failures_per_account": -1}}),
        ("limits.max_failures_per_account", {"limits": {"max_failures_per_account": 1_000_001}}),
        ("limits.lockout_time", {"limits": {"lockout_time": 0.5}}),
        ("limits.lockout_time", {"limits": {"lockout_time": 86401}}),
        ("keepalive_interval", {"keepalive_interval": 4}),
        ("keepalive_interval", {"keepalive_interval": -1}),
        ("keepalive_interval", {"keepalive_interval": 3601}),
        ("log_level", {"log_level": "verbose"}),
    ],
)
def test_outOfRange(key: str, data: dict[str, Any]) -> None:
    """
    Configuration errors name the key: a value outside its range.
    """
    assertNames(key, **data)


@pytest.mark.parametrize(
    "data",
    [
        {"sasl": {"max_failures": 1}},
        {"sasl": {"max_failures": 10}},
        {"sasl": {"scram_iterations": 4096}},
        {"limits": {"max_stanza_size": 10_000, "max_stanza_elements": 10, "auth_timeout": 1}},
        {"limits": {"auth_timeout": 3600}},
        {
            "limits": {
                "handshake_timeout": 1, "max_unauthenticated_per_address": 1, "listen_backlog": 1,
                "login_failure_max_delay": 0, "max_failures_per_account_address": 0,
                "max_failures_per_account": 0, "lockout_time": 1,
            }
        },
        {
            "limits": {
                "handshake_timeout": 300, "max_unauthenticated_per_address": 10_000,
                "listen_backlog": 65535, "login_failure_max_delay": 60,
                "max_failures_per_account_address": 10_000, "max_failures_per_account": 1_000_000,
                "lockout_time": 86400,
            }
        },
        {"keepalive_interval": 0},
        {"keepalive_interval": 5},
        {"keepalive_interval": 3600},
    ],
)
def test_rangeBoundaries(data: dict[str, Any]) -> None:
    """
    Configuration: the ends of each range are accepted.
    """
    build(**data)


def test_unknownMechanism() -> None:
    """
    Configuration errors name the key: an unknown SASL mechanism, with the
    known ones listed.
    """
    message = assertNames("sasl.mechanisms", sasl={"mechanisms": ["PLAIN", "DIGEST-MD5"]})
    assert "DIGEST-MD5" in message
    assert "SCRAM-SHA-256" in message


def test_duplicateMechanism() -> None:
    """
    Configuration errors name the key: a mechanism listed twice.
    """
    assertNames("sasl.mechanisms", sasl={"mechanisms": ["PLAIN", "SCRAM-SHA-1", "PLAIN"]})


def test_mechanismsOrderKept() -> None:
    """
    RFC 6120 §6.3.3: the configured order of mechanisms is kept.
    """
    assert build(sasl={"mechanisms": ["PLAIN", "SCRAM-SHA-1"]}).sasl.mechanisms == ("PLAIN", "SCRAM-SHA-1")


@pytest.mark.parametrize("domains", [[], None])
def test_noDomains(domains: list[str] | None) -> None:
    """
    Configuration errors name the key: at least one domain is required.
    """
    document: dict[str, Any] = {} if domains is None else {"domains": domains}
    with pytest.raises(ConfigError) as info:
        configFromDict(document, Path("/srv"))
    assert str(info.value).startswith("domains:")


@pytest.mark.parametrize("domain", ["alice@example.com", "example.com/resource", "exa mple.com"])
def test_domainNotAJID(domain: str) -> None:
    """
    Configuration errors name the key: a JID or invalid name where a bare
    domain is expected.
    """
    message = assertNames("domains", domains=[domain])
    assert repr(domain) in message


def test_noListeners() -> None:
    """
    Configuration errors name the key: with both listener lists empty the
    server could accept no client.
    """
    assertNames("listen", listen={"starttls": [], "direct_tls": []})
    assert build(listen={"starttls": []}).listen.starttls == ()


# --- paths ----------------------------------------------------------------


def test_relativePaths(tmp_path: Path) -> None:
    """
    Configuration: a relative data_dir is relative to the file's directory;
    other relative paths are relative to data_dir; absolute paths stay.
    """
    config = configFromDict(
        {
            "domains": ["example.com"],
            "data_dir": "var/../data",
            "tls": {"certificate": "certs/server.crt", "key": "/etc/xmpp/server.key"},
            "store": {"sqlite": "db/accounts.sqlite"},
        },
        tmp_path,
    )
    dataDir = (tmp_path / "data").resolve()
    assert config.data_dir == dataDir
    assert config.tls.certificate == dataDir / "certs" / "server.crt"
    assert config.tls.key == Path("/etc/xmpp/server.key")
    assert config.store.sqlite == dataDir / "db" / "accounts.sqlite"


def test_absoluteDataDir(tmp_path: Path) -> None:
    """
    Configuration: an absolute data_dir does not depend on the file's place.
    """
    config = configFromDict({"domains": ["example.com"], "data_dir": str(tmp_path)}, Path("/elsewhere"))
    assert config.data_dir == tmp_path
    assert config.store.sqlite == tmp_path / "xmppcert.sqlite"


def test_loadConfigRelativeToFile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Configuration: loadConfig resolves paths against the file's directory,
    whatever the working directory.
    """
    directory = tmp_path / "etc"
    directory.mkdir()
    (directory / "xmppcert.toml").write_text('domains = ["example.com"]\ndata_dir = "data"\n')
    monkeypatch.chdir(tmp_path)
    config = loadConfig("etc/xmppcert.toml")
    assert config.data_dir == (directory / "data").resolve()
    assert config.tls.certificate == (directory / "data" / "server.crt").resolve()


# --- the default file and loading -----------------------------------------


@pytest.mark.parametrize("domain", ["localhost", "example.org"])
def test_defaultConfigText(tmp_path: Path, domain: str) -> None:
    """
    Configuration: the file written by 'xmppcert init' parses back into the
    defaults (for its domain, with files next to it).
    """
    path = tmp_path / "xmppcert.toml"
    path.write_text(defaultConfigText(domain))
    assert loadConfig(path) == configFromDict({"domains": [domain]}, tmp_path.resolve())


def test_caEntries() -> None:
    """
    [[certificates.ca]]: each CA is bound to the served domains it may
    vouch for, with its CRL files (relative to data_dir), whether to fetch
    distribution points, and the failure policy.
    """
    config = build(
        domains=["example.com", "corp.example"],
        certificates={
            "checkers": ["ca", "stored"],
            "ca": [
                {"bundle": "corp.pem", "domains": ["Corp.Example"], "crls": ["corp.crl"],
                 "fetch_crls": False, "crl_failure": "hard"},
                {"bundle": "/etc/other.pem", "domains": ["example.com"]},
            ],
        },
    )
    corp, other = config.certificates.ca
    assert corp == CAConfig(
        bundle=Path("/srv/xmpp/corp.pem"), domains=("corp.example",), crls=(Path("/srv/xmpp/corp.crl"),),
        fetch_crls=False, crl_failure="hard",
    )
    assert other == CAConfig(bundle=Path("/etc/other.pem"), domains=("example.com",))
    assert (other.fetch_crls, other.crl_failure) == (True, "soft")


def test_legacyCABundle() -> None:
    """
    A configuration written for the first release keeps working: with one
    served domain, ca_bundle is a CA for that domain; with several, the
    server refuses it with one line saying what to write instead.
    """
    config = build(certificates={"checkers": ["ca"], "ca_bundle": "ca.pem"})
    assert config.certificates.ca == (CAConfig(Path("/srv/xmpp/ca.pem"), ("example.com",)),)
    # For custom checkers that read it, with any number of domains.
    config = build(
        domains=["example.com", "corp.example"],
        certificates={"checkers": ["stored", "company.checker"], "ca_bundle": "ca.pem"},
    )
    assert (config.certificates.ca, config.certificates.ca_bundle) == ((), Path("/srv/xmpp/ca.pem"))
    message = assertNames(
        "certificates.ca_bundle",
        domains=["example.com", "corp.example"],
        certificates={"checkers": ["ca"], "ca_bundle": "ca.pem"},
    )
    assert "\n" not in message and '[[certificates.ca]] bundle = "ca.pem" domains = [' in message


def test_tlsMinVersion() -> None:
    """
    tls.min_version: "1.2" by default, "1.3" on request.
    """
    assert build().tls.min_version == "1.2"
    assert build(tls={"min_version": "1.3"}).tls.min_version == "1.3"


def test_firstReleaseConfigStillLoads(tmp_path: Path) -> None:
    """
    A configuration file as the first release's `xmppcert init` wrote it
    loads unchanged.
    """
    path = tmp_path / "xmppcert.toml"
    path.write_text(FIRST_RELEASE_CONFIG)
    config = loadConfig(path)
    assert config.domains == ("localhost",)
    assert config.certificates.checkers == ("stored",)


#: What the first release's `xmppcert init` wrote (version 0.1.0).
FIRST_RELEASE_CONFIG = """\
# xmppcert configuration; every key is described in docs/configuration.md.
domains = ["localhost"]
# Relative to the directory of this file.
data_dir = "."
log_level = "info"
keepalive_interval = 0

[tls]
# Relative to data_dir.
certificate = "server.crt"
key = "server.key"

[listen]
starttls = ["tcp:5222:interface=127.0.0.1"]
direct_tls = ["tcp:5223:interface=127.0.0.1"]

[store]
sqlite = "xmppcert.sqlite"

[sasl]
mechanisms = ["EXTERNAL", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
max_failures = 3
scram_iterations = 4096

[certificates]
# disabled | wanted | needed
policy = "wanted"
# Tried in order: "stored", "ca", or the dotted name of a checker factory.
checkers = ["stored"]
require_xmppaddr = true
# ca_bundle = "ca.pem"
# XEP-0257: enabled certificates per account (0: no limit), days after
# expiry before a certificate is removed (0: never), how often to look
# for revocations made by the CLI or another node, and how often to check
# that live sessions' certificates and accounts were not removed.
max_per_account = 32
prune_expired_after = 90
revocation_poll_interval = 2
session_check_interval = 30

[limits]
max_stanza_size = 262144
max_stanza_elements = 2000
auth_timeout = 60
"""


def test_loadConfigMissing(tmp_path: Path) -> None:
    """
    Configuration: a missing file raises ConfigError naming the file.
    """
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        loadConfig(path)
    assert str(path) in str(info.value)
    assert "cannot read" in str(info.value)


@pytest.mark.parametrize("content", [b"domains = [", b"domains = ['a'\n[tls\n", b"\xff\xfe"])
def test_loadConfigInvalidTOML(tmp_path: Path, content: bytes) -> None:
    """
    Configuration: a file that is not TOML (or not UTF-8) raises
    ConfigError naming the file.
    """
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        loadConfig(path)
    assert str(path) in str(info.value)
    assert "not valid TOML" in str(info.value)


def test_loadConfigInvalidValue(tmp_path: Path) -> None:
    """
    Configuration: loadConfig validates, naming the key.
    """
    path = tmp_path / "xmppcert.toml"
    path.write_text('domains = ["example.com"]\n[sasl]\nmax_failures = true\n')
    with pytest.raises(ConfigError) as info:
        loadConfig(path)
    assert str(info.value).startswith("sasl.max_failures:")


# --- [certificates] ---------------------------------------------------------


def test_certificateDefaults() -> None:
    """
    Configuration: certificate login works out of the box: policy wanted,
    the stored checker, xmppAddrs required, and the documented intervals.
    """
    certificates = build().certificates
    assert certificates.policy == "wanted"
    assert certificates.checkers == ("stored",)
    assert certificates.require_xmppaddr is True
    assert certificates.ca == ()
    assert certificates.max_per_account == 32
    assert certificates.revocation_poll_interval == 2.0
    assert certificates.session_check_interval == 30.0


@pytest.mark.parametrize(
    "key, data",
    [
        ("certificates.policy", {"certificates": {"policy": "sometimes"}}),
        ("certificates.checkers", {"certificates": {"checkers": ["no such"]}}),
        ("certificates.checkers", {"certificates": {"checkers": []}}),
        ("certificates.checkers", {"certificates": {"checkers": ["ca"]}}),
        ("certificates.checkers", {"certificates": {"checkers": ["stored", "ca", "stored"]}}),
        ("certificates.ca", {"certificates": {"ca": [{"bundle": "ca.pem", "domains": ["example.com"]}]}}),
        ("certificates.ca", {"certificates": {"checkers": ["ca"], "ca": {"bundle": "ca.pem"}}}),
        ("certificates.ca[0].domains", {"certificates": {"checkers": ["ca"], "ca": [{"bundle": "ca.pem"}]}}),
        ("certificates.ca[0].bundle", {"certificates": {"checkers": ["ca"], "ca": [{"domains": ["example.com"]}]}}),
        (
            "certificates.ca[0].domains",
            {"certificates": {"checkers": ["ca"], "ca": [{"bundle": "a", "domains": ["other.example"]}]}},
        ),
        (
            "certificates.ca[0].crl_failure",
            {"certificates": {"checkers": ["ca"], "ca": [{"bundle": "a", "domains": ["example.com"], "crl_failure": "x"}]}},
        ),
        (
            "certificates.ca[0].surprise",
            {"certificates": {"checkers": ["ca"], "ca": [{"bundle": "a", "domains": ["example.com"], "surprise": 1}]}},
        ),
        ("tls.min_version", {"tls": {"min_version": "1.1"}}),
        ("tls.min_version", {"tls": {"min_version": 1.3}}),
        ("certificates.max_per_account", {"certificates": {"max_per_account": -1}}),
        ("certificates.revocation_poll_interval", {"certificates": {"revocation_poll_interval": 0}}),
        ("certificates.session_check_interval", {"certificates": {"session_check_interval": 0.5}}),
        ("certificates.session_check_interval", {"certificates": {"session_check_interval": 86401}}),
        ("sasl.mechanisms", {"certificates": {"policy": "disabled"}}),
    ],
)
def test_certificateErrors(key: str, data: dict[str, Any]) -> None:
    """
    Configuration errors name the key: bad [certificates] values, a ca
    checker without a bundle, and EXTERNAL with no way to accept a
    certificate (no checker, or TLS never asking for one).
    """
    assertNames(key, **data)


def test_certificatesWithoutExternal() -> None:
    """
    Configuration: with EXTERNAL off, certificate requests may be disabled
    and the checker list empty.
    """
    config = build(sasl={"mechanisms": ["SCRAM-SHA-256"]}, certificates={"policy": "disabled", "checkers": []})
    assert config.certificates.checkers == ()


def test_metricsListen() -> None:
    """
    [metrics] listen: off (no endpoint) by default; one endpoint as a
    string or several as a list, each a tcp:/tcp6:/unix: description.
    """
    from xmppcert.config import MetricsConfig

    assert build().metrics == MetricsConfig(listen=())
    assert build(metrics={"listen": []}).metrics.listen == ()
    one = build(metrics={"listen": "tcp:9090:interface=127.0.0.1"})
    assert one.metrics.listen == ("tcp:9090:interface=127.0.0.1",)
    several = build(metrics={"listen": ["tcp:9090:interface=127.0.0.1", "unix:/run/xmppcert/metrics.sock"]})
    assert several.metrics.listen == ("tcp:9090:interface=127.0.0.1", "unix:/run/xmppcert/metrics.sock")


@pytest.mark.parametrize(
    "listen, message",
    [
        (9090, "must be an endpoint description or a list of them"),
        ("", "must be an endpoint description or a list of them"),
        (["tcp:9090", 9091], "must be an endpoint description or a list of them"),
        (["bogus:1"], "is not a server endpoint description"),
        (["ssl:9090"], "is not a server endpoint description"),
        (["tcp:9090", "tcp:9090"], "lists an endpoint twice"),
    ],
)
def test_metricsListenErrors(listen: Any, message: str) -> None:
    """
    Configuration errors name the key: a [metrics] listen that is not an
    endpoint description (or a list of them), one Twisted cannot parse or
    that is not plain tcp:/unix:, or the same endpoint twice.
    """
    assert message in assertNames("metrics.listen", metrics={"listen": listen})


def test_metricsListenTLSEndpointRefused(tmp_path: Path) -> None:
    """
    [metrics] listen: a TLS endpoint that parses is still refused, with a
    hint that the metrics are plain HTTP.
    """
    from xmppcert.x509 import writeServerCertificate

    writeServerCertificate(tmp_path / "server.crt", tmp_path / "server.key", ["localhost"])
    pem = tmp_path / "server.pem"
    pem.write_bytes((tmp_path / "server.key").read_bytes() + (tmp_path / "server.crt").read_bytes())
    message = assertNames("metrics.listen", metrics={"listen": f"ssl:9090:privateKey={pem}"})
    assert "the metrics are plain HTTP" in message


def test_controlSocket() -> None:
    """
    [control] socket: the control channel's UNIX socket, control.sock in
    data_dir by default, relative to data_dir or absolute; "" turns the
    channel off; a wrong type or an unknown key names the key.
    """
    assert build().control.socket == Path("/srv/xmpp/control.sock")
    assert build(control={"socket": "run/ctl.sock"}).control.socket == Path("/srv/xmpp/run/ctl.sock")
    assert build(control={"socket": "/run/xmppcert.sock"}).control.socket == Path("/run/xmppcert.sock")
    assert build(control={"socket": ""}).control.socket is None
    assertNames("control.socket", control={"socket": 1})
    assertNames("control.listen", control={"listen": "x"})


@pytest.mark.parametrize("description", ["tcp:99999", "tcp:-1", "tcp6:70000:interface=\\:\\:1"])
def test_endpointPortRange(description: str) -> None:
    """
    Configuration errors name the key: a port outside 1 to 65535 is refused
    when the file is read, not with a traceback when binding.
    """
    message = assertNames("listen.direct_tls", listen={"direct_tls": [description]})
    assert "the port must be from 1 to 65535" in message


def test_logFormat() -> None:
    """
    log_format is "text" by default and may be "json"; anything else is
    refused naming the key.
    """
    assert build().log_format == "text"
    assert build(log_format="json").log_format == "json"
    assert "one of text, json" in assertNames("log_format", log_format="xml")


def test_httpDefaults() -> None:
    """
    [listen] https is on by default (port 5281 on loopback); [http] allows
    no web origin and uses the [tls] certificate.
    """
    from xmppcert.config import HTTPConfig

    config = build()
    assert config.listen.https == ("tcp:5281:interface=127.0.0.1",)
    assert config.http == HTTPConfig()
    assert config.http.allowed_origins == ()
    assert config.http.certificate is None and config.http.key is None
    assert build(listen={"https": []}).listen.https == ()


def test_httpAllowedOrigins() -> None:
    """
    http.allowed_origins: compared as browsers send an Origin (lower case,
    no trailing slash, no default port); "*" is any origin; a request with
    no Origin (not a browser page) is always allowed.
    """
    config = build(http={"allowed_origins": ["https://Chat.Example.com/", "https://b.example:443", "*"]})
    assert config.http.allowed_origins == ("https://chat.example.com", "https://b.example", "*")
    only = build(http={"allowed_origins": ["https://chat.example.com:8443"]}).http
    assert only.allowsOrigin("https://chat.example.com:8443")
    assert not only.allowsOrigin("https://chat.example.com")
    assert not only.allowsOrigin("null")
    assert only.allowsOrigin(None)


@pytest.mark.parametrize(
    "http, message",
    [
        ({"allowed_origins": ["chat.example.com"]}, "http.allowed_origins: 'chat.example.com' is not an origin"),
        ({"allowed_origins": ["https://chat.example.com/app"]}, "http.allowed_origins: 'https://chat.example.com/app'"),
        ({"allowed_origins": ["ftp://x"]}, "http.allowed_origins: 'ftp://x' is not an origin"),
        ({"certificate": "web.crt"}, "http.certificate: give both certificate and key, or neither"),
        ({"max_body_size": 10}, "http.max_body_size: must be bytes from 1024"),
        ({"bosh_max_hold": 17}, "http.bosh_max_hold: must be an integer from 0 to 16"),
        ({"bosh_max_wait": True}, "http.bosh_max_wait: must be"),
        ({"colour": "blue"}, "http.colour: unknown key"),
    ],
)
def test_httpErrors(http: dict[str, Any], message: str) -> None:
    """
    Configuration errors name the [http] key.
    """
    with pytest.raises(ConfigError) as info:
        build(http=http)
    assert str(info.value).startswith(message), str(info.value)


def test_httpCertificatePaths(tmp_path: Path) -> None:
    """
    http.certificate and http.key are relative to data_dir, like [tls]'s.
    """
    config = configFromDict(
        {"domains": ["example.com"], "data_dir": str(tmp_path), "http": {"certificate": "w.crt", "key": "w.key"}},
        tmp_path,
    )
    assert config.http.certificate == tmp_path / "w.crt"
    assert config.http.key == tmp_path / "w.key"


def test_imLimits() -> None:
    """
    [im]: the limits of rosters, offline messages, block lists, presence,
    vCards and private XML, with their defaults; out-of-range values name
    the key.
    """
    from xmppcert.config import IMConfig

    assert build().im == IMConfig()
    im = build(im={"max_vcard_bytes": 2048, "max_private_bytes": 4096, "max_offline_messages": 0}).im
    assert (im.max_vcard_bytes, im.max_private_bytes, im.max_offline_messages) == (2048, 4096, 0)
    assertNames("im.max_vcard_bytes", im={"max_vcard_bytes": 10})
    assertNames("im.presence_rate", im={"presence_rate": 0})
    assertNames("im.colour", im={"colour": 1})


def test_pepByteLimit() -> None:
    """
    [im] max_pep_bytes, the bytes of an account's PEP items together: 8
    MiB by default, 65536 to 4294967296; out of range names the key.
    """
    assert build().im.max_pep_bytes == 8 * 1024 * 1024
    assert build(im={"max_pep_bytes": 65536}).im.max_pep_bytes == 65536
    assertNames("im.max_pep_bytes", im={"max_pep_bytes": 65535})
    assertNames("im.max_pep_bytes", im={"max_pep_bytes": 4 * 1024**3 + 1})



def test_adminsPreparedBareJIDsOnServedDomains() -> None:
    """
    XEP-0133 administrators are configured as bare JIDs of served domains,
    prepared (RFC 7622), duplicates dropped; none by default.
    """
    assert build().admins == ()
    config = build(domains=["example.org"], admins=["Admin@example.org", "admin@example.org", "ops@example.org"])
    assert config.admins == ("admin@example.org", "ops@example.org")


@pytest.mark.parametrize(
    "value, message",
    [
        (["admin@example.org/phone"], "not a bare JID"),
        (["example.org"], "not a bare JID"),
        (["admin@elsewhere.example"], "not on a served domain"),
        (["a@b@c"], "not a JID"),
        ("admin@example.org", "must be a list"),
        ([""], "non-empty strings"),
    ],
)
def test_adminsRefused(value: Any, message: str) -> None:
    """
    An administrator that is not a bare JID of a served domain is a
    configuration error naming the key.
    """
    assert message in assertNames("admins", domains=["example.org"], admins=value)
