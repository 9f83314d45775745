"""
Tests for L{xmppcert.im.presence}: subscriptions (RFC 6121 section 3) and
presence (section 4) between local accounts, on the session registry with
recorded clients, and once through real client streams.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from twisted.internet import defer
from twisted.logger import LogLevel, capturedLogs
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from tests.helpers import (
    ALICE,
    BOB,
    FakeClient,
    addAccount,
    bindSession,
    parseOutput,
    resultOf,
    stanzaErrorCondition,
)
from tests.test_im_roster import (
    CAROL,
    NS_ROSTER,
    World,
    itemFacts,
    login,
    makeWorld,
    pushes,
    put,
    rosterGet,
    rosterServer,
    stored,
)
from xmppcert.config import IMConfig
from xmppcert.im.blocking import BlockingService
from xmppcert.im.presence import MAX_DIRECTED, NS_CLIENT, STATE_KEY, PresenceState
from xmppcert.im.roster import INTERESTED_KEY
from xmppcert.routing import INBOUND_BARE, OUTBOUND, Inbound
from xmppcert.sessions import Session
from xmppcert.store.interfaces import RosterItem

DAVE = "dave@example.com"

# --- helpers -----------------------------------------------------------------------


def element(xml: str) -> domish.Element:
    return parseOutput(xml).only()


def connect(world: World, fullJID: str, interested: bool = True) -> tuple[Session, FakeClient]:
    """
    Bind a session (an interested resource unless told otherwise) that has
    not sent presence.
    """
    session, client = bindSession(world.manager, fullJID)
    if interested:
        session.info[INTERESTED_KEY] = True
    return session, client


def online(world: World, fullJID: str, show: str | None = None, interested: bool = True) -> tuple[Session, FakeClient]:
    """
    Bind a session and send its initial presence.
    """
    session, client = connect(world, fullJID, interested)
    broadcast(world, session, show)
    return session, client


def broadcast(world: World, session: Session, show: str | None = None, unavailable: bool = False) -> None:
    """
    Presence without 'to' from C{session}, as its stream hands it over.
    """
    content = f"<show>{show}</show>" if show else ""
    kind = " type='unavailable'" if unavailable else ""
    world.manager.broadcastPresence(session, element(f"<presence from='{session.jid.full()}'{kind}>{content}</presence>"))


def send(world: World, session: Session, xml: str) -> domish.Element:
    """
    A stanza with 'to' from C{session}, stamped and routed as its stream does.
    """
    stanza = element(xml)
    stanza["from"] = session.jid.full()
    resultOf(world.manager.route(stanza, session))
    return stanza


def presences(client: FakeClient) -> list[tuple[str | None, str | None, str | None]]:
    """
    (type, from, to) of the presence stanzas C{client} got.
    """
    return [
        (p.getAttribute("type"), p.getAttribute("from"), p.getAttribute("to"))
        for p in client.sent
        if p.name == "presence"
    ]


def show(presence: domish.Element) -> str:
    return "".join(str(t) for c in presence.elements(NS_CLIENT, "show") for t in c.children)


def shows(client: FakeClient) -> list[str]:
    return [show(p) for p in client.sent if p.name == "presence"]


def pushed(client: FakeClient) -> list[dict[str, Any]]:
    return [itemFacts(item) for item in pushes(client.sent)]


def clear(*clients: FakeClient) -> None:
    for client in clients:
        client.sent.clear()


def mutual(world: World, a: str, b: str) -> None:
    put(world.store, a, RosterItem(b, subscription="both"))
    put(world.store, b, RosterItem(a, subscription="both"))


# --- the subscription handshake -----------------------------------------------------


def test_subscriptionHandshake() -> None:
    """
    RFC 6121 §3.1: alice asks bob (§3.1.2: her item becomes None + Pending
    Out, pushed; §3.1.3: the request reaches bob's available resources and
    is kept, not shown as an item), bob approves (§3.1.5: his item becomes
    From; §3.1.6: alice's becomes To, she gets "subscribed" and bob's
    presence).
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    bob, bobClient = online(world, f"{BOB}/desk", show="away")
    clear(aliceClient, bobClient)

    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, askOut=True)
    assert pushed(aliceClient) == [
        {"jid": BOB, "name": None, "subscription": "none", "ask": "subscribe", "approved": None, "groups": []}
    ]
    assert presences(bobClient) == [("subscribe", ALICE, BOB)]
    assert pushed(bobClient) == []
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE, pendingIn=True, inRoster=False)
    clear(aliceClient, bobClient)

    send(world, bob, f"<presence type='subscribed' to='{ALICE}'/>")
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE, subscription="from")
    assert [(p["jid"], p["subscription"]) for p in pushed(bobClient)] == [(ALICE, "from")]
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, subscription="to")
    assert [(p["jid"], p["subscription"], p["ask"]) for p in pushed(aliceClient)] == [(BOB, "to", None)]
    assert presences(aliceClient) == [("subscribed", BOB, ALICE), (None, f"{BOB}/desk", ALICE)]
    bobPresence = [p for p in aliceClient.sent if p.name == "presence"][-1]
    assert show(bobPresence) == "away"


def test_mutualSubscription() -> None:
    """
    RFC 6121 §3.1, both ways: once each approved the other, both items are
    Both and each sees the other's presence changes (§4.4.2).
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    bob, bobClient = online(world, f"{BOB}/desk")
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    send(world, bob, f"<presence type='subscribed' to='{ALICE}'/>")
    send(world, bob, f"<presence type='subscribe' to='{ALICE}'/>")
    assert ("subscribe", BOB, ALICE) in presences(aliceClient)
    send(world, alice, f"<presence type='subscribed' to='{BOB}'/>")
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, subscription="both")
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE, subscription="both")
    clear(aliceClient, bobClient)
    broadcast(world, alice, show="dnd")
    assert (None, f"{ALICE}/phone", BOB) in presences(bobClient)
    broadcast(world, bob, show="xa")
    assert (None, f"{BOB}/desk", ALICE) in presences(aliceClient)


def test_subscribeStampsBareJIDs() -> None:
    """
    RFC 6121 §3.1.2: the request is stamped with the user's bare JID, and
    one to a full JID is handled as to the contact's bare JID.
    """
    world = makeWorld()
    alice, _ = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    _, laptopClient = online(world, f"{BOB}/laptop")
    clear(bobClient, laptopClient)
    seen: list[tuple[str, str, str]] = []

    def spy(event: Inbound) -> bool:
        seen.append((event.stanza["from"], event.stanza["to"], event.target.full()))
        return False

    # What later handlers (blocking, ...) see is stamped already.
    world.manager.hooks.add(INBOUND_BARE, spy, priority=500)
    send(world, alice, f"<presence type='subscribe' to='{BOB}/desk'><status>hi</status></presence>")
    assert seen == [(ALICE, BOB, BOB)]
    assert presences(bobClient) == presences(laptopClient) == [("subscribe", ALICE, BOB)]
    request = [p for p in bobClient.sent if p.name == "presence"][0]
    assert [str(c) for c in request.elements(NS_CLIENT, "status")] == ["hi"]


def test_requestNotToUnavailableResources() -> None:
    """
    RFC 6121 §3.1.3: a request goes to the contact's available resources
    only; the others get it with their initial presence.
    """
    world = makeWorld()
    alice, _ = online(world, f"{ALICE}/phone")
    _, idleClient = connect(world, f"{BOB}/idle")
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    assert presences(idleClient) == []


def test_pendingRequestRedelivered() -> None:
    """
    RFC 6121 §3.1.3: a request for an offline contact is kept and
    delivered when it next sends initial presence, again on each until it
    is answered, and never after.
    """
    world = makeWorld()
    alice, _ = online(world, f"{ALICE}/phone")
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    bob, bobClient = online(world, f"{BOB}/desk")
    assert ("subscribe", ALICE, BOB) in presences(bobClient)
    world.manager.unbind(bob)
    bob, bobClient = online(world, f"{BOB}/desk")
    assert ("subscribe", ALICE, BOB) in presences(bobClient)
    send(world, bob, f"<presence type='subscribed' to='{ALICE}'/>")
    world.manager.unbind(bob)
    _, bobClient = online(world, f"{BOB}/desk")
    assert [p for p in presences(bobClient) if p[0] == "subscribe"] == []


def test_repeatedRequestNotRedelivered() -> None:
    """
    RFC 6121 Appendix A.3.1: a request while one is pending changes
    nothing and is not delivered again.
    """
    world = makeWorld()
    alice, _ = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    clear(bobClient)
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    assert presences(bobClient) == []


def test_alreadySubscribedAutoReply() -> None:
    """
    RFC 6121 §3.1.3: a request from a user already subscribed is answered
    "subscribed" on the contact's behalf, without bothering the contact.
    """
    world = makeWorld()
    put(world.store, ALICE, RosterItem(BOB, subscription="to"))
    put(world.store, BOB, RosterItem(ALICE, subscription="from"))
    alice, aliceClient = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    clear(aliceClient, bobClient)
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    assert presences(bobClient) == []
    assert (None, f"{BOB}/desk", ALICE) in presences(aliceClient)
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, subscription="to")


def test_preApproval() -> None:
    """
    RFC 6121 §3.4: bob's "subscribed" without a request pre-approves alice
    (approved='true', pushed, not routed); her later request is approved
    at once, without reaching bob's resources, and the pre-approval is
    spent.
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    bob, bobClient = online(world, f"{BOB}/desk")
    clear(aliceClient, bobClient)
    send(world, bob, f"<presence type='subscribed' to='{ALICE}'/>")
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE, approved=True)
    assert [(p["jid"], p["approved"]) for p in pushed(bobClient)] == [(ALICE, "true")]
    assert aliceClient.sent == []
    clear(bobClient)
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    assert presences(bobClient) == []
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE, subscription="from")
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, subscription="to")
    assert ("subscribed", BOB, ALICE) in presences(aliceClient)
    assert (None, f"{BOB}/desk", ALICE) in presences(aliceClient)


def test_preApprovalCancelled() -> None:
    """
    RFC 6121 §3.4: "unsubscribed" cancels a pre-approval; the request then
    reaches the contact.
    """
    world = makeWorld()
    alice, _ = online(world, f"{ALICE}/phone")
    bob, bobClient = online(world, f"{BOB}/desk")
    send(world, bob, f"<presence type='subscribed' to='{ALICE}'/>")
    send(world, bob, f"<presence type='unsubscribed' to='{ALICE}'/>")
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE)
    clear(bobClient)
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    assert presences(bobClient) == [("subscribe", ALICE, BOB)]


def test_declineRequest() -> None:
    """
    RFC 6121 §3.2.1: the contact declines with "unsubscribed": its pending
    record is forgotten, and the user's Pending Out ends (A.3.4), which
    she is told.
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    bob, _ = online(world, f"{BOB}/desk")
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    clear(aliceClient)
    send(world, bob, f"<presence type='unsubscribed' to='{ALICE}'/>")
    assert stored(world.store, BOB, ALICE) is None
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB)
    assert presences(aliceClient) == [("unsubscribed", BOB, ALICE)]
    assert [(p["jid"], p["ask"]) for p in pushed(aliceClient)] == [(BOB, None)]


def test_cancelSubscription() -> None:
    """
    RFC 6121 §3.2.2: the contact cancels the user's subscription: both
    items change, the user is told and sees the contact's resources go
    unavailable.
    """
    world = makeWorld()
    put(world.store, ALICE, RosterItem(BOB, subscription="to"))
    put(world.store, BOB, RosterItem(ALICE, subscription="from"))
    _, aliceClient = online(world, f"{ALICE}/phone")
    bob, _ = online(world, f"{BOB}/desk")
    clear(aliceClient)
    send(world, bob, f"<presence type='unsubscribed' to='{ALICE}'/>")
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE)
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB)
    assert presences(aliceClient) == [("unsubscribed", BOB, ALICE), ("unavailable", f"{BOB}/desk", ALICE)]


def test_unsubscribe() -> None:
    """
    RFC 6121 §3.3: the user unsubscribes: her item loses To, the contact's
    loses From (its resources are told), and she sees the contact's
    resources go unavailable (§3.3.3).
    """
    world = makeWorld()
    mutual(world, ALICE, BOB)
    alice, aliceClient = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    clear(aliceClient, bobClient)
    send(world, alice, f"<presence type='unsubscribe' to='{BOB}'/>")
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, subscription="from")
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE, subscription="to")
    assert ("unsubscribe", ALICE, BOB) in presences(bobClient)
    assert presences(aliceClient) == [("unavailable", f"{BOB}/desk", ALICE)]
    # Alice still has bob as a subscriber: her presence reaches him.
    clear(bobClient)
    broadcast(world, alice, show="away")
    assert (None, f"{ALICE}/phone", BOB) in presences(bobClient)


def test_answersOnlyToInterestedResources() -> None:
    """
    RFC 6121 §3.1.6: an approval is delivered to the user's interested
    resources (those that asked for the roster).
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    _, quietClient = online(world, f"{ALICE}/quiet", interested=False)
    bob, _ = online(world, f"{BOB}/desk")
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    clear(aliceClient, quietClient)
    send(world, bob, f"<presence type='subscribed' to='{ALICE}'/>")
    assert ("subscribed", BOB, ALICE) in presences(aliceClient)
    assert [p for p in presences(quietClient) if p[0] == "subscribed"] == []
    assert pushes(quietClient.sent) == []


def test_subscribeToUnknownAccount() -> None:
    """
    RFC 6121 §8.5.1: a request for an account that does not exist is
    silently ignored: no error tells the user it does not exist.
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    clear(aliceClient)
    send(world, alice, "<presence type='subscribe' to='nobody@example.com'/>")
    assert presences(aliceClient) == []
    assert stored(world.store, ALICE, "nobody@example.com") == RosterItem("nobody@example.com", askOut=True)


def test_subscribeToOtherDomain() -> None:
    """
    RFC 6120 §8.3.3.15 (no server-to-server here): a request for another
    domain is answered remote-server-not-found, and the roster does not
    change.
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    clear(aliceClient)
    send(world, alice, "<presence type='subscribe' to='romeo@montague.example'/>")
    [reply] = [p for p in aliceClient.sent if p.name == "presence"]
    assert stanzaErrorCondition(reply) == "remote-server-not-found"
    assert stored(world.store, ALICE, "romeo@montague.example") is None


def test_subscribeToSelf() -> None:
    """
    A subscription to one's own account is dropped: its resources share
    its presence already (RFC 6121 §4.2.2).
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    _, laptopClient = online(world, f"{ALICE}/laptop")
    clear(aliceClient, laptopClient)
    send(world, alice, f"<presence type='subscribe' to='{ALICE}'/>")
    assert aliceClient.sent == laptopClient.sent == []
    assert stored(world.store, ALICE, ALICE) is None


def test_subscribeWithFullRoster() -> None:
    """
    RFC 6121 §2.3.3 (the server's roster limit): a request that would add
    an item to a full roster is refused with resource-constraint; one for
    a contact with no room for the request is dropped.
    """
    world = makeWorld(max_roster_items=2)
    put(world.store, ALICE, RosterItem(CAROL))
    put(world.store, ALICE, RosterItem("x@example.com"))
    alice, aliceClient = online(world, f"{ALICE}/phone")
    clear(aliceClient)
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    [reply] = [p for p in aliceClient.sent if p.name == "presence"]
    assert stanzaErrorCondition(reply) == "resource-constraint"
    assert stored(world.store, ALICE, BOB) is None
    addAccount(world.store, DAVE)
    put(world.store, DAVE, RosterItem(BOB))
    put(world.store, DAVE, RosterItem("x@example.com"))
    carol, carolClient = online(world, f"{CAROL}/pad")
    _, daveClient = online(world, f"{DAVE}/pc")
    clear(carolClient)
    send(world, carol, f"<presence type='subscribe' to='{DAVE}'/>")
    assert stored(world.store, DAVE, CAROL) is None
    assert presences(daveClient)[-1][0] != "subscribe"
    assert [p for p in presences(carolClient) if p[0] is not None] == []
    # A request from a contact already in the roster needs no room.
    send(world, carol, f"<presence type='subscribe' to='{ALICE}'/>")
    assert stored(world.store, ALICE, CAROL) == RosterItem(CAROL, pendingIn=True)


def test_unknownPresenceType() -> None:
    """
    RFC 6120 §8.3.3.1: presence of a type that does not exist is refused
    with bad-request.
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    clear(aliceClient, bobClient)
    send(world, alice, f"<presence type='dance' to='{BOB}'/>")
    assert bobClient.sent == []
    assert stanzaErrorCondition(aliceClient.sent[0]) == "bad-request"


# --- roster removal -------------------------------------------------------------------


def test_removeItemEndsSubscriptions() -> None:
    """
    RFC 6121 §2.5.2: removing an item with subscriptions both ways sends
    "unsubscribe" and "unsubscribed" to the contact, whose item loses both
    (pushed), and each sees the other go unavailable.
    """
    world = makeWorld()
    mutual(world, ALICE, BOB)
    _, aliceClient = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    clear(aliceClient, bobClient)
    resultOf(world.roster.removeItem(jid.JID(ALICE), BOB))
    assert stored(world.store, ALICE, BOB) is None
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE)
    assert [(p["jid"], p["subscription"]) for p in pushed(bobClient)] == [(ALICE, "to"), (ALICE, "none")]
    assert ("unsubscribe", ALICE, BOB) in presences(bobClient)
    assert ("unsubscribed", ALICE, BOB) in presences(bobClient)
    assert ("unavailable", f"{ALICE}/phone", BOB) in presences(bobClient)
    assert ("unavailable", f"{BOB}/desk", ALICE) in presences(aliceClient)


def test_removeItemCancelsRequests() -> None:
    """
    RFC 6121 §2.5.2: removing an item cancels the user's pending request
    to the contact and declines the contact's pending request.
    """
    world = makeWorld()
    put(world.store, ALICE, RosterItem(BOB, askOut=True, pendingIn=True))
    put(world.store, BOB, RosterItem(ALICE, askOut=True, pendingIn=True))
    resultOf(world.roster.removeItem(jid.JID(ALICE), BOB))
    assert stored(world.store, BOB, ALICE) == RosterItem(ALICE)


# --- presence broadcast and probes -----------------------------------------------------


def test_initialPresence() -> None:
    """
    RFC 6121 §4.2.2: initial presence goes to the contacts subscribed to
    the user (From, Both), not to others; §4.3.2: the user gets the
    presence of each available resource of the contacts she is subscribed
    to (To, Both), and unavailable presence for those offline.
    """
    world = makeWorld()
    put(world.store, ALICE, RosterItem(BOB, subscription="both"))
    put(world.store, BOB, RosterItem(ALICE, subscription="both"))
    put(world.store, ALICE, RosterItem(CAROL, subscription="to"))
    put(world.store, CAROL, RosterItem(ALICE, subscription="from"))
    put(world.store, ALICE, RosterItem("dave@example.com", subscription="from"))
    _, bobClient = online(world, f"{BOB}/desk", show="chat")
    _, carolClient = connect(world, f"{CAROL}/pad")
    clear(bobClient)
    _, aliceClient = online(world, f"{ALICE}/phone")
    assert presences(bobClient) == [(None, f"{ALICE}/phone", BOB)]
    assert carolClient.sent == []
    received = presences(aliceClient)
    assert (None, f"{BOB}/desk", f"{ALICE}/phone") in received
    assert ("unavailable", CAROL, f"{ALICE}/phone") in received
    assert not any(p[1] and p[1].startswith("dave@") for p in received)


def test_presenceUpdateAndUnavailable() -> None:
    """
    RFC 6121 §4.4.2, §4.5.2: later presence and unavailable presence go to
    the subscribers; contacts are not answered for again on an update.
    """
    world = makeWorld()
    mutual(world, ALICE, BOB)
    alice, aliceClient = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    clear(aliceClient, bobClient)
    broadcast(world, alice, show="away")
    assert presences(bobClient) == [(None, f"{ALICE}/phone", BOB)]
    assert [p for p in presences(aliceClient) if p[1] != f"{ALICE}/phone"] == []
    clear(bobClient)
    broadcast(world, alice, unavailable=True)
    assert presences(bobClient) == [("unavailable", f"{ALICE}/phone", BOB)]


def test_availableAgainAnswersAgain() -> None:
    """
    RFC 6121 §4.2: after unavailable presence, the next available presence
    is initial again: the contacts' presence is sent once more.
    """
    world = makeWorld()
    mutual(world, ALICE, BOB)
    alice, aliceClient = online(world, f"{ALICE}/phone")
    online(world, f"{BOB}/desk")
    broadcast(world, alice, unavailable=True)
    clear(aliceClient)
    broadcast(world, alice)
    assert (None, f"{BOB}/desk", f"{ALICE}/phone") in presences(aliceClient)


def test_probeFromClient() -> None:
    """
    RFC 6121 §4.3.2: a probe is answered on the contact's behalf: a
    subscriber gets the presence of its available resources (unavailable
    if none), anyone else "unsubscribed" (which mends a roster that thinks
    it is subscribed).
    """
    world = makeWorld()
    put(world.store, BOB, RosterItem(ALICE, subscription="from"))
    alice, aliceClient = online(world, f"{ALICE}/phone")
    # After her initial presence, which would have probed carol already.
    put(world.store, ALICE, RosterItem(CAROL, subscription="to"))
    bob, _ = connect(world, f"{BOB}/desk")
    clear(aliceClient)
    send(world, alice, f"<presence type='probe' to='{BOB}'/>")
    assert presences(aliceClient) == [("unavailable", BOB, f"{ALICE}/phone")]
    broadcast(world, bob, show="away")
    clear(aliceClient)
    send(world, alice, f"<presence type='probe' to='{BOB}'/>")
    assert presences(aliceClient) == [(None, f"{BOB}/desk", f"{ALICE}/phone")]
    clear(aliceClient)
    send(world, alice, f"<presence type='probe' to='{CAROL}'/>")
    assert presences(aliceClient) == [("unsubscribed", CAROL, ALICE)]
    assert stored(world.store, ALICE, CAROL) == RosterItem(CAROL)


def test_probeFromStranger() -> None:
    """
    RFC 6121 §4.3.2: a probe from someone not subscribed reveals nothing;
    for an account that does not exist, the same answer (§8.5.1).
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    online(world, f"{BOB}/desk")
    clear(aliceClient)
    send(world, alice, f"<presence type='probe' to='{BOB}'/>")
    send(world, alice, "<presence type='probe' to='nobody@example.com'/>")
    assert presences(aliceClient) == []


# --- directed presence ----------------------------------------------------------------


def test_directedPresenceUndoneByUnavailable() -> None:
    """
    RFC 6121 §4.6: directed presence to someone who is not a subscriber is
    delivered, remembered, and undone with unavailable presence when the
    user goes unavailable.
    """
    world = makeWorld()
    alice, _ = online(world, f"{ALICE}/phone")
    _, carolClient = online(world, f"{CAROL}/pad")
    clear(carolClient)
    send(world, alice, f"<presence to='{CAROL}/pad'><show>chat</show></presence>")
    assert presences(carolClient) == [(None, f"{ALICE}/phone", f"{CAROL}/pad")]
    clear(carolClient)
    broadcast(world, alice, unavailable=True)
    assert presences(carolClient) == [("unavailable", f"{ALICE}/phone", f"{CAROL}/pad")]
    clear(carolClient)
    broadcast(world, alice)
    broadcast(world, alice, unavailable=True)
    assert presences(carolClient) == []


def test_directedUnavailableForgets() -> None:
    """
    RFC 6121 §4.6.3: directed unavailable presence ends the directed
    presence: nothing more is sent later.
    """
    world = makeWorld()
    alice, _ = online(world, f"{ALICE}/phone")
    _, carolClient = online(world, f"{CAROL}/pad")
    send(world, alice, f"<presence to='{CAROL}'/>")
    send(world, alice, f"<presence type='unavailable' to='{CAROL}'/>")
    clear(carolClient)
    world.manager.unbind(alice)
    assert presences(carolClient) == []


def test_directedPresenceUndoneOnSessionEnd() -> None:
    """
    RFC 6121 §4.6.3, §4.5.2: when a session ends however (a revoked
    certificate, a kick, a lost connection), the targets of its directed
    presence get unavailable presence, also when it never sent initial
    presence.
    """
    world = makeWorld()
    alice, _ = connect(world, f"{ALICE}/phone")
    _, carolClient = online(world, f"{CAROL}/pad")
    send(world, alice, f"<presence to='{CAROL}'/>")
    clear(carolClient)
    world.manager.unbind(alice)
    assert presences(carolClient) == [("unavailable", f"{ALICE}/phone", CAROL)]


def test_directedToSubscriberNotDoubled() -> None:
    """
    RFC 6121 §4.6.3: a subscriber that also got directed presence is told
    of unavailability once.
    """
    world = makeWorld()
    mutual(world, ALICE, BOB)
    alice, _ = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    send(world, alice, f"<presence to='{BOB}/desk'/>")
    clear(bobClient)
    broadcast(world, alice, unavailable=True)
    assert presences(bobClient) == [("unavailable", f"{ALICE}/phone", BOB)]


def test_directedPresenceBounded() -> None:
    """
    RFC 6121 §4.6.3, bounded: at most MAX_DIRECTED targets are remembered;
    the oldest is told the session is unavailable when another comes.
    """
    world = makeWorld(presence_burst=MAX_DIRECTED + 10)
    alice, _ = online(world, f"{ALICE}/phone")
    _, carolClient = online(world, f"{CAROL}/pad")
    send(world, alice, f"<presence to='{CAROL}/pad'/>")
    clear(carolClient)
    for i in range(MAX_DIRECTED):
        send(world, alice, f"<presence to='someone{i}@example.com'/>")
    assert presences(carolClient) == [("unavailable", f"{ALICE}/phone", f"{CAROL}/pad")]
    state = alice.info[STATE_KEY]
    assert isinstance(state, PresenceState) and len(state.directed) == MAX_DIRECTED


# --- the end of a session --------------------------------------------------------------


def test_sessionEndTellsSubscribers() -> None:
    """
    RFC 6121 §4.5.2: a session that ends while available is unavailable to
    its subscribers; the server says so on its behalf.
    """
    world = makeWorld()
    mutual(world, ALICE, BOB)
    alice, _ = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    clear(bobClient)
    world.manager.unbind(alice)
    assert presences(bobClient) == [("unavailable", f"{ALICE}/phone", BOB)]


def test_revokedCertificateTellsSubscribers() -> None:
    """
    RFC 6121 §4.5.2: when a revoked certificate closes a session (and the
    stream unbinds it), its subscribers learn it is gone.
    """
    world = makeWorld()
    mutual(world, ALICE, BOB)
    alice, aliceClient = online(world, f"{ALICE}/phone")
    alice.info["certificate"] = "ab" * 32
    _, bobClient = online(world, f"{BOB}/desk")
    clear(bobClient)
    assert world.manager.closeSessionsWithCertificate("ab" * 32) == 1
    assert aliceClient.closes
    world.manager.unbind(alice)
    assert presences(bobClient) == [("unavailable", f"{ALICE}/phone", BOB)]


def test_sessionEndWhileUnavailable() -> None:
    """
    RFC 6121 §4.5.2: a session that was not available is nothing to its
    subscribers when it ends.
    """
    world = makeWorld()
    mutual(world, ALICE, BOB)
    alice, _ = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    broadcast(world, alice, unavailable=True)
    clear(bobClient)
    world.manager.unbind(alice)
    assert presences(bobClient) == []


def test_initialPresenceFollowsContactRoster() -> None:
    """
    RFC 6121 §4.3.2 (privacy): initial presence gets the user a contact's
    presence only if the contact's roster says the user may have it (From,
    Both), whatever the user's roster says; otherwise the contact answers
    "unsubscribed", which mends the user's roster (Appendix A.3.4).
    """
    world = makeWorld()
    put(world.store, ALICE, RosterItem(BOB, subscription="to"))
    put(world.store, BOB, RosterItem(ALICE, subscription="none"))
    put(world.store, ALICE, RosterItem(CAROL, subscription="to"))
    bob, _ = online(world, f"{BOB}/desk", show="away")
    _, aliceClient = online(world, f"{ALICE}/phone")
    received = presences(aliceClient)
    assert not any(p[1] and p[1].startswith("bob@") and p[0] is None for p in received)
    assert ("unsubscribed", BOB, ALICE) in received
    assert ("unsubscribed", CAROL, ALICE) in received
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, subscription="none")
    assert stored(world.store, ALICE, CAROL) == RosterItem(CAROL, subscription="none")


def test_initialPresenceReadsOfflineRostersTogether() -> None:
    """
    RFC 6121 §4.3.2, for the probes initial presence stands for: the
    rosters of the contacts without sessions are read from the store in
    one read, those of the contacts online come from memory, and each
    contact's roster still decides its answer.
    """
    world = makeWorld()
    addAccount(world.store, DAVE)
    mutual(world, ALICE, BOB)
    put(world.store, ALICE, RosterItem(CAROL, subscription="to"))
    put(world.store, CAROL, RosterItem(ALICE, subscription="from"))
    put(world.store, ALICE, RosterItem(DAVE, subscription="to"))
    online(world, f"{BOB}/desk", show="away")
    reads: list[tuple[str, ...]] = []
    store = world.store
    getRosterItem, rosterItemsWith = store.getRosterItem, store.rosterItemsWith

    def countedItem(account: str, contact: str) -> Any:
        reads.append((account, contact))
        return getRosterItem(account, contact)

    def countedWith(contact: str) -> Any:
        reads.append((contact,))
        return rosterItemsWith(contact)

    store.getRosterItem = countedItem  # type: ignore[method-assign]
    store.rosterItemsWith = countedWith  # type: ignore[method-assign]
    _, aliceClient = online(world, f"{ALICE}/phone")
    received = presences(aliceClient)
    assert (None, f"{BOB}/desk", f"{ALICE}/phone") in received
    assert ("unavailable", CAROL, f"{ALICE}/phone") in received
    assert ("unsubscribed", DAVE, ALICE) in received
    # Only alice's own item for dave is read alone, to mend it.
    assert reads == [(ALICE,), (ALICE, DAVE)]
    assert stored(world.store, ALICE, DAVE) == RosterItem(DAVE, subscription="none")


def test_storeFailureInProbeAnswers() -> None:
    """
    RFC 6121 §4.2.2 with a failing store for the contacts' rosters: the
    user's presence still reaches the subscribers online, the probe
    answers are skipped, with one line at error and no traceback.
    """
    world = makeWorld()
    mutual(world, ALICE, BOB)
    mutual(world, ALICE, CAROL)
    _, bobClient = online(world, f"{BOB}/desk")
    clear(bobClient)

    def broken(*args: Any) -> defer.Deferred[Any]:
        return defer.fail(sqlite3.OperationalError("disk I/O error"))

    world.store.rosterItemsWith = broken  # type: ignore[method-assign, assignment]
    world.store.getRosterItem = broken  # type: ignore[method-assign, assignment]
    with capturedLogs() as events:
        _, aliceClient = online(world, f"{ALICE}/phone")
    assert presences(bobClient) == [(None, f"{ALICE}/phone", BOB)]
    assert not any(p[1] and p[1].startswith("carol@") for p in presences(aliceClient))
    errors = [e for e in events if e["log_level"] >= LogLevel.error]
    assert len(errors) == 1 and "log_failure" not in errors[0]


def test_pendingRequestRedeliveredThroughBlocking() -> None:
    """
    XEP-0191 §3.3 with RFC 6121 §3.1.3: a pending request from a JID the
    user blocked since is not delivered again on her initial presence; one
    from a JID not blocked still is.
    """
    world = makeWorld()
    blocking = BlockingService(world.manager, world.store, world.im, world.clock)
    blocking.install()
    bob, _ = online(world, f"{BOB}/desk")
    carol, _ = online(world, f"{CAROL}/pad")
    send(world, bob, f"<presence type='subscribe' to='{ALICE}'/>")
    send(world, carol, f"<presence type='subscribe' to='{ALICE}'/>")
    alice, aliceClient = connect(world, f"{ALICE}/phone")
    resultOf(blocking.block(alice, [BOB]))
    clear(aliceClient)
    broadcast(world, alice)
    requests = [p for p in presences(aliceClient) if p[0] == "subscribe"]
    assert requests == [("subscribe", CAROL, ALICE)]
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB, pendingIn=True, inRoster=False)


def test_deletedAccountUnavailableToContacts() -> None:
    """
    RFC 6121 §4.5.2: when the account of an available session is deleted
    (its roster with it) and the session ends, the contacts that were told
    it was available are told it is not: those it was told to at initial
    presence, and a subscriber approved later (§3.1.5); not one whose
    subscription it cancelled meanwhile (§3.2.2), nor anyone else.
    """
    world = makeWorld()
    addAccount(world.store, DAVE)
    mutual(world, ALICE, BOB)
    mutual(world, ALICE, DAVE)
    alice, _ = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    carol, carolClient = online(world, f"{CAROL}/pad")
    _, daveClient = online(world, f"{DAVE}/home")
    send(world, carol, f"<presence type='subscribe' to='{ALICE}'/>")
    send(world, alice, f"<presence type='subscribed' to='{CAROL}'/>")
    send(world, alice, f"<presence type='unsubscribed' to='{DAVE}'/>")
    clear(bobClient, carolClient, daveClient)
    resultOf(world.store.removeAccount(ALICE))
    assert resultOf(world.store.getRoster(ALICE))[1] == []
    world.manager.unbind(alice)
    assert presences(bobClient) == [("unavailable", f"{ALICE}/phone", BOB)]
    assert presences(carolClient) == [("unavailable", f"{ALICE}/phone", CAROL)]
    assert presences(daveClient) == []


def test_toldBounded() -> None:
    """
    RFC 6121 §4.5.2: the contacts a session must tell when it goes
    unavailable are bounded by the roster limit ([im] max_roster_items);
    the oldest beyond it is told at once and forgotten.
    """
    world = makeWorld()
    addAccount(world.store, DAVE)
    for contact in (BOB, CAROL, DAVE):
        mutual(world, ALICE, contact)
    alice, _ = online(world, f"{ALICE}/phone")
    state = alice.info[STATE_KEY]
    assert list(state.told) == [BOB, CAROL, DAVE]
    _, bobClient = online(world, f"{BOB}/desk")
    clear(bobClient)
    world.config = IMConfig(max_roster_items=2)
    broadcast(world, alice, show="away")
    assert len(state.told) == 2
    assert ("unavailable", f"{ALICE}/phone", BOB) in presences(bobClient)


# --- the presence limit ----------------------------------------------------------------


def test_floodDropped() -> None:
    """
    [im] presence_rate and presence_burst: presence beyond the burst (then
    the rate a second) is dropped; the session's flood is logged once at info, and another
    session is not affected.
    """
    world = makeWorld(presence_burst=3, presence_rate=1.0)
    alice, _ = connect(world, f"{ALICE}/phone")
    laptop, _ = connect(world, f"{ALICE}/laptop")
    _, bobClient = online(world, f"{BOB}/desk")
    clear(bobClient)
    with capturedLogs() as events:
        for _ in range(6):
            send(world, alice, f"<presence to='{BOB}'/>")
    assert len(presences(bobClient)) == 3
    flood = [e for e in events if "faster" in e.get("log_format", "")]
    assert len(flood) == 1 and flood[0]["log_level"] == LogLevel.info
    assert not [e for e in events if e["log_level"] >= LogLevel.warn]
    clear(bobClient)
    send(world, laptop, f"<presence to='{BOB}'/>")
    assert len(presences(bobClient)) == 1
    world.clock.advance(1.0)
    send(world, alice, f"<presence to='{BOB}'/>")
    send(world, alice, f"<presence to='{BOB}'/>")
    assert len(presences(bobClient)) == 2


def test_floodCountsSubscriptions() -> None:
    """
    [im] presence_rate: subscription stanzas are presence too, and count.
    """
    world = makeWorld(presence_burst=2, presence_rate=1.0)
    alice, _ = connect(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    send(world, alice, f"<presence type='unsubscribe' to='{BOB}'/>")
    clear(bobClient)
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    assert presences(bobClient) == []
    assert stored(world.store, ALICE, BOB) == RosterItem(BOB)


def test_floodLimitsBroadcasts() -> None:
    """
    [im] presence_rate, RFC 6121 §4.4.2: broadcast presence beyond the
    limit does not reach the contacts at once; once the bucket refills, they get the latest presence (not a
    stale one); unavailable presence always goes.
    """
    world = makeWorld(presence_burst=2, presence_rate=1.0)
    mutual(world, ALICE, BOB)
    _, bobClient = online(world, f"{BOB}/desk")
    alice, _ = online(world, f"{ALICE}/phone")
    clear(bobClient)
    broadcast(world, alice, show="away")
    broadcast(world, alice, show="xa")
    broadcast(world, alice, show="dnd")
    assert shows(bobClient) == ["away"]
    clear(bobClient)
    world.clock.advance(1.0)
    assert shows(bobClient) == ["dnd"]
    broadcast(world, alice, show="chat")
    broadcast(world, alice, show="away")
    clear(bobClient)
    broadcast(world, alice, unavailable=True)
    assert presences(bobClient) == [("unavailable", f"{ALICE}/phone", BOB)]
    world.clock.advance(10)
    assert presences(bobClient) == [("unavailable", f"{ALICE}/phone", BOB)]


def test_floodedInitialPresenceNeverAnnounced() -> None:
    """
    [im] presence_rate, RFC 6121 §4.5.2: an initial presence held back by
    the limit, then ended, was never seen by the contacts: they get no unavailable either, and no stale update
    follows.
    """
    world = makeWorld(presence_burst=1, presence_rate=1.0)
    mutual(world, ALICE, BOB)
    _, bobClient = online(world, f"{BOB}/desk")
    alice, _ = connect(world, f"{ALICE}/phone")
    send(world, alice, f"<presence to='{CAROL}'/>")
    clear(bobClient)
    broadcast(world, alice)
    broadcast(world, alice, unavailable=True)
    world.clock.advance(5)
    assert presences(bobClient) == []


def test_floodLimitFirstOfOutbound() -> None:
    """
    [im] presence_rate: the limit runs before every other OUTBOUND handler.
    """
    world = makeWorld(presence_burst=1)
    seen: list[object] = []

    def spy(event: object) -> bool:
        seen.append(event)
        return False

    world.manager.hooks.add(OUTBOUND, spy, priority=500)
    alice, _ = connect(world, f"{ALICE}/phone")
    send(world, alice, f"<presence to='{BOB}'/>")
    send(world, alice, f"<presence to='{BOB}'/>")
    assert len(seen) == 1


def test_limitReloaded() -> None:
    """
    [im] presence_rate and presence_burst are read from the live
    configuration (a reload applies them).
    """
    world = makeWorld(presence_burst=1, presence_rate=0.1)
    alice, _ = connect(world, f"{ALICE}/phone")
    assert world.presence.allowPresence(alice)
    assert not world.presence.allowPresence(alice)
    world.config = IMConfig(presence_burst=1, presence_rate=1000.0)
    world.clock.advance(0.01)
    assert world.presence.allowPresence(alice)


# --- failures ---------------------------------------------------------------------------


def test_storeFailureInBroadcast() -> None:
    """
    RFC 6121 §4.2.2 with a failing store: it costs that broadcast and one
    line at error a minute, never a traceback.
    """
    world = makeWorld()
    mutual(world, ALICE, BOB)

    def broken(*args: Any) -> defer.Deferred[Any]:
        return defer.fail(sqlite3.OperationalError("disk I/O error"))

    world.store.getRoster = broken  # type: ignore[method-assign, assignment]
    with capturedLogs() as events:
        alice, _ = online(world, f"{ALICE}/phone")
        broadcast(world, alice, show="away")
        send(world, alice, f"<presence type='probe' to='{BOB}'/>")
    errors = [e for e in events if e["log_level"] >= LogLevel.error]
    assert len(errors) == 1 and "log_failure" not in errors[0]


def test_uninstall() -> None:
    """
    Hook points (xmppcert.routing): uninstalled, the services no longer
    touch presence or rosters.
    """
    world = makeWorld()
    world.presence.uninstall()
    world.roster.uninstall()
    alice, _ = online(world, f"{ALICE}/phone")
    _, bobClient = online(world, f"{BOB}/desk")
    clear(bobClient)
    send(world, alice, f"<presence type='subscribe' to='{BOB}'/>")
    assert presences(bobClient) == [("subscribe", f"{ALICE}/phone", BOB)]
    assert stored(world.store, ALICE, BOB) is None
    assert world.roster.listeners == []


# --- through real streams ---------------------------------------------------------------


def test_handshakeOverStreams() -> None:
    """
    RFC 6121 §3.1 end to end: alice's client asks, bob's client gets the
    request after its initial presence and approves; alice's client gets
    the push, the approval and bob's presence.
    """
    h, _ = rosterServer()
    alice = login(h, "phone", "alice")
    rosterGet(alice)
    alice.send("<presence/>")
    alice.send(f"<presence type='subscribe' to='{BOB}'/>")
    out = alice.received()
    [push] = [e for e in out.elements if e.name == "iq"]
    item = next(next(push.elements(NS_ROSTER, "query")).elements(NS_ROSTER, "item"))
    assert (item["jid"], item["ask"]) == (BOB, "subscribe")
    bob = login(h, "desk", "bob")
    bob.send("<presence><show>away</show></presence>")
    requests = [e for e in bob.received().elements if e.name == "presence" and e.getAttribute("type") == "subscribe"]
    assert [(r["from"], r["to"]) for r in requests] == [(ALICE, BOB)]
    bob.send(f"<presence type='subscribed' to='{ALICE}'/>")
    got = alice.received().elements
    assert [(e.getAttribute("type"), e.getAttribute("from")) for e in got if e.name == "presence"] == [
        ("subscribed", BOB),
        (None, f"{BOB}/desk"),
    ]
    assert [e.name for e in got if e.name == "iq"] == ["iq"]
    assert stored(h.store, ALICE, BOB) == RosterItem(BOB, subscription="to")


def test_removedAccountLeavesRostersInMemory() -> None:
    """
    RFC 6121 section 4.2.2 (presence only to subscribers): an account
    removed takes itself out of its contacts' rosters in the store; once
    the server forgets the rosters it keeps for presence (it does at the
    deletion through an administrator, and at each session check for the
    command line), a new account with the same JID gets none of the old
    contacts' presence.
    """
    world = makeWorld()
    put(world.store, ALICE, RosterItem(BOB, subscription="both"))
    put(world.store, BOB, RosterItem(ALICE, subscription="both"))
    alice, _ = online(world, f"{ALICE}/phone")
    bob, _ = online(world, f"{BOB}/desk")
    resultOf(world.store.removeAccount(ALICE))
    world.manager.unbind(alice)
    world.roster.forgetRosters()
    addAccount(world.store, ALICE)
    _, newAlice = online(world, f"{ALICE}/laptop")
    clear(newAlice)
    broadcast(world, bob, show="away")
    assert presences(newAlice) == []
