# -*- test-case-name: tests.test_adhoc -*-
"""
Ad-hoc commands (XEP-0050) on the server's side: a framework other
features add commands to (L{xmppcert.adhoc.framework}), the data forms
they show (L{xmppcert.adhoc.forms}), the service administration
commands of XEP-0133 (L{xmppcert.adhoc.admin}), and certificate
management for every account and for administrators
(L{xmppcert.adhoc.certificates}).
"""

from __future__ import annotations

from xmppcert.adhoc.certificates import NS_CERTS, NS_CERTS_ADMIN, CertificateCommands, ReportForm
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
    "NS_CERTS",
    "NS_CERTS_ADMIN",
    "NS_COMMANDS",
    "CertificateCommands",
    "Command",
    "CommandHandler",
    "CommandRequest",
    "CommandService",
    "Completed",
    "ICommand",
    "InvalidInput",
    "Note",
    "PayloadError",
    "ReportForm",
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
