"""Callbacks (issue 8) against the real Asterisk 22 and the real `nohold run`.

Each test gets its own sandbox: queue cb-billing (one agent, a Local channel that
answers and stays, paused over AMI until the test wants it) offers a callback as
app_queue's periodic announcement (nohold's callback_offer prompt, 2 s after
joining, every 5 s; `context = nohold-callback-offer`). Callers enter through
nohold's own [nohold-callback-queue]. Customers are extensions of [cb-customers]:
48601000001 answers after 1 s of ringing and stays, 48601000002 is busy,
48601000003 never answers, 48601000004 rejects, 48601000005 is an answering machine.

Everything asserted comes from Asterisk's own events (ARI channel/bridge events,
AMI with timestampevents, counted and ordered) or from nohold's database; waits
are on events with bounded timeouts, never sleeps.
"""

# ruff: noqa: E501
from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nohold.ari_apps.callbacks.notes import note_name
from nohold.callbackdb.callbacks import CallbackRecord
from nohold.sandbox import Sandbox
from tests.e2e.callback_bed import (
    ANSWERS,
    BUSY,
    CALLBACKS,
    MACHINE,
    NO_ANSWER,
    PLACEHOLDER,
    QUEUE,
    REJECTS,
    RETRY_AFTER,
    Bed,
    customer_leg,
    log_lines,
    near,
    on_customer,
    open_bed,
    placeholder_of,
    prompt_started,
    running_cb_box,
    short_call,
    wait_until,
)
from tests.e2e.test_saturday import heard_on
from tests.support.asterisk_events import Ev, ami, ari
from tests.support.nohold_process import run_cli
from tests.support.smsc import Smsc

pytestmark = pytest.mark.e2e


@pytest.fixture
def cb_box() -> Iterator[Sandbox]:
    with running_cb_box() as box:
        yield box


@pytest.fixture
async def bed(cb_box: Sandbox, tmp_path: Path) -> AsyncIterator[Bed]:
    async with open_bed(cb_box, tmp_path) as bed:
        yield bed


# -- a: the offer and the promise -------------------------------------------------------
async def test_offer_read_back_promise_stores_one_pending_callback(bed: Bed) -> None:
    caller, join = await bed.call("601000001")
    leave = await bed.take_offer(caller, join)
    assert leave.data.get("Position") == "1", leave.data
    # The number read back is the caller id, then the caller confirms it.
    await caller.wait_for_playback("/callback_number_is", timeout=10)
    await caller.wait_for_playback("digits:601000001", timeout=10)
    await caller.wait_for_playback("/callback_confirm", timeout=20)
    await caller.press("1")
    await caller.wait_for_playback("/callback_promise", timeout=10)
    await caller.wait_for_playback("/callback_minutes", timeout=20)
    await caller.wait_hungup(timeout=20)
    # (An offer at the door may come first: nobody serves, offer_when_wait_over.)
    heard = [m.rsplit("/", 1)[-1] for m in caller.playbacks()]
    heard = heard[heard.index("callback_number_is"):]
    assert heard[:4] == ["callback_number_is", "digits:601000001", "callback_confirm",
                         "callback_promise"], caller.format_timeline()
    assert heard[4].startswith("number:") and heard[5:] == ["callback_minutes"], heard

    rows = await bed.rows()
    assert len(rows) == 1, rows
    row = rows[0]
    # With the dialler running, a pending row may already stand in the queue (queued):
    # both are "promised, waiting for its turn".
    assert row.state.value in ("pending", "queued"), row
    assert (row.number, row.queue, row.requests, row.attempts) == (
        "+48601000001", QUEUE, 1, 0), row
    # arrived_at is the first arrival (the dialplan's ${EPOCH}, whole seconds), no later
    # than the QueueCallerJoin (an offer at the door, if any, plays in between).
    came = bed.arrival(caller)
    assert 0 <= came.ts - row.arrived_at.timestamp() < 1.05, (came.ts, row.arrived_at)
    assert row.arrived_at.timestamp() <= join.ts, (join.ts, row.arrived_at)
    assert row.promised_earliest is not None and row.promised_latest is not None, row
    assert row.requested_at <= row.promised_earliest <= row.promised_latest, row
    assert row.call_id == caller.linkedid, (row.call_id, caller.linkedid)
    # The caller's channels are gone (not parked anywhere).
    alive = {c["id"] for c in await bed.rec.rest("GET", "/channels")}
    assert not alive & {caller.channel_id, caller.dialplan_channel_id}, alive

    # The same number again: "already", and still one row (asked twice).
    again, join2 = await bed.call("601000001")
    await bed.take_offer(again, join2)
    await again.wait_for_playback("/callback_confirm", timeout=20)
    await again.press("1")
    await again.wait_for_playback("/callback_already", timeout=15)
    await again.wait_hungup(timeout=20)
    assert not any("/callback_promise" in m for m in again.playbacks()), again.format_timeline()
    rows = await bed.rows()
    assert len(rows) == 1 and rows[0].requests == 2, rows
    assert rows[0].arrived_at == row.arrived_at, "the earlier arrival is kept"


# -- d: a number that may not be called, and a caller who never confirms -----------------
async def test_refused_number_then_an_allowed_keyed_number_is_stored(bed: Bed) -> None:
    caller, join = await bed.call("701234567")           # premium: not allowed
    await bed.take_offer(caller, join)
    await caller.wait_for_playback("/callback_enter_number", timeout=10)
    assert not any("digits:" in m for m in caller.playbacks()), "premium id not read back"
    await caller.press("701234567#")                      # keyed, still premium
    await caller.wait_for_playback("/callback_refused", timeout=10)
    await caller.wait_for(prompt_started(caller, "/callback_enter_number", 2), 15)
    await caller.press("601000005#")
    await caller.wait_for_playback("digits:601000005", timeout=10)
    await caller.wait_for_playback("/callback_confirm", timeout=20)
    await caller.press("1")
    await caller.wait_for_playback("/callback_promise", timeout=10)
    await caller.wait_hungup(timeout=25)
    rows = await bed.rows()
    assert [(r.number, r.queue) for r in rows] == [("+48601000005", QUEUE)], rows
    came = bed.arrival(caller)
    assert 0 <= came.ts - rows[0].arrived_at.timestamp() < 1.05, (came.ts, rows[0])
    assert rows[0].arrived_at.timestamp() <= join.ts, (join.ts, rows[0])


async def test_caller_who_never_confirms_goes_back_in_line_at_their_place(bed: Bed) -> None:
    first, _ = await bed.call("601000011")
    decider, join = await bed.call("601000012")
    assert join.data["Position"] == "2", join.data
    last, _ = await bed.call("601000013")
    leave = await bed.take_offer(decider, join)
    assert leave.data["Position"] == "2", leave.data
    await decider.wait_for_playback("/callback_number_is", timeout=10)
    await decider.press("2")                              # not this number
    for n in (1, 2):                                       # then nothing usable, twice
        await decider.wait_for(prompt_started(decider, "/callback_enter_number", n), 15)
        await decider.press("#")
    back = await bed.rec.wait(ami("QueueCallerJoin", Queue=QUEUE,
                                  Uniqueid=decider.dialplan_channel_id), 30, leave.seq,
                              what="the caller back in line")
    assert back.data["Position"] == leave.data["Position"], (back.data, leave.data)
    shown = bed.box.cli(f"queue show {QUEUE}")
    order = [ln.split(". ", 1)[1].split(" ", 1)[0] for ln in shown.splitlines()
             if ". Local/" in ln]
    joins = {e.data["Uniqueid"]: e.data["Channel"] for e in bed.rec.find(ami("QueueCallerJoin"))}
    assert order == [joins[c.dialplan_channel_id] for c in (first, decider, last)], shown
    assert await bed.rows() == [], "no number confirmed: nothing promised"


# -- b: the placeholder keeps the place, the agent comes first --------------------------
async def test_placeholder_keeps_the_place_and_the_agent_is_bridged_before_the_customer_exists(
        bed: Bed) -> None:
    a, a_join = await bed.call(ANSWERS)
    b, b_join = await bed.call("601000021")               # a live caller, behind A
    assert (a_join.data["Position"], b_join.data["Position"]) == ("1", "2")
    await bed.take_offer(a, a_join)
    await a.wait_for_playback("/callback_confirm", timeout=20)
    await a.press("1")
    await a.wait_hungup(timeout=25)
    (row,) = await bed.rows()

    # Its placeholder stands at A's place, ahead of B who joined later.
    ph_join = await bed.rec.wait(lambda e: ami("QueueCallerJoin", Queue=QUEUE)(e)
                                 and e.channel_name.startswith(PLACEHOLDER), 20,
                                 what="the placeholder's QueueCallerJoin")
    assert ph_join.data["Position"] == "1", ph_join.data
    assert bed.rec.count(lambda e: e.type == "MusicOnHoldStart"
                     and e.channel_name.startswith(PLACEHOLDER)) == 0

    mark = len(bed.rec.events)
    await bed.pause(False)
    first = await bed.rec.wait(ami("AgentConnect", Queue=QUEUE), 20, mark,
                               what="the agent connected")
    assert first.channel_name.startswith(PLACEHOLDER), first.line(bed.rec.t0)
    # nohold bridges its half of the placeholder, then (only then) makes the customer.
    entered = await bed.rec.wait(lambda e: ari("ChannelEnteredBridge")(e)
                                 and placeholder_of(row.id)(e) and e.channel_name.endswith(";1"),
                                 15, mark, what="the placeholder ;1 in nohold's bridge")
    created = await bed.rec.wait(customer_leg(ANSWERS), 20, mark, what="the customer's leg")
    assert bed.rec.find(customer_leg(ANSWERS)) == [created], "one customer leg"
    assert entered.seq < created.seq and entered.ts <= created.ts, bed.context()
    assert first.ts <= created.ts, (first.line(bed.rec.t0), created.line(bed.rec.t0))
    # The customer answers and is in the same bridge as the agent's side.
    answered = await bed.rec.wait(lambda e: ari("ChannelUserevent")(e)
                                  and e.data.get("eventname") == "CbCustomerAnswered", 20, mark,
                                  what="the customer answering")
    joined = await bed.rec.wait(lambda e: ari("ChannelEnteredBridge", created.channel_id)(e),
                                15, mark, what="the customer in the bridge")
    assert joined.bridge_id == entered.bridge_id, bed.context()
    seen = answered.data["userevent"]
    assert seen.get("cid", "").endswith("221234567") and seen.get("cname") == "Example Net", seen

    # The customer hangs up: the agent is freed and B, the live caller, is served.
    far = next(e for e in bed.rec.find(lambda e: ari("ChannelCreated")(e) and on_customer(e))
               if e.channel_name.endswith(";2"))
    await bed.rec.rest("DELETE", f"/channels/{far.channel_id}")
    served_b = await bed.rec.wait(ami("AgentConnect", Queue=QUEUE,
                                      Uniqueid=b.dialplan_channel_id), 30, mark,
                                  what="B served after the callback")
    assert served_b.seq > first.seq

    done = await bed.row_becomes(row.id, lambda r: r.state.value == "completed", 20, "completed")
    (attempt,) = await bed.attempts(row.id)
    assert attempt.customer_answer_at is not None and attempt.answer_to_audio_ms is not None, attempt
    # The ring, from Asterisk's Dial RINGING: after the agent was up, before the answer.
    assert attempt.customer_ring_at is not None and attempt.agent_up_at is not None, attempt
    assert attempt.agent_up_at <= attempt.customer_ring_at <= attempt.customer_answer_at, attempt
    assert attempt.agent == "Agent A", attempt  # AgentConnect's MemberName
    assert done.attempts == 1, done
    # The invariant: never music on a customer's channel; the recorder does see music (B's).
    assert bed.rec.count(lambda e: e.type == "MusicOnHoldStart" and on_customer(e)) == 0, \
        bed.context()
    assert bed.rec.count(lambda e: ami("MusicOnHoldStart", Uniqueid=b.dialplan_channel_id)(e)) >= 1


# -- c: busy, retried once after retry_after, then expired -------------------------------
async def test_busy_customer_is_retried_after_retry_after_then_expires_at_max_attempts(
        bed: Bed) -> None:
    await bed.request(BUSY)
    (row,) = await bed.rows()
    mark = len(bed.rec.events)
    await bed.pause(False)
    first = await bed.rec.wait(customer_leg(BUSY), 30, mark, what="attempt 1's customer leg")
    await bed.rec.wait(lambda e: ari("Dial", first.channel_id)(e)
                       and e.data.get("dialstatus") == "BUSY", 20, first.seq, what="BUSY")
    # Busy leaves the leg in nohold's bridge: nohold must hang it up itself.
    await bed.rec.wait(ari("ChannelDestroyed", first.channel_id), 15, first.seq,
                       what="attempt 1's leg hung up")
    retry = await bed.row_becomes(row.id, lambda r: r.state.value == "retry", 15, "retry")
    (a1,) = await bed.attempts(row.id)
    assert (a1.attempt, a1.outcome, retry.outcome, retry.attempts) == (1, "busy", "busy", 1), \
        (a1, retry)
    assert a1.ended_at is not None and near(retry.due_at, a1.ended_at.timestamp() + RETRY_AFTER,
                                            1.5), (retry.due_at, a1.ended_at)
    second = await bed.rec.wait(lambda e: customer_leg(BUSY)(e) and e.seq > first.seq,
                                RETRY_AFTER + 30, first.seq, what="attempt 2's customer leg")
    assert retry.due_at is not None and second.ts >= retry.due_at.timestamp() - 0.5, \
        (second.line(bed.rec.t0), retry.due_at)
    final = await bed.row_becomes(row.id, lambda r: r.state.value == "expired", 30, "expired")
    assert (final.outcome, final.attempts) == ("max_attempts", 2), final
    assert [(a.attempt, a.outcome) for a in await bed.attempts(row.id)] == [
        (1, "busy"), (2, "busy")]
    # Never a third leg: not within another retry_after and more.
    await bed.rec.wait_none(lambda e: customer_leg(BUSY)(e) and e.seq > second.seq,
                            RETRY_AFTER + 5, second.seq, what="third customer leg")
    assert bed.rec.count(customer_leg(BUSY)) == 2
    assert bed.rec.count(lambda e: e.type == "MusicOnHoldStart" and on_customer(e)) == 0


# -- the other ends of a ring: reject, no answer -----------------------------------------
@pytest.mark.parametrize(("number", "outcome"), [(REJECTS, "rejected"),
                                                 (NO_ANSWER, "no_answer")])
async def test_unanswered_customer_ends_the_attempt_and_releases_the_agent(
        bed: Bed, number: str, outcome: str) -> None:
    await bed.request(number)
    (row,) = await bed.rows()
    mark = len(bed.rec.events)
    await bed.pause(False)
    leg = await bed.rec.wait(customer_leg(number), 30, mark, what="the customer's leg")
    gone = await bed.rec.wait(ari("ChannelDestroyed", leg.channel_id), 15 + 10, leg.seq,
                              what="the customer's leg ended")
    if number == NO_ANSWER:
        # Rang the whole ring_timeout (15 s), no longer; the agent heard ringing meanwhile.
        assert 15 - 0.5 <= gone.ts - leg.ts <= 15 + 5.5, gone.ts - leg.ts
        ring = bed.rec.find(lambda e: ari("PlaybackStarted")(e) and e.data["playback"][
            "media_uri"] == "tone:ring")
        assert ring, bed.context()
    # The agent hears why, then is released (the placeholder ends, app_queue completes).
    told = await bed.rec.wait(lambda e: ari("PlaybackStarted")(e) and e.data["playback"][
        "media_uri"].endswith("/callback_not_reached"), 15, leg.seq, what="the agent told")
    await bed.rec.wait(ami("AgentComplete", Queue=QUEUE), 15, told.seq,
                       what="the agent released")
    retry = await bed.row_becomes(row.id, lambda r: r.state.value == "retry", 15, "retry")
    (a1,) = await bed.attempts(row.id)
    assert (a1.outcome, retry.outcome, a1.customer_answer_at) == (outcome, outcome, None), a1
    assert bed.rec.count(customer_leg(number)) == 1
    assert bed.rec.count(lambda e: e.type == "MusicOnHoldStart" and on_customer(e)) == 0


# -- an answering machine (callbacks.amd, app_amd in the outbound route) ------------------
async def test_answering_machine_ends_its_leg_the_agent_is_told_and_the_attempt_is_typed_machine(
        cb_box: Sandbox, tmp_path: Path) -> None:
    async with open_bed(cb_box, tmp_path, {"amd": True, "outbound": "context:cb-amd-out",
                                           "max_attempts": 1}) as bed:
        now = datetime.now(UTC)
        row, _ = await bed.store.request(
            call_id="amd", number=f"+48{MACHINE}", queue=QUEUE, arrived_at=now, now=now,
            promised=None, expires_at=now + timedelta(hours=1))
        mark = len(bed.rec.events)
        await bed.pause(False)
        leg = await bed.rec.wait(customer_leg(MACHINE), 30, mark, what="the customer's leg")
        await bed.rec.wait(lambda e: ari("ChannelUserevent")(e)
                           and e.data.get("eventname") == "CbCustomerAnswered", 10, leg.seq,
                           what="the machine answering")
        try:
            gone = await bed.rec.wait(ari("ChannelDestroyed", leg.channel_id), 20, leg.seq,
                                      what="the machine's leg ended")
        except TimeoutError:
            raise AssertionError("\n".join(log_lines(bed.box, "AMD")) + bed.context()) from None
        # The agent is told, then released; nothing was said to the machine.
        await bed.rec.wait(lambda e: ari("PlaybackStarted")(e) and e.data["playback"][
            "media_uri"].endswith("/callback_not_reached"), 15, gone.seq, what="the agent told")
        final = await bed.row_becomes(row.id, lambda r: r.state.value == "expired", 15,
                                      "expired")
        assert [(a.attempt, a.outcome) for a in await bed.attempts(row.id)] == [
            (1, "machine")], final
        # Nothing is played to the machine (no information message left on it).
        assert bed.rec.count(lambda e: ari("PlaybackStarted")(e) and e.data["playback"][
            "target_uri"] == f"channel:{leg.channel_id}") == 0, bed.context()
        # app_amd decided, and the leg went the machine's way (Asterisk's own log).
        assert log_lines(bed.box, "[s@nohold-callback-machine:1]"), bed.box.log_tail(80)


# -- a callback at an agreed time (calendar issue §2) --------------------------------------
# Open every minute of every day: no public holiday closes it (country ""), so no date
# the suite runs on changes what it asserts.
ALWAYS: dict[str, object] = {
    "country": "", **{day: ["00:00-24:00"]
                      for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}


def midday_zone() -> tuple[ZoneInfo, datetime]:
    """A fixed-offset zone in which it is now between 12:00 and 13:00, and that now:
    slots a few minutes ahead then never cross midnight, whenever the suite runs."""
    now = datetime.now(UTC)
    offset = 12 - now.hour  # -11..12: Etc/GMT-N is UTC+N
    zone = ZoneInfo(f"Etc/GMT{-offset:+d}")
    return zone, now.astimezone(zone)


@pytest.fixture
def slots_box() -> Iterator[Sandbox]:
    with running_cb_box(offer="callback_offer_or_time") as box:
        yield box


async def test_a_caller_chooses_a_time_by_dtmf_and_a_full_slot_is_never_offered(
        slots_box: Sandbox, tmp_path: Path) -> None:
    zone, now = midday_zone()
    m = now.hour * 60 + now.minute + 3  # slots from 3 minutes ahead, 10 minutes each

    def hhmm(minutes: int) -> str:
        return f"{minutes // 60:02d}:{minutes % 60:02d}"

    early, late = (m, m + 10), (m + 10, m + 20)
    slots = [{"window": f"{hhmm(a)}-{hhmm(b)}", "agents": 1} for a, b in (early, late)]
    desk = {**ALWAYS, "timezone": zone.key}
    # One agent, 600 s per call: each 10-minute slot holds one callback.
    async with open_bed(slots_box, tmp_path,
                        {"calendar": "desk", "slots": slots, "slots_days": 0,
                         "slot_lead": 60, "default_handle_time": 600},
                        sections={"calendar": {"default": "desk", "desk": desk}}) as bed:
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)

        def at(minutes: int) -> datetime:
            return (day + timedelta(minutes=minutes)).astimezone(UTC)

        # The early slot is already taken by a callback an agent booked.
        await bed.store.request(call_id="booked-before", number="+48601000099", queue=QUEUE,
                                arrived_at=at(early[0]), now=datetime.now(UTC),
                                promised=(at(early[0]), at(early[1])),
                                expires_at=at(early[1]), due_at=at(early[0]))

        caller, join = await bed.call(ANSWERS)
        await bed.hears_offer(caller, join)
        await caller.press("2")
        await bed.rec.wait(ami("QueueCallerLeave", Queue=QUEUE,
                               Uniqueid=caller.dialplan_channel_id), 10, join.seq,
                           what="QueueCallerLeave after 2")
        await caller.wait_dialplan_app("Stasis", f"nohold-callback,offer-time,{QUEUE},",
                                       timeout=10)
        await caller.wait_for_playback("/callback_keep_waiting", timeout=30)
        await caller.press("1")  # the only time offered: the late slot, today
        await caller.wait_for_playback("/callback_confirm", timeout=20)
        await caller.press("1")  # the caller id is the number
        await caller.wait_for_playback("/callback_goodbye", timeout=30)
        await caller.wait_hungup(timeout=20)

        def said(minutes: int) -> list[str]:
            return [f"number:{minutes // 60}"] + ([f"number:{minutes % 60}"]
                                                  if minutes % 60 else [])

        slot_words = ["callback_today", "callback_between", *said(late[0]), "callback_and",
                      *said(late[1])]
        heard = [u.rsplit("/", 1)[-1] for u in caller.playbacks()]
        heard = heard[heard.index("callback_times"):]
        assert heard[:heard.index("callback_number_is")] == [
            "callback_times", *slot_words, "callback_press", "digits:1",
            "callback_keep_waiting"], caller.format_timeline()
        assert heard[heard.index("callback_booked"):] == [
            "callback_booked", *slot_words, "callback_goodbye"], caller.format_timeline()

        row = next(r for r in await bed.rows() if r.number == "+48601000001")
        assert (row.scheduled, row.due_at, row.promised_earliest, row.expires_at,
                row.call_id) == (True, at(late[0]), at(late[0]), at(late[1]),
                                 caller.linkedid), row
        assert row.state.value == "pending", row  # not before its time

        # Both slots are full now: the next caller who presses 2 is told so and keeps
        # their place in the queue.
        second, join2 = await bed.call(BUSY)
        await bed.hears_offer(second, join2)
        await second.press("2")
        await second.wait_for_playback("/callback_no_times", timeout=15)
        await bed.rec.wait(ami("QueueCallerJoin", Queue=QUEUE,
                               Uniqueid=second.dialplan_channel_id), 15, join2.seq + 1,
                           what="the second caller back in the queue")
        assert not any("callback_times" in u for u in second.playbacks())
        assert [r.number for r in await bed.rows()].count("+48601000002") == 0
        assert bed.rec.count(customer_leg(ANSWERS)) == 0


async def test_a_booked_callback_is_dialled_agent_first_at_the_agreed_time_never_before(
        cb_box: Sandbox, tmp_path: Path) -> None:
    number = short_call(41)  # answers after 0.5 s of ringing, hangs up 1 s later
    async with open_bed(cb_box, tmp_path, {"calendar": "desk"},
                        sections={"calendar": {"default": "desk", "desk": ALWAYS}}) as bed:
        await bed.pause(False)  # a free agent: only the agreed time holds the call back
        at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
        added = await asyncio.to_thread(
            run_cli, bed.nohold.config, "callbacks", "add", "--number", number, "--at",
            at.isoformat(), "--window", "5m", "--note", "line check")
        assert added.returncode == 0, added.stdout + added.stderr
        (row,) = await bed.rows()
        assert (row.scheduled, row.due_at, row.note) == (True, at, "line check"), row
        join = await bed.rec.wait(lambda e: ami("QueueCallerJoin", Queue=QUEUE)(e)
                                  and placeholder_of(row.id)(e), 20,
                                  what="the placeholder at the agreed time")
        leg = await bed.rec.wait(customer_leg(number), 15, join.seq, what="the customer's leg")
        # Never before the agreed time (Asterisk's clock is this host's), and punctual.
        assert join.ts >= at.timestamp(), (join.ts, at)
        assert leg.ts - at.timestamp() < 5, leg.ts - at.timestamp()
        # Agent first: the agent's side is in the bridge before the customer's leg exists.
        entered = bed.rec.find(lambda e: ari("ChannelEnteredBridge")(e)
                               and placeholder_of(row.id)(e) and not e.channel_id.endswith("-q"))
        assert entered and entered[0].seq < leg.seq, bed.context()
        done = await bed.row_becomes(row.id, lambda r: r.state.value == "completed", 20,
                                     "completed")
        assert [(a.attempt, a.outcome) for a in await bed.attempts(row.id)] == [
            (1, "talked")], done
        assert bed.rec.count(customer_leg(number)) == 1


async def test_the_agent_hears_who_the_callback_is_for_then_its_note_then_the_ring(
        cb_box: Sandbox, tmp_path: Path) -> None:
    number = "601000003"  # rings, nobody answers: the whole whisper is heard
    async with open_bed(cb_box, tmp_path, {"calendar": "desk"},
                        sections={"calendar": {"default": "desk", "desk": ALWAYS}}) as bed:
        at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
        added = await asyncio.to_thread(
            run_cli, bed.nohold.config, "callbacks", "add", "--number", number, "--at",
            at.isoformat(), "--window", "5m", "--note", "Follow-up of ticket 7: fibre spliced")
        assert added.returncode == 0, added.stdout + added.stderr
        (row,) = await bed.rows()
        # Rendered ahead, while the agent is still paused: the whisper never waits for it.
        await wait_until(lambda: "callback_note_ready" in bed.nohold.log(), 20,
                         "the note rendered ahead")
        await bed.pause(False)
        # One playback of several media: PlaybackStarted, then PlaybackContinuing.
        note = await bed.rec.wait(
            lambda e: e.type in ("PlaybackStarted", "PlaybackContinuing") and str(
                e.data["playback"]["media_uri"]).endswith(f"/{note_name(row)}"),
            30, what="the note read to the agent")
        leg = await bed.rec.wait(customer_leg(number), 15, what="the customer's leg")
        target = str(note.data["playback"]["target_uri"])
        assert target.startswith("channel:") and not target.endswith(leg.channel_id)
        # Who it is for, the note, and only then (the dial) the ring tone.
        assert note.seq < leg.seq, bed.context()
        await bed.rec.wait(lambda e: ari("PlaybackStarted")(e) and e.data["playback"][
            "media_uri"] == "tone:ring" and e.data["playback"]["target_uri"] == target,
            15, leg.seq, what="the ring tone to the agent")
        heard = heard_on(bed.rec, target)
        assert heard[:3] == ["callback_whisper_owner", note_name(row).rsplit("/", 1)[-1],
                             "ring"], heard
        await bed.row_becomes(row.id, lambda r: r.attempts >= 1 and r.state.value in (
            "retry", "expired", "pending"), 40, "the unanswered attempt ended")


async def book(bed: Bed, number: str, at: datetime) -> CallbackRecord:
    added = await asyncio.to_thread(
        run_cli, bed.nohold.config, "callbacks", "add", "--number", number, "--at",
        at.isoformat(), "--window", "5m")
    assert added.returncode == 0, added.stdout + added.stderr
    return next(r for r in await bed.rows() if r.number == f"+48{number}")


async def test_a_callback_due_while_the_desk_is_closed_moves_to_its_next_opening(
        cb_box: Sandbox, tmp_path: Path) -> None:
    number = short_call(43)
    async with open_bed(cb_box, tmp_path, {"calendar": "desk"},
                        sections={"calendar": {"default": "desk", "desk": ALWAYS}}) as bed:
        await bed.pause(False)
        now = datetime.now(UTC).replace(microsecond=0)
        at = now + timedelta(seconds=15)
        row = await book(bed, number, at)
        # After it was agreed, a supervisor closes the desk across its time (nohold reads
        # overrides every 5 s: closed from 10 s ahead, well before the agreed time).
        opens = now + timedelta(seconds=30)
        closed = await asyncio.to_thread(
            run_cli, bed.nohold.config, "hours", "override", "add", "--calendar", "desk",
            "--closed", "--from", (now + timedelta(seconds=10)).isoformat(), "--to",
            opens.isoformat(), "--note", "staff training")
        assert closed.returncode == 0, closed.stdout + closed.stderr
        # Read while it waits for the reopening: once dialled and over, the row's due_at
        # is the attempt's business (a completed callback has none), and a slow machine
        # read it after the 2 s call in one CI run.
        moved = await bed.row_becomes(row.id, lambda r: r.moved_from is not None, 30,
                                      "moved by the closure")
        assert (moved.moved_from, moved.due_at, moved.expires_at - moved.due_at) == (
            at, opens, timedelta(minutes=5)), moved
        assert "staff training" in moved.moved_why, moved
        join = await bed.rec.wait(lambda e: ami("QueueCallerJoin", Queue=QUEUE)(e)
                                  and placeholder_of(row.id)(e), 45,
                                  what="the placeholder once the desk opens again")
        assert join.ts >= opens.timestamp(), (join.ts, opens)
        await bed.row_becomes(row.id, lambda r: r.state.value == "completed", 20, "completed")
        assert [(a.attempt, a.outcome) for a in await bed.attempts(row.id)] == [(1, "talked")]
        assert bed.rec.count(customer_leg(number)) == 1
        assert any("callback_moved" in ln for ln in bed.nohold.log().splitlines()), bed.logs()


async def test_a_nohold_killed_just_before_the_agreed_time_dials_it_once_after_restart(
        cb_box: Sandbox, tmp_path: Path) -> None:
    number = short_call(44)
    async with open_bed(cb_box, tmp_path, {"calendar": "desk"},
                        sections={"calendar": {"default": "desk", "desk": ALWAYS}}) as bed:
        await bed.pause(False)
        at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10)
        row = await book(bed, number, at)
        # Killed 2 s before the agreed time (a clock wait: the time is what is tested).
        await asyncio.sleep(max(0.0, at.timestamp() - 2 - time.time()))
        assert bed.nohold.stop(signal.SIGKILL) == -signal.SIGKILL
        assert bed.rec.count(placeholder_of(row.id)) == 0, "nothing before its time"
        await bed.another_nohold("restarted", config=bed.nohold.config)
        join = await bed.rec.wait(lambda e: ami("QueueCallerJoin", Queue=QUEUE)(e)
                                  and placeholder_of(row.id)(e), 20,
                                  what="the placeholder after the restart")
        assert join.ts >= at.timestamp()
        await bed.row_becomes(row.id, lambda r: r.state.value == "completed", 30, "completed")
        assert [(a.attempt, a.outcome) for a in await bed.attempts(row.id)] == [(1, "talked")]
        assert bed.rec.count(customer_leg(number)) == 1, bed.context()
        assert bed.rec.count(lambda e: ami("QueueCallerJoin", Queue=QUEUE)(e)
                             and placeholder_of(row.id)(e)) == 1, bed.context()


@pytest.fixture
def two_agents() -> Iterator[Sandbox]:
    with running_cb_box(agents=2) as box:
        yield box


async def test_the_agent_who_promised_is_rung_first_and_after_the_grace_the_queue_takes_it(
        two_agents: Sandbox, tmp_path: Path) -> None:
    async with open_bed(two_agents, tmp_path, {"calendar": "desk", "owner_grace": 3},
                        agents=2,
                        sections={"calendar": {"default": "desk", "desk": ALWAYS}}) as bed:
        await bed.pause(False)

        async def book(number: str, owner: str) -> tuple[int, datetime]:
            at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
            added = await asyncio.to_thread(
                run_cli, bed.nohold.config, "callbacks", "add", "--number", number, "--at",
                at.isoformat(), "--window", "5m", "--owner", owner)
            assert added.returncode == 0, added.stdout + added.stderr
            row = next(r for r in await bed.rows() if r.number == f"+48{number}")
            return row.id, at

        def whisper(suffix: str, channel_prefix: str) -> Callable[[Ev], bool]:
            return lambda e: (ari("PlaybackStarted")(e)
                              and e.data["playback"]["media_uri"].endswith(suffix)
                              and e.data["playback"]["target_uri"].startswith(
                                  f"channel:{channel_prefix}"))

        # 1. The owner (Agent B) is free at the agreed time: nohold rings B directly.
        mark = len(bed.rec.events)
        first, at = await book(short_call(51), "Agent B")
        rung = await bed.rec.wait(lambda e: ari("ChannelCreated")(e)
                                  and e.channel_id.startswith(f"cb-{first}-")
                                  and e.channel_name.startswith("Local/cbb@cb-agents"), 20,
                                  mark, what="Agent B rung directly")
        assert rung.ts >= at.timestamp()
        await bed.rec.wait(whisper("/callback_whisper_owner", f"cb-{first}-"), 15, rung.seq,
                           what="the owner's whisper")
        await bed.rec.wait(customer_leg(short_call(51)), 15, rung.seq, what="the customer")
        done = await bed.row_becomes(first, lambda r: r.state.value == "completed", 20,
                                     "completed")
        assert [(a.outcome, a.agent) for a in await bed.attempts(first)] == [
            ("talked", "Agent B")], done
        assert not bed.rec.find(lambda e: ami("QueueCallerJoin", Queue=QUEUE)(e)
                                and placeholder_of(first)(e), mark), "never through the queue"

        # 2. The owner is away (paused): after owner_grace the queue's free agent (A) takes it.
        await bed.rec.action("QueuePause", Queue=QUEUE, Interface=bed.agents[1], Paused="true")
        mark = len(bed.rec.events)
        second, at = await book(short_call(52), "Agent B")
        join = await bed.rec.wait(lambda e: ami("QueueCallerJoin", Queue=QUEUE)(e)
                                  and placeholder_of(second)(e), 20, mark,
                                  what="the placeholder after the grace")
        assert join.ts >= at.timestamp() + 3 - 0.5, (join.ts, at)
        connect = await bed.rec.wait(ami("AgentConnect", Queue=QUEUE), 15, join.seq,
                                     what="an agent of the queue")
        assert connect.data.get("MemberName") == "Agent A", connect.data
        await bed.rec.wait(whisper("/callback_whisper_taken", f"cb-{second}-"), 15, join.seq,
                           what="the whisper saying another agent promised it")
        await bed.row_becomes(second, lambda r: r.state.value == "completed", 20, "completed")
        assert not bed.rec.find(lambda e: ari("ChannelCreated")(e)
                                and e.channel_id.startswith(f"cb-{second}-")
                                and e.channel_name.startswith("Local/cbb@cb-agents"), mark)


async def test_an_agent_books_over_the_http_api_during_a_call_and_is_rung_first_at_the_agreed_time(
        two_agents: Sandbox, tmp_path: Path) -> None:
    number = short_call(61)  # the customer: answers after 0.5 s of ringing, hangs up 1 s later
    async with open_bed(two_agents, tmp_path, {"calendar": "desk"}, agents=2, http=True,
                        sections={"calendar": {"default": "desk", "desk": ALWAYS}}) as bed:
        # A customer calls the queue and Agent B takes the call (A is away).
        await bed.rec.action("QueuePause", Queue=QUEUE, Interface=bed.agents[1], Paused="false")
        caller, join = await bed.call("601000071")
        talk = await bed.rec.wait(ami("AgentConnect", Queue=QUEUE,
                                      Uniqueid=caller.dialplan_channel_id), 20, join.seq,
                                  what="Agent B answering the customer")
        assert talk.data.get("MemberName") == "Agent B", talk.data

        # During the call B agrees a time with the customer and books it from their desk.
        at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
        booking = {"number": number, "at": at.isoformat(), "window": "5m",
                   "owner": "Agent B", "note": "agreed on the phone"}
        assert (await bed.api("POST", "/v1/callbacks", booking, token=None))[0] == 401
        status, booked = await bed.api("POST", "/v1/callbacks", booking)
        assert status == 201, (booked, bed.logs())
        assert (booked["number"], booked["owner_agent"], booked["scheduled"], booked["state"]) \
            == (f"+48{number}", "Agent B", True, "pending"), booked
        assert datetime.fromisoformat(booked["due_at"]) == at
        status, again = await bed.api("POST", "/v1/callbacks", booking)
        assert (status, again["callback"]["id"]) == (409, booked["id"]), again
        status, listed = await bed.api("GET", "/v1/callbacks?scheduled=true")
        assert [c["id"] for c in listed["callbacks"]] == [booked["id"]], listed

        # The call ends; A comes back too: the queue has a free agent other than B.
        mark = len(bed.rec.events)
        await caller.hangup()
        await bed.rec.action("QueuePause", Queue=QUEUE, Interface=bed.agents[0], Paused="false")

        # At the agreed time nohold rings B directly, then the customer.
        cb = booked["id"]
        rung = await bed.rec.wait(lambda e: ari("ChannelCreated")(e)
                                  and e.channel_id.startswith(f"cb-{cb}-")
                                  and e.channel_name.startswith("Local/cbb@cb-agents"), 40,
                                  mark, what="Agent B rung directly at the agreed time")
        assert at.timestamp() <= rung.ts < at.timestamp() + 5, (rung.ts, at)
        leg = await bed.rec.wait(customer_leg(number), 15, rung.seq, what="the customer's leg")
        assert bed.rec.find(customer_leg(number)) == [leg], "one customer leg"
        await bed.rec.wait(lambda e: ari("PlaybackStarted")(e)
                           and e.data["playback"]["media_uri"].endswith("/callback_whisper_owner")
                           and e.data["playback"]["target_uri"].startswith(f"channel:cb-{cb}-"),
                           15, rung.seq, what="the whisper: a callback you promised")
        # Agent first: B's side is in nohold's bridge before the customer's leg exists.
        entered = bed.rec.find(lambda e: ari("ChannelEnteredBridge")(e)
                               and e.channel_id.startswith(f"cb-{cb}-"), rung.seq)
        assert entered and entered[0].seq < leg.seq, bed.context()
        # Nothing of it existed before the agreed time, and it never went through the queue.
        assert not bed.rec.find(lambda e: e.channel_id.startswith(f"cb-{cb}-")
                                and e.ts < at.timestamp()), bed.context()
        assert not bed.rec.find(lambda e: ami("QueueCallerJoin", Queue=QUEUE)(e)
                                and placeholder_of(cb)(e), mark), "never through the queue"

        await bed.row_becomes(cb, lambda r: r.state.value == "completed", 20, "completed")
        status, shown = await bed.api("GET", f"/v1/callbacks/{cb}")
        assert status == 200 and shown["state"] == "completed", shown
        assert [(a["outcome"], a["agent"]) for a in shown["attempt_rows"]] == [
            ("talked", "Agent B")], shown


# -- issue 10 §5: the caller's SMS ------------------------------------------------------
async def test_a_caller_who_takes_a_callback_by_phone_gets_one_sms_with_the_number_and_window(
        cb_box: Sandbox, tmp_path: Path) -> None:
    async with Smsc.start() as smsc, open_bed(cb_box, tmp_path, sections={
            "sms": {"enabled": True, "smpp": {
                "host": "127.0.0.1", "port": smsc.port, "system_id": smsc.system_id,
                "password": smsc.password, "source": "ISP", "enquire_every": 5}}},
            callbacks={"sms": {"confirm": "{number}|{date}|{from}|{to}",
                               "date_format": "%Y-%m-%d %z"}}) as bed:
        caller, join = await bed.call("601000001")
        await bed.take_offer(caller, join)
        await caller.wait_for_playback("/callback_confirm", timeout=20)
        await caller.press("1")
        await caller.wait_for_playback("/callback_promise", timeout=10)
        submit = await smsc.next_event("submit", timeout=15)
        await caller.wait_hungup(timeout=20)
        [row] = await bed.rows()
        number, day, start, end = submit["text"].split("|")
        assert (submit["to"], submit["from"], number) == (
            "48601000001", "ISP", CALLBACKS["caller_id"]), submit
        # The window said is the one promised, in the callback calendar's wall clock.
        when = datetime.strptime(f"{day} {start}", "%Y-%m-%d %z %H:%M")
        assert row.promised_earliest is not None and row.promised_latest is not None
        assert abs((when - row.promised_earliest).total_seconds()) < 60, (when, row)
        assert end == row.promised_latest.astimezone(when.tzinfo).strftime("%H:%M"), (end, row)
        # Asked again (already promised): still that one SMS.
        again, join2 = await bed.call("601000001")
        await bed.take_offer(again, join2)
        await again.wait_for_playback("/callback_confirm", timeout=20)
        await again.press("1")
        await again.wait_for_playback("/callback_already", timeout=15)
        await again.wait_hungup(timeout=20)
        # The notices pass every 2 s; the second call lasted several of them.
        assert len(smsc.of("submit")) == 1, smsc.of("submit")
