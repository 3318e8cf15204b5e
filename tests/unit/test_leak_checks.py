"""The leak checks and the ARI watchdog catch what they are meant to catch."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

from tests.support.leaks import (
    AriWatchdog,
    child_processes,
    own_connections_to,
    pending_tasks,
    server_sessions,
)


def test_a_running_child_is_seen_until_it_is_reaped():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert proc.pid in child_processes()
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in child_processes()


def test_an_open_connection_is_counted_on_both_sides_until_closed():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    peer, _ = server.accept()
    try:
        assert own_connections_to({port}) == 1
        assert server_sessions(port) == 1
    finally:
        client.close()
        peer.close()
        server.close()
    assert own_connections_to({port}) == 0


async def test_a_task_left_running_is_reported_and_a_finished_one_is_not():
    done = asyncio.create_task(asyncio.sleep(0))
    stuck = asyncio.create_task(asyncio.Event().wait())
    left = await pending_tasks(grace=0.1)
    assert left == [stuck] and done.done()
    stuck.cancel()


def test_the_watchdog_names_an_ari_that_accepts_but_never_answers(tmp_path: Path):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    port = silent.getsockname()[1]
    box = SimpleNamespace(name="t", pid=0, http_port=port, ari_url=f"http://127.0.0.1:{port}",
                          ari_user="u", ari_password="p", is_running=lambda: True,
                          log_tail=lambda n: "(log)")
    wedged = threading.Event()
    dog = AriWatchdog(box, every=0.05, timeout=0.2, misses=2,  # type: ignore[arg-type]
                      on_wedge=wedged.set).start()
    try:
        assert wedged.wait(5)
    finally:
        dog.stop()
        silent.close()
    assert dog.verdict is not None
    assert f"GET /ari/applications on 127.0.0.1:{port} unanswered 2 times" in dog.verdict
    assert "asterisk#2170" in dog.verdict
