# -*- test-case-name: tests.test_service -*-
"""
All of instant messaging, installed on one server: rosters and presence
(RFC 6121), offline messages (XEP-0160), carbons (XEP-0280), blocking
(XEP-0191), vCards with the avatar hash (XEP-0054, XEP-0153), private XML
storage (XEP-0049), software version (XEP-0092) and entity time
(XEP-0202), entity capabilities (XEP-0115) and personal eventing
(XEP-0163) with bookmarks seen from private XML storage too (XEP-0402
section 5). L{installIM} is what L{xmppcert.service.makeService} calls; an
embedding application that wants only some of them installs those
services itself, the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime

from xmppcert.c2s.server import HandlerFactory, InformationalFeature
from xmppcert.config import IMConfig
from xmppcert.im.blocking import BlockingService
from xmppcert.im.bookmarks import BookmarksView
from xmppcert.im.caps import CapsService
from xmppcert.im.carbons import CarbonsService
from xmppcert.im.entitytime import timeHandlers
from xmppcert.im.offline import OfflineService
from xmppcert.im.pep import PEPService
from xmppcert.im.presence import PresenceService
from xmppcert.im.private import PrivateService
from xmppcert.im.roster import RosterService, rosterHandlers, streamFeatures
from xmppcert.im.vcard import VCardService
from xmppcert.im.version import versionHandlers
from xmppcert.sessions import SessionManager
from xmppcert.store.interfaces import (
    IBlockingStore,
    IOfflineStore,
    IPEPStore,
    IPrivateStore,
    IRosterStore,
    IVCardStore,
)


@dataclass
class IMServices:
    """
    The installed services, and what the client streams need of them.

    @ivar handlerFactories: per-stream handler factories (roster, carbons,
        blocking, the offline disco feature, software version, entity time,
        vCards, private XML storage).
    @ivar features: stream features announced with bind.
    """

    roster: RosterService
    presence: PresenceService
    offline: OfflineService
    carbons: CarbonsService
    blocking: BlockingService
    vcard: VCardService
    private: PrivateService
    caps: CapsService
    pep: PEPService
    bookmarks: BookmarksView
    handlerFactories: list[HandlerFactory]
    features: list[InformationalFeature]

    def forgetStored(self) -> None:
        """
        Read again from the store, when next needed, what the services keep
        of it for presence (rosters, the block lists of accounts without
        sessions): called at each session check and when an administrator
        removes an account.
        """
        self.roster.forgetRosters()
        self.blocking.forgetOfflineLists()


def installIM(
    sessions: SessionManager, store: Any, clock: IReactorTime, config: Callable[[], IMConfig]
) -> IMServices:
    """
    Install every IM service on C{sessions}.

    @param store: provides L{IRosterStore}, L{IOfflineStore} and
        L{IBlockingStore}.
    @param config: returns the live C{[im]} settings.
    @raise ValueError: the store lacks one of those interfaces.
    """
    for interface in (IRosterStore, IOfflineStore, IBlockingStore, IVCardStore, IPrivateStore, IPEPStore):
        if not interface.providedBy(store):
            raise ValueError(
                f"the store {type(store).__name__} does not provide {interface.__name__}, which the IM"
                " features need"
            )
    roster = RosterService(store, sessions, clock, config)
    roster.install()
    # Every presence a session sends is counted once, where the stream hands
    # it over (SessionManager.presenceGate), own resources included.
    presence = PresenceService(sessions, roster, clock, config, limitBroadcasts=False)
    presence.install()
    sessions.presenceGate = presence.allowPresence
    blocking = BlockingService(sessions, store, config, clock)
    blocking.install()
    # Messages stored before a block are not delivered after it (XEP-0191
    # section 3.3).
    offline = OfflineService(sessions, store, clock, config, filter=blocking)
    offline.install()
    carbons = CarbonsService(sessions)
    carbons.install()
    vcard = VCardService(sessions, store, config, clock)
    vcard.install()
    private = PrivateService(sessions, store, config, clock)
    private.install()
    # What each client wants notifications of (XEP-0115, for PEP).
    caps = CapsService(sessions, clock, config)
    caps.install()
    pep = PEPService(sessions, store, roster, caps, clock, config)
    pep.install()
    # XEP-0402 section 5: bookmarks in private XML storage are the PEP ones.
    bookmarks = BookmarksView(pep, private)
    bookmarks.install()
    return IMServices(
        roster=roster,
        presence=presence,
        offline=offline,
        carbons=carbons,
        blocking=blocking,
        vcard=vcard,
        private=private,
        caps=caps,
        pep=pep,
        bookmarks=bookmarks,
        handlerFactories=[
            rosterHandlers(roster), carbons.handlersFor, blocking.handlersFor, offline.handlersFor,
            versionHandlers, timeHandlers(clock), vcard.handlersFor, private.handlersFor,
            caps.handlersFor, pep.handlersFor, bookmarks.handlersFor,
        ],
        features=streamFeatures(),
    )


__all__ = ["IMServices", "installIM"]
