# -*- test-case-name: tests.test_adhoc_certificates -*-
"""
Certificate management over ad-hoc commands (XEP-0050), for the clients
that have no XEP-0257 interface: almost all of them can run commands.

Every account, on its own account (nodes under L{NS_CERTS}):

  - C{#list}: its certificates, as a table (XEP-0004 section 3.4);
  - C{#add}: register a certificate pasted as PEM;
  - C{#disable}, C{#revoke}: choose certificates and change them; a
    revocation is confirmed first (it is final) and ends their sessions
    at once;
  - C{#sessions}: its live sessions, and end some of them.

A session that logged in with a certificate registered with
C{<no-cert-management/>} may list certificates and see its sessions,
nothing else, as over XEP-0257. The commands that would change something
are not listed for it in discovery, and running one anyway is
C{forbidden}: XEP-0050 section 3.2 lets a responder offer only what the
requester may run, and a client that cannot use a command has no reason
to show it; its C{#sessions} shows the sessions without offering to end
them.

The administrators (C{isAdmin}: the C{admins} of the configuration) have
the same commands on any account of a served domain, under
L{NS_CERTS_ADMIN}: each starts with a form asking for the account. They
act as L{Actor.administrator}, so the audit trail names the administrator;
sessions they end are recorded as C{session.kick} by them, through the
control channel's kick, as for C{xmppcert kick}.

Everything goes through the certificate manager
(L{xmppcert.certificates.ICertificateManager}), whose refusals are said
for a person: what the person can fix (a name taken, a certificate that
cannot be registered and why, the limit reached) shows the form again with
the reason; L{NotAllowed} is C{forbidden}; a store failure is
C{internal-server-error} (type C{wait}), logged by the framework as a
warning.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish

# wokkel 18 imports only once xmppcert has installed its compatibility shim.
import xmppcert  # noqa: F401

# isort: split
from wokkel import data_form

from xmppcert import x509
from xmppcert.adhoc.forms import (
    InvalidInput,
    boolean,
    fixed,
    jidSingle,
    listMulti,
    makeForm,
    resultForm,
    textMulti,
    textOf,
    textSingle,
)
from xmppcert.adhoc.framework import (
    Command,
    CommandService,
    Completed,
    ICommand,
    Note,
    Requester,
    Show,
)
from xmppcert.certificates import (
    Actor,
    CertificateAlreadyRegistered,
    CertificateInfo,
    CertificateLimitReached,
    CertificateManagementError,
    CertificateNameTaken,
    CertificateNotAcceptable,
    ICertificateManager,
    InvalidCertificateName,
    NoSuchAccount,
    NoSuchCertificate,
    NotAllowed,
    Problem,
    RevocationIsFinal,
    StoreUnavailable,
)
from xmppcert.control import ControlChannel

#: The commands an account runs on itself; also their forms' C{FORM_TYPE}.
NS_CERTS = "urn:xmppcert:certs"

#: The administrators' commands, on any account.
NS_CERTS_ADMIN = "urn:xmppcert:certs:admin"

LIST = f"{NS_CERTS}#list"
ADD = f"{NS_CERTS}#add"
DISABLE = f"{NS_CERTS}#disable"
REVOKE = f"{NS_CERTS}#revoke"
SESSIONS = f"{NS_CERTS}#sessions"

ADMIN_LIST = f"{NS_CERTS_ADMIN}#list"
ADMIN_ADD = f"{NS_CERTS_ADMIN}#add"
ADMIN_DISABLE = f"{NS_CERTS_ADMIN}#disable"
ADMIN_REVOKE = f"{NS_CERTS_ADMIN}#revoke"
ADMIN_SESSIONS = f"{NS_CERTS_ADMIN}#sessions"

#: Whether a new certificate may manage certificates when the form does
#: not say: yes, as a XEP-0257 C{append} without C{<no-cert-management/>}.
DEFAULT_MAY_MANAGE = True

#: The longest certificate paste looked at: a PEM certificate of the
#: largest size the server accepts (16 KiB of DER) is under 23,000
#: characters.
MAX_PASTE = 32 * 1024

#: The state key under which an administrator's command keeps the account.
_ACCOUNT = "account"

#: What a stage is given: the submission (C{None} for the first) and the
#: session's state.
_Submitted: TypeAlias = "data_form.Form | None"
_State: TypeAlias = "dict[str, Any]"

_Stage: TypeAlias = Callable[[Requester, _Submitted, _State], Awaitable[Any]]


# --- tables (XEP-0004 section 3.4) -------------------------------------------


class ReportForm(data_form.Form):
    """
    A form of type C{result} that reports a table: a C{<reported/>}
    element defining the columns, then one C{<item/>} per row (XEP-0004
    section 3.4), which wokkel's L{data_form.Form} does not render.

    @ivar columns: the column definitions (fields with a C{var}, a type
        and a label, and no value).
    @ivar rows: the values of each row, by C{var}; every row has every
        column (XEP-0004: an item MUST contain each reported field), a
        missing value being sent empty.
    """

    def __init__(
        self,
        columns: Sequence[data_form.Field],
        rows: Iterable[Mapping[str, Any]] = (),
        title: str | None = None,
        instructions: Sequence[str] = (),
        formNamespace: str | None = None,
    ) -> None:
        data_form.Form.__init__(
            self, "result", title=title, instructions=list(instructions), formNamespace=formNamespace
        )
        if not columns or any(c.var is None for c in columns):
            raise ValueError("a table has columns, each with a var")
        self.columns = list(columns)
        self.rows = [dict(row) for row in rows]

    def toElement(self) -> domish.Element:
        element: domish.Element = data_form.Form.toElement(self)
        reported = element.addElement("reported")
        for column in self.columns:
            definition = data_form.Field(
                fieldType=column.fieldType, var=column.var, label=column.label, desc=column.desc
            )
            # As a form's field: with its type and label, without values.
            reported.addChild(definition.toElement(True))
        for row in self.rows:
            item = element.addElement("item")
            for column in self.columns:
                value = row.get(column.var)
                values = ["" if value is None else value]
                item.addChild(data_form.Field(fieldType=None, var=column.var, values=values).toElement())
        return element


def _column(var: str, label: str, fieldType: str = "text-single") -> data_form.Field:
    return data_form.Field(fieldType=fieldType, var=var, label=label)


#: The columns of C{#list}.
CERTIFICATE_COLUMNS = (
    ("name", "Name", "text-single"),
    ("state", "State", "text-single"),
    ("fingerprint", "SHA-256 fingerprint", "text-single"),
    ("expires", "Expires", "text-single"),
    ("last-used", "Last used", "text-single"),
    ("may-manage", "May manage certificates", "boolean"),
    ("resources", "Logged in now as", "text-single"),
)

#: The columns of C{#sessions}.
SESSION_COLUMNS = (
    ("resource", "Resource", "text-single"),
    ("address", "Address", "text-single"),
    ("mechanism", "Login", "text-single"),
    ("certificate", "Certificate", "text-single"),
    ("since", "Since", "text-single"),
)


def _formatTime(moment: float | None, never: str = "never") -> str:
    """
    A time for people, in UTC to the minute, as C{xmppcert cert list}
    shows it.
    """
    if moment is None:
        return never
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _shortFingerprint(fingerprint: str) -> str:
    return x509.displayFingerprint(fingerprint[:16]) + "..."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _mayManage(requester: Requester) -> bool:
    """
    Whether the login may change certificates: not one with a certificate
    registered with C{<no-cert-management/>}.
    """
    return requester.account is None or requester.account.canManageCertificates


@dataclass(frozen=True)
class _Target:
    """
    Whom a command acts for and on.

    @ivar actor: the account itself, or the administrator.
    @ivar account: the bare JID acted on.
    """

    actor: Actor
    account: str

    @property
    def own(self) -> bool:
        return self.actor.isAccount


def _reachable(
    certificates: Sequence[CertificateInfo], states: Sequence[str], own: bool
) -> list[CertificateInfo]:
    """
    The certificates that a change by name reaches, for a change that
    applies to C{states}, each once: what the manager picks for a name
    (L{ICertificateManager}: for the account, among the certificates in
    C{states}, the enabled one, else the most recently changed; for an
    administrator, among all, likewise), and only when it is in C{states}.
    Names are what the manager takes, so a certificate that shares its name
    with the one picked is not offered until that one has changed.
    """
    picked: dict[str, CertificateInfo] = {}
    for certificate in certificates:
        if own and certificate.state not in states:
            continue
        best = picked.get(certificate.name)
        key = (certificate.state == "enabled", certificate.changedAt, certificate.createdAt)
        if best is None or key > (best.state == "enabled", best.changedAt, best.createdAt):
            picked[certificate.name] = certificate
    return [c for c in certificates if picked.get(c.name) is c and c.state in states]


def _optionLabel(certificate: CertificateInfo) -> str:
    return (
        f"{certificate.name} ({certificate.state}, expires {_formatTime(certificate.notAfter)},"
        f" {_shortFingerprint(certificate.fingerprint)})"
    )


class CertificateCommands:
    """
    The certificate commands, for every account on itself and for the
    administrators C{isAdmin} names on any account.

    @ivar manager: the certificate manager every change goes through.
    @ivar control: the control channel, whose session listing and kick the
        C{#sessions} commands use.
    @ivar domains: the served domains; administrators name accounts there.
    """

    def __init__(
        self,
        manager: ICertificateManager,
        control: ControlChannel,
        isAdmin: Callable[[jid.JID], bool],
    ) -> None:
        """
        @param isAdmin: whether a bare JID is an administrator's; asked at
            every request, so a right withdrawn stops a command under way.
        """
        self.manager = manager
        self.control = control
        self.sessions = control.sessions
        self.isAdmin = isAdmin

    # --- who may --------------------------------------------------------------

    def mayChange(self, requester: Requester) -> bool:
        """
        Who may run the commands that change certificates on their own
        account: any login but one with a C{<no-cert-management/>}
        certificate.
        """
        return _mayManage(requester)

    def mayAdminister(self, requester: Requester) -> bool:
        """
        Who may run the administrators' commands that only look: the
        administrators.
        """
        return bool(self.isAdmin(requester.bare))

    def mayAdministerChanges(self, requester: Requester) -> bool:
        """
        Who may run the administrators' commands that change certificates:
        administrators, but not from a C{<no-cert-management/>} login.
        """
        return self.mayAdminister(requester) and _mayManage(requester)

    # --- the commands -----------------------------------------------------------

    def commands(self) -> list[ICommand]:
        """
        The commands: the account's own, then the administrators'.
        """
        forAccount = self._forAccount
        return [
            Command(LIST, "List my certificates", [self._list]),
            Command(ADD, "Add a certificate", [self._addForm, self._add], self.mayChange),
            Command(DISABLE, "Disable certificates", [self._disableForm, self._disable], self.mayChange),
            Command(
                REVOKE, "Revoke certificates",
                [self._revokeForm, self._revokeConfirm, self._revoke], self.mayChange,
            ),
            Command(SESSIONS, "My sessions", [self._sessionsForm, self._endSessions]),
            Command(
                ADMIN_LIST, "List the certificates of an account",
                [self._accountForm, forAccount(self._list)], self.mayAdminister,
            ),
            Command(
                ADMIN_ADD, "Add a certificate to an account",
                [self._accountForm, forAccount(self._addForm), self._add], self.mayAdministerChanges,
            ),
            Command(
                ADMIN_DISABLE, "Disable certificates of an account",
                [self._accountForm, forAccount(self._disableForm), self._disable], self.mayAdministerChanges,
            ),
            Command(
                ADMIN_REVOKE, "Revoke certificates of an account",
                [self._accountForm, forAccount(self._revokeForm), self._revokeConfirm, self._revoke],
                self.mayAdministerChanges,
            ),
            Command(
                ADMIN_SESSIONS, "Sessions of an account",
                [self._accountForm, forAccount(self._sessionsForm), self._endSessions], self.mayAdminister,
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

    # --- helpers ------------------------------------------------------------------

    @staticmethod
    def _target(requester: Requester, state: Mapping[str, Any]) -> _Target:
        """
        The account a command acts on: the one an administrator chose, else
        the requester's own. Only the administrators' commands put an
        account in the state, which the requester never writes.
        """
        account = state.get(_ACCOUNT)
        if account is None:
            actor = Actor.ofAccount(requester.bare, requester.jid, _mayManage(requester))
            return _Target(actor, requester.bare.userhost())
        return _Target(Actor.administrator(requester.bare.userhost()), account)

    @staticmethod
    def _refusal(e: CertificateManagementError) -> Exception:
        """
        What to raise for a refusal of the manager that the person cannot
        fix by changing what they typed.
        """
        if isinstance(e, StoreUnavailable):
            # Raised as what the store raised, the framework answers
            # internal-server-error (wait) and logs it, rate-limited.
            if isinstance(e.cause, Exception):
                return e.cause
            return error.StanzaError("internal-server-error", type="wait")
        if isinstance(e, NotAllowed):
            return error.StanzaError(
                "forbidden", type="cancel", text="This session's certificate may not manage certificates"
            )
        if isinstance(e, NoSuchAccount):
            return error.StanzaError("item-not-found", type="cancel", text=f"There is no account {e.account}")
        return error.StanzaError("internal-server-error", type="cancel", text=str(e))

    @staticmethod
    def _form(title: str, instructions: str | Sequence[str], *fields: data_form.Field) -> data_form.Form:
        return makeForm(title, instructions, fields, formNamespace=NS_CERTS)

    async def _certificates(
        self, target: _Target, states: Sequence[str] | None = None
    ) -> list[CertificateInfo]:
        try:
            return list(await self.manager.list(target.actor, target.account, states))
        except CertificateManagementError as e:
            raise self._refusal(e) from None

    # --- the account (administrators) -----------------------------------------------

    async def _accountForm(self, requester: Requester, submitted: Any, state: _State) -> data_form.Form:
        return self._form(
            "Choosing an Account",
            "Whose certificates and sessions? Give the account's bare JID (user@domain).",
            jidSingle("accountjid", "The account", required=True),
        )

    async def _account(self, requester: Requester, submitted: data_form.Form | None) -> str:
        """
        @return: the account an administrator named, which exists.
        @raise InvalidInput: they named none of a served domain, or one
            that does not exist.
        """
        address = submitted["accountjid"] if submitted is not None else None
        if address is None:
            raise InvalidInput("Give the account's JID")
        if not address.user:
            raise InvalidInput(f"{address.full()} names no account: it has no localpart (user@domain)")
        if address.resource is not None:
            raise InvalidInput(f"{address.full()} is a full JID; give the bare JID {address.userhost()}")
        if address.host not in self.domains:
            raise InvalidInput(f"{address.host} is not a domain of this server")
        account = address.userhost()
        target = _Target(Actor.administrator(requester.bare.userhost()), account)
        try:
            await self.manager.list(target.actor, account, ["enabled"])
        except NoSuchAccount:
            raise InvalidInput(f"There is no account {account}") from None
        except CertificateManagementError as e:
            raise self._refusal(e) from None
        return account

    def _forAccount(self, stage: _Stage) -> _Stage:
        """
        An administrator's stage after the account form: keep the account
        named, then go on as C{stage} on it.
        """

        async def onAccount(requester: Requester, submitted: _Submitted, state: _State) -> Any:
            state[_ACCOUNT] = await self._account(requester, submitted)
            return await stage(requester, None, state)

        return onAccount

    # --- list ---------------------------------------------------------------------------

    async def _list(self, requester: Requester, submitted: Any, state: _State) -> Completed:
        target = self._target(requester, state)
        listed = await self._certificates(target)
        rows = [
            {
                "name": c.name,
                "state": c.state,
                "fingerprint": x509.displayFingerprint(c.fingerprint),
                "expires": _formatTime(c.notAfter),
                "last-used": _formatTime(c.lastUsedAt),
                "may-manage": c.mayManage,
                "resources": ", ".join(c.resources),
            }
            for c in listed
        ]
        whose = "My Certificates" if target.own else f"Certificates of {target.account}"
        table = ReportForm(
            [_column(var, label, kind) for var, label, kind in CERTIFICATE_COLUMNS], rows, whose,
            formNamespace=NS_CERTS,
        )
        enabled = sum(1 for c in listed if c.state == "enabled")
        if listed:
            text = f"{_plural(len(listed), 'certificate')}, {enabled} enabled"
        else:
            text = "No certificates" if not target.own else "You have no certificates"
        return Completed((Note(text),), table)

    # --- add ----------------------------------------------------------------------------

    async def _addForm(self, requester: Requester, submitted: Any, state: _State) -> data_form.Form:
        target = self._target(requester, state)
        whose = "" if target.own else f" to {target.account}"
        return self._form(
            f"Adding a Certificate{whose}",
            [
                "Paste the device's certificate (PEM, '-----BEGIN CERTIFICATE-----' and all)"
                " and give it a name. The device then logs in with it, without a password"
                " (SASL EXTERNAL).",
                "A certificate that may not manage certificates can list them, but not add,"
                " disable or revoke any.",
            ],
            textSingle("name", "Name (e.g. the device)", required=True),
            textMulti("certificate", "Certificate (PEM)", required=True),
            boolean("may-manage", "It may manage certificates", value=DEFAULT_MAY_MANAGE),
        )

    async def _add(self, requester: Requester, submitted: _Submitted, state: _State) -> Completed:
        assert submitted is not None
        target = self._target(requester, state)
        name = (submitted["name"] or "").strip()
        pem = textOf(submitted, "certificate").strip()
        if len(pem) > MAX_PASTE:
            raise InvalidInput(f"That is not a certificate: more than {MAX_PASTE} characters")
        if "\n" not in pem and "," in pem:
            # Some clients (Converse.js) send a text-multi's lines joined
            # by commas; neither PEM nor base64 has any.
            pem = pem.replace(",", "\n")
        mayManage = submitted["may-manage"]
        if mayManage is None:
            mayManage = DEFAULT_MAY_MANAGE
        if not name:
            raise InvalidInput("Give the certificate a name")
        if not pem:
            raise InvalidInput("Paste the certificate")
        try:
            added = await self.manager.add(
                target.actor, target.account, name, pem.encode("utf-8"), mayManage=mayManage
            )
        except CertificateManagementError as e:
            raise self._addRefusal(target, e) from None
        fingerprint = x509.displayFingerprint(added.fingerprint)
        manages = "it may manage certificates" if added.mayManage else "it may not manage certificates"
        whose = "" if target.own else f" to {target.account}"
        text = f"Added certificate {added.name!r}{whose} (SHA-256 {fingerprint}); {manages}"
        result = resultForm(
            [
                textSingle("name", "Name", added.name),
                textSingle("fingerprint", "SHA-256 fingerprint", fingerprint),
                textSingle("expires", "Expires", _formatTime(added.notAfter)),
                boolean("may-manage", "May manage certificates", added.mayManage),
            ],
            formNamespace=NS_CERTS,
        )
        return Completed((Note(text),), result)

    def _addRefusal(self, target: _Target, e: CertificateManagementError) -> Exception:
        """
        An add refused: what the person can fix shows the form again.
        """
        if isinstance(e, CertificateNameTaken):
            return InvalidInput(f"An enabled certificate is named {e.name!r} already: choose another name")
        if isinstance(e, InvalidCertificateName):
            return InvalidInput(f"This name cannot be used: {e}")
        if isinstance(e, CertificateNotAcceptable):
            if e.problem is Problem.UNREADABLE:
                return InvalidInput(f"This is not a certificate: {e.reason}")
            return InvalidInput(f"This certificate cannot be registered: {e.reason}")
        if isinstance(e, CertificateLimitReached):
            return InvalidInput(
                f"{target.account} has {_plural(e.limit, 'enabled certificate')}, the most it may have:"
                " disable or revoke one first"
            )
        if isinstance(e, CertificateAlreadyRegistered):
            if e.name is not None:
                return InvalidInput(f"This certificate is registered already, as {e.name!r}")
            if e.revoked and not target.own:
                return InvalidInput(
                    "This certificate was revoked, which is final: it can never be registered again"
                )
            # Whose it is, or whether it was revoked, is not the account's
            # business.
            return InvalidInput("This certificate is registered already")
        return self._refusal(e)

    # --- disable and revoke ---------------------------------------------------------------

    async def _chooseForm(
        self, requester: Requester, state: _State, states: Sequence[str], verb: str, instructions: str
    ) -> data_form.Form | Completed:
        target = self._target(requester, state)
        candidates = _reachable(await self._certificates(target), states, target.own)
        if not candidates:
            whose = "You have" if target.own else f"{target.account} has"
            return Completed((Note(f"{whose} no certificate to {verb}"),))
        # What each name offered stood for, to say what is confirmed.
        state["offered"] = {c.name: c.fingerprint for c in candidates}
        whose = "" if target.own else f" of {target.account}"
        return self._form(
            f"{verb.capitalize()} Certificates{whose}",
            instructions,
            listMulti(
                "certificates", f"Certificates to {verb}",
                [(c.name, _optionLabel(c)) for c in candidates], required=True,
            ),
        )

    @staticmethod
    def _chosen(submitted: data_form.Form | None, verb: str) -> list[str]:
        names = list(submitted["certificates"]) if submitted is not None else []
        if not names:
            raise InvalidInput(f"Choose at least one certificate to {verb}, or cancel")
        return names

    async def _change(
        self, requester: Requester, state: _State, names: Sequence[str], verb: str
    ) -> Completed:
        """
        Disable or revoke each certificate of C{names} in turn; one that
        changed meanwhile does not stop the others.
        """
        target = self._target(requester, state)
        change = self.manager.disable if verb == "disable" else self.manager.revoke
        states = ("enabled",) if verb == "disable" else ("enabled", "disabled")
        offered: Mapping[str, str] = state.get("offered", {})
        done: list[str] = []
        already: list[str] = []
        gone: list[str] = []
        for name in names:
            # The manager acts by name: if the name now picks another
            # certificate than the one shown (one added or changed
            # meanwhile), nothing is done to it; revoking is final.
            reachable = _reachable(await self._certificates(target), states, target.own)
            picked = next((c.fingerprint for c in reachable if c.name == name), None)
            if picked is None or picked != offered.get(name, picked):
                gone.append(name)
                continue
            try:
                [outcome] = await change(target.actor, target.account, [name])
            except (NoSuchCertificate, RevocationIsFinal):
                gone.append(name)
                continue
            except CertificateManagementError as e:
                raise self._refusal(e) from None
            described = f"{name!r} ({_shortFingerprint(outcome.certificate.fingerprint)})"
            (done if outcome.changed else already).append(described)
        past = f"{verb}d"
        result: list[Note] = []
        if done:
            text = f"{past.capitalize()}: {', '.join(done)}"
            if verb == "revoke":
                text += "; their sessions end now"
            result.append(Note(text))
        if already:
            result.append(Note(f"{past.capitalize()} already: {', '.join(already)}", "warn"))
        if gone:
            result.append(Note(f"No longer there to {verb} (changed meanwhile): {_names(gone)}", "error"))
        return Completed(tuple(result))

    async def _disableForm(
        self, requester: Requester, submitted: Any, state: _State
    ) -> data_form.Form | Completed:
        return await self._chooseForm(
            requester, state, ("enabled",), "disable",
            "A disabled certificate can no longer log in; sessions that logged in with it stay."
            " Adding it again enables it.",
        )

    async def _disable(self, requester: Requester, submitted: _Submitted, state: _State) -> Completed:
        return await self._change(requester, state, self._chosen(submitted, "disable"), "disable")

    async def _revokeForm(
        self, requester: Requester, submitted: Any, state: _State
    ) -> data_form.Form | Completed:
        return await self._chooseForm(
            requester, state, ("enabled", "disabled"), "revoke",
            "A revoked certificate can never log in again, nor be registered again; the sessions"
            " that logged in with it end at once. You are asked to confirm next.",
        )

    async def _revokeConfirm(self, requester: Requester, submitted: _Submitted, state: _State) -> Show:
        names = self._chosen(submitted, "revoke")
        state["revoking"] = names
        target = self._target(requester, state)
        offered: Mapping[str, str] = state["offered"]
        lines = [f"{name}: {x509.displayFingerprint(offered[name])}" for name in names]
        notes: tuple[Note, ...] = ()
        own = requester.account.certificateFingerprint if requester.account is not None else None
        if target.account == requester.bare.userhost() and own in {offered[name] for name in names}:
            notes = (Note("This session logged in with one of them: it ends too.", "warn"),)
        whose = "" if target.own else f" of {target.account}"
        form = self._form(
            f"Revoking {_plural(len(names), 'Certificate')}{whose}",
            "Revoking is final: these certificates can never log in or be registered again,"
            " and their sessions end now.",
            *[fixed(line) for line in lines],
            boolean("confirm", "Yes, revoke them", value=False),
        )
        return Show(form, notes)

    async def _revoke(self, requester: Requester, submitted: _Submitted, state: _State) -> Completed:
        if submitted is None or submitted["confirm"] is not True:
            raise InvalidInput("Tick 'Yes, revoke them' to revoke, or cancel")
        return await self._change(requester, state, state["revoking"], "revoke")

    # --- sessions -----------------------------------------------------------------------------

    @staticmethod
    def _sessionRow(described: Mapping[str, Any]) -> dict[str, str]:
        certificate = described.get("certificate") or ""
        fingerprint = described.get("fingerprint")
        if not certificate and fingerprint:
            certificate = _shortFingerprint(fingerprint)
        return {
            "resource": jid.JID(described["jid"]).resource or "",
            "address": described.get("address") or "",
            "mechanism": described.get("mechanism") or "",
            "certificate": certificate,
            "since": _formatTime(described.get("boundAt"), never=""),
        }

    async def _sessionsForm(self, requester: Requester, submitted: Any, state: _State) -> Show | Completed:
        target = self._target(requester, state)
        listed = (await self.control.listSessions(target.account))["sessions"]
        rows = [self._sessionRow(s) for s in listed]
        others = [s for s in listed if s["jid"] != requester.jid.full()]
        whose = "My Sessions" if target.own else f"Sessions of {target.account}"
        if not _mayManage(requester) or not others:
            columns = [_column(var, label) for var, label, _ in SESSION_COLUMNS]
            table = ReportForm(columns, rows, whose, formNamespace=NS_CERTS)
            text = _plural(len(listed), "live session") if listed else "No live sessions"
            notes = [Note(text)]
            if listed and not _mayManage(requester):
                notes.append(Note("This session's certificate may not end sessions", "warn"))
            return Completed(tuple(notes), table)
        # The sessions offered, each known by when it bound: one that ends
        # meanwhile and whose resource binds again is another session.
        state["sessions"] = {s["jid"]: s.get("boundAt") for s in others}
        options = []
        for described in others:
            row = self._sessionRow(described)
            label = f"{row['resource']}: {row['address'] or 'no address'}, {row['mechanism']}"
            if row["certificate"]:
                label += f", certificate {row['certificate']}"
            if row["since"]:
                label += f", since {row['since']}"
            options.append((described["jid"], label))
        fields: list[data_form.Field] = []
        if len(others) < len(listed):
            own = requester.jid.resource
            fields.append(fixed(f"This session ({own}) is not offered: log out to end it."))
        fields.append(listMulti("sessions", "Sessions to end", options, required=True))
        form = self._form(whose, "Choose the sessions to end: their clients are disconnected.", *fields)
        return Show(form, (Note(_plural(len(listed), "live session")),))

    async def _endSessions(
        self, requester: Requester, submitted: _Submitted, state: _State
    ) -> Completed:
        if not _mayManage(requester):
            # Never shown the choice (it sees a table); refused all the same.
            raise error.StanzaError(
                "forbidden", type="cancel", text="This session's certificate may not end sessions"
            )
        chosen = list(submitted["sessions"]) if submitted is not None else []
        if not chosen:
            raise InvalidInput("Choose at least one session to end, or cancel")
        target = self._target(requester, state)
        actor = target.actor.name
        offered: Mapping[str, float | None] = state["sessions"]
        ended: list[str] = []
        gone: list[str] = []
        for full in chosen:
            address = jid.JID(full)
            session = self.sessions.sessionFor(address)
            if session is None or session.closed or session.info.get("boundAt") != offered.get(full):
                gone.append(address.resource or full)
                continue
            # The control channel's kick: recorded as session.kick by the
            # actor, as `xmppcert kick` is.
            if await self.control.kick(full, actor, byUser=target.own):
                ended.append(address.resource or full)
            else:
                gone.append(address.resource or full)
        result: list[Note] = []
        if ended:
            result.append(Note(f"Ended: {', '.join(ended)}"))
        if gone:
            result.append(Note(f"Ended already: {', '.join(gone)}", "warn"))
        return Completed(tuple(result))


__all__ = [
    "ADD",
    "ADMIN_ADD",
    "ADMIN_DISABLE",
    "ADMIN_LIST",
    "ADMIN_REVOKE",
    "ADMIN_SESSIONS",
    "CERTIFICATE_COLUMNS",
    "DEFAULT_MAY_MANAGE",
    "DISABLE",
    "LIST",
    "NS_CERTS",
    "NS_CERTS_ADMIN",
    "REVOKE",
    "SESSIONS",
    "SESSION_COLUMNS",
    "CertificateCommands",
    "ReportForm",
]
