"""The floor for bench/agi_cost.py: the least a FastAGI server can do for a call.

panoramisk's own FastAGI server (the library the design card names), one route
`floor` that sends one command (sets NOHOLD_AGI_STATUS=OK, as every nohold route
does last) and returns: no config, no database, no per-call logging.

    python bench/bare_fastagi.py --port 4599

SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from panoramisk.fast_agi import Application, Request


async def floor(request: Request) -> None:
    await request.send_command('SET VARIABLE NOHOLD_AGI_STATUS "OK"')


async def serve(port: int) -> None:
    app = Application()
    app.add_route("floor", floor)
    server = await asyncio.start_server(app.handler, "127.0.0.1", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"bare_fastagi listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args(argv).port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
