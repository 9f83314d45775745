# -*- test-case-name: tests.test_reload -*-
"""
Reloading the configuration of a running server (SIGHUP, C{systemctl reload},
or C{ServerService.reload()} in an embedding application) without dropping
a session.

A reload happens in two phases. First everything new is built from the
file, without touching the running server: the configuration is parsed and
validated, the server certificate and key are loaded and checked against
each other and the served domains, the client CA bundles and CRL files are
read and the certificate checkers built. Any failure there ends the reload
with one line in the log and the server keeps every old setting. Only then
is the new state put in place, by assignments that cannot fail.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from xmppcert import _log, checks
from xmppcert.config import Config, ConfigError, loadConfig
from xmppcert.cred import (
    CertificateCheckerChain,
    IClientCertificate,
    StoredPasswordChecker,
    loadCertificateCheckers,
)
from xmppcert.crl import CRLError
from xmppcert.tls import ServerTLSContextFactory, TLSConfigurationError, loadCABundle
from xmppcert.x509 import fingerprint

log = Logger(observer=_log.observer)

#: Top-level settings applied live. C{data_dir} only matters through the
#: paths derived from it, which are compared themselves.
LIVE = frozenset({
    "domains", "data_dir", "tls", "certificates", "limits", "sasl", "log_level", "keepalive_interval",
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


def _clientCAs(config: Config) -> list[Any]:
    certs = config.certificates
    bundles = [ca.bundle for ca in certs.ca]
    if certs.ca_bundle is not None and certs.ca_bundle not in bundles:
        bundles.append(certs.ca_bundle)
    return [root for bundle in bundles for root in loadCABundle(bundle)]


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
    ) -> None:
        """
        @param root: the L{xmppcert.service.ServerService}, which gets a
            C{RevocationListService} when CRL files first appear.
        @param server: the L{xmppcert.c2s.C2SServer}; its C{config} is the
            configuration in force.
        @param manager: the L{xmppcert.saslcert.CertificateManager}.
        """
        self.root = root
        self.server = server
        self.tlsFactory = tlsFactory
        self.portal = portal
        self.certificateChecker = certificateChecker
        self.manager = manager
        self.store = store
        self.clock = clock

    def reload(self, source: Config | Path | str) -> ReloadResult:
        """
        Read and apply a configuration; log what happened (info when it
        was applied, a warning per setting that needs a restart, an error
        line when it was not applied).

        @param source: the configuration file, or a configuration.
        @return: what was done; never raises for a bad configuration.
        """
        try:
            result = self._reload(source)
        except ReloadError as e:
            log.error(
                "Reload failed, still using the previous configuration: {reason}", reason=str(e)
            )
            return ReloadResult(ok=False, error=str(e))
        for warning in result.warnings:
            log.warn("{warning}", warning=warning)
        for name in result.needsRestart:
            log.warn(
                "Reload: {setting} changed; restart xmppcert to apply it (still using the old one)",
                setting=name,
            )
        log.info("Reloaded the configuration: {what}", what="; ".join(result.reloaded))
        return result

    def _reload(self, source: Config | Path | str) -> ReloadResult:
        if isinstance(source, Config):
            new = source
        else:
            try:
                new = loadConfig(source)
            except ConfigError as e:
                raise ReloadError(str(e)) from None
        old: Config = self.server.config
        effective, needsRestart = _restartOnly(old, new)

        # Phase 1: build everything; nothing running is touched.
        try:
            tlsFactory = ServerTLSContextFactory.fromFiles(
                effective.tls.certificate, effective.tls.key, effective.certificates.policy,
                _clientCAs(effective), effective.tls.min_version,
            )
        except TLSConfigurationError as e:
            raise ReloadError(str(e)) from None
        leaf = tlsFactory.certificate()
        findings = checks.serverCertificateFindings(leaf, effective)
        problems = checks.errors(findings)
        if problems:
            raise ReloadError(problems[0].message)
        ours = self.portal.checkers.get(IClientCertificate) is self.certificateChecker
        chain = self.certificateChecker
        if ours:
            try:
                chain = loadCertificateCheckers(
                    effective.certificates.checkers, config=effective, store=self.store, clock=self.clock
                )
            except (ValueError, CRLError, TLSConfigurationError) as e:
                # ConfigError, CRLError and TLSConfigurationError are
                # ValueErrors too; listed for the reader.
                raise ReloadError(str(e)) from None

        # Phase 2: put it in place; nothing here can fail.
        oldLeaf = self.tlsFactory.certificate()
        self.tlsFactory.replaceWith(tlsFactory)
        if ours:
            self.portal.registerChecker(chain, IClientCertificate)
            self._replaceRevocationCheckers(self.certificateChecker, chain)
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
        passwords = self.portal.checkers.get(IUsernamePassword)
        if isinstance(passwords, StoredPasswordChecker):
            passwords.iterations = effective.sasl.scram_iterations
        _log.setLevel(effective.log_level)

        if fingerprint(leaf) == fingerprint(oldLeaf):
            reloaded = [f"server certificate unchanged ({effective.tls.certificate})"]
        else:
            reloaded = [
                f"new server certificate {effective.tls.certificate} (SHA-256 {fingerprint(leaf)},"
                f" valid until {leaf.not_valid_after_utc:%Y-%m-%d})"
            ]
        if effective.certificates.ca:
            reloaded.append("client CA bundles and CRL files read again")
        if effective.domains != old.domains:
            reloaded.append(_domainChange(old, effective))
        for name in ("certificates", "limits", "sasl", "log_level", "keepalive_interval"):
            if getattr(effective, name) != getattr(old, name):
                value = getattr(effective, name)
                reloaded.append(f"{name} = {value}" if isinstance(value, (str, float)) else f"[{name}]")
        if len(reloaded) == 1 and not effective.certificates.ca:
            reloaded.append("no other change")
        warnings = [f.message for f in findings if f.level == checks.WARN]
        return ReloadResult(ok=True, reloaded=reloaded, needsRestart=needsRestart, warnings=warnings)

    def _replaceRevocationCheckers(self, old: CertificateCheckerChain, new: CertificateCheckerChain) -> None:
        """
        Stop the background work of the old CRL checkers and start the new
        ones' (with the server's C{RevocationListService}, made if needed).
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
                checker.stop()
            for checker in crls:
                checker.start()
        holder.checkers = list(crls)


__all__ = ["LIVE", "RESTART_ONLY", "ReloadError", "ReloadResult", "Reloader"]
