# -*- test-case-name: tests.test_im_pep_protocol -*-
"""
Personal eventing (XEP-0163) on the wire: XEP-0060 requests parsed into
L{PEPRequest}s (wokkel's C{PubSubRequest}, with the checks a server
needs), answered through L{PEPService<xmppcert.im.pep.service.PEPService>},
and the service discovery of an account's service.

L{PEPHandler} takes, on each bound stream, the requests the user sends to
its own service: without C{to}, or to its own bare JID (XEP-0163 section
3; RFC 6120 section 10.3.3). A request to the server's domain is left
alone: the server has no pubsub service of its own, and the stream
answers it C{service-unavailable}. Requests to another account's bare JID
reach L{respond} through the service's C{INBOUND_BARE} hook.

Supported: publish (with publish-options), retrieve items, retract,
create (and configure), configure (get and set), default configuration,
delete and purge. Explicit subscriptions, subscription options and
affiliations are not: PEP's subscriptions are implicit (XEP-0163 section
4.1), and they are C{feature-not-implemented} with
C{<unsupported feature='...'/>} (XEP-0060 sections 6.1.3.10, 8.8 and
8.9).

Service discovery (XEP-0163 section 6): the account's bare JID has the
identity C{pubsub/pep} and the features of L{FEATURES}; its disco#items
lists the nodes the requester may see (section 6.2); a node's disco#info
has the identity C{pubsub/leaf} (XEP-0060 section 5.3) and its
disco#items the ids of its items (section 5.5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber import error, jid, xmlstream
from twisted.words.xish import domish
from wokkel import disco, pubsub
from wokkel.iwokkel import IDisco
from zope.interface import implementer

from xmppcert import _log
from xmppcert.im.pep.nodeconfig import (
    MAX_DIGITS,
    NS_PUBSUB,
    NS_PUBSUB_OWNER,
    NodeConfig,
    findForm,
    nodeIdRequired,
    positiveInteger,
    publishOptionsFromForm,
    pubsubError,
    submittedConfig,
)
from xmppcert.iqhandler import OrderedIQHandler
from xmppcert.sessions import Session

if TYPE_CHECKING:
    from xmppcert.im.pep.service import PEPService
    from xmppcert.store.interfaces import PEPItem

log = Logger(observer=_log.observer, namespace="xmppcert.im.pep")

NS_DISCO_INFO = disco.NS_DISCO_INFO
NS_DISCO_ITEMS = disco.NS_DISCO_ITEMS

#: A pubsub request (either namespace), get or set.
PUBSUB_REQUEST = pubsub.PUBSUB_REQUEST

#: The features of the service (XEP-0060's feature summary, XEP-0163
#: section 5),
#: each one that works.
FEATURES: tuple[str, ...] = (NS_PUBSUB,) + tuple(
    f"{NS_PUBSUB}#{feature}"
    for feature in (
        "access-open",
        "access-presence",
        "access-roster",
        "access-whitelist",
        "auto-create",
        "auto-subscribe",
        "config-node",
        "config-node-max",
        "create-and-configure",
        "create-nodes",
        "delete-items",
        "delete-nodes",
        "filtered-notifications",
        "item-ids",
        "last-published",
        "persistent-items",
        "presence-notifications",
        "presence-subscribe",
        "publish",
        "publish-options",
        "pubsub-on-a-jid",
        "purge-nodes",
        "retract-items",
        "retrieve-default",
        "retrieve-items",
    )
)

#: The verbs (of wokkel's C{PubSubRequest}) the service answers.
SUPPORTED_VERBS = frozenset(
    {"publish", "items", "retract", "create", "configureGet", "configureSet", "default", "delete", "purge"}
)

#: The other verbs, with the XEP-0060 feature each would need.
UNSUPPORTED_VERBS: dict[str, str] = {
    "subscribe": "subscribe",
    "unsubscribe": "subscribe",
    "optionsGet": "subscription-options",
    "optionsSet": "subscription-options",
    "subscriptions": "retrieve-subscriptions",
    "affiliations": "retrieve-affiliations",
    "affiliationsGet": "modify-affiliations",
    "affiliationsSet": "modify-affiliations",
    "subscriptionsGet": "manage-subscriptions",
    "subscriptionsSet": "manage-subscriptions",
}

#: Every (namespace, element) that names a request, whatever the iq type.
_VERB_ELEMENTS = frozenset((uri, name) for _, uri, name in pubsub.PubSubRequest._requestVerbMap)


def _isTrue(value: str | None) -> bool:
    return value in ("1", "true")


def parseStoredPayload(text: str) -> domish.Element | None:
    """
    Parse an item's payload as the service stored it (an element's
    C{toXml()}); C{""} is no payload.

    @raise ValueError: the text is not one element.
    """
    if not text:
        return None
    elements: list[domish.Element] = []
    stream = domish.ExpatElementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = elements.append
    stream.DocumentEndEvent = lambda: None
    try:
        stream.parse(f"<stored xmlns='{NS_PUBSUB}'>".encode() + text.encode("utf-8") + b"</stored>")
    except (domish.ParserError, UnicodeError) as e:
        raise ValueError(f"not a stored payload: {e}") from None
    if len(elements) != 1:
        raise ValueError("not one stored element")
    return elements[0]


def itemElement(item: PEPItem, uri: str, withPayload: bool = True) -> domish.Element:
    """
    The C{<item id=.../>} of an item, in namespace C{uri} (C{pubsub} in a
    result, C{pubsub#event} in a notification), with its payload unless
    told not to. An unreadable stored payload (a damaged store) is logged
    and left out.
    """
    element = domish.Element((uri, "item"))
    element["id"] = item.id
    if withPayload and item.payload:
        try:
            payload = parseStoredPayload(item.payload)
        except ValueError as e:
            log.error("A stored personal eventing item ({id}) is unreadable: {error}", id=item.id, error=str(e))
            payload = None
        if payload is not None:
            element.addChild(payload)
    return element


class PEPRequest(pubsub.PubSubRequest):
    """
    A XEP-0060 request to a personal eventing service: wokkel's
    C{PubSubRequest} (its verbs and parameters), with the checks and the
    parts wokkel leaves out.

    @ivar publishOptions: for C{publish}: the values of
        C{<publish-options/>} (XEP-0060 section 7.1.5), C{None} without.
    @ivar configuration: for C{create} and C{configureSet}: the submitted
        configuration values, C{None} for none (a cancelled form).
    @ivar notify: for C{retract}: its C{notify} attribute (section
        7.2.2.1).
    """

    publishOptions: dict[str, list[str]] | None = None
    configuration: dict[str, list[str]] | None = None
    notify = False

    @classmethod
    def fromElement(cls, element: domish.Element) -> PEPRequest:
        """
        @raise error.StanzaError: the request is malformed (C{bad-request},
            with the pubsub condition XEP-0060 names) or not supported
            (C{feature-not-implemented}).
        """
        request = cls()
        request.parseElement(element)
        return request

    def parseElement(self, element: domish.Element) -> None:
        # Unlike generic.Stanza.parseElement: the stanza is not changed
        # (no namespace stripped) and no JID is interned.
        self.stanzaType = element.getAttribute("type")
        self.stanzaID = element.getAttribute("id")
        self.element = element
        container = None
        for child in element.elements():
            if child.name == "pubsub" and child.uri in (NS_PUBSUB, NS_PUBSUB_OWNER):
                container = child
                break
        if container is None:
            raise error.StanzaError("bad-request", text="Not a pubsub request")
        self._container = container
        children = list(container.elements())
        found: list[tuple[str, domish.Element]] = []
        for child in children:
            verb = self._requestVerbMap.get((self.stanzaType, child.uri, child.name))
            if verb is not None:
                found.append((verb, child))
        for verb, _ in found:
            if verb not in SUPPORTED_VERBS:
                raise pubsub.Unsupported(UNSUPPORTED_VERBS.get(verb, verb))
        if not found:
            if any((child.uri, child.name) in _VERB_ELEMENTS for child in children):
                raise error.StanzaError("bad-request", text=f"Not a request of an iq of type {self.stanzaType!r}")
            if not children:
                raise error.StanzaError("bad-request", text="The pubsub element holds no request")
            raise error.StanzaError("feature-not-implemented", text="Unknown pubsub request")
        if len(found) > 1:
            raise error.StanzaError("bad-request", text="One pubsub request at a time")
        self.verb, verbElement = found[0]
        for parameter in self._parameters[self.verb]:
            getattr(self, f"_parse_{parameter}")(verbElement)
        if self.verb == "publish":
            self._parse_publishOptions()
        elif self.verb == "retract":
            self.notify = _isTrue(verbElement.getAttribute("notify"))

    def _parse_node(self, verbElement: domish.Element) -> None:
        node = verbElement.getAttribute("node")
        if not node:
            raise nodeIdRequired()
        self.nodeIdentifier = node

    def _parse_nodeOrEmpty(self, verbElement: domish.Element) -> None:
        # Only the configure requests get here: they need a node
        # (XEP-0060 section 8.2.3.3; the root node is not configurable).
        self._parse_node(verbElement)

    def _parse_nodeOrNone(self, verbElement: domish.Element) -> None:
        # Create: there are no instant nodes (XEP-0060 section 8.1.2).
        node = verbElement.getAttribute("node")
        if not node:
            raise pubsubError("not-acceptable", "nodeid-required", text="Instant nodes are not supported")
        self.nodeIdentifier = node

    def _parse_itemIdentifiers(self, verbElement: domish.Element) -> None:
        items = list(verbElement.elements(NS_PUBSUB, "item"))
        identifiers = [item.getAttribute("id") for item in items]
        if self.verb == "retract":
            # XEP-0060 section 7.2.1: one item, with an id (7.2.3.4).
            if len(items) != 1 or not identifiers[0]:
                raise pubsubError("bad-request", "item-required", text="Name the one item to retract")
        elif not all(identifiers):
            raise error.StanzaError("bad-request", text="An item asked for needs an 'id'")
        self.itemIdentifiers = [identifier for identifier in identifiers if identifier]

    def _parse_maxItems(self, verbElement: domish.Element) -> None:
        value = verbElement.getAttribute("max_items")
        if value is None:
            return
        number = positiveInteger(value)
        if number is None:
            # Checked before it is converted: see MAX_DIGITS.
            raise error.StanzaError(
                "bad-request", text=f"max_items must be a positive integer of at most {MAX_DIGITS} digits"
            )
        self.maxItems = number

    def _parse_configure(self, verbElement: domish.Element) -> None:
        self.configuration = submittedConfig(findForm(verbElement))

    def _parse_configureOrNone(self, verbElement: domish.Element) -> None:
        # XEP-0060 section 8.1.3: <configure/> after <create/>, without a
        # node; its form is optional.
        for child in self._container.elements(NS_PUBSUB, "configure"):
            if child.getAttribute("node") is not None:
                raise error.StanzaError("bad-request", text="<configure/> of a create request has no 'node'")
            form = findForm(child)
            if form is None:
                self.configuration = {}
                return
            values = submittedConfig(form)
            if values is None:
                raise error.StanzaError("bad-request", text="A node cannot be created with a cancelled form")
            self.configuration = values
            return

    def _parse_default(self, verbElement: domish.Element) -> None:
        nodeType = verbElement.getAttribute("type") or "leaf"
        if nodeType != "leaf":
            raise pubsub.Unsupported("collections", text="Only leaf nodes are supported")
        self.nodeType = nodeType

    def _parse_publishOptions(self) -> None:
        for child in self._container.elements(NS_PUBSUB, "publish-options"):
            self.publishOptions = publishOptionsFromForm(findForm(child))
            return


def _publishPayload(items: list[domish.Element]) -> tuple[str | None, domish.Element | None]:
    """
    The item id and payload of a publish request (XEP-0060 section
    7.1.1): at most one item (7.1.3.6: C{bad-request} with
    C{<invalid-payload/>} for more), with at most one payload element;
    no item is C{<item-required/>} (7.1.3.7).
    """
    if not items:
        raise pubsubError("bad-request", "item-required", text="Publish one item")
    if len(items) > 1:
        raise pubsubError("bad-request", "invalid-payload", text="Publish one item at a time")
    item = items[0]
    payloads = list(item.elements())
    if len(payloads) > 1:
        raise pubsubError("bad-request", "invalid-payload", text="An item holds one payload element")
    return item.getAttribute("id") or None, payloads[0] if payloads else None


async def answerRequest(
    service: PEPService, owner: jid.JID, requester: jid.JID, iq: domish.Element
) -> domish.Element | None:
    """
    Answer a pubsub request to C{owner}'s service.

    @return: the payload of the result, C{None} for none.
    @raise error.StanzaError: the error to answer.
    """
    request = PEPRequest.fromElement(iq)
    verb = request.verb
    node = request.nodeIdentifier
    if verb == "publish":
        itemId, payload = _publishPayload(request.items)
        published = await service.publish(owner, node, itemId, payload, requester, request.publishOptions)
        result = domish.Element((NS_PUBSUB, "pubsub"))
        publish = result.addElement("publish")
        publish["node"] = node
        publish.addElement("item")["id"] = published
        return result
    if verb == "items":
        found = await service.items(
            owner, node, requester, request.itemIdentifiers or None, request.maxItems or 0
        )
        result = domish.Element((NS_PUBSUB, "pubsub"))
        items = result.addElement("items")
        items["node"] = node
        for item in found:
            items.addChild(itemElement(item, NS_PUBSUB))
        return result
    if verb == "retract":
        await service.retract(owner, node, request.itemIdentifiers[0], requester, request.notify)
        return None
    if verb == "create":
        await service.create(owner, node, requester, request.configuration)
        return None
    if verb == "configureGet":
        config = await service.configuration(owner, node, requester)
        result = domish.Element((NS_PUBSUB_OWNER, "pubsub"))
        configure = result.addElement("configure")
        configure["node"] = node
        configure.addChild(config.toForm().toElement())
        return result
    if verb == "configureSet":
        if request.configuration is None:
            # A cancelled form: the configuration stays (section 8.2.4),
            # once the request is known to be the owner's, of a node.
            await service.configuration(owner, node, requester)
        else:
            await service.configure(owner, node, requester, request.configuration)
        return None
    if verb == "default":
        result = domish.Element((NS_PUBSUB_OWNER, "pubsub"))
        result.addElement("default").addChild(service.defaultConfig().toForm().toElement())
        return result
    if verb == "delete":
        await service.deleteNode(owner, node, requester)
        return None
    # purge
    await service.purge(owner, node, requester)
    return None


def requestKind(iq: domish.Element) -> str | None:
    """
    What an iq asks an account's service: C{"pubsub"}, C{"disco#info"},
    C{"disco#items"} (gets only), or C{None} for something else.
    """
    for child in iq.elements():
        if child.name == "pubsub" and child.uri in (NS_PUBSUB, NS_PUBSUB_OWNER):
            return "pubsub"
        if child.name == "query" and iq.getAttribute("type") == "get":
            if child.uri == NS_DISCO_INFO:
                return "disco#info"
            if child.uri == NS_DISCO_ITEMS:
                return "disco#items"
        return None
    return None


def discoNode(iq: domish.Element) -> str:
    """
    The C{node} of a disco#info or disco#items request (L{requestKind}),
    C{""} for none.
    """
    for child in iq.elements():
        return child.getAttribute("node") or ""
    return ""


async def _visibleNode(
    service: PEPService, owner: jid.JID, requester: jid.JID, node: str
) -> NodeConfig | None:
    for found, config in await service.nodes(owner, requester):
        if found.node == node:
            return config
    return None


async def discoInfo(service: PEPService, owner: jid.JID, requester: jid.JID, nodeIdentifier: str) -> list[Any]:
    """
    The disco#info of C{owner}'s service (XEP-0163 section 6.1), or of
    one of its nodes (XEP-0060 section 5.3; nothing when C{requester} may
    not see it).
    """
    if not nodeIdentifier:
        return [disco.DiscoIdentity("pubsub", "pep")] + [disco.DiscoFeature(feature) for feature in FEATURES]
    config = await _visibleNode(service, owner, requester, nodeIdentifier)
    if config is None:
        return []
    return [disco.DiscoIdentity("pubsub", "leaf", config.title or None)]


async def discoItems(service: PEPService, owner: jid.JID, requester: jid.JID, nodeIdentifier: str) -> list[Any]:
    """
    The disco#items of C{owner}'s service: the nodes C{requester} may see
    (XEP-0163 section 6.2); of one of its nodes, the ids of its items
    (XEP-0060 section 5.5).

    @raise error.StanzaError: C{item-not-found} for a node C{requester}
        may not see; store failures.
    """
    if not nodeIdentifier:
        return [
            disco.DiscoItem(owner.userhostJID(), node.node, config.title or None)
            for node, config in await service.nodes(owner, requester)
        ]
    if await _visibleNode(service, owner, requester, nodeIdentifier) is None:
        raise error.StanzaError("item-not-found", type="cancel", text="No such node")
    found: list[PEPItem] = await service.items(owner, nodeIdentifier, requester)
    return [disco.DiscoItem(owner.userhostJID(), name=item.id) for item in reversed(found)]


async def respond(
    service: PEPService, owner: jid.JID, requester: jid.JID, iq: domish.Element, kind: str
) -> domish.Element:
    """
    The whole answer to a request (of L{requestKind} C{kind}) from another
    account to C{owner}'s bare JID: the service's on its behalf, with the
    identity C{account/registered} beside C{pubsub/pep} in disco#info.
    """
    try:
        payload: domish.Element | None
        if kind == "pubsub":
            payload = await answerRequest(service, owner, requester, iq)
        else:
            query = next(iter(iq.elements()))
            nodeIdentifier = query.getAttribute("node") or ""
            if kind == "disco#info":
                info = disco.DiscoInfo()
                info.nodeIdentifier = nodeIdentifier
                found = await discoInfo(service, owner, requester, nodeIdentifier)
                if not found:
                    raise error.StanzaError("item-not-found", type="cancel", text="No such node")
                if not nodeIdentifier:
                    found = [
                        disco.DiscoIdentity("account", "registered"),
                        disco.DiscoFeature(NS_DISCO_INFO),
                        disco.DiscoFeature(NS_DISCO_ITEMS),
                        *found,
                    ]
                for entry in found:
                    info.append(entry)
                payload = info.toElement()
            else:
                items = disco.DiscoItems()
                items.nodeIdentifier = nodeIdentifier
                for entry in await discoItems(service, owner, requester, nodeIdentifier):
                    items.append(entry)
                payload = items.toElement()
    except error.StanzaError as e:
        return e.toResponse(iq)
    response = xmlstream.toResponse(iq, "result")
    if payload is not None:
        response.addChild(payload)
    return response


@implementer(IDisco)
class PEPHandler(OrderedIQHandler):
    """
    The user's requests to its own personal eventing service, on one bound
    client stream, answered in order (L{OrderedIQHandler}: a publish
    followed at once by a retrieval sees the item); and the service in the
    disco of the user's own bare JID.
    """

    iqHandlers = {PUBSUB_REQUEST: "_onRequest"}

    def __init__(self, service: PEPService, session: Session) -> None:
        OrderedIQHandler.__init__(self)
        self.service = service
        self.session = session

    def handleRequest(self, iq: domish.Element) -> None:
        # XEP-0163 section 3: no 'to', or the user's own bare JID. Others
        # (the server's domain) are left for the stream to refuse.
        to = iq.getAttribute("to")
        if to is not None and to != self.session.jid.userhost():
            return
        super().handleRequest(iq)

    def _onRequest(self, iq: domish.Element) -> defer.Deferred[domish.Element | None]:
        owner = self.session.jid.userhostJID()
        return defer.ensureDeferred(answerRequest(self.service, owner, self.session.jid, iq))

    def _isOwn(self, target: jid.JID | None) -> bool:
        return target is None or (
            target.user is not None and target.resource is None and target.userhost() == self.session.jid.userhost()
        )

    def getDiscoInfo(
        self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = ""
    ) -> defer.Deferred[list[Any]] | list[Any]:
        """
        XEP-0163 section 6.1: on the user's own bare JID, the identity
        C{pubsub/pep} and the features; a node's identity.
        """
        if not self._isOwn(target):
            return []
        owner = self.session.jid.userhostJID()
        return defer.ensureDeferred(discoInfo(self.service, owner, self.session.jid, nodeIdentifier))

    def getDiscoItems(
        self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = ""
    ) -> defer.Deferred[list[Any]] | list[Any]:
        """
        XEP-0163 section 6.2: on the user's own bare JID, its nodes; of a
        node, its items.
        """
        if not self._isOwn(target):
            return []
        owner = self.session.jid.userhostJID()

        async def items() -> list[Any]:
            try:
                return await discoItems(self.service, owner, self.session.jid, nodeIdentifier)
            except error.StanzaError as e:
                if e.condition == "item-not-found":
                    return []
                raise

        return defer.ensureDeferred(items())


__all__ = [
    "FEATURES",
    "PUBSUB_REQUEST",
    "SUPPORTED_VERBS",
    "UNSUPPORTED_VERBS",
    "PEPHandler",
    "PEPRequest",
    "answerRequest",
    "discoInfo",
    "discoNode",
    "discoItems",
    "itemElement",
    "parseStoredPayload",
    "requestKind",
    "respond",
]
