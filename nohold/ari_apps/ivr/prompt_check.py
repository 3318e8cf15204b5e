"""`nohold check`: Asterisk itself plays every prompt, from the path nohold will ask for.

Finding the files on nohold's side proves nothing about Asterisk's: in a chroot or
a container it sees another tree, and a notice it cannot open is silence for the
caller. So each prompt is played, all at once, into its own empty mixing bridge
(Asterisk's announcer channel plays it to nobody; no dialplan of ours is needed,
so this works before the admin has included our contexts).

What Asterisk 22.10 reports (probed on the sandbox): the play request is accepted
(201, "queued") whether or not the file exists; for a file it cannot open,
PlaybackStarted is followed in the same millisecond by PlaybackFinished with
state "failed" (its log says "File ... does not exist in any format"). A file it
can open keeps playing. So a playback still going VERDICT_WINDOW after it
started has been opened. Stopping each at PlaybackStarted instead would race:
a stop that lands before Asterisk opens the file turns "failed" into "done".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from nohold.ari_apps.ari_client import CONNECTED_EVENT, AriClient, AriError
from nohold.config import Settings
from nohold.feature import CheckFailed

log = logging.getLogger("nohold.check")

# Asterisk reports a file it cannot open within a millisecond of PlaybackStarted;
# this leaves room for a loaded machine and still keeps `nohold check` quick.
VERDICT_WINDOW = 0.3
# From the play request to PlaybackStarted; beyond this Asterisk is not playing at all.
START_TIMEOUT = 5.0


@dataclass
class _Probe:
    name: str
    bridge_id: str
    playback_id: str
    started: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    finished: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


async def check_asterisk_plays_prompts(settings: Settings) -> str:
    prompts = settings.prompts
    names = prompts.names()
    a = settings.ari
    # An app of its own: a running nohold keeps its app, and nothing of this one
    # outlives the check (Asterisk drops the app and the subscription with the socket).
    ari = AriClient(a.url, a.user, a.password, f"nohold-check-{uuid.uuid4().hex[:8]}",
                    subscribe=("bridge:",), request_timeout=5.0)
    tag = uuid.uuid4().hex[:8]
    probes = {f"nohold-check-{tag}-{i}": _Probe(name, f"nohold-check-{tag}-b{i}",
                                                f"nohold-check-{tag}-{i}")
              for i, name in enumerate(names)}
    connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    listener = asyncio.create_task(_listen(ari, probes, connected))
    try:
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await asyncio.shield(connected)
        except TimeoutError:
            raise CheckFailed(f"prompts: no ARI event socket from {a.url} within "
                              f"{START_TIMEOUT:g} s; cannot ask Asterisk to play them") from None
        verdicts = await asyncio.gather(*(_play(ari, p, prompts.asterisk_path)
                                          for p in probes.values()))
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        for probe in probes.values():
            with contextlib.suppress(AriError):
                await ari.request("DELETE", f"/bridges/{probe.bridge_id}")
        await ari.close()
    failed = [(p.name, why) for p, why in zip(probes.values(), verdicts, strict=True) if why]
    if failed:
        raise CheckFailed(_failure(settings, failed, len(names)))
    return f"prompts: Asterisk played {len(names)} of {len(names)} from {prompts.asterisk_path}"


async def _listen(ari: AriClient, probes: dict[str, _Probe],
                  connected: asyncio.Future[None]) -> None:
    async for event in ari.events():
        kind = event.get("type")
        if kind == CONNECTED_EVENT and not connected.done():
            connected.set_result(None)
            continue
        playback: dict[str, Any] = event.get("playback") or {}
        probe = probes.get(str(playback.get("id", "")))
        if probe is None:
            continue  # another app's bridge: the subscription covers all of them
        if kind == "PlaybackStarted" and not probe.started.done():
            probe.started.set_result(None)
        elif kind in ("PlaybackFinished", "PlaybackFailed") and not probe.finished.done():
            probe.finished.set_result("failed" if kind == "PlaybackFailed"
                                      else str(playback.get("state", "")))


async def _play(ari: AriClient, probe: _Probe, asterisk_path: str) -> str:
    """"" when Asterisk plays it, else what went wrong."""
    media = f"sound:{asterisk_path}/{probe.name}"
    try:
        await ari.request("POST", f"/bridges/{probe.bridge_id}", params={"type": "mixing"})
        await ari.request("POST", f"/bridges/{probe.bridge_id}/play/{probe.playback_id}",
                          params={"media": media})
    except AriError as exc:
        return f"the play request failed ({exc})"
    try:
        async with asyncio.timeout(START_TIMEOUT):
            await asyncio.shield(probe.started)
    except TimeoutError:
        return f"no PlaybackStarted within {START_TIMEOUT:g} s"
    try:
        async with asyncio.timeout(VERDICT_WINDOW):
            state = await asyncio.shield(probe.finished)
    except TimeoutError:
        state = "playing"
    log.debug("prompt_check prompt=%s media=%s state=%s", probe.name, media, state)
    if state in ("playing", "done"):
        return ""
    return f"PlaybackFinished state={state}"


def _failure(settings: Settings, failed: list[tuple[str, str]], total: int) -> str:
    prompts = settings.prompts
    if prompts.asterisk_dir:
        looked = (f"Asterisk looked under prompts.asterisk_dir = {prompts.asterisk_dir!r} "
                  f"(nohold writes them to prompts.dir = {str(prompts.dir)!r}): make it that "
                  "directory as Asterisk sees it (a chroot or container path), readable by "
                  "Asterisk's user")
    else:
        looked = (f"Asterisk looked under prompts.dir = {str(prompts.dir)!r} "
                  "(prompts.asterisk_dir is not set): if Asterisk runs in a chroot or a "
                  "container, set prompts.asterisk_dir to that directory as Asterisk sees it; "
                  "else make the files readable by Asterisk's user")
    by_reason: dict[str, list[str]] = {}
    for name, why in failed:
        by_reason.setdefault(why, []).append(name)
    detail = "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())
    return (f"prompts: Asterisk could not play {len(failed)} of {total} as "
            f"sound:{prompts.asterisk_path}/<name> ({detail}). {looked}. Its log names the "
            "file it tried (\"File ... does not exist in any format\")")
