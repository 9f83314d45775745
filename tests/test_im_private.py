"""
Tests for L{xmppcert.im.private}: Private XML Storage (XEP-0049).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.words.xish import domish

from tests.helpers import (
    ALICE,
    DOMAIN,
    ClientConnection,
    ServerHarness,
    makeServer,
    resultOf,
    stanzaErrorCondition,
)
from xmppcert.handlers import defaultHandlers
from xmppcert.im.private import (
    MAX_PRIVATE_BYTES,
    MAX_PRIVATE_FRAGMENT_BYTES,
    NS_PRIVATE,
    PrivateService,
    isReserved,
)
from xmppcert.store.interfaces import StoreError

PREFS = "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>"


@dataclass
class Limits:
    max_private_bytes: int = MAX_PRIVATE_BYTES
    max_private_fragment_bytes: int = MAX_PRIVATE_FRAGMENT_BYTES


@dataclass
class Harness:
    h: ServerHarness
    service: PrivateService

    def login(self, user: str) -> ClientConnection:
        client = self.h.connect()
        client.bound("phone", user=user)
        client.output()
        return client

    def iq(self, client: ClientConnection, xml: str) -> domish.Element:
        client.send(xml)
        [answer] = [e for e in client.received().elements if e.name == "iq"]
        return answer


def makeHarness(**limits: Any) -> Harness:
    h = makeServer()
    config = Limits(**limits)
    service = PrivateService(h.sessions, h.store, lambda: config, h.clock)
    service.install()
    h.server.handlerFactories = [defaultHandlers, service.handlersFor]
    return Harness(h, service)


def setIQ(content: str, to: str = "") -> str:
    return f"<iq type='set' id='s'{to}><query xmlns='{NS_PRIVATE}'>{content}</query></iq>"


def getIQ(content: str, to: str = "") -> str:
    return f"<iq type='get' id='g'{to}><query xmlns='{NS_PRIVATE}'>{content}</query></iq>"


def payload(answer: domish.Element) -> list[domish.Element]:
    [query] = [c for c in answer.elements() if (c.uri, c.name) == (NS_PRIVATE, "query")]
    return list(query.elements())


def text(element: domish.Element, name: str) -> str:
    return "".join(str(t) for c in element.elements() if c.name == name for t in c.children)


def test_storeAndRetrieve() -> None:
    """
    XEP-0049 section 2.3 (examples 1, 2): a set is answered with an empty
    result; a get naming the namespace returns the stored element.
    """
    t = makeHarness()
    alice = t.login("alice")
    answer = t.iq(alice, setIQ(PREFS))
    assert answer["type"] == "result" and list(answer.elements()) == []
    answer = t.iq(alice, getIQ("<exodus xmlns='exodus:prefs'/>"))
    assert answer["type"] == "result"
    [stored] = payload(answer)
    assert (stored.uri, stored.name) == ("exodus:prefs", "exodus")
    assert text(stored, "defaultnick") == "Hamlet"


def test_retrieveNothingStored() -> None:
    """
    With nothing stored under the namespace, the get is answered with the
    element as asked, empty.
    """
    t = makeHarness()
    alice = t.login("alice")
    answer = t.iq(alice, getIQ("<storage xmlns='storage:bookmarks'/>"))
    assert answer["type"] == "result"
    [element] = payload(answer)
    assert (element.uri, element.name) == ("storage:bookmarks", "storage")
    assert list(element.elements()) == []


def test_namespaceIsTheKey() -> None:
    """
    Section 2.1: fragments are kept per namespace; a set may hold several
    namespaces, and a set of one namespace replaces only its fragment.
    Another account sees none of them.
    """
    t = makeHarness()
    alice = t.login("alice")
    t.iq(alice, setIQ(PREFS + "<storage xmlns='storage:bookmarks'><url name='x'/></storage>"))
    t.iq(alice, setIQ("<exodus xmlns='exodus:prefs'><defaultnick>Ophelia</defaultnick></exodus>"))
    [prefs] = payload(t.iq(alice, getIQ("<exodus xmlns='exodus:prefs'/>")))
    assert text(prefs, "defaultnick") == "Ophelia"
    [bookmarks] = payload(t.iq(alice, getIQ("<storage xmlns='storage:bookmarks'/>")))
    assert [c.name for c in bookmarks.elements()] == ["url"]
    bob = t.login("bob")
    [empty] = payload(t.iq(bob, getIQ("<exodus xmlns='exodus:prefs'/>")))
    assert list(empty.elements()) == []


def test_severalElementsOfOneNamespace() -> None:
    """
    Section 2.3: a set or result may hold several elements of the same
    namespace; they are kept and given back together.
    """
    t = makeHarness()
    alice = t.login("alice")
    t.iq(alice, setIQ("<a xmlns='my:ns'>1</a><b xmlns='my:ns'>2</b>"))
    assert [e.name for e in payload(t.iq(alice, getIQ("<a xmlns='my:ns'/>")))] == ["a", "b"]


def test_emptyQuery() -> None:
    """
    Section 2.3: a query without a child element is not-acceptable, for a
    set and for a get.
    """
    t = makeHarness()
    alice = t.login("alice")
    assert stanzaErrorCondition(t.iq(alice, setIQ(""))) == "not-acceptable"
    assert stanzaErrorCondition(t.iq(alice, getIQ(""))) == "not-acceptable"


def test_getOneNamespaceOnly() -> None:
    """
    Section 2.3: a client MUST NOT query more than one namespace in a get;
    one that does gets bad-request.
    """
    t = makeHarness()
    alice = t.login("alice")
    answer = t.iq(alice, getIQ("<a xmlns='one:ns'/><b xmlns='two:ns'/>"))
    assert stanzaErrorCondition(answer) == "bad-request"


def test_reservedNamespaces() -> None:
    """
    Section 2.3: namespaces beginning with 'jabber:' or
    'http://jabber.org/', and 'vcard-temp', are reserved: not-acceptable,
    and nothing is stored (also not the other elements of the set).
    """
    assert isReserved("jabber:client") and isReserved("http://jabber.org/protocol/disco#info")
    assert isReserved("vcard-temp") and not isReserved("storage:bookmarks")
    t = makeHarness()
    alice = t.login("alice")
    for reserved in ("<vCard xmlns='vcard-temp'><FN>Hamlet</FN></vCard>", "<x xmlns='jabber:x:data'/>", "<y/>"):
        assert stanzaErrorCondition(t.iq(alice, setIQ(PREFS + reserved))) == "not-acceptable"
    assert t.h.store.private == {}
    assert stanzaErrorCondition(t.iq(alice, getIQ("<vCard xmlns='vcard-temp'/>"))) == "not-acceptable"


def test_otherAccountForbidden() -> None:
    """
    Sections 2.3 and 4: a get or set for another user's private XML is
    forbidden (the preferred error), and changes nothing.
    """
    t = makeHarness()
    alice = t.login("alice")
    t.iq(alice, setIQ(PREFS))
    bob = t.login("bob")
    for request in (setIQ("<exodus xmlns='exodus:prefs'/>", f" to='{ALICE}'"), getIQ("<exodus xmlns='exodus:prefs'/>", f" to='{ALICE}'")):
        assert stanzaErrorCondition(t.iq(bob, request)) == "forbidden"
    assert t.h.store.private[ALICE]["exodus:prefs"] == PREFS
    assert alice.received().elements == []
    assert stanzaErrorCondition(t.iq(bob, getIQ("<exodus xmlns='exodus:prefs'/>", f" to='{DOMAIN}'"))) == "forbidden"


def test_ownBareJID() -> None:
    """
    A request addressed to the user's own bare JID is the user's own.
    """
    t = makeHarness()
    alice = t.login("alice")
    assert t.iq(alice, setIQ(PREFS, f" to='{ALICE}'"))["type"] == "result"
    assert payload(t.iq(alice, getIQ("<exodus xmlns='exodus:prefs'/>", f" to='{ALICE}'")))[0].name == "exodus"


def test_fragmentLimit() -> None:
    """
    A fragment larger than the per-namespace limit is not-acceptable.
    """
    t = makeHarness(max_private_fragment_bytes=100)
    alice = t.login("alice")
    assert stanzaErrorCondition(t.iq(alice, setIQ(f"<a xmlns='my:ns'>{'x' * 100}</a>"))) == "not-acceptable"
    assert resultOf(t.h.store.getPrivate(ALICE, "my:ns")) is None


def test_totalLimit() -> None:
    """
    The account's fragments together may not exceed the total limit:
    resource-constraint, and the earlier fragments are kept.
    """
    t = makeHarness(max_private_bytes=150)
    alice = t.login("alice")
    assert t.iq(alice, setIQ(f"<a xmlns='one:ns'>{'x' * 80}</a>"))["type"] == "result"
    answer = t.iq(alice, setIQ(f"<a xmlns='two:ns'>{'x' * 80}</a>"))
    assert stanzaErrorCondition(answer) == "resource-constraint"
    assert resultOf(t.h.store.getPrivate(ALICE, "two:ns")) is None
    assert resultOf(t.h.store.getPrivate(ALICE, "one:ns")) is not None


def test_storeFailure() -> None:
    """
    A store failure is internal-server-error of type wait.
    """
    t = makeHarness()
    alice = t.login("alice")
    t.h.store.getPrivate = lambda account, namespace: defer.fail(StoreError("gone"))  # type: ignore[method-assign]
    answer = t.iq(alice, getIQ("<exodus xmlns='exodus:prefs'/>"))
    assert stanzaErrorCondition(answer) == "internal-server-error"


def test_disco() -> None:
    """
    The server advertises jabber:iq:private.
    """
    t = makeHarness()
    alice = t.login("alice")
    answer = t.iq(
        alice, f"<iq type='get' id='d' to='{DOMAIN}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    )
    features = [f["var"] for q in answer.elements() for f in q.elements() if f.name == "feature"]
    assert NS_PRIVATE in features


def test_uninstall() -> None:
    """
    Uninstalled, a request to another account falls to the default
    answer, service-unavailable (which XEP-0049 also allows).
    """
    t = makeHarness()
    t.service.uninstall()
    bob = t.login("bob")
    answer = t.iq(bob, getIQ("<exodus xmlns='exodus:prefs'/>", f" to='{ALICE}'"))
    assert stanzaErrorCondition(answer) == "service-unavailable"
