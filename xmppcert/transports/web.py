# -*- test-case-name: tests.test_transports_http -*-
"""
The site of the HTTPS listener, put together: BOSH at C{/http-bind},
WebSocket at C{/xmpp-websocket}, host-meta under C{/.well-known/}.

Each transport is its own module; this one only mounts them, so that a new
web transport is one more line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web import resource, server

from xmppcert.config import HTTPConfig
from xmppcert.transports.bosh import BOSHResource
from xmppcert.transports.http import BOSH_PATH, WEBSOCKET_PATH, HostMeta, XMPPSite
from xmppcert.transports.websocket import WebSocketResource

#: Seconds an HTTPS connection may stay idle between requests (a held BOSH
#: request does not count as idle).
HTTP_IDLE_TIMEOUT = 30


class _Root(resource.Resource):
    """
    The root: nothing but the mounted children; anything else is 404.
    """

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"xmppcert: BOSH at /http-bind, WebSocket at /xmpp-websocket\n"


@dataclass
class WebSite:
    """
    The HTTPS site and the transports mounted on it.

    @ivar site: the protocol factory to wrap in TLS and listen with.
    @ivar bosh: the BOSH resource (its sessions end at shutdown).
    @ivar websocket: the WebSocket resource.
    """

    site: XMPPSite
    bosh: BOSHResource
    websocket: WebSocketResource


def makeWebSite(
    newReceiver: Callable[[], Any],
    clock: IReactorTime,
    settings: Callable[[], HTTPConfig],
    stanzaLimits: Callable[[], tuple[int, int]],
    reactor: Any = None,
) -> WebSite:
    """
    @param newReceiver: makes the stream negotiation of a new stream.
    @param settings: returns the live C{[http]} settings.
    @param stanzaLimits: returns the live C{(max_stanza_size,
        max_stanza_elements)}.
    @param reactor: for the site's connection timeouts.
    """
    bosh = BOSHResource(newReceiver, clock, settings, stanzaLimits)
    websocket = WebSocketResource(newReceiver, clock, settings, stanzaLimits)
    root = _Root()
    root.putChild(BOSH_PATH, bosh)
    root.putChild(WEBSOCKET_PATH, websocket)
    wellKnown = resource.Resource()
    wellKnown.putChild(b"host-meta", HostMeta(settings, asJSON=False))
    wellKnown.putChild(b"host-meta.json", HostMeta(settings, asJSON=True))
    root.putChild(b".well-known", wellKnown)
    kwargs: dict[str, Any] = {} if reactor is None else {"reactor": reactor}
    site = XMPPSite(root, settings, **kwargs)
    site.timeOut = HTTP_IDLE_TIMEOUT
    return WebSite(site=site, bosh=bosh, websocket=websocket)


__all__ = ["HTTP_IDLE_TIMEOUT", "WebSite", "makeWebSite"]
