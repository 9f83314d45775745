"""
Run an xmppcert server for load generators: provision a fresh data
directory with the users and client certificates that the comparison
tools' C{mint_certs.py} made (C{userN@localhost}, C{users/userN.crt}), then
serve on the given STARTTLS and direct-TLS ports (and, with
C{--https-port}, BOSH and WebSocket on an HTTPS port) until killed.
C{--roster N} gives every user a roster of the N/2 users before it and
the N/2 after it (cyclically),
with subscriptions both ways, for the instant messaging benchmark.

It imports C{xmppcert} from wherever Python finds it, so the same script
serves another checkout too (C{PYTHONPATH=../old python bench/serve.py
...}): that is how C{bench.compare} measures before and after in one run.
Only APIs present since the first release are used.

    python bench/serve.py --certs DIR --data DIR --port 5222 --direct-port 5223 \\
        [--https-port 5281] [--roster 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def provision(
    certs: Path, data: Path, starttls: int, direct: int, https: int | None = None, roster: int = 0
) -> Path:
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import serialization

    from xmppcert import config as configModule
    from xmppcert import x509
    from xmppcert.store.sqlite import SQLiteDatabase

    meta = json.loads((certs / "meta.json").read_text())
    domain, count, prefix = meta["domain"], int(meta["count"]), meta.get("prefix", "user")
    data.mkdir(parents=True, exist_ok=True)
    x509.writeServerCertificate(data / "server.crt", data / "server.key", [domain])
    limits = "[limits]\nauth_timeout = 600\n"
    if "max_unauthenticated_per_address" in configModule.LimitsConfig.__dataclass_fields__:
        # One load generator is one address: let it hold many logins open.
        limits += "max_unauthenticated_per_address = 10000\nhandshake_timeout = 120\n"
    web = http = ""
    if https is not None:
        web = f'https = ["tcp:{https}:interface=127.0.0.1"]\n'
        # Held BOSH sessions for the memory figure: more than the default cap.
        http = "[http]\nbosh_max_sessions = 100000\n"
    path = data / "xmppcert.toml"
    path.write_text(
        f'domains = ["{domain}"]\ndata_dir = "."\nlog_level = "warn"\n'
        f'[listen]\nstarttls = ["tcp:{starttls}:interface=127.0.0.1"]\n'
        f'direct_tls = ["tcp:{direct}:interface=127.0.0.1"]\n'
        f"{web}{limits}{http}"
    )
    database = SQLiteDatabase.open(data / "xmppcert.sqlite")
    try:
        for n in range(1, count + 1):
            account = f"{prefix}{n}@{domain}"
            certificate = cx509.load_pem_x509_certificate((certs / "users" / f"{prefix}{n}.crt").read_bytes())
            database.addAccount(account, [])
            database.addCertificate(
                account, "bench", certificate.public_bytes(serialization.Encoding.DER),
                x509.fingerprint(certificate), certificate.not_valid_after_utc.timestamp(),
            )
        if roster:
            from xmppcert.store.interfaces import RosterItem

            # The N/2 users before and the N/2 after (cyclically): each
            # contact has the user in its roster too, so every subscription
            # "both" is true on both sides and logins change no roster.
            half = min(roster, count - 1) // 2
            for n in range(1, count + 1):
                account = f"{prefix}{n}@{domain}"
                for k in [*range(1, half + 1), *range(-half, 0)]:
                    contact = f"{prefix}{(n - 1 + k) % count + 1}@{domain}"
                    database.putRosterItem(account, RosterItem(contact, subscription="both"))
    finally:
        database.close()
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--certs", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--port", type=int, default=5222)
    parser.add_argument("--direct-port", type=int, default=5223)
    parser.add_argument("--https-port", type=int, help="serve BOSH and WebSocket on this HTTPS port")
    parser.add_argument("--roster", type=int, default=0, help="contacts of every user (the N/2 before and after)")
    parser.add_argument(
        "--reuse", action="store_true", help="serve the data directory as it is (provisioned before)"
    )
    parser.add_argument("--provision-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.provision_only:
        provision(args.certs, args.data, args.port, args.direct_port, args.https_port, args.roster)
        return
    if not args.reuse:
        # In a child process: what this one holds once it listens is the
        # server's alone (its memory at start), not the provisioning's.
        given = sys.argv[1:] if argv is None else argv
        subprocess.run([sys.executable, __file__, *given, "--provision-only"], check=True)
    path = args.data / "xmppcert.toml"

    from twisted.internet import reactor

    from xmppcert.config import loadConfig
    from xmppcert.service import makeService

    root = makeService(loadConfig(path))
    root.startService()
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    https = f" and HTTPS {args.https_port}" if args.https_port else ""
    print(f"serving on {args.port} and {args.direct_port}{https}", file=sys.stderr, flush=True)

    def started() -> None:
        with open("/proc/self/status") as status:
            rss = next((line.split()[1] for line in status if line.startswith("VmRSS:")), None)
        if rss is not None:
            print(f"server memory at start (RSS once listening): {int(rss) / 1024:.1f} MiB", file=sys.stderr, flush=True)

    reactor.callWhenRunning(started)
    reactor.run()


if __name__ == "__main__":
    main()
