"""The inbound IVR against the real Asterisk 22: what callers hear, counted from ARI events."""

from __future__ import annotations

import asyncio
import shutil
import signal

import pytest

from nohold.sandbox.caller import ScriptedCaller

pytestmark = pytest.mark.e2e

# Test menus: the defaults plus ways out that re-enter the IVR or transfer the call.
MENUS = {
    "main": {"prompt": "main_menu", "options": {
        "1": "queue:tech", "2": "menu:billing", "3": "person:operator",
        "7": "dialplan:nohold-sandbox-transfer,700",
        "8": "dialplan:nohold-reenter,billing",
    }},
    "billing": {"prompt": "billing_menu", "options": {"1": "queue:billing", "0": "menu:main"}},
}
FAST = {"ivr": {"input_timeout": 1.5, "menus": MENUS}}


def ivr_call_id(caller: ScriptedCaller) -> str:
    """The call's unique id (linkedid), the key of its proof row."""
    return caller.linkedid


def ivr_entries(caller: ScriptedCaller) -> list[str]:
    """Channels of this call that ran Stasis(nohold-ivr,...) in the dialplan."""
    return [e.channel or "" for e in caller.timeline
            if e.type == "Dialplan" and e.event.get("dialplan_app") == "Stasis"
            and str(e.event.get("dialplan_app_data", "")).startswith("nohold-ivr")]


def notices(caller: ScriptedCaller) -> list[str]:
    return [m for m in caller.playbacks() if m.endswith("/notice")]


async def test_notice_once_across_retry_menu_choice_and_reentry(asterisk, start_nohold):
    app = await start_nohold(FAST)
    async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
        await caller.wait_for_playback("/main_menu", timeout=20)
        await caller.press("9")                      # invalid: a retry
        await caller.wait_for_playback("/invalid", timeout=10)
        await caller.press("2")                      # barge in: billing menu
        await caller.wait_for_playback("/billing_menu", timeout=10)
        await caller.press("0")                      # back to main
        await caller.wait_for(lambda e: e.type == "PlaybackStarted"
                              and e.media_uri.endswith("/main_menu")
                              and len([m for m in caller.playbacks()
                                       if m.endswith("/main_menu")]) >= 2, timeout=10)
        await caller.press("8")                      # leaves Stasis, dialplan sends it back in
        await caller.wait_for(lambda e: len(ivr_entries(caller)) >= 2, timeout=15)
        await caller.wait_for(lambda e: e.type == "PlaybackStarted"
                              and e.media_uri.endswith("/billing_menu")
                              and len([m for m in caller.playbacks()
                                       if m.endswith("/billing_menu")]) >= 2, timeout=15)
        await caller.press("1")
        await caller.wait_reached("queue:billing", timeout=15)
    assert len(notices(caller)) == 1, caller.format_timeline()
    assert caller.playbacks()[0].endswith("/notice"), "the notice comes first"
    assert app.problems() == []


async def test_notice_not_replayed_after_transfer_to_a_new_channel(asterisk, start_nohold,
                                                                   ledger_for):
    app = await start_nohold(FAST)
    async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
        await caller.wait_for_playback("/main_menu", timeout=20)
        await caller.press("7")   # Dial()s a new Local channel into the IVR: same call
        second_menu = await caller.wait_for(
            lambda e: e.type == "PlaybackStarted" and e.media_uri.endswith("/main_menu")
            and e.channel != caller.dialplan_channel_id, timeout=20)
        assert second_menu.channel != caller.dialplan_channel_id
        await caller.press("3")
        await caller.wait_reached("person:operator", timeout=15)
    assert len(notices(caller)) == 1, caller.format_timeline()
    row = await ledger_for(app).get(ivr_call_id(caller))
    assert row is not None and row.outcome == "completed"
    assert app.problems() == []


async def test_local_caller_reaches_billing_branch_with_proof_row(scripted_caller, start_nohold,
                                                                 ledger_for):
    app = await start_nohold()
    async with scripted_caller(context="nohold-inbound", exten="s") as caller:
        await caller.wait_for_playback("/main_menu", timeout=20)
        await caller.press("2")
        await caller.wait_for_playback("/billing_menu", timeout=10)
        await caller.press("1")
        await caller.wait_reached("queue:billing", timeout=15)
        await caller.wait_for(lambda e: e.type == "ChannelUserevent"
                              and e.event.get("eventname") == "NoholdAgentAnswered", timeout=15)
    row = await ledger_for(app).get(ivr_call_id(caller))
    assert (row.outcome, row.notice_version) == ("completed", "1")
    assert row.finished_at >= row.started_at
    assert app.problems() == []


async def test_sipp_call_with_sip_info_digits_reaches_tech_queue(start_nohold, sip_call,
                                                                ari_events, prompts):
    app = await start_nohold()
    # The digit goes after the notice, while the menu plays.
    result = await sip_call("100", digits="1", settle_seconds=prompts["notice"] + 1.0,
                            hold_seconds=4)
    assert result.returncode == 0, result.stderr
    reached = await ari_events.find(
        lambda e: e["type"] == "ChannelUserevent" and e["eventname"] == "NoholdReached"
        and e["channel"]["name"].startswith("PJSIP/sipp-"))
    sip_channel = f"channel:{reached['channel']['id']}"
    heard = [e["playback"]["media_uri"].rsplit("/", 1)[-1] for e in ari_events.seen
             if e["type"] == "PlaybackStarted" and e["playback"]["target_uri"] == sip_channel]
    assert heard == ["notice", "main_menu", "transferring"]
    assert reached["userevent"]["target"] == "queue:tech"
    assert reached["userevent"]["notice"] == "1"
    assert "route=queue:tech to=nohold-queues,tech,1" in app.log()
    assert app.problems() == []


@pytest.mark.parametrize("max_repeats", [2, 1])
async def test_invalid_input_is_repeated_at_most_max_repeats_then_a_person_answers(
        asterisk, start_nohold, max_repeats):
    """Default 2: the menu plus two repeats, the third wrong key reaches a person.
    With max_repeats = 1 the second wrong key does."""
    app = await start_nohold({"ivr": {**FAST["ivr"], "max_repeats": max_repeats}})
    async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
        for attempt in range(max_repeats + 1):
            # Wait for the menu to be heard again (pressing during "invalid" barges in).
            await caller.wait_for(lambda e, n=attempt + 1: len(
                [m for m in caller.playbacks() if m.endswith("/main_menu")]) >= n, timeout=15)
            await caller.press("9")
        await caller.wait_reached("person:operator", timeout=15)
    menus_heard = [m for m in caller.playbacks() if m.endswith("/main_menu")]
    assert len(menus_heard) == max_repeats + 1, caller.format_timeline()
    assert len(notices(caller)) == 1
    assert app.problems() == []


async def test_silence_also_ends_with_a_person_not_an_endless_menu(asterisk, start_nohold):
    await start_nohold(FAST)
    async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
        await caller.wait_reached("person:operator", timeout=60)
    assert len([m for m in caller.playbacks() if m.endswith("/main_menu")]) == 3


async def test_hangup_mid_notice_is_clean_and_proof_row_says_so(asterisk, start_nohold,
                                                               ledger_for):
    app = await start_nohold()
    async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
        await caller.wait_for_playback("/notice", timeout=20)
        await caller.hangup()
    ledger = ledger_for(app)
    for _ in range(100):
        row = await ledger.get(ivr_call_id(caller))
        if row is not None and row.outcome != "playing":
            break
        await asyncio.sleep(0.05)
    assert row.outcome == "caller_hung_up" and row.finished_at is not None
    assert "caller_hung_up" in app.log()
    assert app.problems() == []


async def test_identification_collects_number_and_second_factor(asterisk, start_nohold):
    menus = {"main": {"prompt": "main_menu",
                      "options": {"1": {"route": "queue:tech", "identify": True}}}}
    app = await start_nohold({"ivr": {"input_timeout": 2.0, "menus": menus}})
    async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
        await caller.wait_for_playback("/main_menu", timeout=20)
        await caller.press("1")
        await caller.wait_for_playback("/customer_number", timeout=10)
        await caller.press("123456#")
        await caller.wait_for_playback("/second_factor", timeout=10)
        await caller.press("0012#")
        reached = await caller.wait_reached("queue:tech", timeout=15)
    assert reached.userevent.get("customer") == "123456", reached
    assert reached.userevent.get("identified") == "collected"
    assert reached.userevent.get("notice") == "1"  # later legs know the notice was given
    assert "identification_collected" in app.log()


async def test_ivr_down_means_the_caller_still_reaches_a_person(asterisk):
    # No nohold running: Stasis() fails and the dialplan falls back.
    async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
        await caller.wait_reached("person:operator", timeout=15)


async def test_sigterm_hands_callers_in_the_menu_to_a_person(asterisk, start_nohold):
    app = await start_nohold(FAST)
    async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
        await caller.wait_for_playback("/main_menu", timeout=20)
        code = await asyncio.to_thread(app.stop, signal.SIGTERM)
        assert code == 0, app.log()
        await caller.wait_reached("person:operator", timeout=15)
    assert "shutdown_handover" in app.log() and "stopped cleanly" in app.log()


async def test_kill_9_then_restart_sends_orphaned_caller_to_a_person(asterisk, start_nohold):
    app = await start_nohold(FAST)
    async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
        await caller.wait_for_playback("/main_menu", timeout=20)
        await asyncio.to_thread(app.stop, signal.SIGKILL)
        again = await start_nohold(FAST)
        await caller.wait_reached("person:operator", timeout=20)
    assert "reconcile_orphan" in again.log()
    assert len(notices(caller)) == 1


async def test_twenty_callers_hanging_up_mid_notice_all_get_honest_proof_rows(
        asterisk, start_nohold, ledger_for):
    """Asterisk may send PlaybackFinished before the hang-up: no row may claim 'completed'."""
    app = await start_nohold()

    async def call_and_hang_up() -> str:
        async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
            await caller.wait_for_playback("/notice", timeout=30)
            await caller.hangup()
        return caller.linkedid

    call_ids = await asyncio.gather(*[call_and_hang_up() for _ in range(20)])
    ledger = ledger_for(app)
    outcomes = []
    for call_id in call_ids:
        for _ in range(100):
            row = await ledger.get(call_id)
            if row is not None and row.outcome != "playing":
                break
            await asyncio.sleep(0.05)
        outcomes.append(row.outcome)
    assert outcomes == ["caller_hung_up"] * 20
    assert app.problems() == []


@pytest.mark.parametrize("not_told", ["fallback", "continue"])
async def test_a_notice_asterisk_cannot_open_is_retried_then_the_call_is_not_told(
        asterisk, start_nohold, ledger_for, tmp_path, not_told):
    """The issue's chroot case at run time: the notice file goes away after start. The
    caller is not left in silence, never marked as told, and goes where config says."""
    # A private copy of the prompts: the session's are shared with every other test.
    own = asterisk.run_dir / f"prompts-not-told-{not_told}"
    shutil.copytree(asterisk.prompts_dir, own)
    app = await start_nohold({**FAST, "ivr": {**FAST["ivr"], "not_told": not_told},
                              "prompts": {"dir": str(own),
                                          "asterisk_dir": asterisk.in_asterisk(own)}})
    (own / "notice.wav").unlink()
    try:
        async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
            if not_told == "continue":
                await caller.wait_for_playback("/main_menu", timeout=20)
                await caller.press("1")
                reached = await caller.wait_reached("queue:tech", timeout=15)
            else:
                reached = await caller.wait_reached("person:operator", timeout=20)
    finally:
        shutil.rmtree(own, ignore_errors=True)
    assert len(notices(caller)) == 2, caller.format_timeline()  # the first try and one retry
    assert reached.userevent.get("notice") == "0", reached
    assert reached.userevent.get("told") == "not_told", reached
    row = await ledger_for(app).get(ivr_call_id(caller))
    assert row is not None and row.outcome == "not_told"
    assert f"notice_not_told channel={caller.dialplan_channel_id} then={not_told}" in app.log()
    if not_told == "fallback":
        assert not [m for m in caller.playbacks() if m.endswith(("/main_menu", "/transferring"))]


async def test_the_variable_says_1_only_after_a_completed_notice(asterisk, start_nohold):
    await start_nohold(FAST)
    async with ScriptedCaller(asterisk, context="nohold-inbound", exten="s") as caller:
        await caller.wait_for_playback("/main_menu", timeout=20)
        await caller.press("3")
        reached = await caller.wait_reached("person:operator", timeout=15)
    assert (reached.userevent.get("notice"), reached.userevent.get("told")) == ("1", "played")
