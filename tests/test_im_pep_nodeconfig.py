"""
Tests for L{xmppcert.im.pep.nodeconfig}: the configuration of personal
eventing nodes (XEP-0163 on XEP-0060), its defaults, configure forms and
publish-options.
"""

from __future__ import annotations

import pytest
from twisted.words.protocols.jabber import error
from twisted.words.xish import domish

from tests.helpers import parseOutput
from xmppcert.im.pep.nodeconfig import (
    FIELDS,
    MAX,
    MAX_DIGITS,
    MAX_TEXT,
    NS_PUBSUB_ERRORS,
    NS_PUBSUB_NODE_CONFIG,
    NS_PUBSUB_PUBLISH_OPTIONS,
    InvalidOption,
    NodeConfig,
    configForNewNode,
    configFromValues,
    parsePreconditions,
    parseValues,
    positiveInteger,
    publishOptionsFromForm,
    submittedConfig,
)

NS_X_DATA = "jabber:x:data"


def form(fields: str, formType: str = "submit", formNamespace: str | None = NS_PUBSUB_PUBLISH_OPTIONS) -> domish.Element:
    hidden = (
        f"<field var='FORM_TYPE' type='hidden'><value>{formNamespace}</value></field>"
        if formNamespace is not None
        else ""
    )
    return parseOutput(f"<x xmlns='{NS_X_DATA}' type='{formType}'>{hidden}{fields}</x>").only()


def field(var: str, *values: str) -> str:
    return f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values) + "</field>"


def pubsubCondition(e: error.StanzaError) -> str | None:
    if e.appCondition is None:
        return None
    assert e.appCondition.uri == NS_PUBSUB_ERRORS
    return str(e.appCondition.name)


# --- defaults -----------------------------------------------------------------------


def test_defaults() -> None:
    """
    XEP-0163 §5: access model presence, send_last_published_item
    on_sub_and_presence, deliver_notifications (and payloads) true; as in
    Prosody's mod_pep: persist_items true, max_items 1, notify_retract and
    notify_delete true.
    """
    config = NodeConfig.defaults()
    assert config.accessModel == "presence"
    assert config.sendLastPublishedItem == "on_sub_and_presence"
    assert config.deliverNotifications and config.deliverPayloads
    assert config.persistItems
    assert config.get("pubsub#max_items") == "1"
    assert config.notifyRetract and config.notifyDelete
    assert set(config.asStored()) == {spec.var for spec in FIELDS}
    config.check(256)


def test_fromStored() -> None:
    """
    A stored configuration lacking fields gets their defaults; unknown
    fields and unreadable values are ignored rather than failing.
    """
    config = NodeConfig.fromStored(
        {"pubsub#access_model": "open", "pubsub#persist_items": "perhaps", "pubsub#nonsense": "1"}
    )
    assert config.accessModel == "open"
    assert config.persistItems
    assert "pubsub#nonsense" not in config.asStored()


# --- values ---------------------------------------------------------------------------


def test_canonicalBooleans() -> None:
    """
    XEP-0004 §3.3: booleans are 0, 1, false, true; they are kept as
    true/false, so that '1' and 'true' compare equal.
    """
    assert parseValues({"pubsub#persist_items": "1", "pubsub#deliver_payloads": ["0"]}) == {
        "pubsub#persist_items": "true",
        "pubsub#deliver_payloads": "false",
    }
    with pytest.raises(InvalidOption) as raised:
        parseValues({"pubsub#persist_items": "maybe"})
    assert raised.value.var == "pubsub#persist_items"


def test_maxItemsValues() -> None:
    """
    XEP-0060's datatype pubsub:integer-or-max: a positive integer or 'max';
    zero, negative numbers, words and non-ASCII digits are malformed.
    """
    assert parseValues({"pubsub#max_items": "010"}) == {"pubsub#max_items": "10"}
    assert parseValues({"pubsub#max_items": MAX}) == {"pubsub#max_items": MAX}
    for bad in ("0", "-1", "ten", "\u0661", ""):
        with pytest.raises(InvalidOption):
            parseValues({"pubsub#max_items": bad})


def test_maxItemsDigits() -> None:
    """
    An integer of more than MAX_DIGITS digits is malformed, checked before
    it is converted (Python refuses to convert thousands of digits, and
    SQLite holds 64 bits): InvalidOption, with the value shortened in the
    message; positiveInteger gives None for it.
    """
    assert positiveInteger("9" * MAX_DIGITS) == int("9" * MAX_DIGITS)
    assert positiveInteger("0" * MAX_DIGITS) is None
    for digits in (MAX_DIGITS + 1, 5000):
        assert positiveInteger("9" * digits) is None
        with pytest.raises(InvalidOption) as raised:
            parseValues({"pubsub#max_items": "9" * digits})
        assert len(str(raised.value)) < 200
    assert NodeConfig.fromStored({"pubsub#max_items": "9" * 5000}).get("pubsub#max_items") == "1"


def test_listSingleOptions() -> None:
    """
    XEP-0004 §3.3: a list-single value is one of the options XEP-0060
    defines; another is malformed, as are two values.
    """
    assert parseValues({"pubsub#access_model": "roster"}) == {"pubsub#access_model": "roster"}
    for bad in (["everyone"], ["open", "presence"], []):
        with pytest.raises(InvalidOption):
            parseValues({"pubsub#access_model": bad})


def test_unknownField() -> None:
    """
    A field this service does not know is refused; FORM_TYPE is not a
    configuration field and is ignored.
    """
    with pytest.raises(InvalidOption) as raised:
        parseValues({"pubsub#item_expire": "60"})
    assert raised.value.var == "pubsub#item_expire"
    assert parseValues({"FORM_TYPE": NS_PUBSUB_NODE_CONFIG}) == {}


def test_textLimits() -> None:
    """
    Text values and roster group names are limited, and a group name
    cannot hold the line break that separates stored groups.
    """
    with pytest.raises(InvalidOption):
        parseValues({"pubsub#title": "x" * (MAX_TEXT + 1)})
    with pytest.raises(InvalidOption):
        parseValues({"pubsub#roster_groups_allowed": ["a\nb"]})
    assert parseValues({"pubsub#roster_groups_allowed": ["Friends", "Family", "Friends", ""]}) == {
        "pubsub#roster_groups_allowed": "Friends\nFamily"
    }


# --- configuration ---------------------------------------------------------------------


def test_configureKeepsOtherFields() -> None:
    """
    XEP-0060 §8.2.4 with XEP-0004's incomplete submissions: fields not
    submitted keep their values.
    """
    before = NodeConfig.defaults().changed({"pubsub#title": "Tunes"})
    after = configFromValues(before, {"pubsub#access_model": ["open"]}, 256)
    assert after.accessModel == "open"
    assert after.title == "Tunes"


def test_configureErrors() -> None:
    """
    XEP-0060 §8.2.5.2: an unknown field, a malformed value, max_items over
    the server's limit or a fixed option changed is not-acceptable;
    §8.1.2: the access model authorize, which PEP cannot honour, with
    <unsupported-access-model/>.
    """
    current = NodeConfig.defaults()
    for values in (
        {"pubsub#frobnicate": "1"},
        {"pubsub#persist_items": "sometimes"},
        {"pubsub#max_items": "257"},
        {"pubsub#notify_config": "1"},
        {"pubsub#publish_model": "open"},
    ):
        with pytest.raises(error.StanzaError) as raised:
            configFromValues(current, values, 256)
        assert raised.value.condition == "not-acceptable", values
    with pytest.raises(error.StanzaError) as raised:
        configFromValues(current, {"pubsub#access_model": "authorize"}, 256)
    assert raised.value.condition == "not-acceptable"
    assert pubsubCondition(raised.value) == "unsupported-access-model"


def test_maxItemsCapped() -> None:
    """
    'max' means the server's limit; a number set before the limit was
    lowered is capped by it.
    """
    assert configFromValues(NodeConfig.defaults(), {"pubsub#max_items": MAX}, 50).maxItems(50) == 50
    config = configFromValues(NodeConfig.defaults(), {"pubsub#max_items": "40"}, 50)
    assert config.maxItems(50) == 40
    assert config.maxItems(10) == 10


# --- publish-options -----------------------------------------------------------------


def test_preconditionsMatch() -> None:
    """
    XEP-0060 §7.1.5: each option is checked against the node's field of
    the same name; equal values (whatever their spelling) match, roster
    groups as sets.
    """
    config = NodeConfig.defaults().changed(
        {"pubsub#access_model": "roster", "pubsub#roster_groups_allowed": "A\nB", "pubsub#persist_items": "true"}
    )
    wanted = parsePreconditions(
        {"pubsub#persist_items": "1", "pubsub#roster_groups_allowed": ["B", "A"], "pubsub#access_model": "roster"}
    )
    assert config.mismatch(wanted) is None
    assert config.mismatch(parsePreconditions({"pubsub#access_model": "open"})) == "pubsub#access_model"
    assert config.mismatch(parsePreconditions({"pubsub#max_items": MAX})) == "pubsub#max_items"


def test_badPreconditions() -> None:
    """
    XEP-0060 §7.1.5: unknown fields (and malformed values) reject the
    publication: bad-request with <invalid-options/>.
    """
    for options in ({"pubsub#no_such_option": "1"}, {"pubsub#persist_items": "maybe"}):
        with pytest.raises(error.StanzaError) as raised:
            parsePreconditions(options)
        assert raised.value.condition == "bad-request"
        assert pubsubCondition(raised.value) == "invalid-options"


def test_newNodeFromPreconditions() -> None:
    """
    XEP-0060 §7.1.5: a node created by the publish has the default
    configuration except for the options; options it cannot honour are
    not-acceptable.
    """
    config = configForNewNode(
        parsePreconditions({"pubsub#access_model": "whitelist", "pubsub#max_items": "max"}), 256
    )
    assert config.accessModel == "whitelist"
    assert config.get("pubsub#max_items") == MAX
    assert config.sendLastPublishedItem == "on_sub_and_presence"
    with pytest.raises(error.StanzaError) as raised:
        configForNewNode(parsePreconditions({"pubsub#access_model": "authorize"}), 256)
    assert raised.value.condition == "not-acceptable"


def test_publishOptionsForm() -> None:
    """
    XEP-0060 §7.1.5: publish-options holds a submitted form whose
    FORM_TYPE is ...#publish-options; its values are read whole (text
    split by the parser around entities too).
    """
    values = publishOptionsFromForm(form(field("pubsub#title", "A &amp; B") + field("pubsub#access_model", "open")))
    assert values == {"pubsub#title": ["A & B"], "pubsub#access_model": ["open"]}


def test_publishOptionsFormErrors() -> None:
    """
    XEP-0060 §7.1.5: no form, a form of another type, without or with
    another FORM_TYPE, or with a field twice: bad-request with
    <invalid-options/>.
    """
    cases: list[domish.Element | None] = [
        None,
        form(field("pubsub#access_model", "open"), formType="form"),
        form(field("pubsub#access_model", "open"), formNamespace=None),
        form(field("pubsub#access_model", "open"), formNamespace=NS_PUBSUB_NODE_CONFIG),
        form(field("pubsub#access_model", "open") + field("pubsub#access_model", "open")),
    ]
    for x in cases:
        with pytest.raises(error.StanzaError) as raised:
            publishOptionsFromForm(x)
        assert raised.value.condition == "bad-request"
        assert pubsubCondition(raised.value) == "invalid-options"


# --- configuration forms ---------------------------------------------------------------


def test_submittedConfig() -> None:
    """
    XEP-0060 §8.2.4: a submitted node_config form gives its values; a form
    without FORM_TYPE is taken as one; a cancelled form changes nothing
    (None); no form, another FORM_TYPE or type is bad-request.
    """
    values = submittedConfig(form(field("pubsub#max_items", "5"), formNamespace=NS_PUBSUB_NODE_CONFIG))
    assert values == {"pubsub#max_items": ["5"]}
    assert submittedConfig(form(field("pubsub#max_items", "5"), formNamespace=None)) == {"pubsub#max_items": ["5"]}
    assert submittedConfig(form("", formType="cancel", formNamespace=None)) is None
    for x in (None, form("", formNamespace=NS_PUBSUB_PUBLISH_OPTIONS), form("", formType="result", formNamespace=None)):
        with pytest.raises(error.StanzaError) as raised:
            submittedConfig(x)
        assert raised.value.condition == "bad-request"


def test_toForm() -> None:
    """
    XEP-0060 §8.2.2: the configuration form has the FORM_TYPE node_config
    and the current values; booleans as true/false; the access model's
    options are the supported ones (no authorize).
    """
    config = NodeConfig.defaults().changed({"pubsub#title": "Tunes", "pubsub#roster_groups_allowed": "A\nB"})
    x = config.toForm().toElement()
    assert x["type"] == "form"
    fields = {f["var"]: f for f in x.elements(NS_X_DATA, "field")}
    assert [str(v) for v in fields["FORM_TYPE"].elements(NS_X_DATA, "value")] == [NS_PUBSUB_NODE_CONFIG]
    assert [str(v) for v in fields["pubsub#title"].elements(NS_X_DATA, "value")] == ["Tunes"]
    assert [str(v) for v in fields["pubsub#persist_items"].elements(NS_X_DATA, "value")] == ["true"]
    assert [str(v) for v in fields["pubsub#roster_groups_allowed"].elements(NS_X_DATA, "value")] == ["A", "B"]
    access = fields["pubsub#access_model"]
    options = [str(v) for o in access.elements(NS_X_DATA, "option") for v in o.elements(NS_X_DATA, "value")]
    assert options == ["open", "presence", "roster", "whitelist"]
    assert fields["pubsub#max_items"]["type"] == "text-single"
    # What a client sends back unchanged is accepted as it is.
    submitted = {var: [str(v) for v in f.elements(NS_X_DATA, "value")] for var, f in fields.items()}
    assert configFromValues(NodeConfig.defaults(), submitted, 256) == config
