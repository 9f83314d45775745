# -*- test-case-name: tests.test_reload -*-
"""
Reloading the configuration of a running server (SIGHUP, C{systemctl reload},
or C{ServerService.reload()} in an embedding application) without dropping
a session.

A reload happens in two phases. First everything new is built from the
file, without touching the running server: in a thread, the configuration
is parsed and validated, the server certificate and key are loaded and
checked against each other and the served domains, and the client CA
bundles and CRL files are read; then, on the reactor, the certificate
checkers are built. Any failure there ends the reload with one line in the
log and the server keeps every old setting. Only then is the new state put
in place, on the reactor, by assignments that cannot fail: a login sees
either all the old settings or all the new ones. Reloads run one after the
other: a second SIGHUP while one is under way waits for it.

A client CA whose bundle (path and certificates), CRL files, C{fetch_crls}
and C{crl_failure} are unchanged keeps its CRL checker, with the CRLs it
fetched and its cache; its CRL files are read again by that checker when
they change, as between reloads.

What changes live: the server certificate and key (new connections get the
new one), the client CAs, CRL files and certificate checkers, the served
domains, C{[limits]} (timeouts, throttle, per-address limit), C{[sasl]},
C{log_level} and C{keepalive_interval} (for new sessions). What needs a
restart (the old value stays, with a warning): the listeners, the store,
C{log_format}, the listen backlog, the intervals of the background tasks,
and any section this module does not know.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from xmppcert import _log, checks
from xmppcert.config import CAConfig, Config, ConfigError, loadConfig
from xmppcert.cred import (
    CACertificateChecker,
    CertificateCheckerChain,
    IClientCertificate,
    StoredPasswordChecker,
    TrustedCA,
    loadCertificateCheckers,
)
from xmppcert.crl import CRLError, RevocationChecker, _RunInThread
from xmppcert.tls import ServerTLSContextFactory, TLSConfigurationError, loadCABundle
from xmppcert.x509 import fingerprint

log = Logger(observer=_log.observer)

#: Top-level settings applied live. C{data_dir} only matters through the
#: paths derived from it, which are compared themselves.
LIVE = frozenset({
    "domains", "data_dir", "tls", "certificates", "limits", "sasl", "log_level", "keepalive_interval",
    "http", "im", "admins",
})

#: Settings inside live sections that still need a restart.
RESTART_ONLY = (
    ("limits", "listen_backlog"),
    ("certificates", "revocation_poll_interval"),
    ("certificates", "session_check_interval"),
    ("certificates", "prune_expired_after"),
)


class ReloadError(Exception):
    """
    The new configuration cannot be used; the message is one line.
    """


@dataclass
class ReloadResult:
    """
    What a reload did.

    @ivar ok: whether the new configuration is in use.
    @ivar reloaded: what was applied, for the log line.
    @ivar needsRestart: the changed settings that were kept at their old
        value.
    @ivar warnings: problems that do not stop the reload (a certificate
        that expires soon).
    @ivar error: why the reload failed, when it did.
    """

    ok: bool
    reloaded: list[str] = field(default_factory=list)
    needsRestart: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def _restartOnly(old: Config, new: Config) -> tuple[Config, list[str]]:
    """
    @return: C{new} with every setting that needs a restart put back to its
        C{old} value, and the names of those that differed.
    """
    kept: dict[str, Any] = {}
    changed = []
    for f in dataclasses.fields(Config):
        if f.name not in LIVE and getattr(old, f.name) != getattr(new, f.name):
            kept[f.name] = getattr(old, f.name)
            changed.append(f.name)
    effective = new.replace(**kept)
    for section, key in RESTART_ONLY:
        oldValue = getattr(getattr(old, section), key)
        if getattr(getattr(effective, section), key) != oldValue:
            changed.append(f"{section}.{key}")
            effective = effective.replace(
                **{section: dataclasses.replace(getattr(effective, section), **{key: oldValue})}
            )
    return effective, changed


def _readBundles(config: Config) -> dict[Path, tuple[x509.Certificate, ...]]:
    """
    Read every client CA bundle of C{config}, each once.

    @raise TLSConfigurationError: one cannot be read.
    """
    return {path: tuple(loadCABundle(path)) for path in config.certificates.clientCABundles()}


def _revocationKey(ca: CAConfig) -> tuple[Path, tuple[Path, ...], bool, str]:
    """
    The settings of a client CA that its CRL checker is made from (with
    its bundle's certificates, compared apart).
    """
    return (ca.bundle, tuple(ca.crls), ca.fetch_crls, ca.crl_failure)


@dataclass
class _Prepared:
    """
    What the first phase of a reload built in a thread.

    @ivar authorities: the client CAs for the C{ca} checker, or C{None}
        when the certificate checkers are not built here.
    @ivar caChanges: what changed among the client CAs, for the log line.
    """

    effective: Config
    needsRestart: list[str]
    tlsFactory: ServerTLSContextFactory
    httpsFactory: ServerTLSContextFactory | None
    leaf: x509.Certificate
    findings: list[checks.Finding]
    authorities: list[TrustedCA] | None
    caChanges: list[str]


def _trustedCAs(
    config: Config,
    bundles: dict[Path, tuple[x509.Certificate, ...]],
    previous: Sequence[tuple[CAConfig, TrustedCA]],
    clock: IReactorTime,
) -> tuple[list[TrustedCA], list[str]]:
    """
    The client CAs of C{config}, as L{xmppcert.cred.loadTrustedCAs} makes
    them, but keeping the previous L{TrustedCA} (and so its CRL checker,
    its fetched CRLs and their cache) of a CA whose settings are unchanged.

    @param previous: the CAs in use, with the settings they were made from.
    @return: the CAs and what changed among them.
    @raise CRLError: a CRL file of a new or changed CA cannot be read.
    """
    unused = list(previous)
    authorities = []
    changes = []
    for ca in config.certificates.ca:
        roots = bundles[ca.bundle]
        domains = frozenset(ca.domains)
        kept = next(
            (
                (settings, authority) for settings, authority in unused
                if _revocationKey(settings) == _revocationKey(ca) and authority.roots == roots
            ),
            None,
        )
        if kept is not None:
            unused.remove(kept)
            authority = kept[1]
            if authority.domains != domains:
                authority = dataclasses.replace(authority, domains=domains)
            authorities.append(authority)
            continue
        authorities.append(TrustedCA(
            roots=roots,
            domains=domains,
            revocation=RevocationChecker(
                clock, crlFiles=ca.crls, fetch=ca.fetch_crls, failurePolicy=ca.crl_failure
            ),
            name=ca.bundle.name,
        ))
        if any(settings.bundle == ca.bundle for settings, _ in previous):
            changes.append(f"client CA {ca.bundle} changed: bundle and CRL files read again")
        else:
            changes.append(f"client CA {ca.bundle} added")
    current = {ca.bundle for ca in config.certificates.ca}
    for settings, _ in unused:
        if settings.bundle not in current:
            changes.append(f"client CA {settings.bundle} removed")
    return authorities, changes


def _prepare(
    source: Config | Path | str,
    old: Config,
    previousCAs: Sequence[tuple[CAConfig, TrustedCA]] | None,
    clock: IReactorTime,
) -> _Prepared:
    """
    The first phase of a reload, run in a thread: read and check every file
    the new configuration names. It touches nothing of the running server.

    @param old: the configuration in force.
    @param previousCAs: the client CAs in use, with their settings; C{None}
        when the certificate checkers are an embedding application's (and
        not built here).
    @raise ReloadError: the new configuration cannot be used.
    """
    if isinstance(source, Config):
        new = source
    else:
        try:
            new = loadConfig(source)
        except ConfigError as e:
            raise ReloadError(str(e)) from None
    effective, needsRestart = _restartOnly(old, new)
    try:
        bundles = _readBundles(effective)
        tlsFactory = ServerTLSContextFactory.fromFiles(
            effective.tls.certificate, effective.tls.key, effective.certificates.policy,
            [root for roots in bundles.values() for root in roots], effective.tls.min_version,
        )
        httpsFactory = None
        if effective.listen.https:
            from xmppcert.transports.http import httpsContextFactory

            httpsFactory = httpsContextFactory(effective, [root for roots in bundles.values() for root in roots])
    except TLSConfigurationError as e:
        raise ReloadError(str(e)) from None
    leaf = tlsFactory.certificate()
    findings = checks.serverCertificateFindings(leaf, effective)
    problems = checks.errors(findings)
    if problems:
        raise ReloadError(problems[0].message)
    authorities: list[TrustedCA] | None = None if previousCAs is None else []
    caChanges: list[str] = []
    if previousCAs is not None and "ca" in effective.certificates.checkers:
        try:
            authorities, caChanges = _trustedCAs(effective, bundles, previousCAs, clock)
        except (ValueError, CRLError) as e:
            raise ReloadError(str(e)) from None
    return _Prepared(effective, needsRestart, tlsFactory, httpsFactory, leaf, findings, authorities, caChanges)


def _domainChange(old: Config, new: Config) -> str:
    added = [d for d in new.domains if d not in old.domains]
    removed = [d for d in old.domains if d not in new.domains]
    parts = []
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed) + " (its sessions go on until they end)")
    return "domains: " + "; ".join(parts)


class Reloader:
    """
    Applies a new configuration to the parts of a running server that hold
    it. L{xmppcert.service.makeService} makes one for its server.

    @ivar certificateChecker: the certificate checker chain built from the
        configuration, as registered on the portal.
    @ivar deferToThread: runs the first phase of a reload off the reactor.
    """

    def __init__(
        self,
        root: Any,
        server: Any,
        tlsFactory: ServerTLSContextFactory,
        portal: Portal,
        certificateChecker: CertificateCheckerChain,
        manager: Any,
        store: Any,
        clock: IReactorTime,
        deferToThread: _RunInThread = threads.deferToThread,
        httpsFactory: ServerTLSContextFactory | None = None,
    ) -> None:
        """
        @param root: the L{xmppcert.service.ServerService}, which gets a
            C{RevocationListService} when CRL files first appear.
        @param server: the L{xmppcert.c2s.C2SServer}; its C{config} is the
            configuration in force.
        @param manager: the L{xmppcert.certificates.CertificateManager}.
        @param deferToThread: runs the first phase of a reload (reading
            and parsing the files) off the reactor.
        @param httpsFactory: the TLS context of the HTTPS listener, if any.
        """
        self.root = root
        self.server = server
        self.tlsFactory = tlsFactory
        self.portal = portal
        self.certificateChecker = certificateChecker
        self.manager = manager
        self.store = store
        self.clock = clock
        self.deferToThread = deferToThread
        self.httpsFactory = httpsFactory
        self._lock = defer.DeferredLock()

    def reload(self, source: Config | Path | str) -> defer.Deferred[ReloadResult]:
        """
        Read and apply a configuration; log what happened (info when it
        was applied, a warning per setting that needs a restart, an error
        line when it was not applied). The files are read in a thread
        (L{deferToThread}); a reload called while another is under way
        starts when that one has ended.

        @param source: the configuration file, or a configuration.
        @return: a Deferred firing with what was done; it never fails, not
            even for a bad configuration.
        """
        return self._lock.run(self._reloadLogged, source)

    async def _reloadLogged(self, source: Config | Path | str) -> ReloadResult:
        try:
            result = await self._reload(source)
        except ReloadError as e:
            log.error(
                "Reload failed, still using the previous configuration: {reason}", reason=str(e)
            )
            return ReloadResult(ok=False, error=str(e))
        except Exception as e:
            # A bug: the SIGHUP handler has nobody to raise it to.
            log.failure("Reload failed, still using the previous configuration")
            return ReloadResult(ok=False, error=f"{type(e).__name__}: {e}")
        for warning in result.warnings:
            log.warn("{warning}", warning=warning)
        for name in result.needsRestart:
            log.warn(
                "Reload: {setting} changed; restart xmppcert to apply it (still using the old one)",
                setting=name,
            )
        log.info("Reloaded the configuration: {what}", what="; ".join(result.reloaded))
        return result

    def _currentCAs(self, old: Config) -> list[tuple[CAConfig, TrustedCA]]:
        """
        @return: the client CAs of the C{ca} checker in use, with the
            settings each was made from (C{old}'s C{[[certificates.ca]]}
            entries, in the same order).
        """
        names = old.certificates.checkers
        if "ca" not in names:
            return []
        index = names.index("ca")
        if index >= len(self.certificateChecker.chain):
            return []
        checker = self.certificateChecker.chain[index]
        if not isinstance(checker, CACertificateChecker) or len(checker.authorities) != len(old.certificates.ca):
            return []
        return list(zip(old.certificates.ca, checker.authorities, strict=True))

    def _buildChain(self, config: Config, authorities: list[TrustedCA]) -> CertificateCheckerChain:
        """
        The certificate checkers of C{config}, with the C{ca} checker
        trusting C{authorities} (prepared, their CRL checkers kept).

        @raise ValueError: a checker cannot be loaded or made.
        """
        return loadCertificateCheckers(
            config.certificates.checkers, config=config, store=self.store, clock=self.clock,
            trustedCAs=authorities,
        )

    async def _reload(self, source: Config | Path | str) -> ReloadResult:
        old: Config = self.server.config
        ours = self.portal.checkers.get(IClientCertificate) is self.certificateChecker

        # Phase 1: build everything; nothing running is touched. The files
        # are read in a thread, the checkers built on the reactor.
        prepared = await self.deferToThread(
            _prepare, source, old, self._currentCAs(old) if ours else None, self.clock
        )
        effective = prepared.effective
        if self.portal.checkers.get(IClientCertificate) is not self.certificateChecker:
            # The embedding application put its own on meanwhile.
            ours = False
        chain = self.certificateChecker
        if ours and prepared.authorities is not None:
            try:
                chain = self._buildChain(effective, prepared.authorities)
            except (ValueError, CRLError, TLSConfigurationError) as e:
                # ConfigError, CRLError and TLSConfigurationError are
                # ValueErrors too; listed for the reader.
                raise ReloadError(str(e)) from None
        else:
            ours = False

        # Phase 2: put it in place; nothing here can fail.
        oldLeaf = self.tlsFactory.certificate()
        self.tlsFactory.replaceWith(prepared.tlsFactory)
        if self.httpsFactory is not None and prepared.httpsFactory is not None:
            self.httpsFactory.replaceWith(prepared.httpsFactory)
        if ours:
            self.portal.registerChecker(chain, IClientCertificate)
            self._replaceRevocationCheckers(chain)
            self.certificateChecker = chain
        else:
            # An embedding application's checker: only tell it the domains.
            theirs = self.portal.checkers.get(IClientCertificate)
            if isinstance(theirs, CertificateCheckerChain) and theirs.domains is not None:
                theirs.domains = frozenset(effective.domains)
        self.server.config = effective
        self.server.sessions.domains = frozenset(effective.domains)
        self.server.throttle.reconfigure(effective.limits)
        self.server.addressLimiter.maxPerAddress = effective.limits.max_unauthenticated_per_address
        self.manager.requireXmppAddr = effective.certificates.require_xmppaddr
        self.manager.maxPerAccount = effective.certificates.max_per_account
        commands = getattr(self.root, "commands", None)
        if commands is not None:
            commands.sessionTimeout = effective.limits.command_session_timeout
        passwords = self.portal.checkers.get(IUsernamePassword)
        if isinstance(passwords, StoredPasswordChecker):
            passwords.iterations = effective.sasl.scram_iterations
        _log.setLevel(effective.log_level)

        leaf = prepared.leaf
        if fingerprint(leaf) == fingerprint(oldLeaf):
            reloaded = [f"server certificate unchanged ({effective.tls.certificate})"]
        else:
            reloaded = [
                f"new server certificate {effective.tls.certificate} (SHA-256 {fingerprint(leaf)},"
                f" valid until {leaf.not_valid_after_utc:%Y-%m-%d})"
            ]
        if ours:
            reloaded.extend(prepared.caChanges)
        if effective.domains != old.domains:
            reloaded.append(_domainChange(old, effective))
        if effective.admins != old.admins:
            reloaded.append(f"admins = {', '.join(effective.admins) or 'none'}")
        for name in ("certificates", "limits", "sasl", "http", "im", "log_level", "keepalive_interval"):
            if getattr(effective, name) != getattr(old, name):
                value = getattr(effective, name)
                reloaded.append(f"{name} = {value}" if isinstance(value, (str, float)) else f"[{name}]")
        if len(reloaded) == 1:
            reloaded.append("no other change")
        warnings = [f.message for f in prepared.findings if f.level == checks.WARN]
        return ReloadResult(ok=True, reloaded=reloaded, needsRestart=prepared.needsRestart, warnings=warnings)

    def _replaceRevocationCheckers(self, new: CertificateCheckerChain) -> None:
        """
        Hand the CRL checkers of C{new} to the server's
        C{RevocationListService} (made if needed): the background work of
        those no longer used stops, that of the new ones starts, and those
        kept from the previous chain go on undisturbed.
        """
        from xmppcert.service import RevocationListService

        crls = new.revocationCheckers()
        holder = next((s for s in self.root if isinstance(s, RevocationListService)), None)
        if holder is None:
            if crls:
                RevocationListService(crls).setServiceParent(self.root)
            return
        if holder.running:
            for checker in holder.checkers:
                if checker not in crls:
                    checker.stop()
            for checker in crls:
                if checker not in holder.checkers:
                    checker.start()
        holder.checkers = list(crls)


__all__ = ["LIVE", "RESTART_ONLY", "ReloadError", "ReloadResult", "Reloader"]
