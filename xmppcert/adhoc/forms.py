# -*- test-case-name: tests.test_adhoc -*-
"""
The data forms (XEP-0004) of ad-hoc commands: building the forms a stage
shows, and reading what the requester submits against them.

Forms are wokkel's L{data_form.Form} and L{data_form.Field}. The helpers
here (L{makeForm}, L{textSingle}, L{listMulti}, L{textMulti}, ...) only
spare a stage the keyword soup; a stage may build fields itself.

A submission is read against the form that was shown (L{parseSubmission}),
not trusted for its own field types: the shown form says which fields
exist, their types, which are required and which options a list offers.
What does not fit is a L{PayloadError} (XEP-0050 C{<bad-payload/>}); a
value a person typed wrong (a malformed JID) is an L{InvalidInput}, which
shows the form again with the reason. wokkel's C{Form.typeCheck} is not
used: it prepares JIDs with C{JID()} alone, without the RFC 7622 checks of
L{xmppcert.jids.parseJID}, and it changes the field definitions it is
given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

# wokkel 18 imports only once xmppcert has installed its compatibility shim.
import xmppcert  # noqa: F401

# isort: split
from wokkel import data_form

from xmppcert.jids import parseJID

NS_X_DATA = data_form.NS_X_DATA

#: The field types of XEP-0004 section 3.3.
FIELD_TYPES = frozenset(
    {
        "boolean",
        "fixed",
        "hidden",
        "jid-multi",
        "jid-single",
        "list-multi",
        "list-single",
        "text-multi",
        "text-private",
        "text-single",
    }
)

#: The field types that may hold more than one value.
MULTI_VALUED = frozenset({"jid-multi", "list-multi", "text-multi"})

#: Field types whose values are never sent back in a form shown again.
_NOT_REFILLED = frozenset({"fixed", "hidden", "text-private"})

#: Option = a value, or (value, label).
OptionSpec = str | tuple[str, str | None]


class PayloadError(Exception):
    """
    A submission does not fit the form that was shown: a field of another
    type, several values in a single-valued field, a value a list did not
    offer, a required field left out, not a submitted form at all. The
    requester's software did not follow the form (XEP-0050 section 4.6,
    C{<bad-payload/>}).
    """


class InvalidInput(Exception):
    """
    A value is not acceptable for a reason the person filling in the form
    can fix (a malformed JID, a domain this server does not serve, two
    passwords that differ). The stage's form is shown again with the
    message as an error note, and the command goes on.
    """


def _options(options: Iterable[OptionSpec]) -> list[data_form.Option]:
    made = []
    for option in options:
        if isinstance(option, tuple):
            value, label = option
        else:
            value, label = option, None
        made.append(data_form.Option(value, label))
    return made


def _field(
    fieldType: str,
    var: str | None,
    label: str | None,
    values: Sequence[Any] = (),
    required: bool = False,
    desc: str | None = None,
    options: Iterable[OptionSpec] = (),
) -> data_form.Field:
    made = data_form.Field(fieldType=fieldType, var=var, values=list(values), label=label, desc=desc, required=required)
    made.options = _options(options)
    return made


def textSingle(
    var: str, label: str | None = None, value: str | None = None, required: bool = False, desc: str | None = None
) -> data_form.Field:
    """
    A one-line text field.
    """
    return _field("text-single", var, label, [] if value is None else [value], required, desc)


def textPrivate(var: str, label: str | None = None, required: bool = False, desc: str | None = None) -> data_form.Field:
    """
    A one-line text field whose value is hidden as it is typed (a
    password); never filled in again when the form is shown again.
    """
    return _field("text-private", var, label, (), required, desc)


def textMulti(
    var: str, label: str | None = None, values: Sequence[str] = (), required: bool = False, desc: str | None = None
) -> data_form.Field:
    """
    A multi-line text field (a PEM paste): one value per line; read the
    text back with L{textOf}.
    """
    return _field("text-multi", var, label, values, required, desc)


def jidSingle(
    var: str, label: str | None = None, value: jid.JID | None = None, required: bool = False, desc: str | None = None
) -> data_form.Field:
    """
    A field for one JID; submitted values are prepared (L{parseJID}) and
    given to the stage as a C{jid.JID}.
    """
    return _field("jid-single", var, label, [] if value is None else [value], required, desc)


def jidMulti(
    var: str, label: str | None = None, values: Sequence[jid.JID] = (), required: bool = False, desc: str | None = None
) -> data_form.Field:
    """
    A field for several JIDs, given to the stage as a list of C{jid.JID}.
    """
    return _field("jid-multi", var, label, values, required, desc)


def listSingle(
    var: str,
    label: str | None,
    options: Iterable[OptionSpec],
    value: str | None = None,
    required: bool = False,
    desc: str | None = None,
) -> data_form.Field:
    """
    A choice of one of C{options} (values, or C{(value, label)} pairs); a
    submitted value not among them is a L{PayloadError}.
    """
    return _field("list-single", var, label, [] if value is None else [value], required, desc, options)


def listMulti(
    var: str,
    label: str | None,
    options: Iterable[OptionSpec],
    values: Sequence[str] = (),
    required: bool = False,
    desc: str | None = None,
) -> data_form.Field:
    """
    A choice of any of C{options} (values, or C{(value, label)} pairs),
    given to the stage as the list of chosen values.
    """
    return _field("list-multi", var, label, values, required, desc, options)


def boolean(
    var: str, label: str | None = None, value: bool | None = None, required: bool = False, desc: str | None = None
) -> data_form.Field:
    """
    A yes/no field, given to the stage as C{True}, C{False}, or C{None}
    when not submitted.
    """
    return _field("boolean", var, label, [] if value is None else [value], required, desc)


def fixed(text: str) -> data_form.Field:
    """
    A line of text shown in the form, not a question.
    """
    return _field("fixed", None, None, [text])


def hidden(var: str, value: str) -> data_form.Field:
    """
    A value the form carries. What the requester sends back for it is
    ignored: keep state in the session, not in hidden fields.
    """
    return _field("hidden", var, None, [value])


def makeForm(
    title: str | None = None,
    instructions: str | Sequence[str] = (),
    fields: Iterable[data_form.Field] = (),
    formNamespace: str | None = None,
    formType: str = "form",
) -> data_form.Form:
    """
    A form for a stage to show (C{formType} C{"form"}) or to complete with
    (C{"result"}).

    @param instructions: one paragraph, or several.
    @param formNamespace: the C{FORM_TYPE} (XEP-0068), e.g.
        C{http://jabber.org/protocol/admin}.
    """
    if isinstance(instructions, str):
        instructions = [instructions]
    return data_form.Form(
        formType, title=title, instructions=list(instructions), formNamespace=formNamespace, fields=list(fields)
    )


def resultForm(
    fields: Iterable[data_form.Field] = (), title: str | None = None, formNamespace: str | None = None
) -> data_form.Form:
    """
    A form of type C{result}, for a completion that reports data.
    """
    return makeForm(title, (), fields, formNamespace, "result")


def textOf(submission: data_form.Form, var: str) -> str:
    """
    The text of a submitted C{text-multi} (or single-line) field, its lines
    joined with newlines; C{""} when it was left empty.
    """
    value = submission.get(var)
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def _submittedForm(element: domish.Element | None) -> data_form.Form:
    if element is None:
        # Nothing submitted: as an empty form; required fields still are.
        return data_form.Form("submit")
    try:
        form = data_form.Form.fromElement(element)
    except data_form.Error as e:
        raise PayloadError(f"the data form cannot be read: {e}") from None
    # XEP-0050 section 3.4.1: a requester SHOULD submit; any
    # <x type='cancel'/> is to be taken as a submission.
    if form.formType not in ("submit", "cancel"):
        raise PayloadError(f"a data form of type {form.formType!r} was sent; submit the form (type 'submit')")
    return form


def _booleanValue(var: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    raise PayloadError(f"the field {var!r} is a boolean: '0', '1', 'false' or 'true', not {text!r}")


def _values(shown: data_form.Field, submitted: data_form.Field | None) -> list[str]:
    if submitted is None:
        return []
    if submitted.fieldType not in (None, shown.fieldType):
        raise PayloadError(f"the field {shown.var!r} is a {shown.fieldType}, not a {submitted.fieldType}")
    values = [str(v) for v in submitted.values]
    if shown.fieldType == "text-multi":
        # Lines are kept as they are (a PEM paste); all empty is nothing.
        return values if any(v.strip() for v in values) else []
    return [v for v in values if v.strip()]


def _convert(shown: data_form.Field, values: list[str]) -> list[Any]:
    var = shown.var
    kind = shown.fieldType
    if len(values) > 1 and kind not in MULTI_VALUED:
        raise PayloadError(f"the field {var!r} takes one value, not {len(values)}")
    if kind == "boolean":
        return [_booleanValue(var, v) for v in values]
    if kind in ("list-single", "list-multi"):
        offered = {o.value for o in shown.options}
        for value in values:
            if value not in offered:
                raise PayloadError(f"{value!r} is not one of the choices of the field {var!r}")
        # A choice made twice is made once.
        return list(dict.fromkeys(values))
    if kind in ("jid-single", "jid-multi"):
        jids = []
        for value in values:
            try:
                jids.append(parseJID(value.strip()))
            except jid.InvalidFormat as e:
                raise InvalidInput(f"{shown.label or var}: {e}") from None
        return list(dict.fromkeys(jids))
    return values


def parseSubmission(shown: data_form.Form, element: domish.Element | None) -> data_form.Form:
    """
    Read a submission of C{shown}.

    Every field of C{shown} (but C{fixed} and C{hidden} ones) is in the
    result, typed as C{shown} says: single-valued fields give one value or
    C{None} (C{form[var]}), multi-valued ones a list (empty when nothing
    was submitted); C{boolean} values are C{bool}, JIDs prepared
    C{jid.JID}s. Fields C{shown} does not have are dropped, and so are the
    values of hidden fields: neither is the requester's to add.

    @param element: the submitted C{<x xmlns='jabber:x:data'/>}, or
        C{None} when the request carried none.
    @raise PayloadError: the submission does not fit C{shown}.
    @raise InvalidInput: a JID field holds something that is not a JID.
    """
    submitted = _submittedForm(element)
    if shown.formNamespace and submitted.formNamespace not in (None, shown.formNamespace):
        raise PayloadError(f"the form is a {shown.formNamespace!r} form, not a {submitted.formNamespace!r} one")
    result = data_form.Form("submit", formNamespace=shown.formNamespace)
    for field in shown.fieldList:
        if field.var is None or field.fieldType in ("fixed", "hidden"):
            continue
        values = _convert(field, _values(field, submitted.fields.get(field.var)))
        if field.required and not values:
            raise PayloadError(f"the field {field.label or field.var!r} is required")
        result.addField(data_form.Field(fieldType=field.fieldType, var=field.var, values=values))
    return result


def _refillValues(field: data_form.Field, submitted: data_form.Field | None) -> list[Any] | None:
    """
    What to show again in C{field} from the raw submission: C{None} to keep
    the form's own values.
    """
    if submitted is None or field.fieldType in _NOT_REFILLED:
        return None
    try:
        return _convert(field, _values(field, submitted))
    except (PayloadError, InvalidInput):
        return None


def refill(shown: data_form.Form, element: domish.Element | None) -> data_form.Form:
    """
    A copy of C{shown} holding what the requester submitted, so that a
    form shown again for an L{InvalidInput} keeps what they typed; values
    that are not valid for their field, passwords (C{text-private}) and
    hidden fields are not sent back.
    """
    try:
        submitted = _submittedForm(element).fields
    except PayloadError:
        submitted = {}
    copy = data_form.Form(
        shown.formType,
        title=shown.title,
        instructions=list(shown.instructions),
        formNamespace=shown.formNamespace,
    )
    for field in shown.fieldList:
        values = _refillValues(field, submitted.get(field.var)) if field.var is not None else None
        again = data_form.Field(
            fieldType=field.fieldType,
            var=field.var,
            values=list(field.values) if values is None else values,
            label=field.label,
            desc=field.desc,
            required=field.required,
        )
        again.options = list(field.options)
        copy.addField(again)
    return copy


__all__ = [
    "FIELD_TYPES",
    "MULTI_VALUED",
    "NS_X_DATA",
    "InvalidInput",
    "PayloadError",
    "boolean",
    "fixed",
    "hidden",
    "jidMulti",
    "jidSingle",
    "listMulti",
    "listSingle",
    "makeForm",
    "parseSubmission",
    "refill",
    "resultForm",
    "textMulti",
    "textOf",
    "textPrivate",
    "textSingle",
]
