# -*- test-case-name: tests.test_c2s -*-
"""
Stream negotiation as the receiving entity (RFC 6120), over any transport:
header rules, the sequence of features (STARTTLS where the transport can
do it, SASL, bind), the timers on unauthenticated streams and on the
certificate's expiry, then the hand-over to the bound stream
(L{xmppcert.c2s.bound}).

L{C2SAuthenticator} is the stream's L{IStreamReceiver}: its transport tells
it of the connection, the headers, the elements and the close, and it
answers through the transport's L{IStreamChannel}.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from cryptography import x509
from twisted.internet import defer, task
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python import failure
from twisted.words.protocols.jabber import error, jid, xmlstream
from twisted.words.xish import domish
from zope.interface import implementer

from xmppcert import _log
from xmppcert.c2s.bound import BoundStream, LocalStream, StreamContext, StreamHandlers
from xmppcert.c2s.channel import IStreamChannel, IStreamReceiver
from xmppcert.c2s.features import (
    NS_BIND,
    ReceivingBindFeature,
    ReceivingSASLFeature,
    ReceivingTLSFeature,
)
from xmppcert.c2s.server import C2SServer
from xmppcert.cred import Account
from xmppcert.jids import parseJID
from xmppcert.limits import AddressSlot
from xmppcert.sasl import NS_SASL, SASLFailure
from xmppcert.sessions import Session
from xmppcert.store.interfaces import STORE_FAILURES

log = Logger(observer=_log.observer, namespace="xmppcert.c2s")

NS_CLIENT = "jabber:client"
NS_STREAMS = xmlstream.NS_STREAMS


@implementer(IStreamReceiver)
class C2SAuthenticator:
    """
    Drives one client stream from connection to bound session.

    @ivar channel: the stream's transport, once L{channelOpened} ran.
    @ivar state: C{"tls"}, C{"sasl"}, C{"bind"} or C{"bound"}.
    @ivar secure: whether the channel is encrypted.
    @ivar peerChain: the peer's certificate chain, read from the channel
        once TLS is up and kept until the login.
    @ivar domain: the served domain the client addressed.
    @ivar account: set by SASL.
    @ivar session: set by resource binding.
    @ivar boundStream: the L{BoundStream}, once a resource is bound.
    """

    namespace = NS_CLIENT
    channel: Any = None

    def __init__(self, server: C2SServer) -> None:
        self.server = server
        self.state = "tls"
        self.secure = False
        self.peerChain: tuple[x509.Certificate, ...] = ()
        self.domain = ""
        self.account: Account | None = None
        self.mechanism = ""
        self.session: Session | None = None
        self.connected = False
        self.boundStream: BoundStream | None = None
        self.tlsFeature = ReceivingTLSFeature(self)
        self.saslFeature = ReceivingSASLFeature(self)
        self.bindFeature = ReceivingBindFeature(self)
        self._timeout: IDelayedCall | None = None
        self._handshakeTimeout: IDelayedCall | None = None
        self._addressSlot: AddressSlot | None = None
        self._expiry: IDelayedCall | None = None
        #: From the session registry when SASL started; see L{bound}.
        self.revocationMark = 0
        self._keepalive: task.LoopingCall | None = None
        #: The listener kind, for metrics: C{"starttls"} or C{"direct_tls"}.
        self.listener = "starttls"
        #: The labels the bound session was counted under (metrics).
        self._sessionLabels: tuple[str, str] | None = None
        #: Set when the connection was refused at once: nothing more is done.
        self._refused = False
        #: Fires when the connection is gone.
        self.closed: defer.Deferred[None] = defer.Deferred()

    @property
    def handlers(self) -> StreamHandlers | None:
        return self.boundStream.handlers if self.boundStream is not None else None

    @property
    def local(self) -> LocalStream | None:
        return self.boundStream.local if self.boundStream is not None else None

    # --- connection lifecycle ------------------------------------------------

    def channelOpened(self, channel: IStreamChannel) -> None:
        self.channel = channel
        host = channel.peerHost()
        if host is not None:
            # Before any other work (for direct TLS, before the handshake):
            # one address may not hold every socket with idle connections.
            self._addressSlot = self.server.addressLimiter.acquire(host)
            if self._addressSlot is None:
                self._refused = True
                channel.abortConnection()
                return
        # Anything sent before the client's header (an error) must still
        # carry a domain we serve.
        channel.thisEntity = jid.internJID(self.server.config.domains[0])
        self.connected = True
        self.server.streams.add(self)
        if channel.secure:
            # Direct TLS (XEP-0368): the handshake precedes the stream header.
            self.secure = True
            self.state = "sasl"
        self.listener = channel.listener
        self.server.metrics.connectionOpened(self.listener)
        self.armHandshakeTimeout()
        self._timeout = self.server.clock.callLater(
            self.server.config.limits.auth_timeout, self._authTimedOut
        )

    def armHandshakeTimeout(self) -> None:
        """
        Give the peer C{limits.handshake_timeout} seconds to finish any TLS
        handshake and send its stream header (idle connections, a header
        sent a byte at a time, a stalled handshake).
        """
        self._cancelHandshakeTimeout()
        self._handshakeTimeout = self.server.clock.callLater(
            self.server.config.limits.handshake_timeout, self._handshakeTimedOut
        )

    def _cancelHandshakeTimeout(self) -> None:
        if self._handshakeTimeout is not None and self._handshakeTimeout.active():
            self._handshakeTimeout.cancel()
        self._handshakeTimeout = None

    def _handshakeTimedOut(self) -> None:
        self._handshakeTimeout = None
        log.info(
            "Dropping the connection from {peer}: no TLS handshake and stream header within {timeout:g} s",
            peer=self.channel.peerLabel(),
            timeout=self.server.config.limits.handshake_timeout,
        )
        # Mid-handshake or mid-header nothing can be said to the peer.
        self.channel.abortConnection()

    def releaseAddressSlot(self) -> None:
        """
        Stop counting this connection against its address's limit of
        unauthenticated connections (idempotent).
        """
        slot, self._addressSlot = self._addressSlot, None
        if slot is not None:
            slot.release()

    def _authTimedOut(self) -> None:
        self._timeout = None
        if self.state != "bound":
            log.info("Closing stream from {peer}: not authenticated in time", peer=self.channel.peerLabel())
            self.streamError("connection-timeout")

    @property
    def active(self) -> bool:
        """
        Connected and not closing: what the peer sends is still acted on.
        """
        return self.connected and not getattr(self.channel, "closing", False)

    def streamClosing(self) -> None:
        """
        Our closing tag is out: the session ends now, not when the peer
        gets round to closing the connection (so nothing is routed to it).
        """
        self._release()

    def _release(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None
        self._cancelHandshakeTimeout()
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        labels, self._sessionLabels = self._sessionLabels, None
        if labels is not None:
            self.server.metrics.sessionEnded(*labels)
        if self.session is not None:
            # Idempotent: unbind ignores a session it no longer holds.
            self.server.sessions.unbind(self.session)
            self.session.closed = True

    def channelClosed(self) -> None:
        if self._refused:
            return
        self.server.metrics.connectionClosed(self.listener)
        self.connected = False
        self.server.streams.discard(self)
        self.releaseAddressSlot()
        self._release()
        if self.boundStream is not None:
            self.boundStream.lost()
        self.closed.callback(None)

    def streamError(self, condition: str, text: str | None = None) -> None:
        """
        Send a stream error and close (RFC 6120 section 4.9).
        """
        if not self.active:
            return
        if condition not in ("system-shutdown", "conflict", "connection-timeout", "reset"):
            log.warn(
                "Stream error {condition} to {peer}: {text}",
                condition=condition,
                peer=self.channel.peerLabel(),
                text=text or "",
            )
        self.channel.sendStreamError(error.StreamError(condition, text=text))

    # --- stream header ------------------------------------------------------

    def streamStarted(self, rootElement: domish.Element) -> None:
        self._cancelHandshakeTimeout()
        # Before the checks: the header that precedes an error has an id too.
        self.channel.sid = base64.b32encode(os.urandom(10)).decode("ascii").lower()
        domain = self._checkHeader(rootElement)
        if domain is None:
            return
        otherEntity = None
        sender = rootElement.getAttribute("from")
        if sender:
            # RFC 6120 section 4.7.2: answer to the 'from' the client gave.
            try:
                otherEntity = parseJID(sender)
            except jid.InvalidFormat:
                pass
        self.channel.openStream(jid.internJID(domain), otherEntity)
        d = defer.ensureDeferred(self._sendFeatures())
        d.addErrback(self._featuresFailed)

    async def _sendFeatures(self) -> None:
        if self.state == "sasl":
            if self.secure and not self.peerChain:
                # Read once, when TLS is up: pinned for the stream's life.
                self.peerChain = tuple(self.channel.peerChain())
            await self.saslFeature.prepare()
        if not self.active:
            return
        features = domish.Element((NS_STREAMS, "features"))
        for feature in self._currentFeatures():
            features.addChild(feature.featureElement())
        self.channel.send(features)

    def _featuresFailed(self, f: failure.Failure) -> None:
        # The store failed while deciding on mechanisms: an operator matter,
        # which the client sees as a temporary condition.
        if isinstance(f.value, STORE_FAILURES):
            self.server.storeFailureLog.emit(
                "Stream features fail: the store is not available ({error})", error=f.getErrorMessage()
            )
        else:
            log.failure("Could not prepare stream features", f)
        self.streamError("internal-server-error")

    def _checkHeader(self, root: domish.Element) -> str | None:
        served = self.server.config.domains
        if (root.uri, root.name) != (NS_STREAMS, "stream"):
            self._headerError("invalid-namespace", "the root element must be stream:stream")
            return None
        if root.defaultUri != NS_CLIENT:
            self._headerError("invalid-namespace", "the content namespace must be jabber:client")
            return None
        version = root.getAttribute("version", "0.0")
        try:
            major = int(version.split(".")[0])
        except ValueError:
            major = 0
        if major < 1:
            self._headerError("unsupported-version", "XMPP 1.0 is required")
            return None
        to = root.getAttribute("to")
        if to is None:
            # RFC 6120 section 4.7.2: without 'to', use a default domain: the
            # one of this stream so far, or the only one served.
            if self.domain:
                to = self.domain
            elif len(served) == 1:
                to = served[0]
            else:
                self._headerError("host-unknown", "the stream header needs a 'to'")
                return None
        try:
            domain = parseJID(to).host
        except jid.InvalidFormat:
            self._headerError("host-unknown", "not a domain")
            return None
        if domain not in served or "@" in to or "/" in to:
            self._headerError("host-unknown", f"{to} is not served here")
            return None
        if self.domain and domain != self.domain:
            self._headerError("host-unknown", "the domain changed across a stream restart")
            return None
        self.domain = domain
        return domain

    def _headerError(self, condition: str, text: str) -> None:
        # Our header must precede the error (RFC 6120 section 4.9.1.2), and
        # it must name a domain we serve, never one the peer made up.
        self.channel.thisEntity = jid.internJID(self.domain or self.server.config.domains[0])
        self.streamError(condition, text)

    def _currentFeatures(self) -> list[Any]:
        if self.state == "tls":
            # STARTTLS only where the transport can start TLS.
            return [self.tlsFeature] if self.channel.canStartTLS else []
        if self.state == "sasl":
            return [self.saslFeature]
        if self.state == "bind":
            # Features that need no negotiation, told with bind (RFC 6121
            # section 2.6.1 roster versioning, section 3.4 pre-approval).
            return [self.bindFeature, *self.server.informationalFeatures]
        return []

    # --- negotiation steps --------------------------------------------------

    def tlsStarted(self) -> None:
        self.secure = True
        self.state = "sasl"

    def authenticated(self, account: Account, mechanism: str) -> None:
        self.account = account
        self.mechanism = mechanism
        self.state = "bind"
        if mechanism == "EXTERNAL" and self.peerChain:
            # RFC 6120 section 13.7.2.3: a stream authenticated by a
            # certificate lives no longer than the certificates that
            # vouched for it: the checker says which (the validated chain
            # in CA mode); else only the leaf, as the rest of the presented
            # chain is unverified and may hold anything.
            notAfter = account.certificateNotAfter
            if notAfter is None:
                notAfter = self.peerChain[0].not_valid_after_utc.timestamp()
            delay = max(0.0, notAfter - self.server.clock.seconds())
            self._expiry = self.server.clock.callLater(delay, self._certificateExpired)
        # Needed no more (the account holds the fingerprint): an idle
        # session keeps less memory.
        self.peerChain = ()

    def _certificateExpired(self) -> None:
        self._expiry = None
        where = self.session.jid.full() if self.session is not None else self.channel.peerLabel()
        log.info("Closing {jid}: its certificate has expired", jid=where)
        # RFC 6120 section 4.9.3.16: reset is the condition for a
        # certificate that expired during the life of the stream.
        self.streamError("reset", "The certificate of this session has expired")

    def bound(self, fullJID: jid.JID, request: domish.Element) -> None:
        channel = self.channel
        assert self.account is not None
        if self.domain not in self.server.config.domains:
            # A reload removed the domain after this stream's header (or its
            # login): no new session in it (RFC 6120 section 4.9.3.5).
            self.streamError("host-gone", f"{self.domain} is no longer served here")
            return
        info = {
            "mechanism": self.mechanism,
            "certificate": self.account.certificateFingerprint,
            "canManageCertificates": self.account.canManageCertificates,
            "certificateRegistered": self.account.certificateRegistered,
            # For the control channel's session list.
            "transport": channel.transportName,
            "address": channel.peerAddress(),
            "boundAt": self.server.clock.seconds(),
        }
        fingerprint = self.account.certificateFingerprint
        if fingerprint is not None and self.server.sessions.revokedSince(fingerprint, self.revocationMark):
            # Revoked after the store said yes, before this bind: the
            # revocation's own close could not see this stream.
            log.info("Closing {jid}: its certificate was revoked during the login", jid=fullJID.full())
            self.streamError("reset", "The certificate of this session was revoked")
            return
        barred = self.server.sessions.barredSince(fullJID, self.revocationMark, info)
        if barred is not None:
            # Locked (or, for a password login, its password changed) after
            # the store said yes, before this bind.
            log.info(
                "Closing {jid}: {why} during the login",
                jid=fullJID.full(), why=barred.text or barred.condition,
            )
            self.streamError(barred.condition, barred.text)
            return
        self.session = self.server.sessions.bind(fullJID, channel.send, self._closeSession)
        self.session.info.update(info)
        self._sessionLabels = (channel.transportName, self.mechanism)
        self.server.metrics.sessionStarted(*self._sessionLabels)
        self.state = "bound"
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None
        response = xmlstream.toResponse(request, "result")
        response.addElement((NS_BIND, "bind")).addElement("jid", content=fullJID.full())
        channel.send(response)
        self.boundStream = BoundStream(channel, self.session, self.server.sessions, self.streamError)
        self.boundStream.attach(self.server.handlerFactories, self.streamContext())
        interval = self.server.config.keepalive_interval
        if interval:
            self._keepalive = task.LoopingCall(self._sendKeepalive)
            self._keepalive.clock = self.server.clock
            self._keepalive.start(interval, now=False)
        channel.streamBound()

    def streamContext(self) -> StreamContext:
        """
        What handler factories are given for this bound stream.
        """
        assert self.account is not None and self.session is not None
        return StreamContext(
            account=self.account,
            session=self.session,
            domain=self.domain,
            mechanism=self.mechanism,
            sessions=self.server.sessions,
            clock=self.server.clock,
            server=self.server,
        )

    def _sendKeepalive(self) -> None:
        # RFC 6120 section 4.6.1: whitespace between stanzas keeps NATs open.
        if self.active:
            self.channel.send(" ")

    def _closeSession(self, streamError: error.StreamError) -> None:
        self.streamError(streamError.condition, streamError.text)

    # --- element dispatch ---------------------------------------------------

    def elementReceived(self, element: domish.Element) -> None:
        if self._refused:
            return
        if element.uri == NS_STREAMS and element.name == "error":
            return  # The transport closes the connection.
        if self.state == "bound":
            assert self.boundStream is not None
            self.boundStream.stanzaReceived(element)
            return
        if self.state == "tls":
            if self.tlsFeature.onElement(element):
                return
            if element.uri == NS_SASL and element.name == "auth":
                # RFC 6120 section 6.4.1 / 5.3.1: no SASL before TLS.
                self.saslFeature._fail(SASLFailure("encryption-required"))
                return
        elif self.state == "sasl":
            if self.saslFeature.onElement(element):
                return
        elif self.state == "bind":
            if self.bindFeature.onElement(element):
                return
        self.streamError("not-authorized", "Authenticate and bind a resource first")


__all__ = ["C2SAuthenticator"]
