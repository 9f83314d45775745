# -*- test-case-name: tests.test_adhoc_admin -*-
"""
Tests for L{xmppcert.adhoc.admin}: the XEP-0133 service administration
commands, end to end through a bound stream of an in-memory server over an
L{InMemoryAccountStore}, with the control channel's code behind locks,
kicks and password changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.logger import LogEvent, LogLevel, capturedLogs
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

# wokkel 18 imports only once xmppcert has installed its compatibility shim.
import xmppcert  # noqa: F401

# isort: split
from wokkel import data_form

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    PASSWORD,
    ClientConnection,
    ServerHarness,
    addAccount,
    bindSession,
    makeServer,
    resultOf,
    stanzaErrorCondition,
    syncDeferToThread,
)
from xmppcert import passwords
from xmppcert.adhoc import NS_COMMANDS, CommandService
from xmppcert.adhoc.admin import (
    ADD_USER,
    CHANGE_USER_PASSWORD,
    DELETE_USER,
    DISABLE_USER,
    END_USER_SESSION,
    GET_ONLINE_USERS_LIST,
    GET_ONLINE_USERS_NUM,
    GET_REGISTERED_USERS_NUM,
    NS_ADMIN,
    REENABLE_USER,
    AdminCommands,
)
from xmppcert.control import ControlChannel
from xmppcert.handlers import defaultHandlers
from xmppcert.sasl import NS_SASL
from xmppcert.store.interfaces import AuditEntry, StoreError

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_X_DATA = "jabber:x:data"
CAROL = "carol@example.com"

ALL_NODES = [
    ADD_USER,
    DELETE_USER,
    DISABLE_USER,
    REENABLE_USER,
    END_USER_SESSION,
    CHANGE_USER_PASSWORD,
    GET_REGISTERED_USERS_NUM,
    GET_ONLINE_USERS_NUM,
    GET_ONLINE_USERS_LIST,
]

Values = Mapping[str, str | Sequence[str]]


class Harness:
    """
    An in-memory server (alice and bob, alice the administrator) whose
    streams get the XEP-0133 commands.
    """

    def __init__(self, admins: Sequence[str] = (ALICE,)) -> None:
        self.clock = task.Clock()
        self.service = CommandService(self.clock)
        self.server: ServerHarness = makeServer(handlerFactories=[defaultHandlers, self.service.handlerFactory])
        self.store = self.server.store
        self.control = ControlChannel(self.server.sessions, self.store, self.clock)
        self.admins = set(admins)
        self.admin = AdminCommands(
            self.store,
            self.control,
            lambda address: address.userhost() in self.admins,
            self.clock,
            scramIterations=4096,
            deferToThread=syncDeferToThread,
            accountRemoved=lambda: self.removals.append(None),
        )
        self.removals: list[None] = []
        self.admin.install(self.service)

    def client(self, resource: str = "phone", user: str = "alice", password: str = PASSWORD) -> ClientConnection:
        client = self.server.connect()
        client.loginPlain(user, password)
        result = client.bind(resource).only("iq")
        assert result["type"] == "result", result.toXml()
        return client

    def audit(self) -> list[AuditEntry]:
        trail: list[AuditEntry] = resultOf(self.store.auditTrail())
        return trail


def submission(values: Values) -> str:
    parts = [f"<x xmlns='{NS_X_DATA}' type='submit'>"]
    parts.append(f"<field var='FORM_TYPE' type='hidden'><value>{NS_ADMIN}</value></field>")
    for var, value in values.items():
        items = [value] if isinstance(value, str) else list(value)
        parts.append(f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in items) + "</field>")
    parts.append("</x>")
    return "".join(parts)


def send(client: ClientConnection, node: str, sessionid: str | None = None, payload: str = "") -> domish.Element:
    session = f" sessionid='{sessionid}'" if sessionid is not None else ""
    client.send(
        f"<iq type='set' id='a1' to='{DOMAIN}'>"
        f"<command xmlns='{NS_COMMANDS}' node='{node}'{session}>{payload}</command></iq>"
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


def run(client: ClientConnection, node: str, values: Values) -> domish.Element:
    """
    Execute C{node}, check its form is an admin form, submit C{values} and
    return the answer to that.
    """
    first = command(send(client, node))
    assert first["status"] == "executing", first.toXml()
    assert formOf(first).formNamespace == NS_ADMIN
    return send(client, node, first["sessionid"], submission(values))


def completedNotes(reply: domish.Element) -> list[tuple[str, str]]:
    element = command(reply)
    assert element["status"] == "completed", element.toXml()
    return notesOf(element)


def canLogIn(h: Harness, user: str, password: str) -> bool:
    client = h.server.connect()
    client.startTLS()
    answer = client.auth("PLAIN", b"\0" + user.encode() + b"\0" + password.encode())
    return answer.only().name == "success" and answer.only().uri == NS_SASL


def noErrorLogged(events: Sequence[LogEvent]) -> None:
    bad = [e for e in events if e.get("log_level") in (LogLevel.error, LogLevel.critical)]
    assert not bad, bad


# --- who may --------------------------------------------------------------------


def test_adminSeesCommands() -> None:
    """
    XEP-0133 section 3: the server advertises its administration commands
    through XEP-0050 discovery, at the XEP's node names, to an
    administrator.
    """
    client = Harness().client()
    client.send(f"<iq type='get' id='d' to='{DOMAIN}'><query xmlns='{NS_DISCO_ITEMS}' node='{NS_COMMANDS}'/></iq>")
    reply = client.received().only("iq")
    assert [i["node"] for i in reply.query.elements(NS_DISCO_ITEMS, "item")] == ALL_NODES


@pytest.mark.parametrize("node", ALL_NODES)
def test_nonAdminRefused(node: str) -> None:
    """
    XEP-0133 section 8: the commands are not granted to users without
    administrative privileges: not listed, disco#info and execution are
    forbidden.
    """
    client = Harness().client(user="bob")
    client.send(f"<iq type='get' id='d' to='{DOMAIN}'><query xmlns='{NS_DISCO_ITEMS}' node='{NS_COMMANDS}'/></iq>")
    assert list(client.received().only("iq").query.elements(NS_DISCO_ITEMS, "item")) == []
    client.send(f"<iq type='get' id='i' to='{DOMAIN}'><query xmlns='{NS_DISCO_INFO}' node='{node}'/></iq>")
    assert stanzaErrorCondition(client.received().only("iq")) == "forbidden"
    assert stanzaErrorCondition(send(client, node)) == "forbidden"


def test_restrictedDeviceOnlyReads() -> None:
    """
    An administrator logged in with a certificate registered with
    <no-cert-management/> (XEP-0257 §2.3) may not change certificates, so
    it may not delete, lock, re-key or kick accounts either: only the
    commands that read (counts, online users) are offered and run.
    """
    from xmppcert.adhoc.framework import Requester
    from xmppcert.cred import Account

    h = Harness()
    restricted = Requester(
        jid.JID(f"{ALICE}/phone"),
        Account(jid.JID(ALICE), certificateFingerprint="ab" * 32, canManageCertificates=False),
        DOMAIN,
        "EXTERNAL",
    )
    offered = {c.node for c in h.service.commandsFor(restricted)}
    reading = {GET_REGISTERED_USERS_NUM, GET_ONLINE_USERS_NUM, GET_ONLINE_USERS_LIST}
    assert offered == reading
    full = Requester(jid.JID(f"{ALICE}/phone"), Account(jid.JID(ALICE)), DOMAIN, "EXTERNAL")
    assert {c.node for c in h.service.commandsFor(full)} == set(ALL_NODES)


def test_adminRightWithdrawn() -> None:
    """
    XEP-0133 section 8: an administrator whose right is withdrawn during a
    command cannot finish it.
    """
    h = Harness()
    client = h.client()
    first = command(send(client, DELETE_USER))
    h.admins.clear()
    reply = send(client, DELETE_USER, first["sessionid"], submission({"accountjids": BOB}))
    assert stanzaErrorCondition(reply) == "forbidden"
    assert BOB in h.store.accounts


# --- add user -----------------------------------------------------------------


def test_addUserForm() -> None:
    """
    XEP-0133 section 4.1: the form has FORM_TYPE
    http://jabber.org/protocol/admin, a required jid-single accountjid,
    and the password twice as text-private (password, password-verify).
    """
    element = command(send(Harness().client(), ADD_USER))
    form = formOf(element)
    assert form.formType == "form"
    assert form.fields["accountjid"].fieldType == "jid-single"
    assert form.fields["accountjid"].required
    assert form.fields["password"].fieldType == "text-private"
    assert form.fields["password-verify"].fieldType == "text-private"


def test_addUser() -> None:
    """
    XEP-0133 section 4.1: the account is created with the password (as
    SCRAM credentials), can log in, and the audit trail records user.add
    by the administrator's bare JID.
    """
    h = Harness()
    reply = run(h.client(), ADD_USER, {"accountjid": "Carol@Example.com", "password": "pw 1", "password-verify": "pw 1"})
    assert completedNotes(reply) == [("info", f"Added {CAROL}")]
    credential = h.store.accounts[CAROL]["SCRAM-SHA-256"]
    assert passwords.verifyPassword(credential, "pw 1")
    assert canLogIn(h, "carol", "pw 1")
    [entry] = h.audit()
    assert (entry.actor, entry.action, entry.target, entry.detail) == (ALICE, "user.add", CAROL, "")


def test_servedDomainsFollowReload() -> None:
    """
    Only accounts of the served domains are administered, as they are now:
    a domain a reload adds is accepted at once, one it removes refused.
    """
    h = Harness()
    client = h.client()
    values = {"accountjid": "dora@example.net", "password": "pw", "password-verify": "pw"}
    refused = run(client, ADD_USER, values)
    assert command(refused)["status"] == "executing"
    h.server.sessions.domains = frozenset({DOMAIN, "example.net"})
    assert completedNotes(run(client, ADD_USER, values)) == [("info", "Added dora@example.net")]


def test_addUserWithoutPassword() -> None:
    """
    As C{xmppcert user add --no-password}: without a password the account
    has no password credentials (it logs in with a certificate), and the
    audit trail says so.
    """
    h = Harness()
    reply = run(h.client(), ADD_USER, {"accountjid": CAROL})
    [(kind, text)] = completedNotes(reply)
    assert kind == "info" and "without a password" in text
    assert h.store.accounts[CAROL] == {}
    assert [(e.action, e.detail) for e in h.audit()] == [("user.add", "without a password")]


def test_addUserPasswordsDiffer() -> None:
    """
    XEP-0133 section 4.1: the password is typed twice; when they differ
    the form is shown again with the reason, and nothing is created.
    """
    h = Harness()
    element = command(run(h.client(), ADD_USER, {"accountjid": CAROL, "password": "a", "password-verify": "b"}))
    assert element["status"] == "executing"
    assert notesOf(element) == [("error", "The two passwords differ")]
    assert formOf(element)["accountjid"] == CAROL
    assert CAROL not in h.store.accounts
    assert h.audit() == []


def test_addUserExists() -> None:
    """
    XEP-0133 section 5: adding a user that exists is a conflict.
    """
    h = Harness()
    reply = run(h.client(), ADD_USER, {"accountjid": BOB, "password": "x", "password-verify": "x"})
    assert stanzaErrorCondition(reply) == "conflict"
    assert h.audit() == []


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("carol@elsewhere.example", "not a domain of this server"),
        (f"{CAROL}/phone", "full JID"),
        (DOMAIN, "no localpart"),
        ("carol@@example.com", "not a valid JID"),
    ],
)
def test_addUserBadJID(address: str, reason: str) -> None:
    """
    Only accounts (user@domain) of served domains: another domain, a full
    JID, a domain alone or a malformed JID shows the form again with the
    reason; nothing is created and nothing is logged as an error.
    """
    h = Harness()
    with capturedLogs() as events:
        element = command(run(h.client(), ADD_USER, {"accountjid": address, "password": "x", "password-verify": "x"}))
    assert element["status"] == "executing"
    [(kind, text)] = notesOf(element)
    assert kind == "error" and reason in text, text
    assert set(h.store.accounts) == {ALICE, BOB}
    noErrorLogged(events)


# --- delete user ----------------------------------------------------------------


def test_deleteUser() -> None:
    """
    XEP-0133 section 4.2: deleting ends the user's sessions (not-authorized)
    and removes the account and its data; a JID without an account is
    reported in an error note; user.delete is audited with the
    administrator as actor.
    """
    h = Harness()
    admin = h.client()
    bob = h.client(user="bob")
    resultOf(h.store.setVCard(BOB, "<vCard xmlns='vcard-temp'/>"))
    reply = run(admin, DELETE_USER, {"accountjids": [BOB, CAROL]})
    assert completedNotes(reply) == [
        ("info", f"Deleted: {BOB} (1 session ended)"),
        ("error", f"No such account: {CAROL}"),
    ]
    assert bob.received().streamError() == "not-authorized"
    assert BOB not in h.store.accounts
    assert resultOf(h.store.getVCard(BOB)) is None
    assert [(e.actor, e.action, e.target) for e in h.audit()] == [(ALICE, "user.delete", BOB)]
    assert not canLogIn(h, "bob", PASSWORD)
    # The rosters kept in memory for presence are read again (the store
    # took bob out of them).
    assert h.removals == [None]


def test_deleteSelf() -> None:
    """
    An administrator may delete their own account: their stream ends like
    any other session of it (not-authorized), and nothing fails.
    """
    h = Harness()
    admin = h.client()
    first = command(send(admin, DELETE_USER))
    with capturedLogs() as events:
        admin.send(
            f"<iq type='set' id='a1' to='{DOMAIN}'><command xmlns='{NS_COMMANDS}' node='{DELETE_USER}'"
            f" sessionid='{first['sessionid']}'>{submission({'accountjids': ALICE})}</command></iq>"
        )
    assert admin.received().streamError() == "not-authorized"
    assert ALICE not in h.store.accounts
    assert h.service.openSessions(jid.JID(ALICE)) == 0
    noErrorLogged(events)


def test_deleteUserBadJIDs() -> None:
    """
    Nothing is deleted when one of the JIDs is not an account of this
    server: the form comes again with every reason (and what was typed);
    a malformed JID among them likewise.
    """
    h = Harness()
    element = command(run(h.client(), DELETE_USER, {"accountjids": [BOB, "x@elsewhere.example", DOMAIN]}))
    assert element["status"] == "executing"
    [(kind, text)] = notesOf(element)
    assert kind == "error" and "elsewhere.example is not a domain" in text and "no localpart" in text
    assert formOf(element)["accountjids"] == [BOB, "x@elsewhere.example", DOMAIN]
    malformed = command(run(h.client("laptop"), DELETE_USER, {"accountjids": [BOB, "y@@z"]}))
    assert malformed["status"] == "executing"
    [(kind, text)] = notesOf(malformed)
    assert kind == "error" and "y@@z" in text
    assert BOB in h.store.accounts
    assert h.audit() == []


# --- disable and re-enable user -------------------------------------------------


def test_disableUser() -> None:
    """
    XEP-0133 section 4.3: disabling ends the user's sessions at once (as
    the control channel's lock: not-authorized) and prevents logins until
    re-enabled; user.lock is audited with the administrator as actor.
    """
    h = Harness()
    admin = h.client()
    bob = h.client(user="bob")
    reply = run(admin, DISABLE_USER, {"accountjids": BOB})
    assert completedNotes(reply) == [("info", f"Disabled: {BOB} (1 session ended)")]
    assert bob.received().streamError() == "not-authorized"
    assert BOB in h.store.locked
    assert not canLogIn(h, "bob", PASSWORD)
    assert [(e.actor, e.action, e.target) for e in h.audit()] == [(ALICE, "user.lock", BOB)]


def test_reenableUser() -> None:
    """
    XEP-0133 section 4.4: re-enabling lets the user log in again;
    user.unlock is audited; a JID without an account is an error note.
    """
    h = Harness()
    resultOf(h.store.setAccountLocked(BOB, True))
    reply = run(h.client(), REENABLE_USER, {"accountjids": [BOB, CAROL]})
    assert completedNotes(reply) == [("info", f"Re-enabled: {BOB}"), ("error", f"No such account: {CAROL}")]
    assert BOB not in h.store.locked
    assert canLogIn(h, "bob", PASSWORD)
    assert [(e.actor, e.action, e.target) for e in h.audit()] == [(ALICE, "user.unlock", BOB)]


# --- end user session -----------------------------------------------------------


def test_endUserSessionBare() -> None:
    """
    XEP-0133 section 4.5: a bare JID ends all of the user's sessions
    (policy-violation, as C{xmppcert kick}), which may log in again;
    session.kick is audited with the administrator as actor.
    """
    h = Harness()
    admin = h.client()
    phone = h.client("phone", "bob")
    laptop = h.client("laptop", "bob")
    reply = run(admin, END_USER_SESSION, {"accountjids": BOB})
    assert completedNotes(reply) == [("info", f"Ended {BOB}: 2 sessions")]
    assert phone.received().streamError() == "policy-violation"
    assert laptop.received().streamError() == "policy-violation"
    assert canLogIn(h, "bob", PASSWORD)
    assert [(e.actor, e.action, e.target) for e in h.audit()] == [(ALICE, "session.kick", BOB)]


def test_endUserSessionFull() -> None:
    """
    XEP-0133 section 4.5: a full JID ends only the session of that
    resource.
    """
    h = Harness()
    admin = h.client()
    phone = h.client("phone", "bob")
    laptop = h.client("laptop", "bob")
    reply = run(admin, END_USER_SESSION, {"accountjids": f"{BOB}/phone"})
    assert completedNotes(reply) == [("info", f"Ended {BOB}/phone: 1 session")]
    assert phone.received().streamError() == "policy-violation"
    assert not laptop.closed
    assert [s.jid.full() for s in h.server.sessions.sessionsOf(jid.JID(BOB))] == [f"{BOB}/laptop"]


# --- change user password ---------------------------------------------------------


def test_changeUserPasswordForm() -> None:
    """
    XEP-0133 section 4.7: the form has a required accountjid and a
    required text-private password.
    """
    form = formOf(command(send(Harness().client(), CHANGE_USER_PASSWORD)))
    assert form.fields["accountjid"].required
    assert form.fields["password"].fieldType == "text-private"
    assert form.fields["password"].required


def test_changeUserPassword() -> None:
    """
    XEP-0133 section 4.7: the new password works and the old one no
    longer does; the sessions that logged in with the old password end
    (reset, as after C{xmppcert user passwd}); user.passwd and the
    session.kick are audited with the administrator as actor.
    """
    h = Harness()
    admin = h.client()
    bob = h.client(user="bob")
    reply = run(admin, CHANGE_USER_PASSWORD, {"accountjid": BOB, "password": "new secret"})
    assert completedNotes(reply) == [("info", f"Changed the password of {BOB}; 1 password session ended")]
    assert bob.received().streamError() == "reset"
    assert canLogIn(h, "bob", "new secret")
    assert not canLogIn(h, "bob", PASSWORD)
    assert [(e.actor, e.action, e.target) for e in h.audit()] == [
        (ALICE, "user.passwd", BOB),
        (ALICE, "session.kick", BOB),
    ]


def test_changeUserPasswordNoAccount() -> None:
    """
    An account that does not exist shows the form again with the reason;
    nothing is audited.
    """
    h = Harness()
    element = command(run(h.client(), CHANGE_USER_PASSWORD, {"accountjid": CAROL, "password": "x"}))
    assert element["status"] == "executing"
    assert notesOf(element) == [("error", f"There is no account {CAROL}")]
    assert h.audit() == []


def test_changeUserPasswordMissing() -> None:
    """
    XEP-0050 section 4.6: the password is required; leaving it out is
    bad-payload.
    """
    h = Harness()
    reply = run(h.client(), CHANGE_USER_PASSWORD, {"accountjid": BOB})
    assert stanzaErrorCondition(reply) == "bad-request"
    assert passwords.verifyPassword(h.store.accounts[BOB]["SCRAM-SHA-256"], PASSWORD)


# --- counts and lists -------------------------------------------------------------


def resultValues(reply: domish.Element) -> data_form.Form:
    element = command(reply)
    assert element["status"] == "completed", element.toXml()
    form = formOf(element)
    assert form.formType == "result"
    assert form.formNamespace == NS_ADMIN
    return form


def test_onlineUsersNum() -> None:
    """
    XEP-0133 section 4.15: the number of online users is the number of
    accounts with at least one session (onlineusersnum), in one step.
    """
    h = Harness()
    admin = h.client()
    h.client("phone", "bob")
    h.client("laptop", "bob")
    assert resultValues(send(admin, GET_ONLINE_USERS_NUM))["onlineusersnum"] == "2"


def test_registeredUsersNum() -> None:
    """
    XEP-0133 section 4.13: the number of registered users
    (registeredusersnum), of the served domains.
    """
    h = Harness()
    addAccount(h.store, "dave@elsewhere.example")
    assert resultValues(send(h.client(), GET_REGISTERED_USERS_NUM))["registeredusersnum"] == "2"


def test_onlineUsersList() -> None:
    """
    XEP-0133 section 4.20: a form asks max_items; the result lists the
    online users' bare JIDs (onlineuserjids), at most max_items of them,
    with a warning when there are more.
    """
    h = Harness()
    admin = h.client()
    for i in range(30):
        bindSession(h.server.sessions, f"user{i:02}@example.com/r")
    first = command(send(admin, GET_ONLINE_USERS_LIST))
    form = formOf(first)
    assert form.fields["max_items"].fieldType == "list-single"
    assert [o.value for o in form.fields["max_items"].options] == ["25", "50", "75", "100", "150", "200", "none"]
    reply = send(admin, GET_ONLINE_USERS_LIST, first["sessionid"], submission({"max_items": "25"}))
    element = command(reply)
    assert notesOf(element) == [("warn", "Showing 25 of 31 online users")]
    listed = formOf(element)["onlineuserjids"]
    assert listed[:2] == [ALICE, "user00@example.com"]
    assert len(listed) == 25
    everyone = run(admin, GET_ONLINE_USERS_LIST, {"max_items": "none"})
    assert len(resultValues(everyone)["onlineuserjids"]) == 31


# --- robustness -------------------------------------------------------------------


def test_auditFailure() -> None:
    """
    A failure to record in the audit trail does not undo nor fail the
    change; it is a warning.
    """

    def broken(*args: Any) -> defer.Deferred[Any]:
        return defer.fail(StoreError("audit trail unavailable"))

    h = Harness()
    h.store.recordAudit = broken  # type: ignore[method-assign, assignment]
    with capturedLogs() as events:
        reply = run(h.client(), ADD_USER, {"accountjid": CAROL})
    assert completedNotes(reply)[0][0] == "info"
    assert CAROL in h.store.accounts
    noErrorLogged(events)
    assert any(e.get("log_level") == LogLevel.warn and "audit trail" in e["log_format"] for e in events)
