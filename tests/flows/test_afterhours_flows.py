"""The IVR out of hours, through the fake ARI: after the notice, the partner prompt and
the dialplan that dials the partner, with the variables set before the prompt; a
calendar that cannot answer leaves the IVR as it was."""

from __future__ import annotations

from dataclasses import dataclass

from nohold.decisions.partner import CallFacts, Trunk, dial_variables
from tests.flows.conftest import IvrFactory, problems
from tests.flows.test_ivr_flows import menus_wait_for_keys
from tests.support.fake_ari import FakeAri


@dataclass
class StubAfterHours:
    reason: str | None = "closed-holiday"
    identify: bool = False
    prompt: str = "partner_intro"
    location: tuple[str, str, int] = ("nohold-partner", "s", 1)
    fail: bool = False

    async def closed_reason(self) -> str | None:
        if self.fail:
            raise OSError("database is locked")
        return self.reason

    def variables(self, facts: CallFacts) -> dict[str, str]:
        return dial_variables(facts, [Trunk("partner")], 30, ("call-id", "reason",
                                                               "notice-played"))


async def test_closed_the_caller_hears_the_notice_then_the_partner_prompt_and_is_dialled(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    ivr = await start_ivr(after_hours=StubAfterHours())
    call = await ivr.call(caller="+48221234567")
    await call.wait_left()
    await ivr.idle()
    requests = ivr.requests_of(call)
    assert requests[:4] == [
        "POST /channels/{ch}/answer",
        "POST /channels/{ch}/play/{pb:notice}",
        "POST /channels/{ch}/variable __NOHOLD_NOTICE_PLAYED=1",
        "POST /channels/{ch}/variable NOHOLD_NOTICE=played",
    ]
    assert requests[-2:] == ["POST /channels/{ch}/play/{pb:partner_intro}",
                             "POST /channels/{ch}/continue nohold-partner,s,1"]
    assert call.continued_to == ("nohold-partner", "s", 1)
    assert call.variables["NOHOLD_ROUTE"] == "partner"
    assert call.variables["NOHOLD_PARTNER_DIAL1"] == "PJSIP/partner"
    assert call.variables["_NOHOLD_HDR_CALL_ID"] == call.linkedid
    assert call.variables["_NOHOLD_HDR_REASON"] == "closed-holiday"
    assert call.variables["_NOHOLD_HDR_NOTICE_PLAYED"] == "1"
    assert not any("main_menu" in m for m in call.media)
    assert problems(caplog_calls) == []


async def test_a_calendar_that_cannot_answer_leaves_the_ivr_as_before(
        fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr({"input_timeout": 1.0}, after_hours=StubAfterHours(fail=True))
    call = await ivr.call()
    await call.wait_playing("main_menu")
    await call.press("1")
    await call.wait_left()
    await ivr.idle()
    assert call.continued_to == ("nohold-queues", "tech", 1)
    assert [r.getMessage() for r in caplog_calls.records
            if "after_hours_unknown" in r.getMessage()]


async def test_open_the_ivr_runs_its_menu(fake: FakeAri, start_ivr: IvrFactory, caplog_calls):
    fake.playback_policy = menus_wait_for_keys
    ivr = await start_ivr({"input_timeout": 1.0}, after_hours=StubAfterHours(reason=None))
    call = await ivr.call()
    await call.wait_playing("main_menu")
    await call.press("3")
    await call.wait_left()
    await ivr.idle()
    assert call.continued_to == ("nohold-people", "operator", 1)
    assert not any("partner" in m for m in call.media)
    assert problems(caplog_calls) == []
