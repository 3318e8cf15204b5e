"""AGI `notice_once`: the recording notice, once per call, for dialplans outside the IVR.

    same => n,AGI(agi://127.0.0.1:4573/notice_once,${CHANNEL(linkedid)})   ; FastAGI
    same => n,AGI(nohold-agi,notice_once)                                  ; classic AGI

Shares the ARI IVR's ledger, so a call that heard the notice in the IVR does not
hear it here, and the other way round. Sets NOHOLD_NOTICE to `played` or
`skipped` and NOHOLD_AGI_STATUS to OK; BAD_INPUT (an id nohold will not use) or
REFUSED (the session is not Asterisk running that call) mean nothing was claimed
and nothing played; on any failure the dialplan goes on (check ${AGISTATUS} and
${NOHOLD_AGI_STATUS}).
"""

from __future__ import annotations

import logging

from nohold.agi_scripts.agi import Agi, AgiHangup, AgiTimeout
from nohold.agi_scripts.channel_proof import AriProof, ChannelProof, Verdict
from nohold.callbackdb.notice_ledger import NoticeLedger
from nohold import logs
from nohold.config import Settings
from nohold.decisions.ids import BadId, check_caller, check_channel, check_id
from nohold.feature import Contribution, Feature, ServiceContext

log = logging.getLogger("nohold.agi.notice")


class NoticeOnce:
    def __init__(self, settings: Settings, ledger: NoticeLedger, prove: ChannelProof) -> None:
        self.settings = settings
        self.ledger = ledger
        # FastAGI: AriProof; classic AGI: asterisk_child (agi_scripts/channel_proof.py).
        self.prove = prove

    async def __call__(self, agi: Agi) -> None:
        try:
            channel_id = check_id("agi_uniqueid", agi.env.get("agi_uniqueid", ""))
            check_channel("agi_channel", agi.env.get("agi_channel", ""))
            call_id = check_id("call id", (agi.args[0] if agi.args and agi.args[0] else
                                           await agi.get_variable("CHANNEL(linkedid)")))
        except BadId as exc:
            log.warning("agi_bad_input peer=%s reason=%s", agi.peer, str(exc))
            await agi.set_variable("NOHOLD_AGI_STATUS", "BAD_INPUT")
            return
        logs.call_id.set(call_id)
        caller = self._caller(agi)

        proof = await self.prove(agi, channel_id, call_id)
        if proof.verdict is Verdict.REFUSED:
            log.warning("agi_proof_failed peer=%s channel=%s reason=%s; not claiming the notice",
                        agi.peer, channel_id, proof.reason)
            await agi.set_variable("NOHOLD_AGI_STATUS", "REFUSED")
            return
        if proof.verdict is Verdict.UNAVAILABLE:
            # Without ARI, Asterisk and a forger look alike. Claiming could let a forger
            # silence a real call; skipping could leave a real caller untold. Playing
            # without a claim keeps the promise: at worst a caller hears it twice.
            log.warning("agi_proof_unavailable peer=%s channel=%s reason=%s; playing the "
                        "notice without claiming it", agi.peer, channel_id, proof.reason)
            await self._play(agi)
            await self._played(agi)
            return

        first = await self.ledger.claim_or_assume_first(call_id, channel_id, caller,
                                                        self.settings.notice.version,
                                                        wait=self.settings.notice.claim_wait)
        if not first:
            await agi.set_variable("NOHOLD_NOTICE", "skipped")
            await agi.set_variable("NOHOLD_AGI_STATUS", "OK")
            return
        log.info("notice_start channel=%s version=%s via=agi", agi.channel,
                 self.settings.notice.version)
        outcome, reason = "failed", ""
        try:
            await self._play(agi)
            outcome = "caller_hung_up" if agi.hung_up else "completed"
        except AgiHangup:
            outcome = "caller_hung_up"
            raise
        except AgiTimeout as exc:
            reason = f"agi_timeout command={exc.command}"
            raise
        finally:
            # In the background: the dialplan goes on without waiting for the database.
            self.ledger.record_soon(call_id, channel_id, outcome, reason)
        await self._played(agi)

    async def _play(self, agi: Agi) -> None:
        await agi.command("ANSWER")
        await agi.stream_file(f"{self.settings.prompts.asterisk_path}/"
                              f"{self.settings.notice.prompt}",
                              max_seconds=self.settings.notice.max_seconds)

    async def _played(self, agi: Agi) -> None:
        await agi.set_variable("__NOHOLD_NOTICE_PLAYED", "1")
        await agi.set_variable("NOHOLD_NOTICE", "played")
        await agi.set_variable("NOHOLD_AGI_STATUS", "OK")

    def _caller(self, agi: Agi) -> str:
        """The caller id number for the proof row. The remote party controls it, so an odd
        one is not stored; it never costs the caller the notice."""
        try:
            return check_caller("agi_callerid", agi.env.get("agi_callerid", ""))
        except BadId as exc:
            log.warning("agi_caller_not_stored channel=%s reason=%s", agi.channel, str(exc))
            return ""

def start(ctx: ServiceContext) -> Contribution:
    # REST only (the proof reads channel variables): no event socket, no app of its own.
    prove = AriProof(ctx.ari(ctx.settings.ari.app), ctx.settings.agi.command_timeout)
    return Contribution(agi_routes={"notice_once": NoticeOnce(ctx.settings, ctx.notice_ledger,
                                                              prove)})


FEATURE = Feature(name="notice_once", start=start,
                  enabled=lambda settings: settings.agi.enabled)
