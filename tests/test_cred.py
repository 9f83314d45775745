"""
Tests for L{xmppcert.cred}: the realm and account avatar, the stored
password checker (for PLAIN) and the SCRAM proof checker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from scramp import ScramClient, ScramMechanism
from twisted.cred import checkers, credentials, portal
from twisted.internet import defer
from twisted.trial import unittest
from twisted.words.protocols.jabber import jid
from zope.interface.verify import verifyObject

from tests.helpers import ALICE, PASSWORD, addAccount, failureOf, resultOf, syncDeferToThread
from tests.helpers import credentials as scramCredentials
from xmppcert import passwords
from xmppcert.cred import (
    Account,
    AccountRealm,
    IAccount,
    IScramProof,
    SASLAuthFailure,
    ScramChecker,
    ScramProof,
    StoredPasswordChecker,
    makePortal,
)
from xmppcert.testing import InMemoryAccountStore


def authFailure(d: object) -> str:
    """
    The SASL condition of a login that failed with SASLAuthFailure.
    """
    value = failureOf(d, SASLAuthFailure).value
    assert isinstance(value, SASLAuthFailure)
    return value.condition


def makeStore() -> InMemoryAccountStore:
    store = InMemoryAccountStore()
    addAccount(store, ALICE)
    return store


# --- realm ----------------------------------------------------------------


@pytest.mark.parametrize("avatarId", [b"alice@example.com", "alice@example.com", "Alice@Example.com"])
def test_realmAccount(avatarId: bytes | str) -> None:
    """
    twisted.cred: the realm turns the avatar id a checker returned (bytes
    or str) into an Account with the prepared bare JID.
    """
    realm = AccountRealm()
    assert verifyObject(portal.IRealm, realm)
    interface, account, logout = realm.requestAvatar(avatarId, None, IAccount)
    assert interface is IAccount
    assert isinstance(account, Account)
    assert verifyObject(IAccount, account)
    assert account.jid == jid.JID(ALICE)
    assert account.jid.resource is None
    assert callable(logout)
    logout()


def test_realmBareJIDFromFullJID() -> None:
    """
    twisted.cred: the account's jid is always a bare JID.
    """
    _, account, _ = AccountRealm().requestAvatar("alice@example.com/phone", None, IAccount)
    assert account.jid.full() == ALICE


def test_realmWrongInterface() -> None:
    """
    twisted.cred: asking for an avatar interface other than IAccount raises
    NotImplementedError.
    """
    with pytest.raises(NotImplementedError):
        AccountRealm().requestAvatar(b"alice@example.com", None, credentials.ICredentials)


# --- StoredPasswordChecker ------------------------------------------------


class RecordingDeferToThread:
    """
    A synchronous deferToThread that records what it ran.
    """

    def __init__(self) -> None:
        self.calls: list[Callable[..., Any]] = []

    def __call__(self, f: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        self.calls.append(f)
        return syncDeferToThread(f, *args)


def test_storedPasswordInterface() -> None:
    """
    StoredPasswordChecker provides ICredentialsChecker for usernames and
    passwords.
    """
    checker = StoredPasswordChecker(makeStore())
    assert verifyObject(checkers.ICredentialsChecker, checker)
    assert checker.credentialInterfaces == (credentials.IUsernamePassword,)


@pytest.mark.parametrize(
    "username, password",
    [(b"alice@example.com", PASSWORD.encode()), ("alice@example.com", PASSWORD)],
    ids=["bytes", "str"],
)
def test_storedPasswordRight(username: Any, password: Any) -> None:
    """
    SASL PLAIN (RFC 4616): the right password, checked against the stored
    SCRAM-SHA-256 credential, gives the bare JID as avatar id; PBKDF2 runs
    through deferToThread, never on the caller's thread.
    """
    runner = RecordingDeferToThread()
    checker = StoredPasswordChecker(makeStore(), deferToThread=runner)
    result = resultOf(checker.requestAvatarId(credentials.UsernamePassword(username, password)))
    assert result == b"alice@example.com"
    assert runner.calls == [passwords.verifyPassword]


def test_storedPasswordWrong() -> None:
    """
    RFC 6120 §6.5.10: a wrong password fails with not-authorized.
    """
    checker = StoredPasswordChecker(makeStore(), deferToThread=syncDeferToThread)
    creds = credentials.UsernamePassword(b"alice@example.com", b"wrong")
    assert authFailure(checker.requestAvatarId(creds)) == "not-authorized"


def test_storedPasswordUnknownAccount() -> None:
    """
    RFC 6120 §6.5.10: an unknown account fails with not-authorized, after
    the same PBKDF2 work as a real one (timing does not reveal accounts).
    """
    runner = RecordingDeferToThread()
    checker = StoredPasswordChecker(makeStore(), deferToThread=runner)
    creds = credentials.UsernamePassword(b"nobody@example.com", PASSWORD.encode())
    assert authFailure(checker.requestAvatarId(creds)) == "not-authorized"
    assert runner.calls == [passwords.verifyPassword]


def test_storedPasswordNoSHA256Credential() -> None:
    """
    An account without a SCRAM-SHA-256 credential (e.g. certificate-only)
    cannot log in with a password.
    """
    store = InMemoryAccountStore()
    store.accounts[ALICE] = {}
    checker = StoredPasswordChecker(store, deferToThread=syncDeferToThread)
    creds = credentials.UsernamePassword(ALICE.encode(), PASSWORD.encode())
    failureOf(checker.requestAvatarId(creds), SASLAuthFailure)


# --- ScramChecker ---------------------------------------------------------


def scramProof(password: str, genuine: bool = True, mechanism: str = "SCRAM-SHA-256") -> tuple[ScramProof, ScramClient]:
    """
    Run a real scramp exchange against the stored credential of alice up to
    the client-final message, and wrap that in a ScramProof.
    """
    stored = {c.mechanism: c for c in scramCredentials()}[mechanism]
    info = (stored.salt, stored.storedKey, stored.serverKey, stored.iterations)
    server = ScramMechanism(mechanism).make_server(lambda username: info)
    client = ScramClient([mechanism], "alice", password)
    server.set_client_first(client.get_client_first())
    client.set_server_first(server.get_server_first())
    return ScramProof(ALICE, server, client.get_client_final(), genuine), client


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scramCheckerRight(mechanism: str) -> None:
    """
    RFC 5802 §3: a correct client proof gives the bare JID, and the
    server-final message satisfies the client.
    """
    checker = ScramChecker()
    assert verifyObject(checkers.ICredentialsChecker, checker)
    proof, client = scramProof(PASSWORD, mechanism=mechanism)
    assert verifyObject(IScramProof, proof)
    assert resultOf(checker.requestAvatarId(proof)) == b"alice@example.com"
    client.set_server_final(proof.serverFinal())


def test_scramCheckerWrong() -> None:
    """
    RFC 5802 §5: a proof from the wrong password fails with not-authorized.
    """
    proof, _ = scramProof("wrong")
    assert authFailure(ScramChecker().requestAvatarId(proof)) == "not-authorized"


def test_scramCheckerFakeCredential() -> None:
    """
    RFC 5802 §5.1: a proof against made-up credentials (unknown account)
    never succeeds, even if it matched.
    """
    proof, _ = scramProof(PASSWORD, genuine=False)
    failureOf(ScramChecker().requestAvatarId(proof), SASLAuthFailure)


def test_scramProofGarbage() -> None:
    """
    RFC 5802 §7: a client-final message that does not parse is a failed
    proof, not an exception.
    """
    proof, _ = scramProof(PASSWORD)
    garbage = ScramProof(ALICE, proof._server, "not a scram message", True)
    assert garbage.checkProof() is False


# --- the portal -------------------------------------------------------------


def test_makePortal() -> None:
    """
    twisted.cred: the portal handles passwords and SCRAM proofs; an extra
    checker is registered for its own credential interface.
    """

    class IOther(credentials.ICredentials):
        pass

    class OtherChecker:
        credentialInterfaces = (IOther,)

        def requestAvatarId(self, creds: Any) -> defer.Deferred[bytes]:
            return defer.succeed(b"bob@example.com")

    p = makePortal(makeStore(), [OtherChecker()])  # type: ignore[list-item]
    interfaces = set(p.listCredentialsInterfaces())
    assert {credentials.IUsernamePassword, IScramProof, IOther} <= interfaces
    assert isinstance(p.realm, AccountRealm)


class PortalTests(unittest.TestCase):
    """
    The real portal on the real reactor, with PBKDF2 in a real thread.
    """

    async def test_passwordLogin(self) -> None:
        """
        SASL PLAIN through makePortal: the right password logs in as the
        account (PBKDF2 in the reactor's thread pool); a wrong one is
        refused with not-authorized.
        """
        p = makePortal(makeStore())
        interface, avatar, _ = await p.login(
            credentials.UsernamePassword(b"alice@example.com", PASSWORD.encode()), None, IAccount
        )
        assert interface is IAccount
        assert isinstance(avatar, Account)
        assert avatar.jid == jid.JID(ALICE)
        with pytest.raises(SASLAuthFailure) as info:
            await p.login(credentials.UsernamePassword(b"alice@example.com", b"nope"), None, IAccount)
        assert info.value.condition == "not-authorized"
