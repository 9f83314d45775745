"""
A deliberately dumb XMPP client over a plain socket, for sending what no real
client would send and reading exactly what the server answers.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
import time
from pathlib import Path

HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='{to}' version='1.0'>"
)


class RawStream:
    """
    Send bytes, read until a pattern shows up or the server closes.
    """

    def __init__(self, port: int, timeout: float = 10) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.received = b""
        self.closed = False

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def header(self, to: str = "localhost") -> None:
        self.send(HEADER.format(to=to))

    def readUntil(self, pattern: bytes | str, timeout: float | None = None) -> bytes:
        """
        @return: everything received so far once C{pattern} (a regular
            expression) matches it.
        @raise AssertionError: the pattern never showed up.
        """
        if isinstance(pattern, str):
            pattern = pattern.encode("utf-8")
        deadline = time.monotonic() + (timeout or self.timeout)
        while not re.search(pattern, self.received, re.S):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                raise AssertionError(f"never received {pattern!r}; got {self.received!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                self.closed = True
            self.received += chunk
        return self.received

    def waitClosed(self, timeout: float | None = None) -> bytes:
        """
        Read until the server closes the connection.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"server did not close; got {self.received!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                chunk = b""
            if not chunk:
                self.closed = True
            self.received += chunk
        return self.received

    def starttls(
        self, caFile: Path, certFile: Path | None = None, keyFile: Path | None = None, to: str = "localhost"
    ) -> bytes:
        """
        Negotiate STARTTLS (presenting a client certificate when given) and
        restart the stream.

        @return: the new features.
        """
        self.header(to)
        self.readUntil(b"</stream:features>")
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.readUntil(b"<proceed")
        context = ssl.create_default_context(cafile=str(caFile))
        if certFile is not None:
            context.load_cert_chain(str(certFile), str(keyFile))
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")
        self.received = b""
        self.header(to)
        return self.readUntil(b"</stream:features>")

    def authExternal(self, authzid: str | None = None) -> bytes:
        """
        Send EXTERNAL with C{=} (no authzid) or the base64 authzid; return
        the success or failure.
        """
        data = "=" if authzid is None else base64.b64encode(authzid.encode()).decode()
        self.received = b""
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>{data}</auth>")
        return self.readUntil(b"<success|<failure.*?</failure>")

    def bind(self, resource: str | None = None) -> bytes:
        """
        Restart after SASL success and bind; return the bind answer.
        """
        self.received = b""
        self.header()
        self.readUntil(b"</stream:features>")
        self.received = b""
        inner = f"<resource>{resource}</resource>" if resource else ""
        self.send(
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            f"{inner}</bind></iq>"
        )
        return self.readUntil(b"</iq>")

    def authPlain(self, user: str, password: str) -> bytes:
        """
        Send a PLAIN auth and return what came back (success or failure).
        """
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.received = b""
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        return self.readUntil(b"<success|<failure.*?</failure>")

    def login(self, caFile: Path, user: str, password: str, resource: str = "raw") -> None:
        """
        STARTTLS, PLAIN, restart and bind.
        """
        self.starttls(caFile)
        assert b"<success" in self.authPlain(user, password)
        self.bind(resource)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
