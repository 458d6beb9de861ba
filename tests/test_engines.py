"""The engines: real espeak-ng speech through pyttsx3's driver, and the fake for other stages."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest

from narration.engines import (
    DEFAULT_VOICE,
    Engine,
    EngineVoice,
    FakeEngine,
    Fault,
    Pyttsx3Engine,
    VoiceNotFound,
    get_engine,
    list_voices,
    write_wav,
)
from narration.errors import SynthesisError
from narration.model import Voice
from narration.synth import check_clip, speech_bounds, speech_seconds

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it rests."


def voice(
    engine_voice: str = DEFAULT_VOICE, rate: int = 175, pitch: int = 50, volume: float = 1.0
) -> Voice:
    return Voice("narrator", "The Narrator", engine_voice, rate, pitch, volume)


def read_wav(path: Path) -> tuple[np.ndarray, int, int, int]:
    with wave.open(str(path)) as w:
        frames = w.readframes(w.getnframes())
        return np.frombuffer(frames, "<i2"), w.getframerate(), w.getnchannels(), w.getsampwidth()


def fundamental(samples: np.ndarray, rate: int = 22050) -> float:
    """Median pitch (Hz) of the voiced frames, by autocorrelation."""
    x = samples.astype(float)
    size, found = 1024, []
    for start in range(0, len(x) - size, size):
        frame = x[start : start + size]
        if np.sqrt((frame**2).mean()) < 1000:
            continue
        frame = frame - frame.mean()
        corr = np.correlate(frame, frame, "full")[size - 1 :]
        lo, hi = rate // 400, rate // 60
        lag = lo + int(np.argmax(corr[lo:hi]))
        if corr[lag] > 0.3 * corr[0]:
            found.append(rate / lag)
    assert len(found) > 10, "too few voiced frames to measure a pitch"
    return float(np.median(found))


def longest_silence(samples: np.ndarray, rate: int = 22050) -> float:
    """Longest run of |x| < 256 strictly inside the speech, in seconds."""
    loud = np.flatnonzero(np.abs(samples.astype(int)) >= 256)
    gaps = np.diff(loud)
    return float(gaps.max()) / rate if gaps.size else 0.0


@pytest.fixture(scope="module")
def engine() -> Pyttsx3Engine:
    return Pyttsx3Engine()


def test_registry_gives_engines_that_meet_the_interface() -> None:
    assert isinstance(get_engine(), Pyttsx3Engine)
    assert isinstance(get_engine("fake"), FakeEngine)
    for name in ("pyttsx3", "fake"):
        assert isinstance(get_engine(name), Engine)
    with pytest.raises(
        SynthesisError, match=r"unknown engine 'espeak' \(available: kokoro, pyttsx3\)"
    ):
        get_engine("espeak")


def test_version_names_pyttsx3_and_the_wheels_espeak_ng(engine: Pyttsx3Engine) -> None:
    assert engine.espeak_version.startswith("1.")
    assert engine.version.startswith("pyttsx3 2.99; espeak-ng " + engine.espeak_version)
    assert "espeakng-loader" in engine.version


def test_voices_are_listed_with_all_their_languages_and_filtered(engine: Pyttsx3Engine) -> None:
    voices = {v.id: v for v in engine.list_voices()}
    assert len(voices) > 100
    us = voices["gmw/en-us"]
    assert us.name == "English (America)"
    assert us.languages[0] == "en-us" and "en" in us.languages
    assert us.gender == "male"
    english = list_voices(engine, "en")
    assert [v.id for v in english] == sorted(v.id for v in english)
    assert {"gmw/en", "gmw/en-us"} <= {v.id for v in english}
    assert all(any(code == "en" or code.startswith("en-") for code in v.languages) for v in english)
    assert "roa/fr" not in {v.id for v in english}
    assert {v.id for v in list_voices(engine, "EN_us")} >= {"gmw/en-us"}
    assert "f3" in engine.list_variants()


def test_render_writes_a_22050_hz_mono_16_bit_wav_and_prints_nothing(
    engine: Pyttsx3Engine, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "clip.wav"
    engine.render(SENTENCE, voice(), out)
    samples, rate, channels, width = read_wav(out)
    assert (rate, channels, width) == (22050, 1, 2)
    low, high = speech_bounds(SENTENCE, 175)
    assert low < speech_seconds(samples.tobytes()) < high
    assert np.abs(samples.astype(int)).max() > 8000  # real speech, not a whisper of noise
    check_clip(out, SENTENCE, 175)
    captured = capfd.readouterr()
    assert captured.out == "" and "Audio saved" not in captured.err
    assert [p.name for p in tmp_path.iterdir()] == ["clip.wav"]  # no temp file left


def test_a_variant_after_plus_changes_the_voice(engine: Pyttsx3Engine, tmp_path: Path) -> None:
    engine.render(SENTENCE, voice("gmw/en-us"), tmp_path / "plain.wav")
    engine.render(SENTENCE, voice("gmw/en-us+f3"), tmp_path / "f3.wav")
    plain, f3 = read_wav(tmp_path / "plain.wav")[0], read_wav(tmp_path / "f3.wav")[0]
    assert fundamental(f3) > 1.5 * fundamental(plain)  # measured: ~206 Hz against ~99 Hz


def test_rate_pitch_and_volume_take_effect(engine: Pyttsx3Engine, tmp_path: Path) -> None:
    def render(**settings: float) -> np.ndarray:
        path = tmp_path / "x.wav"
        engine.render(SENTENCE, voice(**settings), path)  # type: ignore[arg-type]
        return read_wav(path)[0]

    slow, fast = render(rate=100), render(rate=300)
    assert speech_seconds(slow.tobytes()) > 2.2 * speech_seconds(fast.tobytes())
    assert fundamental(render(pitch=90)) > 1.3 * fundamental(render(pitch=10))
    loud, quiet = render(volume=1.0), render(volume=0.25)
    ratio = np.abs(quiet.astype(int)).max() / np.abs(loud.astype(int)).max()
    assert 0.15 < ratio < 0.4
    # a voice change keeps nothing from the previous voice's settings
    again = render(rate=175)
    assert speech_seconds(again.tobytes()) == pytest.approx(
        speech_seconds(render().tobytes()), rel=0.05
    )


def test_unknown_voice_or_variant_is_an_error_not_the_default_voice(
    engine: Pyttsx3Engine, tmp_path: Path
) -> None:
    with pytest.raises(VoiceNotFound, match=r"no voice 'gmw/en-xx'"):
        engine.render("Hello.", voice("gmw/en-xx"), tmp_path / "a.wav")
    # espeak-ng itself would quietly use the plain voice for an unknown variant
    with pytest.raises(VoiceNotFound, match=r"no variant 'nosuch'"):
        engine.render("Hello.", voice("gmw/en-us+nosuch"), tmp_path / "b.wav")
    assert not list(tmp_path.iterdir())


def test_markup_in_the_text_is_never_obeyed(engine: Pyttsx3Engine, tmp_path: Path) -> None:
    text = 'Wait <break time="5s"/> now.'
    engine.render(text, voice(), tmp_path / "break.wav")
    samples = read_wav(tmp_path / "break.wav")[0]
    assert len(samples) / 22050 < 4.0
    assert longest_silence(samples) < 0.8  # no five-second pause inside
    engine.render("<speak>Hello</speak>", voice(), tmp_path / "speak.wav")
    engine.render("Hello", voice(), tmp_path / "hello.wav")
    tagged = speech_seconds(read_wav(tmp_path / "speak.wav")[0].tobytes())
    plain = speech_seconds(read_wav(tmp_path / "hello.wav")[0].tobytes())
    assert tagged > plain + 0.3  # the tags are spoken as text, not swallowed as SSML
    engine.render("[[h@l'oU]] there", voice(), tmp_path / "phon.wav")  # no phoneme input
    check_clip(tmp_path / "phon.wav", "[[h@l'oU]] there", 175)


def test_a_fresh_engines_first_long_utterance_is_written(tmp_path: Path) -> None:
    """pyttsx3's own loop writes nothing for this (its synthesis thread is still running)."""
    text = ("This first sentence of a brand new engine is deliberately long, " * 5).strip()
    assert len(text) > 300
    out = tmp_path / "first.wav"
    code = (
        "import sys; from pathlib import Path; from narration.engines import Pyttsx3Engine;"
        "from narration.model import Voice;"
        "Pyttsx3Engine().render(sys.argv[1], Voice('n', 'N', 'gmw/en-us', 175, 50, 1.0),"
        " Path(sys.argv[2]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, text, str(out)], capture_output=True, timeout=60
    )
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout == b""
    check_clip(out, text, 175)


def test_fake_engine_is_deterministic_speech_like_and_paced_by_rate(tmp_path: Path) -> None:
    fake = FakeEngine()
    ten = "one two three four five six seven eight nine ten"
    fake.render(ten, voice(rate=150), tmp_path / "a.wav")
    fake.render(ten, voice(rate=150), tmp_path / "b.wav")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    samples, rate, channels, width = read_wav(tmp_path / "a.wav")
    assert (rate, channels, width) == (22050, 1, 2)
    assert speech_seconds(samples.tobytes()) == pytest.approx(10 * 60 / 150, rel=0.2)
    fake.render(ten + " " + ten, voice(rate=300), tmp_path / "c.wav")
    assert speech_seconds(read_wav(tmp_path / "c.wav")[0].tobytes()) == pytest.approx(
        speech_seconds(samples.tobytes()), rel=0.2
    )
    check_clip(tmp_path / "a.wav", ten, 150)
    long_text = " ".join([SENTENCE] * 12)
    speech = np.frombuffer(fake.synth(long_text, voice()), "<i2") / 32768
    loudness = pyloudnorm.Meter(22050).integrated_loudness(speech)
    assert -24 < loudness < -18  # espeak-ng measured about -21 LUFS
    plain = np.frombuffer(fake.synth(SENTENCE, voice()), "<i2")
    other = np.frombuffer(fake.synth(SENTENCE, voice("gmw/en-us+f3")), "<i2")
    assert fundamental(other) != pytest.approx(fundamental(plain), rel=0.05)
    assert (
        EngineVoice("gmw/en-us", "English (America)", ("en-us", "en"), "male") in fake.list_voices()
    )


def test_fake_engine_faults_count_attempts(tmp_path: Path) -> None:
    fake = FakeEngine(
        [
            Fault("lost", "missing", times=2),
            Fault("hollow", "empty"),
            Fault("boom", "error", times=1),
        ],
        state_dir=tmp_path / "state",
    )
    out = tmp_path / "x.wav"
    for _ in range(2):
        fake.render("lost words", voice(), out)
        assert not out.exists()
    fake.render("lost words", voice(), out)
    check_clip(out, "lost words", 175)
    assert fake.attempts("lost words") == 3
    out.unlink()
    fake.render("hollow words", voice(), out)
    assert read_wav(out)[0].size == 0
    with pytest.raises(SynthesisError, match="forced failure"):
        fake.render("boom", voice(), out)
    fake.render("boom", voice(), out)
    assert fake.attempts("fine words") == 0


@pytest.mark.parametrize("frames", [0, 1, 11_025, 220_500])
def test_write_wav_writes_what_the_wave_module_writes(tmp_path: Path, frames: int) -> None:
    """The WAV writer packs its own header (the child forked per clip avoids `wave`): the
    file must be byte for byte what `wave` makes of the same samples."""
    pcm = np.random.RandomState(frames).randint(-32768, 32767, frames).astype("<i2").tobytes()
    write_wav(tmp_path / "ours.wav", pcm, 22050)
    with wave.open(str(tmp_path / "theirs.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22_050)
        out.writeframes(pcm)
    assert (tmp_path / "ours.wav").read_bytes() == (tmp_path / "theirs.wav").read_bytes()
    assert not list(tmp_path.glob(".*"))  # no temporary file left beside it
