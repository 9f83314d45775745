"""
Transports of client streams: each turns bytes on a connection into stream
events (header, elements, close) for L{xmppcert.c2s}, behind
L{xmppcert.c2s.channel.IStreamChannel}, and knows whether the connection is
secure, the peer's address and its certificate chain. Transports know
nothing of SASL or of sessions.

  - L{xmppcert.transports.tcp}: STARTTLS (RFC 6120) and direct TLS (XEP-0368).
"""
