# -*- test-case-name: tests.test_cred -*-
"""
Authentication with L{twisted.cred}: credentials, checkers, the realm and the
avatar (the account a stream acts as).

Every SASL mechanism ends in one C{Portal.login}: the mechanism builds
credentials, the first checker that accepts them yields the account JID, and
the realm turns that into an L{Account}. Operators plug in their own checkers
without touching the SASL code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from scramp import ScramException
from scramp.core import ScramServer
from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.words.protocols.jabber import jid as jidmod
from zope.interface import Attribute, Interface, implementer

from xmppcert import passwords
from xmppcert.store.interfaces import IAccountStore

log = Logger()

#: Key for the made-up credentials of unknown accounts; per process, so
#: nobody can compute them.
FAKE_CREDENTIAL_SECRET = os.urandom(32)


class SASLAuthFailure(error.UnauthorizedLogin):
    """
    A login failure that knows which SASL condition (RFC 6120 section 6.5)
    to report.

    @ivar condition: e.g. C{"not-authorized"}, C{"invalid-authzid"}.
    @ivar closeStream: whether the stream must be closed after the failure
        (XEP-0178 asks for that in some cases).
    """

    def __init__(self, condition: str = "not-authorized", text: str = "", closeStream: bool = False):
        super().__init__(text or condition)
        self.condition = condition
        self.text = text
        self.closeStream = closeStream


class IAccount(Interface):
    """
    The avatar of a logged-in stream: the account it acts as.
    """

    jid = Attribute("The bare JID of the account (L{jid.JID}).")


@implementer(IAccount)
@dataclass(frozen=True)
class Account:
    """
    @ivar jid: the bare JID of the account.
    """

    jid: jidmod.JID


@implementer(portal.IRealm)
class AccountRealm:
    """
    Turns the JID a checker returned into an L{Account}.
    """

    def requestAvatar(
        self, avatarId: Any, mind: object, *interfaces: Any
    ) -> tuple[Any, Account, Any]:
        if IAccount not in interfaces:
            raise NotImplementedError("only IAccount avatars are available")
        if isinstance(avatarId, bytes):
            avatarId = avatarId.decode("utf-8")
        return IAccount, Account(jidmod.internJID(avatarId).userhostJID()), lambda: None


class IScramProof(credentials.ICredentials):
    """
    The final client message of a SCRAM exchange, ready to be checked.
    """

    username = Attribute("The bare JID (str) the client authenticates as.")

    def checkProof() -> bool:
        """
        @return: whether the client proof matches the stored credential.
        """


@implementer(IScramProof)
class ScramProof:
    """
    Credentials carrying a SCRAM client-final message and the server state
    that can verify it (scramp checks the proof against StoredKey).
    """

    def __init__(self, username: str, server: ScramServer, clientFinal: str, genuine: bool) -> None:
        """
        @param genuine: C{False} when the salt and keys were faked for an
            unknown account: the proof can then never be right.
        """
        self.username = username
        self._server = server
        self._clientFinal = clientFinal
        self._genuine = genuine

    def checkProof(self) -> bool:
        try:
            self._server.set_client_final(self._clientFinal)
        except ScramException:
            return False
        return self._genuine

    def serverFinal(self) -> str:
        """
        @return: the server-final message (carrying the server signature).
        """
        return str(self._server.get_server_final())


@implementer(checkers.ICredentialsChecker)
class ScramChecker:
    """
    Accepts a verified SCRAM proof.
    """

    credentialInterfaces = (IScramProof,)

    def requestAvatarId(self, credentials: IScramProof) -> defer.Deferred[bytes | tuple[()]]:
        if credentials.checkProof():
            return defer.succeed(str(credentials.username).encode("utf-8"))
        return defer.fail(SASLAuthFailure("not-authorized"))


@implementer(checkers.ICredentialsChecker)
class StoredPasswordChecker:
    """
    Checks a plain password against the SCRAM-SHA-256 credential of the
    account, so no password is ever stored.

    PBKDF2 runs in a thread: it costs milliseconds of CPU, which must not
    stall every other stream.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, store: IAccountStore, deferToThread: Any = threads.deferToThread) -> None:
        self.store = store
        self._deferToThread = deferToThread

    async def _check(self, creds: credentials.IUsernamePassword) -> bytes:
        rawUsername: Any = creds.username
        rawPassword: Any = creds.password
        username = rawUsername.decode("utf-8") if isinstance(rawUsername, bytes) else str(rawUsername)
        password = rawPassword.decode("utf-8") if isinstance(rawPassword, bytes) else str(rawPassword)
        credential = await self.store.getScramCredential(username, "SCRAM-SHA-256")
        if credential is None:
            # Spend the same work as for a real account, so that timing does
            # not tell which accounts exist.
            credential = passwords.fakeScramCredential(FAKE_CREDENTIAL_SECRET, username, "SCRAM-SHA-256", 4096)
            await self._deferToThread(passwords.verifyPassword, credential, password)
            raise SASLAuthFailure("not-authorized")
        ok = await self._deferToThread(passwords.verifyPassword, credential, password)
        if not ok:
            raise SASLAuthFailure("not-authorized")
        return username.encode("utf-8")

    def requestAvatarId(self, credentials: credentials.IUsernamePassword) -> defer.Deferred[bytes | tuple[()]]:
        return defer.ensureDeferred(self._check(credentials))


def makePortal(store: IAccountStore, extraCheckers: list[checkers.ICredentialsChecker] | None = None) -> portal.Portal:
    """
    The portal every SASL mechanism logs in through.
    """
    p = portal.Portal(AccountRealm(), [ScramChecker(), StoredPasswordChecker(store)])
    for checker in extraCheckers or []:
        p.registerChecker(checker)
    return p


__all__ = [
    "Account",
    "AccountRealm",
    "IAccount",
    "IScramProof",
    "SASLAuthFailure",
    "ScramChecker",
    "ScramProof",
    "StoredPasswordChecker",
    "makePortal",
]
