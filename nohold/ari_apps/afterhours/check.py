"""`nohold check` for after hours: every partner trunk is a PJSIP endpoint this Asterisk
knows (asked over ARI: a typo in a trunk name would only show at night, with a caller
on the line), and the dialplan contexts that dial it are loaded (over AMI)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nohold.ari_apps.afterhours.partner import HEADERS_CONTEXT, PARTNER_CONTEXT
from nohold.ari_apps.afterhours.settings import AfterHoursSettings
from nohold.ari_apps.ari_client import AriClient, AriError, AriNotFound
from nohold.ami.check import check_ami
from nohold.ami.settings import AmiSettings
from nohold.config import Settings
from nohold.feature import CheckFailed

CONTEXTS = (PARTNER_CONTEXT, HEADERS_CONTEXT)


async def check_partner(settings: Settings) -> str:
    after = settings.section(AfterHoursSettings)
    problems: list[str] = []
    states: list[str] = []
    a = settings.ari
    async with AriClient(a.url, a.user, a.password, a.app) as ari:
        for trunk in after.trunks:
            try:
                endpoint = await ari.request("GET", f"/endpoints/PJSIP/{trunk.endpoint}")
            except AriNotFound:
                problems.append(f"afterhours.trunks: Asterisk has no PJSIP endpoint "
                                f"{trunk.endpoint!r}: add it to pjsip.conf (type = endpoint, "
                                "with an aor whose contact is the partner) and run "
                                "`pjsip reload`")
                continue
            except AriError as exc:
                problems.append(f"afterhours.trunks: endpoint {trunk.endpoint!r} not "
                                f"checked: {exc}")
                continue
            states.append(f"{trunk.dial_string} {endpoint.get('state', '?')}")
    report = await check_ami(settings.section(AmiSettings), contexts=CONTEXTS)
    problems += report.problems
    # Asterisk's ARI recording fails (500) when its recording directory is missing, and
    # Debian's package does not create it. nohold may run elsewhere: a note, not a fault.
    # The same look tells whether messages Asterisk records alone can become tickets.
    recordings, here = after.voicemail.recording_dir, after.voicemail.dir_here
    seen = await asyncio.to_thread(Path(here).is_dir)
    shown = recordings if here == recordings else f"{recordings} (read at {here})"
    where = (f"messages in {shown}" if seen else
             f"{here} not visible from here: make sure {recordings} exists on the PBX, "
             "writable by Asterisk; messages Asterisk records alone while nohold is down "
             "become tickets only where nohold sees them (sweep_dir)")
    if problems:
        raise CheckFailed("; ".join(problems))
    return (f"afterhours: ok (partner {', '.join(states)}; ring {after.ring_timeout} s; "
            f"headers {', '.join(after.headers) or 'none'}; contexts "
            f"{', '.join(CONTEXTS)} loaded; {where})")
