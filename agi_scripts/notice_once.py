"""FastAGI `notice_once`: the recording notice, once per call, for dialplans outside the IVR.

    same => n,AGI(agi://127.0.0.1:4573/notice_once,${CHANNEL(linkedid)})

Shares the ARI IVR's ledger, so a call that heard the notice in the IVR does not
hear it here, and the other way round. Sets NOHOLD_NOTICE to `played` or
`skipped` and NOHOLD_AGI_STATUS to OK; on any failure the dialplan goes on
(check ${AGISTATUS} and ${NOHOLD_AGI_STATUS}).
"""

from __future__ import annotations

import logging

from agi_scripts.fastagi import AgiHangup, AgiRequest
from callbackdb.notice_ledger import NoticeLedger
from nohold.config import Settings
from nohold.feature import Contribution, Feature, ServiceContext

log = logging.getLogger("nohold.agi.notice")


class NoticeOnce:
    def __init__(self, settings: Settings, ledger: NoticeLedger) -> None:
        self.settings = settings
        self.ledger = ledger

    async def __call__(self, agi: AgiRequest) -> None:
        call_id = (agi.args[0] if agi.args and agi.args[0] else
                   await agi.get_variable("CHANNEL(linkedid)"))
        channel_id = agi.env.get("agi_uniqueid", "")
        if not call_id:
            call_id = channel_id
        caller = agi.env.get("agi_callerid", "")
        first = await self.ledger.claim_or_assume_first(call_id, channel_id, caller,
                                                        self.settings.notice.version)
        if not first:
            await agi.set_variable("NOHOLD_NOTICE", "skipped")
            await agi.set_variable("NOHOLD_AGI_STATUS", "OK")
            return
        log.info("notice_start channel=%s version=%s via=agi", agi.channel,
                 self.settings.notice.version)
        outcome = "failed"
        try:
            await agi.command("ANSWER")
            await agi.stream_file(f"{self.settings.prompts.asterisk_path}/"
                                  f"{self.settings.notice.prompt}")
            outcome = "caller_hung_up" if agi.hung_up else "completed"
        except AgiHangup:
            outcome = "caller_hung_up"
            raise
        finally:
            await self.ledger.record(call_id, channel_id, outcome)
        await agi.set_variable("__NOHOLD_NOTICE_PLAYED", "1")
        await agi.set_variable("NOHOLD_NOTICE", "played")
        await agi.set_variable("NOHOLD_AGI_STATUS", "OK")


def start(ctx: ServiceContext) -> Contribution:
    return Contribution(agi_routes={"notice_once": NoticeOnce(ctx.settings, ctx.notice_ledger)})


FEATURE = Feature(name="notice_once", start=start,
                  enabled=lambda settings: settings.agi.enabled)
