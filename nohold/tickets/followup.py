"""The follow-up call's answer, recorded by the agent from the CLI or the HTTP API:
fixed, not fixed (the ticket reopens, so the technician on duty is alerted again) or
no answer (unreachable). One function for both, on the database alone."""

from __future__ import annotations

import contextlib
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from nohold.callbackdb.callbacks import CallbackStore, CannotCancel
from nohold.callbackdb.followups import FIXED, NOT_FIXED, UNREACHABLE, FollowUpRecord, FollowUpStore
from nohold.callbackdb.tickets import TicketRecord
from nohold.decisions.callbacks import WAITING

# As people and programs write them -> the stored state.
ANSWERS = {"fixed": FIXED, "not-fixed": NOT_FIXED, "not_fixed": NOT_FIXED,
           "no-answer": UNREACHABLE, "no_answer": UNREACHABLE}


async def record_answer(engine: AsyncEngine, ticket_id: int, answer: str, by: str,
                        note: str, now: datetime
                        ) -> tuple[FollowUpRecord | None, TicketRecord | None]:
    """(the follow-up as recorded, the ticket if this reopened it); (None, None) when
    the ticket has no follow-up waiting for an answer. ValueError for another answer."""
    if answer not in ANSWERS:
        raise ValueError(f"answer {answer!r}: one of fixed, not_fixed, no_answer")
    done = await FollowUpStore(engine).answer(ticket_id, ANSWERS[answer], by, now, note)
    if done is None:
        return None, None
    if done.callback_id is not None:
        # Answered before the call was made (the customer rang in, say): the call
        # still waiting is not needed. One in progress or over is left alone.
        calls = CallbackStore(engine, "followup")
        call = await calls.get(done.callback_id)
        if call is not None and call.state in WAITING:
            with contextlib.suppress(CannotCancel):
                await calls.cancel(call.id, now, reason="follow-up answered")
    if done.state != NOT_FIXED:
        return done, None
    return done, await FollowUpStore(engine).reopen_ticket(done, now)

