"""Real SIP calls into the sandbox with SIPp (Debian package sip-tester).

The ARI ScriptedCaller covers most tests; SIPp proves the same flows work for a
real SIP caller: PJSIP endpoint matching, answer, and DTMF as SIP INFO (which
needs no RTP, so SIPp needs no media setup).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nohold.sandbox.instance import Sandbox, free_port
from nohold.sandbox.rootfs import SandboxError

logger = logging.getLogger(__name__)

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
_DTMF = set("0123456789*#ABCD")


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str  # includes SIPp's error log (unexpected messages), if any

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def render_scenario(
    digits: str = "", hold_seconds: float = 1.0, settle_ms: int = 500, gap_ms: int = 300
) -> str:
    """The UAC scenario with one INFO per digit.

    `settle_ms` after the ACK lets the dialplan reach the app that reads digits
    (INFO digits sent before that are lost like early key presses on a phone).
    """
    bad = set(digits) - _DTMF
    if bad:
        raise ValueError(f"not DTMF digits: {sorted(bad)}")
    one = (SCENARIOS / "info_dtmf_digit.xml").read_text()
    infos = "".join(
        one.replace("@@CSEQ@@", str(2 + i))
        .replace("@@DIGIT@@", d)
        .replace("@@GAP_MS@@", str(gap_ms))
        for i, d in enumerate(digits)
    )
    text = (SCENARIOS / "uac_info_dtmf.xml").read_text()
    return (
        text.replace("<!-- @@DIGITS@@ -->", infos)
        .replace("@@SETTLE_MS@@", str(settle_ms))
        .replace("@@HOLD_MS@@", str(int(hold_seconds * 1000)))
        .replace("@@BYE_CSEQ@@", str(2 + len(digits)))
    )


def _command(
    sandbox: Sandbox, exten: str, scenario: Path, workdir: Path, timeout: float
) -> list[str]:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SandboxError("sipp not found: `apt-get install sip-tester`")
    return [
        sipp,
        "-sf",
        str(scenario),
        "-s",
        exten,
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port(socket.SOCK_DGRAM)),
        "-mp",
        str(free_port(socket.SOCK_DGRAM)),
        "-m",
        "1",
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(workdir / "errors.log"),
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        f"127.0.0.1:{sandbox.sip_port}",
    ]


def run_sipp_call(
    sandbox: Sandbox,
    exten: str,
    digits: str = "",
    hold_seconds: float = 1.0,
    timeout: float = 30.0,
    settle_seconds: float = 0.5,
) -> SippResult:
    """Place one SIP call to `exten` (context nohold-inbound), wait `settle_seconds`
    after the answer, press `digits` as SIP INFO, hold, hang up. Blocking; from async
    code use arun_sipp_call()."""
    with tempfile.TemporaryDirectory(prefix="nohold-sipp-") as tmp:
        workdir = Path(tmp)
        scenario = workdir / "uac.xml"
        scenario.write_text(render_scenario(digits, hold_seconds, int(settle_seconds * 1000)))
        cmd = _command(sandbox, exten, scenario, workdir, timeout)
        logger.info("sipp call to %s digits=%r", exten, digits)
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                cwd=workdir,
                timeout=timeout + 10,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return SippResult(-1, _s(exc.stdout), _s(exc.stderr) + _errors(workdir))
        return SippResult(proc.returncode, proc.stdout, proc.stderr + _errors(workdir))


async def arun_sipp_call(
    sandbox: Sandbox,
    exten: str,
    digits: str = "",
    hold_seconds: float = 1.0,
    timeout: float = 30.0,  # noqa: ASYNC109 - same signature as run_sipp_call()
    settle_seconds: float = 0.5,
) -> SippResult:
    """run_sipp_call() in a worker thread, so the event loop (and ARI events) keep going."""
    return await asyncio.to_thread(
        run_sipp_call, sandbox, exten, digits, hold_seconds, timeout, settle_seconds
    )


def _s(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _errors(workdir: Path) -> str:
    path = workdir / "errors.log"
    return f"\n--- sipp errors.log ---\n{path.read_text(errors='replace')}" if path.exists() else ""
