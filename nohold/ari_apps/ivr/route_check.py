"""`nohold check`: every place the IVR can send a caller exists in Asterisk: each menu
route and the fallback in the dialplan, each queue in app_queue (over AMI; a stock
Asterisk has neither `Queue(tech)` nor `PJSIP/reception`, and a caller sent there
would be hung up on)."""

from __future__ import annotations

from nohold.ari_apps.ivr.settings import IvrSettings
from nohold.ami.check import check_routes
from nohold.ami.settings import AmiSettings
from nohold.config import Settings
from nohold.feature import CheckFailed


async def check_routes_exist(settings: Settings) -> str:
    ivr = settings.section(IvrSettings)
    ami = settings.section(AmiSettings)
    routes = [o.route for m in ivr.menus.values() for o in m.options.values()]
    routes.append(ivr.fallback)
    r = settings.routes
    locations = list(dict.fromkeys(
        (str(route), *route.location(r.queue_context, r.person_context)[:2])
        for route in routes if route.kind != "menu"))
    queues = list(dict.fromkeys(route.target for route in routes if route.kind == "queue"))
    if not ami.enabled:
        return ("routes: not checked (needs [ami] enabled = true): make sure "
                + ", ".join(f"{c},{e},1" for _, c, e in locations) + " exist")
    report = await check_routes(ami, locations, queues)
    if not report.ok:
        raise CheckFailed("; ".join(report.problems))
    return "\n".join(report.notes)
