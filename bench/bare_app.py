"""The floor for bench/notice_latency.py: the least a Stasis app can do to play the notice.

On StasisStart it answers the channel and starts the notice, nothing else: no
database, no per-call state, no logging per call. It uses the same thin client
as nohold (ari_apps.ari_client.AriClient), so the difference between the two is
what nohold does on top of talking ARI.

    BENCH_ARI_PASSWORD=... python bench/bare_app.py --url http://127.0.0.1:8088 \
        --user nohold --app bench-bare --media sound:/path/to/prompts/notice

The password comes from the environment so that it stays out of `ps`. SIGTERM
or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from harness import app_main

from nohold.ari_apps.ari_client import AriClient, AriError

log = logging.getLogger("bench.bare_app")


async def greet(client: AriClient, channel_id: str, media: str) -> None:
    """Answer, then start the notice; a caller gone meanwhile (404/409) is not an error."""
    try:
        await client.request("POST", f"/channels/{channel_id}/answer")
        await client.request("POST", f"/channels/{channel_id}/play", params={"media": media})
    except AriError as exc:
        log.warning("greet_failed channel=%s error=%s", channel_id, exc)


async def serve(client: AriClient, media: str) -> None:
    """Start one greet task per StasisStart; everything else is ignored."""
    tasks: set[asyncio.Task[None]] = set()
    async for event in client.events():
        if event.get("type") != "StasisStart":
            continue
        channel: dict[str, Any] = event.get("channel") or {}
        task = asyncio.create_task(greet(client, str(channel.get("id")), media))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def main(argv: list[str] | None = None) -> int:
    def add_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--media", required=True,
                            help="e.g. sound:/var/lib/nohold/prompts/notice")

    return app_main(__doc__ or "", "bench-bare", argv,
                    lambda client, args: serve(client, args.media), log, add_args)


if __name__ == "__main__":
    sys.exit(main())
