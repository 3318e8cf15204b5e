"""Run the real `nohold run` as a subprocess against the sandbox, as an admin would."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nohold.ari_apps.ari_client import AriClient, liveness_app, wait_for_application
from nohold.logs import problem_lines
from nohold.sandbox.nohold_config import sandbox_overrides, to_toml


def write_config(box: Any, path: Path, overrides: dict[str, Any] | None = None) -> Path:
    data = sandbox_overrides(box, f"sqlite:///{path.parent}/nohold.db")
    data["logging"] = {"level": "debug"}
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    path.write_text(to_toml(data))
    return path


def nohold_cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "nohold.cli", "--config", str(config), *args]


def run_cli(config: Path, *args: str, timeout: float = 60, clock: Clock | None = None
            ) -> subprocess.CompletedProcess[str]:
    """`clock`: the wall clock the command sees (None: the real one)."""
    return subprocess.run(nohold_cmd(config, *args), capture_output=True, text=True,
                          timeout=timeout, env=_env(clock))


@dataclass(frozen=True)
class Clock:
    """A controlled wall clock for nohold's processes: libfaketime (Debian's `faketime`)
    shifts what the process reads as the time of day by a fixed offset, the same for
    every process started with it (so `nohold run` and a CLI command agree), while the
    monotonic clock, which asyncio's timers use, stays real. Asterisk keeps the real
    time: only what nohold decides by the calendar moves."""

    offset: float  # seconds

    @classmethod
    def at(cls, when: datetime) -> Clock:
        """A clock that reads `when` now (and runs on from there)."""
        return cls(when.timestamp() - time.time())

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self.offset, UTC)

    def env(self) -> dict[str, str]:
        libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
        if not libs:
            raise RuntimeError("libfaketime is missing: apt-get install faketime "
                               "(./dev.sh test installs it)")
        return {"LD_PRELOAD": libs[0], "FAKETIME": f"{self.offset:+.3f}",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"}


def _env(clock: Clock | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("NOHOLD_ARI_URL", "NOHOLD_ARI_USER", "NOHOLD_ARI_PASSWORD",
                "NOHOLD_DATABASE_URL", "NOHOLD_CONFIG", "NOHOLD_HTTP_TOKEN"):
        env.pop(var, None)
    if clock is not None:
        env.update(clock.env())
    return env


@dataclass
class NoholdProcess:
    config: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    app: str = "nohold-ivr"
    clock: Clock | None = None  # None: the real time
    _log: Any = field(default=None, repr=False)

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(nohold_cmd(self.config, "run"), stdout=self._log,
                                     stderr=subprocess.STDOUT, env=_env(self.clock))

    async def wait_ready(self, box: Any, timeout: float = 30) -> None:
        async with AriClient(box.ari_url, box.ari_user, box.ari_password, "probe") as ari:
            try:
                # The companion, not the app: a killed nohold's app stays listed as
                # long as it owns callers, so it would look ready before this one is.
                await wait_for_application(ari, liveness_app(self.app), timeout=timeout,
                                           alive=lambda: self.proc is None
                                           or self.proc.poll() is None)
            except (RuntimeError, TimeoutError) as exc:
                raise AssertionError(f"{exc}:\n{self.log()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def problems(self) -> list[str]:
        """Log lines that would worry an admin: errors and tracebacks."""
        return problem_lines(self.log())
