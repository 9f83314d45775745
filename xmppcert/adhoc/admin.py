# -*- test-case-name: tests.test_adhoc_admin -*-
"""
XEP-0133 (Service Administration, v1.2) over ad-hoc commands: the server's
administrators add, delete, disable and re-enable accounts, change their
passwords, end their sessions, and count who is online and registered.

Only the accounts of the served domains are touched. The changes go the
way the command line's and the control channel's do: locking, unlocking,
kicks and the end of the sessions a password change invalidates are the
control channel's own code (L{xmppcert.control.ControlChannel}), so they
take effect at once and are recorded alike; adding, deleting and changing
a password use the store as C{xmppcert user} does. Every change is in the
audit trail under the action names the command line and the control
channel use (C{user.add}, C{user.delete}, C{user.passwd}, C{user.lock},
C{user.unlock}, C{session.kick}), with the administrator's bare JID as
the actor.

What an administrator can fix (a malformed JID, a domain not served here,
two passwords that differ, an account that does not exist) shows the form
again with the reason; an account that exists already is C{conflict}
(XEP-0133 section 5). Administrators are whom C{isAdmin} names; nobody
else sees or runs these commands (C{forbidden}).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.words.protocols.jabber import error, jid

# wokkel 18 imports only once xmppcert has installed its compatibility shim.
import xmppcert  # noqa: F401

# isort: split
from wokkel import data_form

from xmppcert import _log, passwords
from xmppcert.adhoc.forms import (
    InvalidInput,
    jidMulti,
    jidSingle,
    listSingle,
    makeForm,
    resultForm,
    textPrivate,
)
from xmppcert.adhoc.framework import Command, CommandService, Completed, ICommand, Note, Requester
from xmppcert.certificates import AuditTrail
from xmppcert.control import ControlChannel, InvalidJID
from xmppcert.store.interfaces import AccountExists, NoSuchAccount

log = Logger(observer=_log.observer, namespace="xmppcert.adhoc.admin")

NS_ADMIN = "http://jabber.org/protocol/admin"

ADD_USER = f"{NS_ADMIN}#add-user"
DELETE_USER = f"{NS_ADMIN}#delete-user"
DISABLE_USER = f"{NS_ADMIN}#disable-user"
REENABLE_USER = f"{NS_ADMIN}#reenable-user"
END_USER_SESSION = f"{NS_ADMIN}#end-user-session"
CHANGE_USER_PASSWORD = f"{NS_ADMIN}#change-user-password"
GET_REGISTERED_USERS_NUM = f"{NS_ADMIN}#get-registered-users-num"
GET_ONLINE_USERS_NUM = f"{NS_ADMIN}#get-online-users-num"
GET_ONLINE_USERS_LIST = f"{NS_ADMIN}#get-online-users-list"

#: The choices of C{max_items} (XEP-0133 section 4.20); C{none}: all.
MAX_ITEMS_CHOICES = ("25", "50", "75", "100", "150", "200", "none")

_RunInThread = Callable[..., Any]


def deletedError() -> error.StreamError:
    """
    The stream error that ends the sessions of a deleted account:
    C{not-authorized} (RFC 6120 section 4.9.3.12), as the session check
    sends it for an account deleted from the command line.
    """
    return error.StreamError("not-authorized", text="This account was deleted")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _adminForm(title: str, instructions: str, *fields: data_form.Field) -> data_form.Form:
    return makeForm(title, instructions, fields, formNamespace=NS_ADMIN)


def _result(var: str, label: str, value: str | list[jid.JID]) -> data_form.Form:
    """
    A result form of one field: a count (C{text-single}) or JIDs
    (C{jid-multi}), as the XEP-0133 registry types them.
    """
    if isinstance(value, list):
        field = data_form.Field("jid-multi", var, values=value, label=label)
    else:
        field = data_form.Field("text-single", var, value=value, label=label)
    return resultForm([field], formNamespace=NS_ADMIN)


class AdminCommands:
    """
    The XEP-0133 commands, for the administrators C{isAdmin} names.

    @ivar control: the control channel's logic, whose lock, kick and
        password-change code the commands call.
    @ivar sessions: the session registry (C{control.sessions}).
    @ivar domains: the served domains; accounts elsewhere are refused.
    @ivar auditTrail: where the changes are recorded (L{AuditTrail}).
    """

    def __init__(
        self,
        store: Any,
        control: ControlChannel,
        isAdmin: Callable[[jid.JID], bool],
        clock: IReactorTime,
        scramIterations: int = 4096,
        deferToThread: _RunInThread = threads.deferToThread,
        accountRemoved: Callable[[], object] | None = None,
    ) -> None:
        """
        @param store: the account store (L{xmppcert.store.interfaces.IAccountStore}
            and, where it keeps one, C{IAuditLog}).
        @param control: the L{ControlChannel} over the same sessions and
            store (one is made whether or not its socket listens).
        @param isAdmin: whether a bare JID is an administrator's.
        @param scramIterations: PBKDF2 iterations of new passwords
            (C{[sasl] scram_iterations}).
        @param deferToThread: runs the PBKDF2 of new passwords off the
            reactor.
        @param accountRemoved: called once an account is deleted (what
            is kept in memory about other accounts' rosters is read again:
            the store took the account out of them).
        """
        self.accountRemoved = accountRemoved
        self.store = store
        self.control = control
        self.sessions = control.sessions
        self.isAdmin = isAdmin
        self.clock = clock
        self.scramIterations = scramIterations
        self._deferToThread = deferToThread
        self.auditTrail = AuditTrail(store, clock)

    def mayRun(self, requester: Requester) -> bool:
        """
        XEP-0133 section 8: only administrators.
        """
        return bool(self.isAdmin(requester.bare))

    def mayChange(self, requester: Requester) -> bool:
        """
        Administrators, but not from a device whose certificate was
        registered with C{<no-cert-management/>}: such a device may not
        change its own certificates, so it may not delete, lock or re-key
        accounts either (it may still count and list who is online).
        """
        account = requester.account
        return self.mayRun(requester) and (account is None or bool(account.canManageCertificates))

    def _command(self, node: str, name: str, *stages: Any) -> ICommand:
        return Command(node, name, stages, self.mayRun)

    def _changing(self, node: str, name: str, *stages: Any) -> ICommand:
        return Command(node, name, stages, self.mayChange)

    def commands(self) -> list[ICommand]:
        """
        The commands, in the order XEP-0133 lists their use cases.
        """
        return [
            self._changing(ADD_USER, "Add User", self._addUserForm, self._addUser),
            self._changing(DELETE_USER, "Delete User", self._deleteUserForm, self._deleteUser),
            self._changing(DISABLE_USER, "Disable User", self._disableUserForm, self._disableUser),
            self._changing(REENABLE_USER, "Re-Enable User", self._reenableUserForm, self._reenableUser),
            self._changing(END_USER_SESSION, "End User Session", self._endUserSessionForm, self._endUserSession),
            self._changing(
                CHANGE_USER_PASSWORD, "Change User Password", self._changePasswordForm, self._changePassword
            ),
            self._command(GET_REGISTERED_USERS_NUM, "Get Number of Registered Users", self._registeredUsersNum),
            self._command(GET_ONLINE_USERS_NUM, "Get Number of Online Users", self._onlineUsersNum),
            self._command(
                GET_ONLINE_USERS_LIST, "Get List of Online Users", self._onlineUsersForm, self._onlineUsersList
            ),
        ]

    @property
    def domains(self) -> frozenset[str]:
        # Read at each request: a reload may change the served domains.
        return frozenset(self.control.sessions.domains)

    def install(self, service: CommandService) -> None:
        """
        Offer the commands through C{service}.
        """
        for command in self.commands():
            service.addCommand(command)

    # --- helpers ----------------------------------------------------------

    def _account(self, address: jid.JID | None, fullAllowed: bool = False) -> jid.JID:
        """
        @return: C{address}, which names an account of a served domain.
        @raise InvalidInput: it does not.
        """
        if address is None:
            raise InvalidInput("Give a JID")
        if not address.user:
            raise InvalidInput(f"{address.full()} names no account: it has no localpart (user@domain)")
        if address.resource is not None and not fullAllowed:
            raise InvalidInput(f"{address.full()} is a full JID; give the bare JID {address.userhost()}")
        if address.host not in self.domains:
            raise InvalidInput(f"{address.host} is not a domain of this server")
        return address

    def _accounts(self, addresses: Sequence[jid.JID], fullAllowed: bool = False) -> list[jid.JID]:
        """
        The accounts C{addresses} name, each once, in their order.

        @raise InvalidInput: some do not name an account here; all reasons
            are given, and nothing is done.
        """
        accounts: list[jid.JID] = []
        problems: list[str] = []
        for address in addresses:
            try:
                account = self._account(address, fullAllowed)
            except InvalidInput as e:
                problems.append(str(e))
                continue
            if account not in accounts:
                accounts.append(account)
        if problems:
            raise InvalidInput("\n".join(problems))
        if not accounts:
            raise InvalidInput("Give at least one JID")
        return accounts

    async def _audit(self, actor: str, action: str, target: str, detail: str = "") -> None:
        """
        Record a change in the audit trail (L{AuditTrail}, if the store
        keeps one); a failure there is a warning and does not undo it.
        """
        await self.auditTrail.record(actor, action, target, detail)

    async def _credentials(self, password: str) -> list[Any]:
        try:
            credentials: list[Any] = await self._deferToThread(
                passwords.makeScramCredentials, password, self.scramIterations
            )
        except ValueError as e:
            raise InvalidInput(f"This password cannot be used: {e}") from None
        return credentials

    # --- add user (XEP-0133 section 4.1) ----------------------------------

    def _addUserForm(self, requester: Requester, submitted: Any, state: dict[str, Any]) -> data_form.Form:
        return _adminForm(
            "Adding a User",
            "Fill out this form to add a user. Without a password, the account logs in"
            " with a client certificate only.",
            jidSingle("accountjid", "The Jabber ID for the account to be added", required=True),
            textPrivate("password", "The password for this account"),
            textPrivate("password-verify", "Retype password"),
        )

    async def _addUser(self, requester: Requester, submitted: data_form.Form, state: dict[str, Any]) -> Completed:
        account = self._account(submitted["accountjid"]).userhost()
        password = submitted["password"] or ""
        if password != (submitted["password-verify"] or ""):
            raise InvalidInput("The two passwords differ")
        if await self.store.accountExists(account):
            raise error.StanzaError("conflict", type="cancel", text=f"The account {account} exists already")
        credentials = await self._credentials(password) if password else []
        try:
            await self.store.addAccount(account, credentials)
        except AccountExists:
            raise error.StanzaError("conflict", type="cancel", text=f"The account {account} exists already") from None
        actor = requester.bare.userhost()
        log.info("{actor} added {account}", actor=actor, account=account)
        await self._audit(actor, "user.add", account, "" if password else "without a password")
        if password:
            return Completed((Note(f"Added {account}"),))
        return Completed((Note(f"Added {account} without a password: it logs in with a client certificate"),))

    # --- delete user (section 4.2) ----------------------------------------

    def _deleteUserForm(self, requester: Requester, submitted: Any, state: dict[str, Any]) -> data_form.Form:
        return _adminForm(
            "Deleting a User",
            "Fill out this form to delete a user. Their sessions end and everything stored for them goes.",
            jidMulti("accountjids", "The Jabber ID(s) to delete", required=True),
        )

    async def _deleteUser(self, requester: Requester, submitted: data_form.Form, state: dict[str, Any]) -> Completed:
        accounts = self._accounts(submitted["accountjids"])
        actor = requester.bare.userhost()
        done: list[str] = []
        missing: list[str] = []
        for account in accounts:
            bare = account.userhost()
            try:
                await self.store.removeAccount(bare)
            except NoSuchAccount:
                missing.append(bare)
                continue
            if self.accountRemoved is not None:
                self.accountRemoved()
            # As the session check would at its next round, but now; and
            # a login checked against the store before now does not bind.
            closed = int(self.control.notifier.closeSessionsOf(account, deletedError(), barLogins=True))
            log.info("{actor} deleted {account}", actor=actor, account=bare)
            await self._audit(actor, "user.delete", bare, f"{_plural(closed, 'live session')} ended" if closed else "")
            done.append(f"{bare} ({_plural(closed, 'session')} ended)" if closed else bare)
        return self._outcome("Deleted", done, missing)

    @staticmethod
    def _outcome(verb: str, done: list[str], missing: list[str]) -> Completed:
        """
        The end of a command over several accounts: what was done, and an
        error note for the accounts that do not exist (XEP-0050 section
        3.4.3: a command that fails says so in an error note).
        """
        result: list[Note] = []
        if done:
            result.append(Note(f"{verb}: {', '.join(done)}"))
        if missing:
            result.append(Note(f"No such account: {', '.join(missing)}", "error"))
        return Completed(tuple(result))

    # --- disable and re-enable user (sections 4.3, 4.4) ---------------------

    def _disableUserForm(self, requester: Requester, submitted: Any, state: dict[str, Any]) -> data_form.Form:
        return _adminForm(
            "Disabling a User",
            "Fill out this form to disable a user: their sessions end and they cannot log in until re-enabled.",
            jidMulti("accountjids", "The Jabber ID(s) to disable", required=True),
        )

    def _reenableUserForm(self, requester: Requester, submitted: Any, state: dict[str, Any]) -> data_form.Form:
        return _adminForm(
            "Re-Enable a User",
            "Fill out this form to re-enable a user.",
            jidMulti("accountjids", "The Jabber ID(s) to re-enable", required=True),
        )

    async def _lock(self, requester: Requester, submitted: data_form.Form, locked: bool) -> Completed:
        accounts = self._accounts(submitted["accountjids"])
        actor = requester.bare.userhost()
        done: list[str] = []
        missing: list[str] = []
        for account in accounts:
            bare = account.userhost()
            try:
                closed = await self.control.lock(bare, locked, actor)
            except NoSuchAccount:
                missing.append(bare)
                continue
            done.append(f"{bare} ({_plural(closed, 'session')} ended)" if closed else bare)
        return self._outcome("Disabled" if locked else "Re-enabled", done, missing)

    async def _disableUser(self, requester: Requester, submitted: data_form.Form, state: dict[str, Any]) -> Completed:
        return await self._lock(requester, submitted, True)

    async def _reenableUser(
        self, requester: Requester, submitted: data_form.Form, state: dict[str, Any]
    ) -> Completed:
        return await self._lock(requester, submitted, False)

    # --- end user session (section 4.5) ---------------------------------------

    def _endUserSessionForm(self, requester: Requester, submitted: Any, state: dict[str, Any]) -> data_form.Form:
        return _adminForm(
            "Ending a User Session",
            "Fill out this form to end a user's session: a bare JID ends all of its sessions, a full JID that one.",
            jidMulti("accountjids", "The Jabber ID(s) for which to end sessions", required=True),
        )

    async def _endUserSession(
        self, requester: Requester, submitted: data_form.Form, state: dict[str, Any]
    ) -> Completed:
        targets = self._accounts(submitted["accountjids"], fullAllowed=True)
        actor = requester.bare.userhost()
        ended: list[str] = []
        for target in targets:
            try:
                closed = await self.control.kick(target.full(), actor)
            except InvalidJID as e:
                raise InvalidInput(str(e)) from None
            ended.append(f"{target.full()}: {_plural(closed, 'session')}")
        return Completed((Note(f"Ended {'; '.join(ended)}"),))

    # --- change user password (section 4.7) -----------------------------------

    def _changePasswordForm(self, requester: Requester, submitted: Any, state: dict[str, Any]) -> data_form.Form:
        return _adminForm(
            "Changing a User Password",
            "Fill out this form to change a user's password. Their sessions that logged in"
            " with the old password end.",
            jidSingle("accountjid", "The Jabber ID for this account", required=True),
            textPrivate("password", "The password for this account", required=True),
        )

    async def _changePassword(
        self, requester: Requester, submitted: data_form.Form, state: dict[str, Any]
    ) -> Completed:
        account = self._account(submitted["accountjid"]).userhost()
        if not await self.store.accountExists(account):
            raise InvalidInput(f"There is no account {account}")
        credentials = await self._credentials(submitted["password"])
        try:
            await self.store.setCredentials(account, credentials)
        except NoSuchAccount:
            raise InvalidInput(f"There is no account {account}") from None
        actor = requester.bare.userhost()
        log.info("{actor} changed the password of {account}", actor=actor, account=account)
        await self._audit(actor, "user.passwd", account)
        # The sessions that logged in with the old password end, as after
        # `xmppcert user passwd`.
        closed = await self.control.passwordChanged(account, actor)
        text = f"Changed the password of {account}"
        if closed:
            text += f"; {_plural(closed, 'password session')} ended"
        return Completed((Note(text),))

    # --- counts and lists (sections 4.13, 4.15, 4.20) ---------------------------

    def _online(self) -> list[jid.JID]:
        """
        The accounts with at least one live session, sorted.
        """
        accounts = {s.jid.userhost() for s in self.sessions.allSessions() if not s.closed}
        return [jid.JID(a) for a in sorted(accounts)]

    async def _registeredUsersNum(self, requester: Requester, submitted: Any, state: dict[str, Any]) -> Completed:
        count = 0
        for domain in sorted(self.domains):
            count += len(await self.store.listAccounts(domain))
        return Completed(form=_result("registeredusersnum", "The number of registered users", str(count)))

    def _onlineUsersNum(self, requester: Requester, submitted: Any, state: dict[str, Any]) -> Completed:
        count = len(self._online())
        return Completed(form=_result("onlineusersnum", "The number of online users", str(count)))

    def _onlineUsersForm(self, requester: Requester, submitted: Any, state: dict[str, Any]) -> data_form.Form:
        return _adminForm(
            "Requesting List of Online Users",
            "Fill out this form to request the online users of this service.",
            listSingle(
                "max_items",
                "Maximum number of items to show",
                [(v, "None" if v == "none" else v) for v in MAX_ITEMS_CHOICES],
                value="100",
            ),
        )

    def _onlineUsersList(self, requester: Requester, submitted: data_form.Form, state: dict[str, Any]) -> Completed:
        choice = submitted["max_items"] or "100"
        online = self._online()
        shown = online if choice == "none" else online[: int(choice)]
        result: tuple[Note, ...] = ()
        if len(shown) < len(online):
            result = (Note(f"Showing {len(shown)} of {len(online)} online users", "warn"),)
        return Completed(result, _result("onlineuserjids", "The list of all online users", shown))


__all__ = [
    "ADD_USER",
    "CHANGE_USER_PASSWORD",
    "DELETE_USER",
    "DISABLE_USER",
    "END_USER_SESSION",
    "GET_ONLINE_USERS_LIST",
    "GET_ONLINE_USERS_NUM",
    "GET_REGISTERED_USERS_NUM",
    "MAX_ITEMS_CHOICES",
    "NS_ADMIN",
    "REENABLE_USER",
    "AdminCommands",
    "deletedError",
]
