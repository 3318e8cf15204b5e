"""The partner's email, read into the same fields as the webhook's JSON. No I/O.

The format (docs/admin-guide.md, "Partner tickets"):

    From: tickets@partner.example          (one of [tickets.imap] senders)
    Subject: Ticket T-1001 no internet     ("Ticket" then the partner's ticket id)

    Caller: +48 601 234 567
    Category: outage
    Urgency: urgent
    Customer: 10042
    Call-Id: 1741377600.42
    Reported-At: 2026-03-07T20:55:00+01:00

    No internet since 20:00. Router LOS light red.

`Key: value` lines first (any order, case-insensitive keys), then a blank line, then
the ticket's text. Or a body that is one JSON object with the webhook's fields (its
"id", if given, must be the subject's). Without Reported-At the mail's Date counts.
The text/plain part is read; a mail with only HTML is refused.
"""

from __future__ import annotations

import json
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

# "Ticket T-1001", "ticket: T-1001", "Re: [Partner] Ticket #T-1001 - no internet"
SUBJECT = re.compile(r"\bticket\s*[:#]?\s*([A-Za-z0-9][A-Za-z0-9._:/#-]{0,63})",
                     re.IGNORECASE)
_LINE = re.compile(r"^([A-Za-z][A-Za-z-]{0,30}):[ \t]*(.*?)\s*$")
KEYS = {"caller": "caller", "customer": "customer", "category": "category",
        "urgency": "urgency", "call-id": "call_id", "reported-at": "reported_at"}
MAX_MAIL = 256 * 1024


class BadMail(ValueError):
    """Not a ticket mail nohold can read; the message says why (for the log)."""


def sender(message: EmailMessage) -> str:
    """The address in From (one address, or "")."""
    found = getaddresses([str(message.get("From", ""))])
    return found[0][1] if len(found) == 1 else ""


def parse_message(raw: bytes) -> EmailMessage:
    if len(raw) > MAX_MAIL:
        raise BadMail(f"the mail is over {MAX_MAIL // 1024} KiB")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def report_fields(message: EmailMessage) -> dict[str, Any]:
    """The report's fields (for nohold.decisions.tickets.validate); BadMail when the
    mail has no ticket id in its subject or no readable text part."""
    subject = str(message.get("Subject", ""))
    found = SUBJECT.search(subject)
    if not found:
        raise BadMail("no ticket id in the subject (expected \"Ticket <id>\")")
    partner_id = found.group(1).rstrip(".:,;")
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        raise BadMail("no text/plain part")
    try:
        body = part.get_content()
    except (LookupError, UnicodeError) as exc:
        raise BadMail(f"the text cannot be decoded: {exc}") from None
    body = body.replace("\r\n", "\n").strip()
    if body.startswith("{"):
        fields = _json_fields(body, partner_id)
    else:
        fields = _line_fields(body)
        fields["id"] = partner_id
    if "reported_at" not in fields and message.get("Date"):
        try:
            fields["reported_at"] = parsedate_to_datetime(str(message["Date"])).isoformat()
        except (TypeError, ValueError):
            pass  # an unreadable Date: the arrival counts
    return fields


def _json_fields(body: str, partner_id: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadMail(f"the body starts with '{{' but is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadMail("the JSON body is not an object")
    if data.get("id") is not None and str(data["id"]) != partner_id:
        raise BadMail(f"the JSON id {str(data['id'])[:64]!r} is not the subject's "
                      f"{partner_id!r}")
    data["id"] = partner_id
    return data


def _line_fields(body: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    lines = body.split("\n")
    n = 0
    while n < len(lines):
        found = _LINE.match(lines[n])
        if not found:
            break
        key = found.group(1).lower()
        fields[KEYS.get(key, key)] = found.group(2)
        n += 1
    if n < len(lines) and not lines[n].strip():
        n += 1
    fields["text"] = "\n".join(lines[n:]).strip()
    return fields
