"""
Flat as the store grows: the same measurements on a store with the 50
benchmark users only, then after filling it with 100,000 more accounts and
1,000,000 more certificates (10 each).

  1. server CPU per full certificate login (TCP, STARTTLS with a client
     certificate, SASL EXTERNAL, bind), with the comparison tools' load
     generator, as C{bench.compare} runs it;
  2. the store operations behind the login and certificate management,
     timed in process on the same database: the lookup by fingerprint,
     the revocation check, the lock check, the last-used write, XEP-0257
     C{items} (an account's certificates) and C{append} (add, then remove),
     the revocation poll (C{changesSince}) and the session check's lookup.

Run from the repository root (Node.js and the comparison tools beside the
project, as for C{bench.compare}):

    .venv/bin/python -m bench.flat                # REPS, DUR from the environment
    .venv/bin/python -m bench.flat --accounts 1000 --per-account 10   # a quick run

Not part of the test suite: the figures depend on the machine; read the
ratio big / small.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.compare import ROOT, freePort, waitForPort
from bench.serve import provision


def fill(database: Path, accounts: int, perAccount: int, domain: str) -> float:
    """
    Add C{accounts} accounts with C{perAccount} enabled certificates each,
    straight into the SQLite file (one transaction); the certificates'
    DER is a stand-in (no lookup reads it).

    @return: seconds it took.
    """
    started = time.monotonic()
    conn = sqlite3.connect(database)
    try:
        now = time.time()
        (seq,) = conn.execute("SELECT value FROM meta WHERE key = 'change_seq'").fetchone()
        seq = int(seq)
        with conn:
            conn.executemany(
                "INSERT INTO accounts (jid, created_at) VALUES (?, ?)",
                ((f"filler{i}@{domain}", now) for i in range(accounts)),
            )

            def certificates() -> Iterator[tuple[Any, ...]]:
                nonlocal seq
                der = b"\x30\x82\x00\x00" + bytes(60)
                for i in range(accounts):
                    for k in range(perAccount):
                        seq += 1
                        yield (
                            f"filler{i}@{domain}", f"device{k}", secrets.token_hex(32), der,
                            "enabled", 1, now + 86400 * 365, now, now, None, seq,
                        )

            conn.executemany(
                "INSERT INTO certificates (account, name, fingerprint, der, state, can_manage, not_after,"
                " created_at, changed_at, last_used_at, change_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                certificates(),
            )
            conn.execute("UPDATE meta SET value = ? WHERE key = 'change_seq'", (seq + 1,))
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return time.monotonic() - started


def loginCPU(perf: Path, certs: Path, data: Path, ports: tuple[int, int], reps: int, duration: float) -> float:
    """
    Serve C{data} (provisioned for C{ports}) and run the load generator
    C{reps} times.

    @return: the median server CPU milliseconds per login.
    """
    port, direct = ports
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "serve.py"), "--certs", str(certs), "--data", str(data),
         "--port", str(port), "--direct-port", str(direct), "--reuse"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(data),
    )
    figures = []
    try:
        waitForPort(port, server)
        for _ in range(reps):
            out = data / "load.jsonl"
            subprocess.run(
                ["node", str(perf / "xmpp_login_load.js"), "--certs", str(certs), "--port", str(port),
                 "-t", str(duration), "--pid", str(server.pid), "--quiet", "--json", str(out)],
                check=True, stdout=subprocess.DEVNULL,
            )
            last = json.loads(out.read_text().splitlines()[-1])
            figures.append(float(last["server_cpu_ms_per_login"]))
    finally:
        server.terminate()
        server.wait(timeout=60)
    return statistics.median(figures)


def timed(operation: Callable[[], object], repeat: int) -> float:
    """
    @return: the median microseconds of C{operation}.
    """
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def storeTimings(data: Path, domain: str, repeat: int) -> dict[str, float]:
    from xmppcert.store.sqlite import SQLiteDatabase

    database = SQLiteDatabase.open(data / "xmppcert.sqlite")
    try:
        account = f"user1@{domain}"
        (known,) = [c.fingerprint for c in database.listCertificates(account)]
        unknown = secrets.token_hex(32)
        cursor, _ = database.changesSince(0)
        der = b"\x30\x82\x00\x00" + bytes(60)

        def append() -> None:
            fingerprint = secrets.token_hex(32)
            database.addCertificate(account, "bench-append", der, fingerprint, time.time() + 86400)
            database.removeCertificate(account, "bench-append")

        return {
            "certificateByFingerprint (known)": timed(lambda: database.certificateByFingerprint(known), repeat),
            "certificateByFingerprint (unknown)": timed(lambda: database.certificateByFingerprint(unknown), repeat),
            "isCertificateRevoked": timed(lambda: database.isCertificateRevoked(unknown), repeat),
            "isAccountLocked": timed(lambda: database.isAccountLocked(account), repeat),
            "touchCertificate": timed(lambda: database.touchCertificate(known, time.time()), repeat),
            "XEP-0257 items (listCertificates)": timed(lambda: database.listCertificates(account), repeat),
            "XEP-0257 append (add + remove)": timed(append, max(10, repeat // 10)),
            "revocation poll (changesSince)": timed(lambda: database.changesSince(cursor), repeat),
        }
    finally:
        database.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="login and store cost, small store against a big one")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--per-account", type=int, default=10)
    parser.add_argument("--count", type=int, default=50, help="benchmark users (50)")
    parser.add_argument("--perf", type=Path, default=ROOT.parent / "shared" / "perf",
                        help="the comparison tools (mint_certs.py, xmpp_login_load.js)")
    parser.add_argument("--repeat", type=int, default=2000, help="store operations timed (2000)")
    args = parser.parse_args(argv)
    reps = int(os.environ.get("REPS", "3"))
    duration = float(os.environ.get("DUR", "8"))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        certs, data = directory / "certs", directory / "var"
        subprocess.run(
            [sys.executable, str(args.perf / "mint_certs.py"), "--out", str(certs), "--count", str(args.count),
             "--keytype", "ecdsa"],
            check=True, stdout=subprocess.DEVNULL,
        )
        domain = json.loads((certs / "meta.json").read_text())["domain"]
        ports = (freePort(), freePort())
        provision(certs, data, *ports)
        small = {"login CPU ms": loginCPU(args.perf, certs, data, ports, reps, duration)}
        small.update(storeTimings(data, domain, args.repeat))
        took = fill(data / "xmppcert.sqlite", args.accounts, args.per_account, domain)
        size = (data / "xmppcert.sqlite").stat().st_size
        print(
            f"filled {args.accounts} accounts and {args.accounts * args.per_account} certificates"
            f" in {took:.0f} s ({size / 2**20:.0f} MiB)",
            file=sys.stderr,
        )
        big = {"login CPU ms": loginCPU(args.perf, certs, data, ports, reps, duration)}
        big.update(storeTimings(data, domain, args.repeat))
    print(f"| figure | {args.count} accounts | +{args.accounts} accounts, +{args.accounts * args.per_account}"
          " certificates | ratio |")
    print("|---|---|---|---|")
    for name, before in small.items():
        after = big[name]
        unit = "" if name.startswith("login") else " µs"
        print(f"| {name} | {before:.2f}{unit} | {after:.2f}{unit} | {after / before:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
