"""`nohold demo`: one call through the IVR on the sandbox, told as the caller heard it."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from nohold.callbackdb.migrate import upgrade_async
from nohold.logs import setup_logging
from nohold.prompts import build_prompts
from nohold.registry import load_settings
from nohold.sandbox import SandboxError, start_sandbox
from nohold.sandbox.caller import ScriptedCaller, TimelineEntry
from nohold.sandbox.nohold_config import write_sandbox_config
from nohold.service import StartupError, serve


class DemoError(Exception):
    pass


def caller_story(timeline: list[TimelineEntry], texts: Mapping[str, str]) -> list[str]:
    """The timeline as a caller lives it: prompts with their words, keys, where they landed."""
    lines = []
    for e in timeline:
        if e.type == "PlaybackStarted":
            name = e.media_uri.rsplit("/", 1)[-1]
            words = texts.get(name, "")
            lines.append(f"+{e.t:5.2f}s  hears {name}: \"{words}\"" if words else
                         f"+{e.t:5.2f}s  hears {e.media_uri}")
        elif e.type == "Pressed":
            lines.append(f"+{e.t:5.2f}s  {e.detail}")
        elif e.type == "ChannelUserevent" and e.event.get("eventname") == "NoholdReached":
            lines.append(f"+{e.t:5.2f}s  reaches {e.userevent.get('target')}")
    return lines


async def run_demo(echo: Callable[[str], None] = print) -> int:
    work = Path(tempfile.mkdtemp(prefix="nohold-demo-"))
    log_file = work / "nohold.log"
    echo("1/5 starting the sandbox Asterisk 22 (first run builds its root: ~1 min)")
    try:
        box = await asyncio.to_thread(start_sandbox, f"demo-{os.getpid()}", "", echo)
    except SandboxError as exc:
        raise DemoError(str(exc)) from None
    try:
        config = write_sandbox_config(box, work / "nohold.toml")
        settings = load_settings(config, env={})
        echo("2/5 rendering prompts with espeak-ng")
        for p in await asyncio.to_thread(build_prompts, settings.prompts):
            echo(f"      {p.name:<16} {p.seconds:5.2f} s")
        echo(f"3/5 database {settings.database.url}")
        await upgrade_async(settings.database.url)
        echo(f"4/5 starting nohold (log: {log_file})")
        _log_to(log_file)
        ready, stop = asyncio.Event(), asyncio.Event()
        server = asyncio.create_task(serve(settings, ready=ready, stop=stop))
        await _first(ready.wait(), server, "nohold did not start")
        echo("5/5 calling the line: press 2 (billing), then 1 (invoices)")
        async with ScriptedCaller(box, context="nohold-inbound", exten="s") as caller:
            await caller.wait_for_playback("main_menu", timeout=30)
            await caller.press("2")
            await caller.wait_for_playback("billing_menu", timeout=30)
            await caller.press("1")
            await caller.wait_reached("queue:billing", timeout=30)
            echo("")
            echo("What the caller heard and did:")
            for line in caller_story(caller.timeline, settings.prompts.texts):
                echo("  " + line)
            notices = [m for m in caller.playbacks() if m.endswith("/notice")]
            echo("")
            echo(f"recording notice played {len(notices)} time(s); caller reached queue:billing")
        stop.set()
        code = await server
        return 0 if len(notices) == 1 and code == 0 else 1
    except (StartupError, TimeoutError) as exc:
        raise DemoError(f"{exc!s} (see {log_file})") from None
    finally:
        await asyncio.to_thread(box.stop)


async def _first(waiter: Awaitable[object], server: asyncio.Task[int], what: str) -> None:
    wait_task = asyncio.ensure_future(waiter)
    await asyncio.wait({wait_task, server}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if not wait_task.done():
        wait_task.cancel()
        if server.done():
            server.result()  # raises the StartupError
        raise DemoError(what)


def _log_to(path: Path) -> None:
    setup_logging("info")
    handler = logging.FileHandler(path)
    root = logging.getLogger()
    handler.setFormatter(root.handlers[0].formatter)
    for f in root.handlers[0].filters:
        handler.addFilter(f)
    root.handlers[:] = [handler]
