"""Ids and arguments that arrive from outside (FastAGI environment, ARI events), checked
before they are used, logged or stored. Pure: length and alphabet only.

Asterisk's own values always pass (uniqueid/linkedid `[<systemname>-]<epoch>.<seq>`,
channel names up to AST_CHANNEL_NAME), so a failure means a misconfigured dialplan
or a peer that is not Asterisk. The limits are the database's: `notice_plays` keys
are String(64), which SQLite does not enforce.
"""

from __future__ import annotations

import re

MAX_ID = 64
MAX_CHANNEL = 80
MAX_CALLER = 64

# A uniqueid, a linkedid, or an ARI channel id we pre-assigned (a UUID).
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
# `PJSIP/alice-00000001`, `Local/s@ctx-00000001;1`, `IAX2/host:4569-1234`: printable
# ASCII without blanks, quotes or backslashes.
_CHANNEL = re.compile(r"[!#-\[\]-~]+")
# Numbers as carriers send them (`+4930123`, `*31#`), and the words Asterisk and
# trunks use for none (`unknown`, `anonymous`).
_CALLER = re.compile(r"[A-Za-z0-9+*#._@:-]*")


class BadId(ValueError):
    """A value from outside that nohold will not use; the message names field and rule."""

    def __init__(self, field: str, value: str, rule: str) -> None:
        shown = value if len(value) <= 40 else f"{value[:40]}...({len(value)} chars)"
        super().__init__(f"{field} {shown!r}: {rule}")
        self.field = field
        self.rule = rule


def check_id(field: str, value: str) -> str:
    """A call id (linkedid), channel uniqueid or ARI channel id."""
    if not value or len(value) > MAX_ID:
        raise BadId(field, value, f"must be 1 to {MAX_ID} characters")
    if not _ID.fullmatch(value):
        raise BadId(field, value, "letters, digits, '.', '_', ':', '-' only")
    return value


def check_channel(field: str, value: str) -> str:
    """A channel name, as Asterisk shows it."""
    if not value or len(value) > MAX_CHANNEL:
        raise BadId(field, value, f"must be 1 to {MAX_CHANNEL} characters")
    if not _CHANNEL.fullmatch(value):
        raise BadId(field, value, "printable ASCII without blanks, quotes or backslashes")
    return value


def check_caller(field: str, value: str) -> str:
    """A caller id number; empty is allowed (no caller id)."""
    if len(value) > MAX_CALLER:
        raise BadId(field, value, f"must be at most {MAX_CALLER} characters")
    if not _CALLER.fullmatch(value):
        raise BadId(field, value, "letters, digits and + * # . _ @ : - only")
    return value
