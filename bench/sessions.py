"""
Login throughput and memory per idle session, against a real server.

Starts C{twistd xmppcert} on loopback ports (as the integration tests do),
then:

  1. logs in N times one after the other over STARTTLS with PLAIN (TLS
     handshake, PBKDF2 check, bind) and reports logins per second;
  2. keeps M sessions open and idle and reports the server's resident memory
     per session (VmRSS from /proc, before and after).

Run from the repository root:  .venv/bin/python -m bench.sessions [N] [M]
Not part of the test suite: numbers depend on the machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import makeServer
from tests.integration.raw import RawStream


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def idleMemory(pid: int, count: int, login: Callable[[int], RawStream], what: str) -> None:
    """
    Open C{count} sessions with C{login(i)}, leave them idle, and print the
    server's resident memory per session.
    """
    time.sleep(1)
    before = rss(pid)
    streams = [login(i) for i in range(count)]
    time.sleep(2)
    after = rss(pid)
    print(f"idle {what}: {count}; server RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB "
          f"= {(after - before) / count / 1024:.1f} KiB per session")
    for raw in streams:
        raw.close()


def main(logins: int = 200, idle: int = 500) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = makeServer(Path(tmp), extraConfig="[limits]\nauth_timeout = 600\n")
        server.addUser("bench@localhost", "bench-pw")
        server.start()
        assert server.process is not None
        try:
            start = time.perf_counter()
            for i in range(logins):
                raw = RawStream(server.starttlsPort)
                raw.login(server.caFile, "bench", "bench-pw", resource=f"seq{i}")
                raw.close()
            elapsed = time.perf_counter() - start
            print(f"sequential logins: {logins} in {elapsed:.2f} s = {logins / elapsed:.1f}/s "
                  f"({1000 * elapsed / logins:.1f} ms each: TCP, STARTTLS, PLAIN, bind)")


            def passwordLogin(i: int) -> RawStream:
                raw = RawStream(server.starttlsPort)
                raw.login(server.caFile, "bench", "bench-pw", resource=f"idle{i}")
                return raw

            idleMemory(server.process.pid, idle, passwordLogin, "password sessions (bound, TLS)")
        finally:
            server.stop()
        errors = server.errorLines()
        print(f"error-level log lines: {len(errors)}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
