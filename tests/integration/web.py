"""
Independent web clients for the integration tests: BOSH over the standard
library's HTTPS client, WebSocket with the C{websockets} library. Both
present a client certificate when given one, and read exactly what the
server answers.
"""

from __future__ import annotations

import base64
import http.client
import re
import ssl
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as websocketConnect

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"


def webContext(caFile: Path, certificate: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """
    A TLS context that trusts the test server and presents C{certificate}
    (certificate file, key file) when the server asks for one.
    """
    context = ssl.create_default_context(cafile=str(caFile))
    context.set_alpn_protocols(["http/1.1"])
    if certificate is not None:
        context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


def q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


class HTTPSConnection:
    """
    One keep-alive HTTPS connection to the server.
    """

    def __init__(self, port: int, context: ssl.SSLContext, timeout: float = 30) -> None:
        self.connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=timeout)

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        allHeaders = {"Content-Type": "text/xml; charset=utf-8"}
        allHeaders.update(headers or {})
        self.connection.request("POST", path, body=body, headers=allHeaders)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        self.connection.request(method, path, body=body, headers=headers or {})
        response = self.connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def close(self) -> None:
        self.connection.close()


class BOSHClient:
    """
    A BOSH client (XEP-0124, XEP-0206) that sends one request at a time
    over one HTTPS connection, unless told otherwise.

    @ivar rid: the next request id.
    @ivar sid: the session id, once created.
    """

    def __init__(self, port: int, context: ssl.SSLContext, origin: str | None = None) -> None:
        self.port = port
        self.context = context
        self.connection = HTTPSConnection(port, context)
        self.rid = 1_000_000
        self.sid: str | None = None
        self.origin = origin
        self.responses: list[bytes] = []

    def headers(self) -> dict[str, str]:
        return {"Origin": self.origin} if self.origin else {}

    def body(
        self, payload: str = "", rid: int | None = None, extra: dict[str, str] | None = None, **attributes: str
    ) -> bytes:
        if rid is None:
            rid = self.rid
            self.rid += 1
        attrs = {"rid": str(rid)}
        if self.sid is not None:
            attrs["sid"] = self.sid
        attrs.update(attributes)
        # Names that are no Python identifiers (xml:lang, xmpp:version).
        attrs.update(extra or {})
        rendered = " ".join(f"{k}='{v}'" for k, v in attrs.items())
        return (
            f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' {rendered}>{payload}</body>"
        ).encode()

    def post(self, data: bytes, connection: HTTPSConnection | None = None) -> tuple[int, bytes]:
        status, _, response = (connection or self.connection).post("/http-bind", data, self.headers())
        self.responses.append(response)
        return status, response

    def exchange(
        self,
        payload: str = "",
        connection: HTTPSConnection | None = None,
        extra: dict[str, str] | None = None,
        **attributes: str,
    ) -> ElementTree.Element:
        status, response = self.post(self.body(payload, extra={**attributes, **(extra or {})}), connection)
        assert status == 200, (status, response)
        return ElementTree.fromstring(response)

    def create(self, to: str = "localhost", wait: int = 5, hold: int = 1) -> ElementTree.Element:
        body = self.exchange(
            "", to=to, wait=str(wait), hold=str(hold), ver="1.11", extra={"xml:lang": "en", "xmpp:version": "1.0"}
        )
        assert body.get("type") != "terminate", ElementTree.tostring(body)
        self.sid = body.get("sid")
        return body

    def features(self, body: ElementTree.Element) -> ElementTree.Element:
        """
        The stream features of a response, asking again (an empty request)
        while the server has not sent them yet.
        """
        for _ in range(5):
            found = body.find(q(NS_STREAMS, "features"))
            if found is not None:
                return found
            body = self.exchange()
        raise AssertionError("no stream features")

    def until(self, path: str, body: ElementTree.Element | None = None, attempts: int = 5) -> ElementTree.Element:
        """
        The first element matching C{path} (ElementTree syntax) in this or
        the next responses.
        """
        for _ in range(attempts):
            if body is not None:
                found = body.find(path)
                if found is not None:
                    return found
                if body.get("type") == "terminate":
                    raise AssertionError(f"terminated: {ElementTree.tostring(body)!r}")
            body = self.exchange()
        raise AssertionError(f"never received {path}")

    def loginExternal(self, to: str = "localhost") -> str:
        """
        Create a session, log in with EXTERNAL, restart, bind; return the
        full JID.
        """
        features = self.features(self.create(to))
        mechanisms = [m.text for m in features.iter(q(NS_SASL, "mechanism"))]
        assert "EXTERNAL" in mechanisms, mechanisms
        body = self.exchange(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        self.until(q(NS_SASL, "success"), body)
        return self._restartAndBind(to)

    def loginPlain(self, user: str, password: str, to: str = "localhost") -> str:
        features = self.features(self.create(to))
        assert "PLAIN" in [m.text for m in features.iter(q(NS_SASL, "mechanism"))]
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        body = self.exchange(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        self.until(q(NS_SASL, "success"), body)
        return self._restartAndBind(to)

    def _restartAndBind(self, to: str) -> str:
        body = self.exchange("", to=to, extra={"xmpp:restart": "true", "xml:lang": "en"})
        features = self.features(body)
        assert features.find(q(NS_BIND, "bind")) is not None
        body = self.exchange(
            f"<iq xmlns='{NS_CLIENT}' type='set' id='bind1'><bind xmlns='{NS_BIND}'>"
            "<resource>web</resource></bind></iq>"
        )
        found = self.until(f"{q(NS_CLIENT, 'iq')}/{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}", body)
        assert found.text
        return found.text

    def terminate(self) -> None:
        try:
            self.exchange(f"<presence xmlns='{NS_CLIENT}' type='unavailable'/>", type="terminate")
        finally:
            self.connection.close()


class WebSocketClient:
    """
    An XMPP over WebSocket client (RFC 7395) with the websockets library.
    """

    def __init__(
        self,
        port: int,
        context: ssl.SSLContext,
        origin: str | None = None,
        subprotocols: list[str] | None = None,
        maxSize: int | None = 2**22,
    ) -> None:
        kwargs: dict[str, Any] = {
            "ssl": context,
            "subprotocols": ["xmpp"] if subprotocols is None else subprotocols,
            "open_timeout": 15,
            "max_size": maxSize,
        }
        if origin is not None:
            kwargs["origin"] = origin
        self.ws: ClientConnection = websocketConnect(f"wss://localhost:{port}/xmpp-websocket", **kwargs)

    def send(self, data: str) -> None:
        self.ws.send(data)

    def receive(self, timeout: float = 10) -> ElementTree.Element:
        message = self.ws.recv(timeout=timeout)
        assert isinstance(message, str), message
        return ElementTree.fromstring(message)

    def until(self, tag: str, timeout: float = 10) -> ElementTree.Element:
        deadline = time.monotonic() + timeout
        while True:
            element = self.receive(max(0.1, deadline - time.monotonic()))
            if element.tag == tag:
                return element

    def open(self, to: str = "localhost") -> ElementTree.Element:
        self.send(f"<open xmlns='{NS_FRAMING}' to='{to}' version='1.0' xml:lang='en'/>")
        opened = self.receive()
        assert opened.tag == q(NS_FRAMING, "open"), ElementTree.tostring(opened)
        return self.until(q(NS_STREAMS, "features"))

    def loginExternal(self, to: str = "localhost") -> str:
        features = self.open(to)
        assert "EXTERNAL" in [m.text for m in features.iter(q(NS_SASL, "mechanism"))]
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        self.until(q(NS_SASL, "success"))
        return self._restartAndBind(to)

    def loginPlain(self, user: str, password: str, to: str = "localhost") -> str:
        self.open(to)
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        self.until(q(NS_SASL, "success"))
        return self._restartAndBind(to)

    def _restartAndBind(self, to: str) -> str:
        self.open(to)
        self.send(
            f"<iq xmlns='{NS_CLIENT}' type='set' id='bind1'><bind xmlns='{NS_BIND}'>"
            "<resource>ws</resource></bind></iq>"
        )
        result = self.until(q(NS_CLIENT, "iq"))
        found = result.find(f"{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}")
        assert found is not None and found.text, ElementTree.tostring(result)
        return found.text

    def close(self) -> None:
        try:
            self.send(f"<close xmlns='{NS_FRAMING}'/>")
        except Exception:
            pass
        self.ws.close()


def message(to: str, text: str) -> str:
    return f"<message xmlns='{NS_CLIENT}' to='{to}' type='chat' id='m{abs(hash(text))}'><body>{text}</body></message>"


def bodyText(element: ElementTree.Element) -> str | None:
    found = element.find(q(NS_CLIENT, "body"))
    return None if found is None else found.text


def streamErrorCondition(element: ElementTree.Element) -> str | None:
    """
    The condition of a C{<stream:error/>} element, or of one inside it.
    """
    error = element if element.tag == q(NS_STREAMS, "error") else element.find(q(NS_STREAMS, "error"))
    if error is None:
        return None
    for child in error:
        match = re.fullmatch(r"\{urn:ietf:params:xml:ns:xmpp-streams\}(.+)", child.tag)
        if match and match.group(1) != "text":
            return match.group(1)
    return None
