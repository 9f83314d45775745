"""
Trust that cannot be worked around, against the real server: revoked and
disabled certificates never log in through any checker, nobody claims
another user's certificate, EXTERNAL acts only in the stream's domain, CAs
are bound to their domains and their CRLs, only client certificates count,
and TLS offers only forward-secret AEAD suites.
"""

from __future__ import annotations

import asyncio
import datetime
import http.server
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization

from tests.integration.clients import LoginFailed, login, logout
from tests.integration.conftest import RunningServer, makeServer, runAsync
from tests.integration.raw import RawStream
from tests.integration.test_external import makeCertificate, rawExternal
from tests.integration.test_saslcert import Device, condition, passwordClient
from xmppcert import crl, x509

pytestmark = pytest.mark.integration

OTHER = "other.localhost"


class CA:
    """
    A root and an intermediate, as a company CA would run them.
    """

    def __init__(self, directory: Path, name: str) -> None:
        self.rootKey = x509.generateClientKey("ec")
        self.root = x509.issueCACertificate(f"{name} Root", self.rootKey)
        self.interKey = x509.generateClientKey("ec")
        self.inter = x509.issueCACertificate(
            f"{name} Intermediate", self.interKey, issuerCertificate=self.root, issuerKey=self.rootKey
        )
        self.bundle = directory / f"{name}.pem"
        self.bundle.write_bytes(x509.certificatePEM(self.root))

    def issue(self, directory: Path, name: str, jids: list[str]) -> tuple[Path, Path, cx509.Certificate]:
        return makeCertificate(directory, name, jids, issuer=(self.inter, self.interKey))


def started(server: RunningServer, *users: str) -> RunningServer:
    for user in users:
        server.addUser(user, user.split("@")[0] + "-pw")
    server.start()
    return server


def stopped(server: RunningServer) -> None:
    server.stop()
    assert server.errorLines() == [], server.logText()


def deviceOf(path: tuple[Path, Path, cx509.Certificate]) -> Device:
    """
    A slixmpp-ready L{Device} for a certificate made by L{makeCertificate}.
    """
    device = Device.__new__(Device)
    device.certPath, device.keyPath, device.certificate = path
    return device


@pytest.mark.parametrize("checkers", [["ca", "stored"], ["ca"], ["stored", "ca"]])
def test_revokedCertificateNeverLogsInThroughAnyChecker(tmp_path: Path, checkers: list[str]) -> None:
    """
    XEP-0257 §2.4 with a CA: a CA-issued certificate that its owner
    appended and then revoked over XEP-0257 never logs in again, whatever
    the checker order; its live session is closed with reset; and after
    the operator removes the revoked record (`cert remove`), the CA still
    cannot vouch for it: the revocation is permanent.
    """
    company = CA(tmp_path, "Company")
    names = ", ".join(f'"{n}"' for n in checkers)
    server = started(
        makeServer(
            tmp_path / "server",
            f"[certificates]\ncheckers = [{names}]\nrevocation_poll_interval = 0.5\n"
            f'[[certificates.ca]]\nbundle = "{company.bundle}"\ndomains = ["localhost"]\n',
        ),
        "alice@localhost",
    )
    try:
        phone = deviceOf(company.issue(tmp_path, "phone", ["alice@localhost"]))

        async def run() -> None:
            desk = await passwordClient(server, "alice@localhost/desk", "alice-pw")
            await desk.plugin["xep_0257"].add_cert("Phone", phone.base64, timeout=10)
            thief = await phone.login(server, "alice@localhost/phone")
            await desk.plugin["xep_0257"].revoke_cert("Phone", timeout=10)
            await asyncio.wait_for(asyncio.shield(thief.ended), 10)
            assert "reset" in thief.streamErrors
            with pytest.raises(LoginFailed):
                await phone.login(server, "alice@localhost/phone")
            await logout(desk)

        runAsync(run())
        result = server.cli("cert", "remove", "alice@localhost", "Phone")
        assert result.returncode == 0, result.stderr
        raw, features, answer = rawExternal(server, phone.certPath, phone.keyPath)
        assert b"<mechanism>EXTERNAL</mechanism>" not in features
        assert b"<not-authorized/>" in answer
        raw.close()
        # Nor can it be registered again.
        assert server.cli("cert", "add", "alice@localhost", "Again", str(phone.certPath)).returncode != 0
    finally:
        stopped(server)


def test_revokeReachesDisabledCertificate(tmp_path: Path) -> None:
    """
    XEP-0257 §2.3, §2.4: disabling a stolen phone's certificate leaves the
    thief's session up (as the XEP says); revoking the disabled
    certificate by name then succeeds and closes that session with reset.
    """
    server = started(makeServer(tmp_path / "server"), "alice@localhost")
    try:
        phone = Device(tmp_path, "phone", ["alice@localhost"])

        async def run() -> None:
            desk = await passwordClient(server, "alice@localhost/desk", "alice-pw")
            await desk.plugin["xep_0257"].add_cert("Phone", phone.base64, timeout=10)
            thief = await phone.login(server, "alice@localhost/phone")
            await desk.plugin["xep_0257"].disable_cert("Phone", timeout=10)
            assert not thief.ended.done()
            result = await desk.plugin["xep_0257"].revoke_cert("Phone", timeout=10)
            assert result["type"] == "result"
            await asyncio.wait_for(asyncio.shield(thief.ended), 10)
            assert "reset" in thief.streamErrors
            await logout(desk)

        runAsync(run())
        assert "revoked" in server.cli("cert", "list", "alice@localhost").stdout
    finally:
        stopped(server)


def test_nobodyClaimsAnotherUsersCertificate(tmp_path: Path) -> None:
    """
    require_xmppaddr = false: certificates are public, so bob cannot
    append alice's certificate (not-acceptable), nor can the operator add
    it to bob; alice's key therefore never logs in as bob. A certificate
    naming no JID is still mapped by its registration.
    """
    server = started(
        makeServer(tmp_path / "server", "[certificates]\nrequire_xmppaddr = false\n"),
        "alice@localhost", "bob@localhost",
    )
    try:
        alices = Device(tmp_path, "alices", ["alice@localhost"])
        anonymous = Device(tmp_path, "anonymous", [])

        async def run() -> None:
            bob = await passwordClient(server, "bob@localhost/desk", "bob-pw")
            api = bob.plugin["xep_0257"]
            assert await condition(api.add_cert("Stolen", alices.base64, timeout=10)) == "not-acceptable"
            await api.add_cert("Anonymous", anonymous.base64, timeout=10)
            client = await anonymous.login(server, "bob@localhost/anon")
            assert client.boundjid.bare == "bob@localhost"
            await logout(client)
            with pytest.raises(LoginFailed):
                await alices.login(server, "bob@localhost/stolen")
            await logout(bob)

        runAsync(run())
        result = server.cli("cert", "add", "bob@localhost", "Stolen", str(alices.certPath), "--allow-no-xmppaddr")
        assert result.returncode != 0 and "names alice@localhost" in result.stderr
    finally:
        stopped(server)


def test_externalOnlyInTheStreamsDomain(tmp_path: Path) -> None:
    """
    RFC 6120 §6.3.7 as for PLAIN and SCRAM: alice@localhost's registered
    certificate logs in on a stream to localhost, but on a stream to
    other.localhost (also served) EXTERNAL is not offered and is refused,
    for a certificate naming alice and for one mapped by registration.
    """
    server = started(
        makeServer(tmp_path / "server", "[certificates]\nrequire_xmppaddr = false\n", domains=("localhost", OTHER)),
        "alice@localhost",
    )
    try:
        named = makeCertificate(tmp_path, "named", ["alice@localhost"])
        nameless = makeCertificate(tmp_path, "nameless", [])
        for i, (certPath, keyPath, _) in enumerate((named, nameless)):
            extra = ["--allow-no-xmppaddr"] if i else []
            result = server.cli("cert", "add", "alice@localhost", f"c{i}", str(certPath), *extra)
            assert result.returncode == 0, result.stderr
            raw = RawStream(server.starttlsPort)
            features = raw.starttls(server.caFile, certPath, keyPath, to=OTHER)
            assert b"<mechanism>EXTERNAL</mechanism>" not in features
            assert b"<not-authorized/>" in raw.authExternal()
            raw.close()
            raw = RawStream(server.starttlsPort)
            features = raw.starttls(server.caFile, certPath, keyPath, to="localhost")
            assert b"<mechanism>EXTERNAL</mechanism>" in features
            assert b"<success" in raw.authExternal()
            raw.close()
    finally:
        stopped(server)


def test_caBoundToItsDomains(tmp_path: Path) -> None:
    """
    [[certificates.ca]] domains: the CA of other.localhost cannot log in
    an account of localhost (its certificate naming alice@localhost is
    refused on either stream), while it logs in its own accounts.
    """
    corp = CA(tmp_path, "Corp")
    server = started(
        makeServer(
            tmp_path / "server",
            f'[certificates]\ncheckers = ["ca", "stored"]\n'
            f'[[certificates.ca]]\nbundle = "{corp.bundle}"\ndomains = ["{OTHER}"]\n',
            domains=("localhost", OTHER),
        ),
        "alice@localhost", f"dave@{OTHER}",
    )
    try:
        forged = corp.issue(tmp_path, "forged", ["alice@localhost"])
        for to in ("localhost", OTHER):
            raw = RawStream(server.starttlsPort)
            features = raw.starttls(server.caFile, forged[0], forged[1], to=to)
            assert b"<mechanism>EXTERNAL</mechanism>" not in features
            assert b"<not-authorized/>" in raw.authExternal()
            raw.close()
        own = corp.issue(tmp_path, "own", [f"dave@{OTHER}"])
        raw = RawStream(server.starttlsPort)
        features = raw.starttls(server.caFile, own[0], own[1], to=OTHER)
        assert b"<mechanism>EXTERNAL</mechanism>" in features
        assert b"<success" in raw.authExternal()
        raw.close()
    finally:
        stopped(server)
    log = server.logText()
    # Why the chain was refused is in the log at info, never sent.
    assert "not issued by a trusted CA" in log or "no CA is trusted for localhost" in log


class _CRLHandler(http.server.BaseHTTPRequestHandler):
    body = b""
    requests = 0

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/pkix-crl")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def crlServer() -> Iterator[tuple[str, type[_CRLHandler]]]:
    """
    A CRL distribution point on loopback.
    """
    handler = type("Handler", (_CRLHandler,), {"body": b"", "requests": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/inter.crl", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def issueWithDistributionPoint(
    directory: Path, name: str, jid: str, ca: CA, url: str
) -> tuple[Path, Path, cx509.Certificate]:
    key = x509.generateClientKey("ec")
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        cx509.CertificateBuilder()
        .subject_name(cx509.Name([cx509.NameAttribute(cx509.oid.NameOID.COMMON_NAME, jid)]))
        .issuer_name(ca.inter.subject)
        .public_key(key.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            cx509.SubjectAlternativeName([cx509.OtherName(x509.XMPP_ADDR_OID, b"\x0c" + bytes([len(jid)]) + jid.encode())]),
            critical=False,
        )
        .add_extension(cx509.ExtendedKeyUsage([cx509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            cx509.AuthorityKeyIdentifier.from_issuer_public_key(ca.interKey.public_key()), critical=False
        )
        .add_extension(
            cx509.CRLDistributionPoints(
                [cx509.DistributionPoint([cx509.UniformResourceIdentifier(url)], None, None, None)]
            ),
            critical=False,
        )
        .sign(ca.interKey, hashes.SHA256())
    )
    certPath, keyPath = directory / f"{name}.crt", directory / f"{name}.key"
    certPath.write_bytes(x509.certificatePEM(cert) + x509.certificatePEM(ca.inter))
    x509.writePrivateKey(keyPath, key)
    return certPath, keyPath, cert


def test_caRevocationByCRL(tmp_path: Path, crlServer: tuple[str, type[_CRLHandler]]) -> None:
    """
    RFC 5280 §6.3: a CA-issued certificate listed on its issuer's CRL is
    refused, whether the CRL comes from a configured file (read again
    when it changes on disk) or from the certificate's distribution point
    (fetched over HTTP); the reason is logged at info. With
    crl_failure = "hard", a certificate whose CRL cannot be had is
    refused too.
    """
    url, handler = crlServer
    # One CA publishes a CRL file, the other a distribution point.
    company, remote = CA(tmp_path, "Company"), CA(tmp_path, "Remote")
    now = datetime.datetime.now(datetime.UTC)
    crlFile = tmp_path / "company.crl"
    crlFile.write_bytes(crl.crlPEM(crl.issueCRL(company.inter, company.interKey, [], now)))
    handler.body = crl.crlDER(crl.issueCRL(remote.inter, remote.interKey, [], now))
    server = started(
        makeServer(
            tmp_path / "server",
            '[certificates]\ncheckers = ["ca"]\n'
            f'[[certificates.ca]]\nbundle = "{company.bundle}"\ndomains = ["localhost"]\n'
            f'crls = ["{crlFile}"]\n'
            f'[[certificates.ca]]\nbundle = "{remote.bundle}"\ndomains = ["localhost"]\n'
            'crl_failure = "hard"\n',
        ),
        "alice@localhost", "bob@localhost", "carol@localhost",
    )
    try:
        alice = company.issue(tmp_path, "alice", ["alice@localhost"])
        bob = issueWithDistributionPoint(tmp_path, "bob", "bob@localhost", remote, url)

        def outcome(paths: tuple[Path, Path, cx509.Certificate]) -> bytes:
            raw, _, answer = rawExternal(server, paths[0], paths[1])
            raw.close()
            return answer

        assert b"<success" in outcome(alice)
        assert b"<success" in outcome(bob)
        assert handler.requests >= 1
        # Revoke alice's in the file: read again without a restart.
        crlFile.write_bytes(crl.crlPEM(crl.issueCRL(company.inter, company.interKey, [alice[2].serial_number], now)))
        time.sleep(crl.FILE_CHECK_INTERVAL + 0.5)  # files are looked at that often
        assert b"<not-authorized/>" in outcome(alice)
        assert b"<success" in outcome(bob)
        # A distribution point that fails: hard policy refuses.
        handler.body = b"not a CRL"
        carol = issueWithDistributionPoint(tmp_path, "carol", "carol@localhost", remote, url + "?carol")
        assert b"<not-authorized/>" in outcome(carol)
    finally:
        stopped(server)
    assert "revoked" in server.logText()


@pytest.fixture(scope="module")
def tlsServer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = started(makeServer(tmp_path_factory.mktemp("tls")))
    try:
        yield server
    finally:
        stopped(server)


def handshake(server: RunningServer, maximum: ssl.TLSVersion, ciphers: str | None = None) -> str:
    """
    A direct-TLS handshake with the given ceiling and TLS 1.2 suites.

    @return: the negotiated cipher suite.
    @raise ssl.SSLError: the server refused.
    """
    import socket

    context = ssl.create_default_context(cafile=str(server.caFile))
    context.maximum_version = maximum
    if ciphers is not None:
        context.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", server.directTLSPort), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            cipher = tls.cipher()
            assert cipher is not None
            return cipher[0]


@pytest.mark.parametrize(
    "ciphers",
    ["AES128-SHA", "AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"],
)
def test_tls12RefusesWeakSuites(tlsServer: RunningServer, ciphers: str) -> None:
    """
    TLS 1.2 offers only forward-secret AEAD suites: a client offering only
    static RSA key exchange, CBC, or SHA-1 MACs fails the handshake.
    """
    with pytest.raises(ssl.SSLError):
        handshake(tlsServer, ssl.TLSVersion.TLSv1_2, ciphers)


def test_tls12AcceptsForwardSecretAEAD(tlsServer: RunningServer) -> None:
    """
    TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305 works; TLS 1.3 is
    preferred when the client has it.
    """
    for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"):
        assert handshake(tlsServer, ssl.TLSVersion.TLSv1_2, suite) == suite
    assert handshake(tlsServer, ssl.TLSVersion.TLSv1_3).startswith("TLS_")


def test_tlsMinVersion13(tmp_path: Path) -> None:
    """
    tls.min_version = "1.3": a TLS 1.2 client is refused on both paths, a
    TLS 1.3 client logs in.
    """
    server = started(makeServer(tmp_path / "server", '[tls]\nmin_version = "1.3"\n'), "alice@localhost")
    try:
        with pytest.raises(ssl.SSLError):
            handshake(server, ssl.TLSVersion.TLSv1_2)
        assert handshake(server, ssl.TLSVersion.TLSv1_3).startswith("TLS_")

        async def run() -> None:
            client = await login(server, "alice@localhost", "alice-pw")
            await logout(client)

        runAsync(run())
    finally:
        stopped(server)


def test_notClientCertificatesRefused(tmp_path: Path) -> None:
    """
    RFC 5280 §4.2.1.9 / §4.2.1.3: a CA certificate (basicConstraints
    CA:TRUE) is refused at XEP-0257 append and at `cert add`.
    """
    server = started(makeServer(tmp_path / "server"), "alice@localhost")
    try:
        key = x509.generateClientKey("ec")
        now = datetime.datetime.now(datetime.UTC)
        jid = b"alice@localhost"
        cert = (
            cx509.CertificateBuilder()
            .subject_name(cx509.Name([cx509.NameAttribute(cx509.oid.NameOID.COMMON_NAME, "ca")]))
            .issuer_name(cx509.Name([cx509.NameAttribute(cx509.oid.NameOID.COMMON_NAME, "ca")]))
            .public_key(key.public_key())
            .serial_number(cx509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(
                cx509.SubjectAlternativeName([cx509.OtherName(x509.XMPP_ADDR_OID, b"\x0c" + bytes([len(jid)]) + jid)]),
                critical=False,
            )
            .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        path = tmp_path / "ca.crt"
        path.write_bytes(x509.certificatePEM(cert))
        result = server.cli("cert", "add", "alice@localhost", "CA", str(path))
        assert result.returncode != 0 and "CA:TRUE" in result.stderr
        der = cert.public_bytes(serialization.Encoding.DER)

        async def run() -> None:
            import base64

            desk = await passwordClient(server, "alice@localhost/desk", "alice-pw")
            api = desk.plugin["xep_0257"]
            assert await condition(api.add_cert("CA", base64.b64encode(der).decode(), timeout=10)) == "not-acceptable"
            await logout(desk)

        runAsync(run())
    finally:
        stopped(server)
