"""FastAGI server against a scripted fake Asterisk over real TCP sockets (protocol tier)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from ipaddress import ip_network

import pytest

from nohold.agi_scripts.fastagi import AgiHangup, AgiRequest, FastAgiServer
from nohold.decisions import peers


async def _server(route):
    server = FastAgiServer({"probe": route})
    port = await server.start("127.0.0.1", 0)
    return server, port


def _headers(script: str, **extra: str) -> bytes:
    env = {"agi_network": "yes", "agi_network_script": script, "agi_channel": "PJSIP/x-1",
           "agi_uniqueid": "1700.1", **extra}
    return "".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


async def _open_request(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect and send the AGI environment for script `probe`, as Asterisk does."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_headers("probe"))
    await writer.drain()
    return reader, writer


class FakeAsterisk:
    """Sends the AGI environment, then answers each command from a script of replies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.commands: list[str] = []

    async def session(self, script: str, replies: list[bytes], **extra: str) -> list[str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(_headers(script, **extra))
        await writer.drain()
        for reply in replies:
            line = await asyncio.wait_for(reader.readline(), 5)
            if not line:
                break
            self.commands.append(line.decode().strip())
            writer.write(reply)
            await writer.drain()
        # Whatever else the script sends until it closes (e.g. a status variable).
        while line := await asyncio.wait_for(reader.readline(), 5):
            self.commands.append(line.decode().strip())
            writer.write(b"200 result=1\n")
            await writer.drain()
        writer.close()
        return self.commands


async def test_a_health_check_that_sends_nothing_does_not_freeze_the_server():
    seen: list[AgiRequest] = []

    async def route(agi: AgiRequest) -> None:
        seen.append(agi)

    server, port = await _server(route)
    try:
        for _ in range(3):  # connect and close at once: panoramisk spins forever on this
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"agi_network: yes\nagi_chan")  # half a header, then EOF
        await w.drain()
        w.close()
        await asyncio.wait_for(FakeAsterisk(port).session("probe", []), 3)
        assert len(seen) == 1
    finally:
        await server.close()


async def test_query_string_and_arguments_reach_the_route():
    seen: list[AgiRequest] = []

    async def route(agi: AgiRequest) -> None:
        seen.append(agi)
        assert await agi.get_variable("CHANNEL(linkedid)") == "1700.0"

    server, port = await _server(route)
    try:
        fake = FakeAsterisk(port)
        await fake.session("probe?menu=billing", [b"200 result=1 (1700.0)\n"],
                           agi_arg_1="first", agi_arg_2="second", agi_arg_10="tenth")
        assert seen[0].script == "probe" and seen[0].query == {"menu": "billing"}
        assert seen[0].args == ["first", "second", "tenth"]
        assert fake.commands[0] == "GET FULL VARIABLE ${CHANNEL(linkedid)}"
    finally:
        await server.close()


async def test_unknown_script_tells_the_dialplan():
    server, port = await _server(lambda agi: asyncio.sleep(0))
    try:
        fake = FakeAsterisk(port)
        await fake.session("nosuch", [])
        assert fake.commands == ['SET VARIABLE NOHOLD_AGI_STATUS "UNKNOWN_SCRIPT"']
    finally:
        await server.close()


@pytest.mark.parametrize("replies", [
    [b"HANGUP\n", b"511 Command Not Permitted on a dead channel or intercept routine\n"],
    [b"200 result=-1 (hangup)\n"],
])
async def test_hangup_during_a_command_raises_agi_hangup(replies):
    outcome: list[str] = []

    async def route(agi: AgiRequest) -> None:
        try:
            await agi.stream_file("/x/notice")
            outcome.append("played")
        except AgiHangup:
            outcome.append("hangup")
            raise

    server, port = await _server(route)
    try:
        # Deliver all replies for the single command at once, as Asterisk does.
        reader, writer = await _open_request(port)
        await reader.readline()
        writer.write(b"".join(replies))
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # server closed, no status
        writer.close()
        assert outcome == ["hangup"]
    finally:
        await server.close()


async def test_socket_closed_mid_command_is_a_hangup_not_a_crash(caplog):
    outcome: list[str] = []

    async def route(agi: AgiRequest) -> None:
        try:
            await agi.command("ANSWER")
        except AgiHangup:
            outcome.append("hangup")
            raise

    server, port = await _server(route)
    try:
        reader, writer = await _open_request(port)
        await reader.readline()
        writer.close()
        for _ in range(50):
            if outcome:
                break
            await asyncio.sleep(0.02)
        assert outcome == ["hangup"]
        assert "Traceback" not in caplog.text
    finally:
        await server.close()


async def test_usage_error_is_typed_and_the_dialplan_learns_error():
    async def route(agi: AgiRequest) -> None:
        await agi.command("STREAM FILE")

    server, port = await _server(route)
    try:
        fake = FakeAsterisk(port)
        await fake.session("probe", [b"520-Invalid command syntax.  Proper usage follows:\n"
                                     b"Usage: STREAM FILE <filename> <escape_digits>\n"
                                     b"520 End of proper usage.\n"])
        assert fake.commands[-1] == 'SET VARIABLE NOHOLD_AGI_STATUS "ERROR"'
    finally:
        await server.close()


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """EOF, or a reset: a server closing with our unread bytes in its buffer resets."""
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        return True


def _no_problems(caplog) -> None:
    gc.collect()  # an unretrieved task exception is logged when the task is collected
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text


async def test_an_oversized_header_line_closes_the_peer_with_one_warning(caplog):
    seen: list[AgiRequest] = []

    async def route(agi: AgiRequest) -> None:
        seen.append(agi)

    server, port = await _server(route)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"agi_network: yes\nagi_channel: " + b"x" * 1_000_000 + b"\n\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        assert await _closed_by_server(reader)
        writer.close()
        # The server is still serving everyone else.
        await asyncio.wait_for(FakeAsterisk(port).session("probe", []), 3)
    finally:
        await server.close()
    assert len(seen) == 1
    warnings = [r for r in caplog.records if r.name == "nohold.agi"
                and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "fastagi_bad_peer" in warnings[0].getMessage()
    _no_problems(caplog)


async def test_a_peer_that_stops_answering_is_closed_after_the_command_timeout(caplog):
    outcome: list[str] = []

    async def route(agi: AgiRequest) -> None:
        try:
            await agi.command("ANSWER")
        finally:
            outcome.append("route ended")

    server = FastAgiServer({"probe": route}, command_timeout=0.3)
    port = await server.start("127.0.0.1", 0)
    try:
        reader, writer = await _open_request(port)
        assert await asyncio.wait_for(reader.readline(), 5) == b"ANSWER\n"
        started = asyncio.get_running_loop().time()
        # Never answered; the server must not wait for ever, nor send anything more.
        assert await asyncio.wait_for(reader.read(), 10) == b""
        assert asyncio.get_running_loop().time() - started < 5  # 0.3 s, with room for a busy CI
        writer.close()
    finally:
        await server.close()
    assert outcome == ["route ended"]
    assert "fastagi_peer_timeout" in caplog.text and "command=ANSWER after=0.3s" in caplog.text
    _no_problems(caplog)


async def test_stream_file_may_take_as_long_as_the_file_plus_the_timeout():
    async def route(agi: AgiRequest) -> None:
        await agi.stream_file("/x/notice", max_seconds=2.0)
        await agi.set_variable("DONE", "1")

    server = FastAgiServer({"probe": route}, command_timeout=0.3)
    port = await server.start("127.0.0.1", 0)
    try:
        reader, writer = await _open_request(port)
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"STREAM FILE")
        await asyncio.sleep(0.8)  # longer than command_timeout, shorter than file + timeout
        writer.write(b"200 result=0 endpos=4000\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b'SET VARIABLE DONE "1"\n'
        writer.close()
    finally:
        await server.close()


async def test_peers_outside_the_allowlist_are_closed_with_one_warning(caplog):
    seen: list[AgiRequest] = []

    async def route(agi: AgiRequest) -> None:
        seen.append(agi)

    server = FastAgiServer({"probe": route}, allow=(ip_network("10.9.9.0/24"),))
    port = await server.start("127.0.0.1", 0)
    try:
        reader, writer = await _open_request(port)
        assert await _closed_by_server(reader)
        writer.close()
    finally:
        await server.close()
    assert seen == []
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refused) == 1 and refused[0].startswith("fastagi_peer_refused peer=127.0.0.1:")
    _no_problems(caplog)


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.5", False), ("::ffff:10.0.0.5", False), ("not-an-address", False),
])
def test_the_default_allowlist_is_loopback_only(host, allowed):
    assert peers.peer_allowed(host, peers.LOOPBACK) is allowed
