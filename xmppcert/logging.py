# -*- test-case-name: tests.test_logging -*-
"""
Where the server's log goes, in which format (C{log_format} in the
configuration).

C{text} is twistd's usual line (C{2026-11-23T12:31:03+0000 [xmppcert.c2s#info]
...}). C{json} writes one JSON object a line, for the systemd journal and log
shippers: C{time}, C{level}, C{namespace}, C{message} (the formatted text),
C{traceback} when the event carries a failure, and every structured field of
the event (C{jid}, C{peer}, C{condition}, ...), so nobody has to parse the
message.

C{xmppcert run} picks the observer from the configuration. Under twistd,
C{twistd -n xmppcert} picks it too when the log goes to stdout; otherwise
name the factory yourself: C{twistd --logger xmppcert.logging.jsonObserver}.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Callable
from typing import IO, Any

from twisted.logger import (
    ILogObserver,
    LogEvent,
    LogLevel,
    formatEvent,
    globalLogBeginner,
    textFileLogObserver,
)
from zope.interface import provider

#: Keys of events from the legacy C{twisted.python.log} API that repeat
#: what the record already says (or make no sense outside it).
_LEGACY_KEYS = frozenset({"message", "isError", "format", "why", "failure", "time", "system", "printed"})

#: Record keys set by L{eventAsRecord} itself; fields of the same name are
#: prefixed with C{field_} rather than overwrite them.
_RECORD_KEYS = ("time", "level", "namespace", "message", "system", "traceback")


def _jsonValue(value: Any) -> Any:
    """
    C{value} if JSON can carry it as it is, else its C{str} (a JID, an
    address object, an exception).
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def eventAsRecord(event: LogEvent) -> dict[str, Any]:
    """
    The JSON-ready record of one log event.

    @return: C{time} (ISO 8601, UTC, milliseconds), C{level} (C{debug} ...
        C{critical}), C{namespace}, C{message}, C{system} when the event
        names one, C{traceback} when it carries a failure, then the event's
        own fields.
    """
    level = event.get("log_level")
    when = event.get("log_time")
    record: dict[str, Any] = {
        "time": datetime.datetime.fromtimestamp(
            when if isinstance(when, (int, float)) else 0, datetime.UTC
        ).isoformat(timespec="milliseconds"),
        "level": getattr(level, "name", LogLevel.info.name),
        "namespace": str(event.get("log_namespace", "")),
        "message": formatEvent(event),
    }
    system = event.get("log_system")
    if system not in (None, "-"):
        record["system"] = str(system)
    failure = event.get("log_failure")
    if failure is not None:
        try:
            record["traceback"] = failure.getTraceback()
        except Exception:
            record["traceback"] = repr(failure)
    for key, value in event.items():
        if key.startswith("log_") or key in _LEGACY_KEYS:
            continue
        name = f"field_{key}" if key in _RECORD_KEYS else key
        record[name] = _jsonValue(value)
    return record


def jsonObserver(outFile: IO[str] | None = None) -> ILogObserver:
    """
    An observer writing each event as one line of JSON (L{eventAsRecord}).

    Called without arguments it writes to C{sys.stdout} as it is now, which
    is what C{twistd --logger xmppcert.logging.jsonObserver} does (twistd
    sends stdout itself to the log afterwards).
    """
    out = sys.stdout if outFile is None else outFile

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        record: dict[str, Any]
        try:
            record = eventAsRecord(event)
            line = json.dumps(record, ensure_ascii=False)
        except Exception as e:
            # A log line must never take the server down.
            record = {"level": "error", "message": f"unloggable event: {e!r}"}
            line = json.dumps(record)
        try:
            out.write(line + "\n")
        except UnicodeEncodeError:
            # A stream that cannot carry the text (stdout in the C locale,
            # or a lone surrogate from an undecodable file name): the same
            # record with \u escapes, rather than no line at all.
            out.write(json.dumps(record) + "\n")
        out.flush()

    return observe


def textObserver(outFile: IO[str] | None = None) -> ILogObserver:
    """
    twistd's text format, to C{outFile} (C{sys.stdout} by default).
    """
    return textFileLogObserver(sys.stdout if outFile is None else outFile)


#: C{log_format} to observer factory.
OBSERVERS: dict[str, Callable[[IO[str] | None], ILogObserver]] = {
    "text": textObserver,
    "json": jsonObserver,
}


def startLogging(logFormat: str, outFile: IO[str] | None = None) -> ILogObserver:
    """
    Send every log event (Twisted's and xmppcert's) to C{outFile} in
    C{logFormat}, for C{xmppcert run}. Standard output and error are left
    as they are: the log goes to one of them.

    @param logFormat: C{"text"} or C{"json"}.
    @return: the observer.
    """
    observer = OBSERVERS[logFormat](outFile)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    return observer


__all__ = ["OBSERVERS", "eventAsRecord", "jsonObserver", "startLogging", "textObserver"]
