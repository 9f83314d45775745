# -*- test-case-name: tests.test_im_caps -*-
"""
Entity capabilities (XEP-0115, v1.6) of the local client sessions, learnt
on the server side: what personal eventing (XEP-0163 section 4.3.1) needs
to know which resources asked for notifications (C{N+notify} features).

A client annotates its available presence with C{<c xmlns=NS_CAPS
node=... ver=... hash=.../>}, where C{ver} is a hash of its service
discovery identities, features and extended forms (section 5.1,
L{verificationString}). L{CapsService} watches the presence each session
broadcasts (L{PRESENCE_BROADCAST}):

  - a C{(hash, ver)} verified before is looked up in a bounded LRU cache
    (L{CapsCache}), and the session's features are known at once;
  - otherwise the server asks that session for C{disco#info} on the node
    C{node#ver} (section 6.2). Several sessions advertising the same
    unknown C{ver} wait for one query, to the first of them; once an
    answer has failed (an error, no usable features, a hash that does not
    match, or no answer in C{queryTimeout} seconds), every session
    waiting, and every one advertising that C{ver} later while the lookup
    lasts, is asked at once. So every session advertising an unknown
    C{ver} is asked at least once, and sessions that do not answer (of
    any account) delay the others by one timeout at most: they cannot
    keep a session from ever being asked;
  - a session whose features stay unknown (its answer failed) and that
    repeats the C{ver} in a later presence is asked again, at most once
    every L{REQUERY_INTERVAL} seconds;
  - an answer whose hash matches C{ver} is cached for every session
    (section 5.4, step 3.8); one that does not (or whose hash the server
    does not support, step 2) gives its features to that session only,
    and is never cached (step 3.9): another client cannot be poisoned by
    it (section 9.3). Only the answer of a session that was asked, with
    its query's id, counts.

Only the features the server uses are kept, in the cache and for each
session: the C{+notify} ones (L{keptFeatures}), each at most
L{MAX_FEATURE_LENGTH} characters, together at most L{MAX_KEPT_BYTES}.

Beyond the XEP, as hardening: an answer in which an identity, feature or
form value contains C{<} (the separator of the verification string: the
"trivial preimage attack" that section 9.3 refers to) is never verified,
and an answer with more than L{MAX_FEATURES} features is not used at all
(the session gets no features, as for an error).
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python import failure
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish
from wokkel.subprotocols import XMPPHandler

from xmppcert import _log
from xmppcert.routing import PRESENCE_BROADCAST, SESSION_ENDED, Broadcast, Ended
from xmppcert.sessions import Session, SessionManager
from xmppcert.store.interfaces import MAX_PEP_NODE_NAME

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext

log = Logger(observer=_log.observer, namespace="xmppcert.im.caps")

NS_CAPS = "http://jabber.org/protocol/caps"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA_FORMS = "jabber:x:data"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_CLIENT = "jabber:client"

#: The hash functions a C{ver} can be verified with, by their names in the
#: IANA Hash Function Textual Names registry (XEP-0115 section 9.1: SHA-1
#: is mandatory to implement; XEP-0300 names the others).
HASH_FUNCTIONS: dict[str, Callable[[bytes], Any]] = {
    "sha-1": hashlib.sha1,
    "sha-224": hashlib.sha224,
    "sha-256": hashlib.sha256,
    "sha-384": hashlib.sha384,
    "sha-512": hashlib.sha512,
}

#: The most features one answer may have; an answer with more gives none.
MAX_FEATURES = 1000

#: The suffix of the features the server keeps (XEP-0163 section 4.3.1).
NOTIFY_SUFFIX = "+notify"

#: The longest feature kept: C{N+notify} for the longest node identifier.
MAX_FEATURE_LENGTH = MAX_PEP_NODE_NAME + len(NOTIFY_SUFFIX)

#: The most characters of the features kept of one answer, together.
MAX_KEPT_BYTES = 4096

#: The longest C{node}, C{ver} or C{hash} attribute taken from presence;
#: longer ones are ignored (a SHA-512 C{ver} has 88 characters).
MAX_CAPS_ATTRIBUTE = 1024

#: Seconds before a session whose features are unknown after its query
#: failed is asked again, when a later presence repeats the C{ver}.
REQUERY_INTERVAL = 60.0

#: Seconds to wait for an answer to a C{disco#info} query.
QUERY_TIMEOUT = 30.0

#: Cache size when L{CapsService} is given no configuration.
CAPS_CACHE_SIZE = 1000

#: On L{PRESENCE_BROADCAST}: before the handlers at the default priority
#: (0), so that a service there (personal eventing) sees the features a
#: presence made known from the cache.
CAPS_PRIORITY = 50

#: Seconds between two log lines of one kind about what a client did wrong.
LOG_INTERVAL = 60.0

#: A C{(hash, ver)} pair.
CapsKey = tuple[str, str]


def _text(element: domish.Element) -> str:
    # str(element) is only the first text node; the parser may split text.
    return "".join(child for child in element.children if isinstance(child, str))


def _factor(value: str) -> str:
    """
    A value that goes into the verification string.

    @raise ValueError: it contains C{<}, the separator, with which an
        answer can be made to hash like another one with other features.
    """
    if "<" in value:
        raise ValueError(f"{value!r} contains '<'")
    return value


def _identities(info: domish.Element) -> list[str]:
    identities: set[tuple[str, str, str, str]] = set()
    for identity in info.elements(NS_DISCO_INFO, "identity"):
        category = identity.getAttribute("category")
        kind = identity.getAttribute("type")
        if not category or not kind:
            # XEP-0030 section 3.1: both are required.
            raise ValueError("an identity without category or type")
        entry = (
            _factor(category),
            _factor(kind),
            _factor(identity.getAttribute((NS_XML, "lang")) or ""),
            _factor(identity.getAttribute("name") or ""),
        )
        if entry in identities:
            raise ValueError(f"the identity {'/'.join(entry)} is there twice")
        identities.add(entry)
    return ["/".join(entry) for entry in sorted(identities)]


def _features(info: domish.Element) -> list[str]:
    features: set[str] = set()
    for feature in info.elements(NS_DISCO_INFO, "feature"):
        var = feature.getAttribute("var")
        if not var:
            raise ValueError("a feature without 'var'")
        if var in features:
            raise ValueError(f"the feature {var!r} is there twice")
        features.add(_factor(var))
    return sorted(features)


def _form(form: domish.Element) -> tuple[str, list[str]] | None:
    """
    The FORM_TYPE of an extended information form (XEP-0128) and the rest
    of its factors, or C{None} for a form that is ignored (section 5.4,
    step 3.6: no FORM_TYPE field, or one not of type C{hidden}).
    """
    fields: dict[str, list[str]] = {}
    formType: str | None = None
    for child in form.elements(NS_DATA_FORMS, "field"):
        var = child.getAttribute("var")
        if not var:
            raise ValueError("a form field without 'var'")
        if var in fields:
            # XEP-0004 section 3.2: 'var' is unique within a form.
            raise ValueError(f"the form field {var!r} is there twice")
        values = [_text(value) for value in child.elements(NS_DATA_FORMS, "value")]
        fields[var] = values
        if var == "FORM_TYPE":
            if child.getAttribute("type") != "hidden" or not values:
                return None
            if len(set(values)) > 1:
                # Step 3.5.
                raise ValueError("a FORM_TYPE with several values")
            formType = values[0]
    if formType is None:
        return None
    factors: list[str] = []
    for var in sorted(fields):
        if var == "FORM_TYPE":
            continue
        factors.append(_factor(var))
        factors.extend(_factor(value) for value in sorted(fields[var]))
    return _factor(formType), factors


def verificationString(info: domish.Element) -> str:
    """
    The string S of XEP-0115 section 5.1 for a C{disco#info} answer:
    identities (sorted by category, type, xml:lang), features, extended
    information forms (XEP-0128, sorted by FORM_TYPE, each with its fields
    sorted by C{var} and their values sorted), each followed by C{<}.
    Sorting is by code point, which is the "i;octet" order of their UTF-8.

    @param info: a C{<query xmlns='http://jabber.org/protocol/disco#info'/>}.
    @raise ValueError: it is ill-formed (section 5.4, step 3): two
        identities with the same category/type/lang/name, a feature twice,
        two forms with one FORM_TYPE, a FORM_TYPE with different values;
        or an identity without category or type, a feature or form field
        without C{var}, a form field twice, a value containing C{<}. A form
        without a FORM_TYPE field of type C{hidden} is left out (step 3.6).
    """
    if (info.uri, info.name) != (NS_DISCO_INFO, "query"):
        raise ValueError("not a disco#info query")
    parts = [*_identities(info), *_features(info)]
    forms: dict[str, list[str]] = {}
    for element in info.elements(NS_DATA_FORMS, "x"):
        form = _form(element)
        if form is None:
            continue
        formType, factors = form
        if formType in forms:
            raise ValueError(f"two forms of FORM_TYPE {formType!r}")
        forms[formType] = factors
    for formType in sorted(forms):
        parts.append(formType)
        parts.extend(forms[formType])
    return "".join(part + "<" for part in parts)


def capsHash(hashName: str, info: domish.Element) -> str | None:
    """
    The verification string of a C{disco#info} answer, hashed and base64
    encoded (XEP-0115 section 5.1, step 9).

    @param hashName: the C{hash} attribute of the caps element, an IANA
        hash name (L{HASH_FUNCTIONS}).
    @return: C{None} when that hash function is not supported.
    @raise ValueError: from L{verificationString}.
    """
    function = HASH_FUNCTIONS.get(hashName)
    if function is None:
        return None
    digest = function(verificationString(info).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class Caps:
    """
    The capabilities a presence advertises (XEP-0115 section 4).

    @ivar node: identifies the software.
    @ivar ver: the verification string.
    @ivar hash: the name of the hash function that made C{ver}.
    """

    node: str
    ver: str
    hash: str

    @property
    def key(self) -> CapsKey:
        return (self.hash, self.ver)


def parseCaps(presence: domish.Element) -> Caps | None:
    """
    The first caps element of a presence.

    @return: C{None} when there is none, when it is in the legacy format
        (no C{hash}: section 5.4, step 1), or lacks C{node} or C{ver}, or
        one of them is longer than L{MAX_CAPS_ATTRIBUTE}.
    """
    for element in presence.elements(NS_CAPS, "c"):
        node = element.getAttribute("node")
        ver = element.getAttribute("ver")
        hashName = element.getAttribute("hash")
        if not node or not ver or not hashName:
            return None
        if max(len(node), len(ver), len(hashName)) > MAX_CAPS_ATTRIBUTE:
            return None
        return Caps(node, ver, hashName)
    return None


class CapsCache:
    """
    Verified capabilities: C{(hash, ver)} to features, at most C{size}
    of them, the least recently used dropped first.

    @ivar size: the most entries; a smaller value applies on the next
        L{put}.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[CapsKey, frozenset[str]] = OrderedDict()

    def get(self, key: CapsKey) -> frozenset[str] | None:
        features = self._entries.get(key)
        if features is not None:
            self._entries.move_to_end(key)
        return features

    def put(self, key: CapsKey, features: Iterable[str]) -> None:
        self._entries[key] = frozenset(features)
        self._entries.move_to_end(key)
        while len(self._entries) > max(0, self.size):
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


@dataclass(eq=False)
class _Query:
    """
    A C{disco#info} query sent to one session.

    @ivar id: its iq id; only an answer with it counts.
    @ivar timer: fails it when no answer comes in time.
    """

    id: str
    timer: IDelayedCall | None = None


@dataclass(eq=False)
class _Lookup:
    """
    The sessions waiting to learn the features of one C{(hash, ver)}.

    @ivar shared: whether the answer may serve every member (the hash is
        supported), or only the one session (then it is the only member).
    @ivar members: the waiting sessions, in the order they came, with the
        C{node} each advertised; those asked among them.
    @ivar queries: the members asked, whose answers are awaited.
    @ivar failed: whether an answer failed: then every member is asked at
        once (and every session joining later).
    """

    key: CapsKey
    shared: bool
    members: dict[Session, str] = field(default_factory=dict)
    queries: dict[Session, _Query] = field(default_factory=dict)
    failed: bool = False


@dataclass(eq=False)
class _SessionCaps:
    """
    What is known of one session's capabilities.

    @ivar caps: what its last available presence advertised.
    @ivar features: its features as kept (L{keptFeatures}), C{None} while
        unknown.
    @ivar lookup: the lookup it waits for.
    @ivar lastQuery: when it was last asked (the clock's seconds), C{None}
        for never.
    """

    caps: Caps | None = None
    features: frozenset[str] | None = None
    lookup: _Lookup | None = None
    lastQuery: float | None = None


FeaturesCallback = Callable[[Session, frozenset[str]], object]


class CapsService:
    """
    The capabilities of the local client sessions, learnt from their
    presence (XEP-0115).

    @ivar sessions: the session registry whose hooks it joins.
    @ivar clock: times out queries.
    @ivar config: returns the live configuration, whose C{caps_cache_size}
        bounds the cache; C{None}: L{CAPS_CACHE_SIZE}.
    @ivar queryTimeout: seconds to wait for an answer.
    @ivar cache: the verified capabilities.
    """

    def __init__(
        self,
        sessions: SessionManager,
        clock: IReactorTime,
        config: Callable[[], Any] | None = None,
        queryTimeout: float = QUERY_TIMEOUT,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.config = config
        self.queryTimeout = queryTimeout
        # Sized from the configuration at each insert: the configuration
        # may not be readable yet while the server is being put together.
        self.cache = CapsCache(CAPS_CACHE_SIZE)
        self._states: dict[Session, _SessionCaps] = {}
        # Lookups of supported hashes, which sessions share.
        self._lookups: dict[CapsKey, _Lookup] = {}
        self._callbacks: list[FeaturesCallback] = []
        self._unverifiedLog = _log.RateLimitedLog(log, LogLevel.info, clock, LOG_INTERVAL)
        self._failedLog = _log.RateLimitedLog(log, LogLevel.info, clock, LOG_INTERVAL)

    # --- wiring -----------------------------------------------------------

    def install(self) -> None:
        """
        Watch the presence sessions broadcast (L{PRESENCE_BROADCAST}, at
        L{CAPS_PRIORITY}) and forget sessions that end (L{SESSION_ENDED}).
        """
        hooks = self.sessions.hooks
        hooks.add(PRESENCE_BROADCAST, self.presenceBroadcast, CAPS_PRIORITY)
        hooks.add(SESSION_ENDED, self.sessionEnded)

    def uninstall(self) -> None:
        """
        Leave the hooks, cancel the queries and forget every session.
        """
        hooks = self.sessions.hooks
        hooks.remove(PRESENCE_BROADCAST, self.presenceBroadcast)
        hooks.remove(SESSION_ENDED, self.sessionEnded)
        for state in self._states.values():
            if state.lookup is not None:
                self._end(state.lookup)
        self._states.clear()
        self._lookups.clear()

    def handlersFor(self, context: StreamContext) -> list[XMPPHandler]:
        """
        A handler factory for L{xmppcert.c2s.C2SServer}: the stream's
        L{CapsHandler}, which takes the answers to the server's queries.
        """
        return [CapsHandler(self, context.session)]

    def _cacheSize(self) -> int:
        if self.config is None:
            return CAPS_CACHE_SIZE
        return int(getattr(self.config(), "caps_cache_size", CAPS_CACHE_SIZE))

    # --- what is known ----------------------------------------------------

    def featuresOf(self, fullJID: jid.JID) -> frozenset[str] | None:
        """
        The features of a local session that the server keeps (its
        C{+notify} ones, see L{keptFeatures}).

        @return: C{None} when they are not known (yet): no such session, no
            caps in its presence, a query pending or failed.
        """
        session = self.sessions.sessionFor(fullJID)
        if session is None:
            return None
        state = self._states.get(session)
        return state.features if state is not None else None

    def notifyNodes(self, fullJID: jid.JID) -> frozenset[str]:
        """
        The nodes C{N} for which the session advertises C{N+notify}
        (XEP-0163 section 4.3.1); empty when its features are unknown.
        """
        features = self.featuresOf(fullJID) or frozenset()
        return frozenset(
            feature[: -len(NOTIFY_SUFFIX)]
            for feature in features
            if feature.endswith(NOTIFY_SUFFIX) and len(feature) > len(NOTIFY_SUFFIX)
        )

    def onFeatures(self, callback: FeaturesCallback) -> None:
        """
        Call C{callback(session, features)} each time a session's features
        become known or change: after an available presence with a new
        C{ver}, once they come from the cache or from an answer. Not for a
        presence repeating the C{ver} (unless they were not known), nor
        for unavailable presence.
        """
        self._callbacks.append(callback)

    def removeOnFeatures(self, callback: FeaturesCallback) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    # --- hooks ------------------------------------------------------------

    def presenceBroadcast(self, event: Broadcast) -> None:
        """
        L{PRESENCE_BROADCAST}: learn the features of a session from the caps
        of its available presence. Unavailable presence changes nothing
        (the session's features are kept while it exists); available
        presence without (hashed) caps forgets them (section 8.3: without
        caps, an entity is assumed not to support them; the server does
        not offer the optimization of section 8.4, so a client repeats
        its caps in every presence).
        """
        if event.unavailable:
            return
        session = event.session
        if session.closed or self.sessions.sessionFor(session.jid) is not session:
            return
        caps = parseCaps(event.presence)
        state = self._states.get(session)
        if caps is None:
            if state is not None:
                self._detach(session, state)
                del self._states[session]
            return
        if state is None:
            state = self._states[session] = _SessionCaps()
        elif state.caps is not None and state.caps.key == caps.key:
            # The same ver: nothing changed, unless nothing was learnt for
            # it (a failed query): the cache may have it by now, or else
            # the session is asked again, not too often.
            if state.features is None and state.lookup is None:
                cached = self.cache.get(caps.key)
                if cached is not None:
                    state.features = cached
                    self._fire([session])
                elif state.lastQuery is None or self.clock.seconds() - state.lastQuery >= REQUERY_INTERVAL:
                    state.caps = caps
                    self._join(session, state, caps)
            return
        self._detach(session, state)
        state.caps = caps
        state.features = None
        if caps.hash in HASH_FUNCTIONS:
            cached = self.cache.get(caps.key)
            if cached is not None:
                state.features = cached
                self._fire([session])
                return
        self._join(session, state, caps)

    def sessionEnded(self, event: Ended) -> None:
        """
        L{SESSION_ENDED}: forget the session; if it was asked, and nobody
        else waiting on its C{ver} was, the next one waiting is asked.
        """
        state = self._states.pop(event.session, None)
        if state is not None:
            self._detach(event.session, state)

    # --- lookups and queries ------------------------------------------------

    def _join(self, session: Session, state: _SessionCaps, caps: Caps) -> None:
        """
        Make C{session} wait for the features of C{caps}: in the lookup of
        that C{(hash, ver)} if there is one (it is asked when an answer
        failed already, or nobody is asked), else in a new one, asked.
        """
        shared = caps.hash in HASH_FUNCTIONS
        lookup = self._lookups.get(caps.key) if shared else None
        if lookup is None:
            lookup = _Lookup(caps.key, shared)
            if shared:
                self._lookups[caps.key] = lookup
        lookup.members[session] = caps.node
        state.lookup = lookup
        if lookup.failed or not lookup.queries:
            self._query(lookup, session)

    def _query(self, lookup: _Lookup, session: Session) -> None:
        query = _Query("caps-" + secrets.token_hex(8))
        lookup.queries[session] = query
        state = self._states.get(session)
        if state is not None:
            state.lastQuery = self.clock.seconds()
        iq = domish.Element((NS_CLIENT, "iq"))
        iq["type"] = "get"
        iq["from"] = session.jid.host
        iq["to"] = session.jid.full()
        iq["id"] = query.id
        disco = iq.addElement((NS_DISCO_INFO, "query"))
        disco["node"] = f"{lookup.members[session]}#{lookup.key[1]}"
        query.timer = self.clock.callLater(self.queryTimeout, self._timedOut, lookup, session)
        session.send(iq)

    def _cancelQuery(self, lookup: _Lookup, session: Session) -> None:
        query = lookup.queries.pop(session, None)
        if query is not None and query.timer is not None and query.timer.active():
            query.timer.cancel()

    def _detach(self, session: Session, state: _SessionCaps) -> None:
        """
        The session no longer waits for its lookup (a new C{ver}, no caps,
        the session ended); if it was asked, its answer will be ignored.
        """
        lookup = state.lookup
        if lookup is None:
            return
        state.lookup = None
        lookup.members.pop(session, None)
        self._cancelQuery(lookup, session)
        self._advance(lookup)

    def _advance(self, lookup: _Lookup) -> None:
        """
        After a member left or failed: ask those waiting that must be (every
        one once an answer failed, else the first when nobody is asked),
        or end the lookup when nobody waits.
        """
        if not lookup.members:
            self._end(lookup)
            return
        waiting = [member for member in lookup.members if member not in lookup.queries]
        if lookup.failed:
            for member in waiting:
                self._query(lookup, member)
        elif not lookup.queries and waiting:
            self._query(lookup, waiting[0])

    def _end(self, lookup: _Lookup) -> None:
        """
        The lookup is over: its queries are cancelled, its members (if any
        are left) stay without features.
        """
        for session in list(lookup.queries):
            self._cancelQuery(lookup, session)
        for member in lookup.members:
            state = self._states.get(member)
            if state is not None and state.lookup is lookup:
                state.lookup = None
        lookup.members.clear()
        if self._lookups.get(lookup.key) is lookup:
            del self._lookups[lookup.key]

    def _failed(self, lookup: _Lookup, session: Session) -> None:
        """
        The session asked gave nothing the others may use: it leaves the
        lookup (without features, unless it got its own), and every other
        member is asked.
        """
        self._cancelQuery(lookup, session)
        lookup.members.pop(session, None)
        state = self._states.get(session)
        if state is not None and state.lookup is lookup:
            state.lookup = None
        lookup.failed = True
        self._advance(lookup)

    def _timedOut(self, lookup: _Lookup, session: Session) -> None:
        query = lookup.queries.get(session)
        if query is not None:
            query.timer = None
        self._failedLog.emit(
            "{jid} did not answer the disco#info query for its capabilities in time",
            jid=session.jid.full(),
        )
        self._failed(lookup, session)

    def answerReceived(self, session: Session, iq: domish.Element) -> bool:
        """
        An iq result or error from C{session}'s stream: the answer to the
        query it was sent, if it has the query's id.

        @return: whether it was that answer (it is then handled).
        """
        state = self._states.get(session)
        lookup = state.lookup if state is not None else None
        query = lookup.queries.get(session) if lookup is not None else None
        if (
            state is None
            or lookup is None
            or query is None
            or iq.getAttribute("id") != query.id
            or iq.getAttribute("from") != session.jid.full()
        ):
            return False
        kind = iq.getAttribute("type")
        if kind == "error":
            self._failedLog.emit(
                "{jid} answered the disco#info query for its capabilities with an error",
                jid=session.jid.full(),
            )
            self._failed(lookup, session)
            return True
        if kind != "result":
            return False
        queries = list(iq.elements(NS_DISCO_INFO, "query"))
        answered = _answerFeatures(queries[0]) if len(queries) == 1 else None
        if answered is None:
            self._failedLog.emit(
                "{jid} answered the disco#info query for its capabilities with no usable"
                " features",
                jid=session.jid.full(),
            )
            self._failed(lookup, session)
            return True
        features = keptFeatures(answered)
        hashName, ver = lookup.key
        try:
            verified = capsHash(hashName, queries[0]) == ver
            why = "its hash does not match" if not verified else ""
        except ValueError as e:
            verified = False
            # The client's text: kept short in the log.
            why = str(e)[:200]
        if verified:
            # Section 5.4, step 3.8: for everyone.
            self.cache.size = self._cacheSize()
            self.cache.put(lookup.key, features)
            members = list(lookup.members)
            for member in members:
                memberState = self._states.get(member)
                if memberState is not None and memberState.lookup is lookup:
                    memberState.features = features
            self._end(lookup)
            self._fire([m for m in members if m in self._states])
            return True
        # Steps 2.3 and 3.9: for this session only, never cached; the other
        # sessions advertising the ver are asked.
        if lookup.shared:
            reason = why
        else:
            reason = f"the hash {hashName!r} is not supported"
        self._unverifiedLog.emit(
            "The capabilities of {jid} (ver {ver!r}) could not be verified ({reason});"
            " they are used for that session only",
            jid=session.jid.full(),
            ver=ver,
            reason=reason[:200],
        )
        state.features = features
        self._failed(lookup, session)
        self._fire([session])
        return True

    # --- callbacks --------------------------------------------------------

    def _fire(self, sessions: list[Session]) -> None:
        for session in sessions:
            state = self._states.get(session)
            if state is None or state.features is None:
                continue
            features = state.features
            for callback in list(self._callbacks):
                try:
                    result = callback(session, features)
                except Exception:
                    log.failure("A capabilities callback failed for {jid}", jid=session.jid.full())
                    continue
                if inspect.iscoroutine(result):
                    result = defer.ensureDeferred(result)
                if isinstance(result, defer.Deferred):
                    result.addErrback(self._callbackFailed, session)

    def _callbackFailed(self, f: failure.Failure, session: Session) -> None:
        log.failure("A capabilities callback failed for {jid}", f, jid=session.jid.full())


def keptFeatures(features: Iterable[str]) -> frozenset[str]:
    """
    The features of an answer the server keeps: the C{+notify} ones
    (XEP-0163 section 4.3.1; nothing else is used), each of at most
    L{MAX_FEATURE_LENGTH} characters (a longer one cannot name a node),
    at most L{MAX_KEPT_BYTES} characters together, the first in code point
    order.
    """
    kept: list[str] = []
    total = 0
    for feature in sorted(features):
        if not feature.endswith(NOTIFY_SUFFIX) or len(feature) > MAX_FEATURE_LENGTH:
            continue
        total += len(feature)
        if total > MAX_KEPT_BYTES:
            break
        kept.append(feature)
    return frozenset(kept)


def _answerFeatures(query: domish.Element) -> frozenset[str] | None:
    """
    The features of a C{disco#info} answer; C{None} when one has no C{var}
    or there are more than L{MAX_FEATURES}.
    """
    features: set[str] = set()
    for feature in query.elements(NS_DISCO_INFO, "feature"):
        var = feature.getAttribute("var")
        if not var:
            return None
        features.add(var)
        if len(features) > MAX_FEATURES:
            return None
    return frozenset(features)


class CapsHandler(XMPPHandler):
    """
    On one bound client stream: the answers to the server's C{disco#info}
    queries for its capabilities (iq results and errors to the server,
    which the stream drops when nobody handles them).
    """

    def __init__(self, service: CapsService, session: Session) -> None:
        XMPPHandler.__init__(self)
        self.service = service
        self.session = session

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/iq[@type='result']", self._onAnswer)
        self.xmlstream.addObserver("/iq[@type='error']", self._onAnswer)

    def _onAnswer(self, iq: domish.Element) -> None:
        if self.service.answerReceived(self.session, iq):
            iq.handled = True  # type: ignore[attr-defined]


__all__ = [
    "CAPS_CACHE_SIZE",
    "CAPS_PRIORITY",
    "HASH_FUNCTIONS",
    "MAX_CAPS_ATTRIBUTE",
    "MAX_FEATURES",
    "MAX_FEATURE_LENGTH",
    "MAX_KEPT_BYTES",
    "NOTIFY_SUFFIX",
    "NS_CAPS",
    "NS_DISCO_INFO",
    "QUERY_TIMEOUT",
    "REQUERY_INTERVAL",
    "Caps",
    "CapsCache",
    "CapsHandler",
    "CapsService",
    "capsHash",
    "keptFeatures",
    "parseCaps",
    "verificationString",
]
