"""
Load client of the benchmarks: full certificate logins against any XMPP
server, with the users and client certificates of the comparison tools'
C{mint_certs.py} (C{userN@localhost}, C{users/userN.crt} and C{.key}).

One login: the transport, the client certificate in the TLS handshake,
SASL EXTERNAL with authzid C{=}, the stream restart, resource binding; with
C{--im}, then the roster (C{jabber:iq:roster} get) and initial presence,
waiting for the server to send that presence back (RFC 6121 section
4.2.2); then the stream is closed. Every step is checked (C{<success/>},
a bind result with the user's JID, a roster result, the presence from the
bound JID); what fails is counted by kind and the first few are printed.

Transports:

  - C{starttls}: TCP, C{<starttls/>}, TLS (RFC 6120);
  - C{direct-tls}: TLS from the first byte with ALPN C{xmpp-client}
    (XEP-0368);
  - C{bosh}: HTTPS (ALPN C{http/1.1}) POSTs to C{/http-bind}, one
    keep-alive connection per session (XEP-0124, XEP-0206);
  - C{websocket}: HTTPS, then a WebSocket to C{/xmpp-websocket} with the
    subprotocol C{xmpp} (RFC 7395).

Two modes, as the Node.js generator of C{../shared/perf}:

  - load (default): C{-c} logins at a time for C{--warmup} seconds (not
    counted) and C{--duration} seconds (counted), over C{--procs} client
    processes. The server's CPU (utime + stime of C{--pid}) is read at the
    start and at the end of the counted window, and only logins that
    complete inside it are counted: C{server_cpu_ms_per_login} is their
    quotient. C{--background N} keeps N sessions online meanwhile (every
    other user from the first; with C{--im} they have sent presence), so
    that contacts are online.
  - C{--hold N}: open N sessions, wait until the server is quiet, leave
    them idle for C{--settle} seconds, and report the server's RSS growth
    per session (C{kib_per_session}).

    .venv/bin/python -m bench.loadclient --certs DIR --transport bosh \\
        --port 5281 --pid PID [-c 10] [-t 8] [--procs 2] [--im] [--hold N] \\
        [--json FILE] [--label TEXT]

Prints one JSON line (and appends it to C{--json}), with the key names of
the Node.js generator where they mean the same. Only the standard library
and wsproto (which xmppcert itself depends on).
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import json
import multiprocessing
import os
import random
import re
import resource
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

TRANSPORTS = ("starttls", "direct-tls", "bosh", "websocket")

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_ROSTER = "jabber:iq:roster"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"

BOSH_PATH = "/http-bind"
WEBSOCKET_PATH = "/xmpp-websocket"

#: Seconds a BOSH request may be held by the server (XEP-0124 C{wait}).
BOSH_WAIT = 30

#: Seconds a closing stream waits for the server's closing before the
#: connection is cut (as the Node.js generator does).
CLOSE_WAIT = 2.0

FEATURES_END = re.compile(r"</stream:features>|<stream:features\b[^>]*/>")
PROCEED = re.compile(r"<proceed\b[^>]*>")
SASL_RESULT = re.compile(r"<(success|failure)\b[^>]*?(?:/>|>(.*?)</\1>)", re.S)
STREAM_ERROR = re.compile(r"<stream:error\b.*?(?:</stream:error>|$)", re.S)
STREAM_CONDITION = re.compile(r"<([a-z-]+)\s+xmlns=['\"]urn:ietf:params:xml:ns:xmpp-streams")
STREAM_END = re.compile(r"</stream:stream>|<close\b[^>]*xmpp-framing")
JID_TEXT = re.compile(r"<jid>([^<]+)</jid>")
IQ_TYPE = re.compile(r"^<iq\b[^>]*\btype=['\"]([a-z]+)['\"]")
BODY_START = re.compile(r"<body\b[^>]*?(/?)>", re.S)
ATTRIBUTE = re.compile(r"""\b([a-z:]+)=(?:'([^']*)'|"([^"]*)")""")


def iqResult(id: str) -> re.Pattern[str]:
    """
    @return: a pattern matching the whole C{<iq/>} with id C{id}.
    """
    return re.compile(rf"<iq\b[^>]*\bid=['\"]{re.escape(id)}['\"][^>]*?(?:/>|>.*?</iq>)", re.S)


def presenceFrom(full: str) -> re.Pattern[str]:
    """
    @return: a pattern matching a whole C{<presence/>} from C{full}.
    """
    return re.compile(
        rf"<presence\b[^>]*\bfrom=['\"]{re.escape(full)}['\"][^>]*?(?:/>|>.*?</presence>)", re.S
    )


class LoginError(Exception):
    """
    A login that did not go as it should.

    @ivar kind: what went wrong and at which step (C{sasl-failure@sasl}),
        the key under which it is counted.
    @ivar detail: more for the first few printed (what was read).
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


# --- the options and the users --------------------------------------------------


@dataclass
class Options:
    """
    What to do; see L{parseArguments}.
    """

    certs: Path
    transport: str = "starttls"
    host: str = "127.0.0.1"
    port: int = 5222
    domain: str = "localhost"
    prefix: str = "user"
    users: int = 0
    userOffset: int = 0
    concurrency: int = 10
    duration: float = 10.0
    warmup: float = 2.0
    procs: int = 1
    timeout: float = 10.0
    im: bool = False
    contacts: int = 0
    background: int = 0
    hold: int = 0
    holdSeconds: float = 5.0
    settle: float = 3.0
    pid: int = 0
    json: Path | None = None
    label: str = ""
    keytype: str = "?"
    minted: int = 0
    showErrors: int = 3


def loadMeta(options: Options) -> None:
    """
    Fill the domain, prefix, key type and user count from C{meta.json}.
    """
    meta = json.loads((options.certs / "meta.json").read_text())
    options.domain = meta.get("domain", options.domain)
    options.prefix = meta.get("prefix", options.prefix)
    options.keytype = meta.get("keytype", options.keytype)
    options.minted = int(meta["count"])
    if not options.users:
        options.users = int(meta["count"]) - options.userOffset


_contexts: dict[int, ssl.SSLContext] = {}


def clientContext(options: Options, user: int) -> ssl.SSLContext:
    """
    @return: the TLS context presenting C{user}'s certificate, with the
        ALPN protocol of the transport. The server certificate is not
        checked (a benchmark on loopback).
    """
    context = _contexts.get(user)
    if context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        base = options.certs / "users" / f"{options.prefix}{user}"
        context.load_cert_chain(f"{base}.crt", f"{base}.key")
        if options.transport == "direct-tls":
            context.set_alpn_protocols(["xmpp-client"])
        elif options.transport in ("bosh", "websocket"):
            context.set_alpn_protocols(["http/1.1"])
        _contexts[user] = context
    return context


# --- transports -----------------------------------------------------------------


class Channel:
    """
    One client stream over some transport: what the login steps need of
    it. Incoming XML is appended to L{buffer} as text; L{expect} takes from
    it up to what a pattern matches.

    @ivar stage: the step under way, for the error kinds.
    @ivar stanzaNamespace: the C{xmlns} attribute stanzas carry (web
        transports frame each stanza on its own).
    """

    stanzaNamespace = ""

    def __init__(self, options: Options, user: int) -> None:
        self.options = options
        self.user = user
        self.buffer = ""
        self.taken = ""
        self.stage = "connect"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def header(self) -> str:
        return (
            f"<?xml version='1.0'?><stream:stream to='{self.options.domain}' version='1.0'"
            f" xml:lang='en' xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>"
        )

    def _decode(self, data: bytes) -> str:
        return self._decoder.decode(data)

    async def _connect(self, tls: bool) -> None:
        options = self.options
        if tls:
            self.reader, self.writer = await asyncio.open_connection(
                options.host, options.port, ssl=clientContext(options, self.user),
                server_hostname=options.domain,
            )
        else:
            self.reader, self.writer = await asyncio.open_connection(options.host, options.port)

    async def open(self) -> None:
        """
        Connect and open the stream; its features are read next.
        """
        raise NotImplementedError

    async def send(self, xml: str) -> None:
        raise NotImplementedError

    async def more(self) -> None:
        """
        Wait for more from the server, appended to L{buffer}.

        @raise LoginError: the server closed the connection.
        """
        raise NotImplementedError

    async def restart(self) -> None:
        """
        Open the stream again after SASL success.
        """
        raise NotImplementedError

    async def close(self) -> None:
        """
        Close the stream, wait (briefly) for the server's closing, and cut
        the connection.
        """
        raise NotImplementedError

    async def idle(self) -> None:
        """
        Stay connected and read whatever the server sends (dropped), until
        cancelled or the server closes.
        """
        while True:
            await self.more()
            self.buffer = ""

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()

    def checkErrors(self) -> None:
        """
        @raise LoginError: the buffer holds a stream error or the server's
            closing.
        """
        found = STREAM_ERROR.search(self.buffer)
        if found is not None:
            condition = STREAM_CONDITION.search(found.group(0))
            raise LoginError(
                f"stream-error@{self.stage}:{condition.group(1) if condition else '?'}", found.group(0)[:300]
            )
        if STREAM_END.search(self.buffer):
            raise LoginError(f"closed@{self.stage}", self.buffer[-300:])

    async def expect(self, pattern: re.Pattern[str]) -> re.Match[str]:
        """
        Read until C{pattern} matches, and take the buffer up to the end of
        the match (into L{taken}).

        @raise LoginError: a stream error or closing came first.
        """
        while True:
            found = pattern.search(self.buffer)
            if found is not None:
                self.taken, self.buffer = self.buffer[:found.end()], self.buffer[found.end():]
                return found
            self.checkErrors()
            await self.more()

    async def _readMore(self) -> bytes:
        assert self.reader is not None
        data = await self.reader.read(65536)
        if not data:
            raise LoginError(f"closed@{self.stage}", self.buffer[-300:])
        return data

    async def closeWith(self, footer: str) -> None:
        """
        Send the stream's end and wait (a little) for the server's, then
        drop the connection.
        """
        self.stage = "closing"
        try:
            await self.send(footer)
            async with asyncio.timeout(CLOSE_WAIT):
                while not STREAM_END.search(self.buffer):
                    await self.more()
        except (LoginError, TimeoutError, OSError):
            pass
        finally:
            self.abort()


class TCPChannel(Channel):
    """
    A stream on a TCP connection: STARTTLS, or direct TLS (XEP-0368).
    """

    def __init__(self, options: Options, user: int, direct: bool) -> None:
        super().__init__(options, user)
        self.direct = direct

    async def open(self) -> None:
        await self._connect(self.direct)
        assert self.writer is not None
        self.writer.write(self.header().encode())
        if self.direct:
            return
        self.stage = "features1"
        await self.expect(FEATURES_END)
        features = self.taken
        if "<starttls" not in features:
            raise LoginError("no-starttls@features1")
        self.stage = "proceed"
        self.writer.write(f"<starttls xmlns='{NS_TLS}'/>".encode())
        await self.expect(PROCEED)
        self.stage = "tls"
        await self.writer.start_tls(
            clientContext(self.options, self.user), server_hostname=self.options.domain
        )
        self.buffer = ""
        self.writer.write(self.header().encode())

    async def send(self, xml: str) -> None:
        assert self.writer is not None
        self.writer.write(xml.encode())

    async def more(self) -> None:
        self.buffer += self._decode(await self._readMore())

    async def restart(self) -> None:
        await self.send(self.header())

    async def close(self) -> None:
        await self.closeWith("</stream:stream>")


class WebSocketChannel(Channel):
    """
    A stream on a WebSocket (RFC 7395) over HTTPS: one element per text
    message, C{<open/>} and C{<close/>} framing.
    """

    stanzaNamespace = f" xmlns='{NS_CLIENT}'"

    def __init__(self, options: Options, user: int) -> None:
        super().__init__(options, user)
        self.websocket = WSConnection(ConnectionType.CLIENT)

    def header(self) -> str:
        return f"<open xmlns='{NS_FRAMING}' to='{self.options.domain}' version='1.0' xml:lang='en'/>"

    async def open(self) -> None:
        await self._connect(True)
        assert self.writer is not None
        self.stage = "upgrade"
        self.writer.write(self.websocket.send(Request(
            host=f"{self.options.domain}:{self.options.port}", target=WEBSOCKET_PATH, subprotocols=["xmpp"],
        )))
        accepted = False
        while not accepted:
            self.websocket.receive_data(await self._readMore())
            for event in self.websocket.events():
                if isinstance(event, AcceptConnection):
                    if event.subprotocol != "xmpp":
                        raise LoginError("no-subprotocol@upgrade")
                    accepted = True
                elif isinstance(event, RejectConnection | RejectData):
                    raise LoginError(f"rejected@upgrade:{getattr(event, 'status_code', '?')}")
        self.stage = "features2"
        await self.send(self.header())

    async def send(self, xml: str) -> None:
        assert self.writer is not None
        self.writer.write(self.websocket.send(TextMessage(data=xml)))

    async def more(self) -> None:
        assert self.writer is not None
        self.websocket.receive_data(await self._readMore())
        for event in self.websocket.events():
            if isinstance(event, TextMessage):
                self.buffer += event.data
            elif isinstance(event, Ping):
                self.writer.write(self.websocket.send(event.response()))
            elif isinstance(event, CloseConnection):
                raise LoginError(f"ws-closed@{self.stage}:{event.code}", self.buffer[-300:])

    async def restart(self) -> None:
        await self.send(self.header())

    async def close(self) -> None:
        await self.closeWith(f"<close xmlns='{NS_FRAMING}'/>")


class BOSHChannel(Channel):
    """
    A stream over BOSH (XEP-0124, XEP-0206): each step a POST of a
    C{<body/>} on one keep-alive HTTPS connection; L{more} is an empty
    request, which the server holds until it has something to send.
    """

    stanzaNamespace = f" xmlns='{NS_CLIENT}'"

    def __init__(self, options: Options, user: int) -> None:
        super().__init__(options, user)
        self.rid = random.randrange(1 << 20, 1 << 40)
        self.sid = ""
        self.hostHeader = f"{options.domain}:{options.port}"

    def _body(self, attributes: str, payload: str = "") -> str:
        self.rid += 1
        start = f"<body rid='{self.rid}' sid='{self.sid}' xmlns='{NS_HTTPBIND}'{attributes}"
        return f"{start}>{payload}</body>" if payload else f"{start}/>"

    async def _post(self, body: str) -> str:
        assert self.reader is not None and self.writer is not None
        data = body.encode()
        self.writer.write(
            (
                f"POST {BOSH_PATH} HTTP/1.1\r\nHost: {self.hostHeader}\r\n"
                f"Content-Type: text/xml; charset=utf-8\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data
        )
        try:
            status = await self.reader.readline()
            if not status:
                raise LoginError(f"closed@{self.stage}")
            parts = status.split(None, 2)
            code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            length, chunked = -1, False
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            if chunked:
                content = b""
                while True:
                    size = int((await self.reader.readline()).split(b";")[0], 16)
                    chunk = await self.reader.readexactly(size + 2)
                    if size == 0:
                        break
                    content += chunk[:-2]
            elif length >= 0:
                content = await self.reader.readexactly(length)
            else:
                content = await self.reader.read()
        except (asyncio.IncompleteReadError, ValueError) as e:
            raise LoginError(f"http-broken@{self.stage}", str(e)) from e
        text = content.decode("utf-8", "replace")
        if code != 200:
            raise LoginError(f"http-{code}@{self.stage}", text[:300])
        return text

    def _received(self, response: str) -> dict[str, str]:
        """
        Append a response's payloads to the buffer.

        @return: the attributes of its C{<body/>}.
        @raise LoginError: a terminate.
        """
        start = BODY_START.search(response)
        if start is None:
            raise LoginError(f"not-a-body@{self.stage}", response[:300])
        attributes = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
                      for m in ATTRIBUTE.finditer(start.group(0))}
        if not start.group(1):
            end = response.rfind("</body>")
            self.buffer += response[start.end():end if end >= 0 else len(response)]
        if attributes.get("type") == "terminate":
            self.checkErrors()
            raise LoginError(f"terminate@{self.stage}:{attributes.get('condition', '')}", response[:300])
        return attributes

    async def open(self) -> None:
        await self._connect(True)
        self.stage = "session"
        self.rid += 1
        created = self._received(await self._post(
            f"<body content='text/xml; charset=utf-8' hold='1' rid='{self.rid}'"
            f" to='{self.options.domain}' ver='1.6' wait='{BOSH_WAIT}' xml:lang='en'"
            f" xmpp:version='1.0' xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}'/>"
        ))
        if "sid" not in created:
            raise LoginError("no-sid@session")
        self.sid = created["sid"]
        self.stage = "features2"

    async def send(self, xml: str) -> None:
        self._received(await self._post(self._body("", xml)))

    async def more(self) -> None:
        self._received(await self._post(self._body("")))

    async def restart(self) -> None:
        self._received(await self._post(self._body(
            f" to='{self.options.domain}' xml:lang='en' xmpp:restart='true' xmlns:xmpp='{NS_XBOSH}'"
        )))

    async def close(self) -> None:
        self.stage = "closing"
        try:
            async with asyncio.timeout(CLOSE_WAIT):
                await self._post(self._body(" type='terminate'"))
        except (LoginError, TimeoutError, OSError):
            pass
        finally:
            self.abort()

    async def closeHeld(self) -> None:
        """
        Close a held session, whose connection has an empty request
        waiting on it: the terminate goes over a second connection with the
        same certificate (XEP-0124 allows two requests at once).
        """
        second = BOSHChannel(self.options, self.user)
        second.sid, second.rid, second.stage = self.sid, self.rid, "closing"
        try:
            await second._connect(True)
            await second.close()
        except (OSError, TimeoutError):
            second.abort()
        finally:
            self.abort()


def makeChannel(options: Options, user: int) -> Channel:
    if options.transport == "bosh":
        return BOSHChannel(options, user)
    if options.transport == "websocket":
        return WebSocketChannel(options, user)
    return TCPChannel(options, user, direct=options.transport == "direct-tls")


# --- one login ------------------------------------------------------------------

_resources = 0


async def login(options: Options, user: int, keep: bool) -> tuple[Channel, dict[str, float]]:
    """
    One full login of C{user} (then roster and presence with C{--im}).

    @param keep: leave the session open (hold mode) instead of closing it.
    @return: the channel, and the milliseconds from the start at the end
        of each step.
    @raise LoginError: any step failed or took longer than the timeout.
    """
    global _resources
    _resources += 1
    resourcePart = f"load{os.getpid()}-{_resources}"
    channel = makeChannel(options, user)
    started = time.perf_counter()
    phases: dict[str, float] = {}
    ns = channel.stanzaNamespace

    def mark(name: str) -> None:
        phases[name] = (time.perf_counter() - started) * 1000

    try:
        async with asyncio.timeout(options.timeout):
            await channel.open()
            mark("open")
            channel.stage = "features2"
            await channel.expect(FEATURES_END)
            features = channel.taken
            if "<mechanism>EXTERNAL</mechanism>" not in features:
                raise LoginError("no-external@features2", features[:300])
            channel.stage = "sasl"
            await channel.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
            result = await channel.expect(SASL_RESULT)
            if result.group(1) != "success":
                condition = re.search(r"<([a-z-]+)", result.group(2) or "")
                raise LoginError(f"sasl-failure@sasl:{condition.group(1) if condition else '?'}")
            mark("sasl")
            channel.stage = "features3"
            await channel.restart()
            await channel.expect(FEATURES_END)
            features = channel.taken
            if "<bind" not in features:
                raise LoginError("no-bind@features3", features[:300])
            channel.stage = "bind"
            await channel.send(
                f"<iq{ns} type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>{resourcePart}"
                "</resource></bind></iq>"
            )
            iq = (await channel.expect(iqResult("bind1"))).group(0)
            bound = JID_TEXT.search(iq)
            kind = IQ_TYPE.match(iq)
            expected = f"{options.prefix}{user}@{options.domain}/"
            if kind is None or kind.group(1) != "result" or bound is None or not bound.group(1).startswith(expected):
                raise LoginError("bind-error@bind", iq[:300])
            full = bound.group(1)
            mark("bind")
            if options.im:
                channel.stage = "roster"
                await channel.send(f"<iq{ns} type='get' id='roster1'><query xmlns='{NS_ROSTER}'/></iq>")
                iq = (await channel.expect(iqResult("roster1"))).group(0)
                kind = IQ_TYPE.match(iq)
                if kind is None or kind.group(1) != "result" or "<query" not in iq:
                    raise LoginError("roster-error@roster", iq[:300])
                if iq.count("<item ") < options.contacts:
                    raise LoginError("roster-short@roster", f"{iq.count('<item ')} items")
                mark("roster")
                channel.stage = "presence"
                await channel.send(f"<presence{ns}/>")
                echo = (await channel.expect(presenceFrom(full))).group(0)
                if re.match(r"<presence\b[^>]*\btype=", echo):
                    raise LoginError("presence-error@presence", echo[:300])
                mark("presence")
            phases["total"] = (time.perf_counter() - started) * 1000
            if not keep:
                await channel.close()
            return channel, phases
    except LoginError:
        channel.abort()
        raise
    except TimeoutError as e:
        channel.abort()
        raise LoginError(f"timeout@{channel.stage}", channel.buffer[-300:]) from e
    except (OSError, ssl.SSLError, EOFError) as e:
        channel.abort()
        raise LoginError(f"error@{channel.stage}:{type(e).__name__}", str(e)) from e
    except asyncio.CancelledError:
        channel.abort()
        raise


# --- measuring the server ---------------------------------------------------------


def resultHeader(options: Options, kind: str) -> dict[str, Any]:
    """
    @return: the first keys of a result line, those of the Node.js
        generator's lines.
    """
    return {
        "kind": kind,
        "label": options.label,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": f"{options.host}:{options.port}",
        "transport": options.transport,
        "mode": "xmpp",
        "direct_tls": options.transport == "direct-tls",
        "after": "roster+presence" if options.im else "none",
        "keytype": options.keytype,
    }


def processCPU(pid: int) -> float:
    """
    @return: CPU seconds (utime + stime) of process C{pid}.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processRSS(pid: int) -> int:
    """
    @return: resident memory of process C{pid}, KiB.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def machineCPU() -> tuple[int, int]:
    """
    @return: busy and total clock ticks of all CPUs (C{/proc/stat}).
    """
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def ownCPU() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Snapshot:
    """
    Readings at one moment: the server's CPU and RSS, the machine's ticks,
    the wall clock.
    """

    wall: float
    machine: tuple[int, int]
    serverCPU: float = 0.0
    serverRSS: int = 0

    @classmethod
    def take(cls, pid: int) -> Snapshot:
        snapshot = cls(time.time(), machineCPU())
        if pid:
            snapshot.serverCPU, snapshot.serverRSS = processCPU(pid), processRSS(pid)
        return snapshot


def cpuFigures(pid: int, start: Snapshot, end: Snapshot, generator: float) -> dict[str, Any]:
    """
    @return: the C{cpu} object of the result (the Node.js generator's keys).
    """
    wall = end.wall - start.wall
    busy, total = (end.machine[0] - start.machine[0]), (end.machine[1] - start.machine[1])
    ncpu = os.cpu_count() or 1
    figures: dict[str, Any] = {
        "wall_s": round(wall, 3),
        "ncpu": ncpu,
        "machine_busy_pct": round(100 * busy / max(total, 1) * ncpu, 1),
        "gen_cpu_s": round(generator, 2),
        "gen_cpu_pct": round(100 * generator / wall, 1) if wall else None,
    }
    if pid:
        server = end.serverCPU - start.serverCPU
        figures.update(
            server_cpu_s=round(server, 2),
            server_cpu_pct=round(100 * server / wall, 1) if wall else None,
            server_rss_start_kib=start.serverRSS,
            server_rss_end_kib=end.serverRSS,
        )
        figures["other_cpu_pct"] = round(
            figures["machine_busy_pct"] - figures["server_cpu_pct"] - figures["gen_cpu_pct"], 1
        )
    return figures


def summarize(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    ordered = sorted(latencies)

    def at(p: float) -> float:
        return round(ordered[max(0, min(len(ordered) - 1, int(p / 100 * len(ordered) + 0.5) - 1))], 2)

    return {"p50": at(50), "p90": at(90), "p99": at(99), "max": round(ordered[-1], 2),
            "mean": round(statistics.fmean(ordered), 2)}


# --- the load -------------------------------------------------------------------


@dataclass
class Tally:
    """
    What one load process saw.
    """

    ok: int = 0
    latencies: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    outsideErrors: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    cpu: float = 0.0
    late: int = 0

    def error(self, e: LoginError, counted: bool, limit: int) -> None:
        errors = self.errors if counted else self.outsideErrors
        errors[e.kind] = errors.get(e.kind, 0) + 1
        if len(self.examples) < limit:
            self.examples.append(f"{e.kind} {e.detail}".strip())

    def add(self, other: Tally) -> None:
        self.ok += other.ok
        self.late += other.late
        self.latencies += other.latencies
        for name, values in other.phases.items():
            self.phases.setdefault(name, []).extend(values)
        for mine, theirs in ((self.errors, other.errors), (self.outsideErrors, other.outsideErrors)):
            for kind, count in theirs.items():
                mine[kind] = mine.get(kind, 0) + count
        self.examples += other.examples
        self.cpu += other.cpu


def _reportError(options: Options, tally: Tally, e: LoginError, counted: bool) -> None:
    shown = len(tally.examples)
    tally.error(e, counted, options.showErrors)
    if len(tally.examples) > shown:
        print(f"[{options.label}] login error: {tally.examples[-1][:400]}", file=sys.stderr, flush=True)


async def runLoad(options: Options, concurrency: int, base: int, start: float, end: float) -> Tally:
    """
    Log in C{concurrency} at a time until C{end} (epoch seconds); count
    the logins that complete within C{[start, end]}, and this process's
    CPU over that window.
    """
    tally = Tally()
    loop = asyncio.get_running_loop()
    cpu: list[float] = []
    loop.call_later(max(0.0, start - time.time()), lambda: cpu.append(ownCPU()))
    loop.call_later(max(0.0, end - time.time()), lambda: cpu.append(ownCPU()))
    nextUser = base

    async def worker() -> None:
        nonlocal nextUser
        while time.time() < end:
            user = options.userOffset + 1 + nextUser % options.users
            nextUser += 1
            try:
                _, phases = await login(options, user, keep=False)
            except LoginError as e:
                now = time.time()
                _reportError(options, tally, e, start <= now <= end)
                continue
            now = time.time()
            if start <= now <= end:
                tally.ok += 1
                tally.latencies.append(phases["total"])
                previous = 0.0
                for name, at in phases.items():
                    if name != "total":
                        tally.phases.setdefault(name, []).append(at - previous)
                        previous = at
            elif now > end:
                tally.late += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    while len(cpu) < 2:
        await asyncio.sleep(0.01)
    tally.cpu = cpu[1] - cpu[0]
    return tally


def _loadProcess(options: Options, concurrency: int, base: int, start: float, end: float,
                 results: Any) -> None:
    raiseFileLimit()
    tally = asyncio.run(runLoad(options, concurrency, base, start, end))
    results.put(tally)


async def openSessions(
    options: Options, users: list[int], concurrency: int, onError: Callable[[LoginError], None]
) -> tuple[list[Channel], list[float]]:
    """
    Log in C{users} (each once), C{concurrency} at a time, and keep the
    sessions.

    @return: the open channels and their login latencies.
    """
    channels: list[Channel] = []
    latencies: list[float] = []
    queue = list(reversed(users))

    async def worker() -> None:
        while queue:
            user = queue.pop()
            try:
                channel, phases = await login(options, user, keep=True)
            except LoginError as e:
                onError(e)
                continue
            channels.append(channel)
            latencies.append(phases["total"])
            idle = asyncio.ensure_future(channel.idle())
            idle.add_done_callback(_ignoreResult)
            _idlers[channel] = idle

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return channels, latencies


#: The reading task of every open session, and how many sessions the
#: server closed while they were held.
_idlers: dict[Channel, asyncio.Future[None]] = {}
_dropped = 0


def _ignoreResult(future: asyncio.Future[None]) -> None:
    global _dropped
    if not future.cancelled() and future.exception() is not None:
        _dropped += 1


async def closeSessions(channels: list[Channel], concurrency: int = 50) -> None:
    """
    Close held sessions, C{concurrency} at a time.
    """
    semaphore = asyncio.Semaphore(concurrency)

    async def closeOne(channel: Channel) -> None:
        async with semaphore:
            idle = _idlers.pop(channel, None)
            if idle is not None:
                # Its read must be over before the closing reads.
                idle.cancel()
                await asyncio.gather(idle, return_exceptions=True)
            if isinstance(channel, BOSHChannel):
                await channel.closeHeld()
            else:
                channel.buffer = ""
                await channel.close()

    await asyncio.gather(*(closeOne(c) for c in channels))


def backgroundUsers(options: Options) -> list[int]:
    """
    @return: the users of the background sessions: every other user of
        C{--certs} from the first (then the even ones, when there are more
        sessions than half the users), whatever C{--users} says.
    """
    total = options.minted
    order = list(range(1, total + 1, 2)) + list(range(2, total + 1, 2))
    return [order[i % len(order)] for i in range(options.background)]


async def mainLoad(options: Options) -> dict[str, Any]:
    """
    The load mode: background sessions, then C{--procs} processes of load
    with a common window; the server readings at its two ends.
    """
    background: list[Channel] = []
    backgroundErrors = Tally()
    if options.background:
        background, _ = await openSessions(
            options, backgroundUsers(options), 20,
            lambda e: _reportError(options, backgroundErrors, e, True),
        )
        print(f"[{options.label}] {len(background)} background sessions online", file=sys.stderr, flush=True)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    now = time.time()
    start = now + 1.0 + options.warmup
    end = start + options.duration
    procs = max(1, options.procs)
    processes = []
    for i in range(procs):
        concurrency = options.concurrency // procs + (1 if i < options.concurrency % procs else 0)
        process = context.Process(
            target=_loadProcess, args=(options, concurrency, i * 7919, start, end, results), daemon=True
        )
        process.start()
        processes.append(process)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start - time.time()))
    first, ownFirst = Snapshot.take(options.pid), ownCPU()
    await asyncio.sleep(max(0.0, end - time.time()))
    last, ownLast = Snapshot.take(options.pid), ownCPU()
    tally = Tally()
    for _ in processes:
        tally.add(await loop.run_in_executor(None, results.get))
    for process in processes:
        process.join()
    await closeSessions(background)
    figures = cpuFigures(options.pid, first, last, tally.cpu + ownLast - ownFirst)
    result: dict[str, Any] = {
        **resultHeader(options, "load"),
        "concurrency": options.concurrency,
        "procs": procs,
        "users": options.users,
        "background": len(background),
        "ok": tally.ok,
        "window_s": options.duration,
        "rate_per_s": round(tally.ok / options.duration, 1),
        "latency_ms": summarize(tally.latencies),
        "phase_p50_ms": {name: summarize(v)["p50"] for name, v in tally.phases.items()},
        "errors": tally.errors,
        "errors_outside_window": tally.outsideErrors,
        "background_errors": backgroundErrors.errors,
        "background_dropped": _dropped,
        "completed_after_window": tally.late,
        "cpu": figures,
    }
    if options.pid and tally.ok:
        result["server_cpu_ms_per_login"] = round(1000 * figures["server_cpu_s"] / tally.ok, 3)
    return result


# --- holding sessions -------------------------------------------------------------


async def serverQuiet(pid: int, limit: float = 120.0) -> float:
    """
    Wait until process C{pid} uses at most a tenth of a core over half a
    second, or C{limit} seconds.

    @return: the seconds waited.
    """
    started = time.monotonic()
    while pid and time.monotonic() - started < limit:
        before = processCPU(pid)
        await asyncio.sleep(0.5)
        if processCPU(pid) - before <= 0.05:
            break
    return time.monotonic() - started


async def mainHold(options: Options) -> dict[str, Any]:
    """
    The hold mode: warm the server with a few logins, read its RSS, open
    C{--hold} sessions, let them settle, read it again.
    """
    tally = Tally()
    warm = [options.userOffset + 1 + i for i in range(min(20, options.users))]

    async def warmOne(user: int) -> None:
        try:
            await login(options, user, keep=False)
        except LoginError as e:
            _reportError(options, tally, e, False)

    await asyncio.gather(*(warmOne(u) for u in warm))
    await asyncio.sleep(1)
    before = Snapshot.take(options.pid)
    ownBefore = ownCPU()
    users = [options.userOffset + 1 + i % options.users for i in range(options.hold)]
    opened = time.monotonic()
    channels, latencies = await openSessions(
        options, users, options.concurrency, lambda e: _reportError(options, tally, e, True)
    )
    openSeconds = time.monotonic() - opened
    # The server may still be busy with what the logins set off (presence
    # to the contacts of the last sessions): let it finish first.
    quiet = await serverQuiet(options.pid)
    await asyncio.sleep(options.settle)
    after = Snapshot.take(options.pid)
    dropped = _dropped
    figures = cpuFigures(options.pid, before, after, ownCPU() - ownBefore)
    await asyncio.sleep(max(0.0, options.holdSeconds - options.settle))
    await closeSessions(channels)
    await asyncio.sleep(options.settle)
    afterClose = processRSS(options.pid) if options.pid else 0
    held = len(channels)
    result: dict[str, Any] = {
        **resultHeader(options, "hold"),
        "requested": options.hold,
        "held": held,
        "concurrency": options.concurrency,
        "open_s": round(openSeconds, 2),
        "open_rate_per_s": round(held / openSeconds, 1) if openSeconds else None,
        "server_busy_after_open_s": round(quiet, 2),
        "latency_ms": summarize(latencies),
        "errors": tally.errors,
        "errors_outside_window": tally.outsideErrors,
        "dropped_while_held": dropped,
        "cpu": figures,
    }
    if options.pid:
        result.update(
            rss_before_kib=before.serverRSS,
            rss_after_kib=after.serverRSS,
            rss_after_close_kib=afterClose,
        )
        if held:
            result["kib_per_session"] = round((after.serverRSS - before.serverRSS) / held, 2)
    return result


# --- the command ----------------------------------------------------------------


def raiseFileLimit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parseArguments(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="certificate-login load over STARTTLS, direct TLS, BOSH or WebSocket",
    )
    parser.add_argument("--certs", type=Path, required=True, help="mint_certs.py output")
    parser.add_argument("--transport", choices=TRANSPORTS, default="starttls")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5222, help="the transport's port (HTTPS for the web ones)")
    parser.add_argument("--users", type=int, default=0, help="use users 1..M (default all in --certs)")
    parser.add_argument("--user-offset", type=int, default=0, help="start after user K")
    parser.add_argument("-c", "--concurrency", type=int, default=10)
    parser.add_argument("-t", "--duration", type=float, default=10.0, help="counted seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before, not counted")
    parser.add_argument("--procs", type=int, default=1, help="client processes sharing -c")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per login")
    parser.add_argument("--im", action="store_true", help="roster get and initial presence after bind")
    parser.add_argument("--contacts", type=int, default=0, help="with --im: roster items each must have")
    parser.add_argument("--background", type=int, default=0,
                        help="sessions kept online during the load (every other user)")
    parser.add_argument("--hold", type=int, default=0, help="open N sessions, report KiB per session")
    parser.add_argument("--hold-seconds", type=float, default=5.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--pid", type=int, default=0, help="the server process")
    parser.add_argument("--json", type=Path, help="append the result line here")
    parser.add_argument("--label", default="")
    parser.add_argument("--show-errors", type=int, default=3, help="errors printed in full")
    args = parser.parse_args(argv)
    options = Options(
        certs=args.certs, transport=args.transport, host=args.host, port=args.port, users=args.users,
        userOffset=args.user_offset, concurrency=args.concurrency, duration=args.duration,
        warmup=args.warmup, procs=args.procs, timeout=args.timeout, im=args.im, contacts=args.contacts,
        background=args.background, hold=args.hold, holdSeconds=args.hold_seconds, settle=args.settle,
        pid=args.pid, json=args.json, label=args.label or args.transport, showErrors=args.show_errors,
    )
    loadMeta(options)
    return options


def run(options: Options) -> dict[str, Any]:
    """
    Run the load or hold described by C{options}.

    @return: the result object (also printed and appended to C{--json}).
    """
    raiseFileLimit()
    main: Callable[[Options], Coroutine[Any, Any, dict[str, Any]]] = mainHold if options.hold else mainLoad
    result = asyncio.run(main(options))
    line = json.dumps(result)
    if options.json is not None:
        with options.json.open("a") as f:
            f.write(line + "\n")
    print(line, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    run(parseArguments(argv))
    return 0


__all__ = ["Options", "LoginError", "login", "main", "processCPU", "processRSS", "run"]


if __name__ == "__main__":
    raise SystemExit(main())
