"""Telling a running Asterisk to re-read the files install changed, through its CLI
(`asterisk -rx`, or whatever reaches it: `--asterisk-rx "docker exec pbx asterisk -rx"`)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


def reload_asterisk(commands: Sequence[str], rx: Sequence[str],
                    timeout: float = 20) -> tuple[bool, list[str]]:
    """(reached, lines): each command run, with Asterisk's first words back. When
    Asterisk cannot be reached, the lines say what to run once it is up."""
    if not commands:
        return True, []
    shown = " ".join(rx)
    try:
        probe = _run(rx, "core show version", timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        probe = subprocess.CompletedProcess(list(rx), 1, "", str(exc))
    if probe.returncode != 0 or "Asterisk" not in probe.stdout:
        return False, [
            f"Asterisk not reached with `{shown}` ({(probe.stdout + probe.stderr).strip()[:200]}"
            f"): when it runs, do: " + "; ".join(f"{shown} '{c}'" for c in commands)
            + " (a stopped Asterisk reads the files when it starts)"]
    lines = []
    for command in commands:
        proc = _run(rx, command, timeout)
        said = " ".join((proc.stdout + proc.stderr).split())[:160]
        if proc.returncode != 0 or "No such command" in said:
            lines.append(f"FAILED: `{command}`: {said}")
        else:
            lines.append(f"reloaded: `{command}`" + (f" ({said})" if said else ""))
    return True, lines


def _run(rx: Sequence[str], command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*rx, command], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
