# -*- test-case-name: tests.test_crl -*-
"""
Revocation checking of CA-issued client certificates with certificate
revocation lists (CRLs, RFC 5280 sections 5 and 6.3), for the C{ca}
certificate checker.

L{RevocationChecker.check} runs after path validation, on the validated
chain. For each certificate but the trust anchor it looks for CRLs of the
certificate's issuer: first in the configured CRL files (reloaded when they
change on disk), then, if fetching is on, at the certificate's http(s) CRL
distribution points (cached until the CRL's nextUpdate, at most
C{maxCacheAge}). A CRL counts only if its issuer is the certificate's issuer,
its signature verifies with the issuer's key, it is current by the injected
clock, and its scope (issuing distribution point) covers the certificate.

A check runs during a login, on the reactor, and a CRL can list hundreds of
thousands of serials: the slow work happens in threads, once per CRL.
Reading, parsing and indexing its serials (looked up in constant time) is
done when it is fetched, and for files by a loop on the clock that looks at
them every L{FILE_CHECK_INTERVAL} seconds, never by a check; the first
check of its signature with an issuer's key is done in a thread too.

A listed serial is always a refusal (L{CertificateRevokedError}). When the
status cannot be established (a dead distribution point, a stale or forged
CRL), the failure policy decides: C{"hard"} refuses
(L{RevocationUnknownError}), C{"soft"} logs at info and accepts. A
certificate without distribution points whose issuer has no configured CRL
has nothing to check and is accepted under both policies.

A client chooses its certificate, and with it the URL fetched: everything a
distribution point can send ends in an unknown status, never in another
exception or in a log line above info. Fetching such URLs is acceptable
because they come from certificates that already chain to a trusted CA;
even so, only http and https are fetched, without following redirects,
within a size limit and a timeout.
"""

from __future__ import annotations

import datetime
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from twisted.internet import defer, protocol, task, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IResponse
from zope.interface import Interface, implementer

from xmppcert import _log

log = Logger(observer=_log.observer)

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: The default limit on the size of a CRL, fetched or read from a file.
DEFAULT_MAX_CRL_SIZE = 10 * 1024 * 1024

#: How far a CRL's thisUpdate may lie in the future: the issuer's clock may
#: be a little ahead of ours.
CLOCK_SKEW = datetime.timedelta(minutes=5)

#: Seconds a failed fetch is remembered, so that a dead distribution point
#: is not asked again on every login; also the shortest time any fetched
#: CRL is cached (a stale one would otherwise be fetched again each time).
FAILURE_CACHE_AGE = 60.0

#: Seconds between looks at the configured CRL files for changes.
FILE_CHECK_INTERVAL = 2.0

#: Every reason a CRL can be limited to (RFC 5280 section 5.2.5,
#: onlySomeReasons); a certificate's status is known when the CRLs used
#: together cover all of them.
ALL_REASONS = frozenset(
    {
        x509.ReasonFlags.key_compromise,
        x509.ReasonFlags.ca_compromise,
        x509.ReasonFlags.affiliation_changed,
        x509.ReasonFlags.superseded,
        x509.ReasonFlags.cessation_of_operation,
        x509.ReasonFlags.certificate_hold,
        x509.ReasonFlags.privilege_withdrawn,
        x509.ReasonFlags.aa_compromise,
    }
)

#: What cryptography raises for malformed or unsupported content, which a
#: hostile CRL can hold; it is parsed lazily, so any access may raise.
_MALFORMED = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)

#: Key types that can sign a CRL.
_ISSUER_KEY_TYPES = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
    dsa.DSAPublicKey,
)

_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----", re.DOTALL)

#: Longest piece of remote text (an HTTP reason phrase, an error message)
#: put into an error or a log line.
_MAX_REMOTE_TEXT = 200


class CRLError(ValueError):
    """
    Data or a file that is not a usable CRL; the message says why.
    """


class RevocationCheckError(Exception):
    """
    Base class of the refusals of L{RevocationChecker.check}.

    @ivar certificate: the certificate whose status decided the refusal.
    """

    def __init__(self, message: str, certificate: x509.Certificate) -> None:
        super().__init__(message)
        self.certificate = certificate


class CertificateRevokedError(RevocationCheckError):
    """
    A certificate of the chain is listed on a CRL of its issuer.

    @ivar revocationDate: when it was revoked (UTC).
    @ivar reason: the CRL entry's reason code, or C{None}.
    """

    def __init__(
        self,
        message: str,
        certificate: x509.Certificate,
        revocationDate: datetime.datetime | None = None,
        reason: x509.ReasonFlags | None = None,
    ) -> None:
        super().__init__(message, certificate)
        self.revocationDate = revocationDate
        self.reason = reason


class RevocationUnknownError(RevocationCheckError):
    """
    The revocation status of a certificate of the chain could not be
    established and the failure policy is C{"hard"}; the message says why.
    """


class _FetchError(Exception):
    """
    A fetch failed in a way the message describes completely.
    """


class ICRLFetcher(Interface):
    """
    Gets the bytes of a CRL from a distribution point URL.
    """

    def fetch(url: str) -> defer.Deferred[bytes]:
        """
        Fetch a CRL.

        @param url: an C{http://} or C{https://} URL.
        @return: a Deferred firing with the body, or failing with any
            exception (its message is shown to operators); cancelling it
            abandons the fetch.
        """


def _remoteText(text: str) -> str:
    # Remote text goes into log lines: one short line of printable characters.
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    if len(cleaned) > _MAX_REMOTE_TEXT:
        cleaned = cleaned[:_MAX_REMOTE_TEXT] + "..."
    return cleaned


class _BoundedBody(protocol.Protocol):
    """
    Collects a response body of at most C{maxSize} bytes; a longer one
    fails the Deferred with L{_FetchError} and closes the connection at once.
    """

    def __init__(self, finished: defer.Deferred[bytes], maxSize: int) -> None:
        self._finished = finished
        self._maxSize = maxSize
        self._parts: list[bytes] = []
        self._size = 0
        self.done = False

    def dataReceived(self, data: bytes) -> None:
        if self.done:
            return
        self._size += len(data)
        if self._size > self._maxSize:
            self.done = True
            self._parts = []
            self.abort()
            self._finished.errback(_FetchError(f"the CRL is larger than {self._maxSize} bytes"))
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if self.done:
            return
        self.done = True
        if reason.check(ResponseDone, PotentialDataLoss):
            # PotentialDataLoss: the body ended with the connection (no
            # length given). A truncated CRL fails its signature anyway.
            self._finished.callback(b"".join(self._parts))
        else:
            self._finished.errback(reason)

    def abort(self) -> None:
        """
        Stop reading: the connection closes.
        """
        self.done = True
        # The transport proxies the connection as a producer.
        transport: Any = self.transport
        if transport is not None:
            transport.stopProducing()


class _Discard(protocol.Protocol):
    """
    Takes a response body nobody wants by closing its connection.
    """

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.stopProducing()


def _readBounded(response: IResponse, maxSize: int) -> defer.Deferred[bytes]:
    """
    Read a response body of at most C{maxSize} bytes, like
    C{twisted.web.client.readBody}; cancelling closes the connection.
    """

    def cancel(d: defer.Deferred[bytes]) -> None:
        body.abort()

    finished: defer.Deferred[bytes] = defer.Deferred(cancel)
    body = _BoundedBody(finished, maxSize)
    response.deliverBody(body)
    return finished


@implementer(ICRLFetcher)
class HTTPCRLFetcher:
    """
    Fetches CRLs over HTTP and HTTPS (certificates checked against the
    system's trust roots) with C{twisted.web.client.Agent}. Redirects are
    not followed: a distribution point answers with the CRL or not at all.
    """

    def __init__(
        self,
        maxSize: int = DEFAULT_MAX_CRL_SIZE,
        agent: IAgent | None = None,
        connectTimeout: float | None = None,
    ) -> None:
        """
        @param maxSize: the largest body accepted, in bytes.
        @param agent: makes the requests; an C{Agent} on the global reactor
            (made at the first fetch) if C{None}.
        @param connectTimeout: for that default agent, in seconds.
        """
        self.maxSize = maxSize
        self._agent = agent
        self._connectTimeout = connectTimeout

    def _getAgent(self) -> IAgent:
        if self._agent is None:
            from twisted.internet import reactor as globalReactor

            self._agent = Agent(globalReactor, connectTimeout=self._connectTimeout)
        return self._agent

    def fetch(self, url: str) -> defer.Deferred[bytes]:
        # A bad URL fails the Deferred rather than raising.
        body: defer.Deferred[bytes] = defer.maybeDeferred(self._request, url).addCallback(
            self._gotResponse
        )
        return body

    def _request(self, url: str) -> defer.Deferred[IResponse]:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise _FetchError(f"{scheme or 'a relative'} URL cannot be fetched")
        headers = Headers(
            {b"User-Agent": [b"xmppcert"], b"Accept": [b"application/pkix-crl, */*;q=0.5"]}
        )
        return self._getAgent().request(b"GET", url.encode("ascii"), headers)

    def _gotResponse(self, response: IResponse) -> defer.Deferred[bytes]:
        if response.code != 200:
            response.deliverBody(_Discard())
            phrase = _remoteText(response.phrase.decode("latin-1"))
            raise _FetchError(f"HTTP {response.code} {phrase}".rstrip())
        if response.length is not UNKNOWN_LENGTH and response.length > self.maxSize:
            response.deliverBody(_Discard())
            raise _FetchError(f"the CRL is larger than {self.maxSize} bytes ({response.length})")
        return _readBounded(response, self.maxSize)


def loadCRL(data: bytes) -> x509.CertificateRevocationList:
    """
    Parse one CRL, PEM (the first C{X509 CRL} block) or DER.

    @raise CRLError: neither.
    """
    if b"-----BEGIN" in data:
        try:
            return x509.load_pem_x509_crl(data)
        except ValueError:
            pass
    try:
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise CRLError("not a valid X.509 CRL (PEM or DER)") from None


def _loadCRLs(data: bytes) -> list[x509.CertificateRevocationList]:
    """
    Parse a CRL file: DER, or PEM with one or more C{X509 CRL} blocks (as
    in the CRL files of web servers, one per CA).

    @raise CRLError: not a CRL, or a PEM block that is not one.
    """
    blocks = _PEM_CRL.findall(data)
    if not blocks:
        return [loadCRL(data)]
    return [loadCRL(block) for block in blocks]


def crlPEM(crl: x509.CertificateRevocationList) -> bytes:
    """
    The CRL as PEM.
    """
    return crl.public_bytes(serialization.Encoding.PEM)


def crlDER(crl: x509.CertificateRevocationList) -> bytes:
    """
    The CRL as DER, as distribution points serve it (C{application/pkix-crl}).
    """
    return crl.public_bytes(serialization.Encoding.DER)


def issueCRL(
    issuerCertificate: x509.Certificate,
    issuerKey: CertificateIssuerPrivateKeyTypes,
    revokedSerials: Sequence[int],
    now: datetime.datetime,
    days: int = 7,
    *,
    reasons: Mapping[int, x509.ReasonFlags] | None = None,
    number: int | None = None,
) -> x509.CertificateRevocationList:
    """
    Issue a complete CRL (RFC 5280 section 5), for operators who run their
    own client CA and for tests.

    It has thisUpdate C{now}, nextUpdate C{days} later, the authority key
    identifier and a CRL number (both required by RFC 5280 section 5.2),
    and one entry per serial, revoked at C{now}.

    @param reasons: reason codes of some serials (RFC 5280 section 5.3.1).
    @param number: the CRL number; by default C{now} in seconds, which
        grows with every CRL issued later, as it must.
    @raise ValueError: a naive C{now}, C{days} below 1, or a key that is
        not C{issuerCertificate}'s.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    if issuerKey.public_key() != issuerCertificate.public_key():
        raise ValueError("issuerKey is not the key of issuerCertificate")
    try:
        ski = issuerCertificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuerKey.public_key())
    entries = []
    for serial in dict.fromkeys(revokedSerials):
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
        reason = (reasons or {}).get(serial)
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        entries.append(entry.build())
    # All entries at once: adding them one by one copies the list each time.
    builder = (
        x509.CertificateRevocationListBuilder(revoked_certificates=entries)
        .issuer_name(issuerCertificate.subject)
        .last_update(now)
        .next_update(now + datetime.timedelta(days=days))
        .add_extension(aki, critical=False)
        .add_extension(
            x509.CRLNumber(int(now.timestamp()) if number is None else number), critical=False
        )
    )
    # EdDSA signs the message itself; cryptography wants no hash for it.
    algorithm = (
        None
        if isinstance(issuerKey, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
        else hashes.SHA256()
    )
    return builder.sign(issuerKey, algorithm)


#: A key that can sign a CRL, as L{_ISSUER_KEY_TYPES} lists them.
_IssuerKey = (
    rsa.RSAPublicKey
    | ec.EllipticCurvePublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
    | dsa.DSAPublicKey
)

#: What the index of a CRL keeps of a revoked certificate's entry: its
#: revocation date and its reason code, each C{None} when absent or
#: malformed.
_Revocation = tuple[datetime.datetime | None, x509.ReasonFlags | None]


class _RunInThread(Protocol):
    """
    Runs a function in a thread, like
    L{twisted.internet.threads.deferToThread}.
    """

    def __call__(
        self, f: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> defer.Deferred[_T]:
        """
        Call C{f(*args, **kwargs)} in a thread.

        @return: a Deferred firing, on the reactor, with its result.
        """


def _spki(key: _IssuerKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _signatureValid(crl: x509.CertificateRevocationList, key: _IssuerKey) -> bool:
    # Hashes the whole CRL: called in a thread.
    try:
        return crl.is_signature_valid(key)
    except _MALFORMED:
        return False


def _index(
    crl: x509.CertificateRevocationList,
) -> tuple[dict[int, _Revocation], str | None]:
    """
    The revoked serials of a CRL, for lookups in constant time
    (C{get_revoked_certificate_by_serial_number} reads the whole list).

    @return: the index, and C{None} or, when the list of revoked
        certificates is malformed, why (with an empty index).
    """
    revoked: dict[int, _Revocation] = {}
    try:
        for entry in crl:
            serial = entry.serial_number
            # The first entry counts, as with a lookup in the CRL itself.
            if serial not in revoked:
                revoked[serial] = (_revocationDate(entry), _revocationReason(entry))
    except _MALFORMED as e:
        return {}, _remoteText(str(e)) or type(e).__name__
    return revoked, None


def _revocationDate(entry: x509.RevokedCertificate) -> datetime.datetime | None:
    try:
        return entry.revocation_date_utc
    except _MALFORMED:
        return None


def _revocationReason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        found = _extension(entry.extensions, x509.CRLReason)
    except _MALFORMED:
        return None
    return None if found is None else found.reason


class _CRLRecord:
    """
    A parsed CRL with what it costs to find out again: the index of its
    revoked serials, and whether its signature verifies with a given
    issuer key (a large CRL takes a while to hash).

    A record is made in a thread, with its index; from then on only the
    reactor uses it, so its signature cache needs no lock.

    @ivar source: where it came from, for messages: a file or a URL.
    @ivar issuer: the CRL's issuer, or C{None} if malformed.
    @ivar revoked: the revoked serials, each with its revocation date and
        reason (see L{_index}).
    @ivar indexError: why the list of revoked certificates could not be
        read, or C{None}.
    """

    def __init__(
        self,
        crl: x509.CertificateRevocationList,
        source: str,
        knownKeys: Sequence[tuple[x509.Name, _IssuerKey]] = (),
    ) -> None:
        """
        Index the CRL: slow for a large one, so called in a thread, except
        at start-up.

        @param knownKeys: issuer names with keys that verified CRLs of
            theirs before; those of this CRL's issuer are likely its key,
            and checked now, so that a reloaded CRL needs no thread at
            the next login.
        """
        self.crl = crl
        self.source = source
        self._signatures: dict[bytes, bool] = {}
        self._keys: dict[bytes, _IssuerKey] = {}
        self._verifying: dict[bytes, list[defer.Deferred[None]]] = {}
        self.issuer: x509.Name | None
        try:
            self.issuer = crl.issuer
        except _MALFORMED:
            self.issuer = None
        self.revoked, self.indexError = _index(crl)
        for name, key in knownKeys:
            if self.issuer is not None and name == self.issuer:
                self._remember(key, _spki(key), _signatureValid(crl, key))

    def _remember(self, key: _IssuerKey, spki: bytes, valid: bool) -> None:
        self._signatures[spki] = valid
        if valid:
            self._keys[spki] = key

    def verifiedKeys(self) -> list[_IssuerKey]:
        """
        The keys known to verify the CRL's signature.
        """
        return list(self._keys.values())

    def verify(self, issuer: x509.Certificate, runInThread: _RunInThread) -> defer.Deferred[None]:
        """
        Find out in a thread, unless known, whether the issuer's key
        verifies the CRL's signature, for L{signedBy} to answer at once;
        concurrent calls for one key share the work.

        @return: a Deferred firing when it is known; it fails with what the
            check raised, except for malformed data (which does not verify).
        @raise _MALFORMED: the issuer's key cannot be read.
        """
        key = issuer.public_key()
        if not isinstance(key, _ISSUER_KEY_TYPES):
            return defer.succeed(None)
        spki = _spki(key)
        if spki in self._signatures:
            return defer.succeed(None)
        waiters = self._verifying.get(spki)
        if waiters is None:
            waiters = self._verifying[spki] = []
            runInThread(_signatureValid, self.crl, key).addBoth(self._verified, key, spki)
            if spki in self._signatures:
                # The thread runner ran it at once.
                return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        waiters.append(waiter)
        return waiter

    def _verified(self, result: bool | Failure, key: _IssuerKey, spki: bytes) -> None:
        if isinstance(result, Failure):
            # Not remembered: the next check tries again.
            failed: Failure | None = result
        else:
            failed = None
            self._remember(key, spki, result)
        for waiter in self._verifying.pop(spki, []):
            if failed is None:
                waiter.callback(None)
            else:
                waiter.errback(failed)

    def signedBy(self, issuer: x509.Certificate) -> bool:
        """
        Whether the issuer's key verifies the CRL's signature: known at
        once after L{verify}, worked out here (on the calling thread)
        otherwise.
        """
        key = issuer.public_key()
        if not isinstance(key, _ISSUER_KEY_TYPES):
            return False
        spki = _spki(key)
        known = self._signatures.get(spki)
        if known is None:
            known = _signatureValid(self.crl, key)
            self._remember(key, spki, known)
        return known

    def revocation(self, serial: int) -> _Revocation | None:
        """
        The revocation date and reason of a serial the CRL lists, or
        C{None} if it does not list it.
        """
        return self.revoked.get(serial)


#: What identifies a version of a file: inode, size, modification and
#: change times.
_Stamp = tuple[int, int, int, int]


@dataclass(frozen=True)
class _FileUpdate:
    """
    What a look at a CRL file found, made in a thread for the reactor to
    apply.

    @ivar changed: whether the file changed since it was last looked at;
        if not, nothing else matters.
    @ivar stamp: the file's new stamp, or C{None} when it is gone.
    @ivar records: its new CRLs, or C{None} when they could not be had.
    @ivar error: why they could not, or C{None}.
    """

    changed: bool
    stamp: _Stamp | None = None
    records: list[_CRLRecord] | None = None
    error: str | None = None


def _readCRLFile(
    path: Path, maxSize: int, knownKeys: Sequence[tuple[x509.Name, _IssuerKey]] = ()
) -> tuple[_Stamp, list[_CRLRecord]]:
    """
    Read, parse and index a CRL file: slow for a large one, so called in a
    thread, except at start-up.

    @param knownKeys: see L{_CRLRecord.__init__}.
    @return: the file's stamp when read, and its CRLs.
    @raise CRLError: it cannot be read or holds no valid CRL; the
        message names the file.
    """
    try:
        stat = os.stat(path)
        with open(path, "rb") as f:
            data = f.read(maxSize + 1)
    except OSError as e:
        raise CRLError(f"cannot read the CRL file {path}: {e.strerror or e}") from None
    if len(data) > maxSize:
        raise CRLError(f"{path}: larger than {maxSize} bytes")
    try:
        crls = _loadCRLs(data)
    except CRLError as e:
        raise CRLError(f"{path}: {e}") from None
    return _stampOf(stat), [_CRLRecord(crl, str(path), knownKeys) for crl in crls]


def _refreshCRLFile(
    path: Path,
    maxSize: int,
    stamp: _Stamp | None,
    knownKeys: Sequence[tuple[x509.Name, _IssuerKey]],
) -> _FileUpdate:
    """
    Look at a CRL file, and read it again if it changed: called in a
    thread.

    @param stamp: its stamp when last looked at.
    """
    try:
        current: _Stamp | None = _stampOf(os.stat(path))
    except OSError:
        current = None
    if current == stamp:
        return _FileUpdate(changed=False)
    if current is None:
        return _FileUpdate(changed=True)
    try:
        loaded, records = _readCRLFile(path, maxSize, knownKeys)
    except CRLError as e:
        return _FileUpdate(changed=True, stamp=current, error=str(e))
    return _FileUpdate(changed=True, stamp=loaded, records=records)


class _CRLFile:
    """
    A configured CRL file, read again when its size, times or inode change.
    """

    def __init__(self, path: Path, maxSize: int) -> None:
        self.path = Path(path)
        self._maxSize = maxSize
        self._stamp: _Stamp | None = None
        self.records: list[_CRLRecord] = []

    def load(self) -> None:
        """
        Read the file now, on this thread.

        @raise CRLError: it cannot be read or holds no valid CRL; the
            message names the file.
        """
        self._stamp, self.records = _readCRLFile(self.path, self._maxSize)

    def refresh(self, runInThread: _RunInThread) -> defer.Deferred[None]:
        """
        Read the file again in a thread if it changed, then use its new
        CRLs. A file that cannot be read keeps its last good CRLs (it may
        be in the middle of being rewritten); the operator is warned once
        per change.
        """
        knownKeys = [
            (record.issuer, key)
            for record in self.records
            if record.issuer is not None
            for key in record.verifiedKeys()
        ]
        return runInThread(
            _refreshCRLFile, self.path, self._maxSize, self._stamp, knownKeys
        ).addCallback(self._refreshed)

    def _refreshed(self, update: _FileUpdate) -> None:
        # On the reactor: the records are swapped in whole.
        if not update.changed:
            return
        self._stamp = update.stamp
        if update.stamp is None:
            log.warn("CRL file {path} is gone; using its last CRLs", path=str(self.path))
        elif update.records is None:
            log.warn("Cannot reload a CRL file; using its last CRLs: {why}", why=update.error)
        else:
            self.records = update.records
            log.info("Reloaded CRL file {path}", path=str(self.path))


def _stampOf(stat: os.stat_result) -> _Stamp:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@dataclass
class _Fetched:
    """
    The cached outcome of fetching one URL.

    @ivar record: the CRL, or C{None} when none could be had.
    @ivar error: why the last fetch failed, or C{None}; with a C{record},
        that is the CRL fetched before.
    @ivar expires: clock seconds after which the URL is fetched again.
    """

    record: _CRLRecord | None
    error: str | None
    expires: float


def _parseFetched(data: bytes, url: str) -> tuple[_CRLRecord, datetime.datetime | None] | str:
    """
    Parse and index a fetched CRL: called in a thread.

    @return: the record and the CRL's nextUpdate, or why it is no CRL.
    """
    try:
        crl = loadCRL(data)
        nextUpdate = crl.next_update_utc
    except _MALFORMED as e:
        return str(e) if isinstance(e, CRLError) else "not a CRL"
    return _CRLRecord(crl, url), nextUpdate


def _timeoutText(timeout: float) -> str:
    return f"timeout (nothing within {timeout:g} s)"


def _describeFailure(f: Failure, timeout: float) -> str:
    if f.check(defer.TimeoutError):
        return _timeoutText(timeout)
    if f.check(_FetchError, CRLError):
        return str(f.value)
    reasons = getattr(f.value, "reasons", None)
    if isinstance(reasons, list) and reasons:
        # ResponseFailed and its kin wrap the real failures.
        return "; ".join(
            _describeFailure(r, timeout) if isinstance(r, Failure) else _remoteText(str(r))
            for r in reasons
        )
    name = type(f.value).__name__
    if name == "_DataLoss":
        # twisted.web's private marker of a body cut short.
        return "the connection closed before the whole body arrived"
    message = _remoteText(f.getErrorMessage())
    return f"{name}: {message}" if message else name


def _certificateName(cert: x509.Certificate) -> str:
    try:
        subject = cert.subject.rfc4514_string()
    except _MALFORMED:
        subject = "?"
    return f"{_remoteText(subject) or '(empty subject)'} (serial {cert.serial_number:X})"


def _extension(
    extensions: Iterable[x509.Extension[x509.ExtensionType]], kind: type[x509.ExtensionType]
) -> Any:
    for extension in extensions:
        if isinstance(extension.value, kind):
            return extension.value
    return None


def _dpNames(
    fullName: Sequence[x509.GeneralName] | None,
    relativeName: x509.RelativeDistinguishedName | None,
    issuer: x509.Name,
) -> set[x509.GeneralName]:
    """
    The names of a distribution point (RFC 5280 section 4.2.1.13): its full
    name, or its relative name appended to the issuer's name.
    """
    if fullName is not None:
        return set(fullName)
    if relativeName is not None:
        return {x509.DirectoryName(x509.Name([*issuer.rdns, relativeName]))}
    return set()


def _httpURLs(names: Sequence[x509.GeneralName] | None) -> list[str]:
    urls = []
    for name in names or ():
        if not isinstance(name, x509.UniformResourceIdentifier):
            continue
        try:
            parts = urllib.parse.urlsplit(name.value)
        except ValueError:
            continue
        # No spaces or control characters: they have no place in a request line.
        printable = name.value.isascii() and all(
            c.isprintable() and not c.isspace() for c in name.value
        )
        if parts.scheme.lower() in ("http", "https") and parts.hostname and printable:
            urls.append(name.value)
    return urls


class RevocationChecker:
    """
    Checks the certificates of a validated chain against the CRLs of their
    issuers; see the module docstring.

    @ivar failurePolicy: C{"soft"} or C{"hard"}.
    """

    def __init__(
        self,
        clock: IReactorTime,
        crlFiles: Sequence[Path] = (),
        fetch: bool = True,
        failurePolicy: str = "soft",
        fetcher: ICRLFetcher | None = None,
        maxCacheAge: float = 3600.0,
        fetchTimeout: float = 10.0,
        maxCRLSize: int = DEFAULT_MAX_CRL_SIZE,
        deferToThread: _RunInThread = threads.deferToThread,
    ) -> None:
        """
        @param clock: the time that decides whether a CRL is current, and
            runs the fetch timeout, the caches and the look at the files.
        @param crlFiles: CRL files (PEM, possibly with several CRLs, or
            DER), read now and, while L{started <start>}, again in a
            thread whenever they change.
        @param fetch: fetch CRLs from the certificates' http(s)
            distribution points.
        @param failurePolicy: what an unknown status does: C{"hard"}
            refuses, C{"soft"} logs at info and accepts.
        @param fetcher: fetches the URLs; an L{HTTPCRLFetcher} on the
            global reactor (made when first needed) if C{None}.
        @param maxCacheAge: the longest a fetched CRL is used, in seconds,
            even when its nextUpdate is later.
        @param fetchTimeout: seconds a fetch may take.
        @param maxCRLSize: the largest CRL accepted, in bytes, fetched or
            from a file.
        @param deferToThread: runs the slow work (reading, parsing and
            indexing CRLs, checking their signatures) off the reactor.
        @raise ValueError: an unknown policy or a bad number.
        @raise CRLError: a CRL file cannot be read or holds no CRL.
        """
        if failurePolicy not in ("soft", "hard"):
            raise ValueError(
                f"the CRL failure policy must be 'soft' or 'hard', not {failurePolicy!r}"
            )
        if maxCacheAge <= 0 or fetchTimeout <= 0 or maxCRLSize <= 0:
            raise ValueError("maxCacheAge, fetchTimeout and maxCRLSize must be positive")
        self.clock = clock
        self.fetch = fetch
        self.failurePolicy = failurePolicy
        self.maxCacheAge = maxCacheAge
        self.fetchTimeout = fetchTimeout
        self.maxCRLSize = maxCRLSize
        self._fetcher = fetcher
        self._deferToThread = deferToThread
        self._files = [_CRLFile(Path(p), maxCRLSize) for p in crlFiles]
        # On this thread: at start-up, where a bad file is an error.
        for crlFile in self._files:
            crlFile.load()
        self._filesReadAt = clock.seconds()
        self._fileLoop: task.LoopingCall | None = None
        self._loopState = "new"
        self._cache: dict[str, _Fetched] = {}
        self._fetching: dict[str, list[defer.Deferred[_Fetched]]] = {}

    def start(self) -> None:
        """
        Look at the CRL files every L{FILE_CHECK_INTERVAL} seconds from now
        on, and read changed ones again in a thread; at once if they were
        last read longer ago than that. Nothing to do without files.
        L{check} calls this if it was never called; calling it again does
        nothing until L{stop}.
        """
        self._loopState = "started"
        if not self._files or self._fileLoop is not None:
            return
        loop = task.LoopingCall(self._refreshFiles)
        loop.clock = self.clock
        self._fileLoop = loop
        stale = self.clock.seconds() - self._filesReadAt >= FILE_CHECK_INTERVAL
        loop.start(FILE_CHECK_INTERVAL, now=stale).addErrback(
            lambda f: log.failure("The look at the CRL files stopped", f)
        )

    def stop(self) -> None:
        """
        Stop looking at the CRL files (a read under way still finishes);
        L{check} does not start it again, L{start} does. Calling it again
        does nothing.
        """
        self._loopState = "stopped"
        loop, self._fileLoop = self._fileLoop, None
        if loop is not None and loop.running:
            loop.stop()

    async def check(self, chain: Sequence[x509.Certificate]) -> None:
        """
        Check the revocation status of every certificate of a validated
        chain but its trust anchor (RFC 5280 section 6.3).

        @param chain: leaf first, trust anchor last, each certificate issued
            by the next: the C{chain} of cryptography's verified client.
        @raise CertificateRevokedError: a certificate is on its issuer's CRL.
        @raise RevocationUnknownError: with the C{"hard"} policy, the status
            of a certificate that should be checkable is unknown.
        """
        now = self._now()
        if self._loopState == "new":
            # Files are looked at by the loop, never here: this is a login.
            self.start()
        unknown: list[tuple[x509.Certificate, str]] = []
        # Every certificate is looked at before an unknown status decides,
        # so that a revocation further down is reported as such.
        for cert, issuer in zip(chain, chain[1:], strict=False):
            why = await self._status(cert, issuer, now)
            if why is not None:
                unknown.append((cert, why))
        for cert, why in unknown:
            message = f"the revocation status of {_certificateName(cert)} is unknown: {why}"
            if self.failurePolicy == "hard":
                raise RevocationUnknownError(message, cert)
            log.info("Accepting a certificate (CRL failure policy soft): {status}", status=message)

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.UTC)

    def _getFetcher(self) -> ICRLFetcher:
        if self._fetcher is None:
            self._fetcher = HTTPCRLFetcher(self.maxCRLSize, connectTimeout=self.fetchTimeout)
        return self._fetcher

    def _refreshFiles(self) -> defer.Deferred[None]:
        # The loop waits for this before it schedules the next look.
        return defer.ensureDeferred(self._refreshFilesNow())

    async def _refreshFilesNow(self) -> None:
        for crlFile in self._files:
            try:
                await crlFile.refresh(self._deferToThread)
            except Exception:
                # A bug, not a bad file: the other files and the next
                # looks must still happen.
                log.failure("Cannot look at the CRL file {path}", path=str(crlFile.path))
        self._filesReadAt = self.clock.seconds()

    async def _verify(
        self, record: _CRLRecord, cert: x509.Certificate, issuer: x509.Certificate
    ) -> None:
        """
        Check a CRL's signature with the issuer's key in a thread, unless
        known, so that L{_apply} does not hash the CRL on the reactor.
        """
        if record.issuer != cert.issuer:
            return
        try:
            verifying = record.verify(issuer, self._deferToThread)
        except _MALFORMED:
            # L{_apply} says so.
            return
        await verifying

    async def _status(
        self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime.datetime
    ) -> str | None:
        """
        The revocation status of one certificate.

        @return: C{None} when it is not revoked or there is nothing to
            check it against; otherwise why its status is unknown.
        @raise CertificateRevokedError: it is revoked.
        """
        problems: list[str] = []
        points: list[x509.DistributionPoint] | None
        try:
            extension = _extension(cert.extensions, x509.CRLDistributionPoints)
            points = None if extension is None else list(extension)
        except _MALFORMED:
            points = []
            problems.append("its CRL distribution points extension is malformed")
        if points is None:
            # RFC 5280 section 6.3.3: without the extension, the issuer is
            # the distribution point, for all reasons.
            allNames: set[x509.GeneralName] = {x509.DirectoryName(cert.issuer)}
        else:
            allNames = set()
            for point in points:
                allNames |= _dpNames(point.full_name, point.relative_name, cert.issuer)

        covered: frozenset[x509.ReasonFlags] = frozenset()
        fromIssuer = [
            record
            for crlFile in self._files
            for record in crlFile.records
            if record.issuer == cert.issuer
        ]
        for record in fromIssuer:
            await self._verify(record, cert, issuer)
            result = self._apply(record, cert, issuer, now, allNames, None)
            if isinstance(result, str):
                problems.append(result)
            else:
                covered |= result
        if covered >= ALL_REASONS:
            return None

        if points and self.fetch:
            for point in points:
                if covered >= ALL_REASONS:
                    break
                if point.crl_issuer is not None:
                    problems.append(
                        "indirect CRLs (a distribution point with a cRLIssuer) are not supported"
                    )
                    continue
                urls = _httpURLs(point.full_name)
                if not urls:
                    problems.append("a distribution point has no http(s) URL")
                    continue
                names = _dpNames(point.full_name, point.relative_name, cert.issuer)
                for url in urls:
                    fetched = await self._fetchURL(url)
                    if fetched.error is not None:
                        problems.append(f"the CRL at {url} could not be fetched: {fetched.error}")
                    if fetched.record is None:
                        continue
                    await self._verify(fetched.record, cert, issuer)
                    result = self._apply(fetched.record, cert, issuer, now, names, point.reasons)
                    if isinstance(result, str):
                        problems.append(result)
                        continue
                    covered |= result
                    break
        elif points:
            problems.append("it has CRL distribution points, but fetching CRLs is off")

        if covered >= ALL_REASONS:
            return None
        if points is None and not fromIssuer:
            # Nothing says this issuer publishes CRLs.
            return None
        if covered:
            problems.append("the CRLs found cover only some revocation reasons")
        if not problems:
            problems.append("no CRL of its issuer covers it")
        return "; ".join(dict.fromkeys(problems))

    def _apply(
        self,
        record: _CRLRecord,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        now: datetime.datetime,
        pointNames: set[x509.GeneralName],
        pointReasons: frozenset[x509.ReasonFlags] | None,
    ) -> frozenset[x509.ReasonFlags] | str:
        """
        Use one CRL for one certificate (RFC 5280 section 6.3.3).

        @param pointNames: the names of the distribution point it stands
            for, matched against its issuing distribution point.
        @param pointReasons: the reasons that distribution point covers, or
            C{None} for all.
        @return: the reasons it covers the certificate for, or why it
            cannot be used.
        @raise CertificateRevokedError: it lists the certificate.
        """
        try:
            return self._applyUnsafe(record, cert, issuer, now, pointNames, pointReasons)
        except _MALFORMED as e:
            detail = _remoteText(str(e)) or type(e).__name__
            return f"the CRL from {record.source} is malformed ({detail})"

    def _applyUnsafe(
        self,
        record: _CRLRecord,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        now: datetime.datetime,
        pointNames: set[x509.GeneralName],
        pointReasons: frozenset[x509.ReasonFlags] | None,
    ) -> frozenset[x509.ReasonFlags] | str:
        crl = record.crl
        source = f"the CRL from {record.source}"
        if record.issuer != cert.issuer:
            return f"{source} is not issued by the certificate's issuer"
        usage = _extension(issuer.extensions, x509.KeyUsage)
        if usage is not None and not usage.crl_sign:
            # RFC 5280 section 6.3.3 (f).
            return f"{source}: the issuer may not sign CRLs (keyUsage without cRLSign)"
        # Nothing else in the CRL is looked at before its signature holds.
        if not record.signedBy(issuer):
            return f"{source} is not signed by the certificate's issuer"
        if crl.last_update_utc > now + CLOCK_SKEW:
            return f"{source} is not valid yet (thisUpdate {_when(crl.last_update_utc)})"
        nextUpdate = crl.next_update_utc
        if nextUpdate is not None and nextUpdate < now:
            return f"{source} is out of date (nextUpdate {_when(nextUpdate)})"
        reasons = ALL_REASONS if pointReasons is None else ALL_REASONS & pointReasons
        for extension in crl.extensions:
            value = extension.value
            if isinstance(value, x509.DeltaCRLIndicator):
                return f"{source} is a delta CRL, which is not supported"
            if isinstance(value, x509.IssuingDistributionPoint):
                scope = _scope(value, cert, crl.issuer, pointNames)
                if isinstance(scope, str):
                    return f"{source} {scope}"
                reasons &= scope
            elif extension.critical:
                # RFC 5280 section 5.2: an unknown critical extension
                # forbids using the CRL.
                oid = extension.oid.dotted_string
                return f"{source} has an unsupported critical extension ({oid})"
        if record.indexError is not None:
            return f"{source} is malformed ({record.indexError})"
        revocation = record.revocation(cert.serial_number)
        if revocation is not None:
            raise _revoked(cert, *revocation)
        return reasons

    async def _fetchURL(self, url: str) -> _Fetched:
        """
        The CRL at C{url}, from the cache or fetched; concurrent calls for
        one URL share a single fetch.
        """
        waiter: defer.Deferred[_Fetched] = defer.Deferred()
        waiting = self._fetching.get(url)
        if waiting is not None:
            waiting.append(waiter)
            return await waiter
        cached = self._cache.get(url)
        if cached is not None and self.clock.seconds() < cached.expires:
            return cached
        self._fetching[url] = [waiter]
        defer.ensureDeferred(self._fetchOnce(url)).addCallback(self._settle, url)
        return await waiter

    async def _fetchOnce(self, url: str) -> _Fetched:
        fetching = defer.maybeDeferred(self._getFetcher().fetch, url)
        timedOut = False

        def giveUp() -> None:
            # Not Deferred.addTimeout: an agent wraps the CancelledError,
            # which would hide that this was a timeout.
            nonlocal timedOut
            timedOut = True
            fetching.cancel()

        timeout = self.clock.callLater(self.fetchTimeout, giveUp)
        try:
            data = await fetching
        except Exception:
            # Whatever went wrong, the waiters must hear of it.
            if timedOut:
                return self._fetchFailed(Failure(_FetchError(_timeoutText(self.fetchTimeout))), url)
            return self._fetchFailed(Failure(), url)
        finally:
            if timeout.active():
                timeout.cancel()
        try:
            return await self._fetched(data, url)
        except Exception:
            return self._fetchFailed(Failure(), url)

    async def _fetched(self, data: bytes, url: str) -> _Fetched:
        def retry() -> float:
            return self.clock.seconds() + min(FAILURE_CACHE_AGE, self.maxCacheAge)

        if not isinstance(data, bytes):
            return _Fetched(None, "the fetcher gave no bytes", retry())
        if len(data) > self.maxCRLSize:
            return _Fetched(None, f"the CRL is larger than {self.maxCRLSize} bytes", retry())
        parsed = await self._deferToThread(_parseFetched, data, url)
        if isinstance(parsed, str):
            return _Fetched(None, parsed, retry())
        record, nextUpdate = parsed
        expires = self.clock.seconds() + self.maxCacheAge
        if nextUpdate is not None:
            expires = min(expires, nextUpdate.timestamp())
        log.debug("Fetched the CRL at {url}", url=url)
        # An outdated CRL is not asked for again at once either.
        return _Fetched(record, None, max(expires, retry()))

    def _fetchFailed(self, f: Failure, url: str) -> _Fetched:
        why = _describeFailure(f, self.fetchTimeout)
        log.debug("Could not fetch the CRL at {url}: {why}", url=url, why=why)
        return _Fetched(None, why, self.clock.seconds() + min(FAILURE_CACHE_AGE, self.maxCacheAge))

    def _settle(self, result: _Fetched, url: str) -> None:
        previous = self._cache.get(url)
        if result.record is None and previous is not None and previous.record is not None:
            # RFC 5280 section 6.3.3 (a): a CRL stays usable until its
            # nextUpdate, whether or not a newer one can be had.
            result = _Fetched(previous.record, result.error, result.expires)
        self._cache[url] = result
        self._prune()
        for waiter in self._fetching.pop(url, []):
            # A cancelled waiter ignores this (it has no canceller).
            waiter.callback(result)

    def _prune(self) -> None:
        # The URLs come from certificates of trusted CAs, so there are few;
        # still, forget the outdated ones now and then.
        if len(self._cache) < 256:
            return
        seconds = self.clock.seconds()
        for url, entry in list(self._cache.items()):
            if entry.expires <= seconds:
                del self._cache[url]


def _scope(
    point: x509.IssuingDistributionPoint,
    cert: x509.Certificate,
    crlIssuer: x509.Name,
    pointNames: set[x509.GeneralName],
) -> frozenset[x509.ReasonFlags] | str:
    """
    Whether a CRL's issuing distribution point covers a certificate (RFC
    5280 section 6.3.3 (b)(2)).

    @return: the reasons covered, or why the certificate is out of scope.
    """
    if point.indirect_crl:
        return "is an indirect CRL, which is not supported"
    if point.only_contains_attribute_certs:
        return "covers attribute certificates only"
    basic = _extension(cert.extensions, x509.BasicConstraints)
    isCA = basic is not None and basic.ca
    if point.only_contains_user_certs and isCA:
        return "covers end-entity certificates only"
    if point.only_contains_ca_certs and not isCA:
        return "covers CA certificates only"
    names = _dpNames(point.full_name, point.relative_name, crlIssuer)
    if names and not names & pointNames:
        return "is for another distribution point"
    if point.only_some_reasons is not None:
        return ALL_REASONS & point.only_some_reasons
    return ALL_REASONS


def _when(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _revoked(
    cert: x509.Certificate, date: datetime.datetime | None, reason: x509.ReasonFlags | None
) -> CertificateRevokedError:
    message = f"the certificate {_certificateName(cert)} is revoked"
    if date is not None:
        message += f" (since {_when(date)})"
    if reason is not None and reason is not x509.ReasonFlags.unspecified:
        message += f", reason {reason.value}"
    return CertificateRevokedError(message, cert, date, reason)


__all__ = [
    "ALL_REASONS",
    "CLOCK_SKEW",
    "DEFAULT_MAX_CRL_SIZE",
    "FAILURE_CACHE_AGE",
    "FILE_CHECK_INTERVAL",
    "CRLError",
    "CertificateRevokedError",
    "HTTPCRLFetcher",
    "ICRLFetcher",
    "RevocationCheckError",
    "RevocationChecker",
    "RevocationUnknownError",
    "crlDER",
    "crlPEM",
    "issueCRL",
    "loadCRL",
]
