"""
The log observer behind every xmppcert logger, filtered by the configured
C{log_level}.

Twisted's own events go to the global publisher unfiltered; xmppcert's go
through L{observer}, so C{log_level = "warn"} quiets xmppcert's per-login
info lines without touching twistd's logging setup.
"""

from __future__ import annotations

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)

#: Pass as C{Logger(observer=observer)}.
observer = FilteringLogObserver(globalLogPublisher, [_predicate])


def setLevel(name: str) -> None:
    """
    @param name: C{"debug"}, C{"info"}, C{"warn"}, C{"error"} or C{"critical"}.
    """
    _predicate.setLogLevelForNamespace("", LogLevel.levelWithName(name))


__all__ = ["observer", "setLevel"]
