# -*- test-case-name: tests.test_store -*-
"""
The storage interface: accounts and their SASL credentials.

Passwords are never stored: an account holds, per SCRAM hash, the salt, the
iteration count, StoredKey and ServerKey (RFC 5802 section 3). PLAIN is
checked against the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

from zope.interface import Interface

#: SCRAM mechanisms for which credentials are derived and stored.
SCRAM_MECHANISMS = ("SCRAM-SHA-1", "SCRAM-SHA-256")


class StoreError(Exception):
    """
    Base class of the store's own failures.
    """


class AccountExists(StoreError):
    """
    An account with that JID is already registered.
    """


class NoSuchAccount(StoreError):
    """
    No account with that JID is registered.
    """


@dataclass(frozen=True)
class ScramCredential:
    """
    The server-side SCRAM values of one account for one hash function.

    @ivar mechanism: C{"SCRAM-SHA-1"} or C{"SCRAM-SHA-256"}.
    """

    mechanism: str
    salt: bytes
    iterations: int
    storedKey: bytes
    serverKey: bytes


class IAccountStore(Interface):
    """
    Where accounts and their credentials live.

    Every method returns a L{twisted.internet.defer.Deferred}. JIDs are bare
    JIDs as normalised strings (C{user@domain}); callers prepare them.
    """

    def addAccount(jid, credentials):  # type: ignore[no-untyped-def]
        """
        Register a new account.

        @type jid: C{str}
        @type credentials: sequence of L{ScramCredential}, one per mechanism
        @return: Deferred firing with C{None}, or failing with L{AccountExists}.
        """

    def setCredentials(jid, credentials):  # type: ignore[no-untyped-def]
        """
        Replace all credentials of an account (a password change).

        @return: Deferred firing with C{None}, or failing with L{NoSuchAccount}.
        """

    def removeAccount(jid):  # type: ignore[no-untyped-def]
        """
        Delete an account and everything stored for it.

        @return: Deferred firing with C{None}, or failing with L{NoSuchAccount}.
        """

    def accountExists(jid):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with C{True} or C{False}.
        """

    def listAccounts(domain=None):  # type: ignore[no-untyped-def]
        """
        @param domain: only accounts of this domain, or all when C{None}.
        @return: Deferred firing with a sorted C{list} of bare JID strings.
        """

    def getScramCredential(jid, mechanism):  # type: ignore[no-untyped-def]
        """
        @return: Deferred firing with the L{ScramCredential} of C{jid} for
            C{mechanism}, or C{None} when the account or credential is missing.
        """

    def close():  # type: ignore[no-untyped-def]
        """
        Release connections and threads.

        @return: Deferred firing when done.
        """
