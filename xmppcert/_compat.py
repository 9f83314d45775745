# -*- test-case-name: tests.test_compat -*-
"""
Compatibility between wokkel 18.0.0 (its last release) and today's Twisted.

wokkel imports C{twisted.python.compat._PY3} (removed in Twisted 21.2) and
C{twisted.python.constants} (removed in Twisted 24.11; the C{constantly}
package carries the same API). This module puts both back, and must be
imported before the first wokkel import; C{xmppcert/__init__.py} does that.

C{tests/test_compat.py} fails as soon as wokkel imports cleanly without this
module, which is the signal to delete it.
"""

import importlib
import sys

from twisted.python import compat as _twistedCompat

#: Which names this module had to add, for diagnostics and the tests.
patched: list[str] = []


def install() -> None:
    """
    Add the names wokkel needs to Twisted's modules. Idempotent.
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
