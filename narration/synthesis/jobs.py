"""What synthesis is asked to render (`ClipJob`), the order it renders in, and how it says
that a clip could not be made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from narration.errors import SynthesisError
from narration.model import Line, Voice
from narration.synthesis.engines import Engine
from narration.synthesis.workers import ClipTask


@dataclass(frozen=True)
class ClipJob:
    """One line to render in one voice: `label` names it in messages (its segment id), and
    `group` (its chapter's index) orders the work: groups are rendered in order, each as
    soon as the one before has all its clips started."""

    line: Line
    voice: Voice
    label: str
    group: int = 0


#: A ClipJob, or (line, voice[, label]) as tests write it.
Job = ClipJob | tuple[Line, Voice] | tuple[Line, Voice, str]
#: One engine for every voice (tests), or the engine of each voice by its `engine` name.
Engines = Engine | Mapping[str, Engine]
#: The clips to render, by engine name: the engine, and each clip's task with its job.
Todo = Mapping[str, tuple[Engine, list[tuple[ClipTask, ClipJob]]]]


def normalize(jobs_in: Sequence[Job]) -> list[ClipJob]:
    """Every job as a ClipJob, those given as tuples labelled by their place."""
    jobs = []
    for i, job in enumerate(jobs_in):
        if isinstance(job, ClipJob):
            jobs.append(job)
        elif len(job) == 3:
            line, voice, label = job  # type: ignore[misc]
            jobs.append(ClipJob(line, voice, str(label)))
        else:
            line, voice = job  # type: ignore[misc]
            jobs.append(ClipJob(line, voice, f"line {i + 1}"))
    return jobs


def engine_for(engines: Engines, voice: Voice) -> Engine:
    """The engine that renders `voice`: the one given, or the voice's own from a mapping."""
    if not isinstance(engines, Mapping):
        return engines
    engine = engines.get(voice.engine)
    if engine is None:
        raise SynthesisError(
            f"voice '{voice.name}': no '{voice.engine}' engine was loaded for this build"
        )
    return engine


def longest_first(engine: Engine, task: ClipTask, job: ClipJob) -> tuple[int, float]:
    """The order clips are rendered in: group by group (a book's chapters in order, so the
    first can be assembled while the rest render), the longest first within each (its
    words at its voice's pace), so the last ones to finish are short and no worker waits
    long for another at the end. The bytes do not depend on the order."""
    return (job.group, -len(task.text) / max(1, engine.words_per_minute(task.voice)))


def retried(job: ClipJob, attempts: int, problems: Sequence[str]) -> str:
    """What `on_retry` hears of a clip that was rendered after failed attempts."""
    return f"segment {job.label}: clip needed {attempts} attempts ({'; '.join(problems)})"


def failure(job: ClipJob, attempts: int, problems: Sequence[str]) -> SynthesisError:
    """No usable clip for `job`: its segment, the last problem (and the earlier ones), the
    voice and the text."""
    voice = job.voice
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    why = problems[-1] if problems else "unknown failure"
    history = ""
    if len(set(problems)) > 1:
        history = " (earlier: " + "; ".join(dict.fromkeys(problems[:-1])) + ")"
    return SynthesisError(
        f"segment {job.label}: no usable clip after {tries}: {why}{history}; "
        f"voice '{voice.name}' ({voice.settings()}); text: {job.line.spoken!r}"
    )
