# -*- test-case-name: tests.test_sasl -*-
"""
SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802, RFC 7677) with scramp.

SCRAM does not fit one C{Portal.login}: the server must send the stored salt
and iteration count before the client can prove anything. So the mechanism
looks those up through the store first, and logs in with L{ScramProof}
credentials once the client-final message arrives.

An unknown account gets made-up salt and keys (RFC 5802 section 5.1), so the
exchange does not reveal which accounts exist.
"""

from __future__ import annotations

from typing import Any, ClassVar

from scramp import ScramException, ScramMechanism
from scramp.core import ScramServer
from twisted.internet import defer
from zope.interface import implementer

from xmppcert import passwords
from xmppcert.cred import FAKE_CREDENTIAL_SECRET, ScramProof
from xmppcert.sasl import (
    Challenge,
    ISASLServerMechanism,
    MechanismContext,
    SASLFailure,
    SASLResult,
    Success,
    accountJID,
    checkAuthzid,
    login,
)


def _unescapeSaslname(name: str) -> str:
    # RFC 5802 section 5.1: ',' and '=' are sent as =2C and =3D; any other '=' is an error.
    out = []
    i = 0
    while i < len(name):
        if name[i] == "=":
            escape = name[i : i + 3]
            if escape == "=2C":
                out.append(",")
            elif escape == "=3D":
                out.append("=")
            else:
                raise SASLFailure("malformed-request")
            i += 3
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def _parseClientFirst(message: str) -> tuple[str, str]:
    """
    @return: the authzid (maybe empty) and the user name of a client-first message.
    @raise SASLFailure: C{malformed-request}.
    """
    try:
        cbindFlag, authzidField, bare = message.split(",", 2)
    except ValueError:
        raise SASLFailure("malformed-request") from None
    if cbindFlag not in ("n", "y"):
        # 'p=...' asks for channel binding, which needs a -PLUS mechanism.
        raise SASLFailure("malformed-request", "channel binding is not supported")
    authzid = ""
    if authzidField:
        if not authzidField.startswith("a="):
            raise SASLFailure("malformed-request")
        authzid = _unescapeSaslname(authzidField[2:])
    if not bare.startswith("n="):
        raise SASLFailure("malformed-request")
    username = bare[2:].split(",", 1)[0]
    return authzid, _unescapeSaslname(username)


@implementer(ISASLServerMechanism)
class _Scram:
    name: ClassVar[str]
    priority: ClassVar[int]

    @classmethod
    def isAvailable(cls, context: MechanismContext) -> bool:
        return True

    def __init__(self, context: MechanismContext) -> None:
        self.context = context
        self._server: ScramServer | None = None
        self._username = ""
        self._genuine = False
        self._done = False

    def start(self, initialResponse: bytes | None) -> defer.Deferred[SASLResult]:
        if not initialResponse:
            # The client-first message will come in a response.
            return defer.succeed(Challenge(b""))
        return self.step(initialResponse)

    def step(self, response: bytes) -> defer.Deferred[SASLResult]:
        return defer.ensureDeferred(self._step(response))

    async def _step(self, response: bytes) -> SASLResult:
        try:
            message = response.decode("utf-8")
        except UnicodeDecodeError:
            raise SASLFailure("malformed-request") from None
        if self._server is None:
            return await self._clientFirst(message)
        if not self._done:
            self._done = True
            return await self._clientFinal(message)
        raise SASLFailure("malformed-request")

    async def _clientFirst(self, message: str) -> SASLResult:
        authzid, username = _parseClientFirst(message)
        account = accountJID(username, self.context.domain)
        checkAuthzid(authzid, account)
        self._username = account.userhost()
        credential = await self.context.store.getScramCredential(self._username, self.name)
        self._genuine = credential is not None
        if credential is None:
            credential = passwords.fakeScramCredential(
                self.context.fakeCredentialSecret or FAKE_CREDENTIAL_SECRET,
                self._username,
                self.name,
                self.context.scramIterations,
            )
        info = (credential.salt, credential.storedKey, credential.serverKey, credential.iterations)
        server = ScramMechanism(self.name).make_server(lambda _username: info)
        try:
            server.set_client_first(message)
            serverFirst = server.get_server_first()
        except ScramException:
            raise SASLFailure("malformed-request") from None
        self._server = server
        return Challenge(str(serverFirst).encode("utf-8"))

    async def _clientFinal(self, message: str) -> SASLResult:
        assert self._server is not None
        proof = ScramProof(self._username, self._server, message, self._genuine)
        creds: Any = proof
        account = await login(self.context, creds)
        return Success(account, proof.serverFinal().encode("utf-8"))


class ScramSHA256(_Scram):
    name = "SCRAM-SHA-256"
    priority = 30


class ScramSHA1(_Scram):
    name = "SCRAM-SHA-1"
    priority = 20


__all__ = ["ScramSHA1", "ScramSHA256"]
