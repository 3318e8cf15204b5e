"""The IVR call flow and the Stasis runtime, driven through the fake ARI: exact request
sequences and the event orderings real Asterisk produces only now and then."""

from __future__ import annotations

import asyncio
import base64
import logging

import aiohttp
import pytest
from aiohttp import web

from nohold.ari_apps import runtime as runtime_module
from tests.flows.conftest import APP, FALLBACK, IvrFactory, problems
from tests.support.fake_ari import FakeAri, FakeCall, PlaybackPolicy

MENU_WAITS = {"input_timeout": 1.0}


def menus_wait_for_keys(call: FakeCall, media: str) -> PlaybackPolicy:
    """Prompts that take keys play until a key (or the test) stops them; the rest end at once."""
    if media.rsplit("/", 1)[-1] in ("main_menu", "billing_menu", "invalid"):
        return PlaybackPolicy.never()
    return PlaybackPolicy.at_once()


async def notice_row(ivr, call: FakeCall):  # type: ignore[no-untyped-def]
    await ivr.ledger.drain()  # the proof is written in the background, off the call
    row = await ivr.ledger.get(call.linkedid)
    assert row is not None, "the notice was claimed, so a proof row exists"
    return row


# -- the happy path ------------------------------------------------------------------------
async def test_key_1_reaches_tech_queue_with_the_notice_flag_set_before_continue(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr(MENU_WAITS)
    call = await ivr.call()
    await call.wait_playing("main_menu")
    await call.press("1")
    await call.wait_left()
    await ivr.idle()

    assert ivr.requests_of(call) == [
        "POST /channels/{ch}/answer",
        "POST /channels/{ch}/play/{pb:notice}",
        # As soon as it is heard: a hand-over from here on keeps the truth.
        "POST /channels/{ch}/variable __NOHOLD_NOTICE_PLAYED=1",
        "POST /channels/{ch}/variable NOHOLD_NOTICE=played",
        "POST /channels/{ch}/play/{pb:main_menu}",
        "DELETE /playbacks/{pb:main_menu}",   # the key barged in
        "POST /channels/{ch}/variable NOHOLD_ROUTE=queue:tech",
        "POST /channels/{ch}/play/{pb:transferring}",
        "POST /channels/{ch}/continue nohold-queues,tech,1",
    ]
    assert call.continued_to == ("nohold-queues", "tech", 1)
    assert call.variables["__NOHOLD_NOTICE_PLAYED"] == "1"
    assert call.media[0] == "sound:/var/lib/nohold/prompts/notice"
    assert (await notice_row(ivr, call)).outcome == "completed"
    assert fake.subscriptions[APP] == ["channel:", "bridge:"]
    assert problems(caplog_calls) == []
    routed = [r for r in caplog_calls.records if r.getMessage().startswith("call_routed")]
    assert [r.call for r in routed] == [call.linkedid]  # type: ignore[attr-defined]


async def test_billing_branch_and_back_to_main_then_operator(fake: FakeAri, start_ivr: IvrFactory,
                                                           caplog_calls):
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr(MENU_WAITS)
    call = await ivr.call()
    await call.wait_playing("main_menu")
    await call.press("2")
    await call.wait_playing("billing_menu")
    await call.press("0")
    await fake.until(lambda: call.prompts.count("main_menu") == 2)
    await call.press("3")
    await call.wait_left()
    assert call.prompts == ["notice", "main_menu", "billing_menu", "main_menu", "transferring"]
    assert call.continued_to == FALLBACK  # person:operator, chosen, not a failure
    assert problems(caplog_calls) == []


async def test_keys_pressed_during_the_notice_are_dropped_not_taken_as_a_choice(
        fake: FakeAri, start_ivr: IvrFactory):
    fake.playback_policy = PlaybackPolicy.never()
    ivr = await start_ivr(MENU_WAITS)
    call = await ivr.call()
    await call.wait_playing("notice")
    await call.press("1")
    await call.finish_playback()
    menu = await call.wait_playing("main_menu")
    await call.press("3")
    await fake.until(lambda: menu.state != "playing")
    await call.wait_playing("transferring")
    assert call.variables["NOHOLD_ROUTE"] == "person:operator"


# -- hang-up races -------------------------------------------------------------------------
async def test_failed_playback_before_the_hangup_events_is_caller_hung_up_not_completed(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    fake.playback_policy = PlaybackPolicy.never()
    ivr = await start_ivr(notice_seconds=5.0)
    call = await ivr.call()
    await call.wait_playing("notice")
    await call.finish_playback(state="failed")
    # Asterisk's hang-up events trail the PlaybackFinished by a few milliseconds.
    await asyncio.sleep(0.05)
    await call.hang_up()
    await ivr.idle()
    assert (await notice_row(ivr, call)).outcome == "caller_hung_up"
    assert "caller_hung_up" in caplog_calls.text
    assert problems(caplog_calls) == []
    assert ivr.runtime.channels == {}


@pytest.mark.parametrize("request_path", ["/channels/*/answer", "/channels/*/play/*"])
async def test_a_request_failed_by_a_channel_leaving_stasis_is_a_hang_up_not_a_failure(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls, request_path):
    """Asterisk fails the commands queued for a channel that leaves Stasis with 500
    ("Failed to answer channel", "Failed to queue media"), and the hang-up events may
    reach nohold after that answer: the call is a hang-up, not a failure to rescue."""
    fake.playback_policy = PlaybackPolicy.never()
    ivr = await start_ivr(notice_seconds=5.0)
    calls: list[FakeCall] = []

    def leave_stasis(_):  # type: ignore[no-untyped-def]
        asyncio.get_running_loop().call_later(0.05, fake.hang_up, calls[0])
        raise web.HTTPInternalServerError(text='{"message": "Failed to answer channel"}')

    fake.on_request("POST", request_path, leave_stasis)
    calls.append(call := await ivr.call())
    await ivr.idle()
    assert "caller_hung_up" in caplog_calls.text
    assert problems(caplog_calls) == []  # no call_failed, no rescue
    assert (await notice_row(ivr, call)).outcome == "caller_hung_up"
    assert call.continued_to is None
    assert ivr.runtime.channels == {}


async def test_done_playback_then_hangup_still_counts_a_cut_short_notice_as_hung_up(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    """The clock, not the event order, says whether the caller heard the whole notice."""
    fake.playback_policy = PlaybackPolicy.never()
    ivr = await start_ivr(notice_seconds=5.0)
    call = await ivr.call()
    await call.wait_playing("notice")
    await call.finish_playback(state="done")
    await asyncio.sleep(0.05)
    await call.hang_up()
    await ivr.idle()
    assert (await notice_row(ivr, call)).outcome == "caller_hung_up"
    assert problems(caplog_calls) == []


@pytest.mark.parametrize("prompt", ["notice", "main_menu", "transferring"])
async def test_stasis_end_before_the_last_playback_finished_ends_the_call_cleanly(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls, prompt):
    fake.playback_policy = (lambda call, media: PlaybackPolicy.never()
                            if media.endswith("/" + prompt) else PlaybackPolicy.at_once())
    ivr = await start_ivr(MENU_WAITS)
    call = await ivr.call()
    if prompt == "transferring":
        await fake.until(lambda: "main_menu" in call.prompts)
        await call.press("1")
    await call.wait_playing(prompt)
    await call.hang_up(playbacks="after_stasis_end")
    await ivr.idle()
    assert fake.sent(channel=call.id)[-3:] == ["StasisEnd", "PlaybackFinished",
                                               "ChannelDestroyed"]
    assert "caller_hung_up" in caplog_calls.text
    assert problems(caplog_calls) == []
    assert ivr.runtime.channels == {}
    # Nothing more is asked about a channel that is gone (no continue, no fallback).
    assert not fake.requested("POST", f"/channels/{call.id}/continue")
    if prompt == "notice":
        assert (await notice_row(ivr, call)).outcome == "caller_hung_up"


async def test_hangup_while_answering_closes_the_claimed_proof_row(fake: FakeAri,
                                                                  start_ivr: IvrFactory):
    ivr = await start_ivr()
    fake.fail("POST", "/channels/*/answer", 404)  # gone between StasisStart and answer
    call = await ivr.call()
    await ivr.idle()
    assert (await notice_row(ivr, call)).outcome == "caller_hung_up"
    assert call.media == []


# -- failures go to the fallback -----------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "where"), [
    ("POST", "/channels/*/play/*", "the notice playback"),
    ("POST", "/channels/*/variable", "setting the route variables"),
    ("POST", "/channels/*/continue", "the continue to the queue"),
])
async def test_a_rest_500_anywhere_sends_the_caller_to_the_fallback_with_one_log_line(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls, method, path, where):
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr(MENU_WAITS)
    if path == "/channels/*/play/*":
        fault = fake.fail(method, path, 500)
    call = await ivr.call()
    if path != "/channels/*/play/*":
        await call.wait_playing("main_menu")
        fault = fake.fail(method, path, 500)  # past the notice's own variables
        await call.press("1")
    await call.wait_left()
    await ivr.idle()
    assert fault.hits == 1, where
    assert call.continued_to == FALLBACK, where
    failed = [r for r in caplog_calls.records if r.getMessage().startswith("call_failed")]
    assert len(failed) == 1
    assert failed[0].call == call.linkedid  # type: ignore[attr-defined]
    assert f"channel={call.id}" in failed[0].getMessage()
    assert [p for p in problems(caplog_calls) if not p.startswith("ERROR call_failed")] == []


async def test_a_failing_notice_play_leaves_a_failed_proof_row(fake: FakeAri,
                                                              start_ivr: IvrFactory):
    ivr = await start_ivr()
    fake.fail("POST", "/channels/*/play/*", 500)
    call = await ivr.call()
    await call.wait_left()
    await ivr.idle()
    assert (await notice_row(ivr, call)).outcome == "failed"


async def test_a_bug_in_the_flow_also_reaches_the_fallback(fake: FakeAri, start_ivr: IvrFactory,
                                                          caplog_calls, monkeypatch):
    ivr = await start_ivr()

    async def broken(ch, menu):  # type: ignore[no-untyped-def]
        raise KeyError("a menu that the config check missed")

    monkeypatch.setattr(ivr.runtime.feature, "choose_route", broken)
    call = await ivr.call()
    await call.wait_left()
    assert call.continued_to == FALLBACK
    assert "KeyError" in caplog_calls.text


async def test_rescue_retries_while_ari_fails_then_reaches_the_fallback(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls, fast_retries):
    ivr = await start_ivr()
    fake.fail("POST", "/channels/*/play/*", 500)
    continues = fake.fail("POST", "/channels/*/continue", 500, times=3)
    call = await ivr.call()
    await call.wait_left()
    await ivr.idle()
    assert continues.hits == 3
    assert len(fake.requested("POST", f"/channels/{call.id}/continue")) == 4
    assert call.continued_to == FALLBACK
    assert caplog_calls.text.count("rescue_retry") == 3
    assert "rescue_failed" not in caplog_calls.text


async def test_rescue_retries_through_dropped_connections(fake: FakeAri, start_ivr: IvrFactory,
                                                          fast_retries):
    """Asterisk's HTTP session limit shows as a server disconnect, not as an HTTP error."""
    ivr = await start_ivr()
    fake.fail("POST", "/channels/*/play/*", 500)
    drops = fake.fail("POST", "/channels/*/continue", drop=True, times=2)
    call = await ivr.call()
    await call.wait_left()
    assert drops.hits == 2
    assert call.continued_to == FALLBACK


async def test_rescue_gives_up_after_its_deadline(fake: FakeAri, start_ivr: IvrFactory,
                                                 caplog_calls, fast_retries, monkeypatch):
    monkeypatch.setattr(runtime_module, "RESCUE_DEADLINE", 0.2)
    ivr = await start_ivr()
    fake.fail("POST", "/channels/*/play/*", 500)
    fake.fail("POST", "/channels/*/continue", 500, times=10_000)
    call = await ivr.call()
    await ivr.idle()
    assert call.in_stasis and call.continued_to is None
    assert len([r for r in caplog_calls.records
                if r.getMessage().startswith("rescue_failed")]) == 1
    assert len(fake.requested("POST", f"/channels/{call.id}/continue")) >= 2


async def test_rescue_stops_at_once_when_the_channel_is_gone(fake: FakeAri, start_ivr: IvrFactory,
                                                            caplog_calls):
    # The real deadline (20 s) and backoff: the test passing fast proves "at once".
    ivr = await start_ivr()
    fake.fail("POST", "/channels/*/play/*", 500)
    fake.fail("POST", "/channels/*/continue", 404)
    call = await ivr.call()
    await ivr.idle(timeout=1.0)
    assert len(fake.requested("POST", f"/channels/{call.id}/continue")) == 1
    assert "rescue_retry" not in caplog_calls.text
    assert "rescue_failed" not in caplog_calls.text


# -- reconnect, replacement, shutdown ------------------------------------------------------
async def test_after_a_socket_drop_reconcile_sends_an_orphan_to_the_fallback(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr(MENU_WAITS)
    known = await ivr.call()
    await known.wait_playing("main_menu")
    orphan = await ivr.call(deliver=False)   # its StasisStart is lost with the socket
    await fake.drop_socket(APP)
    await known.hang_up()                    # unseen too: nobody is listening
    await fake.wait_request("GET", f"/applications/{APP}", count=2)
    await orphan.wait_left()
    await ivr.idle()
    assert fake.connections[APP] == 2
    assert fake.subscriptions[APP] == ["channel:", "bridge:"] * 2  # re-subscribed
    assert orphan.continued_to == FALLBACK
    assert orphan.media == []
    assert f"reconcile_orphan app={APP} channel={orphan.id}" in caplog_calls.text
    assert f"reconcile_gone app={APP} channel={known.id}" in caplog_calls.text
    assert ivr.runtime.channels == {}


async def test_a_playback_that_ended_while_the_socket_was_down_does_not_strand_the_caller(
        fake: FakeAri, start_ivr: IvrFactory):
    """Asterisk does not replay the PlaybackFinished missed during a drop; a flow waiting
    for it would keep the caller in silence forever (nothing in Stasis times out)."""
    fake.playback_policy = PlaybackPolicy.never()
    ivr = await start_ivr(MENU_WAITS)
    call = await ivr.call()
    await call.wait_playing("notice")
    await fake.drop_socket(APP)
    await call.finish_playback()             # lost
    await fake.wait_request("GET", f"/applications/{APP}", count=2)
    await call.wait_playing("main_menu")


async def test_application_replaced_makes_run_return(fake: FakeAri, start_ivr: IvrFactory,
                                                    caplog_calls):
    ivr = await start_ivr()
    token = base64.b64encode(f"{fake.user}:{fake.password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{fake.url.replace('http', 'ws')}/ari/events", params={"app": APP},
            headers=headers):
        await asyncio.wait_for(ivr.task, 1.0)
        assert ivr.runtime.replaced.is_set()
        assert fake.sent("ApplicationReplaced") == ["ApplicationReplaced"]
    assert "application_replaced" in caplog_calls.text


async def test_shutdown_hands_a_caller_in_the_menu_to_the_fallback_after_stopping_playback(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr(MENU_WAITS)
    call = await ivr.call()
    await call.wait_playing("main_menu")
    await ivr.runtime.shutdown(grace=1.0)
    assert ivr.requests_of(call)[-2:] == [
        "DELETE /playbacks/{pb:main_menu}",
        "POST /channels/{ch}/continue nohold-people,operator,1",
    ]
    assert call.continued_to == FALLBACK
    assert (await notice_row(ivr, call)).outcome == "completed"
    assert call.variables["__NOHOLD_NOTICE_PLAYED"] == "1"  # set when heard, not in send_on
    assert f"shutdown_handover app={APP} channel={call.id}" in caplog_calls.text
    assert [p for p in problems(caplog_calls)] == []


async def test_shutdown_during_the_notice_keeps_its_proof_row(fake: FakeAri,
                                                             start_ivr: IvrFactory):
    fake.playback_policy = PlaybackPolicy.never()
    ivr = await start_ivr(notice_seconds=5.0)
    call = await ivr.call()
    await call.wait_playing("notice")
    await ivr.runtime.shutdown(grace=1.0)
    assert call.continued_to == FALLBACK
    # Not "completed": the caller did not hear it all. Not still "playing" either.
    assert (await notice_row(ivr, call)).outcome == "failed"
    assert call.variables["__NOHOLD_NOTICE_PLAYED"] == "0"


async def test_two_callers_are_independent(fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr(MENU_WAITS)
    a, b = await ivr.call(caller="201"), await ivr.call(caller="202")
    await a.wait_playing("main_menu")
    await b.wait_playing("main_menu")
    await b.press("3")
    await a.hang_up()
    await b.wait_left()
    await ivr.idle()
    assert b.continued_to == FALLBACK and a.continued_to is None
    lines = {r.getMessage().split()[0]: r.call for r in caplog_calls.records  # type: ignore
             if r.getMessage().startswith(("caller_hung_up", "call_routed"))}
    assert lines == {"caller_hung_up": a.linkedid, "call_routed": b.linkedid}


async def test_log_lines_carry_the_call_id(fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    ivr = await start_ivr()
    call = await ivr.call()
    await fake.until(lambda: "main_menu" in call.prompts)
    await call.press("1")
    await call.wait_left()
    await ivr.idle()
    mine = [r for r in caplog_calls.records if f"channel={call.id}" in r.getMessage()]
    assert mine and {r.call for r in mine} == {call.linkedid}  # type: ignore[attr-defined]
    assert logging.getLogger("nohold.ivr").isEnabledFor(logging.INFO)


async def test_a_call_entering_stasis_while_reconcile_asks_is_served_not_orphaned(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    """Asterisk lists a channel in the app as soon as it enters Stasis; its StasisStart
    can still be on its way when reconcile's GET /applications is answered."""
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr(MENU_WAITS)
    entered: list[FakeCall] = []

    async def a_call_enters_meanwhile(_request) -> None:  # type: ignore[no-untyped-def]
        if not entered:
            fake.hold_events(APP)
            entered.append(await fake.new_call(APP, ["main", "1767225400.1"]))
            asyncio.get_running_loop().call_later(0.05, fake.release_events, APP)

    fake.on_request("GET", f"/applications/{APP}", a_call_enters_meanwhile)
    await fake.drop_socket(APP)
    await fake.wait_request("GET", f"/applications/{APP}", count=2)
    call, = entered
    await call.wait_playing("main_menu")
    assert call.continued_to is None and call.id in ivr.runtime.channels
    assert "reconcile_orphan" not in caplog_calls.text


async def test_a_notice_that_fails_to_play_costs_the_caller_one_second_of_silence_not_two(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    """Retried once, yet one hang-up wait in all: the retry itself finds a gone caller."""
    fake.playback_policy = (lambda call, media: PlaybackPolicy.fail()
                            if media.endswith("/notice") else menus_wait_for_keys(call, media))
    ivr = await start_ivr({**MENU_WAITS, "not_told": "continue"}, notice_seconds=5.0)
    call = await ivr.call()
    started = asyncio.get_running_loop().time()
    await call.wait_playing("main_menu", timeout=3.0)
    waited = asyncio.get_running_loop().time() - started
    assert call.prompts[:2] == ["notice", "notice"]
    assert (await notice_row(ivr, call)).outcome == "not_told"
    assert call.variables["__NOHOLD_NOTICE_PLAYED"] == "0"
    assert call.variables["NOHOLD_NOTICE"] == "not_told"
    assert waited < 1.5, f"{waited:.2f}s of silence before the menu"
    await call.press("1")
    await call.wait_left()
    assert call.continued_to == ("nohold-queues", "tech", 1)
    assert call.variables["__NOHOLD_NOTICE_PLAYED"] == "0"  # nothing on the way out says 1


# -- the notice Asterisk cannot play: retried once, then not_told ------------------------
async def test_a_notice_asterisk_cannot_play_twice_sends_the_caller_to_the_fallback_untold(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    fake.playback_policy = PlaybackPolicy.fail()
    ivr = await start_ivr(MENU_WAITS, notice_seconds=5.0)
    call = await ivr.call()
    await call.wait_left()
    await ivr.idle()
    assert ivr.requests_of(call) == [
        "POST /channels/{ch}/answer",
        "POST /channels/{ch}/play/{pb:notice}",
        "POST /channels/{ch}/play/{pb:notice}",
        "POST /channels/{ch}/variable __NOHOLD_NOTICE_PLAYED=0",
        "POST /channels/{ch}/variable NOHOLD_NOTICE=not_told",
        "POST /channels/{ch}/variable NOHOLD_ROUTE=person:operator",
        # No "transferring": it sits beside the notice Asterisk could not open.
        "POST /channels/{ch}/continue nohold-people,operator,1",
    ]
    assert call.continued_to == FALLBACK
    assert (await notice_row(ivr, call)).outcome == "not_told"
    assert [p.split()[1] for p in problems(caplog_calls)] == ["playback_failed",
                                                               "notice_not_told"]
    assert "call_failed" not in caplog_calls.text


async def test_not_told_goes_to_the_configured_fallback_queue(fake: FakeAri,
                                                             start_ivr: IvrFactory):
    fake.playback_policy = PlaybackPolicy.fail()
    ivr = await start_ivr({"fallback": "queue:billing", "not_told": "fallback"})
    call = await ivr.call()
    await call.wait_left()
    assert call.continued_to == ("nohold-queues", "billing", 1)
    assert call.variables["NOHOLD_NOTICE"] == "not_told"


async def test_a_notice_that_plays_on_the_retry_is_completed_and_quiet(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    tries: list[str] = []

    def first_notice_fails(call: FakeCall, media: str) -> PlaybackPolicy:
        if media.endswith("/notice"):
            tries.append(media)
            return PlaybackPolicy.fail() if len(tries) == 1 else PlaybackPolicy.at_once()
        return menus_wait_for_keys(call, media)

    fake.playback_policy = first_notice_fails
    ivr = await start_ivr(MENU_WAITS)
    call = await ivr.call()
    await call.wait_playing("main_menu")
    assert call.prompts == ["notice", "notice", "main_menu"]
    assert (await notice_row(ivr, call)).outcome == "completed"
    assert call.variables["__NOHOLD_NOTICE_PLAYED"] == "1"
    assert "notice_retry" in caplog_calls.text
    assert problems(caplog_calls) == []  # a retry that worked is no admin's problem


async def test_a_notice_cut_short_twice_is_not_told_too(fake: FakeAri, start_ivr: IvrFactory):
    """Ended early with the caller still there (a truncated file): not heard, so retried."""
    fake.playback_policy = menus_wait_for_keys  # the notice "done" at once: 0 s of 5 s
    ivr = await start_ivr({"not_told": "continue", **MENU_WAITS}, notice_seconds=5.0)
    call = await ivr.call()
    await call.wait_playing("main_menu", timeout=4.0)
    assert call.prompts[:2] == ["notice", "notice"]
    assert (await notice_row(ivr, call)).outcome == "not_told"
    assert call.variables["__NOHOLD_NOTICE_PLAYED"] == "0"


async def test_a_notice_already_heard_in_the_call_leaves_the_inherited_variable_alone(
        fake: FakeAri, start_ivr: IvrFactory):
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr(MENU_WAITS)
    first = await ivr.call()
    await first.wait_playing("main_menu")
    # The same call enters again on a new channel that inherited the variable.
    again = await fake.new_call(APP, ["main", first.linkedid], linkedid=first.linkedid)
    again.variables["__NOHOLD_NOTICE_PLAYED"] = "1"
    await again.wait_playing("main_menu")
    await again.press("1")
    await again.wait_left()
    assert again.prompts == ["main_menu", "transferring"]
    assert not [r for r in fake.requested("POST", f"/channels/{again.id}/variable")
                if r.params["variable"].endswith("NOTICE_PLAYED")
                or r.params["variable"] == "NOHOLD_NOTICE"]
    assert again.variables["__NOHOLD_NOTICE_PLAYED"] == "1"


async def test_a_shutdown_while_the_notice_variables_are_set_still_sets_them_first(
        fake: FakeAri, start_ivr: IvrFactory):
    """The hand-over after a completed notice must find the variable set: the shutdown
    lands exactly while it is being set."""
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr(MENU_WAITS)
    stopping: list[asyncio.Task[None]] = []

    async def shut_down_now(request) -> None:  # type: ignore[no-untyped-def]
        if request.params.get("variable") == "__NOHOLD_NOTICE_PLAYED" and not stopping:
            stopping.append(asyncio.create_task(ivr.runtime.shutdown(grace=2.0)))
            await asyncio.sleep(0.05)  # the cancel reaches the flow mid-request

    fake.on_request("POST", "/channels/*/variable", shut_down_now)
    call = await ivr.call()
    await fake.until(lambda: bool(stopping))
    await stopping[0]
    assert call.continued_to == FALLBACK
    assert call.variables["__NOHOLD_NOTICE_PLAYED"] == "1"
    assert call.variables["NOHOLD_NOTICE"] == "played"
    assert "main_menu" not in call.prompts


async def test_a_hanging_database_costs_the_caller_claim_wait_then_nothing(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    """The database holds every claim and outcome (locked by another process): the
    caller hears the notice after claim_wait, then the menu without waiting for the
    proof; the proof is written once the database answers."""
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr(MENU_WAITS)
    gate = asyncio.Event()
    real_write = ivr.ledger._write_batch

    async def hanging_write(*args):  # type: ignore[no-untyped-def]
        await gate.wait()  # every batch, claims and outcomes alike, waits for the database
        return await real_write(*args)

    ivr.ledger._write_batch = hanging_write  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    started = loop.time()
    call = await ivr.call()

    def started_playing(prompt: str):  # type: ignore[no-untyped-def]
        return lambda e: (e.get("type") == "PlaybackStarted"
                          and e["playback"]["media_uri"].endswith("/" + prompt))

    await ivr.until_dispatched(started_playing("notice"), timeout=3.0)
    silence = loop.time() - started
    await ivr.until_dispatched(started_playing("main_menu"), timeout=3.0)
    to_menu = loop.time() - started
    assert 0.9 < silence < 1.5, silence  # claim_wait (1.0 s by default), not the database
    assert to_menu - silence < 0.5, to_menu  # the outcome did not hold the menu
    assert await ivr.ledger.get(call.linkedid) is None  # nothing written yet: truly held
    assert "notice_claim_slow" in caplog_calls.text
    await call.press("1")
    await call.wait_left()
    await ivr.idle()
    gate.set()
    assert (await notice_row(ivr, call)).outcome == "completed"
    assert "notice_claim_late" in caplog_calls.text


async def test_a_playback_asterisk_will_not_stop_does_not_end_the_call(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    """Stopping a playback is best effort: an unexpected answer to the DELETE (here a
    500) once ended a callback's conversation the moment the customer answered."""
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr(MENU_WAITS)
    call = await ivr.call()
    await call.wait_playing("main_menu")
    fake.fail("DELETE", "/playbacks/*", 500)
    await call.press("1")
    # On to the queue (Asterisk runs the continue once the unstopped prompt ends).
    await fake.wait_request("POST", f"/channels/{call.id}/continue")
    assert "playback_stop_refused" in caplog_calls.text
    assert "call_failed" not in caplog_calls.text
