# -*- test-case-name: tests.test_c2s -*-
"""
The line between a transport and stream negotiation.

A transport (L{xmppcert.transports}) turns a connection into stream events
and implements L{IStreamChannel}; the negotiation
(L{xmppcert.c2s.negotiation}) implements L{IStreamReceiver} and talks to the
peer only through its channel. Neither knows the other's internals: the
negotiation never sees a socket or a TLS context, the transport never sees
SASL, sessions or the server.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface


class IStreamChannel(Interface):
    """
    One client stream as its transport carries it.
    """

    secure = Attribute("C{True} once the connection is encrypted (direct TLS, or after STARTTLS).")
    canStartTLS = Attribute("C{True} when L{startTLS} may be called: a transport that can upgrade, not yet secure.")
    listener = Attribute("The kind of listener, for metrics: C{'starttls'} or C{'direct_tls'}.")
    transportName = Attribute("The transport's name for session lists: C{'tcp'}, ...")
    closing = Attribute("C{True} once our closing tag is out: nothing more is sent or acted on.")
    thisEntity = Attribute("The served domain our header (or an early stream error) names.")
    sid = Attribute("The id our next header carries (also the header before a stream error).")

    def peerLabel() -> str:
        """
        @return: the peer's C{host:port} for log lines, C{"?"} when unknown.
        """

    def peerAddress() -> str:
        """
        @return: the peer's C{host:port}, an IPv6 host in brackets; C{""}
            when unknown.
        """

    def peerHost() -> str | None:
        """
        @return: the peer's IP address, or C{None} when it has none or is gone.
        """

    def peerChain() -> tuple[Any, ...]:
        """
        @return: the certificate chain the peer presented in the TLS
            handshake (leaf first, C{cryptography} certificates), empty when
            none was or TLS is not up. The negotiation reads it once per
            stream, when TLS is up, and keeps it for the stream's life.
        """

    def openStream(thisEntity: Any, otherEntity: Any) -> None:
        """
        Send our stream header (RFC 6120 section 4.7) for a header received.
        """

    def send(obj: Any) -> None:
        """
        Send an element or whitespace; dropped once L{closing}.
        """

    def sendFooter() -> None:
        """
        Send our closing tag (once).
        """

    def sendStreamError(streamError: Any) -> None:
        """
        Send a stream error (after our header if none went out yet), our
        closing tag, and close.
        """

    def loseConnection() -> None:
        """
        Close, cutting the connection if the peer does not finish in time.
        """

    def abortConnection() -> None:
        """
        Cut the connection at once, saying nothing.
        """

    def reset() -> None:
        """
        Start a new stream on the same connection (after STARTTLS or SASL
        success); data pipelined across the restart is refused.
        """

    def startTLS() -> None:
        """
        Start TLS now (after C{<proceed/>} went out); only when L{canStartTLS}.
        """

    def streamBound() -> None:
        """
        A resource is bound: the stream is authenticated.
        """


class IStreamReceiver(Interface):
    """
    What a transport tells the stream negotiation.
    """

    def channelOpened(channel: IStreamChannel) -> None:
        """
        A peer connected; nothing was read yet.
        """

    def streamStarted(rootElement: Any) -> None:
        """
        The peer's stream header arrived (again, after a restart).
        """

    def elementReceived(element: Any) -> None:
        """
        A top-level element (stanza or negotiation element) arrived.
        """

    def streamClosing() -> None:
        """
        Our closing tag is out: the stream is over for us.
        """

    def channelClosed() -> None:
        """
        The connection is gone.
        """


__all__ = ["IStreamChannel", "IStreamReceiver"]
