# -*- test-case-name: tests.test_c2s -*-
"""
The receiving side of a client stream (RFC 6120), independent of its
transport.

Twisted and wokkel only ship the initiating side of these. The shape follows
Twisted's C{TLSInitiatingInitializer} and wokkel's
C{ListenComponentAuthenticator}: a negotiation checks headers and sends
features; each negotiable feature is a small object of its own. Once a
resource is bound, stanzas are stamped, routed through the
L{SessionManager<xmppcert.sessions.SessionManager>}, or handed to the
stream's wokkel handlers.

  - L{xmppcert.c2s.channel}: L{IStreamChannel}, what a transport offers the
    negotiation, and L{IStreamReceiver}, what it tells it;
  - L{xmppcert.c2s.server}: L{C2SServer}, what all client streams share;
  - L{xmppcert.c2s.negotiation}: L{C2SAuthenticator}, header rules,
    features, timers;
  - L{xmppcert.c2s.features}: STARTTLS, SASL and bind as the receiving
    entity;
  - L{xmppcert.c2s.bound}: the bound stream (stanza checks, routing,
    replies) and the L{StreamContext} handler factories get.

Transports live in L{xmppcert.transports}; TCP's L{C2SStream} and
L{CLOSE_GRACE} are re-exported here for existing importers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xmppcert.c2s.bound import (
    BoundStream,
    LocalStream,
    OnFirstRequest,
    StreamContext,
    StreamHandlers,
)
from xmppcert.c2s.channel import IStreamChannel, IStreamReceiver
from xmppcert.c2s.features import ReceivingBindFeature, ReceivingSASLFeature, ReceivingTLSFeature
from xmppcert.c2s.negotiation import C2SAuthenticator
from xmppcert.c2s.server import C2SServer, HandlerFactory

if TYPE_CHECKING:
    from xmppcert.transports.tcp import CLOSE_GRACE, C2SStream


def __getattr__(name: str) -> Any:
    # The TCP transport imports this package (for the channel interface):
    # its names are looked up when first asked for, not at import.
    if name in ("C2SStream", "CLOSE_GRACE"):
        from xmppcert.transports import tcp

        return getattr(tcp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLOSE_GRACE",
    "BoundStream",
    "C2SAuthenticator",
    "C2SServer",
    "C2SStream",
    "HandlerFactory",
    "IStreamChannel",
    "IStreamReceiver",
    "LocalStream",
    "OnFirstRequest",
    "ReceivingBindFeature",
    "ReceivingSASLFeature",
    "ReceivingTLSFeature",
    "StreamContext",
    "StreamHandlers",
]
