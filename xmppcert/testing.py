# -*- test-case-name: tests.test_store -*-
"""
Test doubles for code that uses xmppcert, importable without pytest.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet import defer
from zope.interface import implementer

from xmppcert.store.interfaces import (
    AccountExists,
    IAccountStore,
    NoSuchAccount,
    ScramCredential,
    StoreError,
)


def _checkMechanisms(credentials: Sequence[ScramCredential]) -> None:
    mechanisms = [c.mechanism for c in credentials]
    if len(set(mechanisms)) != len(mechanisms):
        raise ValueError(f"more than one credential for a mechanism: {mechanisms}")


@implementer(IAccountStore)
class InMemoryAccountStore:
    """
    An L{IAccountStore} in a dict, behaving like
    L{xmppcert.store.sqlite.SQLiteStore} but answering at once: every method
    returns an already-fired Deferred.

    @ivar accounts: bare JID to (mechanism to L{ScramCredential}); tests may
        read and change it directly.
    @ivar closed: whether L{close} was called.
    """

    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, ScramCredential]] = {}
        self.closed = False

    def _check(self) -> None:
        if self.closed:
            raise StoreError("the store is closed")

    def addAccount(
        self, jid: str, credentials: Sequence[ScramCredential]
    ) -> defer.Deferred[None]:
        """
        See L{IAccountStore.addAccount}.
        """
        try:
            self._check()
            _checkMechanisms(credentials)
            if jid in self.accounts:
                raise AccountExists(jid)
        except Exception as e:
            return defer.fail(e)
        self.accounts[jid] = {c.mechanism: c for c in credentials}
        return defer.succeed(None)

    def setCredentials(
        self, jid: str, credentials: Sequence[ScramCredential]
    ) -> defer.Deferred[None]:
        """
        See L{IAccountStore.setCredentials}.
        """
        try:
            self._check()
            _checkMechanisms(credentials)
            if jid not in self.accounts:
                raise NoSuchAccount(jid)
        except Exception as e:
            return defer.fail(e)
        self.accounts[jid] = {c.mechanism: c for c in credentials}
        return defer.succeed(None)

    def removeAccount(self, jid: str) -> defer.Deferred[None]:
        """
        See L{IAccountStore.removeAccount}.
        """
        try:
            self._check()
            del self.accounts[jid]
        except KeyError:
            return defer.fail(NoSuchAccount(jid))
        except Exception as e:
            return defer.fail(e)
        return defer.succeed(None)

    def accountExists(self, jid: str) -> defer.Deferred[bool]:
        """
        See L{IAccountStore.accountExists}.
        """
        try:
            self._check()
        except Exception as e:
            return defer.fail(e)
        return defer.succeed(jid in self.accounts)

    def listAccounts(self, domain: str | None = None) -> defer.Deferred[list[str]]:
        """
        See L{IAccountStore.listAccounts}.
        """
        try:
            self._check()
        except Exception as e:
            return defer.fail(e)
        return defer.succeed(
            sorted(
                jid
                for jid in self.accounts
                if domain is None or jid.partition("@")[2] == domain
            )
        )

    def getScramCredential(
        self, jid: str, mechanism: str
    ) -> defer.Deferred[ScramCredential | None]:
        """
        See L{IAccountStore.getScramCredential}.
        """
        try:
            self._check()
        except Exception as e:
            return defer.fail(e)
        return defer.succeed(self.accounts.get(jid, {}).get(mechanism))

    def close(self) -> defer.Deferred[None]:
        """
        See L{IAccountStore.close}. Idempotent.
        """
        self.closed = True
        return defer.succeed(None)


__all__ = ["InMemoryAccountStore"]
