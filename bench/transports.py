"""
Side by side with Prosody 0.12 + mod_client_certs over the other ways in:
server CPU per full certificate login and memory per idle session for

  - C{direct-tls}: TLS from the first byte, ALPN C{xmpp-client}
    (XEP-0368);
  - C{bosh}: HTTPS to C{/http-bind} (XEP-0124, XEP-0206);
  - C{websocket}: HTTPS, WebSocket to C{/xmpp-websocket}, subprotocol
    C{xmpp} (RFC 7395);

each with the client certificate in the TLS handshake, SASL EXTERNAL
(authzid C{=}), the stream restart and resource binding, then the close.

One command does it all: mint the users' certificates with the comparison
tools beside the project (C{../shared/perf/mint_certs.py}), then for each
transport start a fresh xmppcert (L{bench.serve}, with an HTTPS listener)
and a fresh Prosody (L{bench.prosody}: C{provision_prosody.py}'s instance
with BOSH, WebSocket and an HTTPS listener that asks for the client
certificate), alternate L{bench.loadclient} runs between them, hold idle
sessions on each, and stop both. Prints a table of the medians.

    .venv/bin/python -m bench.transports [--transports direct-tls,bosh,websocket]
        [--source DIR] [--perf DIR] [--count 50]

REPS (3), DUR (8), C (10), HOLD (2000) and PROCS (2, load client
processes) come from the environment. Needs C{apt-get install prosody
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

TRANSPORTS = ("direct-tls", "bosh", "websocket")


def measureTransport(
    transport: str, args: argparse.Namespace, certs: Path, directory: Path, settings: pair.Settings, out: Path
) -> pair.Figures:
    """
    Fresh servers for C{transport} (so that one transport's held sessions
    leave no freed memory for the next to reuse), measured and stopped.
    """
    print(f"{transport}:", file=sys.stderr, flush=True)
    data = directory / f"xmppcert-{transport}"
    xmppcert = pair.startXmppcert(args.source, certs, data)
    try:
        prosody = pair.startProsody(args.perf, certs, directory / f"prosody-{transport}")
        try:
            figures = pair.measure(transport, [xmppcert, prosody], certs, transport, settings, out, [], [])
        finally:
            prosody.stop()
    finally:
        xmppcert.stop()
    if not figures.logins["prosody"]:
        figures.notes.append("Prosody completed no login: xmppcert alone (see the Prosody log above)")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="xmppcert against Prosody over direct TLS, BOSH and WebSocket")
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help="comma-separated subset of " + ", ".join(TRANSPORTS))
    parser.add_argument("--count", type=int, default=50, help="users and certificates (50)")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose xmppcert to serve")
    parser.add_argument("--perf", type=Path, default=ROOT.parent / "shared" / "perf",
                        help="the comparison tools (mint_certs.py, provision_prosody.py)")
    parser.add_argument("--keytype", default="ecdsa", choices=["ecdsa", "rsa"])
    args = parser.parse_args(argv)
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    for transport in transports:
        if transport not in TRANSPORTS:
            parser.error(f"unknown transport {transport!r}: choose from {', '.join(TRANSPORTS)}")
    if shutil.which("prosody") is None:
        print("transports: apt-get install prosody prosody-modules", file=sys.stderr)
        return 3
    settings = pair.Settings.fromEnvironment()
    out = pair.resultsFile("transports-")
    print(f"REPS={settings.reps} DUR={settings.duration:g} C={settings.concurrency} HOLD={settings.hold}"
          f" PROCS={settings.procs}; {args.count} {args.keytype} users", file=sys.stderr, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        certs = directory / "certs"
        pair.mint(args.perf, certs, args.count, args.keytype)
        for transport in transports:
            rows.append(measureTransport(transport, args, certs, directory, settings, out))
    print(pair.table(rows))
    print(f"raw figures: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
