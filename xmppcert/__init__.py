"""
xmppcert: an XMPP server framework on Twisted for passwordless login with TLS
client certificates (SASL EXTERNAL, XEP-0178) and self-service certificate
management (XEP-0257).
"""

# wokkel 18.0.0 needs names that today's Twisted removed; patch them back before
# any module of ours imports wokkel.
from xmppcert import _compat  # noqa: F401

__version__ = "0.1.0"


def version() -> str:
    """
    The version of this xmppcert, for C{xmppcert --version}, the log and
    the control channel's status: the one place that says it.

    @return: C{__version__}, which setup.cfg also gives the package
        metadata (not read here: an editable install keeps the metadata of
        the version it was installed at).
    """
    return __version__
