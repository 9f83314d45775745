# -*- test-case-name: tests.test_compat -*-
"""
Compatibility between wokkel 18.0.0 (its last release) and today's Twisted.

Of all the Twisted names wokkel 18.0.0 imports (outside its own tests), two
are gone from Twisted, and this module puts each back:

  - C{twisted.python.compat._PY3}, removed in Twisted 21.2, imported by
    C{wokkel.data_form} and so by C{wokkel.disco}, C{wokkel.ping} and
    C{wokkel.pubsub}: set to C{True}.
  - C{twisted.python.constants}, removed in Twisted 24.11, imported by
    C{wokkel.muc}: the C{constantly} package, which Twisted's module had
    become a copy of, under the old name.

The other old names wokkel imports from C{twisted.python.compat}
(C{unicode}, C{iteritems}, C{itervalues}, C{StringType}) are deprecated but
still there.

This module must be imported before the first wokkel import;
C{xmppcert/__init__.py} does that. C{tests/test_compat.py} checks that
these are exactly the names wokkel imports and Twisted lacks: it fails when
Twisted brings one back or wokkel stops importing it (then delete that
shim), and when Twisted drops another one that wokkel imports (then add
it here).
"""

import importlib
import sys

from twisted.python import compat as _twistedCompat

#: Every name this module can put back, with the wokkel modules that import
#: it directly.
SHIMS: dict[str, tuple[str, ...]] = {
    "twisted.python.compat._PY3": ("wokkel.data_form",),
    "twisted.python.constants": ("wokkel.muc",),
}

#: Which names this module had to add, for diagnostics and the tests.
patched: list[str] = []


def install() -> None:
    """
    Add the names of L{SHIMS} that Twisted lacks to Twisted's modules.
    Idempotent.
    """
    if not hasattr(_twistedCompat, "_PY3"):
        _twistedCompat._PY3 = True  # type: ignore[attr-defined]
        patched.append("twisted.python.compat._PY3")
    if "twisted.python.constants" not in sys.modules:
        try:
            importlib.import_module("twisted.python.constants")
        except ImportError:
            import constantly

            sys.modules["twisted.python.constants"] = constantly
            patched.append("twisted.python.constants")


install()
