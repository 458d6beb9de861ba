"""Writing output files so that an interrupted build never leaves one half-written.

Every file is written beside its final name (`.NAME.tmpPID`, a pattern the next build
removes if a killed one left it) and renamed into place; a full disk or a missing folder
becomes an OutputError naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from narration.errors import OutputError


def temp_path(path: Path) -> Path:
    """Where `path` is written before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_atomic(path: Path, data: bytes, *, skip_unchanged: bool = True) -> bool:
    """Write `data` to `path` atomically; False when the file already held exactly that
    (left alone, so its modification time says when it last changed)."""
    tmp = temp_path(path)
    try:
        same_size = path.is_file() and path.stat().st_size == len(data)
        if skip_unchanged and same_size and path.read_bytes() == data:
            return False
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    except OSError as exc:
        raise OutputError(f"{path}: {exc.strerror or exc}") from None
    return True


__all__ = ["temp_path", "write_atomic"]


#: A PNG file's first bytes; a cover narrate writes is a PNG or a JPEG.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_type(data: bytes) -> str:
    """A cover's media type, from its bytes (what each container's tags ask for)."""
    return "image/png" if data.startswith(PNG_SIGNATURE) else "image/jpeg"
