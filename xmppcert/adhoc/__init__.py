# -*- test-case-name: tests.test_adhoc -*-
"""
Ad-hoc commands (XEP-0050) on the server's side: a framework other
features add commands to (L{xmppcert.adhoc.framework}), the data forms
they show (L{xmppcert.adhoc.forms}), and the service administration
commands of XEP-0133 (L{xmppcert.adhoc.admin}).
"""

from __future__ import annotations

from xmppcert.adhoc.forms import (
    InvalidInput,
    PayloadError,
    boolean,
    fixed,
    hidden,
    jidMulti,
    jidSingle,
    listMulti,
    listSingle,
    makeForm,
    parseSubmission,
    resultForm,
    textMulti,
    textOf,
    textPrivate,
    textSingle,
)
from xmppcert.adhoc.framework import (
    NS_COMMANDS,
    Command,
    CommandHandler,
    CommandRequest,
    CommandService,
    Completed,
    ICommand,
    Note,
    Requester,
    Show,
    Stage,
    commandError,
    completed,
    notes,
)

__all__ = [
    "NS_COMMANDS",
    "Command",
    "CommandHandler",
    "CommandRequest",
    "CommandService",
    "Completed",
    "ICommand",
    "InvalidInput",
    "Note",
    "PayloadError",
    "Requester",
    "Show",
    "Stage",
    "boolean",
    "commandError",
    "completed",
    "fixed",
    "hidden",
    "jidMulti",
    "jidSingle",
    "listMulti",
    "listSingle",
    "makeForm",
    "notes",
    "parseSubmission",
    "resultForm",
    "textMulti",
    "textOf",
    "textPrivate",
    "textSingle",
]
