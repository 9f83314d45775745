# -*- test-case-name: tests.test_sasl -*-
"""
EXTERNAL (RFC 4422 appendix A) with the TLS client certificate, as XEP-0178
section 2 describes for client-to-server streams.

The mechanism only carries the certificate chain and the authzid to the
portal; which certificates log in as whom is the checkers' business
(L{xmppcert.cred.StoredCertificateChecker}, L{xmppcert.cred.CACertificateChecker}
or an operator's own).
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from twisted.cred.credentials import ICredentials
from twisted.internet import defer
from zope.interface import implementer

from xmppcert import x509 as x509facts
from xmppcert.cred import ClientCertificate, IClientCertificate
from xmppcert.sasl import (
    ISASLServerMechanism,
    MechanismContext,
    SASLFailure,
    SASLResult,
    SingleResponseMechanism,
    Success,
    login,
)

#: RFC 7622: a JID is at most 3071 octets.
MAX_AUTHZID = 3071


@implementer(ISASLServerMechanism)
class External(SingleResponseMechanism):
    """
    The authzid is the only data: absent or C{=} (empty) means "the identity
    in my certificate", anything else names the JID to act as.
    """

    name = "EXTERNAL"
    priority = 100

    @classmethod
    def isAvailable(cls, context: MechanismContext) -> defer.Deferred[bool]:
        """
        Offered when a certificate was presented that a checker could accept
        (RFC 6120 section 6.3.4): the checkers' optional C{couldAccept}
        answers that without logging in.
        """
        if not context.secure or not context.peerChain:
            return defer.succeed(False)
        checker = context.portal.checkers.get(IClientCertificate)
        if checker is None:
            return defer.succeed(False)
        couldAccept = getattr(checker, "couldAccept", None)
        if couldAccept is None:
            return defer.succeed(True)
        creds = ClientCertificate(context.peerChain, None, context.domain)
        return defer.ensureDeferred(couldAccept(creds))

    async def respond(self, response: bytes) -> SASLResult:
        # RFC 4422 appendix A.1: the response is the authzid alone.
        if len(response) > MAX_AUTHZID:
            raise SASLFailure("malformed-request", closeStream=True)
        try:
            authzid = response.decode("utf-8") or None
        except UnicodeDecodeError:
            raise SASLFailure("malformed-request", closeStream=True) from None
        if not self.context.peerChain:
            raise SASLFailure("not-authorized", "no client certificate was presented")
        creds: ICredentials = ClientCertificate(self.context.peerChain, authzid, self.context.domain)
        return Success(await login(self.context, creds))


async def certificateStanding(store: Any, certificate: x509.Certificate) -> str:
    """
    What the store says about a certificate, for the log line of a stream
    that was not offered EXTERNAL: unknown, or whose and in which state.
    Never raises: a store that cannot answer is mentioned as such.
    """
    fingerprint = x509facts.fingerprint(certificate)
    try:
        stored = await store.certificateByFingerprint(fingerprint)
        if stored is not None:
            return f"registered to {stored.account}, {stored.state}"
        if await store.isCertificateRevoked(fingerprint):
            return "revoked (its record was removed)"
    except Exception as e:
        return f"unknown: the store failed ({type(e).__name__})"
    return "not registered"


__all__ = ["External", "certificateStanding"]
