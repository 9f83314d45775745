"""
Side by side with Prosody 0.12 + mod_client_certs: server CPU per full
certificate login (TCP, STARTTLS with a client certificate, SASL EXTERNAL,
bind) and memory per idle session, through the comparison tools that sit
beside the project (C{../shared/perf}: C{mint_certs.py}, C{compare.sh} and
the Node.js load generator).

One command does it all: mint N users' certificates, provision and start
xmppcert (L{bench.serve}) with them, and run C{compare.sh}, which starts
Prosody with the same users and alternates the two under the same load.

    .venv/bin/python -m bench.compare [--count 50] [--source DIR] [--perf DIR]

C{--source DIR} serves the xmppcert of another checkout (say, the previous
release in a git worktree) to measure before and after on the same machine.
C{compare.sh} reads REPS, DUR, C and HOLD from the environment. Needs
C{apt-get install prosody prosody-modules} and Node.js 18 or newer.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def waitForPort(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"compare: the server exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("compare: the server did not listen in time")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="xmppcert against Prosody, side by side")
    parser.add_argument("--count", type=int, default=50, help="users and certificates (50)")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose xmppcert to serve")
    parser.add_argument("--perf", type=Path, default=ROOT.parent / "shared" / "perf",
                        help="the comparison tools (compare.sh, mint_certs.py)")
    parser.add_argument("--keytype", default="ecdsa", choices=["ecdsa", "rsa"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        certs = directory / "certs"
        subprocess.run(
            [sys.executable, str(args.perf / "mint_certs.py"), "--out", str(certs),
             "--count", str(args.count), "--keytype", args.keytype],
            check=True, stdout=subprocess.DEVNULL,
        )
        port, direct = freePort(), freePort()
        env = dict(os.environ, PYTHONPATH=str(args.source.resolve()))
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "serve.py"), "--certs", str(certs),
             "--data", str(directory / "var"), "--port", str(port), "--direct-port", str(direct)],
            env=env, cwd=str(directory),
        )
        try:
            waitForPort(port, server)
            result = subprocess.run(
                [str(args.perf / "compare.sh"), str(certs), str(port), str(server.pid)],
                cwd=str(ROOT),
            )
            return result.returncode
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
