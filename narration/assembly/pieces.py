"""Encoded pieces kept between builds (.narrate/state/pieces/), by a key of everything
their bytes depend on: a rebuild encodes only the pieces whose content changed and joins
the others as they are.

A piece's key (`piece_key`) holds what it reads (its clips, their voices and gains, where
they sit from its start: `timeline.PieceContent`), the chapter's gain, its limiter's
ceiling, the encoder's settings and the libraries' versions: never where it falls in the
chapter, so a piece moved by an edit before it is still found. Each entry is the piece's
MP3 stream and its facts (frames, decoded true peak, loudness hops); a piece whose MP3 was
encoded only to be measured (its chapter's gain then changed, or it peaked over the
ceiling) keeps its facts alone, so a rebuild takes the same decisions without encoding it.
Each voice's gain is kept there too, by a key of the clips it was measured on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from narration.assembly.levelling import Mix
from narration.assembly.mp3 import LAME_QUALITY, Encoded
from narration.assembly.plan import gain_file, gain_text
from narration.assembly.state import versions
from narration.assembly.timeline import Piece, PieceContent
from narration.errors import OutputError
from narration.files import write_atomic

#: Bump when a change makes a piece's bytes or facts differ: every piece is encoded again.
PIECE_FORMAT = 1


def piece_key(mix: Mix, piece: Piece, content: PieceContent) -> str:
    """The digest of everything one piece's MP3 and facts are made from."""
    gains = {name: repr(db) for name, db in mix.voice_db.items()}
    data = {
        "format": PIECE_FORMAT,
        "versions": versions(),
        "encoder": [mix.bitrate, LAME_QUALITY],
        "levels": [repr(mix.chapter_db), repr(mix.ceiling_db), repr(mix.true_peak)],
        "span": [piece.stop - piece.start, piece.end - piece.start],
        "around": [content.before, content.after],
        "heard": [[h.clip, h.voice, gains[h.voice], h.offset, h.length] for h in content.heard],
    }
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _check(facts: dict[str, object]) -> str:
    """A digest of a piece's facts, kept with them: a file changed since is not taken."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


class PieceStore:
    """The kept pieces: `find` a key's facts, `keep` a piece just encoded, `playable`
    checks a kept MP3 before it is joined, `prune` forgets every other piece."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def mp3(self, key: str) -> Path:
        return self.folder / f"{key}.mp3"

    def _facts(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def find(self, key: str, index: int) -> Encoded | None:
        """The facts kept for `key`, as piece `index` of a chapter (its MP3 may be gone)."""
        try:
            facts = json.loads(self._facts(key).read_text(encoding="utf-8"))
            if facts.pop("check") != _check(facts):  # changed since it was written
                return None
            return Encoded(
                index=index,
                mp3=self.mp3(key),
                frames=int(facts["frames"]),
                size=int(facts["size"]),
                sha256=str(facts["sha256"]),
                hops=np.array(facts["hops"], dtype=np.float64),
                voices={n: np.array(h, dtype=np.float64) for n, h in facts["voices"].items()},
                true_peak=float(facts["true_peak"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def keep(self, key: str, encoded: Encoded) -> Encoded:
        """Move a piece just encoded into the store, with its facts; it, from there."""
        facts = asdict(encoded)
        facts.pop("index")
        facts.pop("mp3")
        facts["hops"] = encoded.hops.tolist()
        facts["voices"] = {n: h.tolist() for n, h in encoded.voices.items()}
        facts["check"] = _check(facts)
        path = self.mp3(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            encoded.mp3.replace(path)
            write_atomic(
                self._facts(key), (json.dumps(facts) + "\n").encode(), skip_unchanged=False
            )
        except OSError as exc:
            raise OutputError(f"{path}: {exc.strerror or exc}") from None
        return Encoded(**{**vars(encoded), "mp3": path})

    def playable(self, encoded: Encoded) -> bool:
        """Whether a kept piece's MP3 is there, with the bytes its facts describe."""
        try:
            data = encoded.mp3.read_bytes()
        except OSError:
            return False
        return len(data) == encoded.size and hashlib.sha256(data).hexdigest() == encoded.sha256

    def keep_gain(self, key: str, db: float) -> None:
        """Keep a voice's gain just found (see `plan.VoiceGain`)."""
        path = gain_file(self.folder, key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, gain_text(db).encode(), skip_unchanged=False)
        except OSError as exc:
            raise OutputError(f"{path}: {exc.strerror or exc}") from None

    def drop_mp3(self, key: str) -> None:
        """Forget a piece's MP3 but keep its facts (it was encoded only to be measured)."""
        with contextlib.suppress(OSError):
            self.mp3(key).unlink()

    def prune(self, keep: set[str]) -> None:
        """Remove every piece but those of `keep` (the book's chapters use them)."""
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.name.split(".", 1)[0] not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()

    def size(self) -> tuple[int, int]:
        """(pieces, bytes) kept."""
        count = total = 0
        if self.folder.is_dir():
            for path in self.folder.glob("*.mp3"):
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
                    count += 1
        return count, total
