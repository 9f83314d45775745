"""
Tests for L{xmppcert.im.pep.protocol}: personal eventing (XEP-0163) on the
wire, through real client streams: requests to one's own service, to
another account's, malformed requests, and service discovery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from twisted.internet import defer
from twisted.logger import LogLevel, capturedLogs
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    ClientConnection,
    ServerHarness,
    addAccount,
    makeServer,
    resultOf,
    stanzaErrorCondition,
)
from tests.test_im_pep_service import MOOD, TUNE, FakeCaps
from tests.test_im_roster import CAROL
from xmppcert.config import IMConfig
from xmppcert.handlers import defaultHandlers
from xmppcert.im.pep.nodeconfig import (
    MAX_DIGITS,
    NS_PUBSUB,
    NS_PUBSUB_ERRORS,
    NS_PUBSUB_EVENT,
    NS_PUBSUB_NODE_CONFIG,
    NS_PUBSUB_OWNER,
    NS_PUBSUB_PUBLISH_OPTIONS,
)
from xmppcert.im.pep.protocol import FEATURES, PEPRequest
from xmppcert.im.pep.service import PEPService
from xmppcert.im.presence import PresenceService
from xmppcert.im.roster import RosterService, rosterHandlers
from xmppcert.store.interfaces import RosterItem, StoreError

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_X_DATA = "jabber:x:data"
TUNE_ITEM = f"<tune xmlns='{TUNE}'><title>Air</title></tune>"


@dataclass
class Harness:
    h: ServerHarness
    pep: PEPService
    caps: FakeCaps

    def login(self, user: str = "alice", resource: str = "phone") -> ClientConnection:
        client = self.h.connect()
        client.bound(resource, user=user)
        client.output()
        return client

    def iq(self, client: ClientConnection, xml: str) -> domish.Element:
        client.send(xml)
        [answer] = [e for e in client.received().elements if e.name == "iq"]
        return answer

    def friends(self, a: str, b: str) -> None:
        resultOf(self.h.store.putRosterItem(a, RosterItem(b, subscription="both")))
        resultOf(self.h.store.putRosterItem(b, RosterItem(a, subscription="both")))


def makeHarness(**im: Any) -> Harness:
    h = makeServer(accounts=(ALICE, BOB))
    addAccount(h.store, CAROL)
    config = IMConfig(**im)
    roster = RosterService(h.store, h.sessions, h.clock, lambda: config)
    roster.install()
    PresenceService(h.sessions, roster, h.clock, lambda: config).install()
    caps = FakeCaps()
    pep = PEPService(h.sessions, h.store, roster, caps, h.clock, lambda: config)
    pep.install()
    h.server.handlerFactories = [defaultHandlers, rosterHandlers(roster), pep.handlersFor]
    return Harness(h, pep, caps)


def publishXML(
    node: str = TUNE, item: str = f"<item id='current'>{TUNE_ITEM}</item>", iqID: str = "p1", to: str = "", extra: str = ""
) -> str:
    node_ = f" node='{node}'" if node else ""
    return (
        f"<iq type='set' id='{iqID}'{to}><pubsub xmlns='{NS_PUBSUB}'>"
        f"<publish{node_}>{item}</publish>{extra}</pubsub></iq>"
    )


def optionsXML(formType: str = NS_PUBSUB_PUBLISH_OPTIONS, **fields: str) -> str:
    values = "".join(f"<field var='pubsub#{var}'><value>{value}</value></field>" for var, value in fields.items())
    return (
        f"<publish-options><x xmlns='{NS_X_DATA}' type='submit'>"
        f"<field var='FORM_TYPE' type='hidden'><value>{formType}</value></field>{values}</x></publish-options>"
    )


def itemsXML(node: str = TUNE, iqID: str = "g1", to: str = "", content: str = "", attrs: str = "") -> str:
    return (
        f"<iq type='get' id='{iqID}'{to}><pubsub xmlns='{NS_PUBSUB}'>"
        f"<items node='{node}'{attrs}>{content}</items></pubsub></iq>"
    )


def errorOf(iq: domish.Element) -> tuple[str, str | None]:
    """
    (defined condition, pubsub#errors condition or None) of an error iq.
    """
    conditionName = stanzaErrorCondition(iq)
    [err] = [c for c in iq.elements() if c.name == "error"]
    app = [c.name for c in err.elements() if c.uri == NS_PUBSUB_ERRORS]
    return conditionName, app[0] if app else None


def resultItems(iq: domish.Element) -> list[str]:
    assert iq["type"] == "result", iq.toXml()
    return [item["id"] for p in iq.elements(NS_PUBSUB, "pubsub") for i in p.elements() for item in i.elements()]


# --- publishing and retrieving ----------------------------------------------------------


def test_publishResult() -> None:
    """
    XEP-0060 §7.1.2: the publish result holds <publish node><item id/>;
    without an id in the request the server's id is in it.
    """
    t = makeHarness()
    alice = t.login()
    answer = t.iq(alice, publishXML())
    assert answer["type"] == "result"
    [pubsub] = list(answer.elements(NS_PUBSUB, "pubsub"))
    [publish] = list(pubsub.elements(NS_PUBSUB, "publish"))
    assert publish["node"] == TUNE
    assert [i["id"] for i in publish.elements(NS_PUBSUB, "item")] == ["current"]
    answer = t.iq(alice, publishXML(item=f"<item>{TUNE_ITEM}</item>"))
    [generated] = [i["id"] for p in answer.elements() for pub in p.elements() for i in pub.elements()]
    assert generated and generated != "current"


def test_publishThenItemsPipelined() -> None:
    """
    RFC 6120 §10.1: a retrieval sent right after a publish, without
    waiting, sees the item even when the store answers late; the payload
    comes back as published.
    """
    t = makeHarness()
    alice = t.login()
    gate: defer.Deferred[None] = defer.Deferred()
    publishPEPItem = t.h.store.publishPEPItem

    def slowPublish(*args: Any, **kwargs: Any) -> defer.Deferred[bool]:
        return gate.addCallback(lambda _: publishPEPItem(*args, **kwargs))

    t.h.store.publishPEPItem = slowPublish  # type: ignore[method-assign]
    alice.send(publishXML(iqID="p") + itemsXML(iqID="g"))
    assert [e for e in alice.received().elements if e.name == "iq"] == []
    gate.callback(None)
    answers = {e["id"]: e for e in alice.received().elements if e.name == "iq"}
    assert answers["p"]["type"] == "result"
    assert resultItems(answers["g"]) == ["current"]
    assert "<title>Air</title>" in answers["g"].toXml()


def test_ownBareJIDAndDomain() -> None:
    """
    XEP-0163 §3: requests go without 'to' or to the user's own bare JID;
    to the server's domain, which has no pubsub service, they are
    service-unavailable.
    """
    t = makeHarness()
    alice = t.login()
    assert t.iq(alice, publishXML(to=f" to='{ALICE}'"))["type"] == "result"
    assert resultItems(t.iq(alice, itemsXML(to=f" to='{ALICE}'"))) == ["current"]
    assert stanzaErrorCondition(t.iq(alice, itemsXML(to=f" to='{DOMAIN}'"))) == "service-unavailable"


def test_itemsByIdAndMax() -> None:
    """
    XEP-0060 §6.5.7, §6.5.8: max_items gives the newest; item ids give
    those items.
    """
    t = makeHarness()
    alice = t.login()
    create = (
        f"<iq type='set' id='c'><pubsub xmlns='{NS_PUBSUB}'><create node='{TUNE}'/><configure>"
        f"<x xmlns='{NS_X_DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>{NS_PUBSUB_NODE_CONFIG}"
        "</value></field><field var='pubsub#max_items'><value>5</value></field></x></configure></pubsub></iq>"
    )
    assert t.iq(alice, create)["type"] == "result"
    for n in range(3):
        t.iq(alice, publishXML(item=f"<item id='{n}'>{TUNE_ITEM}</item>"))
    assert resultItems(t.iq(alice, itemsXML())) == ["0", "1", "2"]
    assert resultItems(t.iq(alice, itemsXML(attrs=" max_items='2'"))) == ["1", "2"]
    assert resultItems(t.iq(alice, itemsXML(content="<item id='0'/><item id='9'/>"))) == ["0"]


def test_notificationOverStream() -> None:
    """
    XEP-0163 §4.3.1: the owner's resource with +notify gets the event as a
    headline from its bare JID over its stream.
    """
    t = makeHarness()
    alice = t.login()
    alice.send("<presence/>")
    alice.output()
    session = t.h.sessions.sessionFor(jid.JID(ALICE + "/phone"))
    assert session is not None
    t.caps.announce(session, TUNE)
    alice.send(publishXML())
    received = alice.received()
    [message] = received.named("message")
    assert message["type"] == "headline" and message["from"] == ALICE
    [event] = list(message.elements(NS_PUBSUB_EVENT, "event"))
    assert "<title>Air</title>" in event.toXml()


# --- publish-options ---------------------------------------------------------------------------


def test_publishOptionsOnTheWire() -> None:
    """
    XEP-0060 §7.1.5: publish-options create the node so; a mismatch later
    is conflict with <precondition-not-met/>; a form without the
    publish-options FORM_TYPE is bad-request with <invalid-options/>.
    """
    t = makeHarness()
    alice = t.login()
    assert t.iq(alice, publishXML(extra=optionsXML(access_model="open", persist_items="true")))["type"] == "result"
    assert t.iq(alice, publishXML(extra=optionsXML(access_model="open")))["type"] == "result"
    assert errorOf(t.iq(alice, publishXML(extra=optionsXML(access_model="presence")))) == (
        "conflict",
        "precondition-not-met",
    )
    assert errorOf(t.iq(alice, publishXML(extra=optionsXML(NS_PUBSUB_NODE_CONFIG, access_model="open")))) == (
        "bad-request",
        "invalid-options",
    )
    assert errorOf(t.iq(alice, publishXML(extra=optionsXML(no_such_option="1")))) == (
        "bad-request",
        "invalid-options",
    )


# --- malformed requests ------------------------------------------------------------------------


def test_malformedPublish() -> None:
    """
    XEP-0060 §7.1.1 and §7.1.3: no node is bad-request with
    <nodeid-required/>; two items or two payloads bad-request with
    <invalid-payload/> (§7.1.3.6); no item bad-request with
    <item-required/> (§7.1.3.7). Nothing is published.
    """
    t = makeHarness()
    alice = t.login()
    assert errorOf(t.iq(alice, publishXML(node=""))) == ("bad-request", "nodeid-required")
    two = f"<item id='a'>{TUNE_ITEM}</item><item id='b'>{TUNE_ITEM}</item>"
    assert errorOf(t.iq(alice, publishXML(item=two))) == ("bad-request", "invalid-payload")
    both = f"<item id='a'>{TUNE_ITEM}<x xmlns='urn:example:x'/></item>"
    assert errorOf(t.iq(alice, publishXML(item=both))) == ("bad-request", "invalid-payload")
    assert errorOf(t.iq(alice, publishXML(item=""))) == ("bad-request", "item-required")
    assert resultOf(t.h.store.listPEPNodes(ALICE)) == []


def test_malformedOtherRequests() -> None:
    """
    XEP-0060: an empty pubsub element or a request in an iq of the wrong
    type is bad-request; an unknown request feature-not-implemented; a
    retraction without an item id bad-request with <item-required/>;
    max_items that is no positive integer bad-request; a create without a
    node not-acceptable with <nodeid-required/> (no instant nodes,
    §8.1.2); a configure without node bad-request with <nodeid-required/>.
    """
    t = makeHarness()
    alice = t.login()
    t.iq(alice, publishXML())
    assert errorOf(t.iq(alice, f"<iq type='get' id='e'><pubsub xmlns='{NS_PUBSUB}'/></iq>"))[0] == "bad-request"
    wrongType = f"<iq type='get' id='w'><pubsub xmlns='{NS_PUBSUB}'><publish node='{TUNE}'/></pubsub></iq>"
    assert errorOf(t.iq(alice, wrongType))[0] == "bad-request"
    odd = f"<iq type='get' id='o'><pubsub xmlns='{NS_PUBSUB}'><frobnicate node='x'/></pubsub></iq>"
    assert errorOf(t.iq(alice, odd)) == ("feature-not-implemented", None)
    retract = f"<iq type='set' id='r'><pubsub xmlns='{NS_PUBSUB}'><retract node='{TUNE}'><item/></retract></pubsub></iq>"
    assert errorOf(t.iq(alice, retract)) == ("bad-request", "item-required")
    assert errorOf(t.iq(alice, itemsXML(attrs=" max_items='0'")))[0] == "bad-request"
    create = f"<iq type='set' id='c'><pubsub xmlns='{NS_PUBSUB}'><create/></pubsub></iq>"
    assert errorOf(t.iq(alice, create)) == ("not-acceptable", "nodeid-required")
    configure = f"<iq type='get' id='k'><pubsub xmlns='{NS_PUBSUB_OWNER}'><configure/></pubsub></iq>"
    assert errorOf(t.iq(alice, configure)) == ("bad-request", "nodeid-required")
    assert resultItems(t.iq(alice, itemsXML())) == ["current"]


def test_unsupportedVerbs() -> None:
    """
    Explicit subscriptions and affiliations are not supported (PEP's
    subscriptions are implicit): feature-not-implemented with
    <unsupported feature='...'/> naming the XEP-0060 feature.
    """
    t = makeHarness()
    alice = t.login()
    cases = {
        f"<pubsub xmlns='{NS_PUBSUB}'><subscribe node='{TUNE}' jid='{ALICE}'/></pubsub>": ("set", "subscribe"),
        f"<pubsub xmlns='{NS_PUBSUB}'><unsubscribe node='{TUNE}' jid='{ALICE}'/></pubsub>": ("set", "subscribe"),
        f"<pubsub xmlns='{NS_PUBSUB}'><subscriptions/></pubsub>": ("get", "retrieve-subscriptions"),
        f"<pubsub xmlns='{NS_PUBSUB}'><affiliations/></pubsub>": ("get", "retrieve-affiliations"),
        f"<pubsub xmlns='{NS_PUBSUB_OWNER}'><affiliations node='{TUNE}'/></pubsub>": ("get", "modify-affiliations"),
    }
    for payload, (kind, feature) in cases.items():
        answer = t.iq(alice, f"<iq type='{kind}' id='u'>{payload}</iq>")
        assert errorOf(answer) == ("feature-not-implemented", "unsupported"), payload
        [unsupported] = [c for e in answer.elements() for c in e.elements() if c.uri == NS_PUBSUB_ERRORS]
        assert unsupported["feature"] == feature


def test_requestParserLeavesStanzaAlone() -> None:
    """
    Parsing does not change the request (wokkel's generic parser strips
    the stanza's namespace).
    """
    stanza = domish.Element(("jabber:client", "iq"))
    stanza["type"] = "get"
    stanza.addElement((NS_PUBSUB, "pubsub")).addElement("items")["node"] = TUNE
    request = PEPRequest.fromElement(stanza)
    assert request.verb == "items" and request.nodeIdentifier == TUNE
    assert stanza.uri == "jabber:client"


# --- owner requests ----------------------------------------------------------------------------


def test_configureOnTheWire() -> None:
    """
    XEP-0060 §8.2: the owner gets the configuration form (FORM_TYPE
    node_config, current values) and submits a change; a cancelled form
    changes nothing; XEP-0060 §8.3: the default configuration.
    """
    t = makeHarness()
    alice = t.login()
    t.iq(alice, publishXML())
    get = f"<iq type='get' id='k'><pubsub xmlns='{NS_PUBSUB_OWNER}'><configure node='{TUNE}'/></pubsub></iq>"
    answer = t.iq(alice, get)
    assert answer["type"] == "result"
    assert f"<value>{NS_PUBSUB_NODE_CONFIG}</value>" in answer.toXml()
    assert "pubsub#access_model" in answer.toXml()
    submit = (
        f"<iq type='set' id='s'><pubsub xmlns='{NS_PUBSUB_OWNER}'><configure node='{TUNE}'>"
        f"<x xmlns='{NS_X_DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>{NS_PUBSUB_NODE_CONFIG}"
        "</value></field><field var='pubsub#access_model'><value>open</value></field></x></configure></pubsub></iq>"
    )
    assert t.iq(alice, submit)["type"] == "result"
    cancel = (
        f"<iq type='set' id='x'><pubsub xmlns='{NS_PUBSUB_OWNER}'><configure node='{TUNE}'>"
        f"<x xmlns='{NS_X_DATA}' type='cancel'/></configure></pubsub></iq>"
    )
    assert t.iq(alice, cancel)["type"] == "result"
    config = resultOf(t.h.store.getPEPNode(ALICE, TUNE)).config
    assert config["pubsub#access_model"] == "open"
    default = f"<iq type='get' id='d'><pubsub xmlns='{NS_PUBSUB_OWNER}'><default/></pubsub></iq>"
    answer = t.iq(alice, default)
    assert answer["type"] == "result" and "on_sub_and_presence" in answer.toXml()


def test_deleteAndPurgeOnTheWire() -> None:
    """
    XEP-0060 §8.5 and §8.4: purge empties the node, delete removes it.
    """
    t = makeHarness()
    alice = t.login()
    t.iq(alice, publishXML())
    purge = f"<iq type='set' id='p'><pubsub xmlns='{NS_PUBSUB_OWNER}'><purge node='{TUNE}'/></pubsub></iq>"
    assert t.iq(alice, purge)["type"] == "result"
    assert resultItems(t.iq(alice, itemsXML())) == []
    delete = f"<iq type='set' id='d'><pubsub xmlns='{NS_PUBSUB_OWNER}'><delete node='{TUNE}'/></pubsub></iq>"
    assert t.iq(alice, delete)["type"] == "result"
    assert errorOf(t.iq(alice, itemsXML())) == ("item-not-found", None)
    retract = (
        f"<iq type='set' id='r'><pubsub xmlns='{NS_PUBSUB}'><retract node='{TUNE}' notify='1'>"
        "<item id='current'/></retract></pubsub></iq>"
    )
    assert errorOf(t.iq(alice, retract)) == ("item-not-found", None)


def test_storeFailureOnTheWire() -> None:
    """
    A store failure answers internal-server-error of type wait.
    """
    t = makeHarness()
    alice = t.login()
    t.h.store.getPEPNode = lambda account, node: defer.fail(StoreError("gone"))  # type: ignore[method-assign]
    answer = t.iq(alice, itemsXML())
    assert stanzaErrorCondition(answer) == "internal-server-error"
    assert [e for e in answer.elements() if e.name == "error"][0]["type"] == "wait"


# --- other accounts ------------------------------------------------------------------------------


def test_foreignItems() -> None:
    """
    XEP-0163 §6.2, XEP-0060 §6.5: a contact's retrieval addressed to the
    account's bare JID is answered by the server on its behalf, from that
    bare JID; the account's resources see nothing of it; a stranger (not
    subscribed to the owner's presence) gets item-not-found, as for a node
    that does not exist.
    """
    t = makeHarness()
    t.friends(ALICE, BOB)
    alice = t.login()
    t.iq(alice, publishXML())
    bob = t.login("bob", "desk")
    answer = t.iq(bob, itemsXML(to=f" to='{ALICE}'"))
    assert answer["from"] == ALICE
    assert resultItems(answer) == ["current"]
    assert alice.received().elements == []
    carol = t.login("carol", "pc")
    assert errorOf(t.iq(carol, itemsXML(to=f" to='{ALICE}'"))) == ("item-not-found", None)


def test_foreignOwnerRequestsForbidden() -> None:
    """
    XEP-0060 §7.1.3.1, §8.2.3.2, §8.4.3.1: publishing, configuring or
    deleting at another account's service is forbidden, even for a
    contact.
    """
    t = makeHarness()
    t.friends(ALICE, BOB)
    alice = t.login()
    t.iq(alice, publishXML())
    bob = t.login("bob", "desk")
    assert errorOf(t.iq(bob, publishXML(to=f" to='{ALICE}'"))) == ("forbidden", None)
    configure = f"<iq type='get' id='k' to='{ALICE}'><pubsub xmlns='{NS_PUBSUB_OWNER}'><configure node='{TUNE}'/></pubsub></iq>"
    assert errorOf(t.iq(bob, configure)) == ("forbidden", None)
    delete = f"<iq type='set' id='d' to='{ALICE}'><pubsub xmlns='{NS_PUBSUB_OWNER}'><delete node='{TUNE}'/></pubsub></iq>"
    assert errorOf(t.iq(bob, delete)) == ("forbidden", None)
    assert resultOf(t.h.store.getPEPNode(ALICE, TUNE)) is not None


def errorXML(iq: domish.Element) -> str:
    """
    The error of an error iq, as it is sent.
    """
    assert iq["type"] == "error", iq.toXml()
    [err] = [c for c in iq.elements() if c.name == "error"]
    return str(err.toXml())


def test_accountThatDoesNotExist() -> None:
    """
    RFC 6121 §8.5.1 spirit, XEP-0163 §6: whether an account exists is
    never told to someone not subscribed to its presence: each request
    from a stranger gets the same answer for an account that exists (with
    nodes of each access model but open) and one that does not. disco of
    the account itself: service-unavailable; items, or disco of a node:
    item-not-found; a change: forbidden; an unsupported verb:
    feature-not-implemented.
    """
    t = makeHarness()
    alice = t.login()
    t.iq(alice, publishXML())
    t.iq(alice, publishXML(node=MOOD, extra=optionsXML(access_model="whitelist")))
    t.iq(alice, publishXML(node="urn:roster", extra=optionsXML(access_model="roster")))
    carol = t.login("carol", "pc")
    nobody = f"nobody@{DOMAIN}"
    requests = {
        "disco#info": f"<iq type='get' id='i' to='TARGET'><query xmlns='{NS_DISCO_INFO}'/></iq>",
        "disco#items": f"<iq type='get' id='i' to='TARGET'><query xmlns='{NS_DISCO_ITEMS}'/></iq>",
        "node info": f"<iq type='get' id='i' to='TARGET'><query xmlns='{NS_DISCO_INFO}' node='{TUNE}'/></iq>",
        "node items": f"<iq type='get' id='i' to='TARGET'><query xmlns='{NS_DISCO_ITEMS}' node='{MOOD}'/></iq>",
        "items": itemsXML(to=" to='TARGET'"),
        "whitelist items": itemsXML(node=MOOD, to=" to='TARGET'"),
        "roster items": itemsXML(node="urn:roster", to=" to='TARGET'"),
        "missing node": itemsXML(node="urn:none", to=" to='TARGET'"),
        "publish": publishXML(to=" to='TARGET'"),
        "subscribe": (
            f"<iq type='set' id='s' to='TARGET'><pubsub xmlns='{NS_PUBSUB}'>"
            f"<subscribe node='{TUNE}' jid='{CAROL}'/></pubsub></iq>"
        ),
    }
    expected = {
        "disco#info": "service-unavailable",
        "disco#items": "service-unavailable",
        "publish": "forbidden",
        "subscribe": "feature-not-implemented",
    }
    for name, xml in requests.items():
        existing = t.iq(carol, xml.replace("TARGET", ALICE))
        missing = t.iq(carol, xml.replace("TARGET", nobody))
        assert errorXML(existing) == errorXML(missing), name
        assert stanzaErrorCondition(existing) == expected.get(name, "item-not-found"), name


# --- service discovery ---------------------------------------------------------------------------


def identities(iq: domish.Element) -> set[tuple[str, str]]:
    return {(i["category"], i["type"]) for q in iq.elements() for i in q.elements() if i.name == "identity"}


def features(iq: domish.Element) -> set[str]:
    return {f["var"] for q in iq.elements() for f in q.elements() if f.name == "feature"}


def discoItems(iq: domish.Element) -> list[tuple[str, str | None, str | None]]:
    assert iq["type"] == "result", iq.toXml()
    return [
        (i["jid"], i.getAttribute("node"), i.getAttribute("name"))
        for q in iq.elements()
        for i in q.elements()
        if i.name == "item"
    ]


def test_discoOwnAccount() -> None:
    """
    XEP-0163 §6.1: disco#info of the user's own bare JID has the identity
    pubsub/pep (beside account/registered) and the pubsub features; the
    server's domain does not.
    """
    t = makeHarness()
    alice = t.login()
    for to in ("", f" to='{ALICE}'"):
        answer = t.iq(alice, f"<iq type='get' id='i'{to}><query xmlns='{NS_DISCO_INFO}'/></iq>")
        assert {("pubsub", "pep"), ("account", "registered")} <= identities(answer)
        assert set(FEATURES) <= features(answer)
        assert f"{NS_PUBSUB}#publish-options" in features(answer)
    answer = t.iq(alice, f"<iq type='get' id='i' to='{DOMAIN}'><query xmlns='{NS_DISCO_INFO}'/></iq>")
    assert ("pubsub", "pep") not in identities(answer)
    assert f"{NS_PUBSUB}#publish" not in features(answer)


def test_discoItemsOwnAccount() -> None:
    """
    XEP-0163 §6.1 and XEP-0060 §5.2, §5.5: disco#items of the own bare JID
    lists the nodes; of a node, its item ids; a node's disco#info has the
    identity pubsub/leaf.
    """
    t = makeHarness()
    alice = t.login()
    t.iq(alice, publishXML())
    t.iq(alice, publishXML(node=MOOD, extra=optionsXML(title="Mood")))
    answer = t.iq(alice, f"<iq type='get' id='i'><query xmlns='{NS_DISCO_ITEMS}'/></iq>")
    assert sorted(discoItems(answer)) == sorted([(ALICE, TUNE, None), (ALICE, MOOD, "Mood")])
    answer = t.iq(alice, f"<iq type='get' id='i'><query xmlns='{NS_DISCO_ITEMS}' node='{TUNE}'/></iq>")
    assert discoItems(answer) == [(ALICE, None, "current")]
    answer = t.iq(alice, f"<iq type='get' id='i'><query xmlns='{NS_DISCO_INFO}' node='{TUNE}'/></iq>")
    assert identities(answer) == {("pubsub", "leaf")}


def test_discoOtherAccount() -> None:
    """
    XEP-0163 §6.2: disco#info of another account's bare JID is answered
    for a contact subscribed to its presence (account/registered and
    pubsub/pep); its disco#items lists only the nodes the requester may
    see; a node it may not see is item-not-found. A stranger gets
    service-unavailable, as for an account that does not exist.
    """
    t = makeHarness()
    t.friends(ALICE, BOB)
    alice = t.login()
    t.iq(alice, publishXML())
    t.iq(alice, publishXML(node=MOOD, extra=optionsXML(access_model="whitelist")))
    bob = t.login("bob", "desk")
    answer = t.iq(bob, f"<iq type='get' id='i' to='{ALICE}'><query xmlns='{NS_DISCO_INFO}'/></iq>")
    assert answer["from"] == ALICE
    assert {("pubsub", "pep"), ("account", "registered")} <= identities(answer)
    assert f"{NS_PUBSUB}#publish" in features(answer)
    answer = t.iq(bob, f"<iq type='get' id='i' to='{ALICE}'><query xmlns='{NS_DISCO_ITEMS}'/></iq>")
    assert discoItems(answer) == [(ALICE, TUNE, None)]
    carol = t.login("carol", "pc")
    answer = t.iq(carol, f"<iq type='get' id='i' to='{ALICE}'><query xmlns='{NS_DISCO_ITEMS}'/></iq>")
    assert stanzaErrorCondition(answer) == "service-unavailable"
    answer = t.iq(bob, f"<iq type='get' id='i' to='{ALICE}'><query xmlns='{NS_DISCO_INFO}' node='{MOOD}'/></iq>")
    assert stanzaErrorCondition(answer) == "item-not-found"


def test_openNodeForStrangers() -> None:
    """
    XEP-0060 §6.5.1 (access model open), XEP-0384 (OMEMO bundles): a
    stranger fetches the items of an open node, and its disco#info and
    disco#items, by name; the account's own disco stays hidden from it.
    """
    t = makeHarness()
    alice = t.login()
    bundle = "eu.siacs.conversations.axolotl.bundles:1"
    t.iq(alice, publishXML(node=bundle, extra=optionsXML(access_model="open")))
    carol = t.login("carol", "pc")
    assert resultItems(t.iq(carol, itemsXML(node=bundle, to=f" to='{ALICE}'"))) == ["current"]
    info = t.iq(carol, f"<iq type='get' id='i' to='{ALICE}'><query xmlns='{NS_DISCO_INFO}' node='{bundle}'/></iq>")
    assert identities(info) == {("pubsub", "leaf")}
    items = t.iq(carol, f"<iq type='get' id='i' to='{ALICE}'><query xmlns='{NS_DISCO_ITEMS}' node='{bundle}'/></iq>")
    assert discoItems(items) == [(ALICE, None, "current")]
    info = t.iq(carol, f"<iq type='get' id='i' to='{ALICE}'><query xmlns='{NS_DISCO_INFO}'/></iq>")
    assert stanzaErrorCondition(info) == "service-unavailable"


# --- integers from clients -------------------------------------------------------------------------


def configXML(maxItems: str, create: bool = False) -> str:
    form = (
        f"<x xmlns='{NS_X_DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>{NS_PUBSUB_NODE_CONFIG}"
        f"</value></field><field var='pubsub#max_items'><value>{maxItems}</value></field></x>"
    )
    if create:
        return (
            f"<iq type='set' id='c'><pubsub xmlns='{NS_PUBSUB}'><create node='urn:new'/>"
            f"<configure>{form}</configure></pubsub></iq>"
        )
    return (
        f"<iq type='set' id='s'><pubsub xmlns='{NS_PUBSUB_OWNER}'><configure node='{TUNE}'>"
        f"{form}</configure></pubsub></iq>"
    )


@pytest.mark.parametrize("digits", [19, 20, 5000])
def test_hugeIntegers(digits: int) -> None:
    """
    A peer must never make the server log at error: a max_items of more
    than MAX_DIGITS digits (which SQLite cannot hold, or Python refuses to
    convert) is refused before it is converted, with the error its place
    calls for: bad-request in an items request (XEP-0060 §6.5.7),
    bad-request with <invalid-options/> in publish-options (§7.1.5),
    not-acceptable in a configuration or creation form (§8.2.5.2,
    §8.1.3); from another account too.
    """
    huge = "9" * digits
    t = makeHarness()
    t.friends(ALICE, BOB)
    alice = t.login()
    t.iq(alice, publishXML())
    bob = t.login("bob", "desk")
    with capturedLogs() as events:
        assert stanzaErrorCondition(t.iq(alice, itemsXML(attrs=f" max_items='{huge}'"))) == "bad-request"
        assert stanzaErrorCondition(t.iq(bob, itemsXML(to=f" to='{ALICE}'", attrs=f" max_items='{huge}'"))) == (
            "bad-request"
        )
        answer = t.iq(alice, publishXML(node=MOOD, extra=optionsXML(max_items=huge)))
        assert errorOf(answer) == ("bad-request", "invalid-options")
        assert errorOf(t.iq(alice, configXML(huge))) == ("not-acceptable", None)
        assert errorOf(t.iq(alice, configXML(huge, create=True))) == ("not-acceptable", None)
    assert [e for e in events if e["log_level"] >= LogLevel.warn] == []
    assert resultOf(t.h.store.getPEPNode(ALICE, MOOD)) is None


def test_maxItemsClamped() -> None:
    """
    XEP-0060 §6.5.7: a max_items larger than any node may hold (at most
    MAX_DIGITS digits) asks for every item: it is clamped to
    max_pep_items, never handed to the store as it is.
    """
    t = makeHarness(max_pep_items=3)
    alice = t.login()
    for n in range(3):
        t.iq(alice, publishXML(item=f"<item id='i{n}'>{TUNE_ITEM}</item>", extra=optionsXML(max_items="max")))
    asked: list[int] = []
    getPEPItems = t.h.store.getPEPItems

    def spy(account: str, node: str, itemIds: Any = None, maxItems: int = 0) -> Any:
        asked.append(maxItems)
        return getPEPItems(account, node, itemIds, maxItems)

    t.h.store.getPEPItems = spy  # type: ignore[method-assign]
    with capturedLogs() as events:
        answer = t.iq(alice, itemsXML(attrs=f" max_items='{'9' * MAX_DIGITS}'"))
    assert resultItems(answer) == ["i0", "i1", "i2"]
    assert asked == [3]
    assert [e for e in events if e["log_level"] >= LogLevel.warn] == []
