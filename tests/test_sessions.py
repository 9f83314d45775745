"""
Tests for L{xmppcert.sessions}: the registry of bound resources and local
delivery by the rules of RFC 6120 §10 and RFC 6121 §8.
"""

from __future__ import annotations

import pytest
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish

from tests.helpers import (
    ALICE,
    BOB,
    DOMAIN,
    FakeClient,
    addAccount,
    bindSession,
    parseOutput,
    resultOf,
    stanzaErrorCondition,
)
from xmppcert.sessions import Session, SessionManager
from xmppcert.testing import InMemoryAccountStore

CAROL = "carol@example.com"


def makeManager() -> SessionManager:
    store = InMemoryAccountStore()
    for account in (ALICE, BOB, CAROL):
        addAccount(store, account)
    return SessionManager((DOMAIN,), store)


def stanza(xml: str) -> domish.Element:
    return parseOutput(xml).only()


def available(manager: SessionManager, fullJID: str, priority: int | str | None = None) -> tuple[Session, FakeClient]:
    """
    Bind a session and make it available, forgetting what that sent.
    """
    session, client = bindSession(manager, fullJID)
    content = f"<priority>{priority}</priority>" if priority is not None else ""
    manager.broadcastPresence(session, stanza(f"<presence from='{fullJID}'>{content}</presence>"))
    return session, client


def clear(*clients: FakeClient) -> None:
    for client in clients:
        client.sent.clear()


# --- registry -------------------------------------------------------------


def test_bindAndLookup() -> None:
    """
    RFC 6120 §7: a bound session is found by its full JID and among the
    sessions of its bare JID.
    """
    manager = makeManager()
    phone, _ = bindSession(manager, "alice@example.com/phone")
    laptop, _ = bindSession(manager, "alice@example.com/laptop")
    assert manager.sessionFor(jid.JID("alice@example.com/phone")) is phone
    assert set(manager.sessionsOf(jid.JID(ALICE))) == {phone, laptop}
    assert manager.sessionFor(jid.JID("alice@example.com/tablet")) is None
    assert len(manager) == 2
    assert set(manager.allSessions()) == {phone, laptop}


def test_bindConflict() -> None:
    """
    RFC 6120 §7.7.2.2: binding a full JID in use replaces the old session,
    whose close is called with a conflict stream error.
    """
    manager = makeManager()
    old, oldClient = bindSession(manager, "alice@example.com/phone")
    new, newClient = bindSession(manager, "alice@example.com/phone")
    assert len(oldClient.closes) == 1
    assert isinstance(oldClient.closes[0], error.StreamError)
    assert oldClient.closes[0].condition == "conflict"
    assert newClient.closes == []
    assert old.closed
    assert manager.sessionFor(jid.JID("alice@example.com/phone")) is new
    assert len(manager) == 1


def test_bindConflictBroadcastsUnavailable() -> None:
    """
    RFC 6121 §4.5.2: a replaced session that was available is announced as
    unavailable to the account's other available resources.
    """
    manager = makeManager()
    _, laptopClient = available(manager, "alice@example.com/laptop")
    _, phoneClient = available(manager, "alice@example.com/phone")
    clear(laptopClient, phoneClient)
    bindSession(manager, "alice@example.com/phone")
    assert [(p.getAttribute("type"), p["from"]) for p in laptopClient.sent] == [
        ("unavailable", "alice@example.com/phone")
    ]


def test_unbindBroadcastsUnavailable() -> None:
    """
    RFC 6121 §4.5.2: when an available session ends, the account's other
    available resources get unavailable presence from it; unavailable
    resources get nothing.
    """
    manager = makeManager()
    phone, phoneClient = available(manager, "alice@example.com/phone")
    _, laptopClient = available(manager, "alice@example.com/laptop")
    _, quietClient = bindSession(manager, "alice@example.com/quiet")
    _, bobClient = available(manager, "bob@example.com/desk")
    clear(phoneClient, laptopClient, quietClient, bobClient)

    manager.unbind(phone)
    assert len(laptopClient.sent) == 1
    presence = laptopClient.sent[0]
    assert presence.name == "presence"
    assert presence["type"] == "unavailable"
    assert presence["from"] == "alice@example.com/phone"
    assert presence["to"] == "alice@example.com/laptop"
    assert quietClient.sent == bobClient.sent == phoneClient.sent == []
    assert manager.sessionFor(jid.JID("alice@example.com/phone")) is None

    manager.unbind(phone)
    assert len(laptopClient.sent) == 1


def test_unbindUnavailableSession() -> None:
    """
    RFC 6121 §4.5.2: a session that never sent presence ends without a
    broadcast.
    """
    manager = makeManager()
    phone, _ = bindSession(manager, "alice@example.com/phone")
    _, laptopClient = available(manager, "alice@example.com/laptop")
    clear(laptopClient)
    manager.unbind(phone)
    assert laptopClient.sent == []
    assert manager.sessionsOf(jid.JID(ALICE)) == [manager.sessionFor(jid.JID("alice@example.com/laptop"))]


def test_newResource() -> None:
    """
    RFC 6120 §7.6.2.1: a server-generated resource is valid and unique.
    """
    manager = makeManager()
    resources = {manager.newResource(jid.JID(ALICE)) for _ in range(20)}
    assert len(resources) == 20
    for resource in resources:
        assert jid.JID(tuple=("alice", DOMAIN, resource)).resource == resource


def test_sessionClosed() -> None:
    """
    Robustness: a closed session sends nothing and is closed only once.
    """
    client = FakeClient()
    session = Session(jid.JID("alice@example.com/phone"), client.send, client.close)
    session.close(error.StreamError("system-shutdown"))
    session.close(error.StreamError("conflict"))
    session.send(stanza("<message/>"))
    assert [e.condition for e in client.closes] == ["system-shutdown"]
    assert client.sent == []


# --- routing --------------------------------------------------------------


def route(manager: SessionManager, sender: Session, xml: str) -> domish.Element:
    element = stanza(xml)
    element["from"] = sender.jid.full()
    resultOf(manager.route(element, sender))
    return element


def test_routeFullJID() -> None:
    """
    RFC 6121 §8.5.3.1: a stanza to a connected full JID is delivered to
    that resource only.
    """
    manager = makeManager()
    alice, _ = bindSession(manager, "alice@example.com/phone")
    desk, deskClient = bindSession(manager, "bob@example.com/desk")
    _, laptopClient = bindSession(manager, "bob@example.com/laptop")
    for xml in (
        "<message to='bob@example.com/desk' type='chat'><body>hi</body></message>",
        "<iq to='bob@example.com/desk' type='get' id='1'><query xmlns='urn:example'/></iq>",
        "<presence to='bob@example.com/desk'/>",
    ):
        route(manager, alice, xml)
    assert [e.name for e in deskClient.sent] == ["message", "iq", "presence"]
    assert all(e["from"] == "alice@example.com/phone" for e in deskClient.sent)
    assert laptopClient.sent == []


def test_routeMissingFullJIDMessage() -> None:
    """
    RFC 6121 §8.5.3.2.1: a chat message to a full JID without a session is
    handled as if sent to the bare JID.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    _, deskClient = available(manager, "bob@example.com/desk")
    clear(deskClient)
    route(manager, alice, "<message to='bob@example.com/gone' type='chat'><body>hi</body></message>")
    assert [str(m.body) for m in deskClient.sent] == ["hi"]
    assert aliceClient.sent == []


def test_routeMissingFullJIDIQ() -> None:
    """
    RFC 6121 §8.5.3.2.2: an iq to a full JID without a session gets
    service-unavailable back to the sender.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    _, deskClient = available(manager, "bob@example.com/desk")
    clear(deskClient)
    route(manager, alice, "<iq to='bob@example.com/gone' type='get' id='q1'><query xmlns='urn:example'/></iq>")
    assert len(aliceClient.sent) == 1
    reply = aliceClient.sent[0]
    assert reply["id"] == "q1"
    assert reply["to"] == "alice@example.com/phone"
    assert stanzaErrorCondition(reply) == "service-unavailable"
    assert deskClient.sent == []


def test_routeMissingFullJIDPresence() -> None:
    """
    RFC 6121 §8.5.3.2.3: presence to a full JID without a session is
    dropped silently.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    _, deskClient = available(manager, "bob@example.com/desk")
    clear(deskClient)
    route(manager, alice, "<presence to='bob@example.com/gone'/>")
    assert aliceClient.sent == deskClient.sent == []


def test_routeBareJIDMessage() -> None:
    """
    RFC 6121 §8.5.2.1.1: a message to a bare JID goes to the available
    resources with non-negative priority; not to unavailable ones, nor to
    those with negative priority.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    _, deskClient = available(manager, "bob@example.com/desk")
    _, laptopClient = available(manager, "bob@example.com/laptop", priority=5)
    _, botClient = available(manager, "bob@example.com/bot", priority=-1)
    _, quietClient = bindSession(manager, "bob@example.com/quiet")
    clear(deskClient, laptopClient, botClient)
    message = route(manager, alice, "<message to='bob@example.com' type='chat'><body>hi</body></message>")
    assert deskClient.sent == [message]
    assert laptopClient.sent == [message]
    assert botClient.sent == quietClient.sent == aliceClient.sent == []
    # RFC 6121 §8.5.2.1.1: 'to' stays the bare JID.
    assert message["to"] == BOB


def test_routeBareJIDOnlyNegativePriority() -> None:
    """
    RFC 6121 §8.5.2.1.1 / §8.5.2.2.1: resources with negative priority
    never get messages to the bare JID; with only those, the account counts
    as offline.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    _, botClient = available(manager, "bob@example.com/bot", priority=-5)
    clear(botClient)
    route(manager, alice, "<message to='bob@example.com' id='m1'><body>hi</body></message>")
    assert botClient.sent == []
    assert stanzaErrorCondition(aliceClient.sent[0]) == "service-unavailable"


def test_routeOfflineAccount() -> None:
    """
    RFC 6121 §8.5.2.2.1: without offline storage a message to an existing
    account with no available resource gets service-unavailable.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    route(manager, alice, "<message to='bob@example.com' id='m1'><body>hi</body></message>")
    assert len(aliceClient.sent) == 1
    assert aliceClient.sent[0]["id"] == "m1"
    assert stanzaErrorCondition(aliceClient.sent[0]) == "service-unavailable"


def test_routeUnknownAccount() -> None:
    """
    RFC 6121 §8.5.1: a message to an account that does not exist gets
    service-unavailable.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    route(manager, alice, "<message to='nobody@example.com' id='m1'><body>hi</body></message>")
    assert stanzaErrorCondition(aliceClient.sent[0]) == "service-unavailable"
    route(manager, alice, "<message to='nobody@example.com/res' id='m2'><body>hi</body></message>")
    assert [stanzaErrorCondition(s) for s in aliceClient.sent] == ["service-unavailable"] * 2


def test_routeOtherDomain() -> None:
    """
    RFC 6120 §10.4.3 (no server-to-server): a stanza to another domain gets
    remote-server-not-found.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    route(manager, alice, "<message to='juliet@other.example' id='m1'><body>hi</body></message>")
    assert stanzaErrorCondition(aliceClient.sent[0]) == "remote-server-not-found"


def test_routeDomainWithResource() -> None:
    """
    RFC 6120 §10.3: a stanza to the server's domain with a resource is not
    delivered anywhere; an iq gets service-unavailable.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    route(manager, alice, "<iq to='example.com/x' type='get' id='1'><query xmlns='urn:example'/></iq>")
    assert stanzaErrorCondition(aliceClient.sent[0]) == "service-unavailable"


@pytest.mark.parametrize(
    "xml",
    [
        "<message to='nobody@example.com' type='error'/>",
        "<message to='bob@example.com' type='error'/>",
        "<message to='juliet@other.example' type='error'/>",
        "<iq to='bob@example.com/gone' type='error' id='1'/>",
        "<iq to='bob@example.com' type='error' id='1'/>",
    ],
)
def test_routeErrorNotAnswered(xml: str) -> None:
    """
    RFC 6120 §8.3.1: an error stanza is never answered with an error.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    route(manager, alice, xml)
    assert aliceClient.sent == []


def test_routeHeadlineOffline() -> None:
    """
    RFC 6121 §8.5.2.2.1: a headline message to an offline account is
    dropped silently.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    route(manager, alice, "<message to='bob@example.com' type='headline'><body>news</body></message>")
    assert aliceClient.sent == []


def test_routeIQToBareJID() -> None:
    """
    RFC 6120 §10.3.3: an iq to another account's bare JID is answered by
    the server on the account's behalf; nothing is shared, so
    service-unavailable, and no resource sees it.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    _, deskClient = available(manager, "bob@example.com/desk")
    clear(deskClient)
    route(manager, alice, "<iq to='bob@example.com' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>")
    assert stanzaErrorCondition(aliceClient.sent[0]) == "service-unavailable"
    assert deskClient.sent == []


def test_routePresenceToBareJID() -> None:
    """
    RFC 6121 §8.5.2.1.2: presence to a bare JID goes to every available
    resource.
    """
    manager = makeManager()
    alice, _ = bindSession(manager, "alice@example.com/phone")
    _, deskClient = available(manager, "bob@example.com/desk")
    _, quietClient = bindSession(manager, "bob@example.com/quiet")
    clear(deskClient)
    presence = route(manager, alice, "<presence to='bob@example.com'/>")
    assert deskClient.sent == [presence]
    assert quietClient.sent == []


@pytest.mark.parametrize("online", [True, False], ids=["online", "offline"])
def test_routeGroupchatToBareJID(online: bool) -> None:
    """
    RFC 6121 §8.5.2.1.1 and §8.5.2.2.1: a groupchat message to a bare JID
    is not delivered; the sender gets service-unavailable.
    """
    manager = makeManager()
    alice, aliceClient = bindSession(manager, "alice@example.com/phone")
    if online:
        _, deskClient = available(manager, "bob@example.com/desk")
        clear(deskClient)
    route(manager, alice, "<message to='bob@example.com' type='groupchat' id='g1'><body>hi</body></message>")
    assert [stanzaErrorCondition(s) for s in aliceClient.sent] == ["service-unavailable"]


# --- presence broadcast -----------------------------------------------------


def test_initialPresenceBroadcast() -> None:
    """
    RFC 6121 §4.2.2: initial presence goes to the account's other available
    resources (addressed to each), and the new resource gets their
    presence; unavailable resources and other accounts get nothing.
    """
    manager = makeManager()
    laptop, laptopClient = available(manager, "alice@example.com/laptop")
    _, quietClient = bindSession(manager, "alice@example.com/quiet")
    _, bobClient = available(manager, "bob@example.com/desk")
    clear(laptopClient, bobClient)

    phone, phoneClient = bindSession(manager, "alice@example.com/phone")
    presence = stanza("<presence from='alice@example.com/phone'><show>away</show></presence>")
    manager.broadcastPresence(phone, presence)

    assert [(p["from"], p["to"], str(p.show)) for p in laptopClient.sent] == [
        ("alice@example.com/phone", "alice@example.com/laptop", "away")
    ]
    others = [p for p in phoneClient.sent if p["from"] != "alice@example.com/phone"]
    assert [(p["from"], p["to"]) for p in others] == [("alice@example.com/laptop", "alice@example.com/phone")]
    assert quietClient.sent == bobClient.sent == []
    assert phone.available
    assert laptop.available


def test_initialPresenceToSelf() -> None:
    """
    RFC 6121 §4.2.2: initial presence is also broadcast to the resource
    that sent it ("an entity is implicitly subscribed to its own
    presence").
    """
    manager = makeManager()
    phone, phoneClient = bindSession(manager, "alice@example.com/phone")
    manager.broadcastPresence(phone, stanza("<presence from='alice@example.com/phone'/>"))
    assert [(p["from"], p["to"]) for p in phoneClient.sent] == [
        ("alice@example.com/phone", "alice@example.com/phone")
    ]


def test_presenceUpdateNotRepeated() -> None:
    """
    RFC 6121 §4.4.2: a presence update is broadcast again, but the others'
    presence is sent to the resource only once, with its initial presence.
    """
    manager = makeManager()
    _, laptopClient = available(manager, "alice@example.com/laptop")
    phone, phoneClient = available(manager, "alice@example.com/phone")
    clear(laptopClient, phoneClient)
    manager.broadcastPresence(phone, stanza("<presence from='alice@example.com/phone'><show>dnd</show></presence>"))
    assert [str(p.show) for p in laptopClient.sent] == ["dnd"]
    assert [p for p in phoneClient.sent if p["from"] == "alice@example.com/laptop"] == []


def test_unavailablePresenceBroadcast() -> None:
    """
    RFC 6121 §4.5.2: unavailable presence goes to the other available
    resources and makes the session unavailable; a second one is ignored.
    """
    manager = makeManager()
    phone, _ = available(manager, "alice@example.com/phone")
    _, laptopClient = available(manager, "alice@example.com/laptop")
    clear(laptopClient)
    unavailable = stanza("<presence from='alice@example.com/phone' type='unavailable'/>")
    manager.broadcastPresence(phone, unavailable)
    assert [(p["type"], p["from"], p["to"]) for p in laptopClient.sent] == [
        ("unavailable", "alice@example.com/phone", "alice@example.com/laptop")
    ]
    assert not phone.available
    assert phone.presence is None
    manager.broadcastPresence(phone, unavailable)
    assert len(laptopClient.sent) == 1
    # No longer available: unbinding it broadcasts nothing more.
    manager.unbind(phone)
    assert len(laptopClient.sent) == 1


@pytest.mark.parametrize("kind", ["probe", "subscribe", "error"])
def test_otherPresenceTypesWithoutTo(kind: str) -> None:
    """
    RFC 6121 §4.2 / §3: presence types other than available and unavailable
    without 'to' are not broadcast.
    """
    manager = makeManager()
    _, laptopClient = available(manager, "alice@example.com/laptop")
    phone, _ = bindSession(manager, "alice@example.com/phone")
    clear(laptopClient)
    manager.broadcastPresence(phone, stanza(f"<presence from='alice@example.com/phone' type='{kind}'/>"))
    assert laptopClient.sent == []
    assert not phone.available


@pytest.mark.parametrize("text, expected", [("10", 10), ("-3", -3), ("500", 127), ("-500", -128), ("x", 0)])
def test_priority(text: str, expected: int) -> None:
    """
    RFC 6121 §4.7.2.3: priority is an integer from -128 to 127 (clamped
    here); an unparsable one counts as 0.
    """
    manager = makeManager()
    session, _ = available(manager, "alice@example.com/phone", priority=text)
    assert session.priority == expected


# --- certificate sessions (XEP-0257) ----------------------------------------

FP_PHONE = "a" * 64
FP_LAPTOP = "b" * 64


def certificateSession(
    manager: SessionManager, fullJID: str, fingerprint: str | None, mechanism: str = "EXTERNAL"
) -> tuple[Session, FakeClient]:
    session, client = bindSession(manager, fullJID)
    session.info["certificate"] = fingerprint
    session.info["mechanism"] = mechanism
    return session, client


def test_resourcesWithCertificate() -> None:
    """
    XEP-0257 §2.2: <users/> lists the resources of the account logged in
    with that certificate, sorted; not other certificates, not password
    logins, not another account's sessions.
    """
    manager = makeManager()
    certificateSession(manager, f"{ALICE}/phone", FP_PHONE)
    certificateSession(manager, f"{ALICE}/another", FP_PHONE)
    certificateSession(manager, f"{ALICE}/laptop", FP_LAPTOP)
    certificateSession(manager, f"{ALICE}/desk", None, mechanism="SCRAM-SHA-256")
    certificateSession(manager, f"{BOB}/phone", FP_PHONE)
    assert manager.resourcesWithCertificate(jid.JID(ALICE), FP_PHONE) == ["another", "phone"]
    assert manager.resourcesWithCertificate(jid.JID(ALICE), FP_LAPTOP) == ["laptop"]
    assert manager.resourcesWithCertificate(jid.JID(CAROL), FP_PHONE) == []


def test_closeSessionsWithCertificate() -> None:
    """
    XEP-0257 §2.4 and RFC 6120 §4.9.3.16: revoking a certificate closes
    exactly the sessions that logged in with it, with a reset stream error.
    """
    manager = makeManager()
    _, phone = certificateSession(manager, f"{ALICE}/phone", FP_PHONE)
    _, laptop = certificateSession(manager, f"{ALICE}/laptop", FP_LAPTOP)
    _, desk = certificateSession(manager, f"{ALICE}/desk", None, mechanism="PLAIN")
    assert manager.closeSessionsWithCertificate(FP_PHONE) == 1
    assert [e.condition for e in phone.closes] == ["reset"]
    assert laptop.closes == [] and desk.closes == []
    assert manager.closeSessionsWithCertificate("c" * 64) == 0
    # A session already closing is not closed (or logged) twice, e.g. when
    # the revocation watcher sees a revocation this node acted on.
    assert manager.closeSessionsWithCertificate(FP_PHONE) == 0
    assert [e.condition for e in phone.closes] == ["reset"]


def test_sessionManagerIsTheNotifier() -> None:
    """
    Design, "Where this is going": revocations, locks and kicks reach
    sessions through one notifier interface, which the registry provides in
    one process.
    """
    from zope.interface.verify import verifyObject

    from xmppcert.sessions import ISessionNotifier

    assert verifyObject(ISessionNotifier, makeManager())


def test_closeSessionsOfFullOrBare() -> None:
    """
    closeSessionsOf: a bare JID closes every session of the account, a full
    JID that one session; other accounts are untouched.
    """
    manager = makeManager()
    _, phone = bindSession(manager, f"{ALICE}/phone")
    _, desk = bindSession(manager, f"{ALICE}/desk")
    _, bob = bindSession(manager, f"{BOB}/phone")
    kicked = error.StreamError("policy-violation", text="Ended by an administrator")
    assert manager.closeSessionsOf(jid.JID(f"{ALICE}/phone"), kicked) == 1
    assert phone.closes == [kicked] and desk.closes == []
    assert manager.closeSessionsOf(jid.JID(f"{ALICE}/nowhere"), kicked) == 0
    assert manager.closeSessionsOf(jid.JID(ALICE), kicked) == 1
    assert desk.closes == [kicked] and bob.closes == []


def test_closeSessionsOfWhere() -> None:
    """
    closeSessionsOf with where: only the sessions it picks are closed (a
    password change ends the password sessions, not the certificate ones).
    """
    manager = makeManager()
    _, phone = certificateSession(manager, f"{ALICE}/phone", FP_PHONE)
    _, desk = certificateSession(manager, f"{ALICE}/desk", None, mechanism="PLAIN")
    changed = error.StreamError("reset")
    assert manager.closeSessionsOf(jid.JID(ALICE), changed, where=lambda s: s.info["mechanism"] != "EXTERNAL") == 1
    assert desk.closes == [changed] and phone.closes == []


def test_closeSessionsOfBarsLoginsInProgress() -> None:
    """
    closeSessionsOf with barLogins (a lock): a login of the account checked
    before it must not bind (barredSince gives the stream error); a login
    that starts afterwards, or of another account, is not barred.
    """
    manager = makeManager()
    before = manager.revocationMark()
    locked = error.StreamError("not-authorized", text="locked")
    assert manager.closeSessionsOf(jid.JID(ALICE), error.StreamError("reset")) == 0
    assert manager.barredSince(jid.JID(f"{ALICE}/phone"), before) is None
    assert manager.closeSessionsOf(jid.JID(ALICE), locked, barLogins=True) == 0
    assert manager.barredSince(jid.JID(f"{ALICE}/phone"), before) is locked
    assert manager.barredSince(jid.JID(BOB), before) is None
    assert manager.barredSince(jid.JID(ALICE), manager.revocationMark()) is None


def test_barLimitedByWhere() -> None:
    """
    closeSessionsOf with barLogins and where (a password change): only the
    logins in progress that where picks, judged on the session they would
    bind, are barred (a password login, not a certificate one); without
    their facts, every bar applies.
    """
    manager = makeManager()
    before = manager.revocationMark()
    changed = error.StreamError("reset", text="changed")
    manager.closeSessionsOf(
        jid.JID(ALICE), changed, where=lambda s: s.info["mechanism"] != "EXTERNAL", barLogins=True
    )
    phone = jid.JID(f"{ALICE}/phone")
    assert manager.barredSince(phone, before, {"mechanism": "PLAIN"}) is changed
    assert manager.barredSince(phone, before, {"mechanism": "EXTERNAL"}) is None
    assert manager.barredSince(phone, before) is changed
    assert manager.barredSince(phone, manager.revocationMark(), {"mechanism": "PLAIN"}) is None


def test_barsAddUp() -> None:
    """
    closeSessionsOf with barLogins: a bar limited by where (a password
    change) after a bar of every login (a lock) leaves the lock's in force
    for the logins checked before it; a later bar of every login replaces
    both.
    """
    manager = makeManager()
    beforeLock = manager.revocationMark()
    locked = error.StreamError("not-authorized", text="locked")
    changed = error.StreamError("reset", text="changed")
    manager.closeSessionsOf(jid.JID(ALICE), locked, barLogins=True)
    afterLock = manager.revocationMark()
    manager.closeSessionsOf(jid.JID(ALICE), changed, where=lambda s: s.info["mechanism"] != "EXTERNAL", barLogins=True)
    phone = jid.JID(f"{ALICE}/phone")
    assert manager.barredSince(phone, beforeLock, {"mechanism": "EXTERNAL"}) is locked
    assert manager.barredSince(phone, beforeLock, {"mechanism": "PLAIN"}) is changed
    assert manager.barredSince(phone, afterLock, {"mechanism": "EXTERNAL"}) is None
    assert manager.barredSince(phone, afterLock, {"mechanism": "PLAIN"}) is changed
    again = error.StreamError("not-authorized", text="locked again")
    manager.closeSessionsOf(jid.JID(ALICE), again, barLogins=True)
    assert manager.barredSince(phone, beforeLock, {"mechanism": "PLAIN"}) is again
