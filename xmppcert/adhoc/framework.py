# -*- test-case-name: tests.test_adhoc -*-
"""
The server side of XEP-0050 (Ad-Hoc Commands, v1.3): a registry of
commands other features add to, command sessions, and the per-stream
handler that executes them and lists them in service discovery.

A command (L{ICommand}) is a node, a name, a rule for who may run it
(L{ICommand.mayRun}) and a sequence of stages. A stage is called with the
L{Requester}, what was submitted to the form shown before it (C{None} for
the first stage) and the session's state (a C{dict} the stages share), and
returns the next form to show (a L{data_form.Form} or a L{Show} with notes)
or the end (L{Completed}, with notes and possibly a result form); it may
be a coroutine or return a Deferred. Going back (C{action='prev'}) shows
the form before again; submitting it runs the same stage again, so a stage
works from what was submitted rather than from what an earlier run put in
the state.

A stage raises L{InvalidInput} for a value the person can fix (the form is
shown again with the reason as an error note, the session goes on), and
C{error.StanzaError} to fail the command (the session ends), e.g.
C{conflict} for an account that exists (XEP-0133 section 5).

L{CommandService} holds the commands (L{CommandService.addCommand},
L{CommandService.removeCommand}) and makes the stream handlers
(L{CommandService.handlerFactory}). Sessions belong to one stream, the
requester's full JID, and end with it; they are looked up by
C{sessionid} within it, so no one else can continue or cancel them. A
session left alone for L{DEFAULT_SESSION_TIMEOUT} seconds (the injected
clock's) expires. An account has at most
L{DEFAULT_MAX_SESSIONS_PER_ACCOUNT} sessions open over all its streams; a
command that would open one more is refused with C{resource-constraint}
(type C{wait}), the condition for a server limit; XEP-0050 section 4.4
reserves C{not-allowed} for a responder allowing a single session of a
command.

Who the requester is comes from the stream (the login), never from the
stanza.
"""

from __future__ import annotations

import inspect
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.words.protocols.jabber import error, jid
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

# wokkel 18 imports only once xmppcert has installed its compatibility shim.
import xmppcert  # noqa: F401

# isort: split
from wokkel import data_form, disco
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler
from zope.interface import Attribute, Interface, implementer

from xmppcert import _log
from xmppcert.adhoc.forms import NS_X_DATA, InvalidInput, PayloadError, parseSubmission, refill
from xmppcert.cred import Account
from xmppcert.iqhandler import OrderedIQHandler
from xmppcert.jids import parseJID
from xmppcert.store.interfaces import STORE_FAILURES

if TYPE_CHECKING:
    from xmppcert.c2s.bound import StreamContext

log = Logger(observer=_log.observer, namespace="xmppcert.adhoc")

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_XML = "http://www.w3.org/XML/1998/namespace"

COMMAND_SET = f"/iq[@type='set']/command[@xmlns='{NS_COMMANDS}']"

#: The values of the C{action} attribute (XEP-0050 section 4.1).
ACTIONS = ("execute", "cancel", "prev", "next", "complete")

#: The values of C{<note type=.../>} (XEP-0050 section 4.3).
NOTE_TYPES = ("info", "warn", "error")

#: Seconds a session may stay idle before it expires.
DEFAULT_SESSION_TIMEOUT = 600.0

#: Sessions an account may have open at once, over all its streams.
DEFAULT_MAX_SESSIONS_PER_ACCOUNT = 5

#: Ended sessions a stream remembers, to answer C{session-expired} rather
#: than C{bad-sessionid} for them.
MAX_REMEMBERED_ENDED = 64

#: The language of every text the commands send (XEP-0050 section 3.5).
LANGUAGE = "en"

#: Seconds between two log lines about store failures during commands.
STORE_FAILURE_LOG_INTERVAL = 60.0

#: The text of the stanza error a command gets when the store failed.
STORE_UNAVAILABLE = "The account store is not available; try again later"

# RFC 5646 language tags, loosely: letters, then dash-separated parts.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*\Z")


def commandError(condition: str, specific: str | None = None, text: str | None = None) -> error.StanzaError:
    """
    An error of XEP-0050 section 4.6: a general condition with, for
    C{bad-request} and C{not-allowed}, the specific condition in
    C{http://jabber.org/protocol/commands} (C{malformed-action},
    C{bad-action}, C{bad-locale}, C{bad-payload}, C{bad-sessionid},
    C{session-expired}). The error type is the one the XEP's table gives.
    """
    kind = "modify" if condition == "bad-request" else "cancel"
    if condition == "resource-constraint":
        kind = "wait"
    appCondition = domish.Element((NS_COMMANDS, specific)) if specific is not None else None
    return error.StanzaError(condition, type=kind, text=text, appCondition=appCondition)


@dataclass(frozen=True)
class Requester:
    """
    Who runs a command: the stream's login, never what a stanza claims.

    @ivar jid: the full JID of the session.
    @ivar account: the login's avatar (bare JID, certificate fingerprint,
        whether it may manage certificates), when there is one.
    @ivar domain: the served domain the stream is for; commands are at
        this address.
    @ivar mechanism: the SASL mechanism of the login.
    """

    jid: JID
    account: Account | None = None
    domain: str = ""
    mechanism: str = ""

    @property
    def bare(self) -> JID:
        """
        The account's bare JID.
        """
        return self.jid.userhostJID()

    @classmethod
    def fromContext(cls, context: StreamContext) -> Requester:
        """
        The requester of a bound stream.
        """
        return cls(context.session.jid, context.account, context.domain, context.mechanism)


@dataclass(frozen=True)
class Note:
    """
    A C{<note/>} (XEP-0050 section 4.3): C{type} is C{info}, C{warn} or
    C{error}; a command that completes but fails carries at least one
    C{error} note (section 3.4.3).
    """

    text: str
    type: str = "info"

    def __post_init__(self) -> None:
        if self.type not in NOTE_TYPES:
            raise ValueError(f"a note's type is one of {', '.join(NOTE_TYPES)}, not {self.type!r}")

    def toElement(self) -> domish.Element:
        note = domish.Element((NS_COMMANDS, "note"))
        note["type"] = self.type
        note.addContent(self.text)
        return note


@dataclass(frozen=True)
class Show:
    """
    What a stage returns to show a form (of type C{form}) and go on; a
    bare L{data_form.Form} means the same without notes.
    """

    form: data_form.Form
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True)
class Completed:
    """
    What a stage returns to end the command: notes, and possibly a form of
    type C{result} (XEP-0050 section 3.4.1) with what it found.
    """

    notes: tuple[Note, ...] = ()
    form: data_form.Form | None = None


#: A stage: C{(requester, submitted form or None, state) -> Show | Form |
#: Completed}, or a Deferred or coroutine of it.
Stage = Callable[[Requester, data_form.Form | None, dict[str, Any]], Any]


class ICommand(Interface):
    """
    An ad-hoc command (XEP-0050) that L{CommandService} offers.
    """

    node = Attribute("The command's node: its identity, unique on the server (XEP-0050 section 3.2).")
    name = Attribute("Its name for people: the disco item's and identity's C{name}.")
    stages = Attribute(
        "The stages, in order (a sequence of L{Stage}s): the first is called on execute with no"
        " submission; each form shown is submitted to the next; the last must complete."
    )

    def mayRun(requester):  # type: ignore[no-untyped-def]
        """
        Whether C{requester} (a L{Requester}) may see and run the command;
        asked for discovery and for every request of a session, so a
        right withdrawn meanwhile stops a session that is under way.

        @rtype: C{bool}
        """


@implementer(ICommand)
class Command:
    """
    An L{ICommand} made of its parts; subclass it or give them.
    """

    def __init__(
        self,
        node: str,
        name: str,
        stages: Sequence[Stage],
        mayRun: Callable[[Requester], bool] | None = None,
    ) -> None:
        """
        @param mayRun: who may see and run it; anyone logged in when
            C{None}.
        """
        if not stages:
            raise ValueError("a command has at least one stage")
        self.node = node
        self.name = name
        self.stages: Sequence[Stage] = tuple(stages)
        self._mayRun = mayRun

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.node!r}>"

    def mayRun(self, requester: Requester) -> bool:
        return True if self._mayRun is None else bool(self._mayRun(requester))


@dataclass(frozen=True)
class CommandRequest:
    """
    A C{<command/>} a requester sent (XEP-0050 section 4.1).

    @ivar action: as sent, C{execute} when absent; not yet checked.
    @ivar payload: the first C{jabber:x:data} child, which takes precedence
        over later ones (section 3.4).
    @ivar lang: the C{xml:lang} of the C{<command/>} or else of the iq.
    """

    node: str | None
    sessionid: str | None = None
    action: str = "execute"
    payload: domish.Element | None = None
    lang: str | None = None

    @classmethod
    def fromElement(cls, command: domish.Element, iq: domish.Element | None = None) -> CommandRequest:
        lang = command.getAttribute((NS_XML, "lang"))
        if lang is None and iq is not None:
            lang = iq.getAttribute((NS_XML, "lang"))
        payload = next((c for c in command.elements(NS_X_DATA, "x")), None)
        action = command.getAttribute("action")
        return cls(
            node=command.getAttribute("node"),
            sessionid=command.getAttribute("sessionid"),
            action="execute" if action is None else action,
            payload=payload,
            lang=lang,
        )


@dataclass
class CommandSession:
    """
    One execution of a command that is under way.

    @ivar shown: what each stage so far showed, oldest first; the last is
        the form the requester is answering.
    @ivar lang: the language the session started with, if the requester
        gave one (XEP-0050 section 3.5: one per session).
    """

    sessionid: str
    command: ICommand
    requester: Requester
    lastActive: float
    lang: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    shown: list[Show] = field(default_factory=list)


class SessionTable:
    """
    The command sessions of one stream: of one requester full JID, looked
    up by C{sessionid}; they go with the stream.

    @ivar live: the sessions under way.
    @ivar ended: the ids of sessions that completed, were canceled or
        expired, newest last (at most L{MAX_REMEMBERED_ENDED}).
    """

    def __init__(self, requester: Requester) -> None:
        self.requester = requester
        self.live: dict[str, CommandSession] = {}
        self.ended: OrderedDict[str, None] = OrderedDict()

    def end(self, sessionid: str) -> None:
        self.live.pop(sessionid, None)
        self.ended[sessionid] = None
        self.ended.move_to_end(sessionid)
        while len(self.ended) > MAX_REMEMBERED_ENDED:
            self.ended.popitem(last=False)

    def expire(self, now: float, timeout: float) -> None:
        """
        End the sessions idle for C{timeout} seconds or more.
        """
        for session in list(self.live.values()):
            if now - session.lastActive >= timeout:
                log.debug(
                    "Command session {sessionid} of {jid} ({node}) expired",
                    sessionid=session.sessionid, jid=self.requester.jid.full(), node=session.command.node,
                )
                self.end(session.sessionid)


def _language(lang: str | None) -> str | None:
    if lang is not None and not _LANGUAGE_TAG.match(lang):
        raise commandError("bad-request", "bad-locale", f"{lang!r} is not a language tag")
    return lang.lower() if lang is not None else None


class CommandService:
    """
    The ad-hoc commands of the server, and their sessions.

    @ivar clock: tells the time sessions expire by.
    @ivar sessionTimeout: seconds a session may stay idle.
    @ivar maxSessionsPerAccount: sessions an account may have open at once.
    """

    def __init__(
        self,
        clock: IReactorTime,
        sessionTimeout: float = DEFAULT_SESSION_TIMEOUT,
        maxSessionsPerAccount: int = DEFAULT_MAX_SESSIONS_PER_ACCOUNT,
    ) -> None:
        if sessionTimeout <= 0 or maxSessionsPerAccount < 1:
            raise ValueError("sessions need a positive timeout and a cap of at least one")
        self.clock = clock
        self.sessionTimeout = sessionTimeout
        self.maxSessionsPerAccount = maxSessionsPerAccount
        self._commands: dict[str, ICommand] = {}
        self._tables: dict[str, set[SessionTable]] = {}
        self._storeFailureLog = _log.RateLimitedLog(log, LogLevel.warn, clock, STORE_FAILURE_LOG_INTERVAL)

    # --- the registry -----------------------------------------------------

    def addCommand(self, command: ICommand) -> None:
        """
        Offer C{command}.

        @raise ValueError: a command with its node is offered already.
        """
        if not command.node or not isinstance(command.node, str):
            raise ValueError(f"a command needs a node, not {command.node!r}")
        if command.node in self._commands:
            raise ValueError(f"a command with the node {command.node!r} is offered already")
        self._commands[command.node] = command

    def removeCommand(self, node: str) -> ICommand:
        """
        Stop offering the command C{node}; its sessions end at their next
        request (with C{item-not-found}).

        @return: the command.
        @raise KeyError: no command has that node.
        """
        return self._commands.pop(node)

    def command(self, node: str) -> ICommand | None:
        return self._commands.get(node)

    def commands(self) -> list[ICommand]:
        """
        All commands, in the order they were added.
        """
        return list(self._commands.values())

    def commandsFor(self, requester: Requester) -> list[ICommand]:
        """
        The commands C{requester} may run, in the order they were added.
        """
        return [c for c in self._commands.values() if c.mayRun(requester)]

    # --- streams ----------------------------------------------------------

    def handlerFactory(self, context: StreamContext) -> list[XMPPHandler]:
        """
        A handler factory (C{handlerFactories}): each bound stream gets a
        L{CommandHandler}.
        """
        return [CommandHandler(self, Requester.fromContext(context))]

    def openTable(self, requester: Requester) -> SessionTable:
        """
        The session table of a stream that starts.
        """
        table = SessionTable(requester)
        self._tables.setdefault(requester.bare.userhost(), set()).add(table)
        return table

    def closeTable(self, table: SessionTable) -> None:
        """
        A stream ended: its sessions go.
        """
        table.live.clear()
        table.ended.clear()
        key = table.requester.bare.userhost()
        tables = self._tables.get(key)
        if tables is not None:
            tables.discard(table)
            if not tables:
                del self._tables[key]

    def openSessions(self, account: jid.JID) -> int:
        """
        How many sessions C{account} has under way over all its streams
        (expired ones ended first).
        """
        now = self.clock.seconds()
        count = 0
        for table in self._tables.get(account.userhost(), ()):
            table.expire(now, self.sessionTimeout)
            count += len(table.live)
        return count

    # --- execution --------------------------------------------------------

    def execute(
        self, requester: Requester, table: SessionTable, request: CommandRequest
    ) -> defer.Deferred[domish.Element]:
        """
        Answer a C{<command/>}.

        @return: Deferred firing with the C{<command/>} of the result, or
            failing with a C{StanzaError} (XEP-0050 section 4.6).
        """
        return defer.ensureDeferred(self._execute(requester, table, request))

    async def _execute(self, requester: Requester, table: SessionTable, request: CommandRequest) -> domish.Element:
        if not request.node:
            raise error.StanzaError("bad-request", text="A <command/> needs a 'node'")
        if request.action not in ACTIONS:
            raise commandError(
                "bad-request", "malformed-action", f"The action is one of {', '.join(ACTIONS)}, not {request.action!r}"
            )
        lang = _language(request.lang)
        command = self._commands.get(request.node)
        session = table.live.get(request.sessionid) if request.sessionid is not None else None
        if command is None:
            if session is not None:
                table.end(session.sessionid)
            raise error.StanzaError("item-not-found", text=f"No command {request.node!r}")
        if not command.mayRun(requester):
            if session is not None:
                table.end(session.sessionid)
            raise error.StanzaError("forbidden", type="cancel", text="You may not run this command")
        table.expire(self.clock.seconds(), self.sessionTimeout)
        if request.sessionid is None:
            if request.action != "execute":
                raise commandError(
                    "bad-request", "bad-action", f"There is no session to {request.action}; execute the command first"
                )
            return await self._start(requester, table, command, lang)
        session = table.live.get(request.sessionid)
        if session is None:
            return self._notLive(table, command, request)
        if session.command is not command:
            raise commandError("bad-request", "bad-sessionid", "That session is of another command")
        # XEP-0050 section 4.5: the language the session started in
        # applies to the whole session; a later xml:lang is not an error.
        session.lastActive = self.clock.seconds()
        if request.action == "cancel":
            table.end(session.sessionid)
            return self._element(command, session.sessionid, "canceled")
        if request.action == "prev":
            if len(session.shown) < 2:
                raise commandError("bad-request", "bad-action", "This is the first stage: there is none before it")
            session.shown.pop()
            return self._executing(session)
        return await self._submit(table, session, request)

    def _notLive(self, table: SessionTable, command: ICommand, request: CommandRequest) -> domish.Element:
        sessionid = request.sessionid
        assert sessionid is not None
        if sessionid in table.ended:
            if request.action == "cancel":
                # Canceling what is over already: what the requester wants
                # is so (XEP-0050 section 3.4.4 asks for success).
                return self._element(command, sessionid, "canceled")
            raise commandError(
                "not-allowed", "session-expired", "This session is over (completed, canceled or expired)"
            )
        raise commandError("bad-request", "bad-sessionid", "No such session")

    async def _start(self, requester: Requester, table: SessionTable, command: ICommand, lang: str | None) -> domish.Element:
        sessionid = secrets.token_urlsafe(12)
        while sessionid in table.live or sessionid in table.ended:  # pragma: no cover - 96 random bits
            sessionid = secrets.token_urlsafe(12)
        session = CommandSession(sessionid, command, requester, self.clock.seconds(), lang)
        if len(command.stages) > 1 and self.openSessions(requester.bare) >= self.maxSessionsPerAccount:
            # Refused before its first stage runs, which may do work; a
            # one-stage command opens no session and always runs.
            raise commandError(
                "resource-constraint",
                text=f"An account may have {self.maxSessionsPerAccount} command sessions open;"
                " complete or cancel one first",
            )
        try:
            outcome = await self._runStage(session, 0, None)
        except InvalidInput as e:
            # Nothing was shown yet, so nothing to show again: the command
            # cannot start, as a failed completion.
            outcome = Completed((Note(str(e), "error"),))
        if isinstance(outcome, Completed):
            table.end(sessionid)
            return self._completed(session, outcome)
        if len(command.stages) < 2:
            raise RuntimeError(f"{command!r} shows a form at its last stage")
        session.shown.append(outcome)
        table.live[sessionid] = session
        return self._executing(session)

    async def _submit(self, table: SessionTable, session: CommandSession, request: CommandRequest) -> domish.Element:
        command = session.command
        position = len(session.shown)
        last = position == len(command.stages) - 1
        if request.action == "complete" and not last:
            raise commandError("bad-request", "bad-action", "The command cannot complete yet: go to the next stage")
        current = session.shown[-1]
        try:
            submitted = parseSubmission(current.form, request.payload)
            outcome = await self._runStage(session, position, submitted)
        except PayloadError as e:
            raise commandError("bad-request", "bad-payload", str(e)) from None
        except InvalidInput as e:
            again = Show(refill(current.form, request.payload), (Note(str(e), "error"),))
            return self._executing(session, again)
        except BaseException:
            table.end(session.sessionid)
            raise
        if isinstance(outcome, Completed):
            table.end(session.sessionid)
            return self._completed(session, outcome)
        if last:
            table.end(session.sessionid)
            raise RuntimeError(f"{command!r} shows a form at its last stage")
        session.shown.append(outcome)
        return self._executing(session)

    async def _runStage(
        self, session: CommandSession, position: int, submitted: data_form.Form | None
    ) -> Show | Completed:
        stage = session.command.stages[position]
        try:
            outcome = stage(session.requester, submitted, session.state)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except (InvalidInput, PayloadError, error.StanzaError):
            raise
        except STORE_FAILURES as e:
            self._storeFailureLog.emit(
                "The store failed during command {node} of {jid}: {error}",
                node=session.command.node, jid=session.requester.jid.full(), error=f"{type(e).__name__}: {e}",
            )
            raise error.StanzaError("internal-server-error", type="wait", text=STORE_UNAVAILABLE) from None
        if isinstance(outcome, data_form.Form):
            return Show(outcome)
        if isinstance(outcome, Show | Completed):
            return outcome
        raise TypeError(f"stage {position} of {session.command!r} returned {outcome!r}")

    # --- answers ----------------------------------------------------------

    def _element(self, command: ICommand, sessionid: str, status: str) -> domish.Element:
        element = domish.Element((NS_COMMANDS, "command"))
        element["node"] = command.node
        element["sessionid"] = sessionid
        element["status"] = status
        element[(NS_XML, "lang")] = LANGUAGE
        return element

    def _executing(self, session: CommandSession, show: Show | None = None) -> domish.Element:
        """
        The answer that shows a form: C{<actions/>} says whether
        submitting it goes to the next stage or completes, and whether
        there is a stage to go back to (XEP-0050 section 3.4.2).
        """
        show = show if show is not None else session.shown[-1]
        element = self._element(session.command, session.sessionid, "executing")
        final = len(session.shown) == len(session.command.stages) - 1
        actions = element.addElement("actions")
        actions["execute"] = "complete" if final else "next"
        if len(session.shown) > 1:
            actions.addElement("prev")
        actions.addElement("complete" if final else "next")
        for note in show.notes:
            element.addChild(note.toElement())
        element.addChild(show.form.toElement())
        return element

    def _completed(self, session: CommandSession, outcome: Completed) -> domish.Element:
        element = self._element(session.command, session.sessionid, "completed")
        for note in outcome.notes:
            element.addChild(note.toElement())
        if outcome.form is not None:
            element.addChild(outcome.form.toElement())
        return element


@implementer(IDisco)
class CommandHandler(OrderedIQHandler):
    """
    XEP-0050 on one bound client stream: executes the commands of a
    L{CommandService} addressed to the stream's domain (or without C{to}),
    and lists them in service discovery at the domain.
    """

    iqHandlers = {COMMAND_SET: "_onCommand"}

    def __init__(self, service: CommandService, requester: Requester) -> None:
        OrderedIQHandler.__init__(self)
        self.service = service
        self.requester = requester
        self.table: SessionTable | None = None

    def connectionInitialized(self) -> None:
        self.table = self.service.openTable(self.requester)
        self.xmlstream.addObserver(COMMAND_SET, self._onRequest)

    def connectionLost(self, reason: Any) -> None:
        if self.table is not None:
            self.service.closeTable(self.table)
            self.table = None
        OrderedIQHandler.connectionLost(self, reason)

    def _isServer(self, target: jid.JID | None) -> bool:
        return (
            target is not None
            and target.user is None
            and target.resource is None
            and target.host == self.requester.domain
        )

    def _onRequest(self, iq: domish.Element) -> None:
        to = iq.getAttribute("to")
        if to is not None:
            try:
                target: jid.JID | None = parseJID(to)
            except jid.InvalidFormat:
                target = None
            if not self._isServer(target):
                # Not for the server's commands: left unhandled, so the
                # stream answers service-unavailable.
                return
        self.handleRequest(iq)

    def _onCommand(self, iq: domish.Element) -> defer.Deferred[domish.Element]:
        command = next(iq.elements(NS_COMMANDS, "command"))
        if self.table is None:
            return defer.fail(error.StanzaError("service-unavailable"))
        return self.service.execute(self.requester, self.table, CommandRequest.fromElement(command, iq))

    def getDiscoInfo(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        """
        XEP-0050 section 3.1: the server has C{http://jabber.org/protocol/commands};
        section 3.2: the command list node's identity, and each command
        node's identity and features, or C{forbidden} for a command the
        requester may not run.
        """
        if not self._isServer(target):
            return []
        if not nodeIdentifier:
            return [disco.DiscoFeature(NS_COMMANDS)]
        if nodeIdentifier == NS_COMMANDS:
            return [disco.DiscoIdentity("automation", "command-list", "Commands")]
        command = self.service.command(nodeIdentifier)
        if command is None:
            return []
        if not command.mayRun(self.requester):
            raise error.StanzaError("forbidden", type="cancel", text="This command is not available to you")
        return [
            disco.DiscoIdentity("automation", "command-node", command.name),
            disco.DiscoFeature(NS_COMMANDS),
            disco.DiscoFeature(NS_X_DATA),
        ]

    def getDiscoItems(self, requestor: jid.JID, target: jid.JID | None, nodeIdentifier: str = "") -> list[Any]:
        """
        XEP-0050 section 3.2: the command list holds the commands the
        requester may run, each at the server's address.
        """
        if nodeIdentifier != NS_COMMANDS or not self._isServer(target):
            return []
        address = jid.JID(tuple=(None, self.requester.domain, None))
        return [disco.DiscoItem(address, c.node, c.name) for c in self.service.commandsFor(self.requester)]


def notes(*texts: str, type: str = "info") -> tuple[Note, ...]:
    """
    Notes of one C{type}, one per text.
    """
    return tuple(Note(text, type) for text in texts)


def completed(
    *texts: str, type: str = "info", form: data_form.Form | None = None, more: Iterable[Note] = ()
) -> Completed:
    """
    A L{Completed} with a note per text of C{type} (then C{more}), and
    C{form}.
    """
    return Completed(notes(*texts, type=type) + tuple(more), form)


__all__ = [
    "ACTIONS",
    "COMMAND_SET",
    "DEFAULT_MAX_SESSIONS_PER_ACCOUNT",
    "DEFAULT_SESSION_TIMEOUT",
    "LANGUAGE",
    "MAX_REMEMBERED_ENDED",
    "NOTE_TYPES",
    "NS_COMMANDS",
    "Command",
    "CommandHandler",
    "CommandRequest",
    "CommandService",
    "CommandSession",
    "Completed",
    "ICommand",
    "Note",
    "Requester",
    "SessionTable",
    "Show",
    "Stage",
    "commandError",
    "completed",
    "notes",
]
