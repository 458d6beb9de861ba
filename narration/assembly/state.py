"""What each chapter's files were made from (kept in the state folder, .narrate/state/),
so that a chapter whose inputs did not change is neither encoded nor rewritten by the next
build."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from narration.config import AudioConfig, PausesConfig
from narration.errors import OutputError
from narration.files import write_atomic
from narration.layout import BOOK_STATES, CHAPTER_AAC_SUFFIX, PIECES_DIR
from narration.model import CastChapter, Clip, Episode, Show

#: Bump when a change here changes output bytes: every chapter is then assembled again.
FORMAT_VERSION = 6


@dataclass(frozen=True)
class MixLevels:
    """The gains a chapter's audio was levelled with: kept with its episode, so that its
    AAC for the audiobook is made later from the same mix without measuring again."""

    voice_db: dict[str, float]  # each voice's gain, by voices.yaml name
    chapter_db: float  # the chapter's correction, if its loudness was off
    headroom: float  # the limiter's ceiling under the true-peak ceiling, for the codec
    ceilings: tuple[float, ...]  # each piece's limiter ceiling (lower for one that peaked)

    @classmethod
    def from_json(cls, data: Any) -> MixLevels:
        """As save_state wrote it (asdict); KeyError or TypeError if it is not that."""
        return cls(
            voice_db={str(k): float(v) for k, v in data["voice_db"].items()},
            chapter_db=float(data["chapter_db"]),
            headroom=float(data["headroom"]),
            ceilings=tuple(float(c) for c in data["ceilings"]),
        )


@dataclass(frozen=True)
class AssembledEpisode(Episode):
    """An Episode plus what this build did for it and what was measured (for build.json).

    The fields have defaults so it is used wherever an Episode is.
    """

    encoded: bool = True  # False: the files from an earlier build were current and kept
    pieces: int = 0  # the pieces its MP3 is joined from
    pieces_encoded: int = 0  # encoded by this build (the others were kept from earlier)
    #: every piece whose facts made its bytes: kept while the chapter is (see `pieces`)
    piece_keys: tuple[str, ...] = ()
    loudness: float | None = None  # LUFS integrated, measured on the encoded PCM
    true_peak: float | None = None  # dBTP, 4x oversampled, of the MP3 as players decode it
    # dB applied and LUFS heard, per voice label (not hashed: an episode stays hashable)
    voice_gains: dict[str, float] = field(default_factory=dict, hash=False)
    voice_loudness: dict[str, float] = field(default_factory=dict, hash=False)
    # for the audiobook: samples at OUT_RATE the MP3 is heard for (all its frames) and
    # of those before the timeline (LAME's delay), its marks (seconds, title), the gains
    # its audio was levelled with, and its AAC in the state folder if encoded
    heard: int = 0
    lead: int = 0
    marks: tuple[tuple[float, str], ...] = ()
    mix: MixLevels | None = field(default=None, hash=False)
    aac: Path | None = None
    aac_sha256: str | None = None
    aac_key: str | None = None


def replace_file(path: Path, data: bytes) -> None:
    """Write beside the final name and rename into place (the digest already said it
    changed), making its folder (the state's) if it is not there yet."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path.parent}: {exc.strerror or exc}") from None
    write_atomic(path, data, skip_unchanged=False)


def cover_bytes(show: Show) -> bytes:
    """The cover as the tags carry it."""
    try:
        return show.cover.read_bytes()
    except OSError as exc:
        raise OutputError(f"{show.cover}: cover image unreadable ({exc.strerror or exc})") from None


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    out = {}
    for name in ("lameenc", "soxr", "mutagen", "numpy", "scipy", "pydub", "pyloudnorm"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[name] = "?"
    return out


def chapter_digest(
    cast: CastChapter,
    clips: Sequence[Sequence[Clip]],
    *,
    number: int,
    total: int,
    show: Show,
    pauses: PausesConfig,
    audio_config: AudioConfig,
    cover: bytes,
) -> str:
    """A digest of everything a chapter's output depends on (clip keys stand for the audio)."""
    ch = cast.chapter
    data: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "versions": versions(),
        "number": number,
        "total": total,
        "chapter": [ch.id, ch.title, ch.author],
        "show": [
            *(show.title, show.author, show.language, show.year, show.recorded),
            show.cover.suffix.lower(),
        ],
        "cover": hashlib.sha256(cover).hexdigest(),
        "pauses": pauses.model_dump(),
        "audio": audio_config.model_dump(),
        "parts": [
            {
                "id": p.id,
                "kind": p.kind,
                "voice": [p.voice.name, p.voice.label],
                "source": p.source.label() if p.source else None,
                "lines": [line.text for line in p.lines],
                "clips": [[c.key, c.frames, c.sample_rate] for c in group],
            }
            for p, group in zip(cast.parts, clips, strict=False)
        ],
    }
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _state_path(state_dir: Path, stem: str) -> Path:
    return state_dir / f"{stem}.json"


def _file_facts(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def current(out_dir: Path, state_dir: Path, stem: str, digest: str) -> AssembledEpisode | None:
    """The episode an earlier build made from the same inputs, if its files are untouched."""
    return _episode(out_dir, state_dir, _state_path(state_dir, stem), digest)


def published(out_dir: Path, state_dir: Path) -> dict[str, AssembledEpisode]:
    """Every episode an earlier build made whose files are untouched, by chapter id."""
    found: dict[str, AssembledEpisode] = {}
    if not state_dir.is_dir():
        return found
    for path in sorted(state_dir.glob("*.json")):
        if path.name not in BOOK_STATES:
            ep = _episode(out_dir, state_dir, path, None)
            if ep is not None:
                found[ep.chapter_id] = ep
    return found


def _episode(
    out_dir: Path, state_dir: Path, path: Path, digest: str | None
) -> AssembledEpisode | None:
    """The episode a chapter's state describes, if its files are untouched (and, given a
    digest, it was made from the inputs that digest stands for)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if digest is not None and state.get("digest") != digest:
            return None
        for name, facts in state["files"].items():
            if _file_facts(out_dir / name) != facts:
                return None
        ep = state["episode"]
        return AssembledEpisode(
            number=ep["number"],
            chapter_id=ep["chapter_id"],
            title=ep["title"],
            author=ep["author"],
            mp3=out_dir / ep["mp3"],
            vtt=out_dir / ep["vtt"],
            chapters_json=out_dir / ep["chapters_json"],
            seconds=ep["seconds"],
            size=ep["size"],
            voices=tuple(ep["voices"]),
            description=ep["description"],
            encoded=False,
            pieces=int(ep.get("pieces", 0)),
            piece_keys=tuple(ep.get("piece_keys", ())),
            loudness=ep.get("loudness"),
            true_peak=ep.get("true_peak"),
            voice_gains=ep.get("voice_gains", {}),
            voice_loudness=ep.get("voice_loudness", {}),
            heard=int(ep.get("heard", 0)),
            lead=int(ep.get("lead", 0)),
            marks=tuple((float(t), str(title)) for t, title in ep.get("marks", ())),
            mix=MixLevels.from_json(ep["mix"]) if ep.get("mix") else None,
            **_aac(state_dir, state.get("aac")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _aac(state_dir: Path, kept: Any) -> dict[str, Any]:
    """The chapter's AAC as the state names it, if the file is untouched."""
    try:
        path = state_dir / kept["file"]
        if _file_facts(path) == kept["facts"]:
            return {"aac": path, "aac_sha256": kept["sha256"], "aac_key": kept["key"]}
    except (OSError, KeyError, TypeError):
        pass
    return {}


def save_state(state_dir: Path, stem: str, digest: str, episode: AssembledEpisode) -> None:
    ep = asdict(episode)
    for key in ("mp3", "vtt", "chapters_json"):
        ep[key] = Path(ep[key]).name
    for key in ("encoded", "pieces_encoded", "aac", "aac_sha256", "aac_key"):
        ep.pop(key)
    files = {p.name: _file_facts(p) for p in (episode.mp3, episode.vtt, episode.chapters_json)}
    state: dict[str, Any] = {"digest": digest, "files": files, "episode": ep}
    if episode.aac is not None:
        state["aac"] = {
            "file": episode.aac.name,
            "facts": _file_facts(episode.aac),
            "sha256": episode.aac_sha256,
            "key": episode.aac_key,
        }
    path = _state_path(state_dir, stem)
    replace_file(path, (json.dumps(state, indent=1, ensure_ascii=False) + "\n").encode())


def kept_book(state_file: Path, path: Path, digest: str) -> dict[str, Any] | None:
    """What `save_book` recorded of a whole-book file (the M4B, the read-along EPUB), if an
    earlier build made it from the inputs `digest` stands for and it is untouched."""
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        if state["digest"] != digest or state["file"] != path.name:
            return None
        if _file_facts(path) != state["facts"]:
            return None
        return dict(state)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save_book(state_file: Path, path: Path, digest: str, facts: dict[str, Any]) -> None:
    """Record a whole-book file just written: its inputs' digest, name, size and time, and
    `facts` for the build that keeps it."""
    state = {"digest": digest, "file": path.name, "facts": _file_facts(path), **facts}
    replace_file(state_file, (json.dumps(state, indent=1, ensure_ascii=False) + "\n").encode())


def pieces_dir(state_dir: Path) -> Path:
    """Where the chapters' encoded pieces are kept between builds."""
    return state_dir / PIECES_DIR


def aac_path(state_dir: Path, stem: str) -> Path:
    """Where a chapter's AAC for the audiobook is kept."""
    return state_dir / f"{stem}{CHAPTER_AAC_SUFFIX}"


def prune_state(state: Path, stems: set[str]) -> None:
    """Forget chapters that are no longer in the book (their state and AAC)."""
    if not state.is_dir():
        return
    for path in [*state.glob("*.json"), *state.glob(f"*{CHAPTER_AAC_SUFFIX}")]:
        if path.stem not in stems and path.name not in BOOK_STATES:
            path.unlink(missing_ok=True)
