"""Prompt rendering with the real espeak-ng and sox."""

from __future__ import annotations

import subprocess
import wave

import pytest

from nohold.prompts import PromptError, build_prompts, check_prompts
from nohold.registry import parse_settings


def test_a_recording_replaces_the_spoken_text_and_is_converted_to_8khz(tmp_path):
    recording = tmp_path / "studio-notice.wav"
    # 2 s of a 440 Hz tone at 44.1 kHz stereo: nothing like what Asterisk wants.
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", str(recording),
                    "synth", "2", "sine", "440"], check=True)
    settings = parse_settings({"prompts": {"dir": str(tmp_path / "out"),
                                           "files": {"notice": str(recording)}}})
    built = {p.name: p for p in build_prompts(settings.prompts)}
    assert built["notice"].source == str(recording)
    assert built["notice"].seconds == pytest.approx(2.0, abs=0.01)
    assert built["main_menu"].source == "tts:en"
    with wave.open(str(built["notice"].path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)


def test_missing_recording_is_named(tmp_path):
    settings = parse_settings({"prompts": {"dir": str(tmp_path),
                                           "files": {"notice": "/nowhere/notice.wav"}}})
    with pytest.raises(PromptError, match=r"\[prompts.files\].notice = '/nowhere/notice.wav'"):
        build_prompts(settings.prompts)


def test_unknown_voice_is_a_clear_error(tmp_path):
    settings = parse_settings({"prompts": {"dir": str(tmp_path), "language": "xx"}})
    with pytest.raises(PromptError, match="espeak-ng failed for voice 'xx'"):
        build_prompts(settings.prompts)


def test_check_refuses_a_recording_that_went_missing_after_an_earlier_build(tmp_path):
    """An earlier text-rendered notice.wav in the prompt dir must not stand in for a
    configured recording that does not exist (check and run would play the old one)."""
    built_from_text = parse_settings({"prompts": {"dir": str(tmp_path)}})
    build_prompts(built_from_text.prompts)
    assert check_prompts(built_from_text)["notice"] > 0
    settings = parse_settings({"prompts": {"dir": str(tmp_path),
                                           "files": {"notice": "/nonexistent/notice.wav"}}})
    with pytest.raises(PromptError, match=r"\[prompts.files\].notice = '/nonexistent/notice.wav'"
                                          r": no such file"):
        check_prompts(settings)


def test_words_from_outside_are_spoken_never_read_as_espeak_options(tmp_path):
    """A callback's note or a ticket's text is words: "-f <file>" must not make espeak-ng
    read a file aloud (it would speak the config, secrets and all, to an agent)."""
    from nohold.audio import duration_seconds
    from nohold.prompts import speak

    secret = tmp_path / "long.txt"
    secret.write_text("password " * 400)  # minutes of speech if it were read
    seconds = speak(f"-f{secret}", "en", tmp_path / "note.wav")
    # The path said aloud is a few seconds (its length varies); the file would be minutes.
    assert 0.3 < seconds < 40, seconds
    assert duration_seconds(tmp_path / "note.wav") == seconds
