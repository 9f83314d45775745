# -*- test-case-name: tests.test_adhoc_certificates -*-
"""
Tests for L{xmppcert.adhoc.certificates}: certificate management over
ad-hoc commands, for every account and for administrators, end to end
through bound streams of an in-memory server (password and certificate
logins) over an L{InMemoryAccountStore}, with the real certificate manager
and the control channel behind them.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

import pytest
from cryptography import x509 as cx509
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.logger import LogEvent, LogLevel, capturedLogs
from twisted.words.xish import domish

# wokkel 18 imports only once xmppcert has installed its compatibility shim.
import xmppcert  # noqa: F401

# isort: split
from wokkel import data_form

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    ClientConnection,
    ServerHarness,
    makeConfig,
    makeServer,
    resultOf,
    stanzaErrorCondition,
    syncDeferToThread,
)
from xmppcert import x509
from xmppcert.adhoc import NS_COMMANDS, CommandService
from xmppcert.adhoc.certificates import (
    ADD,
    ADMIN_ADD,
    ADMIN_DISABLE,
    ADMIN_LIST,
    ADMIN_REVOKE,
    ADMIN_SESSIONS,
    DISABLE,
    LIST,
    NS_CERTS,
    REVOKE,
    SESSIONS,
    CertificateCommands,
    ReportForm,
)
from xmppcert.certificates import Actor, CertificateManager
from xmppcert.control import ControlChannel
from xmppcert.cred import (
    AccountRealm,
    ScramChecker,
    StoredCertificateChecker,
    StoredPasswordChecker,
)
from xmppcert.store.interfaces import AuditEntry, StoreError

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_X_DATA = "jabber:x:data"
CAROL = "carol@example.com"
ADMIN = "admin@example.com"

USER_NODES = [LIST, ADD, DISABLE, REVOKE, SESSIONS]
ADMIN_NODES = [ADMIN_LIST, ADMIN_ADD, ADMIN_DISABLE, ADMIN_REVOKE, ADMIN_SESSIONS]
MAX_PER_ACCOUNT = 3

#: Changes made as from the command line, to set the scene.
OPERATOR = Actor.operator("cli:test")

Values = Mapping[str, str | Sequence[str]]


class Harness:
    """
    An in-memory server (alice, bob, and admin@ the administrator) whose
    streams get the certificate commands; the clock is at the present, so
    that certificates made now are valid; certificate logins check the
    store.
    """

    def __init__(self) -> None:
        self.server: ServerHarness = makeServer(
            makeConfig(sasl={"mechanisms": ["EXTERNAL", "PLAIN"]}),
            accounts=(ALICE, BOB, ADMIN),
        )
        self.clock = self.server.clock
        self.now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        self.clock.advance(self.now.timestamp())
        self.store = self.server.store
        self.server.server.portal = Portal(
            AccountRealm(),
            [
                ScramChecker(),
                StoredPasswordChecker(self.store, deferToThread=syncDeferToThread),
                StoredCertificateChecker(self.store, self.clock, [DOMAIN]),
            ],
        )
        self.service = CommandService(self.clock)
        self.server.server.handlerFactories.append(self.service.handlerFactory)
        self.manager = CertificateManager(
            self.store, self.clock, self.server.sessions, maxPerAccount=MAX_PER_ACCOUNT
        )
        self.control = ControlChannel(self.server.sessions, self.store, self.clock, certificates=self.manager)
        self.admins = {ADMIN}
        self.commands = CertificateCommands(self.manager, self.control, lambda a: a.userhost() in self.admins)
        self.commands.install(self.service)

    def certificate(self, owner: str = ALICE, days: int = 30) -> cx509.Certificate:
        return x509.issueClientCertificate(
            [owner], x509.generateClientKey("ec"), now=self.now - datetime.timedelta(days=1), days=days
        )

    def register(
        self, name: str, owner: str = ALICE, mayManage: bool = True, certificate: cx509.Certificate | None = None
    ) -> cx509.Certificate:
        """
        A certificate registered to C{owner} under C{name}, as the
        command line would.
        """
        certificate = certificate or self.certificate(owner)
        resultOf(
            self.store.addCertificate(
                owner, name, certificate.public_bytes(Encoding.DER), x509.fingerprint(certificate),
                certificate.not_valid_after_utc.timestamp(), canManage=mayManage,
            )
        )
        return certificate

    def client(self, resource: str = "desk", user: str = "alice") -> ClientConnection:
        client = self.server.connect()
        client.bound(resource, user)
        return client

    def certificateClient(self, certificate: cx509.Certificate, resource: str = "phone") -> ClientConnection:
        """
        A stream logged in with SASL EXTERNAL with C{certificate}.
        """
        client = self.server.connect()
        client.authenticator.peerChain = (certificate,)
        client.startTLS()
        answer = client.auth("EXTERNAL", raw="=")
        assert answer.only().name == "success", answer.raw
        client.header()
        result = client.bind(resource).only("iq")
        assert result["type"] == "result", result.toXml()
        return client

    def states(self, account: str = ALICE) -> dict[str, str]:
        return {c.name: c.state for c in resultOf(self.store.listCertificates(account))}

    def audit(self) -> list[AuditEntry]:
        trail: list[AuditEntry] = resultOf(self.store.auditTrail())
        return trail


def submission(values: Values) -> str:
    parts = [f"<x xmlns='{NS_X_DATA}' type='submit'>"]
    parts.append(f"<field var='FORM_TYPE' type='hidden'><value>{NS_CERTS}</value></field>")
    for var, value in values.items():
        items = [value] if isinstance(value, str) else list(value)
        parts.append(f"<field var='{var}'>" + "".join(f"<value>{escape(v)}</value>" for v in items) + "</field>")
    parts.append("</x>")
    return "".join(parts)


def send(
    client: ClientConnection, node: str, sessionid: str | None = None, payload: str = "", action: str | None = None
) -> domish.Element:
    attributes = f" sessionid='{sessionid}'" if sessionid is not None else ""
    if action is not None:
        attributes += f" action='{action}'"
    client.send(
        f"<iq type='set' id='a1' to='{DOMAIN}'>"
        f"<command xmlns='{NS_COMMANDS}' node='{node}'{attributes}>{payload}</command></iq>"
    )
    return client.received().only("iq")


def command(reply: domish.Element) -> domish.Element:
    assert reply["type"] == "result", reply.toXml()
    [element] = list(reply.elements(NS_COMMANDS, "command"))
    return element


def formOf(element: domish.Element) -> data_form.Form:
    [x] = list(element.elements(NS_X_DATA, "x"))
    return data_form.Form.fromElement(x)


def notesOf(element: domish.Element) -> list[tuple[str, str]]:
    return [(n["type"], str(n)) for n in element.elements(NS_COMMANDS, "note")]


def start(client: ClientConnection, node: str) -> domish.Element:
    element = command(send(client, node))
    assert element["status"] == "executing", element.toXml()
    return element


def submit(client: ClientConnection, node: str, shown: domish.Element, values: Values) -> domish.Element:
    return command(send(client, node, shown["sessionid"], submission(values)))


def table(element: domish.Element) -> tuple[list[tuple[str, str, str]], list[dict[str, str]]]:
    """
    The columns (var, type, label) and rows of the XEP-0004 table in a
    completed command.
    """
    [x] = list(element.elements(NS_X_DATA, "x"))
    assert x["type"] == "result"
    [reported] = list(x.elements(NS_X_DATA, "reported"))
    columns = [(f["var"], f["type"], f["label"]) for f in reported.elements(NS_X_DATA, "field")]
    rows = []
    for item in x.elements(NS_X_DATA, "item"):
        row = {}
        for field in item.elements(NS_X_DATA, "field"):
            [value] = list(field.elements(NS_X_DATA, "value"))
            row[field["var"]] = str(value)
        rows.append(row)
    return columns, rows


def fixedLines(element: domish.Element) -> list[str]:
    return [str(f.value) for f in formOf(element).fieldList if f.fieldType == "fixed"]


def optionsOf(element: domish.Element, var: str) -> list[str]:
    return [o.value for o in formOf(element).fields[var].options]


def pem(certificate: cx509.Certificate) -> list[str]:
    """
    A PEM paste as a client sends a text-multi field: a value per line.
    """
    return x509.certificatePEM(certificate).decode("ascii").splitlines()


def noErrorLogged(events: Sequence[LogEvent]) -> None:
    bad = [e for e in events if e.get("log_level") in (LogLevel.error, LogLevel.critical)]
    assert not bad, bad


def discoItems(client: ClientConnection) -> list[str]:
    client.send(f"<iq type='get' id='d' to='{DOMAIN}'><query xmlns='{NS_DISCO_ITEMS}' node='{NS_COMMANDS}'/></iq>")
    return [i["node"] for i in client.received().only("iq").query.elements(NS_DISCO_ITEMS, "item")]


# --- who sees what ------------------------------------------------------------------


def test_discoForAccount() -> None:
    """
    XEP-0050 section 3.2: an account sees its five certificate commands,
    not the administrators' ones.
    """
    assert discoItems(Harness().client()) == USER_NODES


def test_discoForAdministrator() -> None:
    """
    XEP-0050 section 3.2: an administrator also sees the commands on any
    account.
    """
    assert discoItems(Harness().client(user="admin")) == USER_NODES + ADMIN_NODES


def test_noCertManagementSeesListAndSessions() -> None:
    """
    XEP-0257 section 2.1: a login with a <no-cert-management/> certificate
    may list, nothing else; the commands that change something are not
    listed for it, and disco#info and execution are forbidden.
    """
    h = Harness()
    restricted = h.certificateClient(h.register("Kiosk", mayManage=False))
    assert discoItems(restricted) == [LIST, SESSIONS]
    for node in (ADD, DISABLE, REVOKE):
        restricted.send(f"<iq type='get' id='i' to='{DOMAIN}'><query xmlns='{NS_DISCO_INFO}' node='{node}'/></iq>")
        assert stanzaErrorCondition(restricted.received().only("iq")) == "forbidden"
        assert stanzaErrorCondition(send(restricted, node)) == "forbidden"
    assert h.audit() == []


def test_noCertManagementAdministrator() -> None:
    """
    An administrator logged in with a <no-cert-management/> certificate
    may look at any account, but not change certificates there either.
    """
    h = Harness()
    admin = h.certificateClient(h.register("Kiosk", owner=ADMIN, mayManage=False))
    assert discoItems(admin) == [LIST, SESSIONS, ADMIN_LIST, ADMIN_SESSIONS]
    for node in (ADMIN_ADD, ADMIN_DISABLE, ADMIN_REVOKE):
        assert stanzaErrorCondition(send(admin, node)) == "forbidden"


@pytest.mark.parametrize("node", ADMIN_NODES)
def test_nonAdminRefused(node: str) -> None:
    """
    The administrators' commands are forbidden to other accounts.
    """
    assert stanzaErrorCondition(send(Harness().client(), node)) == "forbidden"


# --- list -------------------------------------------------------------------------------


def test_listTable() -> None:
    """
    XEP-0004 section 3.4: the list is a result form with a <reported/>
    element (each column with its type and label) and one <item/> per
    certificate holding every column: name, state, fingerprint, expiry,
    last use, whether it may manage, the resources logged in with it.
    """
    h = Harness()
    phone = h.register("Phone")
    h.register("Kiosk", mayManage=False)
    resultOf(h.manager.disable(OPERATOR, ALICE, ["Kiosk"]))
    h.certificateClient(phone, "phone")
    element = command(send(h.client(), LIST))
    assert element["status"] == "completed"
    assert notesOf(element) == [("info", "2 certificates, 1 enabled")]
    columns, rows = table(element)
    assert columns == [
        ("name", "text-single", "Name"),
        ("state", "text-single", "State"),
        ("fingerprint", "text-single", "SHA-256 fingerprint"),
        ("expires", "text-single", "Expires"),
        ("last-used", "text-single", "Last used"),
        ("may-manage", "boolean", "May manage certificates"),
        ("resources", "text-single", "Logged in now as"),
    ]
    byName = {r["name"]: r for r in rows}
    assert byName["Phone"]["state"] == "enabled"
    assert byName["Phone"]["fingerprint"] == x509.displayFingerprint(x509.fingerprint(phone))
    assert byName["Phone"]["expires"] == (h.now + datetime.timedelta(days=29)).strftime("%Y-%m-%d %H:%M UTC")
    assert byName["Phone"]["may-manage"] == "true"
    assert byName["Phone"]["resources"] == "phone"
    assert byName["Phone"]["last-used"] != "never"
    assert byName["Kiosk"] == byName["Kiosk"] | {
        "state": "disabled", "may-manage": "false", "last-used": "never", "resources": "",
    }


def test_listEmpty() -> None:
    """
    An account without certificates gets an empty table (no items) and a
    note saying so.
    """
    element = command(send(Harness().client(user="bob"), LIST))
    assert notesOf(element) == [("info", "You have no certificates")]
    assert table(element)[1] == []


def test_listFromNoCertManagementLogin() -> None:
    """
    XEP-0257 section 2.1: a <no-cert-management/> login may list.
    """
    h = Harness()
    kiosk = h.register("Kiosk", mayManage=False)
    element = command(send(h.certificateClient(kiosk), LIST))
    assert [r["name"] for r in table(element)[1]] == ["Kiosk"]


def test_reportFormParsesInSlixmpp() -> None:
    """
    XEP-0004 section 3.4: the table is what an independent client reads as
    reported fields and items (slixmpp's data forms).
    """
    from slixmpp.plugins.xep_0004.stanza import Form
    from slixmpp.xmlstream import ET

    report = ReportForm(
        [data_form.Field("text-single", "name", label="Name"), data_form.Field("boolean", "ok", label="OK")],
        [{"name": "Phone", "ok": True}, {"name": "Desk"}],
        title="T",
    )
    form = Form(xml=ET.fromstring(report.toElement().toXml()))
    assert form["type"] == "result"
    assert list(form.get_reported()) == ["name", "ok"]
    assert form.get_reported()["ok"]["label"] == "OK"
    # A missing value is sent empty: every item has every column.
    assert form["items"] == [{"name": "Phone", "ok": "true"}, {"name": "Desk", "ok": ""}]


def test_reportFormNeedsColumns() -> None:
    """
    XEP-0004 section 3.4: <reported/> holds one or more fields, each with a
    var.
    """
    with pytest.raises(ValueError):
        ReportForm([])
    with pytest.raises(ValueError):
        ReportForm([data_form.Field("fixed", None, value="x")])


# --- add ---------------------------------------------------------------------------------


def test_addForm() -> None:
    """
    The add form: FORM_TYPE urn:xmppcert:certs, a required text-single
    name, a required text-multi certificate, and a boolean may-manage that
    defaults to true, as a XEP-0257 append without <no-cert-management/>.
    """
    form = formOf(start(Harness().client(), ADD))
    assert form.formNamespace == NS_CERTS
    assert (form.fields["name"].fieldType, form.fields["name"].required) == ("text-single", True)
    assert (form.fields["certificate"].fieldType, form.fields["certificate"].required) == ("text-multi", True)
    assert form.fields["may-manage"].fieldType == "boolean"
    assert form.fields["may-manage"].value in (True, "true", "1")


def test_addThenLogIn() -> None:
    """
    XEP-0257 section 2.1 through a command: a pasted PEM certificate is
    registered (the note and the result give its fingerprint), logs in
    with EXTERNAL, and the audit trail records cert.append by the session.
    """
    h = Harness()
    client = h.client()
    phone = h.certificate()
    element = submit(client, ADD, start(client, ADD), {"name": "Phone", "certificate": pem(phone)})
    assert element["status"] == "completed"
    fingerprint = x509.displayFingerprint(x509.fingerprint(phone))
    [(kind, text)] = notesOf(element)
    assert kind == "info" and fingerprint in text and "'Phone'" in text
    assert formOf(element)["fingerprint"] == fingerprint
    [stored] = resultOf(h.store.listCertificates(ALICE))
    assert (stored.name, stored.state, stored.canManage) == ("Phone", "enabled", True)
    h.certificateClient(phone)
    [entry] = h.audit()
    assert (entry.actor, entry.action, entry.target) == (f"{ALICE}/desk", "cert.append", f"{ALICE}/Phone")


def test_addMayNotManage() -> None:
    """
    XEP-0257 <no-cert-management/>: may-manage false registers a
    certificate whose logins may not manage certificates.
    """
    h = Harness()
    client = h.client()
    kiosk = h.certificate()
    submit(client, ADD, start(client, ADD), {"name": "Kiosk", "certificate": pem(kiosk), "may-manage": "0"})
    [stored] = resultOf(h.store.listCertificates(ALICE))
    assert stored.canManage is False
    assert discoItems(h.certificateClient(kiosk)) == [LIST, SESSIONS]


@pytest.mark.parametrize(
    ("paste", "reason"),
    [
        (["not a certificate"], "This is not a certificate"),
        (["-----BEGIN CERTIFICATE-----", "!!!!", "-----END CERTIFICATE-----"], "not valid base64"),
    ],
)
def test_addNotACertificate(paste: list[str], reason: str) -> None:
    """
    A paste that is no certificate shows the form again with the reason as
    an error note, keeping the name typed; nothing is registered, nothing
    is logged as an error.
    """
    h = Harness()
    client = h.client()
    with capturedLogs() as events:
        element = submit(client, ADD, start(client, ADD), {"name": "Phone", "certificate": paste})
    assert element["status"] == "executing"
    [(kind, text)] = notesOf(element)
    assert kind == "error" and reason in text, text
    assert formOf(element)["name"] == "Phone"
    assert h.states() == {}
    noErrorLogged(events)


def test_addCertificateOfAnotherUser() -> None:
    """
    XEP-0257 section 3 and XEP-0178: a certificate naming another JID
    cannot be registered; the form is shown again with why.
    """
    h = Harness()
    client = h.client()
    element = submit(client, ADD, start(client, ADD), {"name": "Bob's", "certificate": pem(h.certificate(BOB))})
    [(kind, text)] = notesOf(element)
    assert kind == "error" and "cannot be registered" in text and BOB in text
    assert h.states() == {}


def test_addExpired() -> None:
    """
    An expired certificate cannot be registered: the form again, with the
    reason.
    """
    h = Harness()
    client = h.client()
    old = x509.issueClientCertificate(
        [ALICE], x509.generateClientKey("ec"), now=h.now - datetime.timedelta(days=10), days=2
    )
    element = submit(client, ADD, start(client, ADD), {"name": "Old", "certificate": pem(old)})
    [(kind, text)] = notesOf(element)
    assert kind == "error" and "expired" in text


def test_addNameTaken() -> None:
    """
    XEP-0257 section 2.1: names are unique among enabled certificates; a
    taken one shows the form again, and the same session can then succeed
    with another name.
    """
    h = Harness()
    h.register("Phone")
    client = h.client()
    phone2 = h.certificate()
    shown = start(client, ADD)
    element = submit(client, ADD, shown, {"name": "Phone", "certificate": pem(phone2)})
    assert notesOf(element) == [("error", "An enabled certificate is named 'Phone' already: choose another name")]
    element = submit(client, ADD, shown, {"name": "Phone 2", "certificate": pem(phone2)})
    assert element["status"] == "completed"
    assert h.states() == {"Phone": "enabled", "Phone 2": "enabled"}


def test_addRegisteredAlready() -> None:
    """
    A certificate that is registered already (as another name of the
    account) is refused with that name.
    """
    h = Harness()
    phone = h.register("Phone")
    client = h.client()
    element = submit(client, ADD, start(client, ADD), {"name": "Other", "certificate": pem(phone)})
    assert notesOf(element) == [("error", "This certificate is registered already, as 'Phone'")]


def test_addLimit() -> None:
    """
    [certificates] max_per_account: an account that has as many enabled
    certificates as it may add is told to disable or revoke one first.
    """
    h = Harness()
    for n in range(MAX_PER_ACCOUNT):
        h.register(f"Device {n}")
    client = h.client()
    element = submit(client, ADD, start(client, ADD), {"name": "One more", "certificate": pem(h.certificate())})
    [(kind, text)] = notesOf(element)
    assert kind == "error" and f"{MAX_PER_ACCOUNT} enabled certificates" in text and "disable or revoke" in text
    assert "One more" not in h.states()


def test_addStoreFailure() -> None:
    """
    A store failure is internal-server-error of type wait, a warning in the
    log, never an error.
    """
    h = Harness()
    client = h.client()
    shown = start(client, ADD)

    def broken(*args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        return defer.fail(StoreError("database is locked"))

    h.store.addCertificate = broken  # type: ignore[method-assign]
    with capturedLogs() as events:
        reply = send(client, ADD, shown["sessionid"], submission({"name": "Phone", "certificate": pem(h.certificate())}))
    assert stanzaErrorCondition(reply) == "internal-server-error"
    assert reply.error["type"] == "wait"
    noErrorLogged(events)
    assert any(e.get("log_level") == LogLevel.warn for e in events)


# --- disable -----------------------------------------------------------------------------


def test_disable() -> None:
    """
    XEP-0257 section 2.3 through a command: the form offers the enabled
    certificates; those chosen can no longer log in, their sessions stay;
    cert.disable is audited with the session as actor.
    """
    h = Harness()
    phone = h.register("Phone")
    h.register("Laptop")
    h.register("Old")
    resultOf(h.manager.revoke(OPERATOR, ALICE, ["Old"]))
    phoneClient = h.certificateClient(phone)
    client = h.client()
    shown = start(client, DISABLE)
    assert optionsOf(shown, "certificates") == ["Phone", "Laptop"]
    assert formOf(shown).fields["certificates"].fieldType == "list-multi"
    element = submit(client, DISABLE, shown, {"certificates": ["Phone"]})
    assert element["status"] == "completed"
    [(kind, text)] = notesOf(element)
    assert kind == "info" and text.startswith("Disabled: 'Phone'")
    assert h.states() == {"Phone": "disabled", "Laptop": "enabled", "Old": "revoked"}
    h.clock.advance(1)
    assert not phoneClient.closed
    assert [(e.actor, e.action, e.target) for e in h.audit()][-1] == (f"{ALICE}/desk", "cert.disable", f"{ALICE}/Phone")


def test_disableNothingToDisable() -> None:
    """
    Without an enabled certificate, the command completes at once saying
    so.
    """
    element = command(send(Harness().client(), DISABLE))
    assert element["status"] == "completed"
    assert notesOf(element) == [("info", "You have no certificate to disable")]


def test_disableChangedMeanwhile() -> None:
    """
    A certificate revoked between the form and its submission is reported
    in an error note; the others chosen are disabled all the same.
    """
    h = Harness()
    h.register("Phone")
    h.register("Laptop")
    client = h.client()
    shown = start(client, DISABLE)
    resultOf(h.manager.revoke(OPERATOR, ALICE, ["Phone"]))
    element = submit(client, DISABLE, shown, {"certificates": ["Phone", "Laptop"]})
    notes = notesOf(element)
    assert notes[0][0] == "info" and "'Laptop'" in notes[0][1]
    assert notes[1] == ("error", "No longer there to disable (changed meanwhile): 'Phone'")
    assert h.states() == {"Phone": "revoked", "Laptop": "disabled"}


def test_cannotNameAnotherAccount() -> None:
    """
    An account acts on itself only: a form field naming another account
    is dropped, and a certificate of another account is not a choice
    (bad-payload); nothing of bob's changes.
    """
    h = Harness()
    h.register("Phone")
    h.register("Bobs", owner=BOB)
    client = h.client()
    shown = start(client, DISABLE)
    reply = send(
        client, DISABLE, shown["sessionid"], submission({"accountjid": BOB, "certificates": ["Bobs"]})
    )
    assert stanzaErrorCondition(reply) == "bad-request"
    assert [c.name for c in reply.error.elements() if c.uri == NS_COMMANDS] == ["bad-payload"]
    assert h.states(BOB) == {"Bobs": "enabled"}
    element = submit(client, DISABLE, shown, {"accountjid": BOB, "certificates": ["Phone"]})
    assert element["status"] == "completed"
    assert h.states(BOB) == {"Bobs": "enabled"}
    assert h.states() == {"Phone": "disabled"}


# --- revoke ------------------------------------------------------------------------------


def test_revokeEndsSession() -> None:
    """
    XEP-0257 section 2.4 through a command: the form offers enabled and
    disabled certificates; a confirmation stage lists them with their
    fingerprints; then they are revoked and their sessions are closed with
    reset at once; cert.revoke is audited.
    """
    h = Harness()
    phone = h.register("Phone")
    h.register("Tablet")
    resultOf(h.manager.disable(OPERATOR, ALICE, ["Tablet"]))
    phoneClient = h.certificateClient(phone)
    client = h.client()
    shown = start(client, REVOKE)
    assert optionsOf(shown, "certificates") == ["Phone", "Tablet"]
    confirm = submit(client, REVOKE, shown, {"certificates": ["Phone"]})
    assert confirm["status"] == "executing"
    form = formOf(confirm)
    assert fixedLines(confirm) == [
        f"Phone: {x509.displayFingerprint(x509.fingerprint(phone))}"
    ]
    assert form.fields["confirm"].fieldType == "boolean"
    assert h.states()["Phone"] == "enabled"
    element = submit(client, REVOKE, confirm, {"confirm": "true"})
    assert element["status"] == "completed"
    [(kind, text)] = notesOf(element)
    assert kind == "info" and "Revoked: 'Phone'" in text and "sessions end now" in text
    assert h.states() == {"Phone": "revoked", "Tablet": "disabled"}
    h.clock.advance(0)
    assert phoneClient.closed
    assert phoneClient.received().streamError() == "reset"
    assert not client.closed
    assert [(e.actor, e.action) for e in h.audit()][-1] == (f"{ALICE}/desk", "cert.revoke")


def test_revokeOnlyWhatWasConfirmed() -> None:
    """
    Revoking is final, so only the certificate whose fingerprint was
    confirmed is revoked: when its name picks another certificate by then
    (a new "Phone" added while the old, disabled one was being confirmed),
    nothing is revoked and the user is told it changed meanwhile.
    """
    h = Harness()
    old = h.register("Phone")
    resultOf(h.manager.disable(OPERATOR, ALICE, ["Phone"]))
    client = h.client()
    confirm = submit(client, REVOKE, start(client, REVOKE), {"certificates": ["Phone"]})
    assert fixedLines(confirm) == [f"Phone: {x509.displayFingerprint(x509.fingerprint(old))}"]
    new = h.register("Phone")
    element = submit(client, REVOKE, confirm, {"confirm": "true"})
    assert element["status"] == "completed"
    assert notesOf(element) == [("error", "No longer there to revoke (changed meanwhile): 'Phone'")]
    states = {c.fingerprint: c.state for c in resultOf(h.store.listCertificates(ALICE))}
    assert states == {x509.fingerprint(old): "disabled", x509.fingerprint(new): "enabled"}


def test_revokeNeedsConfirmation() -> None:
    """
    Revoking is final, so it is confirmed: without the box ticked the
    confirmation is shown again with an error note, and nothing is
    revoked.
    """
    h = Harness()
    h.register("Phone")
    client = h.client()
    confirm = submit(client, REVOKE, start(client, REVOKE), {"certificates": ["Phone"]})
    again = submit(client, REVOKE, confirm, {"confirm": "false"})
    assert again["status"] == "executing"
    assert notesOf(again) == [("error", "Tick 'Yes, revoke them' to revoke, or cancel")]
    assert h.states() == {"Phone": "enabled"}


def test_revokeOwnCertificate() -> None:
    """
    XEP-0257 section 2.4: a session may revoke the certificate it logged
    in with; the confirmation warns it, the answer arrives, then the
    stream is closed.
    """
    h = Harness()
    phone = h.register("Phone")
    client = h.certificateClient(phone)
    confirm = submit(client, REVOKE, start(client, REVOKE), {"certificates": ["Phone"]})
    assert notesOf(confirm) == [("warn", "This session logged in with one of them: it ends too.")]
    element = submit(client, REVOKE, confirm, {"confirm": "1"})
    assert element["status"] == "completed"
    h.clock.advance(0)
    assert client.closed


def test_revokePrev() -> None:
    """
    XEP-0050 section 3.4.2: from the confirmation, prev shows the choice
    again; a new choice is what is confirmed and revoked.
    """
    h = Harness()
    h.register("Phone")
    laptop = h.register("Laptop")
    client = h.client()
    shown = start(client, REVOKE)
    confirm = submit(client, REVOKE, shown, {"certificates": ["Phone"]})
    [actions] = list(confirm.elements(NS_COMMANDS, "actions"))
    assert [c.name for c in actions.elements()] == ["prev", "complete"]
    back = command(send(client, REVOKE, shown["sessionid"], action="prev"))
    assert optionsOf(back, "certificates") == ["Phone", "Laptop"]
    confirm = submit(client, REVOKE, back, {"certificates": ["Laptop"]})
    assert fixedLines(confirm) == [f"Laptop: {x509.displayFingerprint(x509.fingerprint(laptop))}"]
    submit(client, REVOKE, confirm, {"confirm": "true"})
    assert h.states() == {"Phone": "enabled", "Laptop": "revoked"}


def test_revokeCancel() -> None:
    """
    XEP-0050 section 3.4.4: a command canceled at the confirmation changes
    nothing and records nothing.
    """
    h = Harness()
    h.register("Phone")
    client = h.client()
    confirm = submit(client, REVOKE, start(client, REVOKE), {"certificates": ["Phone"]})
    element = command(send(client, REVOKE, confirm["sessionid"], action="cancel"))
    assert element["status"] == "canceled"
    assert h.states() == {"Phone": "enabled"}
    assert h.audit() == []


def test_revokeExpiredSession() -> None:
    """
    XEP-0050 section 4.6: a session left alone past the timeout has
    expired (not-allowed, session-expired); nothing is revoked.
    """
    h = Harness()
    h.register("Phone")
    client = h.client()
    confirm = submit(client, REVOKE, start(client, REVOKE), {"certificates": ["Phone"]})
    h.clock.advance(h.service.sessionTimeout + 1)
    reply = send(client, REVOKE, confirm["sessionid"], submission({"confirm": "true"}))
    assert stanzaErrorCondition(reply) == "not-allowed"
    assert [c.name for c in reply.error.elements() if c.uri == NS_COMMANDS] == ["session-expired"]
    assert h.states() == {"Phone": "enabled"}


def test_revokeSharedName() -> None:
    """
    Names are what the manager takes: of a disabled and an enabled
    certificate with one name, the enabled one is offered (and revoked);
    the disabled one is offered once that is done.
    """
    h = Harness()
    first = h.register("Phone")
    resultOf(h.manager.disable(OPERATOR, ALICE, ["Phone"]))
    second = h.register("Phone")
    client = h.client()
    confirm = submit(client, REVOKE, start(client, REVOKE), {"certificates": ["Phone"]})
    assert fixedLines(confirm) == [f"Phone: {x509.displayFingerprint(x509.fingerprint(second))}"]
    submit(client, REVOKE, confirm, {"confirm": "true"})
    byFingerprint = {c.fingerprint: c.state for c in resultOf(h.store.listCertificates(ALICE))}
    assert byFingerprint == {x509.fingerprint(first): "disabled", x509.fingerprint(second): "revoked"}
    confirm = submit(client, REVOKE, start(client, REVOKE), {"certificates": ["Phone"]})
    assert fixedLines(confirm) == [f"Phone: {x509.displayFingerprint(x509.fingerprint(first))}"]


# --- sessions ----------------------------------------------------------------------------


def test_sessionsEndOne() -> None:
    """
    The account's live sessions are offered but the requester's own; one
    chosen is ended through the control channel's kick (policy-violation,
    saying it was ended from another session of the account, not by an
    administrator) and recorded as session.kick by the session.
    """
    h = Harness()
    phone = h.register("Phone")
    phoneClient = h.certificateClient(phone, "phone")
    laptop = h.client("laptop")
    client = h.client("desk")
    shown = start(client, SESSIONS)
    assert optionsOf(shown, "sessions") == [f"{ALICE}/laptop", f"{ALICE}/phone"]
    labels = {o.value: o.label for o in formOf(shown).fields["sessions"].options}
    assert "EXTERNAL" in labels[f"{ALICE}/phone"] and "certificate Phone" in labels[f"{ALICE}/phone"]
    assert "PLAIN" in labels[f"{ALICE}/laptop"]
    assert fixedLines(shown) == ["This session (desk) is not offered: log out to end it."]
    element = submit(client, SESSIONS, shown, {"sessions": [f"{ALICE}/phone"]})
    assert notesOf(element) == [("info", "Ended: phone")]
    assert phoneClient.closed
    output = phoneClient.received()
    assert output.streamError() == "policy-violation"
    assert "Ended from another session of this account" in output.raw
    assert not laptop.closed
    [entry] = h.audit()
    assert (entry.actor, entry.action, entry.target) == (f"{ALICE}/desk", "session.kick", ALICE)


def test_sessionsAlone() -> None:
    """
    With no other session, the sessions are shown as a table and the
    command completes.
    """
    element = command(send(Harness().client("desk"), SESSIONS))
    assert element["status"] == "completed"
    columns, rows = table(element)
    assert [c[0] for c in columns] == ["resource", "address", "mechanism", "certificate", "since"]
    assert [(r["resource"], r["mechanism"]) for r in rows] == [("desk", "PLAIN")]


def test_sessionsReadOnlyForNoCertManagement() -> None:
    """
    A <no-cert-management/> login sees the sessions, as a table, and may
    end none.
    """
    h = Harness()
    h.client("desk")
    kiosk = h.certificateClient(h.register("Kiosk", mayManage=False), "kiosk")
    element = command(send(kiosk, SESSIONS))
    assert element["status"] == "completed"
    assert sorted(r["resource"] for r in table(element)[1]) == ["desk", "kiosk"]
    assert notesOf(element)[-1] == ("warn", "This session's certificate may not end sessions")


def test_sessionsRebound() -> None:
    """
    A session that ended after the form was shown, its resource bound
    again by a new one, is not ended: it is another session.
    """
    h = Harness()
    old = h.client("laptop")
    client = h.client("desk")
    shown = start(client, SESSIONS)
    old.transport.loseConnection()
    h.clock.advance(5)
    new = h.client("laptop")
    element = submit(client, SESSIONS, shown, {"sessions": [f"{ALICE}/laptop"]})
    assert notesOf(element) == [("warn", "Ended already: laptop")]
    assert not new.closed
    assert h.audit() == []


# --- administrators -------------------------------------------------------------------------


def test_adminListsAnotherAccount() -> None:
    """
    An administrator names an account (jid-single) and gets its table.
    """
    h = Harness()
    h.register("Bobs", owner=BOB)
    admin = h.client(user="admin")
    shown = start(admin, ADMIN_LIST)
    form = formOf(shown)
    assert (form.fields["accountjid"].fieldType, form.fields["accountjid"].required) == ("jid-single", True)
    element = submit(admin, ADMIN_LIST, shown, {"accountjid": BOB})
    assert element["status"] == "completed"
    assert [r["name"] for r in table(element)[1]] == ["Bobs"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        (CAROL, f"There is no account {CAROL}"),
        ("bob@elsewhere.example", "not a domain of this server"),
        (f"{BOB}/phone", "full JID"),
        (DOMAIN, "no localpart"),
    ],
)
def test_adminAccountRefused(address: str, reason: str) -> None:
    """
    Only existing accounts of served domains: anything else shows the
    account form again with the reason.
    """
    h = Harness()
    admin = h.client(user="admin")
    element = submit(admin, ADMIN_LIST, start(admin, ADMIN_LIST), {"accountjid": address})
    assert element["status"] == "executing"
    [(kind, text)] = notesOf(element)
    assert kind == "error" and reason in text, text


def test_adminRevokesAnotherAccount() -> None:
    """
    An administrator revokes a certificate of another account: its session
    ends, and the audit trail names the administrator as actor.
    """
    h = Harness()
    bobs = h.register("Bobs", owner=BOB)
    bobClient = h.certificateClient(bobs, "phone")
    admin = h.client(user="admin")
    shown = submit(admin, ADMIN_REVOKE, start(admin, ADMIN_REVOKE), {"accountjid": BOB})
    assert optionsOf(shown, "certificates") == ["Bobs"]
    confirm = submit(admin, ADMIN_REVOKE, shown, {"certificates": ["Bobs"]})
    assert notesOf(confirm) == []
    submit(admin, ADMIN_REVOKE, confirm, {"confirm": "true"})
    h.clock.advance(0)
    assert bobClient.closed
    assert h.states(BOB) == {"Bobs": "revoked"}
    [entry] = h.audit()
    assert (entry.actor, entry.action, entry.target) == (ADMIN, "cert.revoke", f"{BOB}/Bobs")


def test_adminAddsAndDisables() -> None:
    """
    An administrator adds a certificate to another account (cert.add, no
    per-account limit) and disables one there, both audited with the
    administrator as actor.
    """
    h = Harness()
    for n in range(MAX_PER_ACCOUNT):
        h.register(f"Device {n}", owner=BOB)
    admin = h.client(user="admin")
    shown = submit(admin, ADMIN_ADD, start(admin, ADMIN_ADD), {"accountjid": BOB})
    assert "to bob@example.com" in formOf(shown).title
    element = submit(admin, ADMIN_ADD, shown, {"name": "Extra", "certificate": pem(h.certificate(BOB))})
    assert element["status"] == "completed"
    shown = submit(admin, ADMIN_DISABLE, start(admin, ADMIN_DISABLE), {"accountjid": BOB})
    submit(admin, ADMIN_DISABLE, shown, {"certificates": ["Device 0"]})
    assert h.states(BOB)["Extra"] == "enabled" and h.states(BOB)["Device 0"] == "disabled"
    assert [(e.actor, e.action, e.target) for e in h.audit()] == [
        (ADMIN, "cert.add", f"{BOB}/Extra"),
        (ADMIN, "cert.disable", f"{BOB}/Device 0"),
    ]


def test_adminEndsAnotherAccountsSession() -> None:
    """
    An administrator ends a session of another account; session.kick is
    recorded with the administrator as actor.
    """
    h = Harness()
    bob = h.client("phone", user="bob")
    admin = h.client(user="admin")
    shown = submit(admin, ADMIN_SESSIONS, start(admin, ADMIN_SESSIONS), {"accountjid": BOB})
    assert optionsOf(shown, "sessions") == [f"{BOB}/phone"]
    submit(admin, ADMIN_SESSIONS, shown, {"sessions": [f"{BOB}/phone"]})
    assert bob.closed
    assert [(e.actor, e.action, e.target) for e in h.audit()] == [(ADMIN, "session.kick", BOB)]


def test_adminRightWithdrawn() -> None:
    """
    An administrator whose right is withdrawn during a command cannot
    finish it (forbidden), and nothing changes.
    """
    h = Harness()
    h.register("Bobs", owner=BOB)
    admin = h.client(user="admin")
    shown = submit(admin, ADMIN_DISABLE, start(admin, ADMIN_DISABLE), {"accountjid": BOB})
    h.admins.clear()
    reply = send(admin, ADMIN_DISABLE, shown["sessionid"], submission({"certificates": ["Bobs"]}))
    assert stanzaErrorCondition(reply) == "forbidden"
    assert h.states(BOB) == {"Bobs": "enabled"}


def test_adminOwnCommandsActOnOwnAccount() -> None:
    """
    An administrator's user commands act on their own account, as the
    account (subject to its limit), not on another.
    """
    h = Harness()
    h.register("Bobs", owner=BOB)
    admin = h.client(user="admin")
    element = command(send(admin, LIST))
    assert table(element)[1] == []
    assert notesOf(element) == [("info", "You have no certificates")]
