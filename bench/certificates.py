"""
Certificate login and management, against a real server.

Starts C{twistd xmppcert} on loopback ports (as the integration tests do),
then measures:

  1. SASL EXTERNAL logins one after the other (TCP, STARTTLS presenting a
     client certificate, the store lookup, EXTERNAL, bind), per second;
  2. the round trip of XEP-0257 requests on one stream: C{<items/>} for an
     account with K certificates, and C{<append/>} + C{<disable/>} pairs;
  3. how long a revocation made with the CLI (another process writing the
     shared store) takes to close the live session, over R tries;
  4. server resident memory per idle session logged in with a certificate.

Run from the repository root:  .venv/bin/python -m bench.certificates [N] [K] [R] [M]
Not part of the test suite: numbers depend on the machine.
"""

from __future__ import annotations

import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from bench.sessions import idleMemory
from tests.integration.conftest import RunningServer, makeServer
from tests.integration.raw import RawStream
from xmppcert import x509

NS = "urn:xmpp:saslcert:1"


def device(directory: Path, name: str) -> tuple[Path, Path, str]:
    """
    A certificate for bench@localhost: its PEM file, key file and base64 DER.
    """
    key = x509.generateClientKey("ec")
    certificate = x509.issueClientCertificate(["bench@localhost"], key)
    certPath, keyPath = directory / f"{name}.crt", directory / f"{name}.key"
    certPath.write_bytes(x509.certificatePEM(certificate))
    x509.writePrivateKey(keyPath, key)
    return certPath, keyPath, base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


def externalLogin(server: RunningServer, certPath: Path, keyPath: Path, resource: str) -> RawStream:
    raw = RawStream(server.starttlsPort)
    raw.starttls(server.caFile, certPath, keyPath)
    answer = raw.authExternal()
    assert b"<success" in answer, answer
    assert b"<jid>" in raw.bind(resource)
    return raw


def request(raw: RawStream, payload: str, iqID: str, kind: str = "set") -> bytes:
    raw.received = b""
    raw.send(f"<iq type='{kind}' id='{iqID}'>{payload}</iq>")
    answer = raw.readUntil(rf"<iq [^>]*id='{iqID}'[^>]*(/>|>.*?</iq>)")
    assert b"type='result'" in answer, answer
    return answer


def main(logins: int = 200, certificates: int = 32, revocations: int = 10, idle: int = 300) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        server = makeServer(
            directory,
            extraConfig=(
                "[limits]\nauth_timeout = 600\n"
                f"[certificates]\nmax_per_account = {certificates + revocations + 2}\n"
                "revocation_poll_interval = 2\n"
            ),
        )
        server.addUser("bench@localhost", "bench-pw")
        certPath, keyPath, _ = device(directory, "main")
        result = server.cli("cert", "add", "bench@localhost", "Main", str(certPath))
        assert result.returncode == 0, result.stderr
        server.start()
        assert server.process is not None
        try:
            start = time.perf_counter()
            for i in range(logins):
                externalLogin(server, certPath, keyPath, f"seq{i}").close()
            elapsed = time.perf_counter() - start
            print(f"EXTERNAL logins: {logins} in {elapsed:.2f} s = {logins / elapsed:.1f}/s "
                  f"({1000 * elapsed / logins:.1f} ms each: TCP, STARTTLS with client certificate, EXTERNAL, bind)")

            manager = RawStream(server.starttlsPort)
            manager.login(server.caFile, "bench", "bench-pw", resource="manager")
            extra = [device(directory, f"d{i}")[2] for i in range(certificates - 1)]
            timings = []
            for i, der in enumerate(extra):
                t = time.perf_counter()
                request(manager, f"<append xmlns='{NS}'><name>D{i}</name><x509cert>{der}</x509cert></append>", f"a{i}")
                timings.append(time.perf_counter() - t)
            print(f"XEP-0257 append: median {1000 * statistics.median(timings):.2f} ms over {len(timings)}")
            timings = []
            for i in range(50):
                t = time.perf_counter()
                answer = request(manager, f"<items xmlns='{NS}'/>", f"i{i}", "get")
                timings.append(time.perf_counter() - t)
            assert answer.count(b"<item>") == certificates, answer.count(b"<item>")
            print(f"XEP-0257 items with {certificates} certificates: median "
                  f"{1000 * statistics.median(timings):.2f} ms over {len(timings)}")

            delays = []
            for i in range(revocations):
                path, key, _ = device(directory, f"r{i}")
                result = server.cli("cert", "add", "bench@localhost", f"R{i}", str(path))
                assert result.returncode == 0, result.stderr
                victim = externalLogin(server, path, key, f"victim{i}")
                t = time.perf_counter()
                result = server.cli("cert", "revoke", "bench@localhost", f"R{i}")
                assert result.returncode == 0, result.stderr
                victim.waitClosed(timeout=30)
                delays.append(time.perf_counter() - t)
                victim.close()
            print(f"CLI revoke to closed session (poll interval 2 s, includes the CLI's own start-up): "
                  f"median {statistics.median(delays):.2f} s, max {max(delays):.2f} s over {revocations}")

            idleMemory(
                server.process.pid, idle,
                lambda i: externalLogin(server, certPath, keyPath, f"idle{i}"), "certificate sessions",
            )
            manager.close()
        finally:
            server.stop()
        errors = server.errorLines()
        print(f"server log lines at error level: {len(errors)}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
