"""FastAGI server against a scripted fake Asterisk over real TCP sockets (protocol tier)."""

from __future__ import annotations

import asyncio

import pytest

from agi_scripts.fastagi import AgiHangup, AgiRequest, FastAgiServer


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
