"""Durations of the audio files Asterisk plays (.wav and .gsm), without external tools."""

from __future__ import annotations

import wave
from pathlib import Path

GSM_BYTES_PER_SECOND = 1650  # 33-byte frames, 50 per second


class AudioError(Exception):
    pass


def duration_seconds(path: Path) -> float:
    if path.suffix == ".gsm":
        return path.stat().st_size / GSM_BYTES_PER_SECOND
    if path.suffix == ".wav":
        try:
            with wave.open(str(path), "rb") as w:
                return w.getnframes() / float(w.getframerate())
        except (wave.Error, EOFError) as exc:
            raise AudioError(f"{path}: not a PCM WAV file Asterisk can play ({exc})") from None
    raise AudioError(f"{path}: unsupported audio type {path.suffix!r} (use .wav or .gsm)")


def find_prompt_file(directory: Path, name: str) -> Path | None:
    for suffix in (".wav", ".gsm"):
        candidate = directory / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None
