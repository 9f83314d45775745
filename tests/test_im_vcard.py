"""
Tests for L{xmppcert.im.vcard}: vcard-temp (XEP-0054) and the avatar hash
in presence (XEP-0153).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.words.xish import domish

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    ClientConnection,
    FakeClient,
    ServerHarness,
    makeServer,
    resultOf,
    stanzaErrorCondition,
)
from tests.test_im_presence import mutual, online, send
from tests.test_im_roster import World, makeWorld
from xmppcert.handlers import defaultHandlers
from xmppcert.im.vcard import (
    MAX_VCARD_BYTES,
    NS_VCARD,
    NS_VCARD_UPDATE,
    VCARD_PRIORITY,
    VCardService,
    parseStoredVCard,
    photoHash,
)
from xmppcert.routing import INBOUND_BARE
from xmppcert.store.interfaces import StoreError

CAROL = "carol@example.com"
IMAGE = b"\x89PNG\r\n\x1a\n not really an image"
IMAGE_HASH = hashlib.sha1(IMAGE).hexdigest()
ENCODED = base64.b64encode(IMAGE).decode()
#: XEP-0153 section 3.5: line breaks in the base64 data are ignored.
WRAPPED = ENCODED[:10] + "\n  " + ENCODED[10:]
VCARD = f"<vCard xmlns='{NS_VCARD}'><FN>Alice</FN><NICKNAME>al</NICKNAME></vCard>"
PHOTO_VCARD = (
    f"<vCard xmlns='{NS_VCARD}'><FN>Alice</FN>"
    f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{WRAPPED}</BINVAL></PHOTO></vCard>"
)


def parse(xml: str) -> domish.Element:
    elements: list[domish.Element] = []
    stream = domish.ExpatElementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = elements.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(b"<root xmlns='jabber:client'>" + xml.encode() + b"</root>")
    [element] = elements
    return element


@dataclass
class Harness:
    h: ServerHarness
    service: VCardService
    config: Any

    def login(self, user: str, resource: str = "phone") -> ClientConnection:
        client = self.h.connect()
        client.bound(resource, user=user)
        client.output()
        return client

    def iq(self, client: ClientConnection, xml: str) -> domish.Element:
        client.send(xml)
        [answer] = [e for e in client.received().elements if e.name == "iq"]
        return answer


@dataclass
class Limits:
    max_vcard_bytes: int = MAX_VCARD_BYTES


def makeHarness(**limits: Any) -> Harness:
    h = makeServer(accounts=(ALICE, BOB, CAROL))
    config = Limits(**limits)
    service = VCardService(h.sessions, h.store, lambda: config, h.clock)
    service.install()
    h.server.handlerFactories = [defaultHandlers, service.handlersFor]
    return Harness(h, service, config)


def vcardOf(iq: domish.Element) -> domish.Element:
    [vcard] = [c for c in iq.elements() if (c.uri, c.name) == (NS_VCARD, "vCard")]
    return vcard


def fn(vcard: domish.Element) -> str:
    return "".join(str(t) for c in vcard.elements(NS_VCARD, "FN") for t in c.children)


# --- own vCard ---------------------------------------------------------------------


def test_ownVCardNone() -> None:
    """
    XEP-0054 section 3.1: with no vCard stored, the user's get is answered
    with an empty <vCard/> (one of the two answers the XEP allows).
    """
    t = makeHarness()
    alice = t.login("alice")
    answer = t.iq(alice, f"<iq type='get' id='v1'><vCard xmlns='{NS_VCARD}'/></iq>")
    assert answer["type"] == "result" and answer["id"] == "v1"
    assert list(vcardOf(answer).elements()) == []


def test_setThenGetOwn() -> None:
    """
    XEP-0054 sections 3.1, 3.2: a set (no 'to') is acknowledged with an
    empty result and stored; a later get, without 'to' or to the own bare
    JID, returns it.
    """
    t = makeHarness()
    alice = t.login("alice")
    answer = t.iq(alice, f"<iq type='set' id='v2'>{VCARD}</iq>")
    assert answer["type"] == "result" and list(answer.elements()) == []
    assert parseStoredVCard(resultOf(t.h.store.getVCard(ALICE))).toXml() == parse(VCARD).toXml()
    for to in ("", f" to='{ALICE}'"):
        answer = t.iq(alice, f"<iq type='get' id='v3'{to}><vCard xmlns='{NS_VCARD}'/></iq>")
        assert answer["type"] == "result"
        assert fn(vcardOf(answer)) == "Alice"


def test_setAndGetPipelined() -> None:
    """
    RFC 6120 section 10.1: a get sent right after a set, without waiting,
    sees the set even when the store answers late.
    """
    t = makeHarness()
    alice = t.login("alice")
    gate: defer.Deferred[None] = defer.Deferred()
    setVCard = t.h.store.setVCard

    def slowSet(account: str, xml: str | None) -> defer.Deferred[None]:
        return gate.addCallback(lambda _: setVCard(account, xml))

    t.h.store.setVCard = slowSet  # type: ignore[method-assign]
    alice.send(f"<iq type='set' id='s'>{VCARD}</iq><iq type='get' id='g'><vCard xmlns='{NS_VCARD}'/></iq>")
    assert [e for e in alice.received().elements if e.name == "iq"] == []
    gate.callback(None)
    answers = {e["id"]: e for e in alice.received().elements if e.name == "iq"}
    assert answers["s"]["type"] == "result"
    assert fn(vcardOf(answers["g"])) == "Alice"


def test_emptySetRemoves() -> None:
    """
    XEP-0054 section 3.2: the whole vCard is replaced; an empty one leaves
    none stored, and a get answers an empty vCard again.
    """
    t = makeHarness()
    alice = t.login("alice")
    t.iq(alice, f"<iq type='set' id='a'>{VCARD}</iq>")
    assert t.iq(alice, f"<iq type='set' id='b'><vCard xmlns='{NS_VCARD}'/></iq>")["type"] == "result"
    assert resultOf(t.h.store.getVCard(ALICE)) is None


def test_setTooLarge() -> None:
    """
    A vCard larger than the limit is refused with not-acceptable (modify)
    and the stored one is kept.
    """
    t = makeHarness(max_vcard_bytes=200)
    alice = t.login("alice")
    t.iq(alice, f"<iq type='set' id='a'>{VCARD}</iq>")
    big = f"<vCard xmlns='{NS_VCARD}'><DESC>{'x' * 200}</DESC></vCard>"
    answer = t.iq(alice, f"<iq type='set' id='b'>{big}</iq>")
    assert stanzaErrorCondition(answer) == "not-acceptable"
    assert fn(parseStoredVCard(resultOf(t.h.store.getVCard(ALICE)))) == "Alice"


def test_storeFailure() -> None:
    """
    A store failure is internal-server-error of type wait, not a traceback.
    """
    t = makeHarness()
    alice = t.login("alice")
    t.h.store.getVCard = lambda account: defer.fail(StoreError("disk on fire"))  # type: ignore[method-assign]
    answer = t.iq(alice, f"<iq type='get' id='a'><vCard xmlns='{NS_VCARD}'/></iq>")
    assert stanzaErrorCondition(answer) == "internal-server-error"
    assert [e for e in answer.elements() if e.name == "error"][0]["type"] == "wait"


def test_disco() -> None:
    """
    XEP-0054 section 4: the server advertises vcard-temp.
    """
    t = makeHarness()
    alice = t.login("alice")
    answer = t.iq(
        alice, f"<iq type='get' id='d' to='{DOMAIN}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    )
    features = [f["var"] for q in answer.elements() for f in q.elements() if f.name == "feature"]
    assert NS_VCARD in features


# --- other accounts ------------------------------------------------------------------


def test_otherUsersVCard() -> None:
    """
    XEP-0054 section 3.3: a get to another account's bare JID is answered
    by the server on its behalf (from that bare JID), not forwarded to its
    resources.
    """
    t = makeHarness()
    alice = t.login("alice")
    bob = t.login("bob")
    bob.send("<presence/>")
    bob.output()
    t.iq(alice, f"<iq type='set' id='a'>{VCARD}</iq>")
    answer = t.iq(bob, f"<iq type='get' id='v3' to='{ALICE}'><vCard xmlns='{NS_VCARD}'/></iq>")
    assert answer["type"] == "result" and answer["from"] == ALICE
    assert fn(vcardOf(answer)) == "Alice"
    assert alice.received().elements == []


def test_otherUsersVCardNone() -> None:
    """
    XEP-0054 section 3.3: no vCard, or no such user, is a stanza error,
    service-unavailable (the same for both, so it reveals nothing).
    """
    t = makeHarness()
    bob = t.login("bob")
    for to in (ALICE, f"nobody@{DOMAIN}"):
        answer = t.iq(bob, f"<iq type='get' id='v' to='{to}'><vCard xmlns='{NS_VCARD}'/></iq>")
        assert stanzaErrorCondition(answer) == "service-unavailable"


def test_setOtherUsersVCard() -> None:
    """
    XEP-0054 section 3.2: a set to another user's JID is forbidden, and
    changes nothing.
    """
    t = makeHarness()
    alice = t.login("alice")
    t.iq(alice, f"<iq type='set' id='a'>{VCARD}</iq>")
    bob = t.login("bob")
    answer = t.iq(bob, f"<iq type='set' id='v' to='{ALICE}'><vCard xmlns='{NS_VCARD}'><FN>Evil</FN></vCard></iq>")
    assert stanzaErrorCondition(answer) == "forbidden"
    assert fn(parseStoredVCard(resultOf(t.h.store.getVCard(ALICE)))) == "Alice"


def test_foreignHookPriority() -> None:
    """
    The hook runs on INBOUND_BARE above the default delivery (0), which
    would answer service-unavailable for every iq to a bare JID.
    """
    t = makeHarness()
    assert VCARD_PRIORITY > 0
    assert t.service.answerForeignRequest in t.h.sessions.hooks.handlers(INBOUND_BARE)
    t.service.uninstall()
    assert t.service.answerForeignRequest not in t.h.sessions.hooks.handlers(INBOUND_BARE)


# --- XEP-0153 ------------------------------------------------------------------------


def test_photoHash() -> None:
    """
    XEP-0153 section 3.1: the hash is the SHA-1 of the image data, not of
    its base64 form; whitespace in BINVAL is ignored (section 3.5); no
    photo, an empty or a broken BINVAL give none.
    """
    assert photoHash(parse(PHOTO_VCARD)) == IMAGE_HASH
    assert photoHash(parse(VCARD)) is None
    assert photoHash(parse(f"<vCard xmlns='{NS_VCARD}'><PHOTO><BINVAL/></PHOTO></vCard>")) is None
    assert photoHash(parse(f"<vCard xmlns='{NS_VCARD}'><PHOTO><BINVAL>!!</BINVAL></PHOTO></vCard>")) is None


def _world() -> tuple[World, VCardService]:
    world = makeWorld()
    service = VCardService(world.manager, world.store, None, world.clock)
    service.install()
    mutual(world, ALICE, BOB)
    return world, service


def updates(client: FakeClient) -> list[str | None]:
    """
    The photo hash in each available presence C{client} got from alice
    (C{None}: no update element).
    """
    found: list[str | None] = []
    for p in client.sent:
        if p.name != "presence" or p.getAttribute("type") is not None or not p["from"].startswith(ALICE):
            continue
        xs = [c for c in p.elements() if (c.uri, c.name) == (NS_VCARD_UPDATE, "x")]
        found.append("".join(str(t) for x in xs for ph in x.elements() for t in ph.children) if xs else None)
    return found


def test_hashAddedToBroadcast() -> None:
    """
    XEP-0153 section 3.1: when the user's vCard has a photo, the presence
    it broadcasts reaches its contacts with the update element and the
    hash, though the client did not include one.
    """
    world, service = _world()
    bob, bobClient = online(world, f"{BOB}/desk")
    alice, aliceClient = online(world, f"{ALICE}/phone")
    resultOf(service.setVCard(ALICE, parse(PHOTO_VCARD)))
    bobClient.sent.clear()
    world.manager.broadcastPresence(alice, parse(f"<presence from='{ALICE}/phone'><show>away</show></presence>"))
    assert updates(bobClient) == [IMAGE_HASH]


def test_hashInProbeAnswerAndDirected() -> None:
    """
    XEP-0153 section 3.1 (and 4.1: also directed presence): the presence a
    contact gets in answer to its initial presence, and directed presence,
    carry the hash; every copy gets it once.
    """
    world, service = _world()
    alice, _ = online(world, f"{ALICE}/phone")
    resultOf(service.setVCard(ALICE, parse(PHOTO_VCARD)))
    world.manager.broadcastPresence(alice, parse(f"<presence from='{ALICE}/phone'/>"))
    bob, bobClient = online(world, f"{BOB}/desk")
    assert updates(bobClient) == [IMAGE_HASH]
    bobClient.sent.clear()
    send(world, alice, f"<presence to='{CAROL}'/>")
    carol, carolClient = online(world, f"{CAROL}/pc")
    send(world, alice, f"<presence to='{CAROL}/pc'/>")
    assert updates(carolClient) == [IMAGE_HASH]


def test_hashReadFromStore() -> None:
    """
    A vCard stored before the server started (not set through the
    service) is read when the user's presence is first delivered.
    """
    world, service = _world()
    resultOf(world.store.setVCard(ALICE, PHOTO_VCARD))
    bob, bobClient = online(world, f"{BOB}/desk")
    alice, _ = online(world, f"{ALICE}/phone")
    assert updates(bobClient) == [IMAGE_HASH]


def test_clientUpdateKept() -> None:
    """
    XEP-0153 section 4.1: a client that includes the update element itself
    (here: "not ready", an empty one) is left alone.
    """
    world, service = _world()
    alice, _ = online(world, f"{ALICE}/phone")
    resultOf(service.setVCard(ALICE, parse(PHOTO_VCARD)))
    bob, bobClient = online(world, f"{BOB}/desk")
    bobClient.sent.clear()
    world.manager.broadcastPresence(
        alice, parse(f"<presence from='{ALICE}/phone'><x xmlns='{NS_VCARD_UPDATE}'/></presence>")
    )
    assert updates(bobClient) == [""]


def test_noPhotoNoHash() -> None:
    """
    Without a photo in the vCard, presence is delivered unchanged.
    """
    world, service = _world()
    alice, _ = online(world, f"{ALICE}/phone")
    resultOf(service.setVCard(ALICE, parse(VCARD)))
    bob, bobClient = online(world, f"{BOB}/desk")
    assert updates(bobClient) == [None]


def test_newPhotoNewHash() -> None:
    """
    After the vCard changes, the next presence carries the new hash; after
    the photo is removed, none.
    """
    world, service = _world()
    alice, _ = online(world, f"{ALICE}/phone")
    bob, bobClient = online(world, f"{BOB}/desk")
    resultOf(service.setVCard(ALICE, parse(PHOTO_VCARD)))
    other = base64.b64encode(b"other").decode()
    resultOf(service.setVCard(ALICE, parse(f"<vCard xmlns='{NS_VCARD}'><PHOTO><BINVAL>{other}</BINVAL></PHOTO></vCard>")))
    bobClient.sent.clear()
    world.manager.broadcastPresence(alice, parse(f"<presence from='{ALICE}/phone'/>"))
    resultOf(service.setVCard(ALICE, parse(VCARD)))
    world.manager.broadcastPresence(alice, parse(f"<presence from='{ALICE}/phone'/>"))
    assert updates(bobClient) == [hashlib.sha1(b"other").hexdigest(), None]


def test_hashStoreFailure() -> None:
    """
    When the store fails, presence still goes out, without the hash.
    """
    world, service = _world()
    world.store.getVCard = lambda account: defer.fail(StoreError("gone"))  # type: ignore[method-assign]
    bob, bobClient = online(world, f"{BOB}/desk")
    alice, _ = online(world, f"{ALICE}/phone")
    assert updates(bobClient) == [None]


def test_cacheForgottenWithLastSession() -> None:
    """
    The hash is kept in memory only while the account has sessions.
    """
    world, service = _world()
    alice, _ = online(world, f"{ALICE}/phone")
    resultOf(service.setVCard(ALICE, parse(PHOTO_VCARD)))
    assert service._hashes == {ALICE: IMAGE_HASH}
    world.manager.unbind(alice)
    assert ALICE not in service._hashes
