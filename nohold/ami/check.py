"""`nohold check` over AMI: can nohold log in, will it get the events it needs, is the
nohold dialplan loaded. Every problem says what to change and where.

What the AMI user needs (manager.conf):
  read = system,agent   system: FullyBooted/Shutdown (restarts); agent: app_queue events
  write = reporting     ShowDialPlan (this check); QueueStatus/QueueSummary need none
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from nohold.ami.client import AmiAuthError, AmiClient, AmiError, AmiErrorResponse, list_fields
from nohold.ami.settings import SECRET_ENV, AmiSettings
from nohold.decisions.install import (
    DEFAULT_SESSION_LIMIT,
    session_limit_from_lines,
    session_limit_problem,
)
from nohold.dialplan import NOHOLD_CONF

NOHOLD_CONTEXTS = ("nohold-inbound", "nohold-ivr")
NEEDED_READ = ("system", "agent")
# What nohold's dialplan and applications need loaded (ModuleCheck needs write=system).
NEEDED_MODULES = ("res_ari", "res_stasis", "app_stasis", "res_agi", "app_queue",
                  "res_http_websocket")
_BOOT_WAIT = 3.0  # a booted Asterisk sends FullyBooted right after the login


@dataclass
class AmiCheckReport:
    problems: list[str] = field(default_factory=list)  # each one: what is wrong, how to fix
    notes: list[str] = field(default_factory=list)  # what was verified, or could not be

    @property
    def ok(self) -> bool:
        return not self.problems


async def check_ami(
    settings: AmiSettings, contexts: Sequence[str] = NOHOLD_CONTEXTS, http_need: int = 0
) -> AmiCheckReport:
    """Log in once with `settings` and check permissions, app_queue and the dialplan."""
    report = AmiCheckReport()
    if not settings.enabled:
        report.notes.append("ami: disabled (ami.enabled = false): no queue state")
        return report
    where = f"{settings.host}:{settings.port}"
    user = settings.user
    client = AmiClient(settings)
    booted = asyncio.Event()
    client.on_event(lambda e: booted.set() if e.get("Event") == "FullyBooted" else None)
    try:
        try:
            await client.connect_once()
        except AmiAuthError:
            report.problems.append(
                f"ami: Asterisk at {where} refused the login of user {user!r}: check that "
                f"manager.conf has a [{user}] section whose secret = matches "
                f"${SECRET_ENV} (or ami.secret), with a permit= covering this host, "
                "then run `manager reload` in the Asterisk CLI"
            )
            return report
        except AmiError as exc:
            report.problems.append(
                f"ami: {exc}: check manager.conf [general] enabled = yes, port = "
                f"{settings.port} and bindaddr, and ami.host/ami.port in nohold.toml"
            )
            return report
        report.notes.append(f"ami: logged in as {user!r} at {where}")

        # Only a session whose user has read=system gets FullyBooted: an event that
        # really arrived is the proof, whatever manager.conf looks like.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_BOOT_WAIT):
                await booted.wait()
        if not booted.is_set():
            report.problems.append(
                f"ami: no FullyBooted event within {_BOOT_WAIT:.0f}s of the login: the "
                f"manager.conf user [{user}] lacks read=system (nohold needs it to notice "
                "Asterisk restarts), or Asterisk is still booting; set "
                f"read = {','.join(NEEDED_READ)}"
            )
        await _check_read_perms(client, user, report)
        await _check_app_queue(client, report)
        for context in contexts:
            await _check_context(client, user, context, report)
        if http_need:
            await _check_http_sessions(client, user, http_need, report)
    finally:
        await client.close()
    return report


async def _check_read_perms(client: AmiClient, user: str, report: AmiCheckReport) -> None:
    """Read classes of the user, as Asterisk itself applies them.

    No AMI action reports a session's read permissions, and none of the agent-class
    events can be provoked without changing a queue (QueuePause, QueuePenalty...).
    The CLI's `manager show user` shows them exactly ("read perm: system,agent"),
    reached through the Command action when the user may run it (write=command).
    Otherwise we say that it was not verified rather than guess.
    """
    try:
        result = await client.action("Command", {"Command": f"manager show user {user}"})
    except AmiErrorResponse:
        report.notes.append(
            f"ami: read=agent not verified (the user may not run `manager show user`, "
            f"which needs write=command): make sure manager.conf [{user}] has "
            f"read = {','.join(NEEDED_READ)}, or queue state stays empty"
        )
        return
    output = "\n".join(f.get("Output", "") for f in list_fields(result))
    match = re.search(r"read perm:\s*(\S*)", output)
    if match is None:
        report.notes.append(f"ami: read permissions not shown by `manager show user {user}`")
        return
    granted = set(match.group(1).split(","))
    missing = [c for c in NEEDED_READ if c not in granted and "all" not in granted]
    if missing:
        report.problems.append(
            f"ami: manager.conf user [{user}] lacks read={','.join(missing)} (it has "
            f"read = {match.group(1) or '(nothing)'}): without agent nohold gets no "
            "app_queue events (QueueCallerJoin, AgentConnect...), without system no "
            f"restart notice; set read = {','.join(NEEDED_READ)} and run `manager reload`"
        )
    else:
        report.notes.append(f"ami: read permissions include {','.join(NEEDED_READ)}")


async def _check_modules(client: AmiClient, user: str, modules: Sequence[str],
                         report: AmiCheckReport) -> None:
    missing = []
    for module in modules:
        try:
            await client.action("ModuleCheck", {"Module": module})
        except AmiErrorResponse as exc:
            if "Permission denied" in str(exc):
                report.notes.append(f"modules: not verified (ModuleCheck needs write=system "
                                    f"for [{user}])")
                return
            missing.append(module)
    if missing:
        report.problems.append(
            "modules: not loaded in Asterisk: " + ", ".join(missing) + ": remove their "
            "`noload =>` lines from modules.conf (or add `load => <name>.so`) and run "
            + "; ".join(f"`module load {m}.so`" for m in missing))
    else:
        report.notes.append(f"modules: loaded ({', '.join(modules)})")


async def check_routes(settings: AmiSettings, locations: Sequence[tuple[str, str, str]],
                       queues: Sequence[str],
                       modules: Sequence[str] = NEEDED_MODULES) -> AmiCheckReport:
    """For `nohold check` only (not at every start): the modules nohold needs are loaded,
    every route (name, context, exten) exists in the dialplan and every queue in
    app_queue; each missing one with the exact thing to add."""
    report = AmiCheckReport()
    client = AmiClient(settings)
    try:
        try:
            await client.connect_once()
        except AmiError as exc:
            report.problems.append(f"routes: not checked, AMI login failed ({exc})")
            return report
        await _check_modules(client, settings.user, modules, report)
        for name, context, exten in locations:
            try:
                await client.action("ShowDialPlan", {"Context": context, "Extension": exten})
            except AmiErrorResponse as exc:
                if "Permission denied" in str(exc):
                    report.problems.append(f"routes: not checked: add write = reporting to "
                                           f"[{settings.user}] in manager.conf")
                    return report
                kind, _, target = name.partition(":")
                line = (f"exten => {exten},1,Queue({target},t,,,600)" if kind == "queue"
                        else f"exten => {exten},1,Dial(PJSIP/{exten},30)")
                report.problems.append(
                    f"routes: {name} goes to {context},{exten},1, which is not in the "
                    f"dialplan: add to [{context}] in your routes file: `{line}`, then "
                    "`dialplan reload`")
        for queue in queues:
            try:
                result = await client.action("QueueStatus", {"Queue": queue})
            except AmiErrorResponse as exc:
                report.problems.append(f"queues: QueueStatus {queue} failed ({exc})")
                continue
            if not any(f.get("Event") == "QueueParams" for f in list_fields(result)):
                report.problems.append(
                    f"queues: queue {queue!r} does not exist in app_queue (callers would hear "
                    f"'Unable to join queue'): add to queues.conf `[{queue}]` with "
                    "`strategy = ringall` and a `member => PJSIP/<agent>` line, then "
                    "`module reload app_queue.so`")
        if not report.problems:
            report.notes.append(f"routes: {len(locations)} in the dialplan, "
                                f"{len(queues)} queues in app_queue")
    finally:
        await client.close()
    return report


async def _check_app_queue(client: AmiClient, report: AmiCheckReport) -> None:
    try:
        result = await client.action("QueueSummary")
    except AmiErrorResponse as exc:
        report.problems.append(
            f"ami: QueueSummary failed ({exc}): is app_queue loaded? "
            "(`module load app_queue.so`; it needs a queues.conf)"
        )
        return
    queues = [f["Queue"] for f in list_fields(result) if f.get("Event") == "QueueSummary"]
    report.notes.append(f"ami: app_queue answers ({len(queues)} queues)")


async def _check_context(
    client: AmiClient, user: str, context: str, report: AmiCheckReport
) -> None:
    try:
        result = await client.action("ShowDialPlan", {"Context": context})
    except AmiErrorResponse as exc:
        text = str(exc)
        if "Permission denied" in text:
            report.problems.append(
                f"ami: user [{user}] may not run ShowDialPlan, so the dialplan cannot be "
                f"checked: add write = reporting to [{user}] in manager.conf"
            )
        elif "Did not find context" in text:
            report.problems.append(
                f"dialplan: context [{context}] is not loaded in Asterisk: copy "
                f"{NOHOLD_CONF} to Asterisk's config directory (e.g. /etc/asterisk/), add "
                "the line `#include nohold.conf` to extensions.conf, then run "
                "`dialplan reload`"
            )
        else:
            report.problems.append(f"dialplan: ShowDialPlan {context} failed: {text}")
        return
    entries = [f for f in list_fields(result) if f.get("Event") == "ListDialplan"]
    report.notes.append(f"dialplan: [{context}] loaded ({len(entries)} priorities)")


async def _check_http_sessions(
    client: AmiClient, user: str, need: int, report: AmiCheckReport
) -> None:
    """Asterisk's HTTP sessionlimit against the sessions nohold may hold (`need`),
    read from http.conf over AMI (GetConfig needs read=config: else only a note)."""
    try:
        result = await client.action("GetConfig", {"Filename": "http.conf"})
    except AmiErrorResponse:
        report.notes.append(
            f"http: sessionlimit not read (GetConfig needs read=config for [{user}]); nohold "
            f"holds at most {need} HTTP sessions: keep http.conf sessionlimit (default "
            f"{DEFAULT_SESSION_LIMIT}) above that plus your other HTTP/ARI users"
        )
        return
    lines = [str(value) for message in list_fields(result)
             for key, value in message.items() if key.startswith("Line-")]
    limit = session_limit_from_lines(lines)
    line = (f"http: sessionlimit {limit}, nohold holds at most {need} sessions "
            f"(its ARI pool and one WebSocket per ARI app)")
    problem = session_limit_problem(limit, need)
    if problem:
        report.problems.append(f"{line}: {problem}")
    else:
        report.notes.append(line)
