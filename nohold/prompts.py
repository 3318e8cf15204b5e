"""Render prompt texts into 8 kHz mono WAV files Asterisk plays (espeak-ng + sox).

A recorded file named in [prompts.files] replaces the spoken text. Files are
written to a temporary name and renamed, so Asterisk never plays half a file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nohold.audio import AudioError, duration_seconds, find_prompt_file
from nohold.config import PromptSettings, Settings


class PromptError(Exception):
    pass


@dataclass(frozen=True)
class BuiltPrompt:
    name: str
    path: Path
    seconds: float
    source: str  # "tts:<lang>" or the recorded file


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PromptError(f"{name} not found: install the Debian package {package}")
    return path


def build_prompts(prompts: PromptSettings) -> list[BuiltPrompt]:
    prompts.dir.mkdir(parents=True, exist_ok=True)
    built = []
    for name in prompts.names():
        target = prompts.dir / f"{name}.wav"
        if name in prompts.files:
            source = prompts.files[name]
            if not source.exists():
                raise PromptError(f"[prompts.files].{name} = {str(source)!r}: file does not exist")
            _convert(source, target)
            label = str(source)
        else:
            _speak(prompts.texts[name], prompts.language, target)
            label = f"tts:{prompts.language}"
        # A stale .gsm of the same name would shadow nothing, but confuses admins.
        stale = prompts.dir / f"{name}.gsm"
        if stale.exists():
            stale.unlink()
        built.append(BuiltPrompt(name, target, duration_seconds(target), label))
    return built


def speak(text: str, language: str, target: Path) -> float:
    """`text` rendered to `target` (8 kHz mono WAV, as Asterisk plays it): a message
    made at run time, e.g. a ticket read to a technician. Blocking (espeak-ng and sox
    run as processes): call it in a thread. Returns its length in seconds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _speak(text, language, target)
    return duration_seconds(target)


def _speak(text: str, language: str, target: Path) -> None:
    espeak = _tool("espeak-ng", "espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        # The words from a file, never the command line: text from outside (a callback's
        # note, a ticket) starting with "-" would be read as espeak-ng's own options
        # ("-f /etc/...": a file spoken aloud). No stdin: nothing to wait for.
        words = Path(tmp) / "words.txt"
        words.write_text(text, encoding="utf-8")
        result = subprocess.run(
            [espeak, "-v", language, "-s", "170", "-w", str(raw), "-f", str(words)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0 or not raw.exists():
            raise PromptError(
                f"espeak-ng failed for voice {language!r}: {result.stderr.strip() or 'no output'}"
            )
        # espeak-ng pads with silence; callers hear it as a slow IVR.
        _convert(raw, target, TRIM_SILENCE)


TRIM_SILENCE = ["silence", "1", "0.02", "0.5%", "reverse"] * 2


def _convert(source: Path, target: Path, effects: list[str] | None = None) -> None:
    sox = _tool("sox", "sox")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.wav")
    result = subprocess.run(
        [sox, str(source), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(tmp),
         *(effects or [])],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise PromptError(f"sox could not convert {source}: {result.stderr.strip()}")
    tmp.chmod(0o644)
    os.replace(tmp, target)


def check_prompts(settings: Settings) -> dict[str, float]:
    """Every prompt the IVR uses exists; the notice is within its maximum. Returns durations."""
    durations: dict[str, float] = {}
    for name, source in sorted(settings.prompts.files.items()):
        # Else Asterisk would go on playing whatever an earlier build left behind.
        if not source.is_file():
            raise PromptError(
                f"[prompts.files].{name} = {str(source)!r}: no such file; fix the path, or "
                f"remove the line to speak [prompts.texts].{name} instead"
            )
    for name in settings.prompts.names():
        path = find_prompt_file(settings.prompts.dir, name)
        if path is None:
            raise PromptError(
                f"prompt {name!r} has no audio in {settings.prompts.dir}: "
                "run `nohold prompts build`"
            )
        try:
            durations[name] = duration_seconds(path)
        except AudioError as exc:
            raise PromptError(str(exc)) from None
    notice = settings.notice
    length = durations.get(notice.prompt)
    if length is None:
        raise PromptError(f"notice prompt {notice.prompt!r} has no audio")
    if length > notice.max_seconds:
        raise PromptError(
            f"the recording notice {notice.prompt!r} lasts {length:.2f} s, longer than "
            f"notice.max_seconds = {notice.max_seconds:g} s: shorten "
            f"[prompts.texts].{notice.prompt} (who records, why, where to learn more) "
            "or the recording"
        )
    return durations
