# -*- test-case-name: tests.test_im_roster -*-
"""
Instant messaging and presence (RFC 6121) and the XEPs around it. Each
feature is a module that joins local delivery through the hook points of
L{xmppcert.routing}, and serves its namespace on the client's stream with
a per-stream handler:

  - L{xmppcert.im.roster}: the roster (RFC 6121 section 2), roster
    versioning (section 2.6), and the subscription states of Appendix A;
  - L{xmppcert.im.presence}: presence subscriptions (section 3), presence
    broadcast, probes and directed presence (section 4), and a limit on how
    much presence one session may send;
  - L{xmppcert.im.offline}: offline messages (XEP-0160);
  - L{xmppcert.im.carbons}: message carbons (XEP-0280);
  - L{xmppcert.im.blocking}: the blocking command (XEP-0191).

Nothing is imported here: each module is loaded by whoever wires it.
"""

__all__: list[str] = []
