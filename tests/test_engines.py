"""The engines: real espeak-ng speech through pyttsx3's driver, and the fake for other stages."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest

from narration.errors import SynthesisError
from narration.model import CastableVoice, Voice
from narration.synthesis import check_clip, plausible_speech_seconds, speech_seconds
from narration.synthesis.engines import (
    DEFAULT_VOICE,
    Engine,
    EngineSet,
    EngineVoice,
    FakeEngine,
    Fault,
    Pyttsx3Engine,
    VoiceNotFound,
    get_engine,
    list_voices,
    write_wav,
)
from narration.synthesis.engines import kokoro as kk

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
    assert us.gender is None  # espeak-ng's voices name no gender: their variants do
    english = list_voices(engine, "en")
    assert [v.id for v in english] == sorted(v.id for v in english)
    assert {"gmw/en", "gmw/en-us"} <= {v.id for v in english}
    assert all(any(code == "en" or code.startswith("en-") for code in v.languages) for v in english)
    assert "roa/fr" not in {v.id for v in english}
    assert {v.id for v in list_voices(engine, "EN_us")} >= {"gmw/en-us"}
    assert "f3" in {v.id for v in engine.list_variants()}


#: Variants that are not a plain human voice: robots, whispers, a croak, a demon, a test.
NOVELTIES = {
    "whisper", "whisperf", "croak", "Demonic", "UniRobot", "anikaRobot", "Tweaky", "fast",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "robosoft", "announcer",
    "grandma", "AnxiousAndy",
}  # fmt: skip


def test_variants_carry_the_gender_and_name_their_files_give(engine: Pyttsx3Engine) -> None:
    variants = {v.id: v for v in engine.list_variants()}
    assert [v.id for v in engine.list_variants()] == sorted(variants)
    for n in range(1, 6):
        assert variants[f"f{n}"].gender == "female" and variants[f"f{n}"].name == f"female{n}"
    for n in range(1, 9):
        assert variants[f"m{n}"].gender == "male" and variants[f"m{n}"].name == f"male{n}"
    # "gender Male" and "gender female 70" (an age) read alike; no gender line: None
    assert variants["Andy"].gender == "male" and variants["Annie"].gender == "female"
    assert variants["fast"].gender is None and variants["klatt"].gender is None
    assert variants["Mr serious"].name == "Mr_Serious"
    assert all(f"m{n}" in variants and variants[f"m{n}"].castable for n in range(1, 8))
    assert all(variants[f"f{n}"].castable for n in range(1, 6))
    assert not any(variants[n].castable for n in NOVELTIES)
    assert all(v.gender for v in variants.values() if v.castable)
    # voices.yaml's `variant:` is checked against every variant, castable or not
    catalog = EngineSet().catalog("pyttsx3")
    assert catalog.variants == frozenset(variants) and "whisper" in catalog.variants


def test_castable_variants_sound_their_gender(engine: Pyttsx3Engine) -> None:
    """Measured (gmw/en-us): female castable variants 175-266 Hz, male ones 83-109 Hz."""
    castable = [v for v in engine.list_variants() if v.castable]
    assert len([v for v in castable if v.gender == "female"]) >= 5
    assert len([v for v in castable if v.gender == "male"]) >= 7
    for variant in castable:
        pcm = np.frombuffer(engine.synth(SENTENCE, voice(f"gmw/en-us+{variant.id}")), "<i2")
        f0 = fundamental(pcm)
        if variant.gender == "female":
            assert f0 > 150, (variant.id, f0)
        else:
            assert f0 < 130, (variant.id, f0)


def test_voices_that_are_not_speech_are_hidden_and_english_ones_have_accents(
    engine: Pyttsx3Engine,
) -> None:
    voices = {v.id: v for v in engine.list_voices()}
    assert "gmw/en-shaw" not in voices  # the Shavian alphabet: a script, not an accent
    accents = {
        "gmw/en-us": "American",
        "gmw/en": "British",
        "gmw/en-gb-x-rp": "British (Received Pronunciation)",
        "gmw/en-gb-scotland": "Scottish",
        "gmw/en-029": "Caribbean",
        "gmw/en-gb-x-gbclan": "Lancastrian",
        "gmw/en-gb-x-gbcwmd": "West Midlands",
        "gmw/en-us-nyc": "American (New York City)",
    }
    assert {i: v.accent for i, v in voices.items() if v.accent} == accents
    assert all(v.gender is None for v in voices.values())


def assert_castable_order(cast: list[CastableVoice], gender: str, kinds: int) -> None:
    """The first `kinds` voices of a gender differ in variant (or Kokoro voice); no pair twice."""
    mine = [c for c in cast if c.gender == gender]
    assert len({c.engine_voice for c in mine}) == len(mine)
    firsts = [c.engine_voice.partition("+")[2] or c.engine_voice for c in mine[:kinds]]
    assert len(set(firsts)) == kinds


def test_castable_pairs_each_plain_variant_with_a_distinct_accent_first(
    engine: Pyttsx3Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    cast = engine.castable("en")
    variants = {v.id: v for v in engine.list_variants()}
    english = {v.id: v for v in list_voices(engine, "en")}
    for c in cast:
        base, _, variant = c.engine_voice.partition("+")
        assert c.engine == "pyttsx3" and base in english and variants[variant].castable
        assert variants[variant].gender == c.gender and english[base].accent == c.accent
    for gender in ("female", "male"):
        kinds = len([v for v in variants.values() if v.castable and v.gender == gender])
        assert_castable_order(cast, gender, kinds)
        mine = [c for c in cast if c.gender == gender]
        assert len(mine) == kinds * len(english)  # every variant with every accent, once
        assert len({c.accent for c in mine[: len(english)]}) == len(english)
    males = [c for c in cast if c.gender == "male"]
    assert [c.engine_voice for c in males[:3]] == [
        "gmw/en-us+m1",
        "gmw/en+m2",
        "gmw/en-gb-scotland+m3",
    ]
    assert males[2].description == "Scottish, variant m3 (male)"
    assert engine.castable("en-GB")[0].engine_voice == "gmw/en+f1"  # its own dialect first
    assert {c.engine_voice.partition("+")[0] for c in engine.castable("fr")} == {
        "roa/fr", "roa/fr-be", "roa/fr-ch"
    }  # fmt: skip
    # the same whatever order the files and espeak-ng's list come in
    listed = engine.list_voices()
    monkeypatch.setattr(engine, "list_voices", lambda: list(reversed(listed)))
    real_iterdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda p: iter(sorted(real_iterdir(p), reverse=True)))
    assert engine.castable("en") == cast


def test_kokoro_castable_voices_are_its_good_ones_by_grade() -> None:
    """The real catalogue; no model needed."""
    everything = kk.castable_voices("en")
    cast = [c for c in everything if "+" not in c.engine_voice]  # the voices themselves
    ids = [c.engine_voice for c in cast]
    assert "af_sky" not in ids  # grade C-
    assert all(c.engine == "kokoro" for c in cast)
    known = kk.catalogue()
    assert all(known[c.engine_voice].gender == c.gender for c in cast)
    female = [c for c in cast if c.gender == "female"]
    male = [c for c in cast if c.gender == "male"]
    assert [c.engine_voice for c in female[:3]] == ["af_heart", "af_bella", "bf_emma"]
    assert female[2].description == "Emma (British, grade B-)" and female[2].accent == "British"
    assert len(female) == 10 and len(male) == 5
    grades = [kk.GRADES.index(known[c.engine_voice].grade) for c in female]
    assert grades == sorted(grades)
    assert [c.tier for c in female[:4]] == [0, 0, 0, 0] and female[-1].tier == 1
    assert_castable_order(cast, "female", len(female))
    assert kk.castable_voices("fr") == [] and kk.castable_voices("en-us") != []
    # then even blends of every two voices of a gender, after its voices: ten more men
    blends = [c for c in everything if "+" in c.engine_voice]
    men = [c.engine_voice for c in blends if c.gender == "male"]
    assert len(men) == 10 and men[0] == "am_fenrir*0.5+am_michael*0.5"
    assert all(c.tier == 2 for c in blends)
    assert all(
        known[part.split("*")[0]].gender == c.gender
        for c in blends
        for part in c.engine_voice.split("+")
    )
    assert [c.engine_voice for c in everything].index(men[0]) > ids.index("bm_george")


def test_fake_castable_is_four_of_each_gender_deterministic() -> None:
    cast = FakeEngine().castable("en")
    assert cast == FakeEngine().castable("en")
    assert [c.gender for c in cast] == ["female"] * 4 + ["male"] * 4
    assert_castable_order(cast, "female", 4)
    assert_castable_order(cast, "male", 4)
    assert {c.accent for c in cast} == {"American", "British"}
    assert FakeEngine().castable("ja") == []


def test_render_writes_a_22050_hz_mono_16_bit_wav_and_prints_nothing(
    engine: Pyttsx3Engine, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "clip.wav"
    engine.render(SENTENCE, voice(), out)
    samples, rate, channels, width = read_wav(out)
    assert (rate, channels, width) == (22050, 1, 2)
    low, high = plausible_speech_seconds(SENTENCE, 175)
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
        "import sys; from pathlib import Path; from narration.synthesis.engines import Pyttsx3Engine;"
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
        EngineVoice("gmw/en-us", "English (America)", ("en-us", "en"), "male", "American")
        in fake.list_voices()
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
