# -*- test-case-name: tests.test_im_pep_service -*-
"""
Personal eventing (XEP-0163, v1.2): every account's bare JID is a
publish-subscribe service (XEP-0060) whose nodes only the account itself
publishes to.

L{PEPService} is the backend: a programmatic API independent of XML
(L{PEPService.publish}, L{PEPService.items}, L{PEPService.retract},
L{PEPService.create}, L{PEPService.configure}, L{PEPService.deleteNode},
L{PEPService.purge}, L{PEPService.nodes}, L{PEPService.nodeConfig}) that
refuses with C{error.StanzaError}s as XEP-0060 names them, over an
L{IPEPStore<xmppcert.store.interfaces.IPEPStore>}; and the joins to local
delivery:

  - access: the owner may do everything; another entity may retrieve
    items as the node's access model says (XEP-0060 section 6.5.1),
    against the owner's roster: C{open} anyone; C{presence} a contact
    subscribed to the owner's presence (subscription C{from} or C{both});
    C{roster} such a contact in one of C{pubsub#roster_groups_allowed};
    C{whitelist} nobody but the owner (there is no affiliation
    management). A contact refused gets the error of XEP-0060 section
    6.5.9; anyone else (not subscribed to the owner's presence) gets
    C{item-not-found}, as for a node that does not exist, so that it
    learns nothing of the account (see L{answerForeignRequest
    <PEPService.answerForeignRequest>}). Publishing, configuring,
    deleting and purging are the owner's (C{forbidden} for anyone else).
  - notifications (XEP-0163 section 4.3): an event message of type
    C{headline} from the owner's bare JID to each available resource
    whose capabilities (XEP-0115, L{ICapabilities}) include C{node+notify}
    ("filtered-notifications"): the owner's own, and those of local
    contacts subscribed to the owner's presence that the access model
    lets see the node ("auto-subscribe"). They are delivered through
    L{SessionManager.deliver}, so blocking (XEP-0191) applies (section
    4.3.3 point 3). Items (unless C{pubsub#deliver_notifications} is
    false; without payload when C{pubsub#deliver_payloads} is), retracts
    (when asked with C{notify}, or when C{pubsub#notify_retract} is
    true), purges, and deletions (when C{pubsub#notify_delete} is true).
  - the last published item (section 4.3.4), with a XEP-0203 delay
    stamped with its publication: when a session's capabilities become
    known (L{ICapabilities.onFeatures}), or it sends initial presence, it
    gets the last item of each node it newly asks notifications for, of
    its own account and of each contact its user is subscribed to (roster
    subscription C{to} or C{both}) whose access model lets it see the
    node, unless the node's C{pubsub#send_last_published_item} is not
    C{on_sub_and_presence}. What a session was sent is remembered until
    it goes unavailable or ends. A new subscriber (the owner's roster item
    for a local contact becomes C{from} or C{both}: the roster's
    L{IRosterChangeListener}) gets, on each of its available sessions,
    the last item of each node the session asks notifications for and
    may see, unless the node says C{never}.
  - requests from another local account addressed to an account's bare
    JID (pubsub, disco#info, disco#items) are answered on its behalf at
    L{PEP_PRIORITY} on L{INBOUND_BARE} (below blocking), so that whether
    the account exists is never told to someone not subscribed to its
    presence: see L{PEPService.answerForeignRequest}.

A node with C{pubsub#persist_items} false keeps no item in the store: its
last item is held in memory (L{TransientItems}: at most
L{MAX_TRANSIENT_ITEMS} nodes' worth and L{MAX_TRANSIENT_BYTES} in all,
at most L{MAX_TRANSIENT_ACCOUNT_BYTES} of them an account's) for
retrieval and last-item delivery, and is lost on restart; a node created
anew (also after its account was removed and registered again) starts
without one.

Limits (the C{[im]} settings, read live): C{max_pep_nodes} nodes per
account (more is C{not-allowed} with C{<max-nodes-exceeded/>}, the
condition of XEP-0060's error schema, with the type XEP-0060 gives its
sibling C{<max-items-exceeded/>}); C{max_pep_items} items per node (the
oldest are dropped; C{pubsub#max_items} C{max} means this many, and no
request gets more); C{max_pep_item_bytes} bytes of one payload
(C{not-acceptable} with C{<payload-too-big/>}, section 7.1.3.5);
C{max_pep_bytes} bytes of an account's stored items together (checked
by the store as it publishes: C{resource-constraint} of type C{wait},
RFC 6120 section 8.3.3.18, as for private XML storage and the personal
quota of XEP-0363, XEP-0060 having no condition for a quota).
"""

from __future__ import annotations

import datetime
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python import failure
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish
from wokkel.subprotocols import XMPPHandler
from zope.interface import Interface, implementer

from xmppcert import _log
from xmppcert.im.offline import NS_DELAY, formatStamp
from xmppcert.im.pep import protocol
from xmppcert.im.pep.nodeconfig import (
    ACCESS_OPEN,
    ACCESS_PRESENCE,
    ACCESS_ROSTER,
    ACCESS_WHITELIST,
    NS_PUBSUB_EVENT,
    SEND_ON_SUB,
    SEND_ON_SUB_AND_PRESENCE,
    NodeConfig,
    configForNewNode,
    configFromValues,
    nodeIdRequired,
    parsePreconditions,
    pubsubError,
)
from xmppcert.im.pep.protocol import itemElement
from xmppcert.im.roster import IRosterChangeListener, hasFrom, hasTo, isVisible
from xmppcert.jids import parseJID
from xmppcert.routing import (
    INBOUND_BARE,
    IQS,
    PRESENCE_BROADCAST,
    SESSION_ENDED,
    Broadcast,
    Ended,
    Inbound,
)
from xmppcert.sessions import Session, SessionManager
from xmppcert.store.interfaces import (
    MAX_PEP_ITEM_ID,
    MAX_PEP_NODE_NAME,
    STORE_FAILURES,
    NoSuchAccount,
    NoSuchPEPNode,
    PEPItem,
    PEPNode,
    PEPNodeExists,
    PEPNodeLimitReached,
    PEPStorageFull,
    RosterItem,
    pepItemBytes,
)

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext

log = Logger(observer=_log.observer, namespace="xmppcert.im.pep")

_T = TypeVar("_T")

NS_CLIENT = "jabber:client"

#: On L{INBOUND_BARE}: above the session registry's default (0), which
#: would answer C{service-unavailable}, and below blocking (100), so a
#: blocked requester gets blocking's answer.
PEP_PRIORITY = 20

#: The nodes without persistent items whose last item is kept in memory.
MAX_TRANSIENT_ITEMS = 10000

#: The bytes (L{pepItemBytes}) those last items may take together.
MAX_TRANSIENT_BYTES = 64 * 1024 * 1024

#: The bytes the last items of one account's nodes may take.
MAX_TRANSIENT_ACCOUNT_BYTES = 1024 * 1024

#: Defaults of the C{[im]} settings the service reads.
MAX_PEP_NODES = 256
MAX_PEP_ITEMS = 256
MAX_PEP_ITEM_BYTES = 128 * 1024
MAX_PEP_BYTES = 8 * 1024 * 1024

#: The text of the stanza error a request gets when the store failed.
STORE_UNAVAILABLE = "The personal eventing store is not available; try again later"

#: Seconds between two log lines about store failures.
STORE_FAILURE_LOG_INTERVAL = 60.0


class ICapabilities(Interface):
    """
    What the service needs of entity capabilities (XEP-0115) of local
    sessions (provided by L{xmppcert.im.caps.CapsService}).
    """

    def featuresOf(fullJID):  # type: ignore[no-untyped-def]
        """
        @return: the session's features (a C{frozenset} of strings; a
            provider may keep only those it needs, the C{+notify} ones),
            or C{None} when they are not known.
        """

    def notifyNodes(fullJID):  # type: ignore[no-untyped-def]
        """
        @return: the nodes C{N} for which the session advertises
            C{N+notify} (a C{frozenset}; empty when unknown).
        """

    def onFeatures(callback):  # type: ignore[no-untyped-def]
        """
        Call C{callback(session, features)} whenever a session's features
        become known or change.
        """

    def removeOnFeatures(callback):  # type: ignore[no-untyped-def]
        """
        Stop calling C{callback}.
        """


def _forbidden(text: str) -> error.StanzaError:
    return error.StanzaError("forbidden", type="auth", text=text)


def _noSuchNode() -> error.StanzaError:
    # XEP-0060 sections 6.5.9.11, 7.2.3.2, 8.2.3.5, 8.4.3.2, 8.5.3.4.
    return error.StanzaError("item-not-found", type="cancel", text="No such node")


def storageFull(limit: int) -> error.StanzaError:
    """
    The error for a publish that would take an account's items over
    C{max_pep_bytes}: C{resource-constraint} of type C{wait} (RFC 6120
    section 8.3.3.18). XEP-0060 has no condition for a quota (its
    C{<payload-too-big/>} is about one item); this is the condition of
    private XML storage's limit, and of XEP-0363's personal quota.
    """
    return error.StanzaError(
        "resource-constraint",
        type="wait",
        text=f"The personal eventing items of an account may take at most {limit} bytes; retract or purge some first",
    )


def accessDenial(config: NodeConfig, item: RosterItem | None) -> error.StanzaError | None:
    """
    Whether an entity that is not the owner may retrieve a node's items
    and be notified (XEP-0060 section 6.5.1, XEP-0163 section 4).

    @param item: the owner's roster item for the entity, C{None} for none.
    @return: C{None} when it may, else the error of XEP-0060 section 6.5.9:
        C{not-authorized} with C{<presence-subscription-required/>}
        (C{presence}, and C{roster} for a contact in the group without
        the subscription) or C{<not-in-roster-group/>} (C{roster}), or
        C{not-allowed} with C{<closed-node/>} (C{whitelist}).
    """
    model = config.accessModel
    if model == ACCESS_OPEN:
        return None
    if model == ACCESS_PRESENCE:
        if hasFrom(item):
            return None
        return pubsubError(
            "not-authorized",
            "presence-subscription-required",
            text="Only contacts subscribed to the owner's presence may see this node",
        )
    if model == ACCESS_ROSTER:
        if item is None or not isVisible(item) or not (set(item.groups) & config.rosterGroups):
            return pubsubError("not-authorized", "not-in-roster-group", text="Only some roster groups may see this node")
        if not hasFrom(item):
            return pubsubError(
                "not-authorized",
                "presence-subscription-required",
                text="Only contacts subscribed to the owner's presence may see this node",
            )
        return None
    return pubsubError("not-allowed", "closed-node", text="Only the owner may see this node")


def _checkNode(node: str | None) -> str:
    if not node:
        raise nodeIdRequired()
    if len(node) > MAX_PEP_NODE_NAME:
        raise error.StanzaError(
            "not-acceptable", text=f"A node identifier may have at most {MAX_PEP_NODE_NAME} characters"
        )
    return node


def _fits(node: str) -> bool:
    return 0 < len(node) <= MAX_PEP_NODE_NAME


class TransientItems:
    """
    The last items of the nodes without persistent items, in memory: at
    most C{maxItems} of them and C{maxBytes} (L{pepItemBytes}) in all,
    the least recently published forgotten first; those of one account at
    most C{accountBytes}, that account's least recently published
    forgotten first. An account can thus hold no more than its share, and
    others' items are dropped for it only once the whole is full.
    """

    def __init__(
        self,
        maxItems: int = MAX_TRANSIENT_ITEMS,
        maxBytes: int = MAX_TRANSIENT_BYTES,
        accountBytes: int = MAX_TRANSIENT_ACCOUNT_BYTES,
    ) -> None:
        self.maxItems = maxItems
        self.maxBytes = maxBytes
        self.accountBytes = accountBytes
        self.totalBytes = 0
        # (account, node) to (item, its bytes), least recently kept first.
        self._items: OrderedDict[tuple[str, str], tuple[PEPItem, int]] = OrderedDict()
        # Account to its nodes in the same order, and their bytes.
        self._nodes: dict[str, OrderedDict[str, None]] = {}
        self._bytes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, account: str, node: str) -> PEPItem | None:
        found = self._items.get((account, node))
        return None if found is None else found[0]

    def bytesOf(self, account: str) -> int:
        """
        The bytes the last items of C{account}'s nodes take.
        """
        return self._bytes.get(account, 0)

    def pop(self, account: str, node: str) -> PEPItem | None:
        """
        Forget the last item of a node.

        @return: it, or C{None} when there was none.
        """
        found = self._items.pop((account, node), None)
        if found is None:
            return None
        item, size = found
        self.totalBytes -= size
        nodes = self._nodes[account]
        del nodes[node]
        if nodes:
            self._bytes[account] -= size
        else:
            del self._nodes[account]
            del self._bytes[account]
        return item

    def keep(self, account: str, node: str, item: PEPItem) -> bool:
        """
        Make C{item} the last item of a node, forgetting older ones as
        the bounds say.

        @return: whether it is kept: an item larger than an account's share
            (or the whole) is not, and the node then has no last item.
        """
        self.pop(account, node)
        size = pepItemBytes(item)
        if size > self.accountBytes or size > self.maxBytes or self.maxItems < 1:
            return False
        while self.bytesOf(account) + size > self.accountBytes:
            self.pop(account, next(iter(self._nodes[account])))
        while len(self._items) >= self.maxItems or self.totalBytes + size > self.maxBytes:
            oldest, _ = next(iter(self._items.items()))
            self.pop(*oldest)
        self._items[(account, node)] = (item, size)
        self._nodes.setdefault(account, OrderedDict())[node] = None
        self._bytes[account] = self.bytesOf(account) + size
        self.totalBytes += size
        return True


@implementer(IRosterChangeListener)
class PEPService:
    """
    The personal eventing services of every account.

    @ivar sessions: the session registry whose hooks it joins.
    @ivar store: provides L{xmppcert.store.interfaces.IPEPStore}.
    @ivar roster: the L{xmppcert.im.roster.RosterService} (the service
        joins its listeners).
    @ivar caps: provides L{ICapabilities}.
    @ivar config: returns the live C{[im]} settings (C{max_pep_nodes},
        C{max_pep_items}, C{max_pep_item_bytes}, C{max_pep_bytes}).
    """

    def __init__(
        self,
        sessions: SessionManager,
        store: Any,
        roster: Any,
        caps: Any,
        clock: IReactorTime,
        config: Callable[[], Any],
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.roster = roster
        self.caps = caps
        self.clock = clock
        self.config = config
        # The last items of the nodes without persistent items.
        self._transient = TransientItems()
        # Session to the nodes it asked notifications for when it was last
        # sent last items (XEP-0163 section 4.3.4).
        self._interest: dict[Session, frozenset[str]] = {}
        self._storeFailureLog = _log.RateLimitedLog(log, LogLevel.error, clock, STORE_FAILURE_LOG_INTERVAL)

    # --- wiring -------------------------------------------------------------

    def install(self) -> None:
        """
        Join local delivery: answer requests for other accounts
        (L{INBOUND_BARE}, L{PEP_PRIORITY}); send last items on initial
        presence (L{PRESENCE_BROADCAST}), when capabilities become known
        (L{ICapabilities.onFeatures}) and to new subscribers (the roster's
        listeners); forget a session's state when it ends
        (L{SESSION_ENDED}).
        """
        hooks = self.sessions.hooks
        hooks.add(INBOUND_BARE, self.answerForeignRequest, PEP_PRIORITY, names=IQS)
        hooks.add(PRESENCE_BROADCAST, self.presenceBroadcast)
        hooks.add(SESSION_ENDED, self.sessionEnded)
        self.caps.onFeatures(self.featuresChanged)
        self.roster.addListener(self)

    def uninstall(self) -> None:
        hooks = self.sessions.hooks
        hooks.remove(INBOUND_BARE, self.answerForeignRequest)
        hooks.remove(PRESENCE_BROADCAST, self.presenceBroadcast)
        hooks.remove(SESSION_ENDED, self.sessionEnded)
        self.caps.removeOnFeatures(self.featuresChanged)
        self.roster.removeListener(self)

    def handlersFor(self, context: StreamContext) -> list[XMPPHandler]:
        """
        A handler factory for L{xmppcert.c2s.C2SServer}: the stream's
        L{protocol.PEPHandler}, which answers the user's requests to its
        own service and advertises it in disco.
        """
        return [protocol.PEPHandler(self, context.session)]

    # --- limits ---------------------------------------------------------------

    def _limit(self, name: str, default: int) -> int:
        return int(getattr(self.config(), name, default))

    def maxNodes(self) -> int:
        return self._limit("max_pep_nodes", MAX_PEP_NODES)

    def maxItems(self) -> int:
        return self._limit("max_pep_items", MAX_PEP_ITEMS)

    def maxItemBytes(self) -> int:
        return self._limit("max_pep_item_bytes", MAX_PEP_ITEM_BYTES)

    def maxBytes(self) -> int:
        return self._limit("max_pep_bytes", MAX_PEP_BYTES)

    # --- the store ------------------------------------------------------------

    async def _guarded(self, verb: str, owner: str, work: Awaitable[_T]) -> _T:
        """
        Run a store call; its answers become their stanza errors, a store
        failure C{internal-server-error} of type C{wait} with a
        rate-limited log line.
        """
        try:
            return await work
        except NoSuchPEPNode:
            raise _noSuchNode() from None
        except PEPNodeExists:
            raise error.StanzaError("conflict", type="cancel", text="The node exists already") from None
        except PEPNodeLimitReached:
            raise pubsubError(
                "not-allowed", "max-nodes-exceeded", text=f"An account may have at most {self.maxNodes()} nodes"
            ) from None
        except PEPStorageFull:
            raise storageFull(self.maxBytes()) from None
        except NoSuchAccount:
            # Deleted while logged in; its sessions are being closed.
            raise _forbidden("The account does not exist") from None
        except ValueError as e:
            # The store's own checks of what it keeps (identifiers, sizes)
            # caught what the service's did not.
            raise error.StanzaError("not-acceptable", text=str(e)) from None
        except STORE_FAILURES as e:
            self._storeFailed(verb, owner, e)
            raise error.StanzaError("internal-server-error", type="wait", text=STORE_UNAVAILABLE) from None

    def _storeFailed(self, verb: str, owner: str, e: BaseException) -> None:
        self._storeFailureLog.emit(
            "The personal eventing store failed; could not {verb} for {account}: {error}",
            verb=verb,
            account=owner,
            error=f"{type(e).__name__}: {e}",
        )

    async def _node(self, owner: str, node: str) -> NodeConfig:
        """
        @raise error.StanzaError: C{item-not-found} when there is no such
            node; store failures.
        """
        if not _fits(node):
            raise _noSuchNode()
        found: PEPNode | None = await self._guarded("read a node", owner, self.store.getPEPNode(owner, node))
        if found is None:
            raise _noSuchNode()
        return NodeConfig.fromStored(found.config)

    def _checkOwner(self, owner: jid.JID, requester: jid.JID, what: str) -> None:
        if requester.userhost() != owner.userhost():
            raise _forbidden(f"Only the account itself may {what}")

    async def _rosterItem(self, owner: jid.JID, requester: jid.JID) -> RosterItem | None:
        item: RosterItem | None = await self._guarded(
            "read the roster", owner.userhost(), self.roster.item(owner.userhostJID(), requester.userhost())
        )
        return item

    async def _checkAccess(self, owner: jid.JID, config: NodeConfig, requester: jid.JID) -> None:
        """
        @raise error.StanzaError: the denial of L{accessDenial} for a
            contact subscribed to the owner's presence; C{item-not-found}
            for anyone else, as for a node that does not exist (and for an
            account that does not exist): it learns nothing of the
            account.
        """
        if requester.userhost() == owner.userhost():
            return
        item = None if config.accessModel == ACCESS_OPEN else await self._rosterItem(owner, requester)
        denial = accessDenial(config, item)
        if denial is None:
            return
        if not hasFrom(item):
            raise _noSuchNode()
        raise denial

    # --- the programmatic API -------------------------------------------------

    def defaultConfig(self) -> NodeConfig:
        """
        The configuration a new node gets (XEP-0060 section 8.3).
        """
        return NodeConfig.defaults()

    def publish(
        self,
        owner: jid.JID,
        node: str,
        itemId: str | None,
        payload: domish.Element | None,
        publisher: jid.JID,
        options: Mapping[str, str | Sequence[str]] | None = None,
    ) -> defer.Deferred[str]:
        """
        Publish an item (XEP-0060 section 7.1), creating the node when it
        does not exist (XEP-0163 section 3, "auto-create"), and notify.

        @param owner: the account (its bare JID is the service).
        @param itemId: C{None} (or empty) for one the service makes up.
        @param payload: the item's payload; C{None} for none, refused with
            C{bad-request} and C{<payload-required/>} unless the node
            neither persists nor delivers payloads (section 7.1.3.7).
        @param publisher: who publishes: the owner, or C{forbidden}.
        @param options: publish-options (section 7.1.5): field variable to
            value(s); for an existing node, preconditions (C{conflict} with
            C{<precondition-not-met/>} when one is not met), for a new one,
            its configuration. Malformed: C{bad-request} with
            C{<invalid-options/>}.
        @return: Deferred firing with the item id.
        @raise error.StanzaError: (in the Deferred) as XEP-0060 section
            7.1.3 says; store failures.
        """
        return defer.ensureDeferred(self._publish(owner, node, itemId, payload, publisher, options))

    async def _publish(
        self,
        owner: jid.JID,
        node: str,
        itemId: str | None,
        payload: domish.Element | None,
        publisher: jid.JID,
        options: Mapping[str, str | Sequence[str]] | None,
    ) -> str:
        self._checkOwner(owner, publisher, "publish to its personal eventing nodes")
        _checkNode(node)
        if itemId and len(itemId) > MAX_PEP_ITEM_ID:
            raise error.StanzaError("not-acceptable", text=f"An item id may have at most {MAX_PEP_ITEM_ID} characters")
        preconditions = parsePreconditions(options) if options is not None else {}
        xml = payload.toXml() if payload is not None else ""
        limit = self.maxItemBytes()
        if len(xml.encode("utf-8")) > limit:
            raise pubsubError("not-acceptable", "payload-too-big", text=f"An item may have at most {limit} bytes")
        try:
            # Only what reads back is stored: an unreadable stored item is
            # logged as damage at every read, which a client must not cause.
            protocol.parseStoredPayload(xml)
        except ValueError:
            raise pubsubError("bad-request", "invalid-payload", text="The item's payload cannot be stored") from None
        account = owner.userhost()
        found: PEPNode | None = await self._guarded("read a node", account, self.store.getPEPNode(account, node))
        createConfig: dict[str, str] | None = None
        if found is not None:
            config = NodeConfig.fromStored(found.config)
            mismatch = config.mismatch(preconditions)
            if mismatch is not None:
                raise pubsubError(
                    "conflict", "precondition-not-met", text=f"The node's {mismatch} is not as asked"
                )
        else:
            config = configForNewNode(preconditions, self.maxItems())
            createConfig = config.asStored()
        if payload is None and (config.persistItems or config.deliverPayloads):
            raise pubsubError("bad-request", "payload-required", text="The item needs a payload")
        item = PEPItem(
            id=itemId or secrets.token_hex(10),
            payload=xml,
            publisher=publisher.full(),
            published=datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.UTC),
        )
        if config.persistItems:
            await self._guarded(
                "publish",
                account,
                self.store.publishPEPItem(
                    account,
                    node,
                    item,
                    maxItems=config.maxItems(self.maxItems()),
                    createConfig=createConfig,
                    maxNodes=self.maxNodes(),
                    maxBytes=self.maxBytes(),
                ),
            )
            self._transient.pop(account, node)
        else:
            if createConfig is not None:
                try:
                    await self._guarded(
                        "create a node", account, self.store.createPEPNode(account, node, createConfig, self.maxNodes())
                    )
                except error.StanzaError as e:
                    if e.condition != "conflict":
                        raise
            self._transient.keep(account, node, item)
        if config.deliverNotifications:
            event = domish.Element((NS_PUBSUB_EVENT, "items"))
            event["node"] = node
            event.addChild(itemElement(item, NS_PUBSUB_EVENT, config.deliverPayloads))
            await self._notify(owner.userhostJID(), node, config, event)
        return item.id

    def items(
        self,
        owner: jid.JID,
        node: str,
        requester: jid.JID,
        itemIds: Sequence[str] | None = None,
        maxItems: int = 0,
    ) -> defer.Deferred[list[PEPItem]]:
        """
        Retrieve items (XEP-0060 section 6.5).

        @param itemIds: only these (those that exist), C{None} for all.
        @param maxItems: at most this many, the newest (section 6.5.7); 0
            for all. More than C{max_pep_items} means that many.
        @return: Deferred firing with the items, oldest first. A node
            without persistent items has its last item, if the server
            still holds it (section 6.5.5).
        @raise error.StanzaError: (in the Deferred) C{item-not-found} for
            no such node; the errors of L{accessDenial}; store failures.
        """
        return defer.ensureDeferred(self._items(owner, node, requester, itemIds, maxItems))

    async def _items(
        self, owner: jid.JID, node: str, requester: jid.JID, itemIds: Sequence[str] | None, maxItems: int
    ) -> list[PEPItem]:
        account = owner.userhost()
        config = await self._node(account, node)
        await self._checkAccess(owner, config, requester)
        wanted = None if itemIds is None else [i for i in dict.fromkeys(itemIds) if 0 < len(i) <= MAX_PEP_ITEM_ID]
        if wanted is not None and not wanted:
            return []
        if not config.persistItems:
            last = self._transient.get(account, node)
            if last is None or (wanted is not None and last.id not in wanted):
                return []
            return [last]
        if maxItems > 0:
            # A node keeps at most that many (unless the limit was lowered
            # since): no more can be asked of the store.
            maxItems = min(maxItems, self.maxItems())
        found: list[PEPItem] = await self._guarded(
            "read items", account, self.store.getPEPItems(account, node, wanted, maxItems)
        )
        return list(reversed(found))

    def retract(
        self, owner: jid.JID, node: str, itemId: str, requester: jid.JID, notify: bool = True
    ) -> defer.Deferred[None]:
        """
        Delete an item (XEP-0060 section 7.2).

        @param notify: notify of the retraction (section 7.2.2.1); a node
            whose C{pubsub#notify_retract} is true notifies either way.
        @raise error.StanzaError: (in the Deferred) C{forbidden} for
            anyone but the owner; C{item-not-found} for no such node or
            item; store failures.
        """
        return defer.ensureDeferred(self._retract(owner, node, itemId, requester, notify))

    async def _retract(self, owner: jid.JID, node: str, itemId: str, requester: jid.JID, notify: bool) -> None:
        self._checkOwner(owner, requester, "retract its items")
        account = owner.userhost()
        config = await self._node(account, node)
        if not 0 < len(itemId) <= MAX_PEP_ITEM_ID:
            raise error.StanzaError("item-not-found", type="cancel", text="No such item")
        if config.persistItems:
            removed = await self._guarded("retract", account, self.store.retractPEPItem(account, node, itemId))
        else:
            last = self._transient.get(account, node)
            removed = last is not None and last.id == itemId
        if not removed:
            raise error.StanzaError("item-not-found", type="cancel", text="No such item")
        last = self._transient.get(account, node)
        if last is not None and last.id == itemId:
            self._transient.pop(account, node)
        if (notify or config.notifyRetract) and config.deliverNotifications:
            event = domish.Element((NS_PUBSUB_EVENT, "items"))
            event["node"] = node
            event.addElement("retract")["id"] = itemId
            await self._notify(owner.userhostJID(), node, config, event)

    def create(
        self,
        owner: jid.JID,
        node: str,
        requester: jid.JID,
        options: Mapping[str, str | Sequence[str]] | None = None,
    ) -> defer.Deferred[None]:
        """
        Create a node (XEP-0060 section 8.1), with the default
        configuration changed by C{options} (section 8.1.3).

        @raise error.StanzaError: (in the Deferred) C{forbidden} for anyone
            but the owner; C{conflict} when it exists; C{not-acceptable}
            for bad options; C{not-allowed} with C{<max-nodes-exceeded/>}
            over the limit; store failures.
        """
        return defer.ensureDeferred(self._create(owner, node, requester, options or {}))

    async def _create(
        self, owner: jid.JID, node: str, requester: jid.JID, options: Mapping[str, str | Sequence[str]]
    ) -> None:
        self._checkOwner(owner, requester, "create nodes")
        _checkNode(node)
        config = configFromValues(NodeConfig.defaults(), options, self.maxItems())
        account = owner.userhost()
        await self._guarded(
            "create a node", account, self.store.createPEPNode(account, node, config.asStored(), self.maxNodes())
        )
        # A node created anew has no last item, whatever an earlier node
        # of that name (of an account since removed) left in memory.
        self._transient.pop(account, node)

    def nodeConfig(self, owner: jid.JID, node: str) -> defer.Deferred[NodeConfig | None]:
        """
        A node's configuration, whoever asks (callers check).

        @return: Deferred firing with the L{NodeConfig}, C{None} for no
            such node.
        @raise error.StanzaError: (in the Deferred) store failures.
        """

        async def get() -> NodeConfig | None:
            account = owner.userhost()
            if not _fits(node):
                return None
            found: PEPNode | None = await self._guarded("read a node", account, self.store.getPEPNode(account, node))
            return None if found is None else NodeConfig.fromStored(found.config)

        return defer.ensureDeferred(get())

    def configuration(self, owner: jid.JID, node: str, requester: jid.JID) -> defer.Deferred[NodeConfig]:
        """
        A node's configuration for its owner (XEP-0060 section 8.2.1).

        @raise error.StanzaError: (in the Deferred) C{forbidden} for anyone
            but the owner; C{item-not-found}; store failures.
        """

        async def get() -> NodeConfig:
            self._checkOwner(owner, requester, "read the configuration of its nodes")
            return await self._node(owner.userhost(), node)

        return defer.ensureDeferred(get())

    def configure(
        self, owner: jid.JID, node: str, requester: jid.JID, changes: Mapping[str, str | Sequence[str]]
    ) -> defer.Deferred[NodeConfig]:
        """
        Change a node's configuration (XEP-0060 section 8.2.4): the fields
        in C{changes} get their new values, the others keep theirs.
        Lowering C{pubsub#max_items} drops the oldest items; turning
        C{pubsub#persist_items} off drops the stored items (the newest is
        held in memory as the last item); turning it on stores the last
        item held in memory, unless the account's items would then take
        more than C{max_pep_bytes} (it is then dropped).

        @param changes: field variable to value(s).
        @return: Deferred firing with the new configuration.
        @raise error.StanzaError: (in the Deferred) C{forbidden} for anyone
            but the owner; C{item-not-found}; C{not-acceptable} for bad
            values (section 8.2.5.2); store failures.
        """
        return defer.ensureDeferred(self._configure(owner, node, requester, changes))

    async def _configure(
        self, owner: jid.JID, node: str, requester: jid.JID, changes: Mapping[str, str | Sequence[str]]
    ) -> NodeConfig:
        self._checkOwner(owner, requester, "configure its nodes")
        account = owner.userhost()
        before = await self._node(account, node)
        after = configFromValues(before, changes, self.maxItems())
        await self._replaceConfig(owner, node, before, after)
        return after

    async def _replaceConfig(self, owner: jid.JID, node: str, before: NodeConfig, after: NodeConfig) -> None:
        """
        Store C{after} as the configuration of a node that had C{before}
        (checked by the caller), and move its items as persistence changes.
        """
        account = owner.userhost()
        limit = self.maxItems()
        if before.persistItems and not after.persistItems:
            newest: list[PEPItem] = await self._guarded(
                "read items", account, self.store.getPEPItems(account, node, None, 1)
            )
            await self._guarded("configure", account, self.store.configurePEPNode(account, node, after.asStored()))
            await self._guarded("purge", account, self.store.purgePEPNode(account, node))
            if newest:
                self._transient.keep(account, node, newest[0])
            return
        await self._guarded(
            "configure",
            account,
            self.store.configurePEPNode(account, node, after.asStored(), after.maxItems(limit) if after.persistItems else 0),
        )
        if after.persistItems and not before.persistItems:
            last = self._transient.pop(account, node)
            if last is not None:
                try:
                    await self._guarded(
                        "publish",
                        account,
                        self.store.publishPEPItem(
                            account, node, last, maxItems=after.maxItems(limit), maxBytes=self.maxBytes()
                        ),
                    )
                except error.StanzaError as e:
                    # The configuration is changed either way; only the
                    # account's limit of bytes (PEPStorageFull) drops the
                    # item quietly.
                    if e.condition != "resource-constraint":
                        raise

    def deleteNode(self, owner: jid.JID, node: str, requester: jid.JID) -> defer.Deferred[None]:
        """
        Delete a node and its items (XEP-0060 section 8.4), and notify of
        it (section 8.4.2) when its C{pubsub#notify_delete} is true.

        @raise error.StanzaError: (in the Deferred) C{forbidden} for anyone
            but the owner; C{item-not-found}; store failures.
        """
        return defer.ensureDeferred(self._deleteNode(owner, node, requester))

    async def _deleteNode(self, owner: jid.JID, node: str, requester: jid.JID) -> None:
        self._checkOwner(owner, requester, "delete its nodes")
        account = owner.userhost()
        config = await self._node(account, node)
        deleted = await self._guarded("delete a node", account, self.store.deletePEPNode(account, node))
        self._transient.pop(account, node)
        if not deleted:
            raise _noSuchNode()
        if config.notifyDelete:
            event = domish.Element((NS_PUBSUB_EVENT, "delete"))
            event["node"] = node
            await self._notify(owner.userhostJID(), node, config, event)

    def purge(self, owner: jid.JID, node: str, requester: jid.JID) -> defer.Deferred[None]:
        """
        Remove every item of a node (XEP-0060 section 8.5) and notify of it
        (section 8.5.2).

        @raise error.StanzaError: (in the Deferred) C{forbidden} for anyone
            but the owner; C{item-not-found}; C{feature-not-implemented}
            with C{<unsupported feature='persistent-items'/>} for a node
            that does not persist items (section 8.5.3.3); store failures.
        """
        return defer.ensureDeferred(self._purge(owner, node, requester))

    async def _purge(self, owner: jid.JID, node: str, requester: jid.JID) -> None:
        self._checkOwner(owner, requester, "purge its nodes")
        account = owner.userhost()
        config = await self._node(account, node)
        if not config.persistItems:
            raise pubsubError(
                "feature-not-implemented",
                "unsupported",
                feature="persistent-items",
                text="The node does not persist items",
            )
        await self._guarded("purge", account, self.store.purgePEPNode(account, node))
        self._transient.pop(account, node)
        if config.deliverNotifications:
            event = domish.Element((NS_PUBSUB_EVENT, "purge"))
            event["node"] = node
            await self._notify(owner.userhostJID(), node, config, event)

    def nodes(self, owner: jid.JID, requester: jid.JID) -> defer.Deferred[list[tuple[PEPNode, NodeConfig]]]:
        """
        The nodes C{requester} may see (XEP-0163 section 6.2: those whose
        items it may retrieve), by identifier.

        @return: Deferred firing with C{(node, config)} pairs.
        @raise error.StanzaError: (in the Deferred) store failures.
        """
        return defer.ensureDeferred(self._nodes(owner, requester))

    async def _nodes(self, owner: jid.JID, requester: jid.JID) -> list[tuple[PEPNode, NodeConfig]]:
        account = owner.userhost()
        found: list[PEPNode] = await self._guarded("list nodes", account, self.store.listPEPNodes(account))
        configured = [(node, NodeConfig.fromStored(node.config)) for node in found]
        if requester.userhost() == account:
            return configured
        item: RosterItem | None = None
        if any(config.accessModel in (ACCESS_PRESENCE, ACCESS_ROSTER) for _, config in configured):
            item = await self._rosterItem(owner, requester)
        return [(node, config) for node, config in configured if accessDenial(config, item) is None]

    def lastItem(self, owner: jid.JID, node: str, config: NodeConfig) -> defer.Deferred[PEPItem | None]:
        """
        The last published item of a node, C{None} for none.

        @raise Exception: (in the Deferred) one of L{STORE_FAILURES}.
        """

        async def get() -> PEPItem | None:
            account = owner.userhost()
            if not config.persistItems:
                return self._transient.get(account, node)
            try:
                found: list[PEPItem] = await self.store.getPEPItems(account, node, None, 1)
            except NoSuchPEPNode:
                return None
            return found[0] if found else None

        return defer.ensureDeferred(get())

    # --- notifications --------------------------------------------------------

    def _wants(self, session: Session, node: str) -> bool:
        return session.available and not session.closed and node in self.caps.notifyNodes(session.jid)

    def _localContact(self, contact: str) -> jid.JID | None:
        try:
            address = parseJID(contact)
        except jid.InvalidFormat:
            return None
        if address.user is None or address.resource is not None or not self.sessions.isLocal(address):
            return None
        return address

    async def recipients(self, owner: jid.JID, node: str, config: NodeConfig) -> list[Session]:
        """
        Who is notified of an event of a node (XEP-0163 section 4.3): the
        owner's available resources with C{node+notify}, and those of the
        local contacts subscribed to the owner's presence that the access
        model lets see it. A store failure reading the roster leaves the
        contacts out (logged).
        """
        found = [session for session in self.sessions.sessionsOf(owner) if self._wants(session, node)]
        if config.accessModel == ACCESS_WHITELIST:
            return found
        try:
            items: list[RosterItem] = await self.roster.items(owner.userhostJID())
        except STORE_FAILURES as e:
            self._storeFailed("read the roster to notify contacts", owner.userhost(), e)
            return found
        for item in items:
            if not hasFrom(item) or accessDenial(config, item) is not None:
                continue
            contact = self._localContact(item.contact)
            if contact is None or contact.userhost() == owner.userhost():
                continue
            found.extend(session for session in self.sessions.sessionsOf(contact) if self._wants(session, node))
        return found

    async def _notify(self, owner: jid.JID, node: str, config: NodeConfig, event: domish.Element) -> None:
        self.send(owner, event, await self.recipients(owner, node, config))

    def send(
        self,
        owner: jid.JID,
        event: domish.Element,
        recipients: Sequence[Session],
        delay: datetime.datetime | None = None,
    ) -> None:
        """
        Send C{<event xmlns='http://jabber.org/protocol/pubsub#event'/>}
        holding C{event} to each of C{recipients}, in a message of type
        C{headline} from the owner's bare JID (XEP-0163 section 4.3.1)
        with an id of its own (XEP-0060 section 7.1.2), through local
        delivery (blocking applies).

        @param delay: for an item published earlier (the last published
            item, XEP-0163 section 4.3.4): when, given as
            C{<delay xmlns='urn:xmpp:delay' stamp=.../>} (XEP-0203).
        """
        if not recipients:
            return
        message = domish.Element((NS_CLIENT, "message"))
        message["from"] = owner.userhost()
        message["type"] = "headline"
        message.addElement((NS_PUBSUB_EVENT, "event")).addChild(event)
        if delay is not None:
            message.addElement((NS_DELAY, "delay"))["stamp"] = formatStamp(delay.timestamp())
        for session in recipients:
            if self.sessions.sessionFor(session.jid) is not session:
                # Gone meanwhile: to its full JID, the message would reach
                # the account's other resources (RFC 6121 section
                # 8.5.3.2.1), which may not want it.
                continue
            # A shallow copy: the event is shared, 'to' and 'id' differ.
            copy = domish.Element((NS_CLIENT, "message"), NS_CLIENT, dict(message.attributes))
            copy.children = message.children
            copy["to"] = session.jid.full()
            copy["id"] = secrets.token_hex(8)
            self.sessions.deliver(copy, session.jid).addErrback(self._deliveryFailed)

    def _deliveryFailed(self, f: failure.Failure) -> None:
        log.failure("Delivering a personal eventing notification failed", f)

    # --- the last published item ----------------------------------------------

    def featuresChanged(self, session: Session, features: frozenset[str]) -> defer.Deferred[None]:
        """
        L{ICapabilities.onFeatures}: send the session the last items of the
        nodes it newly asks notifications for.
        """
        return defer.ensureDeferred(self.sendLastItems(session))

    def presenceBroadcast(self, event: Broadcast) -> None:
        """
        L{PRESENCE_BROADCAST}: initial presence (XEP-0163 section 4.3.3
        point 2) brings the last items (sent in the background: the
        client's next stanzas do not wait for the roster to be read);
        unavailable presence forgets what the session was sent, so that
        the next initial presence brings them again.
        """
        if event.unavailable:
            self._interest.pop(event.session, None)
        elif event.initial:
            defer.ensureDeferred(self.sendLastItems(event.session)).addErrback(self._lastItemsFailed)

    def _lastItemsFailed(self, f: failure.Failure) -> None:
        log.failure("Sending the last personal eventing items failed", f)

    def sessionEnded(self, event: Ended) -> None:
        """
        L{SESSION_ENDED}: forget the session.
        """
        self._interest.pop(event.session, None)

    async def sendLastItems(self, session: Session) -> None:
        """
        Send C{session} the last item of each node it newly asks
        notifications for (see the module docstring); store failures are
        logged.
        """
        if not session.available or session.closed or self.sessions.sessionFor(session.jid) is not session:
            return
        wanted = frozenset(self.caps.notifyNodes(session.jid))
        new = wanted - self._interest.get(session, frozenset())
        self._interest[session] = wanted
        if not new:
            return
        user = session.jid.userhostJID()
        try:
            await self._sendLastItemsOf(user, session, new, None)
            items: list[RosterItem] = await self.roster.items(user)
            for item in items:
                if not hasTo(item):
                    continue
                contact = self._localContact(item.contact)
                if contact is None or contact.userhost() == user.userhost():
                    continue
                await self._sendLastItemsOf(contact, session, new, user)
        except STORE_FAILURES as e:
            self._storeFailed("send the last items", user.userhost(), e)

    async def _sendLastItemsOf(
        self,
        owner: jid.JID,
        session: Session,
        nodes: frozenset[str],
        user: jid.JID | None,
        onSubscription: bool = False,
    ) -> None:
        """
        Send C{session} the last items of C{owner}'s nodes among C{nodes},
        each with a delay stamped with its publication.

        @param user: the session's account, when it is not C{owner}: its
            access is checked against C{owner}'s roster.
        @param onSubscription: sent because C{user} just subscribed to
            C{owner}'s presence: the nodes saying C{on_sub} count too.
        """
        when = (SEND_ON_SUB, SEND_ON_SUB_AND_PRESENCE) if onSubscription else (SEND_ON_SUB_AND_PRESENCE,)
        found: list[PEPNode] = await self.store.listPEPNodes(owner.userhost())
        relevant = [(node, NodeConfig.fromStored(node.config)) for node in found if node.node in nodes]
        relevant = [
            (node, config)
            for node, config in relevant
            if config.sendLastPublishedItem in when and config.deliverNotifications
        ]
        if not relevant:
            return
        item: RosterItem | None = None
        if user is not None:
            item = await self.roster.item(owner, user.userhost())
            if not hasFrom(item):
                # Auto-subscription needs the presence subscription
                # (XEP-0060 section 9.1.2), whatever the access model.
                return
        for node, config in relevant:
            if user is not None and accessDenial(config, item) is not None:
                continue
            last = await self.lastItem(owner, node.node, config)
            if last is None:
                continue
            event = domish.Element((NS_PUBSUB_EVENT, "items"))
            event["node"] = node.node
            event.addChild(itemElement(last, NS_PUBSUB_EVENT, config.deliverPayloads))
            self.send(owner, event, [session], delay=last.published)

    def rosterItemChanged(self, account: jid.JID, before: RosterItem | None, after: RosterItem | None) -> None:
        """
        L{IRosterChangeListener}: a local contact that becomes subscribed
        to C{account}'s presence (the account's item for it becomes C{from}
        or C{both}) is a new subscriber of its nodes (XEP-0060 section
        9.1.2, auto-subscribe): it gets their last items (XEP-0163 section
        4.3.4), in the background.
        """
        if hasFrom(before) or not hasFrom(after):
            return
        assert after is not None
        contact = self._localContact(after.contact)
        if contact is None or contact.userhost() == account.userhost():
            return
        d = defer.ensureDeferred(self.sendLastItemsToSubscriber(account.userhostJID(), contact))
        d.addErrback(self._lastItemsFailed)

    async def sendLastItemsToSubscriber(self, owner: jid.JID, subscriber: jid.JID) -> None:
        """
        Send each available session of C{subscriber}, a new subscriber to
        C{owner}'s presence, the last item of each of C{owner}'s nodes that
        the session asks notifications for and may see, unless the node's
        C{pubsub#send_last_published_item} is C{never}. Store failures are
        logged.
        """
        for session in self.sessions.sessionsOf(subscriber):
            if not session.available or session.closed or self.sessions.sessionFor(session.jid) is not session:
                continue
            wanted = frozenset(self.caps.notifyNodes(session.jid))
            if not wanted:
                continue
            try:
                await self._sendLastItemsOf(owner, session, wanted, subscriber.userhostJID(), onSubscription=True)
            except STORE_FAILURES as e:
                self._storeFailed("send the last items to a new subscriber", owner.userhost(), e)
                return

    # --- requests for other accounts ------------------------------------------

    async def answerForeignRequest(self, event: Inbound) -> bool:
        """
        L{INBOUND_BARE}: a pubsub, disco#info or disco#items request from a
        local session to another account's bare JID is answered on that
        account's behalf (XEP-0163 section 6.2), so that someone not
        subscribed to the account's presence cannot tell whether it
        exists:

          - from a contact subscribed to its presence (the account's
            roster item for it is C{from} or C{both}; then the account
            exists): everything, as L{protocol.respond} says;
          - from anyone else, whether the account exists or not: the
            disco#info and disco#items of the account itself (no C{node})
            are left to the default answer, C{service-unavailable}, as
            Prosody's C{mod_disco} hides an account from non-subscribers;
            a pubsub request, or disco of a node, is answered as for an
            account that may have nodes: a node is seen only when its
            access model is C{open} (OMEMO bundles), and otherwise is
            C{item-not-found}, as for a node that does not exist (and so
            for any node of an account that does not exist); a change
            (publish, retract, create, configure, delete, purge) is
            C{forbidden} either way.
        """
        stanza = event.stanza
        if stanza.name != "iq" or stanza.getAttribute("type") not in ("get", "set"):
            return False
        kind = protocol.requestKind(stanza)
        if kind is None:
            return False
        sender = event.sender
        if sender is None or sender.jid.userhost() == event.target.userhost():
            return False
        owner = event.target.userhostJID()
        try:
            item: RosterItem | None = await self.roster.item(owner, sender.jid.userhost())
        except STORE_FAILURES as e:
            self._storeFailed("read the roster", owner.userhost(), e)
            sender.send(
                error.StanzaError("internal-server-error", type="wait", text=STORE_UNAVAILABLE).toResponse(stanza)
            )
            return True
        if not hasFrom(item) and kind != "pubsub" and not protocol.discoNode(stanza):
            return False
        sender.send(await protocol.respond(self, owner, sender.jid, stanza, kind))
        return True


__all__ = [
    "MAX_PEP_BYTES",
    "MAX_PEP_ITEMS",
    "MAX_PEP_ITEM_BYTES",
    "MAX_PEP_NODES",
    "MAX_TRANSIENT_ACCOUNT_BYTES",
    "MAX_TRANSIENT_BYTES",
    "MAX_TRANSIENT_ITEMS",
    "PEP_PRIORITY",
    "ICapabilities",
    "PEPService",
    "TransientItems",
    "accessDenial",
    "storageFull",
]
