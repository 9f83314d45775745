"""
The log observer behind every xmppcert logger, filtered by the configured
C{log_level}.

Twisted's own events go to the global publisher unfiltered; xmppcert's go
through L{observer}, so C{log_level = "warn"} quiets xmppcert's per-login
info lines without touching twistd's logging setup.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import (
    FilteringLogObserver,
    Logger,
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


class RateLimitedLog:
    """
    One kind of log line, emitted at most once every C{interval} seconds:
    for events a peer can repeat at will (a request that meets a broken
    store), so that they cannot flood the log. Each line carries, as the
    field C{suppressed}, how many were left out since the one before.
    """

    def __init__(self, logger: Logger, level: LogLevel, clock: IReactorTime, interval: float = 60.0) -> None:
        """
        @param logger: emits the lines.
        @param level: their level.
        @param clock: tells the time.
        @param interval: seconds after a line during which the next are
            counted, not emitted.
        """
        self.logger = logger
        self.level = level
        self.clock = clock
        self.interval = interval
        self._last: float | None = None
        self._suppressed = 0

    def emit(self, format: str, **kwargs: Any) -> bool:
        """
        Emit C{format} with C{kwargs} (and C{suppressed}), unless a line was
        emitted less than C{interval} seconds ago; then only count it.

        @return: whether it was emitted.
        """
        now = self.clock.seconds()
        if self._last is not None and now - self._last < self.interval:
            self._suppressed += 1
            return False
        suppressed, self._suppressed, self._last = self._suppressed, 0, now
        if suppressed:
            format += " ({suppressed} more like it not logged since the last one)"
        self.logger.emit(self.level, format, suppressed=suppressed, **kwargs)
        return True


__all__ = ["RateLimitedLog", "observer", "setLevel"]
