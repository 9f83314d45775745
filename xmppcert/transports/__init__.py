"""
Transports of client streams: each turns bytes on a connection into stream
events (header, elements, close) for L{xmppcert.c2s}, behind
L{xmppcert.c2s.channel.IStreamChannel}, and knows whether the connection is
secure, the peer's address and its certificate chain. Transports know
nothing of SASL or of sessions.

  - L{xmppcert.transports.tcp}: STARTTLS (RFC 6120) and direct TLS (XEP-0368).
  - L{xmppcert.transports.bosh}: BOSH (XEP-0124, XEP-0206) for web clients.
  - L{xmppcert.transports.websocket}: XMPP over WebSocket (RFC 7395).
  - L{xmppcert.transports.http}: what both need of the HTTPS listener (the
    connection's peer facts, bounded bodies, the protocol switch, CORS,
    host-meta); L{xmppcert.transports.web} mounts them on one site.
"""
