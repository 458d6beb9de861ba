"""The files beside each chapter's MP3: its WebVTT transcript and Podcasting 2.0 JSON
chapters, and the episode's description."""

from __future__ import annotations

import json
import re

from ..model import CastChapter
from .mp3 import Timing
from .timeline import Cue


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt(cast: CastChapter, cues: list[Cue], timing: Timing, duration: float) -> str:
    """One cue per utterance, naming its voice. The last cue runs to the end of the audio,
    over the tail's room tone, so the transcript covers the whole file."""
    out = ["WEBVTT", ""]
    for k, cue in enumerate(cues):
        part = cast.parts[cue.part]
        start = timing.seconds(cue.start)
        end = duration if k == len(cues) - 1 else timing.seconds(cue.end)
        ident = re.sub(r"\s+", "-", f"{part.id}.{cue.line}").replace("-->", "--")
        out.append(ident)
        out.append(f"{_vtt_time(start)} --> {_vtt_time(end)}")
        label = _vtt_escape(part.voice.label)
        out.append(f"<v {label}>{_vtt_escape(part.lines[cue.line].text)}")
        out.append("")
    return "\n".join(out)


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
