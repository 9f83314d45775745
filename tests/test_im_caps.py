"""
Tests for L{xmppcert.im.caps}: entity capabilities (XEP-0115) of the local
sessions, learnt from their presence.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from dataclasses import dataclass, field

import pytest
from twisted.internet import defer, task
from twisted.logger import LogLevel, capturedLogs
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from tests.helpers import ALICE, BOB, DOMAIN, FakeClient, bindSession, makeServer
from xmppcert.config import IMConfig
from xmppcert.handlers import defaultHandlers
from xmppcert.im.caps import (
    MAX_FEATURE_LENGTH,
    MAX_FEATURES,
    MAX_KEPT_BYTES,
    NS_CAPS,
    NS_DISCO_INFO,
    REQUERY_INTERVAL,
    Caps,
    CapsCache,
    CapsService,
    capsHash,
    keptFeatures,
    parseCaps,
    verificationString,
)
from xmppcert.routing import PRESENCE_BROADCAST, SESSION_ENDED
from xmppcert.sessions import Session, SessionManager
from xmppcert.testing import InMemoryAccountStore

CAROL = "carol@example.com"

#: XEP-0115 section 5.2.
EXODUS_NODE = "http://code.google.com/p/exodus"
EXODUS_INFO = (
    f"<query xmlns='{NS_DISCO_INFO}'>"
    "<identity category='client' type='pc' name='Exodus 0.9.1'/>"
    "<feature var='http://jabber.org/protocol/disco#info'/>"
    "<feature var='http://jabber.org/protocol/disco#items'/>"
    "<feature var='http://jabber.org/protocol/muc'/>"
    "<feature var='http://jabber.org/protocol/caps'/>"
    "</query>"
)
EXODUS_S = (
    "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<"
    "http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"
)
EXODUS_VER = "QgayPKawpkPSDYmwT/WM94uAlu0="
EXODUS_FEATURES = frozenset(
    {
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "http://jabber.org/protocol/muc",
        "http://jabber.org/protocol/caps",
    }
)

#: XEP-0115 section 5.3.
PSI_FORM = (
    "<x xmlns='jabber:x:data' type='result'>"
    "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>"
    "<field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field>"
    "<field var='os'><value>Mac</value></field>"
    "<field var='os_version'><value>10.5.1</value></field>"
    "<field var='software'><value>Psi</value></field>"
    "<field var='software_version'><value>0.11</value></field>"
    "</x>"
)
PSI_RESULT = (
    "<iq from='benvolio@capulet.lit/230193' id='disco1' to='juliet@capulet.lit/chamber' type='result'>"
    f"<query xmlns='{NS_DISCO_INFO}' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>"
    "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
    "<identity xml:lang='el' category='client' name='&#936; 0.11' type='pc'/>"
    "<feature var='http://jabber.org/protocol/caps'/>"
    "<feature var='http://jabber.org/protocol/disco#info'/>"
    "<feature var='http://jabber.org/protocol/disco#items'/>"
    "<feature var='http://jabber.org/protocol/muc'/>"
    f"{PSI_FORM}"
    "</query></iq>"
)
PSI_S = (
    "client/pc/el/\u03a8 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<"
    "http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<"
    "http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<"
    "ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<"
)
PSI_VER = "q07IKJEyjvHSyhy//CH0CxmKi8w="

GEOLOC_NOTIFY = "http://jabber.org/protocol/geoloc+notify"
TUNE_NOTIFY = "http://jabber.org/protocol/tune+notify"


def parse(xml: str) -> domish.Element:
    elements: list[domish.Element] = []
    stream = domish.ExpatElementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = elements.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(b"<root xmlns='jabber:client'>" + xml.encode() + b"</root>")
    [element] = elements
    return element


def info(*features: str, identity: str = "<identity category='client' type='pc'/>", extra: str = "") -> str:
    """
    A disco#info query with these features.
    """
    return (
        f"<query xmlns='{NS_DISCO_INFO}'>{identity}"
        + "".join(f"<feature var='{f}'/>" for f in features)
        + f"{extra}</query>"
    )


def verOf(xml: str, hashName: str = "sha-1") -> str:
    ver = capsHash(hashName, parse(xml))
    assert ver is not None
    return ver


#: A client that asks for notifications: what the server keeps of it.
NOTIFY_INFO = info("http://jabber.org/protocol/disco#info", TUNE_NOTIFY, GEOLOC_NOTIFY)
NOTIFY_VER = verOf(NOTIFY_INFO)
NOTIFY_FEATURES = frozenset({TUNE_NOTIFY, GEOLOC_NOTIFY})


# --- the verification string ------------------------------------------------


def test_simpleGenerationExample() -> None:
    """
    XEP-0115 section 5.2: the simple generation example gives the S and
    the SHA-1 ver of the specification.
    """
    query = parse(EXODUS_INFO)
    assert verificationString(query) == EXODUS_S
    assert capsHash("sha-1", query) == EXODUS_VER


def test_complexGenerationExample() -> None:
    """
    XEP-0115 section 5.3: identities in several languages (sorted by
    xml:lang) and an extended information form (XEP-0128) give the S and
    the SHA-1 ver of the specification.
    """
    [query] = parse(PSI_RESULT).elements()
    assert verificationString(query) == PSI_S
    assert capsHash("sha-1", query) == PSI_VER


def test_orderDoesNotMatter() -> None:
    """
    XEP-0115 section 5.1, steps 2, 4, 6 and 7.2: identities, features,
    forms, fields and values are sorted ("i;octet", i.e. by UTF-8 bytes),
    so the order of the answer does not change the ver.
    """
    second = (
        "<x xmlns='jabber:x:data' type='result'>"
        "<field var='b'><value>2</value><value>1</value></field>"
        "<field var='FORM_TYPE' type='hidden'><value>urn:example:b</value></field>"
        "<field var='a'><value>z</value></field>"
        "</x>"
    )
    one = info(
        "urn:b", "urn:a", "urn:\u00e9",
        identity="<identity category='client' type='pc' name='x'/><identity category='client' type='bot'/>",
        extra=PSI_FORM + second,
    )
    other = info(
        "urn:\u00e9", "urn:a", "urn:b",
        identity="<identity category='client' type='bot'/><identity category='client' type='pc' name='x'/>",
        extra=second + PSI_FORM,
    )
    s = verificationString(parse(one))
    assert s == verificationString(parse(other))
    assert s.startswith("client/bot//<client/pc//x<urn:a<urn:b<urn:\u00e9<urn:example:b<a<z<b<1<2<urn:xmpp")


@pytest.mark.parametrize(
    "xml",
    [
        # Step 3.3: the same identity twice.
        info(identity="<identity category='client' type='pc' name='A'/>" * 2),
        # Step 3.4: the same feature twice.
        info("urn:a", "urn:a"),
        # Step 3.5: two forms with the same FORM_TYPE.
        info("urn:a", extra=PSI_FORM + PSI_FORM),
        # Step 3.5: a FORM_TYPE with different values.
        info(
            "urn:a",
            extra="<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
            "<value>urn:one</value><value>urn:two</value></field></x>",
        ),
        # XEP-0030 section 3.1: an identity has a category and a type.
        info(identity="<identity category='client'/>"),
        # A feature without var.
        info(extra="<feature/>"),
        # The separator in a value: the "trivial preimage" of section 9.3.
        info("urn:a&lt;urn:b"),
        info(identity="<identity category='client' type='pc' name='A&lt;B'/>"),
    ],
)
def test_illFormedAnswers(xml: str) -> None:
    """
    XEP-0115 section 5.4, step 3.3 to 3.5 (and the hardening against '<'
    in a value): an ill-formed answer has no verification string.
    """
    with pytest.raises(ValueError):
        verificationString(parse(xml))
    with pytest.raises(ValueError):
        capsHash("sha-1", parse(xml))


def test_formsWithoutHiddenFormTypeIgnored() -> None:
    """
    XEP-0115 section 5.4, step 3.6: a form without a FORM_TYPE field, or
    whose FORM_TYPE is not of type hidden, is ignored; a FORM_TYPE with the
    same value twice is not an error.
    """
    plain = verificationString(parse(info("urn:a")))
    noFormType = "<x xmlns='jabber:x:data' type='result'><field var='os'><value>Mac</value></field></x>"
    notHidden = (
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>urn:x</value></field>"
        "<field var='os'><value>Mac</value></field></x>"
    )
    assert verificationString(parse(info("urn:a", extra=noFormType))) == plain
    assert verificationString(parse(info("urn:a", extra=notHidden))) == plain
    repeated = (
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
        "<value>urn:x</value><value>urn:x</value></field></x>"
    )
    assert verificationString(parse(info("urn:a", extra=repeated))) == plain + "urn:x<"


def test_otherHashes() -> None:
    """
    XEP-0115 section 9.1 and XEP-0300: the IANA names sha-224, sha-256,
    sha-384 and sha-512 hash the same string; a name the server does not
    know gives no ver (section 5.4, step 2: not verified).
    """
    query = parse(EXODUS_INFO)
    for name, function in [
        ("sha-224", hashlib.sha224),
        ("sha-256", hashlib.sha256),
        ("sha-384", hashlib.sha384),
        ("sha-512", hashlib.sha512),
    ]:
        expected = base64.b64encode(function(EXODUS_S.encode("utf-8")).digest()).decode()
        assert capsHash(name, query) == expected
    assert capsHash("md5", query) is None
    assert capsHash("SHA1", query) is None


def test_parseCaps() -> None:
    """
    XEP-0115 section 4 and 5.4 step 1: node, ver and hash are read; a
    legacy caps element (no hash), one lacking node or ver, and a presence
    without caps give nothing.
    """
    presence = parse(
        f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='{EXODUS_NODE}' ver='{EXODUS_VER}'/></presence>"
    )
    assert parseCaps(presence) == Caps(EXODUS_NODE, EXODUS_VER, "sha-1")
    for c in [
        f"<c xmlns='{NS_CAPS}' node='{EXODUS_NODE}' ver='0.9'/>",
        f"<c xmlns='{NS_CAPS}' hash='sha-1' ver='{EXODUS_VER}'/>",
        f"<c xmlns='{NS_CAPS}' hash='sha-1' node='{EXODUS_NODE}'/>",
        f"<c xmlns='{NS_CAPS}' hash='sha-1' node='{EXODUS_NODE}' ver='{'A' * 2000}'/>",
        f"<c xmlns='urn:other' hash='sha-1' node='{EXODUS_NODE}' ver='{EXODUS_VER}'/>",
        "",
    ]:
        assert parseCaps(parse(f"<presence>{c}</presence>")) is None, c


def test_cacheIsBoundedLRU() -> None:
    """
    The verified capabilities are kept in an LRU cache of a given size:
    the least recently used entry is dropped first, and a smaller size
    applies on the next insert.
    """
    cache = CapsCache(2)
    cache.put(("sha-1", "a"), ["urn:a"])
    cache.put(("sha-1", "b"), ["urn:b"])
    assert cache.get(("sha-1", "a")) == frozenset({"urn:a"})
    cache.put(("sha-1", "c"), ["urn:c"])
    assert len(cache) == 2
    assert cache.get(("sha-1", "b")) is None
    assert cache.get(("sha-1", "a")) is not None and cache.get(("sha-1", "c")) is not None
    cache.size = 1
    cache.put(("sha-1", "d"), [])
    assert len(cache) == 1 and cache.get(("sha-1", "d")) == frozenset()


# --- the service ---------------------------------------------------------------------


@dataclass
class World:
    """
    A session registry with the caps service installed; C{fired} records
    its callbacks.
    """

    manager: SessionManager
    clock: task.Clock
    service: CapsService
    config: IMConfig
    fired: list[tuple[str, frozenset[str]]] = field(default_factory=list)

    def im(self) -> IMConfig:
        return self.config


def makeWorld(**im: int) -> World:
    manager = SessionManager((DOMAIN,), InMemoryAccountStore())
    clock = task.Clock()
    world = World(manager, clock, None, IMConfig(**im))  # type: ignore[arg-type]
    world.service = CapsService(manager, clock, world.im, queryTimeout=30.0)
    world.service.install()
    world.service.onFeatures(lambda session, features: world.fired.append((session.jid.full(), features)))
    return world


def capsPresence(session: Session, ver: str, node: str = EXODUS_NODE, hashName: str = "sha-1") -> domish.Element:
    return parse(
        f"<presence from='{session.jid.full()}'>"
        f"<c xmlns='{NS_CAPS}' hash='{hashName}' node='{node}' ver='{ver}'/></presence>"
    )


def online(
    world: World, fullJID: str, ver: str = NOTIFY_VER, node: str = EXODUS_NODE, hashName: str = "sha-1"
) -> tuple[Session, FakeClient]:
    """
    Bind a session and send its initial presence with caps.
    """
    session, client = bindSession(world.manager, fullJID)
    world.manager.broadcastPresence(session, capsPresence(session, ver, node, hashName))
    return session, client


def queries(client: FakeClient) -> list[domish.Element]:
    """
    The disco#info queries the server sent to a client.
    """
    return [
        iq
        for iq in client.sent
        if iq.name == "iq" and iq.getAttribute("type") == "get" and list(iq.elements(NS_DISCO_INFO, "query"))
    ]


def answer(
    world: World, session: Session, query: domish.Element, xml: str = NOTIFY_INFO, kind: str = "result",
    queryID: str | None = None,
) -> bool:
    """
    C{session}'s answer to C{query}, as its stream stamps and hands it over.
    """
    iq = parse(f"<iq type='{kind}' to='{DOMAIN}' id='{queryID or query['id']}'>{xml}</iq>")
    iq["from"] = session.jid.full()
    return world.service.answerReceived(session, iq)


def test_queryOnUnknownCaps() -> None:
    """
    XEP-0115 section 6.2: on available presence with a ver not known, the
    server sends the session one disco#info get, from its domain, on the
    node 'node#ver'; until it is answered the features are unknown.
    """
    world = makeWorld()
    alice, client = online(world, f"{ALICE}/phone")
    [query] = queries(client)
    assert query["from"] == DOMAIN and query["to"] == f"{ALICE}/phone" and query.getAttribute("id")
    [disco] = query.elements(NS_DISCO_INFO, "query")
    assert disco["node"] == f"{EXODUS_NODE}#{NOTIFY_VER}"
    assert world.service.featuresOf(alice.jid) is None
    assert world.service.notifyNodes(alice.jid) == frozenset()
    assert world.fired == []


def test_verifiedAnswerCachedAndFired() -> None:
    """
    XEP-0115 section 5.4, step 3.8: an answer whose hash matches ver gives
    the session its features, runs the callbacks and is cached globally.
    """
    world = makeWorld()
    alice, client = online(world, f"{ALICE}/phone")
    [query] = queries(client)
    assert answer(world, alice, query)
    assert world.service.featuresOf(alice.jid) == NOTIFY_FEATURES
    assert world.fired == [(f"{ALICE}/phone", NOTIFY_FEATURES)]
    assert world.service.cache.get(("sha-1", NOTIFY_VER)) == NOTIFY_FEATURES
    assert world.clock.getDelayedCalls() == []


def test_cachedCapsNeedNoQuery() -> None:
    """
    XEP-0115 section 8.2: a session advertising a ver verified before
    (from another session) gets its features from the cache at once: no
    query, and the callbacks run.
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    answer(world, alice, queries(aliceClient)[0])
    bob, bobClient = online(world, f"{BOB}/desk")
    assert queries(bobClient) == []
    assert world.service.featuresOf(bob.jid) == NOTIFY_FEATURES
    assert world.fired[-1] == (f"{BOB}/desk", NOTIFY_FEATURES)


def test_cachePrefilled() -> None:
    """
    XEP-0115 section 8.2: a (hash, ver) already in the cache is never
    queried.
    """
    world = makeWorld()
    world.service.cache.put(("sha-1", "cached="), {GEOLOC_NOTIFY})
    alice, client = online(world, f"{ALICE}/phone", ver="cached=")
    assert queries(client) == []
    assert world.service.notifyNodes(alice.jid) == frozenset({"http://jabber.org/protocol/geoloc"})


def test_sameVerCoalesced() -> None:
    """
    XEP-0115 section 6.2: several sessions advertising the same unknown
    ver are served by one query to one of them; its verified answer gives
    every one of them the features.
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    bob, bobClient = online(world, f"{BOB}/desk")
    carol, carolClient = online(world, f"{CAROL}/pad")
    assert len(queries(aliceClient)) == 1
    assert queries(bobClient) == [] and queries(carolClient) == []
    answer(world, alice, queries(aliceClient)[0])
    for session in (alice, bob, carol):
        assert world.service.featuresOf(session.jid) == NOTIFY_FEATURES
    assert sorted(j for j, _ in world.fired) == sorted([f"{ALICE}/phone", f"{BOB}/desk", f"{CAROL}/pad"])
    assert queries(bobClient) == [] and queries(carolClient) == []


def test_wrongHashNotCached() -> None:
    """
    XEP-0115 section 5.4, step 3.9: an answer that does not hash to ver is
    never cached globally, but the session that gave it gets its features
    (for itself only); another session advertising that ver later is asked
    again. The mismatch is logged at info, never error: the peer's doing.
    """
    world = makeWorld()
    lying = info("urn:only-this+notify")
    alice, aliceClient = online(world, f"{ALICE}/phone")
    with capturedLogs() as events:
        assert answer(world, alice, queries(aliceClient)[0], lying)
    assert world.service.featuresOf(alice.jid) == frozenset({"urn:only-this+notify"})
    assert world.fired == [(f"{ALICE}/phone", frozenset({"urn:only-this+notify"}))]
    assert len(world.service.cache) == 0
    assert [e for e in events if "could not be verified" in e.get("log_format", "")]
    assert all(e["log_level"] == LogLevel.info for e in events)
    bob, bobClient = online(world, f"{BOB}/desk")
    assert len(queries(bobClient)) == 1
    answer(world, bob, queries(bobClient)[0])
    assert world.service.featuresOf(bob.jid) == NOTIFY_FEATURES
    assert world.service.featuresOf(alice.jid) == frozenset({"urn:only-this+notify"})
    assert world.service.cache.get(("sha-1", NOTIFY_VER)) == NOTIFY_FEATURES


def test_wrongHashAsksTheNextWaiter() -> None:
    """
    XEP-0115 section 5.4, step 3.9: when the session asked does not give a
    verifiable answer, another session waiting on that ver is asked; its
    features do not come from the unverified answer.
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    bob, bobClient = online(world, f"{BOB}/desk")
    answer(world, alice, queries(aliceClient)[0], info("urn:poison+notify"))
    assert world.service.featuresOf(bob.jid) is None
    [query] = queries(bobClient)
    answer(world, bob, query)
    assert world.service.featuresOf(bob.jid) == NOTIFY_FEATURES
    assert world.service.featuresOf(alice.jid) == frozenset({"urn:poison+notify"})


def test_illFormedAnswerNotVerified() -> None:
    """
    XEP-0115 section 5.4, step 3.4: an answer with a feature twice is
    ill-formed: not verified, not cached, even if its hash were right.
    """
    world = makeWorld()
    doubled = info("urn:a+notify", "urn:a+notify")
    alice, client = online(world, f"{ALICE}/phone", ver=verOf(info("urn:a+notify")))
    answer(world, alice, queries(client)[0], doubled)
    assert len(world.service.cache) == 0
    assert world.service.featuresOf(alice.jid) == frozenset({"urn:a+notify"})


def test_unsupportedHash() -> None:
    """
    XEP-0115 section 5.4, step 2: with a hash the server does not support,
    each session is asked for itself (no coalescing), its answer is used
    for it only and never cached.
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone", hashName="md5")
    bob, bobClient = online(world, f"{BOB}/desk", hashName="md5")
    assert len(queries(aliceClient)) == 1 and len(queries(bobClient)) == 1
    answer(world, alice, queries(aliceClient)[0])
    assert world.service.featuresOf(alice.jid) == NOTIFY_FEATURES
    assert world.service.featuresOf(bob.jid) is None
    assert len(world.service.cache) == 0


def test_unsolicitedAnswersIgnored() -> None:
    """
    XEP-0115 section 9.3 (caps poisoning): a result nobody asked for, one
    with another id, or one from a session that was not asked is not
    taken; the query stays pending and nothing is cached.
    """
    world = makeWorld()
    bystander, _ = bindSession(world.manager, f"{CAROL}/pad")
    unsolicited = parse(f"<iq type='result' to='{DOMAIN}' id='x1'>{NOTIFY_INFO}</iq>")
    unsolicited["from"] = bystander.jid.full()
    assert not world.service.answerReceived(bystander, unsolicited)
    alice, aliceClient = online(world, f"{ALICE}/phone")
    bob, bobClient = online(world, f"{BOB}/desk")
    [query] = queries(aliceClient)
    # Bob waits on the same ver but was not asked: his answer with Alice's
    # id does not count.
    assert not answer(world, bob, query, info("urn:poison+notify"))
    assert not answer(world, alice, query, info("urn:poison+notify"), queryID="caps-guess")
    assert not answer(world, bystander, query, info("urn:poison+notify"))
    assert world.service.featuresOf(alice.jid) is None
    assert world.service.featuresOf(bob.jid) is None
    assert len(world.service.cache) == 0 and world.fired == []
    assert answer(world, alice, query)
    assert world.service.featuresOf(bob.jid) == NOTIFY_FEATURES


def test_errorAndMalformedAnswers() -> None:
    """
    An iq error, a result without a disco#info query, or one with more
    than MAX_FEATURES features gives no features; the next session waiting
    on the ver is asked.
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    bob, bobClient = online(world, f"{BOB}/desk")
    carol, carolClient = online(world, f"{CAROL}/pad")
    error = "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
    assert answer(world, alice, queries(aliceClient)[0], error, kind="error")
    assert world.service.featuresOf(alice.jid) is None
    assert answer(world, bob, queries(bobClient)[0], "")
    assert world.service.featuresOf(bob.jid) is None
    many = info(*(f"urn:f{i}" for i in range(MAX_FEATURES + 1)))
    assert answer(world, carol, queries(carolClient)[0], many)
    assert world.service.featuresOf(carol.jid) is None
    assert world.fired == [] and len(world.service.cache) == 0
    assert world.clock.getDelayedCalls() == []


def test_timeout() -> None:
    """
    A query not answered within queryTimeout (on the injected clock) gives
    no features; then every session waiting on the ver is asked at once
    (no one waits behind a line of silent sessions), and each session is
    asked once for one presence.
    """
    world = makeWorld()
    clients = [online(world, f"user{i}@{DOMAIN}/r") for i in range(4)]
    assert [len(queries(c)) for _, c in clients] == [1, 0, 0, 0]
    world.clock.advance(29.9)
    assert len(queries(clients[1][1])) == 0
    with capturedLogs() as events:
        world.clock.advance(0.1)
    assert [len(queries(c)) for _, c in clients] == [1, 1, 1, 1]
    late, lateClient = online(world, f"late@{DOMAIN}/r")
    assert len(queries(lateClient)) == 1
    with capturedLogs() as more:
        world.clock.advance(30.0)
    assert all(e["log_level"] < LogLevel.warn for e in [*events, *more])
    assert [len(queries(c)) for _, c in clients] == [1, 1, 1, 1]
    assert world.clock.getDelayedCalls() == []
    assert world.service._lookups == {}
    for session, _ in [*clients, (late, lateClient)]:
        assert world.service.featuresOf(session.jid) is None


def test_failingSessionsCannotStarveOthers() -> None:
    """
    Every session announcing an unknown ver is asked at least once: other
    sessions (of any account) that answer the query with an error, or
    not at all, before it cannot make the server give up on that ver, and
    so leave a user without personal eventing notifications. The first
    verified answer serves everyone still waiting.
    """
    world = makeWorld()
    attackers = [online(world, f"{BOB}/m{i}") for i in range(5)]
    victim, victimClient = online(world, f"{ALICE}/phone")
    error = "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
    for session, client in attackers:
        for query in queries(client):
            answer(world, session, query, error, kind="error")
    [query] = queries(victimClient)
    assert answer(world, victim, query)
    assert world.service.featuresOf(victim.jid) == NOTIFY_FEATURES
    # The same with sessions that never answer: the victim is asked after
    # one timeout, not one per silent session.
    world = makeWorld()
    silent = [online(world, f"{BOB}/m{i}") for i in range(5)]
    victim, victimClient = online(world, f"{ALICE}/phone")
    world.clock.advance(30.0)
    [query] = queries(victimClient)
    assert answer(world, victim, query)
    assert world.service.featuresOf(victim.jid) == NOTIFY_FEATURES
    # The one that timed out stays without (until it is asked again); the
    # others, still waiting, get the verified features.
    assert world.service.featuresOf(silent[0][0].jid) is None
    for session, _ in silent[1:]:
        assert world.service.featuresOf(session.jid) == NOTIFY_FEATURES
    assert world.clock.getDelayedCalls() == []


def test_askedAgainWhenVerRepeated() -> None:
    """
    A session whose features stay unknown (its answer failed) is asked
    again when a later presence repeats the ver, at most once every
    REQUERY_INTERVAL seconds; a session whose features are known, or that
    waits for an answer, is not.
    """
    world = makeWorld()
    alice, client = online(world, f"{ALICE}/phone")
    world.clock.advance(30.0)
    assert world.service.featuresOf(alice.jid) is None
    world.manager.broadcastPresence(alice, capsPresence(alice, NOTIFY_VER))
    assert len(queries(client)) == 1
    world.clock.advance(REQUERY_INTERVAL - 30.0)
    world.manager.broadcastPresence(alice, capsPresence(alice, NOTIFY_VER))
    assert len(queries(client)) == 2
    world.manager.broadcastPresence(alice, capsPresence(alice, NOTIFY_VER))
    assert len(queries(client)) == 2
    assert answer(world, alice, queries(client)[-1])
    assert world.service.featuresOf(alice.jid) == NOTIFY_FEATURES
    world.clock.advance(REQUERY_INTERVAL)
    world.manager.broadcastPresence(alice, capsPresence(alice, NOTIFY_VER))
    assert len(queries(client)) == 2


def test_onlyNotifyFeaturesKept() -> None:
    """
    Memory: of an answer, only the features the server uses are kept, in
    the cache and for the session: the +notify ones, each of at most
    MAX_FEATURE_LENGTH characters, together at most MAX_KEPT_BYTES; a
    verified answer of a thousand long features costs next to nothing.
    """
    long = "urn:" + "x" * (MAX_FEATURE_LENGTH - len("urn:+notify") + 1) + "+notify"
    assert keptFeatures(["urn:a", TUNE_NOTIFY, "+notify", long]) == frozenset({TUNE_NOTIFY, "+notify"})
    many = [f"urn:{i:04d}:" + "n" * 90 + "+notify" for i in range(100)]
    kept = keptFeatures(many)
    assert sum(len(f) for f in kept) <= MAX_KEPT_BYTES < sum(len(f) for f in many)
    assert kept == frozenset(sorted(many)[: len(kept)])
    world = makeWorld()
    bulky = info(*(f"urn:{i}:" + "f" * 230 for i in range(MAX_FEATURES - 1)), TUNE_NOTIFY)
    alice, client = online(world, f"{ALICE}/phone", ver=verOf(bulky))
    assert answer(world, alice, queries(client)[0], bulky)
    assert world.service.featuresOf(alice.jid) == frozenset({TUNE_NOTIFY})
    assert world.service.cache.get(("sha-1", verOf(bulky))) == frozenset({TUNE_NOTIFY})


def test_sessionEndCancels() -> None:
    """
    A session that ends is forgotten: its pending query and timer are
    cancelled, and a late answer is ignored; a session waiting on the same
    ver is asked instead.
    """
    world = makeWorld()
    alice, aliceClient = online(world, f"{ALICE}/phone")
    [query] = queries(aliceClient)
    world.manager.unbind(alice)
    assert world.clock.getDelayedCalls() == []
    assert not answer(world, alice, query)
    assert len(world.service.cache) == 0 and world.fired == []
    bob, bobClient = online(world, f"{BOB}/desk")
    carol, carolClient = online(world, f"{CAROL}/pad")
    world.manager.unbind(bob)
    [carolQuery] = queries(carolClient)
    assert len(world.clock.getDelayedCalls()) == 1
    answer(world, carol, carolQuery)
    assert world.service.featuresOf(carol.jid) == NOTIFY_FEATURES
    world.manager.unbind(carol)
    assert world.service.featuresOf(carol.jid) is None
    assert world.service._states == {} and world.service._lookups == {}


def test_newerVerSupersedes() -> None:
    """
    At most one query per session: a presence with a new ver supersedes
    the pending query, whose answer is then ignored.
    """
    world = makeWorld()
    alice, client = online(world, f"{ALICE}/phone")
    [old] = queries(client)
    tuneInfo = info(TUNE_NOTIFY)
    newVer = verOf(tuneInfo)
    world.manager.broadcastPresence(alice, capsPresence(alice, newVer))
    [_, new] = queries(client)
    assert len(world.clock.getDelayedCalls()) == 1
    assert not answer(world, alice, old)
    assert world.service.featuresOf(alice.jid) is None
    assert answer(world, alice, new, tuneInfo)
    assert world.service.notifyNodes(alice.jid) == frozenset({"http://jabber.org/protocol/tune"})


def test_newVerChangesFeatures() -> None:
    """
    A new ver from a session whose features were known makes the new
    features known, and the callbacks run again.
    """
    world = makeWorld()
    alice, client = online(world, f"{ALICE}/phone")
    answer(world, alice, queries(client)[0])
    tuneInfo = info(TUNE_NOTIFY, GEOLOC_NOTIFY)
    world.manager.broadcastPresence(alice, capsPresence(alice, verOf(tuneInfo)))
    answer(world, alice, queries(client)[-1], tuneInfo)
    assert [features for _, features in world.fired] == [NOTIFY_FEATURES, frozenset({TUNE_NOTIFY, GEOLOC_NOTIFY})]


def test_sameVerAndUnavailable() -> None:
    """
    A later presence with the same ver neither queries nor runs the
    callbacks; unavailable presence keeps the features (the session
    still exists) without running them; available again with the same
    ver changes nothing.
    """
    world = makeWorld()
    alice, client = online(world, f"{ALICE}/phone")
    answer(world, alice, queries(client)[0])
    world.manager.broadcastPresence(alice, capsPresence(alice, NOTIFY_VER))
    world.manager.broadcastPresence(alice, parse(f"<presence from='{alice.jid.full()}' type='unavailable'/>"))
    assert world.service.featuresOf(alice.jid) == NOTIFY_FEATURES
    world.manager.broadcastPresence(alice, capsPresence(alice, NOTIFY_VER))
    assert len(world.fired) == 1 and len(queries(client)) == 1
    assert world.service.featuresOf(alice.jid) == NOTIFY_FEATURES


def test_presenceWithoutCapsForgets() -> None:
    """
    XEP-0115 section 8.3: available presence without caps (or with legacy
    caps) means the entity is not known to support them: its features are
    forgotten and its pending query is cancelled.
    """
    world = makeWorld()
    alice, client = online(world, f"{ALICE}/phone")
    answer(world, alice, queries(client)[0])
    world.manager.broadcastPresence(alice, parse(f"<presence from='{alice.jid.full()}'/>"))
    assert world.service.featuresOf(alice.jid) is None
    bob, bobClient = online(world, f"{BOB}/desk", ver="unknown=")
    world.manager.broadcastPresence(
        bob, parse(f"<presence from='{bob.jid.full()}'><c xmlns='{NS_CAPS}' node='n' ver='1.0'/></presence>")
    )
    assert world.clock.getDelayedCalls() == []
    assert not answer(world, bob, queries(bobClient)[0])


def test_notifyNodes() -> None:
    """
    XEP-0163 section 4.3.1: the nodes a session wants notifications of
    are those N for which it advertises N+notify.
    """
    world = makeWorld()
    features = info("http://jabber.org/protocol/disco#info", GEOLOC_NOTIFY, TUNE_NOTIFY, "+notify")
    alice, client = online(world, f"{ALICE}/phone", ver=verOf(features))
    answer(world, alice, queries(client)[0], features)
    assert world.service.notifyNodes(alice.jid) == frozenset(
        {"http://jabber.org/protocol/geoloc", "http://jabber.org/protocol/tune"}
    )
    assert world.service.notifyNodes(jid.JID(f"{BOB}/none")) == frozenset()


def test_failingCallbackLogged() -> None:
    """
    A callback that raises (or whose Deferred fails) is logged, and the
    other callbacks still run; removed callbacks do not run.
    """
    world = makeWorld()

    def broken(session: Session, features: frozenset[str]) -> None:
        raise RuntimeError("bug")

    def brokenLater(session: Session, features: frozenset[str]) -> defer.Deferred[None]:
        return defer.fail(RuntimeError("later bug"))

    removed: list[Session] = []
    world.service.onFeatures(broken)
    world.service.onFeatures(brokenLater)
    world.service.onFeatures(removed.append)  # type: ignore[arg-type]
    world.service.removeOnFeatures(removed.append)  # type: ignore[arg-type]
    late: list[str] = []
    world.service.onFeatures(lambda session, features: late.append(session.jid.full()))
    with capturedLogs() as events:
        alice, client = online(world, f"{ALICE}/phone")
        answer(world, alice, queries(client)[0])
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 2
    assert late == [f"{ALICE}/phone"] and len(world.fired) == 1
    assert removed == []


def test_liveCacheSize() -> None:
    """
    The cache size comes from the live configuration (caps_cache_size):
    a smaller size applies on the next insert.
    """
    world = makeWorld(caps_cache_size=10)
    for i in range(3):
        features = info(f"urn:f{i}+notify")
        session, client = online(world, f"user{i}@{DOMAIN}/r", ver=verOf(features))
        answer(world, session, queries(client)[0], features)
    assert len(world.service.cache) == 3
    world.config = dataclasses.replace(world.config, caps_cache_size=1)
    features = info("urn:last+notify")
    session, client = online(world, f"last@{DOMAIN}/r", ver=verOf(features))
    answer(world, session, queries(client)[0], features)
    assert len(world.service.cache) == 1
    assert world.service.cache.get(("sha-1", verOf(features))) == frozenset({"urn:last+notify"})


def test_uninstall() -> None:
    """
    Uninstalling leaves the hooks and cancels pending queries.
    """
    world = makeWorld()
    online(world, f"{ALICE}/phone")
    world.service.uninstall()
    assert world.clock.getDelayedCalls() == []
    assert world.service.presenceBroadcast not in world.manager.hooks.handlers(PRESENCE_BROADCAST)
    assert world.service.sessionEnded not in world.manager.hooks.handlers(SESSION_ENDED)


# --- through client streams ------------------------------------------------------------


def test_throughClientStreams() -> None:
    """
    XEP-0115 section 6.2 end to end: the client's presence with caps makes
    the server send it a disco#info get; the client's result, addressed to
    the server, is taken by the stream's handler (no error comes back);
    another client's result with the same id is not.
    """
    h = makeServer(accounts=(ALICE, BOB))
    service = CapsService(h.sessions, h.clock)
    service.install()
    h.server.handlerFactories = [defaultHandlers, service.handlersFor]
    alice = h.connect()
    alice.bound("phone", user="alice")
    alice.output()
    bob = h.connect()
    bob.bound("desk", user="bob")
    bob.output()
    alice.send(f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='{EXODUS_NODE}' ver='{NOTIFY_VER}'/></presence>")
    [query] = [e for e in alice.received().elements if e.name == "iq"]
    assert query["type"] == "get" and query["from"] == DOMAIN and query["to"] == f"{ALICE}/phone"
    bob.send(f"<iq type='result' to='{DOMAIN}' id='{query['id']}'>{info('urn:poison+notify')}</iq>")
    assert bob.received().elements == []
    assert service.featuresOf(jid.JID(f"{ALICE}/phone")) is None
    alice.send(f"<iq type='result' to='{DOMAIN}' id='{query['id']}'>{NOTIFY_INFO}</iq>")
    assert alice.received().elements == []
    assert service.featuresOf(jid.JID(f"{ALICE}/phone")) == NOTIFY_FEATURES
    assert service.cache.get(("sha-1", NOTIFY_VER)) == NOTIFY_FEATURES
