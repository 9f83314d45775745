"""
Tests for L{xmppcert.logging}: C{log_format = "json"}, one JSON object a
line with the structured fields, for C{xmppcert run} and for twistd.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure

from tests.test_service import makeTestConfig
from xmppcert import logging as xlogging
from xmppcert import tap


def records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_jsonObserverOneObjectPerLine() -> None:
    """
    log_format json: each event is one line holding one JSON object with
    time (ISO 8601, UTC), level, namespace, the formatted message and the
    event's own fields; values JSON cannot carry become strings.
    """
    out = io.StringIO()
    publisher = LogPublisher(xlogging.jsonObserver(out))
    log = Logger(namespace="xmppcert.c2s", observer=publisher)
    log.info("Authenticated {jid} with {mechanism}\nfrom {peer}", jid="alice@example.com",
             mechanism="EXTERNAL", peer=("192.0.2.1", 5222), extra=object())
    log.warn("second")
    first, second = records(out.getvalue())
    assert out.getvalue().count("\n") == 2
    assert first["level"] == "info"
    assert first["namespace"] == "xmppcert.c2s"
    assert first["message"] == "Authenticated alice@example.com with EXTERNAL\nfrom ('192.0.2.1', 5222)"
    assert first["jid"] == "alice@example.com"
    assert first["peer"] == ["192.0.2.1", 5222]
    assert str(first["extra"]).startswith("<object object")
    assert str(first["time"]).endswith("+00:00")
    assert second["level"] == "warn"


def test_jsonObserverFailures() -> None:
    """
    log_format json: an event with a failure carries its traceback; a field
    named like a record key does not overwrite it.
    """
    out = io.StringIO()
    log = Logger(namespace="x", observer=LogPublisher(xlogging.jsonObserver(out)))
    try:
        raise ZeroDivisionError("no")
    except ZeroDivisionError:
        log.failure("It broke ({namespace})", Failure(), namespace="custom")
    [record] = records(out.getvalue())
    assert record["level"] == LogLevel.critical.name
    assert record["namespace"] == "x"
    assert record["field_namespace"] == "custom"
    assert record["message"] == "It broke (custom)"
    assert "ZeroDivisionError" in str(record["traceback"])


def test_startLoggingFormats() -> None:
    """
    xmppcert run: log_format picks the observer, text (twistd's format) or
    json.
    """
    assert set(xlogging.OBSERVERS) == {"text", "json"}
    out = io.StringIO()
    observer = xlogging.OBSERVERS["text"](out)
    Logger(namespace="xmppcert.x", observer=observer).info("hello {who}", who="world")
    assert "[xmppcert.x#info] hello world" in out.getvalue()


@pytest.mark.parametrize(
    "options, expected",
    [
        (["-n"], "json"),
        ([], None),
        (["-n", "--logfile", "server.log"], None),
        (["-n", "--logger", "twisted.logger.textFileLogObserver"], "text"),
    ],
    ids=["nodaemon", "daemon", "logfile", "own-logger"],
)
def test_twistdUsesJSON(tmp_path: Path, options: list[str], expected: str | None) -> None:
    """
    twistd -n xmppcert with log_format = "json" logs through
    jsonObserver; a daemon, a log file or an explicit --logger keep what
    twistd was told.
    """
    from twisted.scripts.twistd import ServerOptions

    makeTestConfig(tmp_path)
    path = tmp_path / "xmppcert.toml"
    path.write_text(
        'domains = ["example.com"]\nlog_format = "json"\n'
        '[listen]\nstarttls = ["tcp:0:interface=127.0.0.1"]\ndirect_tls = []\nhttps = []\n'
    )
    config = ServerOptions()
    config.parseOptions([*options, "xmppcert", "--config", str(path)])
    logger = config["logger"]
    if expected is None:
        assert logger is None
    elif expected == "json":
        assert logger is xlogging.jsonObserver
    else:
        assert logger is not xlogging.jsonObserver
    assert isinstance(config.subOptions, tap.Options)


@pytest.mark.parametrize(
    "encoding, value",
    [("ascii", "jörg@example.com"), ("utf-8", "/etc/xmppcert/\udcff.crl")],
    ids=["c-locale", "lone-surrogate"],
)
def test_jsonObserverUnencodableText(encoding: str, value: str) -> None:
    """
    log_format json: an event whose text the stream cannot encode (stdout
    in the C locale, or a lone surrogate from an undecodable file name) is
    still written, as one JSON line with \\u escapes, not silently lost.
    """
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding=encoding)
    log = Logger(namespace="x", observer=LogPublisher(xlogging.jsonObserver(out)))
    log.info("about {value}", value=value)
    log.info("after")
    lines = raw.getvalue().decode("ascii").splitlines()
    assert len(lines) == 2
    first, second = records("\n".join(lines))
    assert first["value"] == value
    assert first["message"] == f"about {value}"
    assert second["message"] == "after"
