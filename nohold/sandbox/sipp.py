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


# -- a SIPp callee: the partner call centre behind a PJSIP trunk -----------------------
PARTNER_SCENARIOS = {
    "answer": "uas_partner_answer.xml",
    "reject": "uas_partner_reject.xml",
    "no_answer": "uas_partner_no_answer.xml",
}


class SippCallee:
    """A SIPp UAS on its own UDP port that takes `calls` calls as `behaviour` says ("answer",
    "reject" with `code`, "no_answer") and keeps every SIP message it saw, so a test can
    read the INVITE's headers. `pjsip(name)` is the trunk to add to the sandbox
    (Sandbox.add_pjsip). Use as `async with SippCallee(...) as partner:`."""

    def __init__(self, behaviour: str, *, code: int = 486, reason: str = "Busy Here",
                 calls: int = 1, timeout: float = 120.0) -> None:
        if behaviour not in PARTNER_SCENARIOS:
            raise ValueError(f"behaviour {behaviour!r}: one of {', '.join(PARTNER_SCENARIOS)}")
        self.behaviour = behaviour
        self.port = free_port(socket.SOCK_DGRAM)
        self.timeout = timeout
        self.calls = calls
        self._tmp = tempfile.TemporaryDirectory(prefix="nohold-sipp-uas-")
        self.workdir = Path(self._tmp.name)
        self.messages = self.workdir / "messages.log"
        text = (SCENARIOS / PARTNER_SCENARIOS[behaviour]).read_text()
        self.scenario = self.workdir / "uas.xml"
        self.scenario.write_text(text.replace("@@CODE@@", str(code))
                                 .replace("@@REASON@@", reason))
        self.proc: asyncio.subprocess.Process | None = None
        self.result: SippResult | None = None
        self._log_text: str | None = None

    def pjsip(self, name: str) -> str:
        """PJSIP sections of a trunk `name` whose contact is this callee."""
        return (f"[{name}]\ntype = aor\ncontact = sip:partner@127.0.0.1:{self.port}\n\n"
                f"[{name}]\ntype = endpoint\ntransport = transport-udp\naors = {name}\n"
                "context = nohold-inbound\ndisallow = all\nallow = ulaw\n"
                "direct_media = no\nrtp_symmetric = yes\n")

    async def __aenter__(self) -> SippCallee:
        sipp = shutil.which("sipp")
        if sipp is None:
            raise SandboxError("sipp not found: `apt-get install sip-tester`")
        self.proc = await asyncio.create_subprocess_exec(
            sipp, "-sf", str(self.scenario), "-i", "127.0.0.1", "-p", str(self.port),
            "-mp", str(free_port(socket.SOCK_DGRAM)), "-m", str(self.calls),
            "-nostdin", "-trace_msg", "-message_file", str(self.messages), "-trace_err",
            "-error_file", str(self.workdir / "errors.log"),
            "-timeout", f"{int(self.timeout)}s",
            cwd=self.workdir, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.finished(10.0)
        # Kept for reading after the callee is gone.
        try:
            self._log_text = self.messages.read_text(errors="replace")
        except OSError:
            self._log_text = ""
        self._tmp.cleanup()

    async def finished(self, timeout: float = 30.0) -> SippResult:  # noqa: ASYNC109
        """SIPp's exit (0: the scenario ran to its end), waited for, never slept for."""
        assert self.proc is not None
        try:
            async with asyncio.timeout(timeout):
                out, err = await self.proc.communicate()
        except TimeoutError:
            self.proc.kill()
            out, err = await self.proc.communicate()
        self.result = SippResult(self.proc.returncode if self.proc.returncode is not None
                                 else -1, _s(out), _s(err) + _errors(self.workdir))
        return self.result

    def received(self, method: str = "INVITE") -> list[dict[str, str]]:
        """Every `method` request SIPp received: header name (lower case) -> value, plus
        "request-line"."""
        text = self._log_text
        if text is None:
            try:
                text = self.messages.read_text(errors="replace")
            except OSError:
                return []
        out: list[dict[str, str]] = []
        lines = [line.strip() for line in text.splitlines()]
        i = 0
        while i < len(lines):
            if "message received" not in lines[i]:
                i += 1
                continue
            i += 1
            while i < len(lines) and not lines[i]:
                i += 1
            if i >= len(lines) or not lines[i].startswith(f"{method} "):
                continue
            headers = {"request-line": lines[i]}
            i += 1
            while i < len(lines) and lines[i]:
                name, sep, value = lines[i].partition(":")
                if sep:
                    headers.setdefault(name.strip().lower(), value.strip())
                i += 1
            out.append(headers)
        return out
