"""
Tests for L{xmppcert.im.carbons}: Message Carbons (XEP-0280).
"""

from __future__ import annotations

import pytest
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    ClientConnection,
    makeServer,
    parseOutput,
    stanzaErrorCondition,
)
from xmppcert.im.carbons import (
    CARBONS_PRIORITY,
    ENABLED_KEY,
    NS_CARBONS,
    NS_FORWARD,
    CarbonsService,
    copyElement,
    isEligible,
    wrapCarbon,
)
from xmppcert.routing import DEFAULT_PRIORITY, INBOUND_BARE, INBOUND_FULL, OUTBOUND


class Carbons:
    """
    A server harness with an installed L{CarbonsService}.
    """

    def __init__(self) -> None:
        self.h = makeServer()
        self.service = CarbonsService(self.h.sessions)
        self.service.install()
        self.h.server.handlerFactories.append(self.service.handlersFor)

    def login(
        self, user: str, resource: str, carbons: bool = False, presence: str | None = "<presence/>"
    ) -> ClientConnection:
        client = self.h.connect()
        client.bound(resource, user=user)
        if presence is not None:
            client.send(presence)
        if carbons:
            client.send(f"<iq type='set' id='on'><enable xmlns='{NS_CARBONS}'/></iq>")
        client.output()
        return client


def messages(client: ClientConnection) -> list[domish.Element]:
    return client.received().named("message")


def carbonOf(carbon: domish.Element, direction: str) -> domish.Element:
    """
    Check the wrapping of a carbon (XEP-0280 §6, §7) and return the
    forwarded message.
    """
    [wrapper] = [c for c in carbon.elements() if c.name in ("sent", "received")]
    assert (wrapper.uri, wrapper.name) == (NS_CARBONS, direction)
    [forwarded] = list(wrapper.elements())
    assert (forwarded.uri, forwarded.name) == (NS_FORWARD, "forwarded")
    [message] = list(forwarded.elements())
    assert (message.uri, message.name) == ("jabber:client", "message")
    return message


def element(xml: str) -> domish.Element:
    return parseOutput(xml).only()


# --- rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xml", "outbound", "eligible"),
    [
        ("<message type='chat'><body>x</body></message>", True, True),
        ("<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", False, True),
        ("<message><body>x</body></message>", True, True),
        ("<message type='normal'><body>x</body></message>", False, True),
        ("<message type='normal'><x xmlns='jabber:x:conference' jid='r@muc.example'/></message>", False, False),
        ("<message type='headline'><body>x</body></message>", False, False),
        ("<message type='groupchat'><body>x</body></message>", False, False),
        ("<message type='error'><body>x</body></message>", False, False),
        ("<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>", True, False),
        ("<message type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>", False, False),
        (
            "<message type='chat' to='alice@example.com/phone'><body>x</body>"
            "<x xmlns='http://jabber.org/protocol/muc#user'/></message>",
            False,
            False,
        ),
        (
            "<message type='chat' to='room@muc.example/nick'><body>x</body>"
            "<x xmlns='http://jabber.org/protocol/muc#user'/></message>",
            True,
            True,
        ),
    ],
)
def test_eligible(xml: str, outbound: bool, eligible: bool) -> None:
    """
    XEP-0280 §5: chat messages, and normal ones with a body, are copied;
    headline, groupchat and error ones are not, nor those marked
    <private/> (§8) or <no-copy/> (XEP-0334), nor private messages from a
    MUC occupant received at a full JID.
    """
    assert isEligible(element(xml), outbound) is eligible


def test_wrapCarbon() -> None:
    """
    XEP-0280 §6: the copy is from the bare JID, to the resource's full JID,
    of the original's type, with the original in <received/><forwarded/>;
    it is a copy: changing it leaves the original alone.
    """
    original = element("<message from='bob@example.com/desk' to='alice@example.com' type='chat'><body>x</body></message>")
    carbon = wrapCarbon(original, "received", jid.JID(ALICE), jid.JID(f"{ALICE}/laptop"))
    assert (carbon["from"], carbon["to"], carbon["type"]) == (ALICE, f"{ALICE}/laptop", "chat")
    inner = carbonOf(carbon, "received")
    assert inner.toXml() == original.toXml()
    inner.body.children = ["changed"]
    assert str(original.body) == "x"
    reparsed = element(carbon.toXml())
    assert carbonOf(reparsed, "received")["from"] == "bob@example.com/desk"
    untyped = wrapCarbon(element("<message><body>x</body></message>"), "sent", jid.JID(ALICE), jid.JID(f"{ALICE}/x"))
    assert untyped.getAttribute("type") is None


def test_copyElement() -> None:
    """
    XEP-0297 §3: the forwarded stanza is the original as it was:
    copyElement makes a deep copy with the same serialization.
    """
    original = element("<message a='1'><body>x &amp; y</body><e xmlns='urn:e'><f/></e></message>")
    copy = copyElement(original)
    assert copy.toXml() == original.toXml()
    assert copy.body is not original.body


def test_hookPriorities() -> None:
    """
    Copies are made before the default delivery (which stops the hooks),
    on all three hook points.
    """
    c = Carbons()
    hooks = c.h.sessions.hooks
    assert CARBONS_PRIORITY > DEFAULT_PRIORITY
    assert hooks.handlers(OUTBOUND) == [c.service.copySent]
    assert hooks.handlers(INBOUND_FULL)[0] == c.service.copyReceivedByFull
    assert hooks.handlers(INBOUND_BARE)[0] == c.service.copyReceivedByBare
    c.service.uninstall()
    assert hooks.handlers(OUTBOUND) == []
    assert c.service.copyReceivedByFull not in hooks.handlers(INBOUND_FULL)
    assert c.service.copyReceivedByBare not in hooks.handlers(INBOUND_BARE)


# --- enabling ------------------------------------------------------------------


@pytest.mark.parametrize("to", ["", f" to='{ALICE}'"])
def test_enableDisable(to: str) -> None:
    """
    XEP-0280 §4 and §5: an iq set with <enable/> or <disable/>, without
    'to' or to the user's own bare JID, is answered with a result and
    changes the state of that session only; §10.1: enabling or disabling
    twice is no error.
    """
    c = Carbons()
    phone = c.login("alice", "phone")
    laptop = c.login("alice", "laptop")
    phoneSession, laptopSession = (c.h.sessions.sessionFor(jid.JID(f"{ALICE}/{r}")) for r in ("phone", "laptop"))
    assert phoneSession is not None and laptopSession is not None
    for n in range(2):
        phone.send(f"<iq type='set' id='e{n}'{to}><enable xmlns='{NS_CARBONS}'/></iq>")
        result = phone.received().only("iq")
        assert (result["type"], result["id"]) == ("result", f"e{n}")
        assert phoneSession.info[ENABLED_KEY] is True
    assert not laptopSession.info.get(ENABLED_KEY)
    for n in range(2):
        phone.send(f"<iq type='set' id='d{n}'{to}><disable xmlns='{NS_CARBONS}'/></iq>")
        assert phone.received().only("iq")["type"] == "result"
        assert phoneSession.info[ENABLED_KEY] is False
    assert laptop.received().elements == []


@pytest.mark.parametrize(
    "request_",
    [
        f"<iq type='set' id='x' to='{DOMAIN}'><enable xmlns='{NS_CARBONS}'/></iq>",
        f"<iq type='set' id='x' to='{BOB}'><enable xmlns='{NS_CARBONS}'/></iq>",
        f"<iq type='get' id='x'><enable xmlns='{NS_CARBONS}'/></iq>",
    ],
)
def test_enableElsewhereRefused(request_: str) -> None:
    """
    XEP-0280 §4: the request is an iq set without 'to'; sent to the server
    domain, to another user, or as a get, it enables nothing and gets an
    error.
    """
    c = Carbons()
    c.login("bob", "desk")
    phone = c.login("alice", "phone")
    phone.send(request_)
    answer = phone.received().only("iq")
    assert answer["type"] == "error"
    assert stanzaErrorCondition(answer) == "service-unavailable"
    session = c.h.sessions.sessionFor(jid.JID(f"{ALICE}/phone"))
    assert session is not None and not session.info.get(ENABLED_KEY)


def test_discoFeature() -> None:
    """
    XEP-0280 §3: the server advertises urn:xmpp:carbons:2.
    """
    c = Carbons()
    phone = c.login("alice", "phone")
    phone.send(f"<iq type='get' id='d1' to='{DOMAIN}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    result = phone.received().only("iq")
    assert NS_CARBONS in [f["var"] for f in result.query.elements() if f.name == "feature"]


# --- received ------------------------------------------------------------------


def test_receivedAtFullJID() -> None:
    """
    XEP-0280 §6: a message to one resource is delivered to it, and a
    <received/> copy goes to each other carbons-enabled resource (not to
    those that did not enable carbons).
    """
    c = Carbons()
    phone = c.login("alice", "phone", carbons=True)
    laptop = c.login("alice", "laptop", carbons=True)
    tablet = c.login("alice", "tablet")
    bob = c.login("bob", "desk")
    bob.send(f"<message to='{ALICE}/phone' type='chat' id='m1'><body>hi</body></message>")
    [original] = messages(phone)
    assert original.getAttribute("id") == "m1" and original.received is None
    [carbon] = messages(laptop)
    assert (carbon["from"], carbon["to"], carbon["type"]) == (ALICE, f"{ALICE}/laptop", "chat")
    inner = carbonOf(carbon, "received")
    assert (inner["from"], inner["to"], inner["id"], str(inner.body)) == (f"{BOB}/desk", f"{ALICE}/phone", "m1", "hi")
    assert messages(tablet) == []
    assert bob.received().elements == []


def test_receivedAtBareJID() -> None:
    """
    XEP-0280 §6: a message to the bare JID goes to the available resources
    of non-negative priority (RFC 6121 §8.5.2.1.1), which get no copy; a
    carbons-enabled resource of negative priority gets a copy.
    """
    c = Carbons()
    phone = c.login("alice", "phone", carbons=True)
    laptop = c.login("alice", "laptop", carbons=True)
    bot = c.login("alice", "bot", carbons=True, presence="<presence><priority>-1</priority></presence>")
    bob = c.login("bob", "desk")
    bob.send(f"<message to='{ALICE}' type='chat'><body>hi</body></message>")
    for client in (phone, laptop):
        [original] = messages(client)
        assert original.received is None and str(original.body) == "hi"
    [carbon] = messages(bot)
    assert carbon["to"] == f"{ALICE}/bot"
    assert str(carbonOf(carbon, "received").body) == "hi"


def test_noCopyOfAStoredMessage() -> None:
    """
    XEP-0160 with XEP-0280 §6: a message no resource takes (only a resource
    of negative priority is available) is stored offline, and not copied
    now: it reaches that resource once from storage, not twice.
    """
    c = Carbons()
    bot = c.login("alice", "bot", carbons=True, presence="<presence><priority>-1</priority></presence>")
    bob = c.login("bob", "desk")
    bob.send(f"<message to='{ALICE}' type='chat'><body>later</body></message>")
    assert messages(bot) == []


def test_receivedForMissingResource() -> None:
    """
    XEP-0280 §6 with RFC 6121 §8.5.3.2.1: a message to a resource that is
    not connected is delivered as to the bare JID, and copied once to the
    carbons-enabled resources that did not get it.
    """
    c = Carbons()
    phone = c.login("alice", "phone")
    bot = c.login("alice", "bot", carbons=True, presence="<presence><priority>-1</priority></presence>")
    bob = c.login("bob", "desk")
    bob.send(f"<message to='{ALICE}/gone' type='chat'><body>hi</body></message>")
    assert [str(m.body) for m in messages(phone)] == ["hi"]
    [carbon] = messages(bot)
    assert carbonOf(carbon, "received")["to"] == f"{ALICE}/gone"


def test_receivedNotEligible() -> None:
    """
    XEP-0280 §5: headlines and normal messages without a body are not
    copied.
    """
    c = Carbons()
    c.login("alice", "phone")
    laptop = c.login("alice", "laptop", carbons=True)
    bob = c.login("bob", "desk")
    bob.send(f"<message to='{ALICE}/phone' type='headline'><body>news</body></message>")
    bob.send(f"<message to='{ALICE}/phone'><x xmlns='jabber:x:oob'/></message>")
    assert messages(laptop) == []


def test_receivedPrivate() -> None:
    """
    XEP-0280 §8: a message marked <private/> is not copied, and the
    receiving server removes the mark before delivery.
    """
    c = Carbons()
    phone = c.login("alice", "phone")
    laptop = c.login("alice", "laptop", carbons=True)
    bob = c.login("bob", "desk")
    bob.send(f"<message to='{ALICE}/phone' type='chat'><body>psst</body><private xmlns='{NS_CARBONS}'/></message>")
    [delivered] = messages(phone)
    assert [c.name for c in delivered.elements()] == ["body"]
    assert messages(laptop) == []


def test_noCopyHint() -> None:
    """
    XEP-0334 §4.2: a message with <no-copy/> is not copied.
    """
    c = Carbons()
    c.login("alice", "phone")
    laptop = c.login("alice", "laptop", carbons=True)
    bob = c.login("bob", "desk", carbons=True)
    bobPhone = c.login("bob", "phone", carbons=True)
    bob.send(f"<message to='{ALICE}/phone' type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>")
    assert messages(laptop) == []
    assert messages(bobPhone) == []


def test_mucPrivateMessageNotCopied() -> None:
    """
    XEP-0280 §5: a private message from a MUC occupant (muc#user payload,
    to a full JID) is not copied.
    """
    c = Carbons()
    c.login("alice", "phone")
    laptop = c.login("alice", "laptop", carbons=True)
    bob = c.login("bob", "desk")
    bob.send(
        f"<message to='{ALICE}/phone' type='chat'><body>x</body>"
        "<x xmlns='http://jabber.org/protocol/muc#user'/></message>"
    )
    assert messages(laptop) == []


def test_disabledGetsNothing() -> None:
    """
    XEP-0280 §5: after <disable/>, a resource gets no more copies.
    """
    c = Carbons()
    c.login("alice", "phone")
    laptop = c.login("alice", "laptop", carbons=True)
    laptop.send(f"<iq type='set' id='off'><disable xmlns='{NS_CARBONS}'/></iq>")
    laptop.output()
    bob = c.login("bob", "desk")
    bob.send(f"<message to='{ALICE}/phone' type='chat'><body>x</body></message>")
    assert messages(laptop) == []


# --- sent ------------------------------------------------------------------------


def test_sent() -> None:
    """
    XEP-0280 §7: a message a resource sends is copied, in <sent/>, to the
    account's other carbons-enabled resources, whether or not the sender
    enabled carbons; never to the sender.
    """
    c = Carbons()
    phone = c.login("alice", "phone", carbons=True)
    laptop = c.login("alice", "laptop", carbons=True)
    tablet = c.login("alice", "tablet")
    bob = c.login("bob", "desk")
    for sender, copied, others in ((phone, [laptop], [tablet]), (tablet, [phone, laptop], [])):
        sender.send(f"<message to='{BOB}/desk' type='chat' id='s1'><body>yo</body></message>")
        assert messages(sender) == []
        for client in copied:
            [carbon] = messages(client)
            assert (carbon["from"], carbon["type"]) == (ALICE, "chat")
            inner = carbonOf(carbon, "sent")
            assert (inner["to"], inner["id"], str(inner.body)) == (f"{BOB}/desk", "s1", "yo")
        for client in others:
            assert messages(client) == []
        assert [str(m.body) for m in messages(bob)] == ["yo"]


def test_sentCopyAddressedToEachResource() -> None:
    """
    XEP-0280 §7: each copy is addressed to the full JID of the resource
    that gets it.
    """
    c = Carbons()
    phone = c.login("alice", "phone")
    laptop = c.login("alice", "laptop", carbons=True)
    tablet = c.login("alice", "tablet", carbons=True)
    c.login("bob", "desk")
    phone.send(f"<message to='{BOB}' type='chat'><body>yo</body></message>")
    assert [m["to"] for m in messages(laptop)] == [f"{ALICE}/laptop"]
    assert [m["to"] for m in messages(tablet)] == [f"{ALICE}/tablet"]


def test_sentPrivate() -> None:
    """
    XEP-0280 §8: a message the user marks <private/> is not copied to its
    other resources (and the recipient gets it without the mark).
    """
    c = Carbons()
    phone = c.login("alice", "phone")
    laptop = c.login("alice", "laptop", carbons=True)
    bob = c.login("bob", "desk")
    phone.send(f"<message to='{BOB}/desk' type='chat'><body>x</body><private xmlns='{NS_CARBONS}'/></message>")
    assert messages(laptop) == []
    [delivered] = messages(bob)
    assert delivered.private is None


def test_sentToOwnResource() -> None:
    """
    XEP-0280 §6, §7: a message between two resources of one account is
    copied once, as <sent/>, to the other carbons-enabled resources; no
    <received/> copy doubles it.
    """
    c = Carbons()
    phone = c.login("alice", "phone")
    laptop = c.login("alice", "laptop")
    tablet = c.login("alice", "tablet", carbons=True)
    phone.send(f"<message to='{ALICE}/laptop' type='chat'><body>note</body></message>")
    assert [str(m.body) for m in messages(laptop)] == ["note"]
    [carbon] = messages(tablet)
    carbonOf(carbon, "sent")


def test_sentErrorNotCopied() -> None:
    """
    XEP-0280 §5: an error a resource sends is not copied.
    """
    c = Carbons()
    phone = c.login("alice", "phone")
    laptop = c.login("alice", "laptop", carbons=True)
    c.login("bob", "desk")
    phone.send(f"<message to='{BOB}/desk' type='error'><error type='cancel'/></message>")
    assert messages(laptop) == []
