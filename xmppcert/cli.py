# -*- test-case-name: tests.test_cli -*-
"""
The C{xmppcert} command: set up a data directory, manage accounts and their
client certificates (XEP-0257), and make client certificates for SASL
EXTERNAL (XEP-0178).

It works on the database file directly through the synchronous
L{SQLiteDatabase}, without a reactor; it may run while the server is using
the same file (a running server notices state changes through
L{SQLiteDatabase.changesSince}).
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import os
import re
import shlex
import sqlite3
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives import serialization
from twisted.words.protocols.jabber import jid as jabberJID

from xmppcert import cred, passwords, x509
from xmppcert.config import Config, ConfigError, configFromDict, defaultConfigText, loadConfig
from xmppcert.jids import parseJID
from xmppcert.store.interfaces import (
    AccountExists,
    CertificateExists,
    CertificateRevoked,
    NoSuchAccount,
    NoSuchCertificate,
    StoredCertificate,
    StoreError,
    checkCertificateName,
)
from xmppcert.store.sqlite import SQLiteDatabase

#: Used when neither C{--config} nor C{$XMPPCERT_CONFIG} is given.
DEFAULT_CONFIG = "var/xmppcert.toml"

#: Name of the configuration file that C{init} writes in the data directory.
CONFIG_NAME = "xmppcert.toml"


class CommandError(Exception):
    """
    An expected failure, reported as one line on stderr with exit status 1.
    """


def now() -> datetime.datetime:
    """
    The current time (timezone-aware, UTC) for the validity checks of
    certificates; tests replace this function.
    """
    return datetime.datetime.now(datetime.UTC)


def _defaultConfigPath() -> str:
    return os.environ.get("XMPPCERT_CONFIG") or DEFAULT_CONFIG


def _loadConfig(args: argparse.Namespace) -> Config:
    return loadConfig(args.config)


def _openDatabase(config: Config) -> SQLiteDatabase:
    return SQLiteDatabase.open(config.store.sqlite)


def _parseAccountJID(text: str, config: Config) -> str:
    """
    @return: the normalised bare JID C{text}.
    @raise CommandError: C{text} is not a bare JID with a localpart of a
        domain that C{config} serves.
    """
    try:
        parsed = parseJID(text)
    except jabberJID.InvalidFormat as e:
        raise CommandError(str(e)) from None
    if not parsed.user:
        raise CommandError(f"{text!r} is not an account JID: it has no localpart (user@domain)")
    if parsed.resource is not None:
        raise CommandError(
            f"{text!r} is a full JID; give the bare JID {parsed.userhost()!r} instead"
        )
    if parsed.host not in config.domains:
        raise CommandError(
            f"{parsed.host!r} is not served by this server"
            f" (domains: {', '.join(config.domains)})"
        )
    return parsed.userhost()


def _readLine(stdin: TextIO) -> str:
    """
    One line of C{stdin} without its line ending; spaces are kept.
    """
    line = stdin.readline()
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    return line


def _readPassword(stdin: TextIO) -> str:
    """
    Read a new password: asked twice without echo on a terminal, otherwise
    one line of C{stdin} without its line ending (for scripts).

    @raise CommandError: the password is empty, or the two entries differ.
    """
    if stdin.isatty():
        try:
            password = getpass.getpass("New password: ")
            again = getpass.getpass("New password (again): ")
        except EOFError:
            raise CommandError("no password given") from None
        if password != again:
            raise CommandError("the passwords do not match")
    else:
        # Only the line ending: spaces may be part of a password.
        password = _readLine(stdin)
    if not password:
        raise CommandError("the password must not be empty")
    return password


def _configText(domains: list[str], directory: Path) -> str:
    """
    The default configuration for C{domains}, checked by parsing it.

    @raise ConfigError: a domain is not valid.
    """
    text = defaultConfigText(domains[0])
    # defaultConfigText takes one domain; JSON strings are valid TOML strings.
    line = "domains = " + json.dumps(domains)
    text = re.sub(r"^domains = .*$", lambda match: line, text, count=1, flags=re.MULTILINE)
    try:
        configFromDict(tomllib.loads(text), directory)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"domains: not usable in a configuration file ({e})") from None
    return text


def _init(args: argparse.Namespace, out: TextIO) -> None:
    dataDir = Path(args.data_dir)
    configPath = dataDir / CONFIG_NAME
    text = None
    if not configPath.exists():
        # Check the domains before creating anything.
        text = _configText(args.domain or ["localhost"], dataDir.resolve())

    if dataDir.is_dir():
        print(f"kept directory {dataDir}", file=out)
    else:
        # The database holds password-equivalent keys: keep others out.
        dataDir.mkdir(parents=True, mode=0o700)
        print(f"created directory {dataDir}", file=out)

    if text is None:
        note = " (--domain ignored; edit the file instead)" if args.domain else ""
        print(f"kept existing configuration {configPath}{note}", file=out)
    else:
        # O_EXCL: never overwrite a file that appeared in the meantime.
        with open(configPath, "x", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote configuration {configPath}", file=out)
    config = loadConfig(configPath)

    certPath, keyPath = config.tls.certificate, config.tls.key
    if certPath.exists() and keyPath.exists():
        print(f"kept certificate {certPath} and key {keyPath}", file=out)
    elif certPath.exists() or keyPath.exists():
        present, missing = (certPath, keyPath) if certPath.exists() else (keyPath, certPath)
        raise CommandError(
            f"{present} exists but {missing} does not; restore it, or remove {present}"
            " to generate a new self-signed pair"
        )
    else:
        x509.writeServerCertificate(certPath, keyPath, config.domains)
        print(
            f"generated self-signed certificate {certPath} and key {keyPath}"
            f" for {', '.join(config.domains)}",
            file=out,
        )

    databasePath = config.store.sqlite
    existed = databasePath.exists()
    _openDatabase(config).close()
    print(f"{'kept' if existed else 'created'} database {databasePath}", file=out)
    if not existed:
        example = f"alice@{config.domains[0]}"
        print(
            f"next: add a user with  xmppcert --config {configPath} user add {example}\n"
            f"      and a device certificate with  xmppcert --config {configPath} gencert {example} --out alice-phone\n"
            f"      then  xmppcert --config {configPath} cert add {example} Phone alice-phone.crt",
            file=out,
        )


def _userAdd(args: argparse.Namespace, out: TextIO) -> None:
    config = _loadConfig(args)
    account = _parseAccountJID(args.jid, config)
    database = _openDatabase(config)
    try:
        # Fail before asking for a password that would be thrown away.
        if database.accountExists(account):
            raise CommandError(f"account {account} already exists")
        if args.no_password:
            # Certificate-only: no SCRAM credentials, so PLAIN and SCRAM
            # always fail for it; it logs in with SASL EXTERNAL.
            credentials = []
        else:
            password = _readPassword(sys.stdin)
            credentials = passwords.makeScramCredentials(password, config.sasl.scram_iterations)
        try:
            database.addAccount(account, credentials)
        except AccountExists:
            raise CommandError(f"account {account} already exists") from None
    finally:
        database.close()
    if args.no_password:
        print(f"added {account} without a password (it logs in with a certificate)", file=out)
    else:
        print(f"added {account}", file=out)


def _userPasswd(args: argparse.Namespace, out: TextIO) -> None:
    config = _loadConfig(args)
    account = _parseAccountJID(args.jid, config)
    database = _openDatabase(config)
    try:
        if not database.accountExists(account):
            raise CommandError(f"no account {account}")
        password = _readPassword(sys.stdin)
        credentials = passwords.makeScramCredentials(password, config.sasl.scram_iterations)
        try:
            database.setCredentials(account, credentials)
        except NoSuchAccount:
            raise CommandError(f"no account {account}") from None
    finally:
        database.close()
    print(f"changed the password of {account}", file=out)


def _userDelete(args: argparse.Namespace, out: TextIO) -> None:
    config = _loadConfig(args)
    account = _parseAccountJID(args.jid, config)
    database = _openDatabase(config)
    try:
        database.removeAccount(account)
    except NoSuchAccount:
        raise CommandError(f"no account {account}") from None
    finally:
        database.close()
    print(f"deleted {account}", file=out)


def _userList(args: argparse.Namespace, out: TextIO) -> None:
    config = _loadConfig(args)
    domain = None
    if args.domain is not None:
        try:
            parsed = jabberJID.JID(args.domain)
        except (jabberJID.InvalidFormat, RuntimeError, UnicodeError, ValueError) as e:
            raise CommandError(f"{args.domain!r} is not a valid domain: {e}") from None
        if parsed.user is not None or parsed.resource is not None:
            raise CommandError(f"{args.domain!r} is not a domain")
        domain = parsed.host
    database = _openDatabase(config)
    try:
        accounts = database.listAccounts(domain)
    finally:
        database.close()
    for account in accounts:
        print(account, file=out)


# ---------------------------------------------------------------------------
# Client certificates: gencert and cert ...
# ---------------------------------------------------------------------------


def _formatTime(moment: datetime.datetime | float | None, never: str = "never") -> str:
    """
    A time for people, in UTC to the minute.
    """
    if moment is None:
        return never
    if not isinstance(moment, datetime.datetime):
        moment = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _parseUserJID(text: str) -> jabberJID.JID:
    """
    @return: the JID C{text}, which must have a localpart; a resource is
        allowed (it pins a certificate to that resource).
    @raise CommandError: it is not such a JID.
    """
    try:
        parsed = jabberJID.JID(text)
    except (jabberJID.InvalidFormat, IndexError, RuntimeError, UnicodeError, ValueError) as e:
        raise CommandError(f"{text!r} is not a valid JID: {e}") from None
    if not parsed.user:
        raise CommandError(f"{text!r} is not a user's JID: it has no localpart (user@domain)")
    return parsed


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
        passphrase = _readLine(stdin)
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
    jids = [_parseUserJID(text) for text in [args.jid, *(args.jids or [])]]
    passphrase = _readPassphrase(args, sys.stdin, p12Path) if args.p12 else None

    key = x509.generateClientKey(args.key)
    certificate = x509.issueClientCertificate(
        [j.full() for j in jids], key, days=args.days, now=now()
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
    print(f"valid until: {_formatTime(facts.notAfter)}", file=out)
    print(f"fingerprint: {x509.displayFingerprint(facts.fingerprint)}", file=out)
    print(
        "next: xmppcert cert add"
        f" {shlex.quote(jids[0].userhost())} NAME {shlex.quote(str(certPath))}",
        file=out,
    )


def _certAdd(args: argparse.Namespace, out: TextIO) -> None:
    """
    Register a certificate for an account (XEP-0257 section 2.1), after the
    checks a login would make anyway: a certificate that could never log in
    is refused here, with the reason.
    """
    config = _loadConfig(args)
    account = _parseAccountJID(args.jid, config)
    name = checkCertificateName(args.name)
    database = _openDatabase(config)
    try:
        if not database.accountExists(account):
            raise CommandError(f"no account {account}")
        certificate = x509.loadCertificateFile(Path(args.file))
        facts = x509.certificateFacts(certificate)
        state = x509.validity(certificate, now())
        if state is x509.Validity.EXPIRED:
            raise CommandError(f"the certificate expired on {_formatTime(facts.notAfter)}")
        if state is x509.Validity.NOT_YET_VALID:
            raise CommandError(
                f"the certificate is not valid before {_formatTime(facts.notBefore)}"
            )
        if facts.xmppAddrError is not None:
            # XEP-0178: a certificate whose JIDs cannot be read is unusable.
            raise CommandError(f"the certificate is not usable: {facts.xmppAddrError}")
        if facts.clientProblem is not None:
            raise CommandError(f"not a client certificate: {facts.clientProblem}")
        problem = cred.accountNamingProblem(facts.xmppAddrs, account, requireXmppAddr=False)
        if problem is not None:
            # Never, whatever the options: it would let the key of the user
            # the certificate names log in to this account.
            raise CommandError(problem)
        if not facts.xmppAddrs and not args.allow_no_xmppaddr:
            raise CommandError(
                f"the certificate names no JID, so nothing in it says it is {account}'s;"
                " give --allow-no-xmppaddr to add it anyway"
            )
        der = certificate.public_bytes(serialization.Encoding.DER)
        try:
            database.addCertificate(
                account,
                name,
                der,
                facts.fingerprint,
                facts.notAfter.timestamp(),
                canManage=not args.no_cert_management,
            )
        except NoSuchAccount:
            raise CommandError(f"no account {account}") from None
        except CertificateExists as e:
            if e.field == "fingerprint" and database.isCertificateRevoked(facts.fingerprint):
                raise CommandError(
                    "this certificate was revoked, which is final: it can never be registered again"
                ) from None
            if e.field == "fingerprint":
                owner = database.certificateByFingerprint(facts.fingerprint)
                # Another account's registration is not this one's business.
                if owner is not None and owner.account == account:
                    raise CommandError(
                        f"this certificate is already registered for {account}"
                        f" as {owner.name!r}"
                    ) from None
                raise CommandError("this certificate is already registered") from None
            raise CommandError(
                f"a certificate named {name!r} is already registered for {account}"
            ) from None
    finally:
        database.close()
    print(f"added certificate {name!r} for {account}", file=out)
    print(f"fingerprint: {x509.displayFingerprint(facts.fingerprint)}", file=out)
    if args.no_cert_management:
        print("note: sessions logged in with it cannot manage certificates", file=out)
    if not any(a.userhost() == account for a in facts.xmppAddrs) and (
        config.certificates.require_xmppaddr
    ):
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
    moment = now()
    state = x509.validity(certificate, moment)
    lines = [
        f"subject:       {facts.subject}",
        f"issuer:        {facts.issuer}" + (" (self-signed)" if facts.selfSigned else ""),
        f"key:           {facts.keyDescription}",
        f"fingerprint:   {x509.displayFingerprint(facts.fingerprint)}",
        f"valid:         {_formatTime(facts.notBefore)} to {_formatTime(facts.notAfter)}"
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
            + f", last used {_formatTime(stored.lastUsedAt)})"
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
    clock.advance(now().timestamp())
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
    config = _loadConfig(args)
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
    database = _openDatabase(config)
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


def _certificateTable(certificates: Sequence[StoredCertificate], full: bool) -> list[str]:
    header = ("NAME", "STATE", "FINGERPRINT", "NOT AFTER", "LAST USED", "MANAGE")
    rows = [header] + [
        (
            c.name,
            c.state,
            _shortFingerprint(c.fingerprint, full),
            _formatTime(c.notAfter),
            _formatTime(c.lastUsedAt),
            "yes" if c.canManage else "no",
        )
        for c in certificates
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _certList(args: argparse.Namespace, out: TextIO) -> None:
    config = _loadConfig(args)
    account = _parseAccountJID(args.jid, config)
    database = _openDatabase(config)
    try:
        if not database.accountExists(account):
            raise CommandError(f"no account {account}")
        certificates = database.listCertificates(account)
    finally:
        database.close()
    if not certificates:
        print(f"no certificates for {account}", file=out)
        return
    for line in _certificateTable(certificates, args.full):
        print(line, file=out)


def _noSuchCertificate(name: str, account: str) -> CommandError:
    return CommandError(f"no certificate named {name!r} for {account}")


def _certSetState(state: str) -> Callable[[argparse.Namespace, TextIO], None]:
    """
    The command that puts a certificate into C{state} (XEP-0257 sections
    2.3 to 2.5: revocation is final).
    """

    def command(args: argparse.Namespace, out: TextIO) -> None:
        config = _loadConfig(args)
        account = _parseAccountJID(args.jid, config)
        name = args.name.strip()
        database = _openDatabase(config)
        try:
            current = database.getCertificate(account, name)
            if current is None:
                raise _noSuchCertificate(name, account)
            if current.state == state:
                print(f"certificate {name!r} of {account} is already {state}", file=out)
                return
            try:
                # Exactly the certificate looked up above: disabled and
                # revoked certificates may share its name, and another
                # process may change them meanwhile.
                database.setCertificateStateByFingerprint(current.fingerprint, state)
            except NoSuchCertificate:
                raise _noSuchCertificate(name, account) from None
            except CertificateExists:
                raise CommandError(
                    f"another certificate of {account} named {name!r} is enabled"
                ) from None
            except CertificateRevoked:
                raise CommandError(
                    f"certificate {name!r} of {account} is revoked, which is final;"
                    " add a new certificate instead"
                ) from None
        finally:
            database.close()
        print(f"{state} certificate {name!r} of {account}", file=out)

    command.__name__ = f"_cert_{state}"
    return command


def _certRemove(args: argparse.Namespace, out: TextIO) -> None:
    config = _loadConfig(args)
    account = _parseAccountJID(args.jid, config)
    name = args.name.strip()
    database = _openDatabase(config)
    try:
        current = database.getCertificate(account, name)
        database.removeCertificate(account, name)
    except NoSuchCertificate:
        raise _noSuchCertificate(name, account) from None
    finally:
        database.close()
    print(f"removed certificate {name!r} of {account}", file=out)
    if current is not None and current.state == "revoked":
        print(
            "note: its revocation stays in force: it can never log in or be registered again",
            file=out,
        )


def _positiveInt(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _addCertificateCommands(
    commands: argparse._SubParsersAction,
    configOption: argparse.ArgumentParser,
) -> None:
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
        "--days", type=_positiveInt, default=365, metavar="N", help="validity (default: 365)"
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


def buildParser() -> argparse.ArgumentParser:
    """
    @return: the parser of the C{xmppcert} command line; each subcommand
        sets C{func}, a callable taking the parsed arguments and stdout.
    """
    # --config is accepted before and after the subcommand; SUPPRESS keeps a
    # subcommand's default from overwriting a value given before it.
    configOption = argparse.ArgumentParser(add_help=False)
    configOption.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"configuration file (default: $XMPPCERT_CONFIG or {DEFAULT_CONFIG})",
    )

    parser = argparse.ArgumentParser(
        prog="xmppcert", description="Set up and manage an xmppcert server."
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"configuration file (default: $XMPPCERT_CONFIG or {DEFAULT_CONFIG})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init = commands.add_parser(
        "init",
        parents=[configOption],
        help="create the data directory, configuration, certificate and database",
        description=(
            "Create DIR with xmppcert.toml, a self-signed certificate and the"
            " database. Existing files are kept, so it is safe to run again."
        ),
    )
    init.add_argument("--data-dir", metavar="DIR", default="var", help="default: var")
    init.add_argument(
        "--domain",
        metavar="DOMAIN",
        action="append",
        help="a domain to serve (repeatable; default: localhost)",
    )
    init.set_defaults(func=_init)

    user = commands.add_parser("user", parents=[configOption], help="manage accounts")
    userCommands = user.add_subparsers(dest="userCommand", metavar="COMMAND", required=True)
    for name, func, helpText in [
        ("add", _userAdd, "create an account; the password is read from the terminal or stdin"),
        ("passwd", _userPasswd, "change the password of an account"),
        ("delete", _userDelete, "delete an account, its credentials and certificates"),
    ]:
        sub = userCommands.add_parser(name, parents=[configOption], help=helpText)
        sub.add_argument("jid", metavar="JID", help="bare JID, user@domain")
        if name == "add":
            sub.add_argument(
                "--no-password",
                action="store_true",
                help="no password: the account logs in with a client certificate only",
            )
        sub.set_defaults(func=func)
    listCommand = userCommands.add_parser(
        "list", parents=[configOption], help="list accounts, one JID a line"
    )
    listCommand.add_argument("domain", metavar="DOMAIN", nargs="?", help="only this domain")
    listCommand.set_defaults(func=_userList)

    _addCertificateCommands(commands, configOption)
    return parser


def main(argv: list[str] | None = None) -> int:
    """
    Run the C{xmppcert} command.

    @param argv: the arguments after the program name; C{sys.argv[1:]} if
        C{None}.
    @return: the exit status: 0 on success, 1 on an error, 2 on a usage
        error, 3 when C{cert inspect} finds the certificate would not log in.
    """
    parser = buildParser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        # argparse exits for --help (0) and usage errors (2).
        return e.code if isinstance(e.code, int) else 2
    if args.config is None:
        args.config = _defaultConfigPath()
    func: Callable[[argparse.Namespace, TextIO], int | None] = args.func
    try:
        status = func(args, sys.stdout)
    except (CommandError, ConfigError, StoreError, ValueError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.filename}: {e.strerror}" if e.filename else str(e))
    except sqlite3.Error as e:
        return _fail(f"database error: {e}")
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    return status or 0


def _fail(message: str) -> int:
    print(f"xmppcert: error: {message}", file=sys.stderr)
    return 1


__all__ = ["CommandError", "buildParser", "main", "now"]
