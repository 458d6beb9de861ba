"""Hearing a segment before a build: `narrate preview` renders it as a build would (the same
workers, so the same bytes) to a WAV or an MP3, and `--play` plays that file with whatever
player this machine has.

The MP3 is encoded at the clip's own rate (22,050 Hz for espeak-ng) from its samples as
they are: not by assembly's `codec.Mp3Stream`, which encodes a levelled chapter at 44.1 kHz.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from narration.errors import OutputError, SynthesisError
from narration.model import Clip, Line, Voice
from narration.synthesis import ClipCache, Engine, synthesize, wav_info
from narration.synthesis.engines import wav_header


@dataclass(frozen=True)
class PreviewPiece:
    """One piece of a preview: its text as the engine reads it, in its voice."""

    spoken: str
    voice: Voice
    engine: Engine


def preview_text(
    text: str, voice: Voice, engine: Engine, out: Path, *, cache: ClipCache | None = None
) -> Path:
    """Render `text` like a build would (same worker path, so the same bytes) to `out`.

    `out` ending in .mp3 is encoded with lameenc (64 kbps, at espeak-ng's 22,050 Hz); any
    other name gets the WAV. With `cache`, the clip is taken from or added to it.
    """
    return preview_pieces([PreviewPiece(text, voice, engine)], out, cache=cache)


#: Joins several rendered clips into one stretch of audio: its 16-bit PCM and sample rate.
JoinClips = Callable[[Sequence[Clip]], tuple[bytes, int]]


def preview_pieces(
    pieces: Sequence[PreviewPiece],
    out: Path,
    *,
    join: JoinClips | None = None,
    cache: ClipCache | None = None,
) -> Path:
    """Render the pieces of one segment in order, as one clip, to `out`.

    One piece is written as its clip (the build's bytes). Several (a segment the cast split
    between voices), each read by its voice's own engine, are joined by `join` (the
    assembly's way of laying them out, which the caller gives: synthesis knows no timeline).
    """
    out = Path(out)
    if out.suffix.lower() not in (".wav", ".mp3"):
        raise OutputError(f"{out}: a preview is written as .wav or .mp3")
    if not pieces:
        raise SynthesisError(f"{out}: nothing to preview")
    if len(pieces) > 1 and join is None:
        raise SynthesisError(f"{out}: {len(pieces)} pieces and no way to join them")
    with tempfile.TemporaryDirectory(prefix="narrate-preview-") as scratch:
        store = cache or ClipCache(Path(scratch))
        clips = [
            synthesize(
                [(Line(text=p.spoken, spoken=p.spoken), p.voice, "preview")],
                engine=p.engine,
                cache=store,
                jobs=1,
            )[0]
            for p in pieces
        ]
        if len(clips) == 1:
            info = wav_info(clips[0].path)
            with open(clips[0].path, "rb") as f:
                f.seek(info.data_offset)
                pcm = f.read(info.frames * info.sample_width)
            rate, wav = info.sample_rate, clips[0].path.read_bytes()
        else:
            assert join is not None
            pcm, rate = join(clips)
            wav = wav_header(len(pcm) // 2, rate) + pcm
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
            tmp.write_bytes(_encode_mp3(pcm, rate) if out.suffix.lower() == ".mp3" else wav)
            os.replace(tmp, out)
        except OSError as exc:
            raise OutputError(f"{out}: cannot write the preview ({exc.strerror})") from None
    return out


def _encode_mp3(pcm: bytes, rate: int) -> bytes:
    import lameenc

    encoder = lameenc.Encoder()
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_bit_rate(64)
    encoder.set_quality(2)
    return bytes(encoder.encode(pcm) + encoder.flush())


#: Players tried in order: (command, arguments before the file, suffixes it can play).
PLAYERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("afplay", (), (".wav", ".mp3")),
    ("paplay", (), (".wav",)),
    ("pw-play", (), (".wav",)),
    ("aplay", ("-q",), (".wav",)),
    ("ffplay", ("-nodisp", "-autoexit", "-loglevel", "quiet"), (".wav", ".mp3")),
    ("mpv", ("--no-video", "--really-quiet"), (".wav", ".mp3")),
    ("mpg123", ("-q",), (".mp3",)),
    ("play", ("-q",), (".wav", ".mp3")),
)


#: Where Linux lists its sound cards' devices (pcmC<card>D<device>p plays).
SOUND_DEVICES = Path("/dev/snd")


def sound_output() -> str | None:
    """None when this machine has somewhere to play sound, else what it lacks. On Linux: a
    PulseAudio or PipeWire server (what desktop players use) or an ALSA playback device;
    a container or a server without them has no sound to give."""
    if not sys.platform.startswith("linux"):
        return None
    if os.environ.get("PULSE_SERVER"):
        return None
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    if any(Path(runtime, name).exists() for name in ("pulse/native", "pipewire-0")):
        return None
    with contextlib.suppress(OSError):
        if any(SOUND_DEVICES.glob("pcmC*D*p")):
            return None
    return (
        f"no sound device (no playback device in {SOUND_DEVICES}, "
        "and no PulseAudio or PipeWire server running)"
    )


def play(path: Path) -> str | None:
    """Play `path` with the first available player; None if it played, else a message why not."""
    path = Path(path)
    lacking = sound_output()
    if lacking is not None:
        return f"cannot play {path}: this machine has {lacking}; open the file where you can listen"
    suffix = path.suffix.lower()
    usable = [(cmd, args) for cmd, args, kinds in PLAYERS if suffix in kinds]
    tried = []
    for cmd, args in usable:
        exe = shutil.which(cmd)
        if exe is None:
            continue
        try:
            run = subprocess.run(
                [exe, *args, str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
            )
        except OSError as exc:
            tried.append(f"{cmd}: {exc.strerror}")
            continue
        if run.returncode == 0:
            return None
        err = run.stderr.decode("utf-8", "replace").strip().splitlines()
        tried.append(f"{cmd} exited with {run.returncode}" + (f": {err[-1]}" if err else ""))
    if tried:
        return f"could not play {path}: " + "; ".join(tried)
    names = ", ".join(cmd for cmd, _ in usable)
    return f"no audio player found to play {path} (looked for {names}); open the file yourself"
