"""
slixmpp clients for the integration tests: connect, log in, wait.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any

import slixmpp

# slixmpp logs stream errors and failed logins at error level; the tests
# assert on them instead.
logging.getLogger("slixmpp").setLevel(logging.CRITICAL)


class LoginFailed(Exception):
    pass


class Client(slixmpp.ClientXMPP):
    """
    A slixmpp client that trusts the test server's certificate and records
    what it receives.
    """

    def __init__(
        self,
        jid: str,
        password: str,
        caFile: Path,
        certfile: str | None = None,
        keyfile: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(jid, password, **kwargs)
        self.ca_certs = caFile
        # A client certificate for SASL EXTERNAL, presented in the TLS handshake.
        self.certfile = certfile
        self.keyfile = keyfile
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.presences: asyncio.Queue[Any] = asyncio.Queue()
        self.started: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        self.ended: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        self.streamErrors: list[str] = []
        self.add_event_handler("session_start", self._onStart)
        self.add_event_handler("failed_all_auth", self._onFailed)
        self.add_event_handler("disconnected", self._onDisconnected)
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("presence", lambda p: self.presences.put_nowait(p))
        self.add_event_handler("stream_error", lambda e: self.streamErrors.append(e["condition"]))

    def _onStart(self, event: Any) -> None:
        if not self.started.done():
            self.started.set_result(None)

    def _onFailed(self, event: Any) -> None:
        if not self.started.done():
            self.started.set_exception(LoginFailed("authentication failed"))

    def _onDisconnected(self, event: Any) -> None:
        if not self.started.done():
            self.started.set_exception(LoginFailed("disconnected before session start"))
        if not self.ended.done():
            self.ended.set_result(None)


async def login(
    server: Any,
    jid: str,
    password: str = "",
    *,
    directTLS: bool = False,
    mechanism: str | None = None,
    timeout: float = 15,
    **kwargs: Any,
) -> Client:
    """
    Connect and log in; fail with L{LoginFailed} when the login fails.
    """
    if mechanism is not None:
        kwargs["sasl_mech"] = mechanism
    client = Client(jid, password, server.caFile, **kwargs)
    client.enable_plaintext = False
    client.enable_direct_tls = directTLS
    client.enable_starttls = not directTLS
    client.connect(host="127.0.0.1", port=server.directTLSPort if directTLS else server.starttlsPort)
    try:
        await asyncio.wait_for(asyncio.shield(client.started), timeout)
    except BaseException:
        client.disconnect()
        raise
    return client


async def logout(client: Client) -> None:
    client.disconnect()
    try:
        await asyncio.wait_for(asyncio.shield(client.ended), 10)
    except TimeoutError:
        client.abort()


def clientContext(caFile: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(caFile))
    context.set_alpn_protocols(["xmpp-client"])
    return context
