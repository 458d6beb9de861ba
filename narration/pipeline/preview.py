"""`narrate preview`: one segment, or some text in a named voice, rendered for auditioning."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from narration.errors import InputError, OutputError
from narration.invocation import narrate
from narration.layout import (
    SEEDS_DIR,
)
from narration.model import (
    CastChapter,
    CastSegment,
    Voice,
)
from narration.pipeline.checks import check_project
from narration.pipeline.project import Project, load_config

# The stages' modules are imported where they are used (see build.py).
if TYPE_CHECKING:
    from narration.config import VoicesConfig


def preview_clip(
    project: Project,
    *,
    segment_id: str | None,
    text: str | None,
    voice_name: str | None,
    out: Path | None,
) -> Path:
    """Render one segment, or some text in a named voice, for auditioning."""
    from narration.assembly import audio
    from narration.casting import Lexicon
    from narration.pipeline.playback import PreviewPiece, preview_pieces
    from narration.segmenting.sentences import split_sentences
    from narration.synthesis.engines import EngineSet

    if out is not None and not out.parent.is_dir():
        raise OutputError(f"{out.parent}: no such folder for the preview (--out {out})")
    engines = EngineSet()
    checked_voices, _ = load_config(project, catalog=engines.catalog)
    if voice_name is not None:
        if text is None:
            text, segment_id = segment_id, None
        if not text:
            raise InputError(
                "preview", f'give the text to read: {narrate()} preview --voice NAME "text"'
            )
        if voice_name in checked_voices.voices:
            voice = checked_voices.voices[voice_name].as_voice(voice_name)
            lexicon = checked_voices.lexicon_for(voice_name)
        else:
            voice = _character_voice(project, voice_name, checked_voices)
            lexicon = (
                checked_voices.lexicon_for(voice.name)
                if voice.name in checked_voices.voices
                else checked_voices.shared_lexicon(voice.engine)
            )
        said = [(Lexicon(lexicon).apply(" ".join(split_sentences(text))), voice)]
        name = f"preview-{voice_name}"
        pause = 0
    else:
        if not segment_id:
            raise InputError(
                "preview", f'give a segment id (see `{narrate()} cast`) or --voice NAME "text"'
            )
        checked = check_project(project)
        parts = _segment_parts(checked.cast, segment_id)
        if not parts:
            raise InputError(
                SEEDS_DIR, f"no segment '{segment_id}' (see `{narrate()} cast` for ids)"
            )
        said = [(" ".join(line.spoken for line in part.lines), part.voice) for part in parts]
        name = f"preview-{segment_id}"
        engines = EngineSet(checked.engines)  # their models were checked with the project
        pause = checked.voices.pauses.sentence  # as a chapter joins a split segment's pieces
    pieces = [PreviewPiece(text, voice, engines.ready(voice.engine)) for text, voice in said]
    target = out or (project.previews / f"{_safe(name)}.wav")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return preview_pieces(
            pieces, target, join=functools.partial(audio.join_clips, pause_ms=pause)
        )
    except OSError as exc:
        raise OutputError.from_os(exc) from None


def _segment_parts(cast: Sequence[CastChapter], segment_id: str) -> list[CastSegment]:
    """The parts that read `segment_id`, in order: the part of that id (`narrate cast`'s
    `<id>.0`, an announcement), or every piece of a segment the cast split between voices
    (`narrate segments`' id, which no single part has)."""
    parts = [p for cc in cast for p in cc.parts]
    exact = [p for p in parts if p.id == segment_id]
    if exact:
        return exact
    return [p for p in parts if p.segment is not None and p.segment.id == segment_id]


def _character_voice(project: Project, who: str, voices: VoicesConfig) -> Voice:
    """The voice that reads a character (`preview --voice "Mrs. Grey"`), by any of its
    names; InputError listing the voices and characters when it names neither."""
    from narration.casting.characters import character_index, name_key

    checked = check_project(project)
    character = character_index(checked.speakers).get(name_key(who))
    role = checked.roles.get(character.id) if character else None
    if character is None or role is None:
        raise InputError(
            project.voices_file,
            f"no voice or character '{who}' (voices: {', '.join(voices.voices)}; "
            f"`{narrate()} characters` lists the characters)",
        )
    if role.voice is None:
        raise InputError(
            project.voices_file,
            f"{character.name} has no voice of their own ({role.why}); "
            f"`{narrate()} characters` says who reads them",
        )
    return role.voice


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:80]
