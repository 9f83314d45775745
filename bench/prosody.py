"""
Prosody 0.12 + mod_client_certs as the reference peer of the benchmarks:
provisioned by the comparison tools' C{provision_prosody.py} (the users,
their certificates, the patched module, STARTTLS and direct TLS with the
client certificate requested), then extended here:

  - C{https}: an HTTPS listener for BOSH and WebSocket (modules C{bosh}
    and C{websocket}, C{https_ports}), whose TLS context asks for the
    client certificate as the c2s ones do (C{https_ssl} with C{verify =
    {"peer", "client_once"}}), so that mod_client_certs offers EXTERNAL on
    streams over it: mod_bosh and mod_websocket take the HTTP connection
    as the session's, and the module reads the certificate from it;
  - C{roster}: every user's roster holds the N/2 users before it and the
    N/2 after it (cyclically),
    subscriptions both ways, in Prosody's internal storage
    (C{DATA/localhost/roster/userN.dat}), as C{bench/serve.py --roster}
    does for xmppcert.

Prosody logs to C{ROOT/prosody.log}. Needs C{apt-get install prosody
prosody-modules}.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path


def luaString(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def webConfig(config: str, port: int, certs: Path) -> str:
    """
    @param config: the configuration C{provision_prosody.py} wrote.
    @param port: the HTTPS port.
    @param certs: the C{mint_certs.py} directory (the server certificate).
    @return: C{config} serving BOSH and WebSocket over HTTPS on C{port},
        asking for client certificates there.
    """
    certificate, key = luaString(str(certs / "server.crt")), luaString(str(certs / "server.key"))
    replacements = [
        ("https_ports = { }", f"https_ports = {{ {port} }}"),
        ('"client_certs";', '"client_certs"; "bosh"; "websocket";'),
        (
            'VirtualHost "',
            "-- the HTTPS listener of BOSH and WebSocket asks for the client certificate too\n"
            f"https_ssl = {{ certificate = {certificate}; key = {key};"
            ' verify = { "peer", "client_once" }; }\n'
            'VirtualHost "',
        ),
    ]
    for old, new in replacements:
        if config.count(old) != 1:
            raise SystemExit(f"prosody: expected one {old!r} in the generated configuration")
        config = config.replace(old, new)
    return config


def writeRosters(root: Path, certs: Path, contacts: int) -> None:
    """
    Give every user of C{certs} a roster of the C{contacts}/2 users before
    it and after it (cyclically), subscription C{both} (true on both
    sides), in Prosody's internal storage under C{root}.
    """
    meta = json.loads((certs / "meta.json").read_text())
    domain, prefix, count = meta["domain"], meta.get("prefix", "user"), int(meta["count"])
    directory = root / "data" / domain / "roster"  # "localhost" needs no %-encoding
    directory.mkdir(parents=True, exist_ok=True)
    # As bench/serve.py --roster: the N/2 users before and after, so that
    # every "both" holds on both sides.
    half = min(contacts, count - 1) // 2
    for n in range(1, count + 1):
        items = [
            f'\t[{luaString(f"{prefix}{(n - 1 + k) % count + 1}@{domain}")}] = '
            '{ subscription = "both"; groups = {}; };'
            for k in [*range(1, half + 1), *range(-half, 0)]
        ]
        (directory / f"{prefix}{n}.dat").write_text(
            "return {\n\t[false] = { version = 1; pending = {}; };\n" + "\n".join(items) + "\n};\n"
        )


def provision(
    perf: Path,
    certs: Path,
    root: Path,
    port: int,
    directPort: int,
    httpsPort: int | None = None,
    roster: int = 0,
    loglevel: str = "warn",
) -> Path:
    """
    Provision a Prosody instance in C{root} with C{provision_prosody.py},
    then add what was asked.

    @return: its configuration file.
    """
    subprocess.run(
        [sys.executable, str(perf / "provision_prosody.py"), "--certs", str(certs), "--root", str(root),
         "--port", str(port), "--direct-port", str(directPort), "--no-nagle", "--clean",
         "--loglevel", loglevel],
        check=True, stdout=subprocess.DEVNULL,
    )
    path = root / "prosody.cfg.lua"
    if httpsPort is not None:
        path.write_text(webConfig(path.read_text(), httpsPort, certs))
    if roster:
        writeRosters(root, certs, roster)
    return path


def moreFiles() -> None:
    """
    As C{run_prosody.sh} does before it starts Prosody: room for
    thousands of held sessions (a C{preexec_fn}).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 20000)), hard))


def command(config: Path) -> list[str]:
    """
    @return: the command that runs the Prosody of C{config} in the
        foreground (C{run_prosody.sh}'s), from its directory.
    """
    return ["prosody", "--config", str(config), "-F"]


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """
    Stop a server process: SIGTERM, then SIGKILL if it lingers.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
