"""
xmppcert and Prosody side by side, for C{bench.transports} and
C{bench.im}: start both with the same users (xmppcert with
C{bench/serve.py}, Prosody as L{bench.prosody} provisions it), run the
load client (L{bench.loadclient}) against each in turn, and print the
medians and their ratio.

The figures are those of C{bench.compare}: server CPU milliseconds per
counted login (C{server_cpu_ms_per_login}) and server RSS growth per idle
held session (C{kib_per_session}). Runs alternate between the two servers
so that both see the same machine noise; each run waits until both
servers are quiet, so that one's trailing work (closing sessions,
broadcasting unavailable presence) does not fall into the other's
window.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import prosody
from bench.compare import ROOT, freePort, waitForPort
from bench.loadclient import processCPU

#: The goal of the performance issue: xmppcert's CPU per login at most
#: this times Prosody's, in the same run.
CPU_GOAL = 0.8


@dataclass(frozen=True)
class Settings:
    """
    What every run of one command shares.

    @ivar reps: load runs on each server (alternated).
    @ivar duration: counted seconds of each load run.
    @ivar concurrency: logins at a time.
    @ivar hold: sessions held for the memory figure (0: none).
    @ivar procs: load client processes.
    """

    reps: int
    duration: float
    concurrency: int
    hold: int
    procs: int

    @classmethod
    def fromEnvironment(cls) -> Settings:
        """
        REPS (3), DUR (8), C (10), HOLD (2000) as C{compare.sh} reads
        them, and PROCS (2).
        """
        return cls(
            reps=int(os.environ.get("REPS", "3")),
            duration=float(os.environ.get("DUR", "8")),
            concurrency=int(os.environ.get("C", "10")),
            hold=int(os.environ.get("HOLD", "2000")),
            procs=int(os.environ.get("PROCS", "2")),
        )


@dataclass
class Server:
    """
    A server under load, which can be started again on the same data.

    @ivar name: C{xmppcert} or C{prosody}.
    @ivar ports: its port by transport.
    @ivar root: its data directory.
    @ivar log: the file its log lines go to.
    @ivar command: what starts it (again) on the provisioned data.
    @ivar env: its environment.
    @ivar process: the running server.
    """

    name: str
    ports: dict[str, int]
    root: Path
    log: Path
    command: list[str]
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60, command: list[str] | None = None) -> None:
        """
        Start it (with C{command} instead of L{command} if given) and wait
        until it listens.
        """
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                command or self.command, env=self.env, cwd=str(self.root), stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=prosody.moreFiles,
            )
        try:
            waitForPort(self.ports["https"], self.process, timeout)
        except BaseException:
            self.stop()
            print(logTail(self.log), file=sys.stderr)
            raise

    def stop(self) -> None:
        if self.process is not None:
            prosody.stop(self.process)

    def restart(self) -> None:
        """
        Stop it and start it again on the same data: a fresh process, for
        the memory figure.
        """
        self.stop()
        self.start()


def mint(perf: Path, certs: Path, count: int, keytype: str = "ecdsa") -> None:
    """
    Mint C{count} users' certificates into C{certs} with C{mint_certs.py}.
    """
    subprocess.run(
        [sys.executable, str(perf / "mint_certs.py"), "--out", str(certs), "--count", str(count),
         "--keytype", keytype],
        check=True, stdout=subprocess.DEVNULL,
    )


def _ports() -> dict[str, int]:
    starttls, direct, https = freePort(), freePort(), freePort()
    return {"starttls": starttls, "direct-tls": direct, "https": https, "bosh": https, "websocket": https}


def startXmppcert(source: Path, certs: Path, data: Path, roster: int = 0) -> Server:
    """
    Provision C{data} and serve it with C{bench/serve.py}, importing the
    xmppcert of C{source}, on STARTTLS, direct TLS and HTTPS ports.
    """
    ports = _ports()
    data.mkdir(parents=True, exist_ok=True)
    serve = [
        sys.executable, str(ROOT / "bench" / "serve.py"), "--certs", str(certs.resolve()),
        "--data", str(data.resolve()), "--port", str(ports["starttls"]),
        "--direct-port", str(ports["direct-tls"]), "--https-port", str(ports["https"]),
    ]
    server = Server(
        "xmppcert", ports, data, data / "serve.log", [*serve, "--reuse"],
        env=dict(os.environ, PYTHONPATH=str(source.resolve())),
    )
    # The first start provisions; many roster items take a while.
    server.start(timeout=900, command=serve + (["--roster", str(roster)] if roster else []))
    return server


def startProsody(perf: Path, certs: Path, root: Path, roster: int = 0) -> Server:
    """
    Provision Prosody in C{root} (see L{bench.prosody}) with HTTPS for
    BOSH and WebSocket, and start it.
    """
    ports = _ports()
    config = prosody.provision(perf, certs, root, ports["starttls"], ports["direct-tls"], ports["https"], roster)
    server = Server("prosody", ports, root, root / "prosody.log", prosody.command(config))
    server.start()
    return server


def logTail(path: Path, lines: int = 20) -> str:
    """
    @return: the end of a server's log, to show when logins fail.
    """
    if not path.exists():
        return f"(no {path.name})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def waitQuiet(servers: list[Server], limit: float = 300) -> None:
    """
    Wait (at most C{limit} seconds) until no running server uses more than
    a tenth of a core over half a second.
    """
    running = [s for s in servers if s.process is not None and s.process.poll() is None]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = [processCPU(s.pid) for s in running]
        time.sleep(0.5)
        after = [processCPU(s.pid) for s in running]
        if all(b - a <= 0.05 for a, b in zip(before, after, strict=True)):
            return
    print(f"  (the servers were still busy after {limit:g} s)", file=sys.stderr, flush=True)


def problems(result: dict[str, Any]) -> int:
    """
    @return: the failed logins of a run (in the window or not, background
        too) and the sessions the server closed while they were held.
    """
    count = 0
    for key in ("errors", "errors_outside_window", "background_errors"):
        count += sum(result.get(key, {}).values())
    return count + int(result.get("dropped_while_held", 0)) + int(result.get("background_dropped", 0))


def runClient(server: Server, certs: Path, transport: str, out: Path, label: str, arguments: list[str]) -> dict[str, Any]:
    """
    Run L{bench.loadclient} against C{server} once.

    @return: its result (also appended to C{out}).
    """
    command = [
        sys.executable, "-m", "bench.loadclient", "--certs", str(certs), "--transport", transport,
        "--port", str(server.ports[transport]), "--pid", str(server.pid), "--json", str(out),
        "--label", label, *arguments,
    ]
    completed = subprocess.run(command, cwd=str(ROOT), stdout=subprocess.PIPE, text=True)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise SystemExit(f"the load client failed against {server.name} ({transport}): {completed.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    errors = problems(result)
    hold = result.get("kind") == "hold"
    figure = result.get("kib_per_session" if hold else "server_cpu_ms_per_login", "-")
    cpu = result.get("cpu", {})
    print(f"  {label:<16} {result.get('held' if hold else 'ok'):>6} {'held' if hold else 'logins'},"
          f" {figure} {'KiB/session' if hold else 'ms/login'}; CPU % server {cpu.get('server_cpu_pct')}"
          f" client {cpu.get('gen_cpu_pct')} machine {cpu.get('machine_busy_pct')}; errors {errors}",
          file=sys.stderr, flush=True)
    if errors:
        print(f"  the end of {server.log.name}:\n{logTail(server.log, 10)}", file=sys.stderr)
    return result


@dataclass
class Figures:
    """
    One scenario's results on both servers.
    """

    scenario: str
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"xmppcert": [], "prosody": []})
    kib: dict[str, list[float]] = field(default_factory=lambda: {"xmppcert": [], "prosody": []})
    logins: dict[str, int] = field(default_factory=lambda: {"xmppcert": 0, "prosody": 0})
    errors: dict[str, int] = field(default_factory=lambda: {"xmppcert": 0, "prosody": 0})
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, result: dict[str, Any]) -> None:
        self.errors[name] += problems(result)
        if result.get("kind") == "hold":
            if "kib_per_session" in result:
                self.kib[name].append(float(result["kib_per_session"]))
        else:
            self.logins[name] += int(result.get("ok", 0))
            if "server_cpu_ms_per_login" in result:
                self.cpu[name].append(float(result["server_cpu_ms_per_login"]))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def measure(
    scenario: str,
    servers: list[Server],
    certs: Path,
    transport: str,
    settings: Settings,
    out: Path,
    load: list[str],
    hold: list[str],
) -> Figures:
    """
    Alternate load runs over C{servers}, then hold sessions on each,
    started again for it (and stopped after it).

    @param load: more arguments of the load runs.
    @param hold: more arguments of the hold runs.
    """
    figures = Figures(scenario)
    timing = ["-t", str(settings.duration), "-c", str(settings.concurrency), "--procs", str(settings.procs)]
    for _ in range(settings.reps):
        for server in servers:
            waitQuiet(servers)
            figures.add(server.name, runClient(server, certs, transport, out, server.name, timing + load))
    if settings.hold:
        for server in servers:
            # A fresh process: memory that the load runs freed would be
            # reused by the held sessions and hide their cost.
            server.restart()
            waitQuiet(servers)
            arguments = ["--hold", str(settings.hold), "-c", "20", "--timeout", "60", *hold]
            figures.add(server.name, runClient(server, certs, transport, out, f"{server.name}-hold", arguments))
            # Done with it: its sessions' ends keep it busy no longer.
            server.stop()
    return figures


def _number(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def table(rows: list[Figures]) -> str:
    """
    @return: the table of the medians: ms/login and KiB/session of both
        servers, the CPU ratio (goal: at most L{CPU_GOAL}).
    """
    header = ("scenario", "xmppcert ms/login", "Prosody ms/login", "ratio", "xmppcert KiB/session",
              "Prosody KiB/session", "logins x/P", "errors x/P")
    lines = [header]
    notes: list[str] = []
    for row in rows:
        x, p = median(row.cpu["xmppcert"]), median(row.cpu["prosody"])
        xk, pk = median(row.kib["xmppcert"]), median(row.kib["prosody"])
        ratio = x / p if p and not math.isnan(p) else math.nan
        lines.append((
            row.scenario, _number(x, 2), _number(p, 2), _number(ratio, 2), _number(xk, 1), _number(pk, 1),
            f"{row.logins['xmppcert']}/{row.logins['prosody']}",
            f"{row.errors['xmppcert']}/{row.errors['prosody']}",
        ))
        notes += [f"{row.scenario}: {note}" for note in row.notes]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines)
    text += f"\n(medians; ratio = xmppcert / Prosody CPU per login, goal <= {CPU_GOAL})"
    if notes:
        text += "\n" + "\n".join(notes)
    return text


def resultsFile(prefix: str) -> Path:
    """
    @return: a new file for the raw JSON lines, kept after the run.
    """
    descriptor, name = tempfile.mkstemp(prefix=prefix, suffix=".jsonl")
    os.close(descriptor)
    return Path(name)
