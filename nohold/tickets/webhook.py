"""The partner's webhook: `POST /v1/partner/tickets` on the shared HTTP server.

Authenticated by its own signature, not the agents' bearer token (`own_auth`):

    X-Nohold-Timestamp: <Unix seconds when signed>
    X-Nohold-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>

Answers (JSON, as every route of the server):
    201 created / 200 updated or unchanged: {"ticket": {...}, "outcome", "changed", "ignored"}
    400 bad_json | bad_request (with "field"): nothing was written
    401 missing_timestamp | bad_timestamp | missing_signature | bad_signature | stale | future
    409 replayed (with "ticket": the id it made): this exact signed request was taken before
Decision 0011.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from nohold.callbackdb.tickets import Outcome, Replayed
from nohold.decisions.tickets import BadReport, BadSignature, delivery_key, verify
from nohold.http_server import HttpError, json_response, own_auth
from nohold.tickets.intake import Intake

log = logging.getLogger("nohold.tickets.webhook")

PATH = "/v1/partner/tickets"
TIMESTAMP = "X-Nohold-Timestamp"
SIGNATURE = "X-Nohold-Signature"


def routes(intake: Intake,
           clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> list[web.RouteDef]:
    return [web.post(PATH, own_auth(Webhook(intake, clock).receive))]


class Webhook:
    def __init__(self, intake: Intake, clock: Callable[[], datetime]) -> None:
        self.intake, self.clock = intake, clock

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()  # bounded by the server (413)
        now = self.clock()
        timestamp = request.headers.get(TIMESTAMP)
        settings = self.intake.settings
        try:
            verify(settings.secrets, timestamp, request.headers.get(SIGNATURE), body, now,
                   timedelta(seconds=settings.max_age))
        except BadSignature as exc:
            log.warning("ticket_refused reason=%s peer=%s", exc.reason, request.remote or "-")
            raise HttpError(401, exc.reason, str(exc)) from None
        assert timestamp is not None
        data = _json_object(body)
        try:
            taken = await self.intake.take(data, via="webhook", now=now,
                                           delivery=delivery_key(timestamp, body))
        except BadReport as exc:
            log.warning("ticket_bad via=webhook partner_id=%s field=%s reason=%r",
                        _partner_id(data), exc.field, exc.message)
            raise HttpError(400, "bad_request", str(exc), field=exc.field) from None
        except Replayed as exc:
            log.warning("ticket_replayed via=webhook ticket=%s partner_id=%s peer=%s",
                        exc.ticket_id, _partner_id(data), request.remote or "-")
            raise HttpError(409, "replayed", "this signed request was taken before; sign "
                            "each request anew with the current time",
                            ticket=exc.ticket_id) from None
        return json_response(taken.as_dict(),
                             201 if taken.outcome is Outcome.CREATED else 200)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("ticket_bad via=webhook field=- reason='not JSON'")
        raise HttpError(400, "bad_json", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        log.warning("ticket_bad via=webhook field=- reason='not a JSON object'")
        raise HttpError(400, "bad_json", "the body must be a JSON object")
    return data


def _partner_id(data: dict[str, Any]) -> str:
    value = data.get("id")
    text = str(value) if isinstance(value, (str, int)) else "-"
    return text[:64].replace(" ", "_").replace("\n", "_") or "-"
