# -*- test-case-name: tests.test_passwords -*-
"""
Tests for L{xmppcert.passwords}.
"""

from __future__ import annotations

import hashlib

import pytest
from scramp import ScramClient, ScramException, ScramMechanism

from xmppcert.passwords import (
    FAKE_SALT_LENGTH,
    fakeScramCredential,
    makeScramCredentials,
    verifyPassword,
)
from xmppcert.store.interfaces import SCRAM_MECHANISMS, ScramCredential

SECRET = b"0123456789abcdef0123456789abcdef"


def scramExchange(credential: ScramCredential, username: str, password: str) -> None:
    """
    Run a full SCRAM exchange between a real scramp client and a scramp server
    whose auth_fn returns the stored values of C{credential}.

    @raise ScramException: the server rejected the client's proof.
    """
    info = (credential.salt, credential.storedKey, credential.serverKey, credential.iterations)
    server = ScramMechanism(credential.mechanism).make_server(lambda name: info)
    client = ScramClient([credential.mechanism], username, password)
    server.set_client_first(client.get_client_first())
    client.set_server_first(server.get_server_first())
    server.set_client_final(client.get_client_final())
    client.set_server_final(server.get_server_final())


def test_oneCredentialPerMechanism() -> None:
    """
    makeScramCredentials returns one credential per SCRAM mechanism, in
    order, each with the requested iteration count and its own random salt
    of at least 16 bytes.
    """
    credentials = makeScramCredentials("secret", 4096)
    assert [c.mechanism for c in credentials] == list(SCRAM_MECHANISMS)
    assert all(c.iterations == 4096 for c in credentials)
    assert all(len(c.salt) >= 16 for c in credentials)
    assert len({c.salt for c in credentials}) == len(credentials)
    again = makeScramCredentials("secret", 4096)
    assert {c.salt for c in credentials}.isdisjoint(c.salt for c in again)


def test_keyLengthsMatchHash() -> None:
    """
    StoredKey and ServerKey have the digest size of the mechanism's hash.
    """
    sizes = {"SCRAM-SHA-1": hashlib.sha1().digest_size, "SCRAM-SHA-256": 32}
    for c in makeScramCredentials("secret", 4096):
        assert len(c.storedKey) == len(c.serverKey) == sizes[c.mechanism]


def test_iterationCountRecorded() -> None:
    """
    A higher iteration count is stored as given.
    """
    assert {c.iterations for c in makeScramCredentials("secret", 5000)} == {5000}


@pytest.mark.parametrize("mechanism", SCRAM_MECHANISMS)
def test_verifyRightAndWrongPassword(mechanism: str) -> None:
    """
    verifyPassword accepts the password the credential was made from and
    rejects any other, for every mechanism.
    """
    credential = {c.mechanism: c for c in makeScramCredentials("correct horse", 4096)}[mechanism]
    assert verifyPassword(credential, "correct horse") is True
    assert verifyPassword(credential, "correct horse ") is False
    assert verifyPassword(credential, "Correct horse") is False
    assert verifyPassword(credential, "") is False


def test_saslprep() -> None:
    """
    Passwords are prepared with SASLprep: a soft hyphen is mapped to nothing
    and a non-ASCII space to a space, on both sides.
    """
    credentials = makeScramCredentials("I\u00adX y", 4096)
    for c in credentials:
        assert verifyPassword(c, "IX y")
        assert verifyPassword(c, "IX\u00a0y")


def test_emptyPasswordRejected() -> None:
    """
    An empty password cannot be turned into credentials.
    """
    with pytest.raises(ValueError, match="empty"):
        makeScramCredentials("", 4096)


def test_prohibitedPasswordRejected() -> None:
    """
    A password with characters SASLprep prohibits raises ValueError when
    making credentials, and makes verifyPassword return False, not raise.
    """
    with pytest.raises(ValueError):
        makeScramCredentials("bell\u0007", 4096)
    credential = makeScramCredentials("secret", 4096)[0]
    assert verifyPassword(credential, "bell\u0007") is False


def test_tooFewIterationsRejected() -> None:
    """
    Iteration counts below scramp's minimum of 4096 raise ValueError.
    """
    with pytest.raises(ValueError):
        makeScramCredentials("secret", 1000)


@pytest.mark.parametrize("mechanism", SCRAM_MECHANISMS)
def test_interoperatesWithScrampClient(mechanism: str) -> None:
    """
    Credentials work for a full SCRAM exchange with a real scramp client:
    the right password succeeds, a wrong one fails at the client's proof.
    """
    credential = {c.mechanism: c for c in makeScramCredentials("pässword", 4096)}[mechanism]
    scramExchange(credential, "alice", "pässword")
    with pytest.raises(ScramException):
        scramExchange(credential, "alice", "wrong")


def test_fakeIsDeterministic() -> None:
    """
    A fake credential is the same every time for the same secret, JID and
    mechanism (so repeated attempts cannot tell it is fake), with a
    16-byte salt and keys of the real length.
    """
    one = fakeScramCredential(SECRET, "nobody@example.com", "SCRAM-SHA-1", 4096)
    two = fakeScramCredential(SECRET, "nobody@example.com", "SCRAM-SHA-1", 4096)
    assert one == two
    assert len(one.salt) == FAKE_SALT_LENGTH == 16
    assert len(one.storedKey) == len(one.serverKey) == 20
    assert one.iterations == 4096
    sha256 = fakeScramCredential(SECRET, "nobody@example.com", "SCRAM-SHA-256", 4096)
    assert len(sha256.storedKey) == 32


def test_fakeDiffersByInput() -> None:
    """
    Fake salts differ between JIDs, mechanisms and secrets, like real ones.
    """
    base = fakeScramCredential(SECRET, "a@example.com", "SCRAM-SHA-256", 4096)
    others = [
        fakeScramCredential(SECRET, "b@example.com", "SCRAM-SHA-256", 4096),
        fakeScramCredential(SECRET, "a@example.com", "SCRAM-SHA-1", 4096),
        fakeScramCredential(b"another secret!!", "a@example.com", "SCRAM-SHA-256", 4096),
    ]
    assert all(o.salt != base.salt for o in others)
    assert base.storedKey != base.serverKey


def test_fakeNeverVerifies() -> None:
    """
    No password verifies against a fake credential, neither with
    verifyPassword nor in a SCRAM exchange.
    """
    for mechanism in SCRAM_MECHANISMS:
        fake = fakeScramCredential(SECRET, "nobody@example.com", mechanism, 4096)
        for password in ["", "password", "nobody", SECRET.decode()]:
            assert verifyPassword(fake, password) is False
        with pytest.raises(ScramException):
            scramExchange(fake, "nobody", "password")


def test_fakeUnknownMechanism() -> None:
    """
    Asking for a fake credential of an unknown mechanism raises ValueError.
    """
    with pytest.raises(ValueError, match="SCRAM-MD5"):
        fakeScramCredential(SECRET, "a@example.com", "SCRAM-MD5", 4096)
