# -*- test-case-name: tests.test_sasl -*-
"""
PLAIN (RFC 4616), checked against the stored SCRAM credentials.

Offered only on TLS-protected streams: the password travels in the clear
inside the TLS channel.
"""

from __future__ import annotations

from typing import Any

from twisted.cred.credentials import UsernamePassword
from zope.interface import implementer

from xmppcert.sasl import (
    ISASLServerMechanism,
    MechanismContext,
    SASLFailure,
    SASLResult,
    SingleResponseMechanism,
    Success,
    accountJID,
    checkAuthzid,
    login,
)

#: RFC 4616 limits each field to 255 octets.
MAX_FIELD = 255


@implementer(ISASLServerMechanism)
class Plain(SingleResponseMechanism):
    """
    C{authzid NUL authcid NUL passwd}, all UTF-8.
    """

    name = "PLAIN"
    priority = 10

    @classmethod
    def isAvailable(cls, context: MechanismContext) -> bool:
        return context.secure

    async def respond(self, response: bytes) -> SASLResult:
        parts = response.split(b"\x00")
        if len(parts) != 3 or any(len(p) > MAX_FIELD for p in parts):
            raise SASLFailure("malformed-request")
        try:
            authzid, authcid, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise SASLFailure("malformed-request") from None
        if not authcid or not password:
            raise SASLFailure("malformed-request")
        account = accountJID(authcid, self.context.domain)
        checkAuthzid(authzid, account)
        creds: Any = UsernamePassword(account.userhost().encode("utf-8"), password.encode("utf-8"))
        return Success(await login(self.context, creds))


__all__ = ["Plain"]
