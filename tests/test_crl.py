# -*- test-case-name: tests.test_crl -*-
"""
Tests for L{xmppcert.crl}: revocation checking of CA-issued client
certificates with CRLs (RFC 5280 sections 5 and 6.3), from files and from
distribution points, the latter both with a fake fetcher and with a real
HTTP server on the loopback interface.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import verification
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.interfaces import IListeningPort
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web import resource, server
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer, provider
from zope.interface.verify import verifyObject

from xmppcert import crl as crlModule
from xmppcert.crl import (
    ALL_REASONS,
    FAILURE_CACHE_AGE,
    FILE_CHECK_INTERVAL,
    CertificateRevokedError,
    CRLError,
    HTTPCRLFetcher,
    ICRLFetcher,
    RevocationChecker,
    RevocationCheckError,
    RevocationUnknownError,
    crlDER,
    crlPEM,
    issueCRL,
    loadCRL,
)
from xmppcert.x509 import generateClientKey, issueCACertificate, issueClientCertificate

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
ROOT_KEY = generateClientKey()
ROOT = issueCACertificate("xmppcert test root CA", ROOT_KEY, now=NOW)
INTERMEDIATE_KEY = generateClientKey()
INTERMEDIATE = issueCACertificate(
    "xmppcert test intermediate CA",
    INTERMEDIATE_KEY,
    now=NOW,
    issuerCertificate=ROOT,
    issuerKey=ROOT_KEY,
)

#: The global reactor, for the tests with a real server.
REACTOR: Any = reactor

LEAF_URL = "http://crl.example/intermediate.crl"
ROOT_URL = "http://crl.example/root.crl"


def withDistributionPoints(
    cert: x509.Certificate,
    signingKey: CertificateIssuerPrivateKeyTypes,
    urls: Sequence[str],
    points: int = 1,
) -> x509.Certificate:
    """
    The same certificate (key, serial, names, extensions) with a CRL
    distribution points extension, signed again by its issuer.

    @param points: how many distribution points, each with all C{urls}.
    """
    extension = x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(u) for u in urls],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
        * points
    )
    return x509.CertificateBuilder(
        issuer_name=cert.issuer,
        subject_name=cert.subject,
        public_key=cert.public_key(),
        serial_number=cert.serial_number,
        not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
        extensions=[*cert.extensions, x509.Extension(extension.oid, False, extension)],
    ).sign(signingKey, hashes.SHA256())


def leafCertificate(
    urls: Sequence[str] = (LEAF_URL,), jid: str = "alice@example.com"
) -> x509.Certificate:
    """
    A client certificate from L{INTERMEDIATE}, with C{urls} as its CRL
    distribution point (none if empty).
    """
    leaf = issueClientCertificate(
        [jid],
        generateClientKey(),
        now=NOW,
        issuerCertificate=INTERMEDIATE,
        issuerKey=INTERMEDIATE_KEY,
    )
    return withDistributionPoints(leaf, INTERMEDIATE_KEY, urls) if urls else leaf


def validatedChain(
    leaf: x509.Certificate, intermediate: x509.Certificate = INTERMEDIATE
) -> list[x509.Certificate]:
    """
    The chain as the C{ca} checker has it after path validation:
    cryptography's verified client chain, leaf first, root last.
    """
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([ROOT]))
        .time(NOW)
        .build_client_verifier()
    )
    return list(verifier.verify(leaf, [intermediate]).chain)


def clockAt(when: datetime.datetime = NOW) -> task.Clock:
    clock = task.Clock()
    clock.advance(when.timestamp())
    return clock


def intermediateCRL(
    revoked: Sequence[int] = (),
    now: datetime.datetime = NOW,
    days: int = 7,
    reasons: dict[int, x509.ReasonFlags] | None = None,
) -> bytes:
    return crlDER(issueCRL(INTERMEDIATE, INTERMEDIATE_KEY, revoked, now, days, reasons=reasons))


def customCRL(
    revoked: Sequence[int] = (),
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> bytes:
    """
    A CRL of L{INTERMEDIATE} with extra CRL extensions (value, critical).
    """
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(INTERMEDIATE.subject)
        .last_update(NOW)
        .next_update(NOW + datetime.timedelta(days=7))
    )
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build()
        )
    return crlDER(builder.sign(INTERMEDIATE_KEY, hashes.SHA256()))


def syncDeferToThread(f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
    """
    A C{deferToThread} that runs C{f} at once, for tests on a fake clock.
    """
    return defer.maybeDeferred(f, *args, **kwargs)


class FakeThreads:
    """
    A C{deferToThread} that records what it is asked to run and runs it at
    once or, with C{queue}, when the test calls L{runAll}.

    @ivar calls: the names of the functions asked for, in order.
    """

    def __init__(self, queue: bool = False) -> None:
        self.queue = queue
        self.calls: list[str] = []
        self._pending: list[tuple[defer.Deferred[Any], Callable[[], Any]]] = []

    def __call__(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        self.calls.append(f.__name__)
        if not self.queue:
            return defer.maybeDeferred(f, *args, **kwargs)
        d: defer.Deferred[Any] = defer.Deferred()
        self._pending.append((d, lambda: f(*args, **kwargs)))
        return d

    @property
    def pending(self) -> int:
        return len(self._pending)

    def failNext(self, error: Exception) -> None:
        """
        Fail the first queued call with C{error} instead of running it.
        """
        d, _ = self._pending.pop(0)
        d.errback(error)

    def runAll(self) -> None:
        """
        Run the queued calls, and those they queue, delivering their
        results as the reactor would.
        """
        while self._pending:
            d, call = self._pending.pop(0)
            defer.maybeDeferred(call).chainDeferred(d)


class NoLinearScan:
    """
    A CRL that fails the test when looked up serial by serial, which reads
    the whole list every time.
    """

    def __init__(self, crl: x509.CertificateRevocationList) -> None:
        self._crl = crl

    def __getattr__(self, name: str) -> Any:
        return getattr(self._crl, name)

    def __iter__(self) -> Any:
        return iter(self._crl)

    def __len__(self) -> int:
        return len(self._crl)

    def get_revoked_certificate_by_serial_number(self, serial: int) -> Any:
        raise AssertionError("a linear lookup of a serial")


@implementer(ICRLFetcher)
class FakeFetcher:
    """
    Answers from a table: bytes, an exception to fail with, or a Deferred
    (which the test fires, or not).

    @ivar requests: the URLs asked for, in order.
    @ivar cancelled: how many fetches were cancelled.
    """

    def __init__(
        self, answers: dict[str, bytes | Exception | defer.Deferred[bytes]] | None = None
    ) -> None:
        self.answers = dict(answers or {})
        self.requests: list[str] = []
        self.cancelled = 0

    def fetch(self, url: str) -> defer.Deferred[bytes]:
        self.requests.append(url)
        answer = self.answers.get(url, ConnectionRefusedError("nothing listens there"))
        if isinstance(answer, defer.Deferred):
            return answer
        if isinstance(answer, Exception):
            return defer.fail(answer)
        return defer.succeed(answer)

    def pending(self) -> defer.Deferred[bytes]:
        """
        A Deferred that only fires when the test fires it, counting its
        cancellation.
        """

        def cancel(d: defer.Deferred[bytes]) -> None:
            self.cancelled += 1

        return defer.Deferred(cancel)


def captureLogs(case: unittest.SynchronousTestCase) -> list[LogEvent]:
    """
    Collect log events for the rest of the test.
    """
    events: list[LogEvent] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        events.append(event)

    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return events


def crlEvents(events: list[LogEvent]) -> list[LogEvent]:
    """
    The events of L{xmppcert.crl} above debug level.
    """
    return [
        e
        for e in events
        if str(e.get("log_namespace", "")).startswith("xmppcert.crl")
        and e.get("log_level") != LogLevel.debug
    ]


class RevocationCheckerTests(unittest.SynchronousTestCase):
    """
    L{RevocationChecker} with a fake fetcher, CRL files and a fake clock.
    """

    def checker(self, fetcher: FakeFetcher | None = None, **kwargs: Any) -> RevocationChecker:
        kwargs.setdefault("clock", clockAt())
        kwargs.setdefault("deferToThread", syncDeferToThread)
        checker = RevocationChecker(fetcher=fetcher or FakeFetcher(), **kwargs)
        self.addCleanup(checker.stop)
        return checker

    def accepted(self, checker: RevocationChecker, chain: Sequence[x509.Certificate]) -> None:
        self.assertIsNone(self.successResultOf(defer.ensureDeferred(checker.check(chain))))

    def refused(
        self,
        checker: RevocationChecker,
        chain: Sequence[x509.Certificate],
        kind: type[RevocationCheckError],
    ) -> RevocationCheckError:
        failure = self.failureResultOf(defer.ensureDeferred(checker.check(chain)), kind)
        error = failure.value
        assert isinstance(error, kind)
        return error

    def test_interfaces(self) -> None:
        """
        Style: the fakes and the HTTP fetcher provide L{ICRLFetcher}; both
        refusals are L{RevocationCheckError}s.
        """
        verifyObject(ICRLFetcher, HTTPCRLFetcher())
        verifyObject(ICRLFetcher, FakeFetcher())
        self.assertTrue(issubclass(CertificateRevokedError, RevocationCheckError))
        self.assertTrue(issubclass(RevocationUnknownError, RevocationCheckError))
        self.assertTrue(issubclass(CRLError, ValueError))

    def test_badArguments(self) -> None:
        """
        Configuration: the failure policy is C{"soft"} or C{"hard"}, and the
        limits are positive.
        """
        self.assertRaises(ValueError, RevocationChecker, clockAt(), failurePolicy="medium")
        self.assertRaises(ValueError, RevocationChecker, clockAt(), fetchTimeout=0)

    def test_unrevokedAccepted(self) -> None:
        """
        RFC 5280 6.3.3: a certificate absent from a current CRL its issuer
        signed is not revoked, even under the hard policy.
        """
        fetcher = FakeFetcher({LEAF_URL: intermediateCRL(revoked=[12345])})
        leaf = leafCertificate()
        self.accepted(self.checker(fetcher, failurePolicy="hard"), validatedChain(leaf))
        self.assertEqual(fetcher.requests, [LEAF_URL])

    def test_revokedLeafRefused(self) -> None:
        """
        RFC 5280 6.3.3 (i): a serial listed on the issuer's CRL is revoked;
        the refusal names the certificate, its serial, when and why.
        """
        leaf = leafCertificate()
        crl = intermediateCRL(
            revoked=[leaf.serial_number],
            reasons={leaf.serial_number: x509.ReasonFlags.key_compromise},
        )
        for policy in ("soft", "hard"):
            checker = self.checker(FakeFetcher({LEAF_URL: crl}), failurePolicy=policy)
            error = self.refused(checker, validatedChain(leaf), CertificateRevokedError)
            message = str(error)
            self.assertIn("CN=alice@example.com", message)
            self.assertIn(f"{leaf.serial_number:X}", message)
            self.assertIn(NOW.strftime("%Y-%m-%d %H:%M:%S"), message)
            self.assertIn("keyCompromise", message)
            assert isinstance(error, CertificateRevokedError)
            self.assertIs(error.certificate, leaf)
            self.assertEqual(error.reason, x509.ReasonFlags.key_compromise)
            self.assertEqual(error.revocationDate, NOW)

    def test_revokedIntermediateRefused(self) -> None:
        """
        RFC 5280 6.3: every certificate of the path but the trust anchor is
        checked; an intermediate on the root's CRL makes the chain revoked.
        """
        intermediate = withDistributionPoints(INTERMEDIATE, ROOT_KEY, [ROOT_URL])
        leaf = leafCertificate()
        fetcher = FakeFetcher(
            {
                LEAF_URL: intermediateCRL(),
                ROOT_URL: crlDER(issueCRL(ROOT, ROOT_KEY, [INTERMEDIATE.serial_number], NOW)),
            }
        )
        error = self.refused(
            self.checker(fetcher), validatedChain(leaf, intermediate), CertificateRevokedError
        )
        self.assertIs(error.certificate, intermediate)
        self.assertIn("CN=xmppcert test intermediate CA", str(error))
        self.assertEqual(sorted(fetcher.requests), [LEAF_URL, ROOT_URL])

    def test_unrevokedIntermediateAccepted(self) -> None:
        """
        RFC 5280 6.3: with current CRLs for each issuer that list neither
        certificate, the whole chain is good.
        """
        intermediate = withDistributionPoints(INTERMEDIATE, ROOT_KEY, [ROOT_URL])
        fetcher = FakeFetcher(
            {LEAF_URL: intermediateCRL(), ROOT_URL: crlDER(issueCRL(ROOT, ROOT_KEY, [], NOW))}
        )
        self.accepted(
            self.checker(fetcher, failurePolicy="hard"),
            validatedChain(leafCertificate(), intermediate),
        )

    def test_revokedWinsOverUnknown(self) -> None:
        """
        RFC 5280 6.3: a revocation anywhere in the chain is reported as
        such, even when another certificate's status is unknown.
        """
        intermediate = withDistributionPoints(INTERMEDIATE, ROOT_KEY, [ROOT_URL])
        leaf = leafCertificate()
        fetcher = FakeFetcher({LEAF_URL: intermediateCRL(revoked=[leaf.serial_number])})
        error = self.refused(
            self.checker(fetcher, failurePolicy="hard"),
            validatedChain(leaf, intermediate),
            CertificateRevokedError,
        )
        self.assertIs(error.certificate, leaf)

    def test_wrongSignatureIgnored(self) -> None:
        """
        RFC 5280 6.3.3 (g): a CRL whose signature the issuer's key does not
        verify is not used, not even its revocations: the status is
        unknown (refused under hard, accepted under soft).
        """
        impostorKey = generateClientKey()
        impostor = issueCACertificate("xmppcert test intermediate CA", impostorKey, now=NOW)
        leaf = leafCertificate()
        forged = crlDER(issueCRL(impostor, impostorKey, [leaf.serial_number], NOW))
        error = self.refused(
            self.checker(FakeFetcher({LEAF_URL: forged}), failurePolicy="hard"),
            validatedChain(leaf),
            RevocationUnknownError,
        )
        self.assertIn("not signed by the certificate's issuer", str(error))
        self.accepted(self.checker(FakeFetcher({LEAF_URL: forged})), validatedChain(leaf))

    def test_otherIssuerIgnored(self) -> None:
        """
        RFC 5280 6.3.3 (b)(1): a CRL of another issuer (here the root's,
        listing the leaf's serial) says nothing about the certificate.
        """
        leaf = leafCertificate()
        rootCRL = crlDER(issueCRL(ROOT, ROOT_KEY, [leaf.serial_number], NOW))
        error = self.refused(
            self.checker(FakeFetcher({LEAF_URL: rootCRL}), failurePolicy="hard"),
            validatedChain(leaf),
            RevocationUnknownError,
        )
        self.assertIn("not issued by the certificate's issuer", str(error))

    def test_expiredCRLIgnored(self) -> None:
        """
        RFC 5280 6.3.3 (a)(2): a CRL past its nextUpdate is not used.
        """
        stale = intermediateCRL(now=NOW - datetime.timedelta(days=8), days=7)
        error = self.refused(
            self.checker(FakeFetcher({LEAF_URL: stale}), failurePolicy="hard"),
            validatedChain(leafCertificate()),
            RevocationUnknownError,
        )
        self.assertIn("out of date", str(error))

    def test_futureCRLIgnored(self) -> None:
        """
        RFC 5280 5.1.2.4: a CRL whose thisUpdate is later than now (beyond
        a few minutes of clock skew) is not valid yet.
        """
        future = intermediateCRL(now=NOW + datetime.timedelta(hours=1))
        error = self.refused(
            self.checker(FakeFetcher({LEAF_URL: future}), failurePolicy="hard"),
            validatedChain(leafCertificate()),
            RevocationUnknownError,
        )
        self.assertIn("not valid yet", str(error))
        skewed = intermediateCRL(now=NOW + datetime.timedelta(minutes=2))
        self.accepted(
            self.checker(FakeFetcher({LEAF_URL: skewed}), failurePolicy="hard"),
            validatedChain(leafCertificate()),
        )

    def test_issuingDistributionPointScope(self) -> None:
        """
        RFC 5280 6.3.3 (b)(2): a CRL whose issuing distribution point
        excludes the certificate (CA certificates only, another
        distribution point, only some reasons) does not establish its
        status; one that includes it does.
        """
        leaf = leafCertificate()

        def scoped(**changes: Any) -> bytes:
            fields: dict[str, Any] = {
                "full_name": None,
                "relative_name": None,
                "only_contains_user_certs": False,
                "only_contains_ca_certs": False,
                "only_some_reasons": None,
                "indirect_crl": False,
                "only_contains_attribute_certs": False,
            }
            fields.update(changes)
            return customCRL(extensions=[(x509.IssuingDistributionPoint(**fields), True)])

        outOfScope = {
            "covers CA certificates only": scoped(only_contains_ca_certs=True),
            "is for another distribution point": scoped(
                full_name=[x509.UniformResourceIdentifier("http://crl.example/other.crl")]
            ),
            "only some revocation reasons": scoped(
                only_some_reasons=frozenset({x509.ReasonFlags.key_compromise})
            ),
            "indirect CRL": scoped(indirect_crl=True),
        }
        for expected, crl in outOfScope.items():
            error = self.refused(
                self.checker(FakeFetcher({LEAF_URL: crl}), failurePolicy="hard"),
                validatedChain(leaf),
                RevocationUnknownError,
            )
            self.assertIn(expected, str(error))
        inScope = scoped(
            full_name=[x509.UniformResourceIdentifier(LEAF_URL)], only_contains_user_certs=True
        )
        self.accepted(
            self.checker(FakeFetcher({LEAF_URL: inScope}), failurePolicy="hard"),
            validatedChain(leaf),
        )

    def test_partialReasonsStillRevoke(self) -> None:
        """
        RFC 5280 6.3.3 (i): a serial listed on a CRL for some reasons only
        is revoked all the same.
        """
        leaf = leafCertificate()
        partial = x509.IssuingDistributionPoint(
            full_name=None,
            relative_name=None,
            only_contains_user_certs=False,
            only_contains_ca_certs=False,
            only_some_reasons=frozenset({x509.ReasonFlags.key_compromise}),
            indirect_crl=False,
            only_contains_attribute_certs=False,
        )
        crl = customCRL(revoked=[leaf.serial_number], extensions=[(partial, True)])
        self.refused(
            self.checker(FakeFetcher({LEAF_URL: crl})),
            validatedChain(leaf),
            CertificateRevokedError,
        )

    def test_unsupportedCRLsIgnored(self) -> None:
        """
        RFC 5280 5.2: a CRL with a critical extension we do not process
        must not be used; delta CRLs (5.2.4) are not supported either.
        """
        leaf = leafCertificate()
        unknown = x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"
        )
        for crl, expected in [
            (customCRL(extensions=[(unknown, True)]), "unsupported critical extension"),
            (customCRL(extensions=[(x509.DeltaCRLIndicator(1), True)]), "delta CRL"),
        ]:
            error = self.refused(
                self.checker(FakeFetcher({LEAF_URL: crl}), failurePolicy="hard"),
                validatedChain(leaf),
                RevocationUnknownError,
            )
            self.assertIn(expected, str(error))
        harmless = customCRL(extensions=[(unknown, False)])
        self.accepted(
            self.checker(FakeFetcher({LEAF_URL: harmless}), failurePolicy="hard"),
            validatedChain(leaf),
        )

    def test_nothingToCheck(self) -> None:
        """
        RFC 5280 6.3: a certificate without distribution points, whose
        issuer has no configured CRL, has no CRL to check against: it is
        accepted under either policy, without any fetch or log line.
        """
        events = captureLogs(self)
        fetcher = FakeFetcher()
        for policy in ("soft", "hard"):
            self.accepted(
                self.checker(fetcher, failurePolicy=policy),
                validatedChain(leafCertificate(urls=())),
            )
        self.assertEqual(fetcher.requests, [])
        self.assertEqual(crlEvents(events), [])

    def test_fetchFailureHardRefuses(self) -> None:
        """
        RFC 5280 6.3.3 (k): no usable CRL means an undetermined status;
        the hard policy refuses, saying which URL failed and how.
        """
        error = self.refused(
            self.checker(failurePolicy="hard"),
            validatedChain(leafCertificate()),
            RevocationUnknownError,
        )
        message = str(error)
        self.assertIn(f"the CRL at {LEAF_URL} could not be fetched", message)
        self.assertIn("ConnectionRefusedError: nothing listens there", message)
        self.assertIn("CN=alice@example.com", message)

    def test_fetchFailureSoftAccepts(self) -> None:
        """
        Failure policy soft: an undetermined status is accepted with a log
        line at info (never above: the client chose the URL).
        """
        events = captureLogs(self)
        self.accepted(self.checker(), validatedChain(leafCertificate()))
        logged = crlEvents(events)
        self.assertEqual([e["log_level"] for e in logged], [LogLevel.info])
        self.assertIn(LEAF_URL, formatEvent(logged[0]))
        self.assertIn("could not be fetched", formatEvent(logged[0]))

    def test_failureCached(self) -> None:
        """
        Availability: a failed fetch is remembered for a while, so that a
        dead distribution point is not asked on every login.
        """
        clock = clockAt()
        fetcher = FakeFetcher()
        checker = self.checker(fetcher, clock=clock)
        chain = validatedChain(leafCertificate())
        self.accepted(checker, chain)
        clock.advance(FAILURE_CACHE_AGE - 1)
        self.accepted(checker, chain)
        self.assertEqual(len(fetcher.requests), 1)
        clock.advance(1)
        self.accepted(checker, chain)
        self.assertEqual(len(fetcher.requests), 2)

    def test_cachedUntilMaxAge(self) -> None:
        """
        Caching: a fetched CRL is used until C{maxCacheAge} when its
        nextUpdate is later, then fetched again.
        """
        clock = clockAt()
        leaf = leafCertificate()
        fetcher = FakeFetcher({LEAF_URL: intermediateCRL()})
        checker = self.checker(fetcher, clock=clock, maxCacheAge=600)
        self.accepted(checker, validatedChain(leaf))
        clock.advance(599)
        self.accepted(checker, validatedChain(leaf))
        self.assertEqual(len(fetcher.requests), 1)
        fetcher.answers[LEAF_URL] = intermediateCRL(revoked=[leaf.serial_number])
        clock.advance(1)
        self.refused(checker, validatedChain(leaf), CertificateRevokedError)
        self.assertEqual(len(fetcher.requests), 2)

    def test_cachedUntilNextUpdate(self) -> None:
        """
        RFC 5280 5.1.2.5: a fetched CRL is used until its nextUpdate when
        that comes before C{maxCacheAge}, then fetched again.
        """
        clock = clockAt()
        leaf = leafCertificate()
        fetcher = FakeFetcher({LEAF_URL: intermediateCRL(days=1)})
        checker = self.checker(fetcher, clock=clock, maxCacheAge=7 * 86400, failurePolicy="hard")
        self.accepted(checker, validatedChain(leaf))
        clock.advance(86399)
        self.accepted(checker, validatedChain(leaf))
        self.assertEqual(len(fetcher.requests), 1)
        fetcher.answers[LEAF_URL] = intermediateCRL(now=NOW + datetime.timedelta(days=1))
        clock.advance(1)
        self.accepted(checker, validatedChain(leaf))
        self.assertEqual(len(fetcher.requests), 2)

    def test_currentCRLOutlivesFailedRefetch(self) -> None:
        """
        RFC 5280 6.3.3 (a): a CRL stays usable until its nextUpdate, so a
        failed refetch after C{maxCacheAge} keeps the one fetched before.
        """
        clock = clockAt()
        leaf = leafCertificate()
        fetcher = FakeFetcher({LEAF_URL: intermediateCRL(revoked=[leaf.serial_number])})
        checker = self.checker(fetcher, clock=clock, maxCacheAge=600)
        self.refused(checker, validatedChain(leaf), CertificateRevokedError)
        fetcher.answers[LEAF_URL] = ConnectionRefusedError()
        clock.advance(600)
        self.refused(checker, validatedChain(leaf), CertificateRevokedError)
        self.assertEqual(len(fetcher.requests), 2)

    def test_fetchesCoalesced(self) -> None:
        """
        Availability: concurrent checks needing one URL share one fetch.
        """
        fetcher = FakeFetcher()
        answer = fetcher.pending()
        fetcher.answers[LEAF_URL] = answer
        checker = self.checker(fetcher, failurePolicy="hard")
        leaf = leafCertificate()
        checks = [defer.ensureDeferred(checker.check(validatedChain(leaf))) for _ in range(3)]
        for d in checks:
            self.assertNoResult(d)
        answer.callback(intermediateCRL())
        for d in checks:
            self.assertIsNone(self.successResultOf(d))
        self.assertEqual(fetcher.requests, [LEAF_URL])

    def test_timeout(self) -> None:
        """
        Availability: a fetch that takes longer than C{fetchTimeout} by the
        injected clock is abandoned (cancelled) and the status is unknown.
        """
        clock = clockAt()
        fetcher = FakeFetcher()
        fetcher.answers[LEAF_URL] = fetcher.pending()
        checker = self.checker(fetcher, clock=clock, failurePolicy="hard", fetchTimeout=5)
        d = defer.ensureDeferred(checker.check(validatedChain(leafCertificate())))
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        error = self.failureResultOf(d, RevocationUnknownError).value
        self.assertIn("could not be fetched: timeout", str(error))
        self.assertEqual(fetcher.cancelled, 1)

    def test_garbage(self) -> None:
        """
        Robustness: whatever a distribution point serves or a fetcher
        fails with ends in an unknown status, never another exception.
        """
        valid = intermediateCRL()
        answers: list[bytes | Exception] = [
            b"",
            b"<html>not found</html>",
            b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
            valid[:-10],
            valid + b"trailing",
            b"\x30\x82\xff\xff" + b"\x00" * 100,
            RuntimeError("a buggy fetcher"),
        ]
        for answer in answers:
            checker = self.checker(FakeFetcher({LEAF_URL: answer}), failurePolicy="hard")
            self.refused(checker, validatedChain(leafCertificate()), RevocationUnknownError)

    def test_oversizedFromFetcher(self) -> None:
        """
        Robustness: a body larger than C{maxCRLSize} is not parsed.
        """
        checker = self.checker(
            FakeFetcher({LEAF_URL: intermediateCRL()}), failurePolicy="hard", maxCRLSize=100
        )
        error = self.refused(checker, validatedChain(leafCertificate()), RevocationUnknownError)
        self.assertIn("larger than 100 bytes", str(error))

    def test_onlyHTTP(self) -> None:
        """
        Security: only http and https distribution points are fetched (and
        only URLs fit for a request line); one with only other URLs (LDAP,
        file) gives an unknown status.
        """
        fetcher = FakeFetcher()
        leaf = leafCertificate(
            urls=[
                "ldap://ldap.example/cn=CA?certificateRevocationList",
                "file:///etc/passwd",
                "http://crl.example/a b.crl",
                "http://crl.example/\r\nX-Injected: 1",
            ]
        )
        error = self.refused(
            self.checker(fetcher, failurePolicy="hard"),
            validatedChain(leaf),
            RevocationUnknownError,
        )
        self.assertIn("no http(s) URL", str(error))
        self.assertEqual(fetcher.requests, [])

    def test_fetcherRefusesOtherSchemes(self) -> None:
        """
        Security: the HTTP fetcher itself fetches nothing but http and
        https, whoever calls it.
        """
        for url in (
            "file:///etc/passwd",
            "ftp://ftp.example/ca.crl",
            "/relative.crl",
            "http://[::1/",
            "http://\u00e9.example/",
        ):
            self.failureResultOf(HTTPCRLFetcher().fetch(url))

    def test_mirrorsTriedInOrder(self) -> None:
        """
        RFC 5280 4.2.1.13: the names of one distribution point are
        alternatives; the next URL is tried when one fails.
        """
        mirror = "https://mirror.example/intermediate.crl"
        fetcher = FakeFetcher({mirror: intermediateCRL()})
        leaf = leafCertificate(urls=[LEAF_URL, mirror])
        self.accepted(self.checker(fetcher, failurePolicy="hard"), validatedChain(leaf))
        self.assertEqual(fetcher.requests, [LEAF_URL, mirror])

    def test_fetchOff(self) -> None:
        """
        Configuration: with fetching off, a certificate with distribution
        points needs a configured CRL; without one its status is unknown.
        """
        leaf = leafCertificate()
        fetcher = FakeFetcher({LEAF_URL: intermediateCRL()})
        error = self.refused(
            self.checker(fetcher, fetch=False, failurePolicy="hard"),
            validatedChain(leaf),
            RevocationUnknownError,
        )
        self.assertIn("fetching CRLs is off", str(error))
        path = self.writeCRL(intermediateCRL())
        self.accepted(
            self.checker(fetcher, fetch=False, failurePolicy="hard", crlFiles=[path]),
            validatedChain(leaf),
        )
        self.assertEqual(fetcher.requests, [])

    def temporaryDirectory(self) -> Path:
        # Not self.mktemp(): under pytest that writes into the working tree.
        path = Path(tempfile.mkdtemp(prefix="xmppcert-test-crl-"))
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    def writeCRL(self, data: bytes, name: str = "ca.crl") -> Path:
        path = self.temporaryDirectory() / name
        path.write_bytes(data)
        return path

    def test_fileCRL(self) -> None:
        """
        RFC 5280 6.3: a configured CRL file (PEM or DER) of the issuer
        decides the status of certificates without distribution points,
        and spares the fetch for those with one.
        """
        leaf = leafCertificate(urls=())
        other = leafCertificate()
        crl = issueCRL(INTERMEDIATE, INTERMEDIATE_KEY, [leaf.serial_number], NOW)
        for data in (crlPEM(crl), crlDER(crl)):
            fetcher = FakeFetcher()
            checker = self.checker(fetcher, crlFiles=[self.writeCRL(data)], failurePolicy="hard")
            self.refused(checker, validatedChain(leaf), CertificateRevokedError)
            self.accepted(checker, validatedChain(other))
            self.assertEqual(fetcher.requests, [])

    def test_fileWithSeveralCRLs(self) -> None:
        """
        Configuration: a PEM file may hold the CRLs of several CAs, as web
        servers' CRL files do.
        """
        intermediate = withDistributionPoints(INTERMEDIATE, ROOT_KEY, [ROOT_URL])
        bundle = crlPEM(issueCRL(ROOT, ROOT_KEY, [], NOW)) + crlPEM(
            issueCRL(INTERMEDIATE, INTERMEDIATE_KEY, [], NOW)
        )
        checker = self.checker(fetch=False, crlFiles=[self.writeCRL(bundle)], failurePolicy="hard")
        self.accepted(checker, validatedChain(leafCertificate(), intermediate))

    def test_fileCRLOfIssuerUnusable(self) -> None:
        """
        RFC 5280 6.3.3 (k): when a CRL of the issuer is configured but
        unusable (here past its nextUpdate), the status of its certificates
        is unknown, even without distribution points.
        """
        stale = intermediateCRL(now=NOW - datetime.timedelta(days=8))
        checker = self.checker(crlFiles=[self.writeCRL(stale)], failurePolicy="hard")
        error = self.refused(
            checker, validatedChain(leafCertificate(urls=())), RevocationUnknownError
        )
        self.assertIn("out of date", str(error))

    def test_fileReloaded(self) -> None:
        """
        Operations: a CRL file is read again after it changes on disk (by
        an atomic rename or in place), at most every few seconds.
        """
        clock = clockAt()
        leaf = leafCertificate(urls=())
        path = self.writeCRL(intermediateCRL())
        checker = self.checker(crlFiles=[path], clock=clock, failurePolicy="hard")
        self.accepted(checker, validatedChain(leaf))
        replacement = path.with_name("new.crl")
        replacement.write_bytes(intermediateCRL(revoked=[leaf.serial_number]))
        os.replace(replacement, path)
        self.accepted(checker, validatedChain(leaf))
        clock.advance(FILE_CHECK_INTERVAL)
        self.refused(checker, validatedChain(leaf), CertificateRevokedError)
        path.write_bytes(intermediateCRL(revoked=[leaf.serial_number, 1, 2, 3]) + b"")
        path.write_bytes(intermediateCRL())
        clock.advance(FILE_CHECK_INTERVAL)
        self.accepted(checker, validatedChain(leaf))

    def test_brokenFileKeepsLastCRLs(self) -> None:
        """
        Operations: a CRL file that becomes unreadable (half written,
        removed) keeps its last CRLs, with a warning for the operator.
        """
        events = captureLogs(self)
        clock = clockAt()
        leaf = leafCertificate(urls=())
        path = self.writeCRL(intermediateCRL(revoked=[leaf.serial_number]))
        checker = self.checker(crlFiles=[path], clock=clock)
        path.write_bytes(b"-----BEGIN X509 CRL-----\nhalf")
        clock.advance(FILE_CHECK_INTERVAL)
        self.refused(checker, validatedChain(leaf), CertificateRevokedError)
        path.unlink()
        clock.advance(FILE_CHECK_INTERVAL)
        self.refused(checker, validatedChain(leaf), CertificateRevokedError)
        self.assertEqual(
            [e["log_level"] for e in crlEvents(events)], [LogLevel.warn, LogLevel.warn]
        )

    def test_badFileAtStart(self) -> None:
        """
        Configuration: a missing or invalid CRL file is an error at start,
        naming the file.
        """
        missing = self.temporaryDirectory() / "missing.crl"
        error = self.assertRaises(CRLError, RevocationChecker, clockAt(), crlFiles=[missing])
        self.assertIn(str(missing), str(error))
        garbage = self.writeCRL(b"not a CRL")
        error = self.assertRaises(CRLError, RevocationChecker, clockAt(), crlFiles=[garbage])
        self.assertIn(str(garbage), str(error))

    def test_largeCRLIndexed(self) -> None:
        """
        Availability: a large CRL (50,000 serials), from a file or fetched,
        is indexed once; each check looks its serials up in the index,
        never in the CRL's list, and finds exactly the revoked ones.
        """
        self.patch(crlModule, "loadCRL", lambda data: NoLinearScan(loadCRL(data)))
        revoked = [leafCertificate(jid=f"r{i}@example.com") for i in range(5)]
        good = [leafCertificate(jid=f"g{i}@example.com") for i in range(5)]
        serials = [x509.random_serial_number() for _ in range(50_000)]
        serials[::10_000] = [cert.serial_number for cert in revoked]
        data = intermediateCRL(revoked=serials)
        fetched = self.checker(FakeFetcher({LEAF_URL: data}), failurePolicy="hard")
        fromFile = self.checker(fetch=False, crlFiles=[self.writeCRL(data)], failurePolicy="hard")
        for checker in (fetched, fromFile):
            for _ in range(3):
                for cert in revoked:
                    self.refused(checker, validatedChain(cert), CertificateRevokedError)
                for cert in good:
                    self.accepted(checker, validatedChain(cert))

    def test_reloadedByLoopNotCheck(self) -> None:
        """
        Availability: the files are looked at by a loop on the clock, in a
        thread, never by a check (a login): a changed file takes effect
        after the loop has run, whether or not anything was checked
        meanwhile.
        """
        clock = clockAt()
        threads = FakeThreads()
        leaf = leafCertificate(urls=())
        path = self.writeCRL(intermediateCRL())
        checker = self.checker(crlFiles=[path], clock=clock, deferToThread=threads)
        self.accepted(checker, validatedChain(leaf))
        path.write_bytes(intermediateCRL(revoked=[leaf.serial_number, 1]))
        threads.calls.clear()
        clock.advance(FILE_CHECK_INTERVAL - 0.1)
        self.accepted(checker, validatedChain(leaf))
        self.assertEqual(threads.calls, [])
        clock.advance(0.1)
        self.assertEqual(threads.calls, ["_refreshCRLFile"])
        # The new CRL was verified in the thread with the key that
        # verified the one it replaces: the check needs no thread.
        self.refused(checker, validatedChain(leaf), CertificateRevokedError)
        self.assertEqual(threads.calls, ["_refreshCRLFile"])

    def test_workInThreads(self) -> None:
        """
        Availability: reading a changed file, parsing and indexing a fetched
        CRL and the first check of a signature happen in threads; the
        checks wait for them (concurrent ones share them), and the reactor
        swaps the new CRLs in only when they are ready.
        """
        clock = clockAt()
        threads = FakeThreads(queue=True)
        leaf = leafCertificate(urls=())
        path = self.writeCRL(intermediateCRL())
        checker = self.checker(crlFiles=[path], clock=clock, deferToThread=threads)
        checks = [defer.ensureDeferred(checker.check(validatedChain(leaf))) for _ in range(2)]
        for d in checks:
            self.assertNoResult(d)
        self.assertEqual(threads.calls, ["_signatureValid"])
        threads.runAll()
        for d in checks:
            self.assertIsNone(self.successResultOf(d))
        self.accepted(checker, validatedChain(leaf))
        self.assertEqual(threads.pending, 0)

        path.write_bytes(intermediateCRL(revoked=[leaf.serial_number, 1]))
        clock.advance(FILE_CHECK_INTERVAL)
        self.assertEqual(threads.calls[1:], ["_refreshCRLFile"])
        # Until the thread is done, the last CRLs are used.
        self.accepted(checker, validatedChain(leaf))
        threads.runAll()
        self.refused(checker, validatedChain(leaf), CertificateRevokedError)

        fetched = leafCertificate()
        fetcher = FakeFetcher({LEAF_URL: intermediateCRL(revoked=[fetched.serial_number])})
        threads.calls.clear()
        checker = self.checker(fetcher, clock=clock, deferToThread=threads)
        d = defer.ensureDeferred(checker.check(validatedChain(fetched)))
        self.assertNoResult(d)
        threads.runAll()
        self.failureResultOf(d, CertificateRevokedError)
        self.assertEqual(threads.calls, ["_parseFetched", "_signatureValid"])

    def test_verificationFailure(self) -> None:
        """
        Robustness: an unexpected error while checking a signature in a
        thread fails the check, as it would without the thread, and is
        not remembered: the next check tries again.
        """
        threads = FakeThreads(queue=True)
        leaf = leafCertificate(urls=())
        checker = self.checker(crlFiles=[self.writeCRL(intermediateCRL())], deferToThread=threads)
        d = defer.ensureDeferred(checker.check(validatedChain(leaf)))
        self.assertEqual(threads.pending, 1)
        threads.failNext(RuntimeError("a bug"))
        self.failureResultOf(d, RuntimeError)
        d = defer.ensureDeferred(checker.check(validatedChain(leaf)))
        threads.runAll()
        self.assertIsNone(self.successResultOf(d))

    def test_startStop(self) -> None:
        """
        Operations: L{RevocationChecker.start} starts the loop that looks at
        the files (once, however often called; at once when they were read
        more than an interval ago), L{RevocationChecker.stop} cancels it
        and a check does not start it again. Without files there is no
        loop.
        """
        clock = clockAt()
        leaf = leafCertificate(urls=())
        path = self.writeCRL(intermediateCRL())
        checker = self.checker(crlFiles=[path], clock=clock)
        checker.start()
        checker.start()
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        checker.stop()
        checker.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
        path.write_bytes(intermediateCRL(revoked=[leaf.serial_number]))
        clock.advance(FILE_CHECK_INTERVAL * 3)
        self.accepted(checker, validatedChain(leaf))
        self.assertEqual(clock.getDelayedCalls(), [])
        checker.start()
        self.refused(checker, validatedChain(leaf), CertificateRevokedError)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        checker.stop()

        noFiles = self.checker(fetch=False, clock=clock)
        noFiles.start()
        self.accepted(noFiles, validatedChain(leaf))
        self.assertEqual(clock.getDelayedCalls(), [])


class LoadAndIssueTests(unittest.SynchronousTestCase):
    """
    L{loadCRL} and L{issueCRL}.
    """

    def test_loadCRL(self) -> None:
        """
        RFC 5280 5: a CRL loads from PEM or DER; anything else is a
        L{CRLError}, which is a C{ValueError}.
        """
        crl = issueCRL(INTERMEDIATE, INTERMEDIATE_KEY, [7], NOW)
        self.assertEqual(loadCRL(crlPEM(crl)), crl)
        self.assertEqual(loadCRL(crlDER(crl)), crl)
        self.assertEqual(loadCRL(b"explanatory text\n" + crlPEM(crl)), crl)
        for garbage in (b"", b"garbage", b"-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"):
            error = self.assertRaises(CRLError, loadCRL, garbage)
            self.assertIn("not a valid X.509 CRL", str(error))

    def test_issueCRL(self) -> None:
        """
        RFC 5280 5.1 and 5.2: an issued CRL names its issuer, is signed by
        its key, runs from now for C{days}, carries the authority key
        identifier and a CRL number, and lists the serials with reasons.
        """
        crl = issueCRL(
            INTERMEDIATE,
            INTERMEDIATE_KEY,
            [7, 8],
            NOW,
            days=3,
            reasons={8: x509.ReasonFlags.superseded},
        )
        self.assertEqual(crl.issuer, INTERMEDIATE.subject)
        self.assertTrue(crl.is_signature_valid(INTERMEDIATE_KEY.public_key()))
        self.assertEqual(crl.last_update_utc, NOW)
        self.assertEqual(crl.next_update_utc, NOW + datetime.timedelta(days=3))
        aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = INTERMEDIATE.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        self.assertEqual(aki.key_identifier, ski.digest)
        self.assertEqual(
            crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number,
            int(NOW.timestamp()),
        )
        self.assertEqual(sorted(r.serial_number for r in crl), [7, 8])
        entry = crl.get_revoked_certificate_by_serial_number(8)
        assert entry is not None
        self.assertEqual(
            entry.extensions.get_extension_for_class(x509.CRLReason).value.reason,
            x509.ReasonFlags.superseded,
        )

    def test_issueCRLRefusals(self) -> None:
        """
        Robustness: a naive time, a validity under a day, or a key that is
        not the issuer's are refused.
        """
        self.assertRaises(
            ValueError, issueCRL, INTERMEDIATE, INTERMEDIATE_KEY, [], NOW.replace(tzinfo=None)
        )
        self.assertRaises(ValueError, issueCRL, INTERMEDIATE, INTERMEDIATE_KEY, [], NOW, 0)
        self.assertRaises(ValueError, issueCRL, INTERMEDIATE, ROOT_KEY, [], NOW)

    def test_allReasons(self) -> None:
        """
        RFC 5280 5.2.5: the reasons a CRL can be limited to are the eight
        of ReasonFlags, without unspecified and removeFromCRL.
        """
        self.assertEqual(len(ALL_REASONS), 8)
        self.assertNotIn(x509.ReasonFlags.unspecified, ALL_REASONS)
        self.assertNotIn(x509.ReasonFlags.remove_from_crl, ALL_REASONS)


class CRLResource(resource.Resource):
    """
    Serves one CRL (or something worse) and counts the requests.

    @ivar mode: C{"body"}, C{"chunked"} (the body in pieces, without a
        length), C{"hang"} (never answers), C{"stall"} (headers and part of
        the body, then nothing), C{"truncated"} (half the body, then the
        connection closes) or C{"redirect"}.
    @ivar hanging: the requests left unanswered, for cleanup.
    """

    isLeaf = True

    def __init__(self, body: bytes = b"") -> None:
        super().__init__()
        self.body = body
        self.code = 200
        self.mode = "body"
        self.requests = 0
        self.hanging: list[Request] = []

    def render_GET(self, request: Request) -> bytes | int:
        self.requests += 1
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", b"application/pkix-crl")
        if self.mode == "chunked":
            for start in range(0, len(self.body), 4096):
                request.write(self.body[start : start + 4096])
            request.finish()
            return NOT_DONE_YET
        if self.mode == "hang":
            self.hanging.append(request)
            return NOT_DONE_YET
        if self.mode == "stall":
            request.write(self.body[:10])
            self.hanging.append(request)
            return NOT_DONE_YET
        if self.mode == "truncated":
            request.setHeader(b"content-length", b"%d" % len(self.body))
            request.write(self.body[: len(self.body) // 2])
            transport: Any = request.channel.transport if request.channel is not None else None
            transport.loseConnection()
            return NOT_DONE_YET
        if self.mode == "redirect":
            request.redirect(b"/elsewhere.crl")
            return b""
        return self.body


class TrackingSite(server.Site):
    """
    A site that remembers its connections, so that a test can wait for
    them to close.
    """

    def __init__(self, root: resource.Resource) -> None:
        super().__init__(root)
        self.lost: list[defer.Deferred[None]] = []
        self.protocols: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        built = super().buildProtocol(addr)
        lost: defer.Deferred[None] = defer.Deferred()
        original: Callable[[Failure], None] = built.connectionLost

        def connectionLost(reason: Failure) -> None:
            original(reason)
            lost.callback(None)

        built.connectionLost = connectionLost
        self.lost.append(lost)
        self.protocols.append(built)
        return built


class HTTPFetchTests(unittest.TestCase):
    """
    L{RevocationChecker} with L{HTTPCRLFetcher} against a real HTTP server
    on 127.0.0.1.
    """

    def setUp(self) -> None:
        self.resource = CRLResource()
        self.site = TrackingSite(self.resource)
        self.site.displayTracebacks = False
        self.port: IListeningPort = REACTOR.listenTCP(0, self.site, interface="127.0.0.1")
        address: Any = self.port.getHost()
        self.url = f"http://127.0.0.1:{address.port}/intermediate.crl"
        self.addCleanup(self.closeEverything)

    async def closeEverything(self) -> None:
        for request in self.resource.hanging:
            transport: Any = request.channel.transport if request.channel is not None else None
            if transport is not None:
                transport.abortConnection()
        await defer.maybeDeferred(self.port.stopListening)
        for channel in self.site.protocols:
            transport = getattr(channel, "transport", None)
            if transport is not None and getattr(transport, "connected", False):
                transport.abortConnection()
        await defer.gatherResults(self.site.lost)
        # The client side notices the closed connections a turn later.
        await task.deferLater(REACTOR, 0.01, lambda: None)

    def leaf(self) -> x509.Certificate:
        return leafCertificate(urls=[self.url])

    def checker(self, **kwargs: Any) -> RevocationChecker:
        kwargs.setdefault("clock", clockAt())
        return RevocationChecker(**kwargs)

    async def test_fetchedCachedCoalesced(self) -> None:
        """
        RFC 5280 4.2.1.13: the CRL is fetched from the certificate's http
        distribution point; concurrent checks share one request, and later
        ones use the cached CRL until C{maxCacheAge}.
        """
        leaf = self.leaf()
        self.resource.body = intermediateCRL(revoked=[1, 2, 3])
        clock = clockAt()
        checker = self.checker(clock=clock, failurePolicy="hard", maxCacheAge=600)
        chain = validatedChain(leaf)
        await defer.gatherResults([defer.ensureDeferred(checker.check(chain)) for _ in range(3)])
        self.assertEqual(self.resource.requests, 1)
        await checker.check(chain)
        self.assertEqual(self.resource.requests, 1)
        self.resource.body = intermediateCRL(revoked=[leaf.serial_number])
        clock.advance(600)
        with self.assertRaises(CertificateRevokedError):
            await checker.check(chain)
        self.assertEqual(self.resource.requests, 2)

    async def test_chunkedBody(self) -> None:
        """
        RFC 9112 7.1: a CRL sent chunked, without a length, is read whole.
        """
        leaf = self.leaf()
        self.resource.body = intermediateCRL(revoked=list(range(1, 2000)) + [leaf.serial_number])
        self.resource.mode = "chunked"
        with self.assertRaises(CertificateRevokedError):
            await self.checker().check(validatedChain(leaf))

    async def test_notFound(self) -> None:
        """
        Robustness: an HTTP error is a failed fetch: the hard policy
        refuses naming the status, the soft one accepts with an info line.
        """
        events = captureLogs(self)
        self.resource.code = 404
        self.resource.body = b"no such CRL"
        chain = validatedChain(self.leaf())
        with self.assertRaises(RevocationUnknownError) as raised:
            await self.checker(failurePolicy="hard").check(chain)
        self.assertIn(
            f"the CRL at {self.url} could not be fetched: HTTP 404 Not Found", str(raised.exception)
        )
        await self.checker().check(chain)
        logged = crlEvents(events)
        self.assertEqual([e["log_level"] for e in logged], [LogLevel.info])
        self.assertIn("HTTP 404", formatEvent(logged[0]))

    async def test_redirectNotFollowed(self) -> None:
        """
        Security: redirects are not followed; the distribution point must
        serve the CRL itself.
        """
        self.resource.mode = "redirect"
        with self.assertRaises(RevocationUnknownError) as raised:
            await self.checker(failurePolicy="hard").check(validatedChain(self.leaf()))
        self.assertIn("HTTP 302", str(raised.exception))
        self.assertEqual(self.resource.requests, 1)

    async def test_oversized(self) -> None:
        """
        Robustness: a body over C{maxCRLSize} is refused while it is read,
        with or without a Content-Length, as an unknown status.
        """
        self.resource.body = intermediateCRL(revoked=list(range(1, 500)))
        chain = validatedChain(self.leaf())
        for mode in ("body", "chunked"):
            self.resource.mode = mode
            with self.assertRaises(RevocationUnknownError) as raised:
                await self.checker(failurePolicy="hard", maxCRLSize=2048).check(chain)
            self.assertIn("larger than 2048 bytes", str(raised.exception))

    async def test_garbage(self) -> None:
        """
        Robustness: a body that is not a CRL is an unknown status.
        """
        self.resource.body = b"<html><body>It works!</body></html>"
        with self.assertRaises(RevocationUnknownError) as raised:
            await self.checker(failurePolicy="hard").check(validatedChain(self.leaf()))
        self.assertIn("not a valid X.509 CRL", str(raised.exception))

    async def test_timeout(self) -> None:
        """
        Availability: a server that never answers, or stops in the middle
        of the body, is given up after C{fetchTimeout} and its connection
        closed.
        """
        chain = validatedChain(self.leaf())
        self.resource.body = intermediateCRL()
        for mode in ("hang", "stall"):
            self.resource.mode = mode
            self.resource.hanging = []
            checker = self.checker(clock=REACTOR, failurePolicy="hard", fetchTimeout=0.2)
            with self.assertRaises(RevocationUnknownError) as raised:
                await checker.check(chain)
            self.assertIn("could not be fetched: timeout", str(raised.exception))
            [request] = self.resource.hanging
            # The server sees the connection go: the fetch was abandoned.
            await request.notifyFinish().addErrback(lambda f: None)

    async def test_truncatedBody(self) -> None:
        """
        Robustness: a connection that closes in the middle of the body is a
        failed fetch.
        """
        self.resource.body = intermediateCRL()
        self.resource.mode = "truncated"
        with self.assertRaises(RevocationUnknownError) as raised:
            await self.checker(failurePolicy="hard").check(validatedChain(self.leaf()))
        self.assertIn("could not be fetched", str(raised.exception))

    async def garbageServer(self) -> str:
        """
        Listen on 127.0.0.1 with a server that answers anything with bytes
        that are neither TLS nor HTTP, then hangs up.

        @return: its C{host:port}.
        """
        lost: list[defer.Deferred[None]] = []

        class Garbage(protocol.Protocol):
            def connectionMade(self) -> None:
                self.lost: defer.Deferred[None] = defer.Deferred()
                lost.append(self.lost)

            def dataReceived(self, data: bytes) -> None:
                assert self.transport is not None
                self.transport.write(b"\x00garbage\r\n\r\n")
                self.transport.loseConnection()

            def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
                self.lost.callback(None)

        port = REACTOR.listenTCP(0, protocol.Factory.forProtocol(Garbage), interface="127.0.0.1")

        async def close() -> None:
            await defer.maybeDeferred(port.stopListening)
            await defer.gatherResults(lost)
            await task.deferLater(REACTOR, 0.01, lambda: None)

        self.addCleanup(close)
        return f"127.0.0.1:{port.getHost().port}"

    async def test_garbageServer(self) -> None:
        """
        Robustness: a server that speaks neither HTTP nor TLS (a failed
        handshake, an unparseable response) is a failed fetch.
        """
        address = await self.garbageServer()
        for scheme in ("http", "https"):
            leaf = leafCertificate(urls=[f"{scheme}://{address}/intermediate.crl"])
            checker = self.checker(clock=REACTOR, failurePolicy="hard", fetchTimeout=5)
            with self.assertRaises(RevocationUnknownError) as raised:
                await checker.check(validatedChain(leaf))
            self.assertIn("could not be fetched", str(raised.exception))
            self.assertNotIn("timeout", str(raised.exception))

    async def test_connectionRefused(self) -> None:
        """
        Robustness: a distribution point nobody listens on is an unknown
        status.
        """
        await defer.maybeDeferred(self.port.stopListening)
        with self.assertRaises(RevocationUnknownError) as raised:
            await self.checker(failurePolicy="hard").check(validatedChain(self.leaf()))
        self.assertIn("could not be fetched", str(raised.exception))
