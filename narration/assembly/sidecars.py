"""The files beside each chapter's MP3: its WebVTT transcript and Podcasting 2.0 JSON
chapters, and the episode's description."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

from narration.assembly.mp3 import Timing
from narration.assembly.timeline import Cue
from narration.errors import OutputError
from narration.fingerprint import WORD
from narration.model import CastChapter, CastSegment


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cue_id(part: CastSegment, line: int) -> str:
    """A cue's identifier in the transcript: its part's id and the line's number in it."""
    return re.sub(r"\s+", "-", f"{part.id}.{line}").replace("-->", "--")


def transcript_words(cast: CastChapter) -> list[str]:
    """The words of the chapter's transcript as `fingerprint.transcript_words` reads them
    from its WebVTT file (each cue's identifier, then its text), known before it is made."""
    words: list[str] = []
    for part in cast.parts:
        for j, line in enumerate(part.lines):
            words += WORD.findall(cue_id(part, j))
            words += WORD.findall(line.text)
    return words


def vtt(cast: CastChapter, cues: list[Cue], timing: Timing, duration: float) -> str:
    """One cue per utterance, naming its voice. The last cue runs to the end of the audio,
    over the tail's room tone, so the transcript covers the whole file."""
    out = ["WEBVTT", ""]
    for k, cue in enumerate(cues):
        part = cast.parts[cue.part]
        start = timing.seconds(cue.start)
        end = duration if k == len(cues) - 1 else timing.seconds(cue.end)
        out.append(cue_id(part, cue.line))
        out.append(f"{_vtt_time(start)} --> {_vtt_time(end)}")
        label = _vtt_escape(part.voice.label)
        out.append(f"<v {label}>{_vtt_escape(part.lines[cue.line].text)}")
        out.append("")
    return "\n".join(out)


@dataclass(frozen=True)
class VttCue:
    """One transcript cue as read back: its identifier, its times (whole milliseconds, as
    the file writes them), who speaks (from <v Name>) and the text."""

    ident: str | None
    start_ms: int
    end_ms: int
    speaker: str | None
    text: str

    @property
    def start(self) -> float:
        return self.start_ms / 1000

    @property
    def end(self) -> float:
        return self.end_ms / 1000


_TIMING = re.compile(
    r"^\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})\s*-->\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})"
)
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]*)>")
_TAG = re.compile(r"</?[^>]*>")


def _milliseconds(stamp: str) -> int:
    """[h:]mm:ss.fff as whole milliseconds (a fraction of fewer digits is scaled up)."""
    whole, _, frac = stamp.replace(",", ".").partition(".")
    total = 0
    for part in whole.split(":"):
        total = total * 60 + int(part)
    return total * 1000 + int((frac + "000")[:3])


def read_vtt(path: Path) -> list[VttCue]:
    """The cues of a WebVTT file, with the speaker of a <v> span and the text without tags
    (its character references unescaped: html.unescape knows WebVTT's)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"{path}: cannot read the transcript ({exc})") from None
    cues = []
    for block in re.split(r"\r?\n\s*\r?\n", text.replace("\r\n", "\n")):
        lines = block.strip("\n").split("\n")
        for i, line in enumerate(lines):
            m = _TIMING.match(line)
            if m is None:
                continue
            body = "\n".join(lines[i + 1 :])
            voice = _VOICE.search(body)
            speaker = html.unescape(voice.group(1)).strip() if voice else None
            words = " ".join(html.unescape(_TAG.sub("", body)).split())
            ident = lines[i - 1].strip() if i and "-->" not in lines[i - 1] else None
            if words:
                start, end = _milliseconds(m.group(1)), _milliseconds(m.group(2))
                cues.append(VttCue(ident or None, start, end, speaker, words))
            break
    return cues


def chapters_json(marks: list[tuple[float, str]]) -> str:
    data = {
        "version": "1.2.0",
        "chapters": [{"startTime": round(t, 3), "title": title} for t, title in marks],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def description(cast: CastChapter) -> str:
    """The first lines a listener hears after the announcement, and the sources quoted."""
    opening: list[str] = []
    length = 0
    for part in cast.parts:
        if part.kind in ("announcement", "heading"):
            continue
        for line in part.lines:
            if length >= 280:
                break
            opening.append(line.text.strip())
            length += len(line.text)
        if length >= 280:
            break
    text = " ".join(opening)
    if len(text) > 400:
        text = text[:399].rsplit(" ", 1)[0] + "…"
    sources: list[str] = []
    for part in cast.parts:
        if part.kind == "quote" and part.source is not None:
            label = part.source.label()
            if label and label not in sources:
                sources.append(label)
    pieces = [text] if text else []
    if sources:
        pieces.append("Quoted: " + "; ".join(sources) + ".")
    pieces.append("Voices: " + ", ".join(v.label for v in cast.voices) + ".")
    return "\n\n".join(pieces)
