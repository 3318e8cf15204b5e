"""The callbacks' HTTP API (issue 9 §2): agents and supervisors book a callback at an
agreed time during a call, list, show and cancel callbacks.

    POST   /v1/callbacks        {"number", "at", "window"?, "queue"?, "owner"?, "note"?}
    GET    /v1/callbacks        ?state=live|all|<state>[,<state>...]&scheduled=true|false&limit=N
    GET    /v1/callbacks/{id}   the callback with its attempts
    DELETE /v1/callbacks/{id}   cancelled, unless being dialled or already final

A booking goes through the one booking path (booking.schedule: queue, allow-list,
do-not-call, the calendar rule), exactly as `nohold callbacks add`; this module only
checks the shape of the request (types, lengths, unknown fields) and says the
answer in HTTP. Auth, body limits and JSON errors are the server's
(nohold/http_server.py).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from nohold.ari_apps.callbacks.booking import NotBooked, Request, parse_window, schedule
from nohold.ari_apps.callbacks.settings import CallbackSettings
from nohold.callbackdb.callbacks import CallbackStore, CannotCancel
from nohold.decisions.callbacks import LIVE, State
from nohold.feature import Calendars
from nohold.http_server import HttpError, json_response, read_json_object

log = logging.getLogger("nohold.callbacks.api")

# Field lengths, checked at the edge (the store would cut owner and note silently).
MAX_NUMBER, MAX_OWNER, MAX_NOTE, MAX_QUEUE, MAX_AT = 32, 80, 200, 80, 64
# A window given in minutes: the booking rule bounds it (5 min to 8 h); this only keeps
# absurd integers away from timedelta.
MAX_WINDOW_MINUTES = 100_000
FIELDS = ("number", "at", "window", "queue", "owner", "note")
QUERY = ("state", "scheduled", "limit")
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
ID = r"{id:[0-9]{1,18}}"


def routes(store: CallbackStore, cb: CallbackSettings, calendars: Calendars | None,
           clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> list[web.RouteDef]:
    api = CallbacksApi(store, cb, calendars, clock)
    return [web.post("/v1/callbacks", api.book),
            web.get("/v1/callbacks", api.find, allow_head=False),
            web.get(f"/v1/callbacks/{ID}", api.show, allow_head=False),
            web.delete(f"/v1/callbacks/{ID}", api.cancel)]


def bad(name: str, message: str) -> HttpError:
    return HttpError(400, "bad_request", f"{name}: {message}", field=name)


def _string(data: dict[str, Any], name: str, max_len: int, default: str | None = None
            ) -> str | None:
    """A one-line string of at most `max_len` characters; required when default is None
    (and then not blank); null means the default."""
    value = data.get(name)
    if value is None:
        if default is None:
            raise bad(name, "required")
        return default
    if not isinstance(value, str):
        raise bad(name, f"expected a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise bad(name, f"at most {max_len} characters (got {len(value)})")
    if _CONTROL.search(value):
        raise bad(name, "one line without control characters")
    if default is None and not value.strip():
        raise bad(name, "required")
    return value


def booking_request(data: dict[str, Any]) -> Request:
    """The request's shape, checked; what it means is for the booking path."""
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise bad(unknown[0], f"unknown field; allowed: {', '.join(FIELDS)}")
    number = _string(data, "number", MAX_NUMBER)
    at_text = _string(data, "at", MAX_AT)
    assert number is not None and at_text is not None
    try:
        at = datetime.fromisoformat(at_text)
    except ValueError:
        raise bad("at", f"{at_text!r}: expected an ISO 8601 time like 2026-12-04T18:30 "
                        "(no offset: the callback calendar's zone)") from None
    window = data.get("window")
    if window is None:
        span = timedelta(minutes=30)
    elif isinstance(window, int) and not isinstance(window, bool):
        if not 0 < window <= MAX_WINDOW_MINUTES:
            raise bad("window", f"{window}: minutes, e.g. 30")
        span = timedelta(minutes=window)
    elif isinstance(window, str):
        try:
            span = parse_window(window)
        except ValueError as exc:
            raise bad("window", str(exc)) from None
    else:
        raise bad("window", "minutes (an integer) or a text like \"30m\" or \"2h\"")
    return Request(number=number, at=at, window=span,
                   queue=_string(data, "queue", MAX_QUEUE, "") or None,
                   owner=_string(data, "owner", MAX_OWNER, "") or "",
                   note=_string(data, "note", MAX_NOTE, "") or "")


def _states(request: web.Request) -> list[State] | None:
    """?state=: live (the default), all, or states, repeated or comma-separated."""
    words = [w.strip() for value in request.query.getall("state", []) for w in value.split(",")]
    if not words:
        return sorted(LIVE)
    states: set[State] = set()
    for word in words:
        if word == "all":
            return None
        if word == "live":
            states |= LIVE
            continue
        try:
            states.add(State(word))
        except ValueError:
            raise bad("state", f"{word!r}: live, all or one of "
                               f"{', '.join(s.value for s in State)}") from None
    return sorted(states)


def _scheduled(request: web.Request) -> bool | None:
    value = request.query.get("scheduled")
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise bad("scheduled", f"{value!r}: true or false")
    return value.lower() == "true"


def _limit(request: web.Request) -> int:
    value = request.query.get("limit", str(DEFAULT_LIMIT))
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise bad("limit", f"{value!r}: a whole number from 1 to {MAX_LIMIT}")
    return int(value)


class CallbacksApi:
    def __init__(self, store: CallbackStore, cb: CallbackSettings,
                 calendars: Calendars | None, clock: Callable[[], datetime]) -> None:
        self.store, self.cb, self.calendars, self.clock = store, cb, calendars, clock

    async def book(self, request: web.Request) -> web.Response:
        wanted = booking_request(await read_json_object(request))
        try:
            record, new = await schedule(self.store, self.cb, self.calendars, wanted,
                                         now=self.clock(),
                                         call_id=f"api-{uuid.uuid4().hex[:12]}")
        except NotBooked as exc:
            # A calendar nohold cannot find is the admin's to fix, not the client's.
            raise HttpError(
                503 if exc.field == "calendar" else 422, "not_booked", exc.reason,
                field=exc.field,
                next_valid=exc.next_valid.isoformat() if exc.next_valid else None) from None
        if not new:
            raise HttpError(409, "already_booked",
                            f"{record.number} already has a live callback in {record.queue} "
                            "(cancel it first to agree a new time)",
                            callback=record.as_dict())
        log.info("callback_booked callback=%s via=http queue=%s due=%s owner=%s", record.id,
                 record.queue, record.due_at.isoformat() if record.due_at else "-",
                 record.owner_agent or "-")
        return json_response(record.as_dict(), 201,
                             headers={"Location": f"/v1/callbacks/{record.id}"})

    async def find(self, request: web.Request) -> web.Response:
        unknown = sorted(set(request.query) - set(QUERY))
        if unknown:
            raise bad(unknown[0], f"unknown parameter; allowed: {', '.join(QUERY)}")
        found = await self.store.find(_states(request), _limit(request), _scheduled(request))
        return json_response({"callbacks": [r.as_dict() for r in found],
                              "count": len(found)})

    async def show(self, request: web.Request) -> web.Response:
        callback_id = int(request.match_info["id"])
        record = await self.store.get(callback_id)
        if record is None:
            raise HttpError(404, "not_found", f"no callback {callback_id}")
        out = record.as_dict()
        out["attempt_rows"] = [a.as_dict() for a in await self.store.attempts(callback_id)]
        return json_response(out)

    async def cancel(self, request: web.Request) -> web.Response:
        callback_id = int(request.match_info["id"])
        before = await self.store.get(callback_id)
        if before is None:
            raise HttpError(404, "not_found", f"no callback {callback_id}")
        try:
            record = await self.store.cancel(callback_id, self.clock(),
                                             reason="cancelled_by_api")
        except CannotCancel as exc:
            current = await self.store.get(callback_id)
            raise HttpError(409, "cannot_cancel", str(exc),
                            callback=current.as_dict() if current else None) from None
        log.info("callback_cancelled callback=%s via=http was=%s", record.id, before.state)
        return json_response(record.as_dict())
