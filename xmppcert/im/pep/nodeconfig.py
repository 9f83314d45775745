# -*- test-case-name: tests.test_im_pep_nodeconfig -*-
"""
The configuration of personal eventing nodes (XEP-0163, v1.2, on
XEP-0060): the fields this service knows, their defaults, the validation
of a configuration form (XEP-0060 section 8.2) and of publish-options
(section 7.1.5), and the forms shown to the owner.

A configuration is kept as the store keeps it
(L{PEPNode.config<xmppcert.store.interfaces.PEPNode>}): field variable to
its value in a canonical form: booleans C{"true"}/C{"false"},
C{pubsub#max_items} a positive integer or C{"max"}, a list-multi field's
values joined by newlines. L{NodeConfig} wraps it.

The defaults are those of Prosody's C{mod_pep} where XEP-0163 leaves room:
C{pubsub#access_model} C{presence} (XEP-0163 section 5: a MUST),
C{pubsub#send_last_published_item} C{on_sub_and_presence} (section 5),
C{pubsub#deliver_notifications} and C{pubsub#deliver_payloads} true
(section 5), C{pubsub#persist_items} true and C{pubsub#max_items} 1 (a PEP
node holds the user's current state; a client wanting history, such as
XEP-0402 bookmarks, asks for more, or C{max}), C{pubsub#notify_retract}
and C{pubsub#notify_delete} true (a contact's copy of the state stays
right).

Access models: C{open}, C{presence}, C{roster} (with
C{pubsub#roster_groups_allowed}) and C{whitelist}. The whitelist holds
the owner only: there is no affiliation management, so a C{whitelist}
node is private to its owner (XEP-0402 bookmarks want exactly that).
C{authorize} needs subscription requests the owner approves, which PEP's
implicit subscriptions do not have: it is refused with C{not-acceptable}
and C{<unsupported-access-model/>} (XEP-0060 section 8.1.2).

Errors, as XEP-0060 names them:

  - a configuration form (section 8.2.5.2) or a creation form (8.1.3)
    with an unknown field, a malformed value, or a value this service does
    not support: C{not-acceptable};
  - publish-options (section 7.1.5) with an unknown field or a malformed
    value ("it MUST reject the publication upon encountering unknown
    fields"; the section names no condition): C{bad-request} with
    C{<invalid-options/>}, the condition XEP-0060 gives an invalid set of
    options (section 6.3.6.2). Well-formed options that the node does not
    have: C{conflict} with C{<precondition-not-met/>}; for a node that
    does not exist yet, they become its configuration, checked as a
    creation form is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.words.protocols.jabber import error
from twisted.words.xish import domish
from wokkel import data_form

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_ERRORS = NS_PUBSUB + "#errors"
NS_PUBSUB_EVENT = NS_PUBSUB + "#event"
NS_PUBSUB_OWNER = NS_PUBSUB + "#owner"
NS_PUBSUB_NODE_CONFIG = NS_PUBSUB + "#node_config"
NS_PUBSUB_PUBLISH_OPTIONS = NS_PUBSUB + "#publish-options"
NS_X_DATA = "jabber:x:data"

ACCESS_AUTHORIZE = "authorize"
ACCESS_OPEN = "open"
ACCESS_PRESENCE = "presence"
ACCESS_ROSTER = "roster"
ACCESS_WHITELIST = "whitelist"

SEND_NEVER = "never"
SEND_ON_SUB = "on_sub"
SEND_ON_SUB_AND_PRESENCE = "on_sub_and_presence"

#: The value of C{pubsub#max_items} meaning "as many as the server allows"
#: (XEP-0060's data forms datatype C{pubsub:integer-or-max}).
MAX = "max"

#: The most characters of a text field (title, description, type) and of
#: a roster group name in C{pubsub#roster_groups_allowed}.
MAX_TEXT = 1023

#: The most groups C{pubsub#roster_groups_allowed} may name.
MAX_GROUPS = 100

#: The most digits of an integer a client gives (C{pubsub#max_items}, the
#: C{max_items} of an items request): a longer one is refused before it is
#: converted (Python refuses to convert thousands of digits, and an SQLite
#: integer has 64 bits).
MAX_DIGITS = 18

TEXT = "text-single"
BOOLEAN = "boolean"
LIST_SINGLE = "list-single"
LIST_MULTI = "list-multi"
#: A text-single field holding a positive integer or L{MAX}.
INTEGER_OR_MAX = "integer-or-max"

_TRUE = ("1", "true")
_FALSE = ("0", "false")


@dataclass(frozen=True)
class FieldSpec:
    """
    One configuration field.

    @ivar var: its variable (C{pubsub#...}).
    @ivar kind: L{TEXT}, L{BOOLEAN}, L{LIST_SINGLE}, L{LIST_MULTI} or
        L{INTEGER_OR_MAX}.
    @ivar label: shown in forms.
    @ivar default: its value for a new node, canonical.
    @ivar options: for L{LIST_SINGLE}: every value XEP-0060 defines (one
        outside them is malformed).
    @ivar supported: the (canonical) values this service honours, C{None}
        for any well-formed one; another is refused with
        C{not-acceptable}.
    """

    var: str
    kind: str
    label: str
    default: str
    options: tuple[str, ...] = ()
    supported: tuple[str, ...] | None = None


#: The fields of a node's configuration, in the order forms show them.
FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("pubsub#title", TEXT, "A friendly name for the node", ""),
    FieldSpec("pubsub#description", TEXT, "A description of the node", ""),
    FieldSpec("pubsub#type", TEXT, "The type of the payloads (usually a namespace)", ""),
    FieldSpec(
        "pubsub#access_model",
        LIST_SINGLE,
        "Who may retrieve items and be notified",
        ACCESS_PRESENCE,
        options=(ACCESS_AUTHORIZE, ACCESS_OPEN, ACCESS_PRESENCE, ACCESS_ROSTER, ACCESS_WHITELIST),
        supported=(ACCESS_OPEN, ACCESS_PRESENCE, ACCESS_ROSTER, ACCESS_WHITELIST),
    ),
    FieldSpec("pubsub#roster_groups_allowed", LIST_MULTI, "Roster groups allowed (access model roster)", ""),
    FieldSpec(
        "pubsub#max_items", INTEGER_OR_MAX, "The most items to keep; max for as many as the server allows", "1"
    ),
    FieldSpec("pubsub#persist_items", BOOLEAN, "Keep items in storage", "true"),
    FieldSpec(
        "pubsub#send_last_published_item",
        LIST_SINGLE,
        "When to send the last published item",
        SEND_ON_SUB_AND_PRESENCE,
        options=(SEND_NEVER, SEND_ON_SUB, SEND_ON_SUB_AND_PRESENCE),
    ),
    FieldSpec("pubsub#deliver_notifications", BOOLEAN, "Deliver event notifications", "true"),
    FieldSpec("pubsub#deliver_payloads", BOOLEAN, "Deliver payloads with event notifications", "true"),
    FieldSpec("pubsub#notify_retract", BOOLEAN, "Notify when items are removed", "true"),
    FieldSpec("pubsub#notify_delete", BOOLEAN, "Notify when the node is deleted", "true"),
    FieldSpec("pubsub#notify_config", BOOLEAN, "Notify when the configuration changes", "false", supported=("false",)),
    FieldSpec("pubsub#notify_sub", BOOLEAN, "Notify the owner of subscriptions", "false", supported=("false",)),
    FieldSpec(
        "pubsub#presence_based_delivery",
        BOOLEAN,
        "Deliver notifications only to available resources",
        "true",
        supported=("true",),
    ),
    FieldSpec(
        "pubsub#purge_offline", BOOLEAN, "Purge items when the publisher goes offline", "false", supported=("false",)
    ),
    FieldSpec(
        "pubsub#publish_model",
        LIST_SINGLE,
        "Who may publish",
        "publishers",
        options=("publishers", "subscribers", "open"),
        supported=("publishers",),
    ),
    FieldSpec(
        "pubsub#notification_type",
        LIST_SINGLE,
        "The message type of notifications",
        "headline",
        options=("normal", "headline"),
        supported=("headline",),
    ),
)

#: Field variable to its L{FieldSpec}.
FIELDS_BY_VAR: dict[str, FieldSpec] = {spec.var: spec for spec in FIELDS}


class InvalidOption(ValueError):
    """
    A field is unknown or its value is malformed.

    @ivar var: the field's variable.
    """

    def __init__(self, var: str, reason: str) -> None:
        ValueError.__init__(self, f"{var}: {reason}")
        self.var = var


def pubsubError(
    condition: str, pubsubCondition: str | None = None, text: str | None = None, feature: str | None = None
) -> error.StanzaError:
    """
    A stanza error with, when given, a condition of
    C{http://jabber.org/protocol/pubsub#errors} (XEP-0060 section 7, 8
    and XEP-0060's error schema), its type the default of C{condition}.
    """
    appCondition = None
    if pubsubCondition is not None:
        appCondition = domish.Element((NS_PUBSUB_ERRORS, pubsubCondition))
        if feature is not None:
            appCondition["feature"] = feature
    return error.StanzaError(condition, text=text, appCondition=appCondition)


def nodeIdRequired() -> error.StanzaError:
    """
    XEP-0060 sections 7.2.3.3 and 8.2.3.3 (and so for the other requests
    about a node): the request names no node: C{bad-request} with
    C{<nodeid-required/>}.
    """
    return pubsubError("bad-request", "nodeid-required", text="The request must name a node")


def positiveInteger(value: str) -> int | None:
    """
    @return: the value of a positive integer in ASCII digits, of at most
        L{MAX_DIGITS} digits; C{None} for anything else.
    """
    if not value or len(value) > MAX_DIGITS or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if number >= 1 else None


def _shown(value: str) -> str:
    # A client's value in an error text: not all of it.
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _single(var: str, values: Sequence[str]) -> str:
    if len(values) != 1:
        raise InvalidOption(var, "needs exactly one value")
    return values[0]


def canonicalValue(spec: FieldSpec, values: Sequence[str]) -> str:
    """
    The canonical form of a field's submitted values.

    @raise InvalidOption: they are malformed.
    """
    var = spec.var
    if spec.kind == TEXT:
        if len(values) > 1:
            raise InvalidOption(var, "takes one value")
        value = values[0] if values else ""
        if len(value) > MAX_TEXT:
            raise InvalidOption(var, f"may have at most {MAX_TEXT} characters")
        return value
    if spec.kind == BOOLEAN:
        value = _single(var, values).strip().lower()
        if value in _TRUE:
            return "true"
        if value in _FALSE:
            return "false"
        raise InvalidOption(var, f"{_shown(value)} is not a boolean")
    if spec.kind == LIST_SINGLE:
        value = _single(var, values).strip()
        if value not in spec.options:
            raise InvalidOption(var, f"{_shown(value)} is not one of {', '.join(spec.options)}")
        return value
    if spec.kind == INTEGER_OR_MAX:
        value = _single(var, values).strip()
        if value == MAX:
            return MAX
        number = positiveInteger(value)
        if number is None:
            raise InvalidOption(
                var, f"{_shown(value)} is neither a positive integer of at most {MAX_DIGITS} digits nor {MAX!r}"
            )
        return str(number)
    # LIST_MULTI: roster group names.
    groups = list(dict.fromkeys(value for value in values if value))
    if len(groups) > MAX_GROUPS:
        raise InvalidOption(var, f"may name at most {MAX_GROUPS} groups")
    for group in groups:
        if "\n" in group or len(group) > MAX_TEXT:
            raise InvalidOption(var, f"a group name has a line break or more than {MAX_TEXT} characters")
    return "\n".join(groups)


def parseValues(values: Mapping[str, str | Sequence[str]]) -> dict[str, str]:
    """
    Check submitted field values (a form's, or the publish options given
    to the programmatic API) and give them in canonical form.

    @param values: field variable to its value or values. C{FORM_TYPE} is
        ignored.
    @raise InvalidOption: a field is unknown or a value malformed.
    """
    parsed: dict[str, str] = {}
    for var, raw in values.items():
        if var == "FORM_TYPE":
            continue
        spec = FIELDS_BY_VAR.get(var)
        if spec is None:
            raise InvalidOption(var, "is not a field this service knows")
        listed = [raw] if isinstance(raw, str) else list(raw)
        if not all(isinstance(value, str) for value in listed):
            raise InvalidOption(var, "values must be strings")
        parsed[var] = canonicalValue(spec, listed)
    return parsed


@dataclass(frozen=True)
class SubmittedForm:
    """
    A data form (XEP-0004) as submitted.

    @ivar formType: its C{type} (C{submit}, C{cancel}, ...).
    @ivar formNamespace: its C{FORM_TYPE}, C{None} without one.
    @ivar values: field variable to its values, C{FORM_TYPE} left out.
    """

    formType: str
    formNamespace: str | None
    values: dict[str, list[str]] = field(default_factory=dict)


def _text(element: domish.Element) -> str:
    # str(element) is only the first text node; the parser may split text
    # (around entities) into several.
    return "".join(child for child in element.children if isinstance(child, str))


def parseForm(x: domish.Element) -> SubmittedForm:
    """
    Read a submitted C{<x xmlns='jabber:x:data'/>}.

    @raise ValueError: a field without C{var}, or twice the same field.
    """
    values: dict[str, list[str]] = {}
    formNamespace: str | None = None
    for child in x.elements(NS_X_DATA, "field"):
        var = child.getAttribute("var")
        if not var:
            raise ValueError("a field has no 'var'")
        fieldValues = [_text(value) for value in child.elements(NS_X_DATA, "value")]
        if var == "FORM_TYPE":
            formNamespace = fieldValues[0] if fieldValues else None
            continue
        if var in values:
            raise ValueError(f"the field {var} is there twice")
        values[var] = fieldValues
    return SubmittedForm(x.getAttribute("type") or "", formNamespace, values)


def findForm(parent: domish.Element) -> domish.Element | None:
    """
    @return: the first data form child of C{parent}, or C{None}.
    """
    for child in parent.elements(NS_X_DATA, "x"):
        return child
    return None


def invalidOptions(text: str) -> error.StanzaError:
    """
    XEP-0060 section 7.1.5 (and 6.3.6.2): publish-options that cannot be
    used: C{bad-request} with C{<invalid-options/>}.
    """
    return pubsubError("bad-request", "invalid-options", text=text)


def notAcceptable(text: str, pubsubCondition: str | None = None) -> error.StanzaError:
    """
    XEP-0060 section 8.2.5.2: a configuration that cannot be applied.
    """
    return pubsubError("not-acceptable", pubsubCondition, text=text)


def publishOptionsFromForm(x: domish.Element | None) -> dict[str, list[str]]:
    """
    The options of C{<publish-options/>} (XEP-0060 section 7.1.5): a
    submitted form whose C{FORM_TYPE} is
    C{http://jabber.org/protocol/pubsub#publish-options}.

    @param x: the form, C{None} when C{<publish-options/>} holds none.
    @return: field variable to its values, as submitted (checked by
        L{parsePreconditions}).
    @raise error.StanzaError: C{bad-request} with C{<invalid-options/>}
        for no form, a form of another type or C{FORM_TYPE}, or a
        malformed one.
    """
    if x is None:
        raise invalidOptions("publish-options needs a data form")
    try:
        form = parseForm(x)
    except ValueError as e:
        raise invalidOptions(f"Bad publish-options form: {e}") from None
    if form.formType != "submit":
        raise invalidOptions("The publish-options form must be of type 'submit'")
    if form.formNamespace != NS_PUBSUB_PUBLISH_OPTIONS:
        raise invalidOptions(f"The publish-options form needs the FORM_TYPE {NS_PUBSUB_PUBLISH_OPTIONS}")
    return form.values


def parsePreconditions(options: Mapping[str, str | Sequence[str]]) -> dict[str, str]:
    """
    Publish options given as values (see L{parseValues}).

    @raise error.StanzaError: C{bad-request} with C{<invalid-options/>}.
    """
    try:
        return parseValues(options)
    except InvalidOption as e:
        raise invalidOptions(f"Bad publish option {e}") from None


@dataclass(frozen=True)
class NodeConfig:
    """
    A node's configuration: every field of L{FIELDS}, canonical.

    @ivar values: field variable to canonical value.
    """

    values: Mapping[str, str]

    @classmethod
    def defaults(cls) -> NodeConfig:
        """
        The configuration of a new node (see the module docstring).
        """
        return cls({spec.var: spec.default for spec in FIELDS})

    @classmethod
    def fromStored(cls, stored: Mapping[str, str]) -> NodeConfig:
        """
        The configuration as stored; fields it lacks (added to this
        service later) have their defaults, unknown or unreadable ones are
        ignored.
        """
        values = {spec.var: spec.default for spec in FIELDS}
        for var, value in stored.items():
            spec = FIELDS_BY_VAR.get(var)
            if spec is None:
                continue
            try:
                values[var] = canonicalValue(spec, value.split("\n") if spec.kind == LIST_MULTI else [value])
            except InvalidOption:
                continue
        return cls(values)

    def asStored(self) -> dict[str, str]:
        return dict(self.values)

    def get(self, var: str) -> str:
        return self.values.get(var, FIELDS_BY_VAR[var].default)

    def flag(self, var: str) -> bool:
        return self.get(var) == "true"

    @property
    def accessModel(self) -> str:
        return self.get("pubsub#access_model")

    @property
    def rosterGroups(self) -> frozenset[str]:
        groups = self.get("pubsub#roster_groups_allowed")
        return frozenset(groups.split("\n")) if groups else frozenset()

    @property
    def persistItems(self) -> bool:
        return self.flag("pubsub#persist_items")

    @property
    def sendLastPublishedItem(self) -> str:
        return self.get("pubsub#send_last_published_item")

    @property
    def deliverNotifications(self) -> bool:
        return self.flag("pubsub#deliver_notifications")

    @property
    def deliverPayloads(self) -> bool:
        return self.flag("pubsub#deliver_payloads")

    @property
    def notifyRetract(self) -> bool:
        return self.flag("pubsub#notify_retract")

    @property
    def notifyDelete(self) -> bool:
        return self.flag("pubsub#notify_delete")

    @property
    def title(self) -> str:
        return self.get("pubsub#title")

    def maxItems(self, limit: int) -> int:
        """
        The most items the node keeps: C{pubsub#max_items}, C{max} meaning
        C{limit}, and never more than C{limit} (the server's limit may have
        been lowered since the node was configured).
        """
        value = self.get("pubsub#max_items")
        if value == MAX:
            return limit
        return max(1, min(int(value), limit))

    def changed(self, changes: Mapping[str, str]) -> NodeConfig:
        """
        @param changes: canonical values (from L{parseValues}).
        @return: this configuration with C{changes} applied (XEP-0004:
            fields not submitted keep their values).
        """
        values = dict(self.values)
        values.update(changes)
        return NodeConfig(values)

    def check(self, maxItemsLimit: int) -> None:
        """
        Check that this service honours this configuration.

        @raise error.StanzaError: C{not-acceptable}; with
            C{<unsupported-access-model/>} for an access model it does not
            support (XEP-0060 section 8.1.2).
        """
        for spec in FIELDS:
            value = self.get(spec.var)
            if spec.supported is not None and value not in spec.supported:
                if spec.var == "pubsub#access_model":
                    raise notAcceptable(
                        f"The access model {value!r} is not supported", pubsubCondition="unsupported-access-model"
                    )
                raise notAcceptable(f"{spec.var} can only be {' or '.join(spec.supported)}")
        maxItems = self.get("pubsub#max_items")
        if maxItems != MAX and int(maxItems) > maxItemsLimit:
            raise notAcceptable(f"pubsub#max_items can be at most {maxItemsLimit} (or {MAX})")

    def mismatch(self, preconditions: Mapping[str, str]) -> str | None:
        """
        XEP-0060 section 7.1.5: the first precondition this configuration
        does not meet, C{None} when it meets them all. Roster groups are
        compared as sets.
        """
        for var, wanted in preconditions.items():
            spec = FIELDS_BY_VAR[var]
            current = self.get(var)
            if spec.kind == LIST_MULTI:
                if set(filter(None, wanted.split("\n"))) != set(filter(None, current.split("\n"))):
                    return var
            elif current != wanted:
                return var
        return None

    def toForm(self, formType: str = "form") -> data_form.Form:
        """
        The configuration as a data form with the C{FORM_TYPE}
        C{http://jabber.org/protocol/pubsub#node_config} (XEP-0060
        sections 8.2.2 and 8.3.2).
        """
        form = data_form.Form(formType, formNamespace=NS_PUBSUB_NODE_CONFIG)
        for spec in FIELDS:
            value = self.get(spec.var)
            fieldType = TEXT if spec.kind == INTEGER_OR_MAX else spec.kind
            options: list[data_form.Option] = []
            if spec.kind == LIST_SINGLE:
                shown = spec.supported if spec.supported is not None else spec.options
                options = [data_form.Option(option) for option in shown]
            values: list[Any]
            if spec.kind == BOOLEAN:
                values = [value == "true"]
            elif spec.kind == LIST_MULTI:
                values = value.split("\n") if value else []
            else:
                values = [value] if value or spec.kind != TEXT else []
            form.addField(
                data_form.Field(fieldType, var=spec.var, values=values, options=options, label=spec.label)
            )
        return form


def configFromValues(
    current: NodeConfig, values: Mapping[str, str | Sequence[str]], maxItemsLimit: int
) -> NodeConfig:
    """
    Apply submitted configuration values (XEP-0060 section 8.2.4, and the
    form of a create-and-configure request, section 8.1.3) to C{current}.

    @raise error.StanzaError: C{not-acceptable} for an unknown field, a
        malformed value or one this service does not support.
    """
    try:
        changes = parseValues(values)
    except InvalidOption as e:
        raise notAcceptable(f"Bad configuration: {e}") from None
    config = current.changed(changes)
    config.check(maxItemsLimit)
    return config


def submittedConfig(x: domish.Element | None) -> dict[str, list[str]] | None:
    """
    The values of a submitted configuration form (XEP-0060 section
    8.2.4), to give to L{configFromValues}.

    @param x: the form, C{None} when the request holds none.
    @return: field variable to its values; C{None} for a cancelled form
        (the configuration stays as it is, section 8.2.4).
    @raise error.StanzaError: C{bad-request} for no form, or one of
        another C{FORM_TYPE} or type (a form without C{FORM_TYPE} is
        taken as a node configuration); C{not-acceptable} for a malformed
        one.
    """
    if x is None:
        raise error.StanzaError("bad-request", text="The request needs a configuration form")
    try:
        form = parseForm(x)
    except ValueError as e:
        raise notAcceptable(f"Bad configuration form: {e}") from None
    if form.formNamespace not in (None, NS_PUBSUB_NODE_CONFIG):
        raise error.StanzaError("bad-request", text=f"The configuration form needs the FORM_TYPE {NS_PUBSUB_NODE_CONFIG}")
    if form.formType == "cancel":
        return None
    if form.formType != "submit":
        raise error.StanzaError("bad-request", text="The configuration form must be of type 'submit' or 'cancel'")
    return form.values


def configForNewNode(preconditions: Mapping[str, str], maxItemsLimit: int) -> NodeConfig:
    """
    XEP-0060 section 7.1.5: a node auto-created on publish has the default
    configuration "in all respects except those specified in the
    preconditions".

    @param preconditions: from L{parsePreconditions}.
    @raise error.StanzaError: C{not-acceptable} for options this service
        does not support.
    """
    config = NodeConfig.defaults().changed(preconditions)
    config.check(maxItemsLimit)
    return config


__all__ = [
    "ACCESS_AUTHORIZE",
    "ACCESS_OPEN",
    "ACCESS_PRESENCE",
    "ACCESS_ROSTER",
    "ACCESS_WHITELIST",
    "BOOLEAN",
    "FIELDS",
    "FIELDS_BY_VAR",
    "INTEGER_OR_MAX",
    "LIST_MULTI",
    "LIST_SINGLE",
    "MAX",
    "MAX_DIGITS",
    "MAX_GROUPS",
    "MAX_TEXT",
    "NS_PUBSUB",
    "NS_PUBSUB_ERRORS",
    "NS_PUBSUB_EVENT",
    "NS_PUBSUB_OWNER",
    "NS_PUBSUB_NODE_CONFIG",
    "NS_PUBSUB_PUBLISH_OPTIONS",
    "NS_X_DATA",
    "SEND_NEVER",
    "SEND_ON_SUB",
    "SEND_ON_SUB_AND_PRESENCE",
    "TEXT",
    "FieldSpec",
    "InvalidOption",
    "NodeConfig",
    "SubmittedForm",
    "canonicalValue",
    "configForNewNode",
    "configFromValues",
    "findForm",
    "invalidOptions",
    "nodeIdRequired",
    "notAcceptable",
    "submittedConfig",
    "parseForm",
    "parsePreconditions",
    "parseValues",
    "publishOptionsFromForm",
    "positiveInteger",
    "pubsubError",
]
