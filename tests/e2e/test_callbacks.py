"""Callbacks (issue 8) against the real Asterisk 22 and the real `nohold run`.

Each test gets its own sandbox: queue cb-billing (one agent, a Local channel that
answers and stays, paused over AMI until the test wants it) offers a callback as
app_queue's periodic announcement (nohold's callback_offer prompt, 2 s after
joining, every 5 s; `context = nohold-callback-offer`). Callers enter through
nohold's own [nohold-callback-queue]. Customers are extensions of [cb-customers]:
48601000001 answers after 1 s of ringing and stays, 48601000002 is busy,
48601000003 never answers, 48601000004 rejects.

Everything asserted comes from Asterisk's own events (ARI channel/bridge events,
AMI with timestampevents, counted and ordered) or from nohold's database; waits
are on events with bounded timeouts, never sleeps.
"""

# ruff: noqa: E501  (dialplan lines)
from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from callbackdb.callbacks import AttemptRecord, CallbackRecord, CallbackStore
from callbackdb.engine import make_engine
from nohold.config import PromptSettings
from nohold.prompts import build_prompts
from nohold.sandbox import Sandbox, start_sandbox
from nohold.sandbox.caller import ScriptedCaller, TimelineEntry
from tests.support.asterisk_events import AMI_TIMESTAMPS, AsteriskEvents, Ev, ami, ari
from tests.support.nohold_process import NoholdProcess, run_cli, write_config

pytestmark = pytest.mark.e2e

QUEUE = "cb-billing"
AGENT = "Local/cba@cb-agents"
APP = "nohold-callback"
PLACEHOLDER = "Local/s@nohold-callback-placeholder"
START_DELAY = 2
FREQUENCY = 5
RETRY_AFTER = 10
# Customers (Polish mobiles, dialled as E.164 digits: dial_format = "e164_digits").
ANSWERS, BUSY, NO_ANSWER, REJECTS = "601000001", "601000002", "601000003", "601000004"

QUEUES = f"""
[{QUEUE}]
strategy = ringall
musicclass = default
timeout = 5
retry = 1
wrapuptime = 0
ringinuse = no
joinempty = yes
leavewhenempty = no
announce-frequency = 0
announce-holdtime = no
announce-position = no
min-announce-frequency = 0
periodic-announce = @@PROMPTS@@/callback_offer
periodic-announce-startdelay = {START_DELAY}
periodic-announce-frequency = {FREQUENCY}
announce-to-first-user = yes
context = nohold-callback-offer
member => {AGENT},0,Agent A
"""

DIALPLAN = """
[cb-callers]
; A caller of queue cb-billing, answered first (an ARI originate gives up on an
; unanswered Local channel after 30 s), entering as an admin's dialplan would.
exten => s,1,Answer()
 same => n,Goto(nohold-callback-queue,cb-billing,1)

[cb-agents]
; The queue's agent: answers and stays on the call until the other side hangs up.
exten => cba,1,Answer()
 same => n,UserEvent(CbAgent,agent: ${EXTEN},cid: ${CALLERID(num)})
 same => n,Wait(600)
 same => n,Hangup()

[cb-customers]
; Who nohold calls back (outbound = "context:cb-customers").
exten => 48601000001,1,UserEvent(CbCustomer,number: ${EXTEN})
 same => n,Ringing()
 same => n,Wait(1)
 same => n,Answer()
 same => n,UserEvent(CbCustomerAnswered,number: ${EXTEN},cid: ${CALLERID(num)},cname: ${CALLERID(name)})
 same => n,Wait(600)
 same => n,Hangup()
exten => 48601000002,1,UserEvent(CbCustomer,number: ${EXTEN})
 same => n,Busy(10)
exten => 48601000003,1,UserEvent(CbCustomer,number: ${EXTEN})
 same => n,Ringing()
 same => n,Wait(600)
exten => 48601000004,1,UserEvent(CbCustomer,number: ${EXTEN})
 same => n,Hangup(21)
"""

CALLBACKS = {
    "enabled": True,
    "queues": [QUEUE],
    "caller_id": "+48221234567",
    "caller_name": "Example Net",
    "allowed_numbers": ["PL:mobile", "PL:fixed_line"],
    "outbound": "context:cb-customers",
    "dial_format": "e164_digits",
    "ring_timeout": 15,
    "retry_after": RETRY_AFTER,
    "max_attempts": 2,
    "lease": 5,
    # What the queue above does (nohold may check the queue against these).
    "offer_after": START_DELAY,
    "offer_every": FREQUENCY,
}


# -- the bed ----------------------------------------------------------------------------
@dataclass
class Bed:
    box: Sandbox
    rec: AsteriskEvents
    nohold: NoholdProcess
    store: CallbackStore
    callers: list[ScriptedCaller] = field(default_factory=list)

    async def pause(self, paused: bool) -> None:
        mark = len(self.rec.events)
        await self.rec.action("QueuePause", Queue=QUEUE, Interface=AGENT,
                              Paused="true" if paused else "false")
        await self.rec.wait(ami("QueueMemberPause", Queue=QUEUE, Interface=AGENT,
                                Paused="1" if paused else "0"), 10, mark,
                            what=f"QueueMemberPause paused={paused}")

    async def call(self, caller_id: str | None) -> tuple[ScriptedCaller, Ev]:
        """A caller in the queue: returns it and its QueueCallerJoin."""
        caller = ScriptedCaller(self.box, context="cb-callers", exten="s", caller_id=caller_id)
        self.callers.append(caller)
        await caller.dial()
        join = await self.rec.wait(ami("QueueCallerJoin", Queue=QUEUE,
                                       Uniqueid=caller.dialplan_channel_id), 15,
                                   what="the caller's QueueCallerJoin")
        return caller, join

    async def hears_offer(self, caller: ScriptedCaller, join: Ev) -> Ev:
        """The periodic announcement starts: app_queue stops the caller's music for it,
        and its verbose log names our prompt on the caller's channel."""
        stop = await self.rec.wait(
            lambda e: ami("MusicOnHoldStop", Uniqueid=caller.dialplan_channel_id)(e)
            and e.seq > join.seq, START_DELAY + 8, what="the offer (MusicOnHoldStop)")
        channel = join.data["Channel"]
        await wait_until(lambda: any(channel in ln and "callback_offer" in ln
                                     for ln in log_lines(self.box, "Playing")), 10,
                         f"app_queue playing callback_offer to {channel}:\n"
                         + self.box.log_tail(30))
        return stop

    async def take_offer(self, caller: ScriptedCaller, join: Ev) -> Ev:
        """Hears the offer, presses 1: leaves the queue into nohold's app."""
        await self.hears_offer(caller, join)
        await caller.press("1")
        leave = await self.rec.wait(ami("QueueCallerLeave", Queue=QUEUE,
                                        Uniqueid=caller.dialplan_channel_id), 10, join.seq,
                                    what="QueueCallerLeave after 1")
        await caller.wait_dialplan_app("Stasis", f"{APP},offer,{QUEUE},", timeout=10)
        return leave

    async def request(self, caller_id: str) -> tuple[ScriptedCaller, Ev]:
        """A whole request with the caller id as the number: offer, 1, read back, 1,
        the promise, the end of the call."""
        caller, join = await self.call(caller_id)
        await self.take_offer(caller, join)
        await caller.wait_for_playback("/callback_confirm", timeout=20)
        await caller.press("1")
        await caller.wait_for_playback("/callback_minutes", timeout=20)
        await caller.wait_hungup(timeout=20)
        return caller, join

    def arrival(self, caller: ScriptedCaller) -> Ev:
        """When the caller entered nohold's queue context (the dialplan's NOHOLD_JOINED,
        whole seconds): their arrival, before any offer at the door and the queue."""
        found = self.rec.find(ami("Newexten", Uniqueid=caller.dialplan_channel_id,
                                  Context="nohold-callback-queue"))
        assert found, f"no Newexten into nohold-callback-queue:\n{self.rec.dump()}"
        return found[0]

    async def rows(self) -> list[CallbackRecord]:
        return await self.store.find()

    async def row_becomes(self, callback_id: int, pred: Callable[[CallbackRecord], bool],
                          timeout: float, what: str) -> CallbackRecord:  # noqa: ASYNC109
        """Polls nohold's database (bounded) until the row satisfies `pred`."""
        deadline = time.monotonic() + timeout
        row = await self.store.get(callback_id)
        while not (row is not None and pred(row)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"callback {callback_id} not {what} within {timeout:g}s: {row}\n"
                    f"attempts: {await self.store.attempts(callback_id)}\n"
                    f"Asterisk said:\n{self.rec.dump()}\nnohold log:\n{self.nohold.log()[-6000:]}")
            await asyncio.sleep(0.2)
            row = await self.store.get(callback_id)
        return row

    async def attempts(self, callback_id: int) -> list[AttemptRecord]:
        return await self.store.attempts(callback_id)

    def context(self) -> str:
        return (f"\n--- Asterisk said:\n{self.rec.dump()}\n--- nohold log (tail):\n"
                f"{self.nohold.log()[-8000:]}\n--- Asterisk log (tail):\n{self.box.log_tail(60)}")


def log_lines(box: Sandbox, needle: str) -> list[str]:
    try:
        text = box.messages_log.read_text(errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if needle in ln]


async def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        await asyncio.sleep(0.1)


def prompt_started(caller: ScriptedCaller, suffix: str, nth: int
                   ) -> Callable[[TimelineEntry], bool]:
    """The `nth` start of a prompt for this caller."""
    def pred(e: TimelineEntry) -> bool:
        return (e.type == "PlaybackStarted" and e.media_uri.endswith(suffix)
                and sum(m.endswith(suffix) for m in caller.playbacks()) == nth)
    return pred


def customer_leg(number: str) -> Callable[[Ev], bool]:
    """ARI ChannelCreated of the leg nohold makes to a customer (the Local ;1)."""
    return lambda e: (e.src == "ari" and e.type == "ChannelCreated"
                      and e.channel_name.startswith(f"Local/48{number}@cb-customers")
                      and e.channel_name.endswith(";1"))


def on_customer(e: Ev) -> bool:
    """Any event on any channel of [cb-customers] (both halves), ARI or AMI."""
    return "@cb-customers" in e.channel_name


def placeholder_of(callback_id: int) -> Callable[[Ev], bool]:
    """Either half of callback `callback_id`'s placeholder (ids are nohold's: `cb-<id>-`;
    its customer legs share the prefix, so the channel name tells them apart)."""
    return lambda e: (e.channel_id.startswith(f"cb-{callback_id}-")
                      and e.channel_name.startswith(PLACEHOLDER))


@pytest.fixture
def cb_box() -> Iterator[Sandbox]:
    box = start_sandbox(f"cb-{os.getpid()}", extra_dialplan=DIALPLAN,
                        extra_config={"queues.conf": QUEUES, "manager.conf": AMI_TIMESTAMPS})
    try:
        build_prompts(PromptSettings(dir=box.prompts_dir))
        yield box
    finally:
        box.stop()


@pytest.fixture
async def bed(cb_box: Sandbox, tmp_path: Path) -> AsyncIterator[Bed]:
    box = cb_box
    async with AsteriskEvents(box) as rec:
        config = write_config(box, tmp_path / "nohold.toml", {"callbacks": CALLBACKS})
        result = await asyncio.to_thread(run_cli, config, "db", "upgrade")
        assert result.returncode == 0, result.stderr
        proc = NoholdProcess(config=config, log_path=tmp_path / "nohold.log", app=APP)
        engine = make_engine(f"sqlite:///{tmp_path / 'nohold.db'}")
        bed = Bed(box, rec, proc, CallbackStore(engine, "e2e-reader"))
        try:
            await bed.pause(True)
            proc.start()
            await proc.wait_ready(box)
            yield bed
            assert proc.problems() == [], bed.context()
        finally:
            for caller in bed.callers:
                with contextlib.suppress(Exception):
                    await caller.close()
            proc.stop()
            await engine.dispose()


def near(when: datetime | None, epoch: float, within: float) -> bool:
    return when is not None and abs(when.timestamp() - epoch) <= within


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
