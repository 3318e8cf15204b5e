"""The agents' side of tickets on the HTTP API (bearer token, decision 0010):

    POST /v1/tickets/{id}/followup   {"answer": "fixed" | "not_fixed" | "no_answer",
                                      "by": "agent name", "note": "what they said"}
        200 {"followup": {...}, "reopened": bool}   400 bad_request (with "field")
        404 no_followup: the ticket has no follow-up call waiting for an answer
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from nohold.decisions.tickets import MAX_ACTOR, MAX_NOTE
from nohold.http_server import HttpError, json_response, read_json_object
from nohold.tickets.followup import ANSWERS, record_answer

log = logging.getLogger("nohold.tickets.api")


def routes(engine: AsyncEngine) -> list[web.RouteDef]:
    async def followup(request: web.Request) -> web.Response:
        raw_id = request.match_info["id"]
        # Ids are positive and fit the database's integer (PostgreSQL refuses more).
        if not raw_id.isdigit() or not 0 < int(raw_id) < 2**31:
            raise HttpError(404, "not_found", "no such ticket")
        ticket_id = int(raw_id)
        data = await read_json_object(request)
        answer = data.get("answer")
        if answer not in ANSWERS:
            raise HttpError(400, "bad_request", "answer: one of fixed, not_fixed, no_answer",
                            field="answer")
        by, note = data.get("by", "api"), data.get("note", "")
        for name, value, limit in (("by", by, MAX_ACTOR), ("note", note, MAX_NOTE)):
            if not isinstance(value, str) or len(value) > limit or (
                    name == "by" and not value.strip()):
                raise HttpError(400, "bad_request",
                                f"{name}: a string of at most {limit} characters", field=name)
        done, reopened = await record_answer(engine, ticket_id, str(answer), by, note,
                                             datetime.now(UTC))
        if done is None:
            raise HttpError(404, "no_followup",
                            f"ticket {ticket_id} has no follow-up call waiting for an answer")
        log.info("followup_answered ticket=%s state=%s by=%s reopened=%s", ticket_id,
                 done.state, by, reopened is not None)
        return json_response({"followup": done.as_dict(), "reopened": reopened is not None})

    return [web.post(r"/v1/tickets/{id}/followup", followup)]
