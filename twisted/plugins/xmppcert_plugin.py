"""
C{twistd xmppcert}: run the xmppcert server.

This directory must never get an C{__init__.py}: C{twisted.plugins} is
shared by every package that ships Twisted plugins.
"""

from twisted.application.service import ServiceMaker

xmppcert = ServiceMaker(
    "xmppcert",
    "xmppcert.tap",
    "XMPP server with passwordless login by TLS client certificates",
    "xmppcert",
)
