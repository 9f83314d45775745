# -*- test-case-name: tests.test_adhoc -*-
"""
Tests for L{xmppcert.adhoc}: the XEP-0050 framework (discovery, execution
of single- and multi-stage commands, sessions and their errors) through a
real bound stream of an in-memory server, and the data form helpers of
L{xmppcert.adhoc.forms}.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.logger import LogEvent, LogLevel, capturedLogs
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from zope.interface.verify import verifyObject

# wokkel 18 imports only once xmppcert has installed its compatibility shim.
import xmppcert  # noqa: F401

# isort: split
from wokkel import data_form
from wokkel.generic import parseXml
from wokkel.iwokkel import IDisco

from tests.helpers import ALICE, BOB, DOMAIN, ClientConnection, makeServer, stanzaErrorCondition
from xmppcert.adhoc import (
    NS_COMMANDS,
    Command,
    CommandHandler,
    CommandService,
    Completed,
    ICommand,
    InvalidInput,
    Note,
    PayloadError,
    Requester,
    Show,
    boolean,
    completed,
    fixed,
    hidden,
    jidMulti,
    jidSingle,
    listMulti,
    listSingle,
    makeForm,
    parseSubmission,
    resultForm,
    textMulti,
    textOf,
    textPrivate,
    textSingle,
)
from xmppcert.adhoc.forms import refill
from xmppcert.handlers import defaultHandlers

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_X_DATA = "jabber:x:data"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_XML = "http://www.w3.org/XML/1998/namespace"
FULL = f"{ALICE}/phone"

Values = Mapping[str, str | Sequence[str]]


# --- commands used by the tests ---------------------------------------------


def greetingForm(name: str = "") -> data_form.Form:
    return makeForm(
        "Greeting",
        "Who is to be greeted?",
        [textSingle("name", "Name", required=True), textPrivate("secret", "Secret")],
    )


def askName(requester: Requester, submitted: data_form.Form | None, state: dict[str, Any]) -> data_form.Form:
    return greetingForm()


def askStyle(requester: Requester, submitted: data_form.Form | None, state: dict[str, Any]) -> Show:
    assert submitted is not None
    state["name"] = submitted["name"]
    return Show(
        makeForm("Style", (), [listSingle("style", "Style", ["plain", ("loud", "Loud!")], value="plain")]),
        (Note(f"Greeting {submitted['name']}"),),
    )


def greet(requester: Requester, submitted: data_form.Form | None, state: dict[str, Any]) -> Completed:
    assert submitted is not None
    text = f"Hello, {state['name']}"
    if submitted["style"] == "loud":
        text = text.upper() + "!"
    return completed(text, form=resultForm([textSingle("greeting", "Greeting", text)]))


def whoAmI(requester: Requester, submitted: data_form.Form | None, state: dict[str, Any]) -> Completed:
    return completed(requester.jid.full(), form=resultForm([textSingle("domain", None, requester.domain)]))


def askJID(requester: Requester, submitted: data_form.Form | None, state: dict[str, Any]) -> data_form.Form:
    return makeForm(
        "Pick",
        (),
        [
            jidSingle("who", "Who", required=True),
            textSingle("why", "Why"),
            textPrivate("secret", "Secret"),
            boolean("sure", "Sure"),
            listMulti("colours", "Colours", ["red", "green", "blue"]),
            textMulti("pem", "PEM"),
            hidden("token", "server-side"),
            fixed("A line of text"),
        ],
    )


def useJID(requester: Requester, submitted: data_form.Form | None, state: dict[str, Any]) -> Completed:
    assert submitted is not None
    if submitted["why"] == "refuse":
        raise InvalidInput("That is no reason")
    state["seen"] = submitted
    return completed(f"picked {submitted['who'].full()}")


class Harness:
    """
    An in-memory server whose streams get the default handlers and the
    commands of a L{CommandService} on its own clock.
    """

    def __init__(self, maxSessions: int = 5, timeout: float = 600.0) -> None:
        self.clock = task.Clock()
        self.service = CommandService(self.clock, sessionTimeout=timeout, maxSessionsPerAccount=maxSessions)
        self.allowed = True
        self.requesters: list[Requester] = []
        self.service.addCommand(Command("greet", "Greet someone", [askName, askStyle, greet]))
        self.service.addCommand(Command("whoami", "Who am I", [self._recording(whoAmI)]))
        self.service.addCommand(Command("pick", "Pick a JID", [askJID, useJID]))
        self.service.addCommand(Command("secret", "Admins only", [whoAmI], lambda r: self.allowed))
        self.server = makeServer(handlerFactories=[defaultHandlers, self.service.handlerFactory])

    def _recording(self, stage: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(requester: Requester, submitted: Any, state: dict[str, Any]) -> Any:
            self.requesters.append(requester)
            return stage(requester, submitted, state)

        return recorded

    def client(self, resource: str = "phone", user: str = "alice") -> ClientConnection:
        client = self.server.connect()
        client.bound(resource, user)
        return client


def submission(values: Values, formType: str = "submit", formNamespace: str | None = None) -> str:
    """
    The XML of a submitted data form.
    """
    parts = [f"<x xmlns='{NS_X_DATA}' type='{formType}'>"]
    if formNamespace is not None:
        parts.append(f"<field var='FORM_TYPE' type='hidden'><value>{formNamespace}</value></field>")
    for var, value in values.items():
        items = [value] if isinstance(value, str) else list(value)
        parts.append(f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in items) + "</field>")
    parts.append("</x>")
    return "".join(parts)


def execute(
    client: ClientConnection,
    node: str,
    sessionid: str | None = None,
    action: str | None = None,
    payload: str = "",
    to: str | None = DOMAIN,
    lang: str | None = None,
) -> domish.Element:
    """
    Send a C{<command/>} and return the answer.
    """
    attributes = f" node='{node}'"
    if sessionid is not None:
        attributes += f" sessionid='{sessionid}'"
    if action is not None:
        attributes += f" action='{action}'"
    iqAttributes = f" to='{to}'" if to is not None else ""
    if lang is not None:
        iqAttributes += f" xml:lang='{lang}'"
    client.send(
        f"<iq type='set' id='c1'{iqAttributes}><command xmlns='{NS_COMMANDS}'{attributes}>{payload}</command></iq>"
    )
    return client.received().only("iq")


def command(reply: domish.Element) -> domish.Element:
    """
    The C{<command/>} of a result.
    """
    assert reply["type"] == "result", reply.toXml()
    [element] = list(reply.elements(NS_COMMANDS, "command"))
    return element


def actions(element: domish.Element) -> tuple[str | None, list[str]]:
    """
    The default and the allowed actions of a C{<command/>}.
    """
    found = list(element.elements(NS_COMMANDS, "actions"))
    if not found:
        return None, []
    return found[0].getAttribute("execute"), [a.name for a in found[0].elements()]


def notesOf(element: domish.Element) -> list[tuple[str, str]]:
    return [(n["type"], str(n)) for n in element.elements(NS_COMMANDS, "note")]


def formOf(element: domish.Element) -> data_form.Form:
    [x] = list(element.elements(NS_X_DATA, "x"))
    return data_form.Form.fromElement(x)


def commandCondition(reply: domish.Element) -> tuple[str, str | None, str | None]:
    """
    The stanza error's condition, its XEP-0050 specific condition, and its
    type.
    """
    condition = stanzaErrorCondition(reply)
    [errorElement] = [c for c in reply.elements() if c.name == "error"]
    specific = [c.name for c in errorElement.elements() if c.uri == NS_COMMANDS]
    assert len(specific) <= 1, reply.toXml()
    return condition, specific[0] if specific else None, errorElement.getAttribute("type")


def start(client: ClientConnection, node: str = "greet") -> str:
    element = command(execute(client, node))
    assert element["status"] == "executing"
    return str(element["sessionid"])


def noErrorLogged(events: Sequence[LogEvent]) -> None:
    bad = [e for e in events if e.get("log_level") in (LogLevel.error, LogLevel.critical)]
    assert not bad, bad


# --- discovery ----------------------------------------------------------------


def discoInfo(client: ClientConnection, node: str = "", to: str | None = DOMAIN) -> domish.Element:
    attribute = f" to='{to}'" if to is not None else ""
    nodeAttribute = f" node='{node}'" if node else ""
    client.send(f"<iq type='get' id='d1'{attribute}><query xmlns='{NS_DISCO_INFO}'{nodeAttribute}/></iq>")
    return client.received().only("iq")


def discoItems(client: ClientConnection, node: str = NS_COMMANDS, to: str | None = DOMAIN) -> domish.Element:
    attribute = f" to='{to}'" if to is not None else ""
    client.send(f"<iq type='get' id='d2'{attribute}><query xmlns='{NS_DISCO_ITEMS}' node='{node}'/></iq>")
    return client.received().only("iq")


def test_interfaces() -> None:
    """
    L{Command} provides L{ICommand}, and the stream handler provides
    L{IDisco}, through which its features reach service discovery.
    """
    verifyObject(ICommand, Command("n", "N", [whoAmI]))
    handler = CommandHandler(CommandService(task.Clock()), Requester(jid.JID(FULL), domain=DOMAIN))
    verifyObject(IDisco, handler)


def test_discoFeature() -> None:
    """
    XEP-0050 section 3.1: the server advertises
    C{http://jabber.org/protocol/commands}; the account (a query without
    'to' is for it, RFC 6120 section 10.3.3) does not.
    """
    client = Harness().client()
    server = [f["var"] for f in discoInfo(client).query.elements(NS_DISCO_INFO, "feature")]
    account = [f["var"] for f in discoInfo(client, to=None).query.elements(NS_DISCO_INFO, "feature")]
    assert NS_COMMANDS in server
    assert NS_COMMANDS not in account


def test_discoItemsFiltered() -> None:
    """
    XEP-0050 section 3.2: the items of the node
    C{http://jabber.org/protocol/commands} are the commands, each at the
    server's JID with its node and name; a command the requester may not
    run is not listed ("the responder is not required to send the same
    list of commands to all requesters").
    """
    h = Harness()
    client = h.client()
    listed = [(i["jid"], i["node"], i["name"]) for i in discoItems(client).query.elements(NS_DISCO_ITEMS, "item")]
    assert listed == [
        (DOMAIN, "greet", "Greet someone"),
        (DOMAIN, "whoami", "Who am I"),
        (DOMAIN, "pick", "Pick a JID"),
        (DOMAIN, "secret", "Admins only"),
    ]
    h.allowed = False
    nodes = [i["node"] for i in discoItems(client).query.elements(NS_DISCO_ITEMS, "item")]
    assert nodes == ["greet", "whoami", "pick"]


def test_discoItemsOnlyAtServer() -> None:
    """
    XEP-0050 section 6: a responder reports its own command nodes only:
    the account's command list (no 'to') is empty.
    """
    client = Harness().client()
    reply = discoItems(client, to=None)
    assert reply["type"] == "result", reply.toXml()
    assert list(reply.query.elements(NS_DISCO_ITEMS, "item")) == []


def test_discoInfoCommandList() -> None:
    """
    XEP-0050 section 3.2 and 7.2: the command list node has the identity
    automation/command-list.
    """
    reply = discoInfo(Harness().client(), NS_COMMANDS)
    assert reply["type"] == "result", reply.toXml()
    identities = [(i["category"], i["type"]) for i in reply.query.elements(NS_DISCO_INFO, "identity")]
    assert identities == [("automation", "command-list")]


def test_discoInfoCommandNode() -> None:
    """
    XEP-0050 section 3.2: a command node has the identity
    automation/command-node named as the command, the feature
    C{http://jabber.org/protocol/commands} and C{jabber:x:data}.
    """
    reply = discoInfo(Harness().client(), "greet")
    assert reply["type"] == "result", reply.toXml()
    [identity] = list(reply.query.elements(NS_DISCO_INFO, "identity"))
    assert (identity["category"], identity["type"], identity["name"]) == ("automation", "command-node", "Greet someone")
    features = {f["var"] for f in reply.query.elements(NS_DISCO_INFO, "feature")}
    assert {NS_COMMANDS, NS_X_DATA} <= features


def test_discoInfoForbidden() -> None:
    """
    XEP-0050 section 3.2: disco#info on a command the requester may not
    run is answered with forbidden.
    """
    h = Harness()
    h.allowed = False
    reply = discoInfo(h.client(), "secret")
    assert stanzaErrorCondition(reply) == "forbidden"


def test_discoInfoUnknownNode() -> None:
    """
    XEP-0030 section 3.1: disco#info on a node nobody has is
    item-not-found.
    """
    reply = discoInfo(Harness().client(), "nonesuch")
    assert stanzaErrorCondition(reply) == "item-not-found"


# --- single stage -------------------------------------------------------------


def test_singleStage() -> None:
    """
    XEP-0050 section 3.4.1: a command without interaction completes in
    its first answer: status completed, a sessionid, no <actions/>, its
    notes and its result form; the answer says its language (section 3.5).
    """
    client = Harness().client()
    element = command(execute(client, "whoami"))
    assert element["status"] == "completed"
    assert element["node"] == "whoami"
    assert element.getAttribute("sessionid")
    assert element.getAttribute((NS_XML, "lang")) == "en"
    assert actions(element) == (None, [])
    assert notesOf(element) == [("info", FULL)]
    form = formOf(element)
    assert form.formType == "result"
    assert form["domain"] == DOMAIN


def test_noTo() -> None:
    """
    A command without 'to' is executed as one to the server.
    """
    client = Harness().client()
    assert command(execute(client, "whoami", to=None))["status"] == "completed"


def test_toAccount() -> None:
    """
    The commands are the server's: a command sent to the account's bare
    JID is not executed, and the stream answers service-unavailable.
    """
    client = Harness().client()
    assert stanzaErrorCondition(execute(client, "whoami", to=ALICE)) == "service-unavailable"


def test_requesterFromStream() -> None:
    """
    The requester is the stream's login (the full JID it bound, its
    domain), not what the stanza says.
    """
    h = Harness()
    client = h.client()
    client.send(
        f"<iq type='set' id='c1' from='{ALICE}' to='{DOMAIN}'>"
        f"<command xmlns='{NS_COMMANDS}' node='whoami'/></iq>"
    )
    assert command(client.received().only("iq"))["status"] == "completed"
    [requester] = h.requesters
    assert requester.jid == jid.JID(FULL)
    assert requester.domain == DOMAIN
    assert requester.account is not None and requester.account.jid == jid.JID(ALICE)


def test_completedSessionOver() -> None:
    """
    XEP-0050 sections 3.4.3 and 4.6: a session ends when it completes; a
    request in it afterwards is not-allowed with <session-expired/>.
    """
    client = Harness().client()
    sessionid = command(execute(client, "whoami"))["sessionid"]
    reply = execute(client, "whoami", sessionid, payload=submission({}))
    assert commandCondition(reply) == ("not-allowed", "session-expired", "cancel")


# --- multiple stages ----------------------------------------------------------


def test_multiStage() -> None:
    """
    XEP-0050 section 3.4.2: each stage answers status executing with the
    same sessionid, a form and <actions/>: the first <next/> (the
    default); the last <prev/> and <complete/> with complete the default;
    the last submission completes with the command's notes and result.
    """
    client = Harness().client()
    first = command(execute(client, "greet"))
    sessionid = first["sessionid"]
    assert first["status"] == "executing"
    assert actions(first) == ("next", ["next"])
    assert formOf(first).formType == "form"
    assert "name" in formOf(first).fields
    second = command(execute(client, "greet", sessionid, "next", submission({"name": "Bob"})))
    assert (second["status"], second["sessionid"]) == ("executing", sessionid)
    assert actions(second) == ("complete", ["prev", "complete"])
    assert notesOf(second) == [("info", "Greeting Bob")]
    done = command(execute(client, "greet", sessionid, "complete", submission({"style": "loud"})))
    assert (done["status"], done["sessionid"]) == ("completed", sessionid)
    assert notesOf(done) == [("info", "HELLO, BOB!")]
    assert formOf(done)["greeting"] == "HELLO, BOB!"


def test_executeIsDefault() -> None:
    """
    XEP-0050 section 3.4.1: the action is execute when absent, and
    execute is the stage's default (next, then complete).
    """
    client = Harness().client()
    sessionid = start(client)
    second = command(execute(client, "greet", sessionid, payload=submission({"name": "Bob"})))
    assert second["status"] == "executing"
    done = command(execute(client, "greet", sessionid, "execute", submission({"style": "plain"})))
    assert notesOf(done) == [("info", "Hello, Bob")]


def test_prev() -> None:
    """
    XEP-0050 section 3.4.2: prev goes back to the previous stage's form;
    submitting it again goes on from there.
    """
    client = Harness().client()
    sessionid = start(client)
    execute(client, "greet", sessionid, "next", submission({"name": "Bob"}))
    back = command(execute(client, "greet", sessionid, "prev"))
    assert (back["status"], back["sessionid"]) == ("executing", sessionid)
    assert actions(back) == ("next", ["next"])
    assert formOf(back).title == "Greeting"
    execute(client, "greet", sessionid, "next", submission({"name": "Carol"}))
    done = command(execute(client, "greet", sessionid, "complete", submission({"style": "plain"})))
    assert notesOf(done) == [("info", "Hello, Carol")]


def test_cancel() -> None:
    """
    XEP-0050 section 3.4.4: cancel answers status canceled; the session is
    over (a later request is <session-expired/>), and canceling it again
    is still a success.
    """
    client = Harness().client()
    sessionid = start(client)
    canceled = command(execute(client, "greet", sessionid, "cancel"))
    assert (canceled["status"], canceled["sessionid"]) == ("canceled", sessionid)
    reply = execute(client, "greet", sessionid, "next", submission({"name": "Bob"}))
    assert commandCondition(reply) == ("not-allowed", "session-expired", "cancel")
    assert command(execute(client, "greet", sessionid, "cancel"))["status"] == "canceled"


# --- errors -------------------------------------------------------------------


def test_unknownSessionID() -> None:
    """
    XEP-0050 section 4.6: a sessionid the responder does not know is
    bad-request with <bad-sessionid/>.
    """
    client = Harness().client()
    reply = execute(client, "greet", "nonesuch", "next", submission({"name": "Bob"}))
    assert commandCondition(reply) == ("bad-request", "bad-sessionid", "modify")


def test_sessionOfOtherCommand() -> None:
    """
    XEP-0050 section 4.6: a sessionid given with another command's node is
    <bad-sessionid/>.
    """
    client = Harness().client()
    sessionid = start(client, "greet")
    reply = execute(client, "pick", sessionid, "next", submission({"who": BOB}))
    assert commandCondition(reply) == ("bad-request", "bad-sessionid", "modify")


def test_sessionOfOtherStream() -> None:
    """
    XEP-0050 section 3.4.3: a session is valid between one requester and
    the responder only: another resource of the same account, or another
    account, cannot continue or cancel it (<bad-sessionid/>), and the
    session goes on for its own stream.
    """
    h = Harness()
    phone = h.client("phone")
    laptop = h.client("laptop")
    bob = h.client("phone", "bob")
    sessionid = start(phone)
    for other in (laptop, bob):
        assert commandCondition(execute(other, "greet", sessionid, "cancel")) == (
            "bad-request", "bad-sessionid", "modify",
        )
    assert command(execute(phone, "greet", sessionid, "next", submission({"name": "Bob"})))["status"] == "executing"


def test_expired() -> None:
    """
    XEP-0050 section 4.6: a session idle for the timeout (by the injected
    clock) is over: not-allowed with <session-expired/>; each request
    starts the idle time again.
    """
    h = Harness(timeout=600)
    client = h.client()
    sessionid = start(client)
    h.clock.advance(599)
    assert command(execute(client, "greet", sessionid, "next", submission({"name": "Bob"})))["status"] == "executing"
    h.clock.advance(599)
    assert command(execute(client, "greet", sessionid, "prev"))["status"] == "executing"
    h.clock.advance(600)
    reply = execute(client, "greet", sessionid, "next", submission({"name": "Bob"}))
    assert commandCondition(reply) == ("not-allowed", "session-expired", "cancel")
    assert h.service.openSessions(jid.JID(ALICE)) == 0


def test_sessionCap() -> None:
    """
    An account has at most maxSessionsPerAccount sessions open over all
    its streams: one more is resource-constraint (type wait); a command
    that completes at once opens none and still runs; a session that ends
    makes room.
    """
    h = Harness(maxSessions=2)
    phone = h.client("phone")
    laptop = h.client("laptop")
    first = start(phone)
    start(laptop)
    reply = execute(phone, "greet")
    assert commandCondition(reply) == ("resource-constraint", None, "wait")
    assert command(execute(phone, "whoami"))["status"] == "completed"
    assert command(execute(h.client("phone", "bob"), "greet"))["status"] == "executing"
    execute(phone, "greet", first, "cancel")
    start(phone)
    assert h.service.openSessions(jid.JID(ALICE)) == 2


def test_sessionCapBeforeFirstStage() -> None:
    """
    A multi-stage command refused for the cap does not run its first stage
    (which may do work, such as reading the store).
    """
    h = Harness(maxSessions=1)
    client = h.client()
    ran: list[object] = []

    def first(requester: object, submitted: object, state: object) -> object:
        ran.append(requester)
        return makeForm("Counted", "", [textSingle("x", "X")])

    h.service.addCommand(Command("counted", "Counted", [first, lambda *a: completed("done")]))
    start(client)
    reply = execute(client, "counted")
    assert commandCondition(reply) == ("resource-constraint", None, "wait")
    assert ran == []


def test_sessionCapAfterExpiry() -> None:
    """
    Expired sessions do not count toward the cap.
    """
    h = Harness(maxSessions=1, timeout=60)
    client = h.client()
    start(client)
    h.clock.advance(60)
    assert command(execute(client, "greet"))["status"] == "executing"


def test_malformedAction() -> None:
    """
    XEP-0050 section 4.6: an action that is none of execute, cancel,
    prev, next, complete is bad-request with <malformed-action/>.
    """
    client = Harness().client()
    assert commandCondition(execute(client, "whoami", action="jump")) == ("bad-request", "malformed-action", "modify")
    assert commandCondition(execute(client, "whoami", action="")) == ("bad-request", "malformed-action", "modify")
    sessionid = start(client)
    reply = execute(client, "greet", sessionid, "jump", submission({"name": "Bob"}))
    assert commandCondition(reply) == ("bad-request", "malformed-action", "modify")


@pytest.mark.parametrize("action", ["next", "prev", "complete", "cancel"])
def test_badActionWithoutSession(action: str) -> None:
    """
    XEP-0050 section 4.6: without a session only execute can be accepted;
    any other action is bad-request with <bad-action/>.
    """
    client = Harness().client()
    assert commandCondition(execute(client, "greet", action=action)) == ("bad-request", "bad-action", "modify")


def test_badActionPrevAtFirstStage() -> None:
    """
    XEP-0050 sections 3.4.2 and 4.6: prev is not offered at the first
    stage, and is bad-request with <bad-action/> there; the session goes
    on.
    """
    client = Harness().client()
    sessionid = start(client)
    assert commandCondition(execute(client, "greet", sessionid, "prev")) == ("bad-request", "bad-action", "modify")
    assert command(execute(client, "greet", sessionid, "next", submission({"name": "Bob"})))["status"] == "executing"


def test_badActionCompleteTooEarly() -> None:
    """
    XEP-0050 sections 3.4.2 and 4.6: complete is not offered at a stage
    that has more to ask, and is <bad-action/> there.
    """
    client = Harness().client()
    sessionid = start(client)
    reply = execute(client, "greet", sessionid, "complete", submission({"name": "Bob"}))
    assert commandCondition(reply) == ("bad-request", "bad-action", "modify")


@pytest.mark.parametrize(
    "payload",
    [
        submission({"name": "Bob"}, formType="form"),
        submission({"name": "Bob"}, formType="result"),
        submission({}),
        "",
        submission({"name": ["Bob", "Carol"]}),
        f"<x xmlns='{NS_X_DATA}' type='submit'><field var='name' type='jid-single'><value>Bob</value></field></x>",
        f"<x xmlns='{NS_X_DATA}' type='submit'><field var='name'><value>a</value></field>"
        "<field var='name'><value>b</value></field></x>",
    ],
    ids=["form", "result", "required-missing", "no-form", "two-values", "wrong-type", "duplicate"],
)
def test_badPayload(payload: str) -> None:
    """
    XEP-0050 section 4.6: a submission that does not fit the form (not a
    submission, a required field missing, a field of another type, two
    values for one) is bad-request with <bad-payload/>; the session stays
    at its stage and a proper submission goes on, and nothing is logged as
    an error.
    """
    client = Harness().client()
    sessionid = start(client)
    with capturedLogs() as events:
        reply = execute(client, "greet", sessionid, "next", payload)
    assert commandCondition(reply) == ("bad-request", "bad-payload", "modify")
    noErrorLogged(events)
    assert command(execute(client, "greet", sessionid, "next", submission({"name": "Bob"})))["status"] == "executing"


def test_badPayloadOption() -> None:
    """
    XEP-0004 section 3.3: a list-single value must be one of its options;
    another is <bad-payload/>.
    """
    client = Harness().client()
    sessionid = start(client)
    execute(client, "greet", sessionid, "next", submission({"name": "Bob"}))
    reply = execute(client, "greet", sessionid, "complete", submission({"style": "whisper"}))
    assert commandCondition(reply) == ("bad-request", "bad-payload", "modify")


def test_cancelFormIsSubmission() -> None:
    """
    XEP-0050 section 3.4.1 ("Use of Data Forms"): a responder takes
    <x type='cancel'/> as <x type='submit'/>.
    """
    client = Harness().client()
    sessionid = start(client)
    reply = execute(client, "greet", sessionid, "next", submission({"name": "Bob"}, formType="cancel"))
    assert command(reply)["status"] == "executing"


def test_invalidJIDShowsFormAgain() -> None:
    """
    A value the person can fix (a malformed JID) shows the same stage's
    form again with an error note, in the same session; what they typed is
    kept, but not the private field.
    """
    client = Harness().client()
    sessionid = start(client, "pick")
    reply = execute(client, "pick", sessionid, payload=submission({"who": "a@b@c", "why": "because", "secret": "s3"}))
    element = command(reply)
    assert (element["status"], element["sessionid"]) == ("executing", sessionid)
    assert actions(element) == ("complete", ["complete"])
    [(kind, text)] = notesOf(element)
    assert kind == "error" and "a@b@c" in text
    form = formOf(element)
    assert form["why"] == "because"
    assert form.fields["secret"].values == []
    assert form.fields["who"].values == []
    done = command(execute(client, "pick", sessionid, payload=submission({"who": "Bob@Example.COM"})))
    assert notesOf(done) == [("info", "picked bob@example.com")]


def test_invalidInputFromStage() -> None:
    """
    A stage that raises InvalidInput shows its form again with the reason
    as an error note; the session goes on.
    """
    client = Harness().client()
    sessionid = start(client, "pick")
    element = command(execute(client, "pick", sessionid, payload=submission({"who": BOB, "why": "refuse"})))
    assert element["status"] == "executing"
    assert notesOf(element) == [("error", "That is no reason")]
    assert formOf(element)["who"] == BOB
    assert command(execute(client, "pick", sessionid, payload=submission({"who": BOB})))["status"] == "completed"


def test_forbidden() -> None:
    """
    XEP-0050 section 4.6: a command the requester may not run is
    forbidden.
    """
    h = Harness()
    h.allowed = False
    reply = execute(h.client(), "secret")
    assert commandCondition(reply)[0] == "forbidden"


def test_forbiddenMidSession() -> None:
    """
    The right to run a command is asked at every request: withdrawn during
    a session, the next request is forbidden and the session is over.
    """
    h = Harness()
    h.service.removeCommand("secret")
    h.service.addCommand(Command("secret", "Admins only", [askName, greet], lambda r: h.allowed))
    client = h.client()
    sessionid = start(client, "secret")
    h.allowed = False
    assert commandCondition(execute(client, "secret", sessionid, payload=submission({"name": "x"})))[0] == "forbidden"
    h.allowed = True
    reply = execute(client, "secret", sessionid, payload=submission({"name": "x"}))
    assert commandCondition(reply) == ("not-allowed", "session-expired", "cancel")


def test_unknownNode() -> None:
    """
    XEP-0050 section 4.6: a node that is no command is item-not-found; a
    <command/> without a node is bad-request.
    """
    client = Harness().client()
    assert commandCondition(execute(client, "nonesuch")) == ("item-not-found", None, "cancel")
    client.send(f"<iq type='set' id='c1' to='{DOMAIN}'><command xmlns='{NS_COMMANDS}'/></iq>")
    assert stanzaErrorCondition(client.received().only("iq")) == "bad-request"


def test_removedCommand() -> None:
    """
    A command removed from the service is item-not-found, also for the
    sessions under way.
    """
    h = Harness()
    client = h.client()
    sessionid = start(client)
    h.service.removeCommand("greet")
    reply = execute(client, "greet", sessionid, payload=submission({"name": "Bob"}))
    assert commandCondition(reply)[0] == "item-not-found"
    assert h.service.openSessions(jid.JID(ALICE)) == 0


def test_badLocale() -> None:
    """
    XEP-0050 section 4.5: a language tag that is none is bad-request with
    <bad-locale/>; a session keeps the language it started in, and a
    later request in another is answered in it rather than refused.
    """
    client = Harness().client()
    assert commandCondition(execute(client, "whoami", lang="not a tag")) == ("bad-request", "bad-locale", "modify")
    element = command(execute(client, "greet", lang="en-GB"))
    sessionid = element["sessionid"]
    again = command(execute(client, "greet", sessionid, payload=submission({"name": "Bob"}), lang="de"))
    assert again["status"] == "executing"


def test_stanzaErrorEndsSession() -> None:
    """
    A stage failing with a stanza error fails the command: the requester
    gets that error and the session is over.
    """

    def refuse(requester: Requester, submitted: Any, state: dict[str, Any]) -> Completed:
        raise error.StanzaError("conflict", type="cancel", text="It exists")

    h = Harness()
    h.service.addCommand(Command("refuse", "Refuse", [askName, refuse]))
    client = h.client()
    sessionid = start(client, "refuse")
    assert stanzaErrorCondition(execute(client, "refuse", sessionid, payload=submission({"name": "x"}))) == "conflict"
    reply = execute(client, "refuse", sessionid, payload=submission({"name": "x"}))
    assert commandCondition(reply) == ("not-allowed", "session-expired", "cancel")


def test_storeFailure() -> None:
    """
    A store that fails during a stage is internal-server-error of type
    wait, with a warning (not an error: a requester can repeat it at
    will) at most once a minute.
    """

    async def broken(requester: Requester, submitted: Any, state: dict[str, Any]) -> Completed:
        raise sqlite3.OperationalError("database is locked")

    h = Harness()
    h.service.addCommand(Command("broken", "Broken", [broken]))
    client = h.client()
    with capturedLogs() as events:
        first = execute(client, "broken")
        second = execute(client, "broken")
    assert commandCondition(first) == ("internal-server-error", None, "wait")
    assert commandCondition(second) == ("internal-server-error", None, "wait")
    noErrorLogged(events)
    warnings = [e for e in events if e.get("log_level") == LogLevel.warn and "store failed" in e["log_format"]]
    assert len(warnings) == 1


def test_deferredAndCoroutineStages() -> None:
    """
    A stage may return a Deferred or be a coroutine.
    """

    def later(requester: Requester, submitted: Any, state: dict[str, Any]) -> defer.Deferred[data_form.Form]:
        return defer.succeed(greetingForm())

    async def finish(requester: Requester, submitted: Any, state: dict[str, Any]) -> Completed:
        await defer.succeed(None)
        return completed(f"bye {submitted['name']}")

    h = Harness()
    h.service.addCommand(Command("async", "Async", [later, finish]))
    client = h.client()
    sessionid = start(client, "async")
    done = command(execute(client, "async", sessionid, payload=submission({"name": "Bob"})))
    assert notesOf(done) == [("info", "bye Bob")]


def test_sessionsEndWithStream() -> None:
    """
    The sessions of a stream end with it: they no longer count for the
    account, and the service forgets the stream.
    """
    h = Harness()
    client = h.client()
    start(client)
    start(client)
    assert h.service.openSessions(jid.JID(ALICE)) == 2
    client.send("</stream:stream>")
    assert client.closed
    assert h.service.openSessions(jid.JID(ALICE)) == 0
    assert h.service._tables == {}


# --- the registry ---------------------------------------------------------------


def test_addCommandTwice() -> None:
    """
    Nodes are unique within the responder (XEP-0050 section 3.4.5): a
    second command with a node is refused.
    """
    service = CommandService(task.Clock())
    service.addCommand(Command("n", "N", [whoAmI]))
    with pytest.raises(ValueError):
        service.addCommand(Command("n", "Other", [whoAmI]))
    with pytest.raises(KeyError):
        service.removeCommand("other")
    assert [c.node for c in service.commands()] == ["n"]


def test_commandNeedsStages() -> None:
    """
    A command has at least one stage; a note's type is info, warn or
    error (XEP-0050 section 4.3).
    """
    with pytest.raises(ValueError):
        Command("n", "N", [])
    with pytest.raises(ValueError):
        Note("x", "fatal")


# --- forms ----------------------------------------------------------------------


def shownForm() -> data_form.Form:
    return makeForm(
        "T",
        "I",
        [
            jidSingle("who", "Who", required=True),
            jidMulti("whom", "Whom"),
            boolean("sure", "Sure"),
            listMulti("certs", "Certificates", [("a", "Phone"), ("b", "Laptop"), "c"]),
            textMulti("pem", "PEM"),
            textSingle("note", "Note"),
            hidden("token", "server"),
        ],
        formNamespace="urn:example:form",
    )


def parse(xml: str) -> data_form.Form:
    return parseSubmission(shownForm(), parseXml(xml))


def test_parseSubmissionTypes() -> None:
    """
    XEP-0004 section 3.3: values are read as the shown form types them:
    JIDs prepared, booleans as bool, list-multi as the chosen values
    (each once, as JIDs in a jid-multi), text-multi lines kept (a PEM paste); fields the form does not have are
    dropped, and hidden values are not the requester's to set.
    """
    form = parse(
        f"<x xmlns='{NS_X_DATA}' type='submit'>"
        "<field var='who'><value>Alice@Example.COM</value></field>"
        "<field var='whom'><value>bob@example.com</value><value>example.com</value><value>Bob@example.com</value></field>"
        "<field var='sure'><value>true</value></field>"
        "<field var='certs'><value>a</value><value>c</value><value>a</value></field>"
        "<field var='pem'><value>-----BEGIN-----</value><value>  AAAA</value><value>-----END-----</value></field>"
        "<field var='token'><value>forged</value></field>"
        "<field var='extra'><value>x</value></field>"
        "</x>"
    )
    assert form["who"] == jid.JID(ALICE)
    assert form["whom"] == [jid.JID(BOB), jid.JID(DOMAIN)]
    assert form["sure"] is True
    assert form["certs"] == ["a", "c"]
    assert textOf(form, "pem") == "-----BEGIN-----\n  AAAA\n-----END-----"
    assert form["note"] is None
    assert textOf(form, "note") == ""
    assert "token" not in form
    assert "extra" not in form


@pytest.mark.parametrize(
    "fields",
    [
        "",
        "<field var='who'><value>alice@example.com</value></field><field var='sure'><value>maybe</value></field>",
        "<field var='who'><value>alice@example.com</value></field><field var='certs'><value>z</value></field>",
        "<field var='who'><value>alice@example.com</value><value>bob@example.com</value></field>",
        "<field var='who'><value>   </value></field>",
        "<field var='FORM_TYPE' type='hidden'><value>urn:example:other</value></field>"
        "<field var='who'><value>alice@example.com</value></field>",
    ],
    ids=["missing", "boolean", "option", "two-values", "blank", "form-type"],
)
def test_parseSubmissionPayloadErrors(fields: str) -> None:
    """
    XEP-0004 section 3.3 and XEP-0050 section 4.6: a required field left
    out (or blank), a boolean that is none, a list value not offered, two
    values in a single-valued field, a form of another FORM_TYPE
    (XEP-0068): PayloadError.
    """
    with pytest.raises(PayloadError):
        parse(f"<x xmlns='{NS_X_DATA}' type='submit'>{fields}</x>")


def test_parseSubmissionMalformedJID() -> None:
    """
    RFC 7622: a JID field with something that is no JID is InvalidInput,
    which the person can fix.
    """
    with pytest.raises(InvalidInput):
        parse(f"<x xmlns='{NS_X_DATA}' type='submit'><field var='who'><value>@example.com</value></field></x>")


def test_refill() -> None:
    """
    A form shown again keeps valid submitted values, not the invalid ones
    and not hidden ones; the form itself is unchanged.
    """
    shown = shownForm()
    element = parseXml(
        f"<x xmlns='{NS_X_DATA}' type='submit'>"
        "<field var='who'><value>a@b@c</value></field>"
        "<field var='note'><value>keep me</value></field>"
        "<field var='token'><value>forged</value></field>"
        "</x>"
    )
    again = refill(shown, element)
    assert again["note"] == "keep me"
    assert again["who"] is None
    assert again["token"] == "server"
    assert shown["note"] is None
    assert again.toElement().toXml() != shown.toElement().toXml()


def test_formsRender() -> None:
    """
    XEP-0004 section 3: a shown form carries its FORM_TYPE, labels,
    options and required flags.
    """
    element = shownForm().toElement()
    form = data_form.Form.fromElement(element)
    assert form.formType == "form"
    assert form.formNamespace == "urn:example:form"
    assert form.fields["who"].required
    assert [(o.value, o.label) for o in form.fields["certs"].options] == [("a", "Phone"), ("b", "Laptop"), ("c", None)]
