"""
Tests for L{xmppcert.reload} and C{ServerService.reload}: a reload from the
configuration file on disk changes what can change live, keeps sessions,
and a broken file changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography import x509
from twisted.application.internet import StreamServerEndpointService
from twisted.cred.credentials import IUsernamePassword
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, LogLevel, capturedLogs
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest

from tests.helpers import DOMAIN, OTHER_DOMAIN, bindSession
from tests.test_checks import writeCA, writeCertificate
from xmppcert import _log
from xmppcert.config import loadConfig
from xmppcert.cred import CACertificateChecker, CertificateCheckerChain, IClientCertificate
from xmppcert.service import RevocationListService, ServerService, makeService
from xmppcert.testing import InMemoryAccountStore
from xmppcert.x509 import fingerprint, generateServerCertificate


def configText(
    domains: tuple[str, ...] = (DOMAIN,), logLevel: str = "info", extra: str = "",
    starttls: str = "tcp:0:interface=127.0.0.1",
) -> str:
    return f"""\
domains = {json.dumps(list(domains))}
data_dir = "."
log_level = "{logLevel}"

[listen]
starttls = ["{starttls}"]
direct_tls = ["tcp:0:interface=127.0.0.1"]

{extra}
"""


class Env:
    """
    A server built from a configuration file in C{directory}.
    """

    def __init__(self, directory: Path, reactor: Any = None, **config: Any) -> None:
        self.directory = directory
        writeCertificate(directory, [DOMAIN])
        self.path = directory / "xmppcert.toml"
        self.path.write_text(configText(**config))
        self.root: ServerService = makeService(
            loadConfig(self.path), store=InMemoryAccountStore(),
            reactor=reactor if reactor is not None else MemoryReactorClock(),
        )
        self.root.configPath = self.path
        self.server: Any = cast(Any, self.root).c2s

    def write(self, **config: Any) -> None:
        self.path.write_text(configText(**config))

    def served(self) -> str:
        """
        @return: the fingerprint of the certificate a new connection gets.
        """
        connection = self.server.tlsFactory.serverConnectionForTLS(None)
        return fingerprint(connection.get_certificate().to_cryptography())

    def onDisk(self) -> str:
        return fingerprint(x509.load_pem_x509_certificate((self.directory / "server.crt").read_bytes()))


@pytest.fixture(autouse=True)
def restoreLogLevel() -> Any:
    yield
    _log.setLevel("info")


def test_newCertificate(tmp_path: Path) -> None:
    """
    Reload: a renewed server certificate and key (certbot) serve every new
    connection, STARTTLS and direct TLS alike, from the one context
    factory; the log says so at info with the new fingerprint.
    """
    env = Env(tmp_path)
    old = env.served()
    writeCertificate(tmp_path, [DOMAIN])
    assert env.onDisk() != old
    with capturedLogs() as events:
        result = env.root.reload()
    assert result.ok
    assert env.served() == env.onDisk()
    direct = [
        s.factory for s in env.root
        if isinstance(s, StreamServerEndpointService) and isinstance(s.factory, TLSMemoryBIOFactory)
    ]
    assert direct
    for factory in direct:
        connection = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5223))
        connection.makeConnection(StringTransport())
        assert fingerprint(connection.getHandle().get_certificate().to_cryptography()) == env.onDisk()
    [line] = [e for e in events if e.get("log_namespace") == "xmppcert.reload"]
    assert line["log_level"] == LogLevel.info
    assert env.onDisk() in line["what"]


def test_sessionsSurvive(tmp_path: Path) -> None:
    """
    Reload: a bound session stays bound and is not told anything, even when
    its domain is no longer served (it goes on until it ends).
    """
    env = Env(tmp_path)
    session, client = bindSession(env.server.sessions, f"alice@{DOMAIN}/phone")
    writeCertificate(tmp_path, [OTHER_DOMAIN])
    env.write(domains=(OTHER_DOMAIN,))
    assert env.root.reload().ok
    assert env.server.sessions.sessionsOf(session.jid.userhostJID()) == [session]
    assert client.closes == []


def test_domainsAdded(tmp_path: Path) -> None:
    """
    Reload: a served domain added to the file is served by the stream
    header check, the session registry and every certificate checker.
    """
    env = Env(tmp_path)
    writeCertificate(tmp_path, [DOMAIN, OTHER_DOMAIN])
    env.write(domains=(DOMAIN, OTHER_DOMAIN))
    with capturedLogs() as events:
        assert env.root.reload().ok
    assert env.server.config.domains == (DOMAIN, OTHER_DOMAIN)
    assert env.server.sessions.domains == {DOMAIN, OTHER_DOMAIN}
    chain = env.server.portal.checkers[IClientCertificate]
    assert isinstance(chain, CertificateCheckerChain)
    assert chain.domains == {DOMAIN, OTHER_DOMAIN}
    assert all(cast(Any, c).domains == {DOMAIN, OTHER_DOMAIN} for c in chain.chain)
    assert any(f"added {OTHER_DOMAIN}" in e.get("what", "") for e in events)


def test_limitsAndLogLevel(tmp_path: Path) -> None:
    """
    Reload: [limits] (timeouts, throttle, per-address limit), [sasl] and
    log_level change live; the throttle keeps the failures it counted.
    """
    env = Env(tmp_path)
    throttle = env.server.throttle
    throttle.failed("192.0.2.1", f"alice@{DOMAIN}")
    env.write(
        logLevel="warn",
        extra=(
            "[limits]\nhandshake_timeout = 3\nauth_timeout = 7\nmax_unauthenticated_per_address = 2\n"
            "login_failure_max_delay = 1\nlockout_time = 60\nmax_failures_per_account = 9\n"
            "[sasl]\nscram_iterations = 8192\n"
        ),
    )
    assert env.root.reload().ok
    limits = env.server.config.limits
    assert (limits.handshake_timeout, limits.auth_timeout) == (3.0, 7.0)
    assert env.server.addressLimiter.maxPerAddress == 2
    assert env.server.throttle is throttle
    assert (throttle.maxDelay, throttle.lockoutTime, throttle.maxFailuresPerAccount) == (1.0, 60.0, 9)
    assert throttle.accounts.halfLife == 60.0
    assert throttle.accounts.get(f"alice@{DOMAIN}", task.Clock().seconds()) is not None
    assert env.server.portal.checkers[IUsernamePassword].iterations == 8192
    with capturedLogs() as events:
        Logger(observer=_log.observer).info("quiet now")
        Logger(observer=_log.observer).warn("still heard")
    assert [e["log_format"] for e in events] == ["still heard"]


def test_clientCAsAndCRLs(tmp_path: Path) -> None:
    """
    Reload: [[certificates.ca]] bundles and CRL files are read again and a
    new checker chain goes on the portal; the CRL files' watcher of the
    running server is started for them.
    """
    env = Env(tmp_path)
    env.root.startService()
    try:
        bundle, crl = writeCA(tmp_path)
        env.write(extra=(
            '[certificates]\ncheckers = ["stored", "ca"]\n'
            f'[[certificates.ca]]\nbundle = "{bundle}"\ndomains = ["{DOMAIN}"]\ncrls = ["{crl}"]\n'
        ))
        assert env.root.reload().ok
        chain = env.server.portal.checkers[IClientCertificate]
        [ca] = [c for c in chain.chain if isinstance(c, CACertificateChecker)]
        assert ca.authorities[0].roots[0].subject.rfc4514_string() == "CN=Test CA"
        [holder] = [s for s in env.root if isinstance(s, RevocationListService)]
        assert holder.running
        assert holder.checkers == chain.revocationCheckers()
        assert all(c._loopState == "started" for c in holder.checkers)
        previous = holder.checkers
        assert env.root.reload().ok
        assert all(c._loopState == "stopped" for c in previous)
        assert all(c._loopState == "started" for c in holder.checkers)
    finally:
        env.root.stopService()


def test_restartOnlySettings(tmp_path: Path) -> None:
    """
    Reload: a changed listener or store is a warning naming it, and the old
    one stays; what can change live still does.
    """
    env = Env(tmp_path)
    oldListen, oldStore = env.server.config.listen, env.server.config.store
    env.write(
        starttls="tcp:5999:interface=127.0.0.1", logLevel="debug",
        extra='[store]\nsqlite = "elsewhere.sqlite"\n[limits]\nlisten_backlog = 64\n',
    )
    with capturedLogs() as events:
        result = env.root.reload()
    assert result.ok
    assert sorted(result.needsRestart) == ["limits.listen_backlog", "listen", "store"]
    assert env.server.config.listen == oldListen
    assert env.server.config.store == oldStore
    assert env.server.config.limits.listen_backlog == 511
    assert env.server.config.log_level == "debug"
    warnings = [e["setting"] for e in events if e["log_level"] == LogLevel.warn]
    assert sorted(warnings) == ["limits.listen_backlog", "listen", "store"]


def breakBadTOML(env: Env) -> None:
    env.path.write_text(configText() + "[limits\n")


def breakBadValue(env: Env) -> None:
    env.write(extra="[limits]\nauth_timeout = 0\n")


def breakMissingCertificate(env: Env) -> None:
    (env.directory / "server.crt").unlink()


def breakMismatchedKey(env: Env) -> None:
    writeCertificate(env.directory, [DOMAIN])
    (env.directory / "server.key").write_bytes(generateServerCertificate([DOMAIN])[0])


def breakCABundle(env: Env) -> None:
    writeCertificate(env.directory, [DOMAIN, OTHER_DOMAIN])
    env.write(
        domains=(DOMAIN, OTHER_DOMAIN),
        extra=f'[certificates]\ncheckers = ["ca"]\n[[certificates.ca]]\nbundle = "missing.pem"\ndomains = ["{DOMAIN}"]\n',
    )


def breakCRL(env: Env) -> None:
    writeCertificate(env.directory, [DOMAIN, OTHER_DOMAIN])
    bundle, _ = writeCA(env.directory)
    (env.directory / "bad.crl").write_text("not a CRL")
    env.write(
        domains=(DOMAIN, OTHER_DOMAIN),
        extra=(
            f'[certificates]\ncheckers = ["ca"]\n[[certificates.ca]]\nbundle = "{bundle}"\n'
            f'domains = ["{DOMAIN}"]\ncrls = ["bad.crl"]\n'
        ),
    )


def breakUncoveredDomain(env: Env) -> None:
    env.write(domains=(DOMAIN, OTHER_DOMAIN), logLevel="debug")


@pytest.mark.parametrize(
    "breakIt, fragment",
    [
        (breakBadTOML, "is not valid TOML"),
        (breakBadValue, "limits.auth_timeout"),
        (breakMissingCertificate, "server.crt"),
        (breakMismatchedKey, "is not the key of the certificate"),
        (breakCABundle, "missing.pem"),
        (breakCRL, "bad.crl"),
        (breakUncoveredDomain, f"does not name {OTHER_DOMAIN}"),
    ],
    ids=["toml", "value", "certificate", "key", "ca-bundle", "crl", "domain"],
)
def test_brokenFileChangesNothing(tmp_path: Path, breakIt: Any, fragment: str) -> None:
    """
    Reload: a broken file (bad TOML, an invalid value, an unreadable or
    mismatched certificate or key, an unreadable CA bundle or CRL, a
    certificate that does not name a served domain) keeps all the old
    settings, and one error line says why.
    """
    env = Env(tmp_path)
    before = (env.server.config, env.served(), env.server.portal.checkers[IClientCertificate])
    breakIt(env)
    with capturedLogs() as events:
        result = env.root.reload()
    assert not result.ok
    assert result.error is not None and fragment in result.error
    assert (env.server.config, env.served(), env.server.portal.checkers[IClientCertificate]) == before
    assert env.server.sessions.domains == {DOMAIN}
    [line] = [e for e in events if e.get("log_namespace") == "xmppcert.reload"]
    assert line["log_level"] == LogLevel.error
    assert fragment in line["reason"] and "\n" not in line["reason"]


def test_reloadNeedsASource(tmp_path: Path) -> None:
    """
    An embedding application that never said where its file is gets a
    clear error from reload(); it may pass a configuration instead.
    """
    env = Env(tmp_path)
    env.root.configPath = None
    with pytest.raises(ValueError, match="configPath"):
        env.root.reload()
    assert env.root.reload(loadConfig(env.path)).ok


class SIGHUPTests(unittest.TestCase):
    """
    SIGHUP on a server running under a reactor that handles signals.
    """

    def test_SIGHUPReloads(self) -> Any:
        """
        kill -HUP reloads the configuration file (here: a new certificate)
        on the reactor; stopping the server puts the previous handler back.
        """
        from twisted.internet import reactor

        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        env = Env(directory, reactor=reactor)
        previous = signal.getsignal(signal.SIGHUP)
        env.root.startService()
        old = env.served()

        def running(ignored: object) -> Any:
            self.assertEqual(signal.getsignal(signal.SIGHUP), env.root._onSIGHUP)
            writeCertificate(directory, [DOMAIN])
            os.kill(os.getpid(), signal.SIGHUP)
            return task.deferLater(reactor, 0.1, lambda: None)

        def reloaded(ignored: object) -> Any:
            self.assertNotEqual(env.served(), old)
            self.assertEqual(env.served(), env.onDisk())
            return env.root.stopService()

        def stopped(ignored: object) -> None:
            self.assertEqual(signal.getsignal(signal.SIGHUP), previous)

        d = task.deferLater(reactor, 0, lambda: None)
        d.addCallback(running)
        d.addCallback(reloaded)
        d.addCallback(stopped)
        return d

