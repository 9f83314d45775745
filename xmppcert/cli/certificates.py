# -*- test-case-name: tests.test_cli -*-
"""
C{xmppcert gencert} and C{xmppcert cert}: making client certificates
and managing the certificates accounts registered (XEP-0257).
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

from cryptography.hazmat.primitives import serialization
from twisted.internet import defer, task
from twisted.python import failure
from twisted.words.protocols.jabber import jid as jabberJID

from xmppcert import certificates, control, cred, x509
from xmppcert.certificates import Problem
from xmppcert.cli import common
from xmppcert.cli.common import (
    CommandError,
    cliActor,
    formatTime,
    loadConfigOf,
    notifyServer,
    openDatabase,
    parseAccountJID,
    parseUserJID,
    positiveInt,
    readLine,
)
from xmppcert.config import Config
from xmppcert.jids import parseJID
from xmppcert.store.interfaces import checkCertificateName
from xmppcert.store.sqlite import SQLiteDatabase

_T = TypeVar("_T")


def _readPassphrase(args: argparse.Namespace, stdin: TextIO, target: Path) -> bytes | None:
    """
    The passphrase for a PKCS#12 file: one line of C{stdin} with
    C{--passphrase-stdin}, asked twice on a terminal, or none with
    C{--no-passphrase}. An unencrypted file is only written when asked for
    explicitly.

    @raise CommandError: no passphrase can be read, it is empty, or the two
        entries differ.
    """
    if args.no_passphrase:
        return None
    if args.passphrase_stdin:
        passphrase = readLine(stdin)
    elif stdin.isatty():
        try:
            passphrase = getpass.getpass(f"Passphrase for {target}: ")
            again = getpass.getpass(f"Passphrase for {target} (again): ")
        except EOFError:
            raise CommandError("no passphrase given") from None
        if passphrase != again:
            raise CommandError("the passphrases do not match")
    else:
        raise CommandError(
            f"{target} needs a passphrase: give --passphrase-stdin, run on a terminal,"
            " or give --no-passphrase for an unencrypted file"
        )
    if not passphrase:
        raise CommandError(
            "the passphrase must not be empty (give --no-passphrase for an unencrypted file)"
        )
    return passphrase.encode("utf-8")


def _writeFiles(files: Sequence[tuple[Path, bytes, int]], force: bool) -> None:
    """
    Write each C{(path, data, mode)}; the file has C{mode} from its
    creation, so a private key is never readable by others.

    Without C{force} every file is created exclusively (C{O_EXCL}): an
    existing file, even one that appeared just now, is never overwritten,
    and the files written before the failure are removed again. With
    C{force} each file is replaced atomically.

    @raise CommandError: a file exists and C{force} is false.
    @raise OSError: a file cannot be written.
    """
    written: list[Path] = []
    try:
        for path, data, mode in files:
            if force:
                fd, tempName = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
                try:
                    with os.fdopen(fd, "wb") as f:
                        os.fchmod(f.fileno(), mode)
                        f.write(data)
                    os.replace(tempName, path)
                except BaseException:
                    os.unlink(tempName)
                    raise
            else:
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                except FileExistsError:
                    raise CommandError(
                        f"{path} exists; remove it or give --force to overwrite it"
                    ) from None
                written.append(path)
                with os.fdopen(fd, "wb") as f:
                    # The umask may have taken bits away; set exactly mode.
                    os.fchmod(f.fileno(), mode)
                    f.write(data)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _gencert(args: argparse.Namespace, out: TextIO) -> None:
    """
    Make a key and a self-signed client certificate naming the given JIDs
    in id-on-xmppAddr (XEP-0178), to register with C{cert add}.
    """
    prefix = args.out
    keyPath = Path(prefix + ".key")
    certPath = Path(prefix + ".crt")
    p12Path = Path(prefix + ".p12")
    if not args.p12:
        for option, given in [
            ("--passphrase-stdin", args.passphrase_stdin),
            ("--no-passphrase", args.no_passphrase),
            ("--legacy-p12", args.legacy_p12),
        ]:
            if given:
                raise CommandError(f"{option} only applies with --p12")
    if args.no_passphrase and (args.passphrase_stdin or args.legacy_p12):
        raise CommandError(
            "--no-passphrase cannot go with --passphrase-stdin or --legacy-p12"
            " (legacy files must be encrypted)"
        )
    if args.days < 1:
        raise CommandError(f"--days must be at least 1, not {args.days}")
    paths = [keyPath, certPath] + ([p12Path] if args.p12 else [])
    if not args.force:
        # Fail before asking for a passphrase; _writeFiles checks again.
        existing = [str(path) for path in paths if path.exists()]
        if existing:
            raise CommandError(
                f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''};"
                " remove or give --force to overwrite"
            )
    jids = [parseUserJID(text) for text in [args.jid, *(args.jids or [])]]
    passphrase = _readPassphrase(args, sys.stdin, p12Path) if args.p12 else None

    key = x509.generateClientKey(args.key)
    certificate = x509.issueClientCertificate(
        [j.full() for j in jids], key, days=args.days, now=common.now()
    )
    files = [(keyPath, x509.privateKeyPEM(key), 0o600), (certPath, x509.certificatePEM(certificate), 0o644)]
    if args.p12:
        bundle = x509.toPKCS12(
            key,
            certificate,
            friendlyName=jids[0].full(),
            passphrase=passphrase,
            legacy=args.legacy_p12,
        )
        # The bundle holds the private key too.
        files.append((p12Path, bundle, 0o600))
    _writeFiles(files, args.force)

    facts = x509.certificateFacts(certificate)
    print(f"wrote private key {keyPath} (keep it secret)", file=out)
    print(f"wrote certificate {certPath}", file=out)
    if args.p12:
        encrypted = "unencrypted" if passphrase is None else "encrypted"
        print(f"wrote PKCS#12 bundle {p12Path} ({encrypted})", file=out)
    print(f"JIDs: {', '.join(j.full() for j in facts.xmppAddrs)}", file=out)
    print(f"valid until: {formatTime(facts.notAfter)}", file=out)
    print(f"fingerprint: {x509.displayFingerprint(facts.fingerprint)}", file=out)
    print(
        "next: xmppcert cert add"
        f" {shlex.quote(jids[0].userhost())} NAME {shlex.quote(str(certPath))}",
        file=out,
    )


class _Immediately:
    """
    The command line's database as the certificate manager's store: each
    method runs at once and returns a Deferred that has fired, so a
    manager operation over it is done when the call returns.
    """

    def __init__(self, database: SQLiteDatabase) -> None:
        self._database = database

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._database, name)

        def call(*args: Any, **kwargs: Any) -> defer.Deferred[Any]:
            return defer.maybeDeferred(method, *args, **kwargs)

        return call


def _auditFailed(action: str, target: str, actor: str, e: Exception) -> None:
    # The change is made: a warning, not an error of the command.
    print(
        f"xmppcert: warning: the change was made but not recorded in the audit trail: {e}",
        file=sys.stderr,
    )


def _manager(database: SQLiteDatabase, config: Config) -> certificates.CertificateManager:
    """
    The certificate manager over C{database}, at the command line's time,
    with no sessions: a revocation is told to a running server through the
    control channel instead.
    """
    clock = task.Clock()
    clock.advance(common.now().timestamp())
    return certificates.CertificateManager(
        _Immediately(database),
        clock,
        requireXmppAddr=config.certificates.require_xmppaddr,
        auditFailed=_auditFailed,
    )


def _done(d: defer.Deferred[_T]) -> _T:
    """
    The result of a manager operation over L{_Immediately}, or its error
    raised.
    """
    results: list[Any] = []
    d.addBoth(results.append)
    if not results:
        raise RuntimeError("the certificate manager did not finish at once")
    if isinstance(results[0], failure.Failure):
        results[0].raiseException()
    result: _T = results[0]
    return result


def _refusal(e: certificates.CertificateManagementError, account: str, certificate: Any = None) -> Exception:
    """
    What the command line says for a refusal of the certificate manager.

    @param certificate: the certificate being added, for its dates.
    """
    if isinstance(e, certificates.StoreUnavailable) and isinstance(e.cause, Exception):
        # Reported as any other database error.
        return e.cause
    if isinstance(e, certificates.NoSuchAccount):
        return CommandError(f"no account {account}")
    if isinstance(e, certificates.NoSuchCertificate):
        return CommandError(f"no certificate named {e.name!r} for {account}")
    if isinstance(e, certificates.RevocationIsFinal):
        return CommandError(
            f"certificate {e.name!r} of {account} is revoked, which is final; add a new certificate instead"
        )
    if isinstance(e, certificates.CertificateAlreadyRegistered):
        if e.revoked:
            return CommandError("this certificate was revoked, which is final: it can never be registered again")
        if e.name is not None:
            return CommandError(f"this certificate is already registered for {account} as {e.name!r}")
        return CommandError("this certificate is already registered")
    if isinstance(e, certificates.CertificateNotAcceptable):
        return CommandError(_notAcceptable(e, account, certificate))
    return CommandError(str(e))


def _notAcceptable(e: certificates.CertificateNotAcceptable, account: str, certificate: Any) -> str:
    if e.problem is Problem.EXPIRED:
        return f"the certificate expired on {formatTime(certificate.not_valid_after_utc)}"
    if e.problem is Problem.NOT_YET_VALID:
        return f"the certificate is not valid before {formatTime(certificate.not_valid_before_utc)}"
    if e.problem is Problem.BAD_XMPPADDR:
        # XEP-0178: a certificate whose JIDs cannot be read is unusable.
        return f"the certificate is not usable: {e.reason}"
    if e.problem is Problem.NOT_CLIENT:
        return f"not a client certificate: {e.reason}"
    if e.problem is Problem.NAMES_NO_JID:
        return (
            f"the certificate names no JID, so nothing in it says it is {account}'s;"
            " give --allow-no-xmppaddr to add it anyway"
        )
    # Never, whatever the options, for one naming others: it would let the
    # key of the user the certificate names log in to this account.
    return e.reason


def _certAdd(args: argparse.Namespace, out: TextIO) -> None:
    """
    Register a certificate for an account (XEP-0257 section 2.1), after the
    checks a login would make anyway: a certificate that could never log in
    is refused here, with the reason.
    """
    config = loadConfigOf(args)
    account = parseAccountJID(args.jid, config)
    name = checkCertificateName(args.name)
    database = openDatabase(config)
    try:
        # Before the file is read: the account is the first thing wrong.
        if not database.accountExists(account):
            raise CommandError(f"no account {account}")
        certificate = x509.loadCertificateFile(Path(args.file))
        try:
            added = _done(
                _manager(database, config).add(
                    certificates.Actor.operator(cliActor()),
                    account,
                    name,
                    certificate.public_bytes(serialization.Encoding.DER),
                    mayManage=not args.no_cert_management,
                    allowNoXmppAddr=args.allow_no_xmppaddr,
                )
            )
        except certificates.CertificateNameTaken:
            raise CommandError(f"a certificate named {name!r} is already registered for {account}") from None
        except certificates.CertificateManagementError as e:
            raise _refusal(e, account, certificate) from None
    finally:
        database.close()
    print(f"added certificate {name!r} for {account}", file=out)
    print(f"fingerprint: {x509.displayFingerprint(added.fingerprint)}", file=out)
    if args.no_cert_management:
        print("note: sessions logged in with it cannot manage certificates", file=out)
    addrs = x509.certificateFacts(certificate).xmppAddrs
    if certificates.accountNamingProblem(addrs, account, config.certificates.require_xmppaddr) is not None:
        print(
            f"note: it does not name {account}, and certificates.require_xmppaddr is on:"
            " it cannot log in until that is turned off",
            file=out,
        )


def _inspectLines(
    certificate: Any, chain: Sequence[Any], config: Config, database: SQLiteDatabase, account: str | None
) -> list[str]:
    """
    What a certificate is, and what SASL EXTERNAL would do with it: the same
    functions as the login path (L{cred.checkStoredCertificate},
    L{cred.CACertificateChecker}), so the answer is the server's.
    """
    facts = x509.certificateFacts(certificate)
    moment = common.now()
    state = x509.validity(certificate, moment)
    lines = [
        f"subject:       {facts.subject}",
        f"issuer:        {facts.issuer}" + (" (self-signed)" if facts.selfSigned else ""),
        f"key:           {facts.keyDescription}",
        f"fingerprint:   {x509.displayFingerprint(facts.fingerprint)}",
        f"valid:         {formatTime(facts.notBefore)} to {formatTime(facts.notAfter)}"
        + {
            x509.Validity.VALID: " (valid now)",
            x509.Validity.EXPIRED: " (EXPIRED)",
            x509.Validity.NOT_YET_VALID: " (NOT YET VALID)",
        }[state],
        "client auth:   " + ("yes" if facts.clientProblem is None else f"NO ({facts.clientProblem})"),
    ]
    if facts.xmppAddrError is not None:
        lines.append(f"xmppAddrs:     UNREADABLE: {facts.xmppAddrError}")
    else:
        lines.append("xmppAddrs:     " + (", ".join(a.full() for a in facts.xmppAddrs) or "none"))
    if facts.emails:
        lines.append("e-mail:        " + ", ".join(facts.emails))
    stored = database.certificateByFingerprint(facts.fingerprint)
    if stored is None:
        lines.append("registered:    no")
    else:
        lines.append(
            f"registered:    as {stored.name!r} for {stored.account} ({stored.state}"
            + ("" if stored.canManage else ", no certificate management")
            + f", last used {formatTime(stored.lastUsedAt)})"
        )
    served = frozenset(config.domains)
    domain = _inspectDomain(account, stored, facts.xmppAddrs, config)
    domains = cred.streamDomains(domain, served)
    verdicts: list[str] = []
    authzid = account
    if stored is not None and stored.state != "enabled":
        lines.append("EXTERNAL:      would FAIL")
        lines.append(f"  the certificate is {stored.state} in the store, which no checker overrides")
        return lines
    if stored is None and database.isCertificateRevoked(facts.fingerprint):
        lines.append("EXTERNAL:      would FAIL")
        lines.append("  the certificate was revoked (its record was removed), which no checker overrides")
        return lines
    for checkerName in config.certificates.checkers:
        try:
            if checkerName == "stored":
                identity = cred.checkStoredCertificate(
                    certificate, stored, authzid, domains, config.certificates.require_xmppaddr, moment
                )
            elif checkerName == "ca":
                identity = _inspectWithCA(chain, config, database, authzid, domain)
            else:
                verdicts.append(f"{checkerName}: a custom checker; run a login to see what it decides")
                continue
        except cred.SASLAuthFailure as e:
            final = " (final: the other checkers are not tried)" if e.final else ""
            verdicts.append(f"{checkerName}: refuses with <{e.condition}/>: {e.detail}{final}")
            if e.final:
                lines.append("EXTERNAL:      would FAIL")
                break
            continue
        pinned = f" (may bind only the resource {identity.jid.resource!r})" if identity.jid.resource else ""
        verdicts.append(f"{checkerName}: accepts, as {identity.jid.userhost()}{pinned}")
        lines.append(f"EXTERNAL:      would log in as {identity.jid.userhost()}{pinned} [{checkerName}]")
        break
    else:
        custom = [n for n in config.certificates.checkers if n not in ("stored", "ca")]
        lines.append("EXTERNAL:      would FAIL" + (" unless a custom checker accepts it" if custom else ""))
    lines.extend("  " + v for v in verdicts)
    return lines


#: Exit status of C{cert inspect} when no checker it can run accepts the
#: certificate, for scripts (1 and 2 are errors).
INSPECT_WOULD_FAIL = 3


def _inspectDomain(account: str | None, stored: Any, addrs: Sequence[Any], config: Config) -> str:
    """
    The domain a client's stream would address: the account's, else the
    registration's, else the certificate's first JID of a served domain.
    """
    candidates = [account.rpartition("@")[2].partition("/")[0] if account else None]
    candidates.append(stored.account.rpartition("@")[2] if stored is not None else None)
    candidates.extend(a.host for a in addrs)
    for candidate in candidates:
        if candidate in config.domains:
            return candidate
    return config.domains[0]


def _inspectWithCA(
    chain: Sequence[Any], config: Config, database: SQLiteDatabase, authzid: str | None, domain: str
) -> cred.CertificateIdentity:
    """
    The C{ca} checker's decision, without its CRL checks (they may need the
    network, and run at login).
    """
    from twisted.internet.task import Clock

    clock = Clock()
    clock.advance(common.now().timestamp())
    checker = cred.CACertificateChecker(
        cred.loadTrustedCAs(config, clock, revocation=False),
        database,  # type: ignore[arg-type]
        clock,
        config.domains,
    )
    creds = cred.ClientCertificate(tuple(chain), authzid, domain)
    authority, verified = checker.verify(creds)
    identity = checker.identityOf(creds, authzid, authority, verified)
    if not database.accountExists(identity.jid.userhost()):
        raise cred.SASLAuthFailure("not-authorized", detail=f"there is no account {identity.jid.userhost()}")
    return identity



def _certInspect(args: argparse.Namespace, out: TextIO) -> int:
    """
    Explain a certificate, and whether (and why not) it would log in.

    @return: 0 when it would log in, L{INSPECT_WOULD_FAIL} otherwise.
    """
    config = loadConfigOf(args)
    account = None
    if args.account:
        try:
            account = parseJID(args.account).full()
        except jabberJID.InvalidFormat as e:
            raise CommandError(str(e)) from None
    try:
        data = Path(args.file).read_bytes()
    except OSError as e:
        raise CommandError(f"cannot read {args.file}: {e.strerror}") from None
    certificate = x509.loadCertificate(data)
    chain = [certificate]
    try:
        from cryptography import x509 as cx509

        chain = cx509.load_pem_x509_certificates(data)
    except (ValueError, cx509.InvalidVersion):
        pass
    database = openDatabase(config)
    try:
        lines = _inspectLines(certificate, chain, config, database, account)
    finally:
        database.close()
    for line in lines:
        print(line, file=out)
    return INSPECT_WOULD_FAIL if any(line.startswith("EXTERNAL:      would FAIL") for line in lines) else 0


def _shortFingerprint(fingerprint: str, full: bool) -> str:
    display = x509.displayFingerprint(fingerprint)
    # The first 8 bytes tell certificates apart; --full shows all 32.
    return display if full else display[:23] + "..."


def _certificateTable(listed: Sequence[certificates.CertificateInfo], full: bool) -> list[str]:
    header = ("NAME", "STATE", "FINGERPRINT", "NOT AFTER", "LAST USED", "MANAGE")
    rows = [header] + [
        (
            c.name,
            c.state,
            _shortFingerprint(c.fingerprint, full),
            formatTime(c.notAfter),
            formatTime(c.lastUsedAt),
            "yes" if c.mayManage else "no",
        )
        for c in listed
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _certList(args: argparse.Namespace, out: TextIO) -> None:
    config = loadConfigOf(args)
    account = parseAccountJID(args.jid, config)
    database = openDatabase(config)
    try:
        listed = _done(_manager(database, config).list(certificates.Actor.operator(cliActor()), account))
    except certificates.CertificateManagementError as e:
        raise _refusal(e, account) from None
    finally:
        database.close()
    if not listed:
        print(f"no certificates for {account}", file=out)
        return
    for line in _certificateTable(listed, args.full):
        print(line, file=out)


def _changeOne(
    args: argparse.Namespace, action: str
) -> tuple[Config, str, str, certificates.CertificateChange]:
    """
    Apply one change (a method of the manager, by the state it sets, or
    C{"removed"}) to the certificate C{args.name} of C{args.jid}.

    @return: the configuration, the account, the name and the change.
    """
    config = loadConfigOf(args)
    account = parseAccountJID(args.jid, config)
    name = args.name.strip()
    database = openDatabase(config)
    try:
        manager = _manager(database, config)
        method = {
            "enabled": manager.enable, "disabled": manager.disable,
            "revoked": manager.revoke, "removed": manager.remove,
        }[action]
        [change] = _done(method(certificates.Actor.operator(cliActor()), account, [name]))
    except certificates.CertificateNameTaken:
        raise CommandError(f"another certificate of {account} named {name!r} is enabled") from None
    except certificates.CertificateManagementError as e:
        raise _refusal(e, account) from None
    finally:
        database.close()
    return config, account, name, change


def _certSetState(state: str) -> Callable[[argparse.Namespace, TextIO], None]:
    """
    The command that puts a certificate into C{state} (XEP-0257 sections
    2.3 to 2.5: revocation is final).
    """

    def command(args: argparse.Namespace, out: TextIO) -> None:
        config, account, name, change = _changeOne(args, state)
        if not change.changed:
            print(f"certificate {name!r} of {account} is already {state}", file=out)
            return
        print(f"{state} certificate {name!r} of {account}", file=out)
        if state == "revoked":
            # A running server ends its sessions now, not at its next poll.
            ended = notifyServer(config, control.CertificateRevoked, fingerprint=change.certificate.fingerprint)
            if ended:
                print(f"ended {ended} session{'' if ended == 1 else 's'} that logged in with it", file=out)

    command.__name__ = f"_cert_{state}"
    return command


def _certRemove(args: argparse.Namespace, out: TextIO) -> None:
    _, account, name, change = _changeOne(args, "removed")
    print(f"removed certificate {name!r} of {account}", file=out)
    if change.previousState == "revoked":
        print(
            "note: its revocation stays in force: it can never log in or be registered again",
            file=out,
        )


def addCommands(commands: Any, configOption: argparse.ArgumentParser) -> None:
    gencert = commands.add_parser(
        "gencert",
        help="make a key and a self-signed client certificate for JIDs",
        description=(
            "Make a private key (PREFIX.key, mode 0600) and a self-signed client"
            " certificate (PREFIX.crt) naming the JIDs in id-on-xmppAddr, and with"
            " --p12 a PKCS#12 bundle of both (PREFIX.p12) to import into a client."
            " A full JID limits the certificate to that resource. Needs no"
            " configuration file; register the certificate with 'cert add'."
        ),
    )
    gencert.add_argument("jid", metavar="JID", help="user@domain or user@domain/resource")
    gencert.add_argument(
        "--jid", dest="jids", metavar="JID", action="append", help="another JID (repeatable)"
    )
    gencert.add_argument("--key", choices=("ec", "rsa"), default="ec", help="default: ec (P-256)")
    gencert.add_argument(
        "--days", type=positiveInt, default=365, metavar="N", help="validity (default: 365)"
    )
    gencert.add_argument("--out", metavar="PREFIX", required=True, help="file name prefix")
    gencert.add_argument("--p12", action="store_true", help="also write PREFIX.p12")
    gencert.add_argument(
        "--passphrase-stdin",
        action="store_true",
        help="read the PKCS#12 passphrase from one line of stdin",
    )
    gencert.add_argument(
        "--no-passphrase", action="store_true", help="write PREFIX.p12 unencrypted"
    )
    gencert.add_argument(
        "--legacy-p12",
        action="store_true",
        help="encrypt PREFIX.p12 with SHA-1/3DES for old importers",
    )
    gencert.add_argument("--force", action="store_true", help="overwrite existing files")
    gencert.set_defaults(func=_gencert)

    cert = commands.add_parser(
        "cert", parents=[configOption], help="manage the client certificates of accounts"
    )
    certCommands = cert.add_subparsers(dest="certCommand", metavar="COMMAND", required=True)
    add = certCommands.add_parser(
        "add",
        parents=[configOption],
        help="register a certificate (PEM or DER) for an account",
    )
    add.add_argument("jid", metavar="JID", help="bare JID, user@domain")
    add.add_argument("name", metavar="NAME", help="a name for it, unique in the account")
    add.add_argument("file", metavar="FILE", help="the certificate, PEM or DER")
    add.add_argument(
        "--no-cert-management",
        action="store_true",
        help="sessions logged in with it may not manage certificates",
    )
    add.add_argument(
        "--allow-no-xmppaddr",
        action="store_true",
        help="accept a certificate without an xmppAddr naming the account",
    )
    add.set_defaults(func=_certAdd)

    inspect = certCommands.add_parser(
        "inspect",
        parents=[configOption],
        help="show a certificate and whether SASL EXTERNAL would accept it, and why not",
    )
    inspect.add_argument("file", metavar="FILE", help="the certificate (PEM, chain allowed, or DER)")
    inspect.add_argument(
        "--account",
        metavar="JID",
        help="log in as this JID, as a client sending it as the authzid (a full JID pins a resource)",
    )
    inspect.set_defaults(func=_certInspect)

    listCommand = certCommands.add_parser(
        "list", parents=[configOption], help="list the certificates of an account"
    )
    listCommand.add_argument("jid", metavar="JID", help="bare JID, user@domain")
    listCommand.add_argument("--full", action="store_true", help="show whole fingerprints")
    listCommand.set_defaults(func=_certList)

    for name, func, helpText in [
        ("disable", _certSetState("disabled"), "stop a certificate from logging in"),
        ("enable", _certSetState("enabled"), "let a disabled certificate log in again"),
        ("revoke", _certSetState("revoked"), "revoke a certificate for good"),
        ("remove", _certRemove, "delete a certificate"),
    ]:
        sub = certCommands.add_parser(name, parents=[configOption], help=helpText)
        sub.add_argument("jid", metavar="JID", help="bare JID, user@domain")
        sub.add_argument("name", metavar="NAME", help="the certificate's name")
        sub.set_defaults(func=func)


