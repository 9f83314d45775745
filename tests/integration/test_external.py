"""
Passwordless login with TLS client certificates (SASL EXTERNAL, XEP-0178)
against the real server, with slixmpp and with a raw client for the exact
failure elements.
"""

from __future__ import annotations

import datetime
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization

from tests.integration.clients import LoginFailed, login, logout
from tests.integration.conftest import RunningServer, makeServer, runAsync
from tests.integration.raw import RawStream
from xmppcert import x509
from xmppcert.store.sqlite import SQLiteDatabase

pytestmark = pytest.mark.integration

UTC = datetime.UTC


def makeCertificate(
    directory: Path,
    name: str,
    jids: list[str],
    *,
    now: datetime.datetime | None = None,
    days: int = 30,
    issuer: tuple[cx509.Certificate, object] | None = None,
) -> tuple[Path, Path, cx509.Certificate]:
    key = x509.generateClientKey("ec")
    kwargs: dict[str, object] = {}
    if issuer is not None:
        kwargs = {"issuerCertificate": issuer[0], "issuerKey": issuer[1]}
    cert = x509.issueClientCertificate(jids, key, days=days, now=now, **kwargs)  # type: ignore[arg-type]
    certPath = directory / f"{name}.crt"
    keyPath = directory / f"{name}.key"
    chain = x509.certificatePEM(cert)
    if issuer is not None:
        chain += x509.certificatePEM(issuer[0])
    certPath.write_bytes(chain)
    x509.writePrivateKey(keyPath, key)
    return certPath, keyPath, cert


def register(server: RunningServer, account: str, name: str, certPath: Path, *extra: str) -> None:
    result = server.cli("cert", "add", account, name, str(certPath), *extra)
    assert result.returncode == 0, result.stderr


def registerDirect(server: RunningServer, account: str, name: str, cert: cx509.Certificate) -> None:
    """
    Store a certificate the CLI would refuse (expired, other domain), to
    prove that the login path checks it too.
    """
    db = SQLiteDatabase.open(server.dataDir / "xmppcert.sqlite")
    try:
        db.addCertificate(
            account,
            name,
            cert.public_bytes(serialization.Encoding.DER),
            x509.fingerprint(cert),
            cert.not_valid_after_utc.timestamp(),
        )
    finally:
        db.close()


@pytest.fixture(scope="module")
def certs(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    A directory for this module's client certificates; carol is a
    certificate-only account.
    """
    result = server.cli("user", "add", "carol@localhost", "--no-password")
    assert result.returncode == 0, result.stderr
    return tmp_path_factory.mktemp("certs")


def rawExternal(
    server: RunningServer, certPath: Path | None, keyPath: Path | None, authzid: str | None = None
) -> tuple[RawStream, bytes, bytes]:
    raw = RawStream(server.starttlsPort)
    features = raw.starttls(server.caFile, certPath, keyPath)
    answer = raw.authExternal(authzid)
    return raw, features, answer


def test_gencertThenSlixmppLoginOverSTARTTLS(server: RunningServer, certs: Path) -> None:
    """
    XEP-0178 §2 / RFC 6120 §6.3.4: a certificate made with `xmppcert gencert`
    and registered with `xmppcert cert add` logs in with EXTERNAL, no
    password, and EXTERNAL is offered first.
    """
    prefix = certs / "laptop"
    result = server.cli("gencert", "carol@localhost", "--out", str(prefix))
    assert result.returncode == 0, result.stderr
    register(server, "carol@localhost", "Laptop", prefix.with_suffix(".crt"))

    raw, features, answer = rawExternal(server, prefix.with_suffix(".crt"), prefix.with_suffix(".key"))
    assert features.index(b"<mechanism>EXTERNAL</mechanism>") < features.index(b"<mechanism>SCRAM-SHA-256")
    assert b"<success" in answer
    raw.close()

    async def run() -> None:
        client = await login(
            server, "carol@localhost/laptop", "", mechanism="EXTERNAL",
            certfile=str(prefix.with_suffix(".crt")), keyfile=str(prefix.with_suffix(".key")),
        )
        assert client.boundjid.full == "carol@localhost/laptop"
        await logout(client)

    runAsync(run())
    assert "Authenticated carol@localhost with EXTERNAL" in server.logText()


def test_slixmppLoginOverDirectTLS(server: RunningServer, certs: Path) -> None:
    """
    XEP-0368: the client certificate is requested on the direct TLS port too.
    """
    certPath, keyPath, _ = makeCertificate(certs, "direct", ["carol@localhost"])
    register(server, "carol@localhost", "Direct", certPath)

    async def run() -> None:
        client = await login(
            server, "carol@localhost", "", mechanism="EXTERNAL", directTLS=True,
            certfile=str(certPath), keyfile=str(keyPath),
        )
        assert client.boundjid.bare == "carol@localhost"
        await logout(client)

    runAsync(run())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
def test_opensslRecipeCertificate(server: RunningServer, certs: Path) -> None:
    """
    The Prosody README's openssl recipe (five steps) yields a certificate that
    registers and logs in unchanged.
    """
    work = certs / "openssl"
    work.mkdir()
    (work / "client.cnf").write_text(
        "[req]\nprompt = no\nx509_extensions = v3_extensions\nreq_extensions = v3_extensions\n"
        "distinguished_name = distinguished_name\n\n[v3_extensions]\nextendedKeyUsage = clientAuth\n"
        "keyUsage = digitalSignature,keyEncipherment\nbasicConstraints = CA:FALSE\n"
        "subjectAltName = @subject_alternative_name\n\n[subject_alternative_name]\n"
        "otherName.0 = 1.3.6.1.5.5.7.8.5;FORMAT:UTF8,UTF8:carol@localhost\n\n"
        "[distinguished_name]\ncommonName = Carol\nemailAddress = carol@localhost\n"
    )
    for command in (
        "openssl genrsa -out client.key 2048",
        "openssl req -key client.key -new -out client.req -config client.cnf -extensions v3_extensions",
        "openssl x509 -req -days 365 -in client.req -signkey client.key -out client.crt "
        "-extfile client.cnf -extensions v3_extensions",
    ):
        subprocess.run(command.split(), cwd=work, check=True, capture_output=True)
    register(server, "carol@localhost", "OpenSSL", work / "client.crt")

    async def run() -> None:
        client = await login(
            server, "carol@localhost", "", mechanism="EXTERNAL",
            certfile=str(work / "client.crt"), keyfile=str(work / "client.key"),
        )
        await logout(client)

    runAsync(run())


def test_severalXmppAddrsWithoutAuthzid(server: RunningServer, certs: Path) -> None:
    """
    XEP-0178 §2: several xmppAddrs and no authzid is invalid-authzid, and the
    stream is closed; with an authzid naming one of them, the login succeeds.
    """
    certPath, keyPath, _ = makeCertificate(certs, "multi", ["alice@localhost", "bob@localhost"])
    register(server, "alice@localhost", "Multi", certPath)
    raw, _, answer = rawExternal(server, certPath, keyPath)
    assert b"<invalid-authzid/>" in answer
    assert raw.waitClosed().rstrip().endswith(b"</stream:stream>")

    raw, _, answer = rawExternal(server, certPath, keyPath, authzid="alice@localhost")
    assert b"<success" in answer
    raw.close()


def test_authzidNotInCertificate(server: RunningServer, certs: Path) -> None:
    """
    XEP-0178 §2: an authzid the certificate does not name is invalid-authzid,
    and the stream is closed.
    """
    certPath, keyPath, _ = makeCertificate(certs, "single", ["alice@localhost"])
    register(server, "alice@localhost", "Single", certPath)
    raw, _, answer = rawExternal(server, certPath, keyPath, authzid="bob@localhost")
    assert b"<invalid-authzid/>" in answer
    raw.waitClosed()


def test_authzidOfUnservedDomain(server: RunningServer, certs: Path) -> None:
    """
    XEP-0178 §2: an authzid of a domain this server does not serve is
    invalid-authzid.
    """
    certPath, keyPath, _ = makeCertificate(certs, "single2", ["alice@localhost"])
    register(server, "alice@localhost", "Single2", certPath)
    raw, _, answer = rawExternal(server, certPath, keyPath, authzid="alice@example.org")
    assert b"<invalid-authzid/>" in answer
    raw.waitClosed()


def test_fullJIDAuthzidPinsResource(server: RunningServer, certs: Path) -> None:
    """
    RFC 6120 §6.3.8 vs XEP-0257 §3: a full-JID authzid is accepted; only its
    resource may then be bound.
    """
    certPath, keyPath, _ = makeCertificate(certs, "pin-authzid", ["alice@localhost"])
    register(server, "alice@localhost", "PinByAuthzid", certPath)
    raw, _, answer = rawExternal(server, certPath, keyPath, authzid="alice@localhost/tablet")
    assert b"<success" in answer
    answer = raw.bind("other")
    assert b"<not-allowed" in answer
    raw.received = b""
    raw.send("<iq type='set' id='bind2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    assert b"<jid>alice@localhost/tablet</jid>" in raw.readUntil(b"</iq>")
    raw.close()


def test_fullJIDCertificatePinsResourceAndReplaces(server: RunningServer, certs: Path) -> None:
    """
    XEP-0257 §3: a certificate for a full JID binds only that resource
    (another is not-allowed), and a new login with it replaces the old session.
    """
    certPath, keyPath, _ = makeCertificate(certs, "phone", ["alice@localhost/phone"])
    register(server, "alice@localhost", "Phone", certPath)
    first, _, answer = rawExternal(server, certPath, keyPath)
    assert b"<success" in answer
    assert b"<not-allowed" in first.bind("desk")
    first.received = b""
    first.send("<iq type='set' id='bind2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    assert b"<jid>alice@localhost/phone</jid>" in first.readUntil(b"</iq>")

    second, _, answer = rawExternal(server, certPath, keyPath)
    assert b"<success" in answer
    assert b"<jid>alice@localhost/phone</jid>" in second.bind("phone")
    assert b"<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" in first.waitClosed()
    second.close()


def test_certificateWithoutIdentity(server: RunningServer, certs: Path) -> None:
    """
    XEP-0178 §2: a certificate that names no JID (and may not be mapped) is
    not-authorized, and the stream is closed.
    """
    certPath, keyPath, cert = makeCertificate(certs, "anonymous", [])
    registerDirect(server, "alice@localhost", "NoJID", cert)
    raw, features, answer = rawExternal(server, certPath, keyPath)
    assert b"<not-authorized/>" in answer
    raw.waitClosed()


def test_externalWithoutCertificate(server: RunningServer) -> None:
    """
    XEP-0178: EXTERNAL with no client certificate is not offered and is
    answered with not-authorized at once (never a hang).
    """
    raw, features, answer = rawExternal(server, None, None)
    assert b"EXTERNAL" not in features
    assert b"<not-authorized/>" in answer
    raw.close()


def _derLength(n: int) -> bytes:
    if n < 128:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _readLength(data: bytes, i: int) -> tuple[int, int]:
    """
    @return: the length of the TLV at C{i} and where its value starts.
    """
    first = data[i + 1]
    if first < 128:
        return first, i + 2
    count = first & 0x7F
    return int.from_bytes(data[i + 2 : i + 2 + count], "big"), i + 2 + count


def berCertificate(directory: Path) -> tuple[Path, Path]:
    """
    A client certificate whose serial number has a non-minimal (BER, not
    DER) length: OpenSSL takes it in the handshake, cryptography refuses it.
    """
    key = x509.generateClientKey("ec")
    der = x509.issueClientCertificate(["alice@localhost"], key).public_bytes(serialization.Encoding.DER)
    _, body = _readLength(der, 0)
    tbsLength, tbsBody = _readLength(der, body)
    tbs, rest = der[tbsBody : tbsBody + tbsLength], der[tbsBody + tbsLength :]
    serial = 2 + tbs[1]  # after the [0] version field
    assert tbs[serial] == 0x02 and tbs[serial + 1] < 128
    tbs = tbs[: serial + 1] + bytes([0x81, tbs[serial + 1]]) + tbs[serial + 2 :]
    inner = b"\x30" + _derLength(len(tbs)) + tbs + rest
    ber = b"\x30" + _derLength(len(inner)) + inner
    with pytest.raises(ValueError):
        cx509.load_der_x509_certificate(ber)
    certPath, keyPath = directory / "ber.crt", directory / "ber.key"
    certPath.write_text(ssl.DER_cert_to_PEM_cert(ber))
    x509.writePrivateKey(keyPath, key)
    return certPath, keyPath


def test_unparsableCertificate(server: RunningServer, certs: Path) -> None:
    """
    Bad input from an unauthenticated peer: a certificate OpenSSL accepts
    but that is not DER counts as no certificate (EXTERNAL not offered,
    not-authorized, the stream stays open for a password); nothing is
    logged at error level (checked for the whole module).
    """
    certPath, keyPath = berCertificate(certs)
    raw, features, answer = rawExternal(server, certPath, keyPath)
    assert b"EXTERNAL" not in features
    assert b"<not-authorized/>" in answer
    assert b"<success" in raw.authPlain("alice", "alice-pw")
    raw.close()


def test_unregisteredCertificate(server: RunningServer, certs: Path) -> None:
    """
    XEP-0257 §3: a certificate nobody registered is not offered EXTERNAL and
    is not-authorized; the stream may still log in with a password.
    """
    certPath, keyPath, _ = makeCertificate(certs, "stranger", ["alice@localhost"])
    raw, features, answer = rawExternal(server, certPath, keyPath)
    assert b"EXTERNAL" not in features
    assert b"<not-authorized/>" in answer
    raw.close()


@pytest.mark.parametrize("when", ["expired", "not-yet-valid"])
def test_certificateOutsideValidity(server: RunningServer, certs: Path, when: str) -> None:
    """
    XEP-0257 §3: the server MUST reject expired certificates (and ones not
    yet valid) at login, even when registered.
    """
    now = datetime.datetime.now(UTC)
    start = now - datetime.timedelta(days=10) if when == "expired" else now + datetime.timedelta(days=10)
    certPath, keyPath, cert = makeCertificate(certs, when, ["alice@localhost"], now=start, days=2)
    registerDirect(server, "alice@localhost", when, cert)
    raw, features, answer = rawExternal(server, certPath, keyPath)
    assert b"EXTERNAL" not in features
    assert b"<not-authorized/>" in answer
    raw.close()


def test_disabledAndRevokedCertificatesCannotLogIn(server: RunningServer, certs: Path) -> None:
    """
    XEP-0257 §2.3: once disabled or revoked, a certificate can no longer be
    used for SASL EXTERNAL.
    """
    for verb in ("disable", "revoke"):
        certPath, keyPath, _ = makeCertificate(certs, f"gone-{verb}", ["alice@localhost"])
        register(server, "alice@localhost", f"Gone-{verb}", certPath)
        raw, _, answer = rawExternal(server, certPath, keyPath)
        assert b"<success" in answer
        raw.close()
        result = server.cli("cert", verb, "alice@localhost", f"Gone-{verb}")
        assert result.returncode == 0, result.stderr
        raw, _, answer = rawExternal(server, certPath, keyPath)
        assert b"<not-authorized/>" in answer
        raw.close()


def test_caMode(tmp_path: Path) -> None:
    """
    XEP-0257 §3 (company deployments): with the ca checker, a certificate
    issued by an intermediate of the configured root logs in without being
    registered; a self-signed one does not.
    """
    rootKey = x509.generateClientKey("ec")
    root = x509.issueCACertificate("Test Root", rootKey)
    interKey = x509.generateClientKey("ec")
    inter = x509.issueCACertificate("Test Intermediate", interKey, issuerCertificate=root, issuerKey=rootKey)
    (tmp_path / "ca.pem").write_bytes(x509.certificatePEM(root))
    server = makeServer(
        tmp_path / "ca-server",
        extraConfig=f'[certificates]\ncheckers = ["ca"]\nca_bundle = "{tmp_path / "ca.pem"}"\n',
    )
    server.addUser("dave@localhost", "dave-pw")
    server.start()
    try:
        certPath, keyPath, _ = makeCertificate(tmp_path, "dave", ["dave@localhost"], issuer=(inter, interKey))
        raw, features, answer = rawExternal(server, certPath, keyPath)
        assert b"<mechanism>EXTERNAL</mechanism>" in features
        assert b"<success" in answer
        raw.close()
        selfPath, selfKey, _ = makeCertificate(tmp_path, "self", ["dave@localhost"])
        raw, features, answer = rawExternal(server, selfPath, selfKey)
        assert b"EXTERNAL" not in features
        assert b"<not-authorized/>" in answer
        raw.close()
        # A trusted certificate for an account that does not exist.
        ghostPath, ghostKey, _ = makeCertificate(tmp_path, "ghost", ["ghost@localhost"], issuer=(inter, interKey))
        raw, _, answer = rawExternal(server, ghostPath, ghostKey)
        assert b"<not-authorized/>" in answer
        raw.close()
    finally:
        server.stop()
    assert server.errorLines() == [], server.logText()


def test_policyNeededAndWanted(tmp_path: Path) -> None:
    """
    Client-certificate policy: 'needed' fails the TLS handshake without a
    certificate; 'wanted' (the default, used by the module's server) lets a
    password login proceed.
    """
    server = makeServer(tmp_path / "needed", extraConfig='[certificates]\npolicy = "needed"\n')
    server.addUser("erin@localhost", "erin-pw")
    server.start()
    try:

        async def refused() -> None:
            with pytest.raises((LoginFailed, TimeoutError)):
                await login(server, "erin@localhost", "erin-pw", timeout=5)

        runAsync(refused())
        certPath, keyPath, _ = makeCertificate(tmp_path, "erin", ["erin@localhost"])
        result = server.cli("cert", "add", "erin@localhost", "Erin", str(certPath))
        assert result.returncode == 0, result.stderr

        async def accepted() -> None:
            client = await login(
                server, "erin@localhost", "", mechanism="EXTERNAL",
                certfile=str(certPath), keyfile=str(keyPath),
            )
            await logout(client)

        runAsync(accepted())
    finally:
        server.stop()
    assert server.errorLines() == [], server.logText()


def test_passwordLoginWithPolicyWanted(server: RunningServer) -> None:
    """
    Client-certificate policy 'wanted': a client without a certificate logs
    in with a password.
    """

    async def run() -> None:
        client = await login(server, "bob@localhost", "bob-pw")
        await logout(client)

    runAsync(run())
