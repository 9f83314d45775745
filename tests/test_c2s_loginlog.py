# -*- test-case-name: tests.test_c2s_loginlog -*-
"""
Tests for the log lines of failed logins in L{xmppcert.c2s}: they name the
account that was tried (the authcid's for PLAIN and SCRAM, the JIDs and
fingerprint of a certificate), also when EXTERNAL was not offered.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import pytest
from twisted.logger import LogEvent, LogLevel, capturedLogs, formatEvent

from tests.helpers import ALICE, DOMAIN, resultOf
from tests.test_c2s import (
    certificateHarness,
    externalConnection,
    harness,
    plain,
    saslFailure,
    scramLogin,
    tlsConnection,
)
from xmppcert import x509 as certs


def failureLines(events: Sequence[LogEvent]) -> list[LogEvent]:
    return [e for e in events if e.get("log_format", "").startswith("SASL failure")]


def notOfferedLines(events: Sequence[LogEvent]) -> list[LogEvent]:
    return [e for e in events if e.get("log_format", "").startswith("Not offering EXTERNAL")]


def stranger() -> Any:
    """
    A certificate naming alice and bob that nobody registered.
    """
    return certs.issueClientCertificate(
        [ALICE, f"bob@{DOMAIN}"],
        certs.generateClientKey("ec"),
        now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1),
    )


def test_plainFailureNamesAccount() -> None:
    """
    A failed PLAIN login is logged at info with the account its authcid
    names (a bare JID), whether the account exists or not.
    """
    h = harness()
    conn = tlsConnection(h)
    with capturedLogs() as events:
        assert saslFailure(conn.auth("PLAIN", plain(password="wrong"))) == "not-authorized"
        assert saslFailure(conn.auth("PLAIN", plain(user="Nobody"))) == "not-authorized"
    lines = failureLines(events)
    assert [(e["log_level"], e["account"]) for e in lines] == [
        (LogLevel.info, ALICE),
        (LogLevel.info, f"nobody@{DOMAIN}"),
    ]
    assert f" as {ALICE} from " in formatEvent(lines[0])


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scramFailureNamesAccount(mechanism: str) -> None:
    """
    A failed SCRAM login (a wrong proof) is logged with the account its
    username names.
    """
    h = harness()
    conn = tlsConnection(h)
    with capturedLogs() as events:
        _, answer, _ = scramLogin(conn, mechanism, password="wrong")
    assert saslFailure(answer) == "not-authorized"
    [line] = failureLines(events)
    assert (line["log_level"], line["account"], line["mechanism"]) == (LogLevel.info, ALICE, mechanism)


def test_unmappableAuthcidIsEscaped() -> None:
    """
    An authcid that names no possible account is still named in the log,
    escaped so that it cannot break the line.
    """
    h = harness()
    conn = tlsConnection(h)
    with capturedLogs() as events:
        assert saslFailure(conn.auth("PLAIN", plain(user="a@b@c\nforged"))) == "not-authorized"
    [line] = failureLines(events)
    assert line["account"] == "a@b@c\\nforged"


def test_certificateFailureNamesCertificate() -> None:
    """
    A failed EXTERNAL login is logged with the certificate's JIDs and
    fingerprint.
    """
    h, _ = certificateHarness()
    certificate = stranger()
    conn, _ = externalConnection(h, certificate)
    with capturedLogs() as events:
        assert saslFailure(conn.auth("EXTERNAL", raw="=")) == "not-authorized"
    [line] = failureLines(events)
    assert line["log_level"] == LogLevel.info
    assert line["account"] == f"{ALICE}, bob@{DOMAIN} (certificate {certs.fingerprint(certificate)})"


@pytest.mark.parametrize("state", ["unknown", "disabled", "revoked", "removed after revocation"])
def test_externalNotOfferedNamesCertificate(state: str) -> None:
    """
    When a certificate is presented but EXTERNAL is not offered (unknown,
    disabled or revoked), one line at info, once per stream, names the
    certificate's JIDs and fingerprint and what the store says of it; no
    SASL failure will, if the client just uses another mechanism.
    """
    h, certificate = certificateHarness()
    fingerprint = certs.fingerprint(certificate)
    if state == "unknown":
        certificate = stranger()
        fingerprint = certs.fingerprint(certificate)
    elif state == "removed after revocation":
        resultOf(h.store.setCertificateStateByFingerprint(fingerprint, "revoked"))
        resultOf(h.store.removeCertificateByFingerprint(fingerprint))
    else:
        resultOf(h.store.setCertificateStateByFingerprint(fingerprint, state))
    with capturedLogs() as events:
        conn, _ = externalConnection(h, certificate)
        assert conn.auth("PLAIN", plain()).only().name == "success"
    [line] = notOfferedLines(events)
    assert line["log_level"] == LogLevel.info
    assert line["account"].endswith(f"(certificate {fingerprint})")
    assert line["account"].startswith(ALICE)
    assert line["standing"] == {
        "unknown": "not registered",
        "disabled": f"registered to {ALICE}, disabled",
        "revoked": f"registered to {ALICE}, revoked",
        "removed after revocation": "revoked (its record was removed)",
    }[state]


def test_externalOfferedNothingLogged() -> None:
    """
    A certificate that can log in is offered EXTERNAL without a line about
    it; a stream without a certificate has none either.
    """
    h, certificate = certificateHarness()
    with capturedLogs() as events:
        externalConnection(h, certificate)
        tlsConnection(h)
    assert notOfferedLines(events) == []
