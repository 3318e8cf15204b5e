"""`nohold check` for callbacks: the dialplan contexts are loaded and every callback
queue is set up for the offer in queues.conf (read over AMI GetConfig)."""

from __future__ import annotations

from nohold.ari_apps.callbacks.offer import (
    AMD_CONTEXT,
    LEG_END_CONTEXT,
    MACHINE_CONTEXT,
    OFFER_CONTEXT,
    PLACEHOLDER_CONTEXT,
    QUEUE_CONTEXT,
)
from nohold.ari_apps.callbacks.settings import CallbackSettings
from nohold.ami.check import check_ami
from nohold.ami.client import AmiClient, AmiError, AmiErrorResponse, list_fields
from nohold.ami.settings import AmiSettings
from nohold.config import Settings
from nohold.decisions.callbacks import offer_setup_problems, parse_config_lines
from nohold.feature import CheckFailed

CONTEXTS = (QUEUE_CONTEXT, OFFER_CONTEXT, PLACEHOLDER_CONTEXT, LEG_END_CONTEXT, AMD_CONTEXT,
            MACHINE_CONTEXT)


async def check_callbacks_setup(settings: Settings) -> str:
    cb = settings.section(CallbackSettings)
    ami = settings.section(AmiSettings)
    report = await check_ami(ami, contexts=CONTEXTS)
    problems = list(report.problems)
    client = AmiClient(ami)
    try:
        await client.connect_once()
        result = await client.action("GetConfig", {"Filename": "queues.conf"})
    except AmiErrorResponse as exc:
        problems.append(f"queues.conf not read over AMI ({exc}): give the AMI user "
                        "read = config, or check each callback queue by hand "
                        "(docs/admin-guide.md, Callbacks)")
        result = None
    except AmiError as exc:
        problems.append(f"ami: {exc}")
        result = None
    finally:
        await client.close()
    if result is not None:
        conf = parse_config_lines(list_fields(result))
        for queue in cb.queues:
            problems += offer_setup_problems(conf, queue, cb.offer_prompt, cb.offer_after,
                                             cb.offer_every, OFFER_CONTEXT)
    if problems:
        raise CheckFailed("callbacks: " + "; ".join(problems))
    return (f"callbacks: ok ({len(cb.queues)} queues offer callbacks; dialplan contexts "
            f"{', '.join(CONTEXTS)} loaded)")
