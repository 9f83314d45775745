"""
The floor under every certificate login: what TLS alone costs, on
xmppcert's TLS stack (Twisted's TLS over pyOpenSSL, with xmppcert's own
server context: a client certificate requested, any accepted) and on
Prosody's (LuaSec), side by side.

A bare TLS server on xmppcert's stack (no XMPP: it echoes what it gets)
and Prosody's direct-TLS port take the same handshakes from the Node.js
load generator of the comparison tools (C{--mode tls}: a full handshake
with the client certificate, nothing after it), then hold the same number
of idle TLS connections. The figures are the server's CPU per handshake
and RSS growth per idle connection: the part of C{bench.compare}'s
figures that no XMPP code can change.

    .venv/bin/python -m bench.tlsfloor        # REPS, DUR, C, HOLD from the environment

Internally, C{--serve PORT DIR} runs the bare TLS server.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import pair
from bench.compare import ROOT, freePort, waitForPort
from bench.loadclient import processRSS


def serve(port: int, certs: Path) -> None:
    """
    Echo over TLS on C{port} with xmppcert's server context factory, until
    killed.
    """
    from twisted.internet import protocol, reactor

    from xmppcert.tls import ServerTLSContextFactory

    class Echo(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            assert self.transport is not None
            self.transport.write(data)

    contexts = ServerTLSContextFactory.fromFiles(certs / "server.crt", certs / "server.key")
    factory = protocol.Factory.forProtocol(Echo)
    wrapped: Any = contexts.wrapFactory(factory)  # type: ignore[arg-type]
    reactor.listenTCP(port, wrapped, backlog=1024, interface="127.0.0.1")
    reactor.run()


def handshakes(certs: Path, port: int, pid: int, settings: pair.Settings, label: str, out: Path) -> float:
    """
    One load run of full TLS handshakes.

    @return: the server's CPU milliseconds per handshake.
    """
    perf = ROOT.parent / "shared" / "perf"
    subprocess.run(
        ["node", str(perf / "xmpp_login_load.js"), "--certs", str(certs), "--port", str(port),
         "--mode", "tls", "--tls-probe", "none", "-c", str(settings.concurrency), "-t", str(settings.duration),
         "--pid", str(pid), "--label", label, "--json", str(out), "--quiet"],
        check=True, stdout=subprocess.DEVNULL,
    )
    result = json.loads(out.read_text().splitlines()[-1])
    errors = sum(result.get("errors", {}).values())
    if errors:
        raise SystemExit(f"tlsfloor: {errors} failed handshakes against {label}: {result['errors']}")
    return float(result["server_cpu_ms_per_login"])


def hold(certs: Path, port: int, pid: int, count: int, settle: float = 3.0) -> float:
    """
    Open C{count} TLS connections with a client certificate and keep them
    idle.

    @return: the server's RSS growth per connection, in KiB.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 1000)), hard))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(certs / "users" / "user1.crt", certs / "users" / "user1.key")
    context.set_alpn_protocols(["xmpp-client"])
    held: list[ssl.SSLSocket] = []
    before = processRSS(pid)
    try:
        for _ in range(count):
            connection = context.wrap_socket(
                socket.create_connection(("127.0.0.1", port)), server_hostname="localhost"
            )
            held.append(connection)
        # The last client Finished, read by the server.
        time.sleep(settle)
        return (processRSS(pid) - before) / count
    finally:
        for connection in held:
            connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="TLS alone: xmppcert's stack against Prosody's")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "CERTS"), help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=50, help="users and certificates (50)")
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return 0
    settings = pair.Settings.fromEnvironment()
    perf = ROOT.parent / "shared" / "perf"
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        certs = directory / "certs"
        pair.mint(perf, certs, args.count)
        out = pair.resultsFile("tlsfloor-")
        port = freePort()
        bare = pair.Server(
            "xmppcert-tls", {"https": port}, directory, directory / "bare.log",
            [sys.executable, "-m", "bench.tlsfloor", "--serve", str(port), str(certs)],
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        bare.start()
        prosody = pair.startProsody(perf, certs, directory / "prosody")
        servers = [(bare, port), (prosody, prosody.ports["direct-tls"])]
        cpu: dict[str, list[float]] = {"xmppcert-tls": [], "prosody": []}
        kib: dict[str, float] = {}
        try:
            waitForPort(prosody.ports["direct-tls"], prosody.process)  # type: ignore[arg-type]
            for _ in range(settings.reps):
                for server, serverPort in servers:
                    pair.waitQuiet([s for s, _ in servers])
                    cpu[server.name].append(handshakes(certs, serverPort, server.pid, settings, server.name, out))
            if settings.hold:
                for server, serverPort in servers:
                    server.restart()
                    pair.waitQuiet([s for s, _ in servers])
                    kib[server.name] = hold(certs, serverPort, server.pid, settings.hold)
        finally:
            bare.stop()
            prosody.stop()
    x, p = statistics.median(cpu["xmppcert-tls"]), statistics.median(cpu["prosody"])
    print("TLS alone (full handshake with a client certificate, ECDSA P-256), medians:")
    print(f"  CPU per handshake: xmppcert's stack {x:.2f} ms, Prosody {p:.2f} ms, ratio {x / p:.2f}")
    if kib:
        print(
            f"  memory per idle TLS connection ({settings.hold} held): xmppcert's stack"
            f" {kib['xmppcert-tls']:.1f} KiB, Prosody {kib['prosody']:.1f} KiB"
        )
    print(f"raw figures: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
