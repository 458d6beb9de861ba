"""The clip cache: content-addressed WAVs under `<project>/.narrate/cache/clips` (or
`$NARRATE_CACHE_DIR`), each entered by an atomic rename and sealed with the digest of its
bytes; a truncated, corrupt or changed entry reads as missing and is rendered again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from narration.errors import OutputError
from narration.layout import cache_dir
from narration.model import Clip
from narration.synthesis.clips import ClipProblem, clip_format, wav_info


class ClipCache:
    """Content-addressed WAVs: <root>/<key[:2]>/<key>.wav, each entered by an atomic rename.

    Beside each WAV, <key>.sha256 holds the digest of its bytes, taken when it was verified,
    with the file's size and modification time then. A reused clip whose size and time are
    unchanged is trusted without reading it (a no-op build of a novel reads no audio; a
    cache copied with its times, as cp -a and rsync -a do, stays trusted); any other is
    hashed again, and if its bytes changed (samples zeroed on disk, a bad copy) it is not
    used: rendered again, and counted in `damaged`. What keeps its size and time (bit rot)
    is caught where assembly reads the samples: each Clip carries its digest.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.damaged: list[str] = []  # keys of clips found changed on disk, rendered again

    @classmethod
    def for_project(cls, project: Path) -> ClipCache:
        return cls(cache_dir(project))

    def __repr__(self) -> str:
        return f"ClipCache({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{16,128}", key):
            raise ValueError(f"not a clip key: {key!r}")
        return self.root / key[:2] / f"{key}.wav"

    def temp_path(self, key: str, attempt: int = 0) -> Path:
        """A fresh name beside the final one (same file system, so the rename is atomic).

        Leftovers of killed renders start with a dot and end in .tmp: never read, removed
        by clear().
        """
        final = self.path_for(key)
        self._mkdir(final.parent)
        return final.with_name(f".{key[:20]}.{os.getpid()}.{attempt}.tmp")

    def ensure(self) -> None:
        """Create the cache folder; OutputError (not a traceback) if it cannot be."""
        self._mkdir(self.root)

    @staticmethod
    def _mkdir(folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = exc.strerror or exc
            raise OutputError(f"{folder}: cannot create the clip cache ({why})") from None

    def get(
        self, key: str, verify: Callable[[Path], object] | None = None, just_made: bool = False
    ) -> Clip | None:
        """The cached clip, or None if absent, truncated, not a clip WAV, or changed since it
        was verified. `verify(path)` (raising ClipProblem) checks a clip that has no digest
        yet (cached by a narrate before digests), which is then given one. `just_made`: a
        worker verified and cached it a moment ago (another build may have renamed its own
        render over it since, before sealing it: not a damaged clip)."""
        path = self.path_for(key)
        try:
            info = wav_info(path)
            stat = os.stat(path)
        except (ClipProblem, OSError):
            return None
        if not clip_format(info) or info.frames == 0:
            return None
        seal = _read_seal(path)
        digest = seal[0] if seal is not None else None
        if just_made:
            digest = digest or _file_digest(path)
        elif seal is None or seal[1:] != _stat_fields(stat):
            digest = _file_digest(path)
            if digest is None:
                return None
            if seal is not None and seal[0] != digest:
                self.damaged.append(key)
                return None
            if seal is None and verify is not None:
                try:
                    verify(path)
                except ClipProblem:
                    self.damaged.append(key)
                    return None
            _write_seal(path, digest, stat)  # best effort: unsealed, it is hashed next time
        return Clip(key, path, info.frames, info.sample_rate, False, digest)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, src: Path) -> Clip:
        """Move a verified WAV (from temp_path) into the cache atomically, with its digest."""
        info = wav_info(src)
        final = self.path_for(key)
        digest = _file_digest(src)
        try:
            os.replace(src, final)
            if digest is not None:
                _write_seal(final, digest, os.stat(final))
        except OSError as exc:
            raise OutputError(f"{final}: cannot write to the clip cache ({exc.strerror})") from None
        return Clip(key, final, info.frames, info.sample_rate, True, digest)

    def intact(self, clip: Clip) -> bool:
        """Whether the clip's file still has the bytes it was verified with (reads it)."""
        return clip.digest is not None and _file_digest(clip.path) == clip.digest

    def discard(self, key: str) -> None:
        """Forget a clip (a damaged one), so the next synthesis renders it again."""
        path = self.path_for(key)
        for p in (path, _seal_path(path)):
            p.unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if shard.is_dir():
                for entry in sorted(shard.glob("*.wav")):
                    yield entry.stem

    def clear(self) -> int:
        """Delete every clip (and leftovers of killed renders); returns how many clips."""
        count = 0
        if not self.root.is_dir():
            return 0
        for shard in self.root.iterdir():
            if shard.is_dir() and re.fullmatch(r"[0-9a-f]{2}", shard.name):
                count += sum(1 for _ in shard.glob("*.wav"))
                shutil.rmtree(shard, ignore_errors=True)
        return count


_Seal = tuple[str, int, int]  # sha256, size, mtime_ns


def _stat_fields(stat: os.stat_result) -> tuple[int, int]:
    return (stat.st_size, stat.st_mtime_ns)


def _seal_path(wav: Path) -> Path:
    return wav.with_suffix(".sha256")


def _file_digest(path: Path) -> str | None:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None


def _read_seal(wav: Path) -> _Seal | None:
    try:
        fields = _seal_path(wav).read_text(encoding="ascii").split()
        digest, numbers = fields[0], tuple(int(n) for n in fields[1:])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    if len(numbers) != 2 or not re.fullmatch(r"[0-9a-f]{64}", digest):
        return None
    return (digest, *numbers)


def _write_seal(wav: Path, digest: str, stat: os.stat_result) -> None:
    """<key>.sha256: the digest and the stat it was taken at, replaced atomically."""
    seal = _seal_path(wav)
    tmp = seal.with_name(f".{seal.name}.{os.getpid()}.tmp")
    text = " ".join([digest, *map(str, _stat_fields(stat))]) + "\n"
    try:
        tmp.write_text(text, encoding="ascii")
        os.replace(tmp, seal)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
