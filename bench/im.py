"""
Instant messaging in place, side by side with Prosody 0.12 +
mod_client_certs: server CPU per login and memory per idle session when
a login (TCP, STARTTLS with a client certificate, SASL EXTERNAL, bind) is
followed by what an IM client does next: it asks for its roster
(C{jabber:iq:roster} get) and sends initial presence, and the server
sends that presence back to it (RFC 6121 section 4.2.2) after telling
the contacts.

Every user has a roster of 100 contacts, the 50 users before it and the
50 after it (cyclically), subscribed both ways and true on both sides (so
no login changes a roster): xmppcert's store through its roster API
(C{bench/serve.py --roster}), Prosody's internal storage with the same
items (L{bench.prosody}). The logins are of users 1 to 200; meanwhile 150
background sessions (users 1, 3, 5, ... 299) stay online with presence
sent, so half of each logging-in user's contacts are online: the server
probes them, answers with their presence, and tells them of the new
session and of its end. The held sessions of the memory figure each send
presence too, one session per user (users 1 to HOLD).

    .venv/bin/python -m bench.im [--contacts 100] [--users 200] [--background 150]
        [--source DIR] [--perf DIR]

REPS (3), DUR (8), C (10), HOLD (2000) and PROCS (2) come from the
environment; as many users are minted as the logins' contacts reach and
HOLD needs (at least 300). Needs C{apt-get install prosody
prosody-modules}.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bench import pair
from bench.compare import ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="xmppcert against Prosody: login, roster, presence")
    parser.add_argument("--contacts", type=int, default=100, help="roster items of every user (100)")
    parser.add_argument("--users", type=int, default=200, help="users who log in (1..N, 200)")
    parser.add_argument("--background", type=int, default=-1,
                        help="sessions online during the load (default (users + contacts) / 2)")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose xmppcert to serve")
    parser.add_argument("--perf", type=Path, default=ROOT.parent / "shared" / "perf",
                        help="the comparison tools (mint_certs.py, provision_prosody.py)")
    parser.add_argument("--keytype", default="ecdsa", choices=["ecdsa", "rsa"])
    args = parser.parse_args(argv)
    if shutil.which("prosody") is None:
        print("im: apt-get install prosody prosody-modules", file=sys.stderr)
        return 3
    settings = pair.Settings.fromEnvironment()
    count = max(args.users + args.contacts, settings.hold)
    background = args.background if args.background >= 0 else (args.users + args.contacts) // 2
    contacts = min(args.contacts, count - 1)
    out = pair.resultsFile("im-")
    print(f"REPS={settings.reps} DUR={settings.duration:g} C={settings.concurrency} HOLD={settings.hold}"
          f" PROCS={settings.procs}; {count} {args.keytype} users with {contacts} contacts each;"
          f" logins of users 1-{args.users}, {background} background sessions", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        certs = directory / "certs"
        pair.mint(args.perf, certs, count, args.keytype)
        print("provisioning the rosters", file=sys.stderr, flush=True)
        xmppcert = pair.startXmppcert(args.source, certs, directory / "xmppcert", roster=contacts)
        try:
            prosody = pair.startProsody(args.perf, certs, directory / "prosody", roster=contacts)
            try:
                im = ["--im", "--contacts", str(contacts)]
                figures = pair.measure(
                    f"im (roster {contacts}, presence)", [xmppcert, prosody], certs, "starttls", settings, out,
                    [*im, "--users", str(args.users), "--background", str(background), "--timeout", "30"],
                    im,
                )
            finally:
                prosody.stop()
        finally:
            xmppcert.stop()
    print(pair.table([figures]))
    print(f"raw figures: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
