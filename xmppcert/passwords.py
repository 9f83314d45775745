# -*- test-case-name: tests.test_passwords -*-
"""
Deriving and checking SCRAM credentials (RFC 5802, RFC 7677).

Passwords are never stored: L{makeScramCredentials} turns one into a
L{ScramCredential} per mechanism of L{SCRAM_MECHANISMS}, and
L{verifyPassword} checks a password (SASL PLAIN) against such a credential.

Every function here runs PBKDF2 or HMAC with thousands of iterations and so
takes milliseconds to seconds of CPU. Code running on the reactor thread must
call them through L{twisted.internet.threads.deferToThread} (or another
thread pool), never directly; the command line tool may call them directly.
"""

from __future__ import annotations

import hashlib
import hmac

from scramp import ScramException, ScramMechanism

from xmppcert.store.interfaces import SCRAM_MECHANISMS, ScramCredential

#: Length in bytes of the salts made by L{fakeScramCredential}; random salts
#: from scramp are longer (32 bytes). RFC 5802 sets no length; 16 is plenty.
FAKE_SALT_LENGTH = 16

#: Digest sizes of the SCRAM hash functions, so that fake keys have the same
#: length as real ones.
_DIGEST_SIZES = {
    "SCRAM-SHA-1": hashlib.sha1().digest_size,
    "SCRAM-SHA-256": hashlib.sha256().digest_size,
}


def makeScramCredentials(password: str, iterations: int) -> list[ScramCredential]:
    """
    Derive fresh credentials for C{password}, one per mechanism in
    L{SCRAM_MECHANISMS}, each with its own random salt.

    The password is prepared with SASLprep (RFC 4013) by scramp, exactly as
    a SCRAM client prepares it, so any conforming client can authenticate.

    CPU-heavy (PBKDF2): on the reactor, run it with C{deferToThread}.

    @param password: the new password, not yet prepared.
    @param iterations: PBKDF2 iteration count (at least 4096).
    @return: one L{ScramCredential} per mechanism, in the order of
        L{SCRAM_MECHANISMS}.
    @raise ValueError: the password is empty or has characters that SASLprep
        prohibits, or the iteration count is out of range.
    """
    if not password:
        raise ValueError("the password must not be empty")
    credentials = []
    for name in SCRAM_MECHANISMS:
        try:
            salt, storedKey, serverKey, count = ScramMechanism(name).make_auth_info(
                password, iteration_count=iterations
            )
        except ScramException as e:
            raise ValueError(f"unusable password or iteration count: {e.args[0]}") from None
        credentials.append(ScramCredential(name, salt, count, storedKey, serverKey))
    return credentials


def verifyPassword(credential: ScramCredential, password: str) -> bool:
    """
    Check a plain password (for SASL PLAIN) against a stored credential by
    recomputing StoredKey from the stored salt and iteration count.

    CPU-heavy (PBKDF2): on the reactor, run it with C{deferToThread}.

    @param credential: what the store holds for the account.
    @param password: what the client sent, not yet prepared.
    @return: C{True} if the password matches; C{False} otherwise, including
        for a password that SASLprep rejects and for a credential made by
        L{fakeScramCredential}. Never raises for a bad password.
    """
    if not password:
        return False
    try:
        _salt, storedKey, _serverKey, _count = ScramMechanism(
            credential.mechanism
        ).make_auth_info(password, iteration_count=credential.iterations, salt=credential.salt)
    except ScramException:
        return False
    return hmac.compare_digest(storedKey, credential.storedKey)


def _derive(secret: bytes, label: str, mechanism: str, jid: str, length: int) -> bytes:
    # The NUL separators keep (label, mechanism, jid) unambiguous.
    message = f"{label}\0{mechanism}\0{jid}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()[:length]


def fakeScramCredential(
    secret: bytes, jid: str, mechanism: str, iterations: int
) -> ScramCredential:
    """
    A stand-in credential for an account that does not exist, so that a SCRAM
    exchange for an unknown user looks like one for a known user (RFC 5802
    section 5.1): the same salt and iteration count every time for the same
    JID, and the exchange fails only at the final proof.

    The salt is HMAC-SHA-256(C{secret}, mechanism and JID) truncated to
    L{FAKE_SALT_LENGTH} bytes. StoredKey and ServerKey are HMAC-SHA-256 of
    C{secret} with other labels, so they are not derived from any password:
    finding a password (or ClientKey) that matches them means inverting the
    hash function, so verification against this credential always fails.
    C{secret} must be a server-side secret (random, at least 16 bytes) that
    stays the same across restarts, or an attacker could tell fake salts from
    real ones by seeing them change.

    @param secret: the server's secret key for fake credentials.
    @param jid: the normalised bare JID that was asked for.
    @param mechanism: one of L{SCRAM_MECHANISMS}.
    @param iterations: the iteration count real credentials use.
    @raise ValueError: C{mechanism} is not one of L{SCRAM_MECHANISMS}.
    """
    try:
        size = _DIGEST_SIZES[mechanism]
    except KeyError:
        raise ValueError(f"unknown SCRAM mechanism {mechanism!r}") from None
    return ScramCredential(
        mechanism=mechanism,
        salt=_derive(secret, "salt", mechanism, jid, FAKE_SALT_LENGTH),
        iterations=iterations,
        storedKey=_derive(secret, "stored key", mechanism, jid, size),
        serverKey=_derive(secret, "server key", mechanism, jid, size),
    )


__all__ = [
    "FAKE_SALT_LENGTH",
    "fakeScramCredential",
    "makeScramCredentials",
    "verifyPassword",
]
