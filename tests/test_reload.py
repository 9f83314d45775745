"""
Tests for L{xmppcert.reload} and C{ServerService.reload}: a reload from the
configuration file on disk changes what can change live, keeps sessions,
and a broken file changes nothing.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography import x509
from twisted.application.internet import StreamServerEndpointService
from twisted.cred.credentials import IUsernamePassword
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, LogLevel, capturedLogs
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.words.protocols.jabber import jid

from tests.helpers import DOMAIN, OTHER_DOMAIN, bindSession
from tests.test_checks import writeCA, writeCertificate
from xmppcert import _log
from xmppcert.config import loadConfig
from xmppcert.cred import CACertificateChecker, CertificateCheckerChain, IClientCertificate
from xmppcert.reload import ReloadResult
from xmppcert.service import RevocationListService, ServerService, makeService
from xmppcert.testing import InMemoryAccountStore
from xmppcert.x509 import fingerprint, generateServerCertificate


def configText(
    domains: tuple[str, ...] = (DOMAIN,), logLevel: str = "info", extra: str = "",
    starttls: str = "tcp:0:interface=127.0.0.1", https: bool = False, admins: tuple[str, ...] = (),
) -> str:
    return f"""\
domains = {json.dumps(list(domains))}
data_dir = "."
log_level = "{logLevel}"
admins = {json.dumps(list(admins))}

[listen]
starttls = ["{starttls}"]
direct_tls = ["tcp:0:interface=127.0.0.1"]
https = {'["tcp:0:interface=127.0.0.1"]' if https else "[]"}

{extra}
"""


def inThisThread(f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
    """
    A C{deferToThread} that runs C{f} at once, on this thread.
    """
    return defer.maybeDeferred(f, *args, **kwargs)


class HeldThread:
    """
    A C{deferToThread} that runs nothing until told: L{run} runs the
    oldest call and fires its Deferred.

    @ivar calls: the calls not yet run.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...], defer.Deferred[Any]]] = []

    def __call__(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.calls.append((functools.partial(f, **kwargs), args, d))
        return d

    def run(self) -> None:
        f, args, d = self.calls.pop(0)
        defer.maybeDeferred(f, *args).chainDeferred(d)


def ended(d: defer.Deferred[Any]) -> bool:
    """
    @return: whether C{d} has a result yet (a Deferred waiting on another
        has been called but has none).
    """
    seen: list[bool] = []

    def note(result: object) -> object:
        seen.append(True)
        return result

    d.addBoth(note)
    return bool(seen)


def resultOf(d: defer.Deferred[ReloadResult]) -> ReloadResult:
    """
    @return: what C{d} has already fired with.
    """
    results: list[ReloadResult | Failure] = []
    d.addBoth(results.append)
    assert results, "the reload has not ended"
    [result] = results
    if isinstance(result, Failure):
        result.raiseException()
    assert isinstance(result, ReloadResult)
    return result


class Env:
    """
    A server built from a configuration file in C{directory}. Unless
    C{threaded}, a reload reads the files on this thread, at once.
    """

    def __init__(self, directory: Path, reactor: Any = None, threaded: bool = False, **config: Any) -> None:
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
        assert self.root.reloader is not None
        self.reloader = self.root.reloader
        if not threaded:
            self.reloader.deferToThread = inThisThread

    def reload(self, source: Any = None) -> ReloadResult:
        """
        Reload through the service, which must end at once.
        """
        return resultOf(self.root.reload(source))

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
        result = env.reload()
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


def test_webSettingsAndCertificate(tmp_path: Path) -> None:
    """
    Reload: [http] changes live (allowed origins, limits), and the HTTPS
    listener serves a renewed certificate to new connections.
    """
    env = Env(tmp_path, https=True)
    web = [
        s.factory for s in env.root
        if isinstance(s, StreamServerEndpointService)
        and isinstance(s.factory, TLSMemoryBIOFactory)
        and s.factory.wrappedFactory is cast(Any, env.root).web.site
    ]
    assert len(web) == 1
    writeCertificate(tmp_path, [DOMAIN])
    env.write(https=True, extra='[http]\nallowed_origins = ["https://chat.example"]\nbosh_max_wait = 20\n')
    result = env.reload()
    assert result.ok and "[http]" in result.reloaded
    assert env.server.config.http.allowed_origins == ("https://chat.example",)
    assert env.server.config.http.bosh_max_wait == 20
    connection = web[0]._creatorCallable(cast(Any, None))
    served = connection.get_certificate()
    assert served is not None and fingerprint(served.to_cryptography()) == env.onDisk()


def test_sessionsSurvive(tmp_path: Path) -> None:
    """
    Reload: a bound session stays bound and is not told anything, even when
    its domain is no longer served (it goes on until it ends).
    """
    env = Env(tmp_path)
    session, client = bindSession(env.server.sessions, f"alice@{DOMAIN}/phone")
    writeCertificate(tmp_path, [OTHER_DOMAIN])
    env.write(domains=(OTHER_DOMAIN,))
    assert env.reload().ok
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
        assert env.reload().ok
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
            "command_session_timeout = 42\n"
            "[sasl]\nscram_iterations = 8192\n"
        ),
    )
    assert env.reload().ok
    assert env.root.commands.sessionTimeout == 42.0
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


def test_admins(tmp_path: Path) -> None:
    """
    Reload: admins change live; the next command an account runs sees its
    new right (the XEP-0133 commands are listed for it, or no longer).
    """
    from xmppcert.adhoc.framework import Requester

    env = Env(tmp_path)
    commands = env.root.commands
    alice = Requester(jid.JID(f"alice@{DOMAIN}/phone"), None, DOMAIN, "PLAIN")
    before = {c.node for c in commands.commandsFor(alice)}
    env.write(admins=(f"alice@{DOMAIN}",))
    result = env.reload()
    assert result.ok and f"admins = alice@{DOMAIN}" in result.reloaded
    after = {c.node for c in commands.commandsFor(alice)}
    assert "http://jabber.org/protocol/admin#add-user" in after - before
    env.write()
    assert env.reload().ok
    assert {c.node for c in commands.commandsFor(alice)} == before


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
        assert env.reload().ok
        chain = env.server.portal.checkers[IClientCertificate]
        [ca] = [c for c in chain.chain if isinstance(c, CACertificateChecker)]
        assert ca.authorities[0].roots[0].subject.rfc4514_string() == "CN=Test CA"
        [holder] = [s for s in env.root if isinstance(s, RevocationListService)]
        assert holder.running
        assert holder.checkers == chain.revocationCheckers()
        assert all(c._loopState == "started" for c in holder.checkers)
    finally:
        env.root.stopService()


def caSection(
    bundle: Path, crls: tuple[Path, ...] = (), domains: tuple[str, ...] = (DOMAIN,),
    fetch: bool = True, failure: str = "hard",
) -> str:
    return (
        '[certificates]\ncheckers = ["stored", "ca"]\n'
        f'[[certificates.ca]]\nbundle = "{bundle}"\ndomains = {json.dumps(list(domains))}\n'
        f"crls = {json.dumps([str(c) for c in crls])}\nfetch_crls = {json.dumps(fetch)}\n"
        f'crl_failure = "{failure}"\n'
    )


def caOf(env: Env) -> CACertificateChecker:
    [ca] = [c for c in env.server.portal.checkers[IClientCertificate].chain if isinstance(c, CACertificateChecker)]
    return ca


def test_unchangedCAKeepsItsCRLChecker(tmp_path: Path) -> None:
    """
    Reload (logrotate, certbot hooks): a client CA whose bundle (path and
    content), CRL files, fetch_crls and crl_failure are unchanged keeps its
    TrustedCA and its running CRL checker, with the CRLs fetched over HTTP
    and their cache, so a hard-fail CA does not refuse logins when a
    distribution point is down; the log line does not claim it was read
    again.
    """
    bundle, crl = writeCA(tmp_path)
    env = Env(tmp_path, extra=caSection(bundle, (crl,)))
    env.root.startService()
    try:
        [authority] = caOf(env).authorities
        checker = authority.revocation
        fetched = object()
        checker._cache["http://crl.example/ca.crl"] = fetched
        [holder] = [s for s in env.root if isinstance(s, RevocationListService)]
        env.write(extra=caSection(bundle, (crl,)), logLevel="warn")
        result = env.reload()
        assert result.ok
        assert caOf(env).authorities == [authority]
        assert caOf(env).authorities[0] is authority
        assert holder.checkers == [checker]
        assert checker._loopState == "started"
        assert checker._cache["http://crl.example/ca.crl"] is fetched
        assert not any("client CA" in line for line in result.reloaded)
    finally:
        env.root.stopService()


def test_domainsOfUnchangedCA(tmp_path: Path) -> None:
    """
    Reload: a client CA whose domains alone change is trusted for the new
    domains and keeps its CRL checker.
    """
    bundle, crl = writeCA(tmp_path)
    env = Env(tmp_path, domains=(DOMAIN, OTHER_DOMAIN), extra=caSection(bundle, (crl,)))
    writeCertificate(tmp_path, [DOMAIN, OTHER_DOMAIN])
    [before] = caOf(env).authorities
    env.write(domains=(DOMAIN, OTHER_DOMAIN), extra=caSection(bundle, (crl,), domains=(DOMAIN, OTHER_DOMAIN)))
    assert env.reload().ok
    [after] = caOf(env).authorities
    assert after.domains == {DOMAIN, OTHER_DOMAIN}
    assert after.revocation is before.revocation


def changeBundle(tmp_path: Path, bundle: Path, crl: Path) -> str:
    writeCA(tmp_path)  # a new CA in the same files
    return caSection(bundle, (crl,))


def changeCRLs(tmp_path: Path, bundle: Path, crl: Path) -> str:
    _, other = writeCA(tmp_path, "other")
    return caSection(bundle, (crl, other))


def changeFetch(tmp_path: Path, bundle: Path, crl: Path) -> str:
    return caSection(bundle, (crl,), fetch=False)


def changeFailure(tmp_path: Path, bundle: Path, crl: Path) -> str:
    return caSection(bundle, (crl,), failure="soft")


@pytest.mark.parametrize(
    "change", [changeBundle, changeCRLs, changeFetch, changeFailure],
    ids=["bundle-content", "crls", "fetch_crls", "crl_failure"],
)
def test_changedCAGetsANewCRLChecker(tmp_path: Path, change: Any) -> None:
    """
    Reload: a client CA whose bundle content, CRL files, fetch_crls or
    crl_failure changed gets a new CRL checker, started, and the old one
    stops; the log line names that CA.
    """
    bundle, crl = writeCA(tmp_path)
    env = Env(tmp_path, extra=caSection(bundle, (crl,)))
    env.root.startService()
    try:
        [old] = caOf(env).authorities
        env.write(extra=change(tmp_path, bundle, crl))
        result = env.reload()
        assert result.ok
        [new] = caOf(env).authorities
        assert new.revocation is not old.revocation
        assert old.revocation._loopState == "stopped"
        [holder] = [s for s in env.root if isinstance(s, RevocationListService)]
        assert holder.checkers == [new.revocation]
        assert new.revocation._loopState == "started"
        assert f"client CA {bundle} changed: bundle and CRL files read again" in result.reloaded
    finally:
        env.root.stopService()


def test_applicationCheckerNotReported(tmp_path: Path) -> None:
    """
    Reload: when the certificate checker on the portal is the embedding
    application's, nothing of the client CAs is read for it, and the log
    line does not say their bundles and CRL files were read again.
    """
    bundle, crl = writeCA(tmp_path)
    env = Env(tmp_path, extra=caSection(bundle, (crl,)))
    theirs = CertificateCheckerChain([], None, [DOMAIN])
    env.server.portal.registerChecker(theirs, IClientCertificate)
    writeCA(tmp_path)
    result = env.reload()
    assert result.ok
    assert env.server.portal.checkers[IClientCertificate] is theirs
    assert not any("CA" in line for line in result.reloaded)
    assert result.reloaded[1:] == ["no other change"]


def test_filesReadInAThread(tmp_path: Path) -> None:
    """
    Reload: the files (configuration, certificate and key, CA bundles, CRL
    files) are read and parsed through deferToThread, off the reactor;
    nothing changes until that ends, then all the new settings are in
    place at once.
    """
    env = Env(tmp_path)
    held = HeldThread()
    env.reloader.deferToThread = held
    bundle, crl = writeCA(tmp_path)
    env.write(logLevel="warn", extra=caSection(bundle, (crl,)))
    before = (env.server.config, env.served(), env.server.portal.checkers[IClientCertificate])
    d = env.root.reload()
    assert not ended(d)
    assert len(held.calls) == 1
    # What is on disk when the thread runs is what counts.
    crl.write_text("not a CRL")
    held.run()
    result = resultOf(d)
    assert not result.ok and result.error is not None and str(crl) in result.error
    assert (env.server.config, env.served(), env.server.portal.checkers[IClientCertificate]) == before

    d = env.root.reload()
    _, good = writeCA(tmp_path, "good")
    shutil.copyfile(good, crl)
    writeCertificate(tmp_path, [DOMAIN])
    assert not ended(d)
    assert (env.server.config, env.served()) == before[:2]
    held.run()
    assert resultOf(d).ok
    assert env.served() == env.onDisk()
    assert env.server.config.log_level == "warn"
    assert caOf(env).authorities[0].roots[0].subject.rfc4514_string() == "CN=Test CA"


def test_reloadsDoNotInterleave(tmp_path: Path) -> None:
    """
    Reload: a second reload (two SIGHUPs in quick succession) waits until
    the first has been applied, then reads the files again and starts
    from what the first put in place.
    """
    env = Env(tmp_path)
    held = HeldThread()
    env.reloader.deferToThread = held
    env.write(logLevel="warn")
    first, second = env.root.reload(), env.root.reload()
    assert len(held.calls) == 1
    held.run()
    assert "log_level = warn" in resultOf(first).reloaded
    assert not ended(second)
    env.write(logLevel="debug")
    assert len(held.calls) == 1
    held.run()
    assert "log_level = debug" in resultOf(second).reloaded
    assert env.server.config.log_level == "debug"


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
        result = env.reload()
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
        result = env.reload()
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
    assert env.reload(loadConfig(env.path)).ok


class SIGHUPTests(unittest.TestCase):
    """
    SIGHUP on a server running under a reactor that handles signals.
    """

    def test_SIGHUPReloads(self) -> Any:
        """
        kill -HUP reloads the configuration file (here: a new certificate),
        read in a thread and applied on the reactor; stopping the server puts the previous handler back.
        """
        from twisted.internet import reactor

        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        env = Env(directory, reactor=reactor, threaded=True)
        previous = signal.getsignal(signal.SIGHUP)
        env.root.startService()
        old = env.served()

        async def waitForReload() -> None:
            for _ in range(100):
                await task.deferLater(reactor, 0.05, lambda: None)
                if env.served() != old:
                    return

        def running(ignored: object) -> Any:
            self.assertEqual(signal.getsignal(signal.SIGHUP), env.root._onSIGHUP)
            writeCertificate(directory, [DOMAIN])
            os.kill(os.getpid(), signal.SIGHUP)
            return defer.ensureDeferred(waitForReload())

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

