"""
The custom checker shown in docs/extending.md, taken from the document
itself, loaded by dotted name into a real server, and used to log in.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, makeServer
from tests.integration.raw import RawStream
from xmppcert import x509

pytestmark = pytest.mark.integration


def exampleChecker() -> str:
    text = (ROOT / "docs" / "extending.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    (code,) = [b for b in blocks if "def makeChecker" in b]
    return code


def test_emailCheckerFromTheDocs(tmp_path: Path) -> None:
    """
    docs/extending.md: a custom IClientCertificate checker named in
    [certificates] checkers maps a company certificate's e-mail address to
    the account; a certificate from another CA does not log in.
    """
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "emailchecker.py").write_text(exampleChecker())

    rootKey = x509.generateClientKey("ec")
    root = x509.issueCACertificate("Company Root", rootKey)
    (tmp_path / "company-ca.pem").write_bytes(x509.certificatePEM(root))

    server = makeServer(
        tmp_path / "server",
        extraConfig=(
            '[certificates]\ncheckers = ["stored", "emailchecker.makeChecker"]\n'
            f'ca_bundle = "{tmp_path / "company-ca.pem"}"\n'
        ),
    )
    server.env["PYTHONPATH"] = str(modules)
    server.addUser("frank@localhost", "frank-pw")
    server.start()
    try:
        key = x509.generateClientKey("ec")
        cert = x509.issueClientCertificate(
            [], key, issuerCertificate=root, issuerKey=rootKey, commonName="Frank", emails=["frank@localhost"]
        )
        (tmp_path / "frank.crt").write_bytes(x509.certificatePEM(cert))
        x509.writePrivateKey(tmp_path / "frank.key", key)
        raw = RawStream(server.starttlsPort)
        features = raw.starttls(server.caFile, tmp_path / "frank.crt", tmp_path / "frank.key")
        assert b"<mechanism>EXTERNAL</mechanism>" in features
        assert b"<success" in raw.authExternal()
        assert b"<jid>frank@localhost/" in raw.bind()
        raw.close()

        otherKey = x509.generateClientKey("ec")
        other = x509.issueClientCertificate([], otherKey, commonName="Frank", emails=["frank@localhost"])
        (tmp_path / "other.crt").write_bytes(x509.certificatePEM(other))
        x509.writePrivateKey(tmp_path / "other.key", otherKey)
        raw = RawStream(server.starttlsPort)
        features = raw.starttls(server.caFile, tmp_path / "other.crt", tmp_path / "other.key")
        assert b"EXTERNAL" not in features
        assert b"<not-authorized/>" in raw.authExternal()
        raw.close()
    finally:
        server.stop()
    assert server.errorLines() == [], server.logText()
