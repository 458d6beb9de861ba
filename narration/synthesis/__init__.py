"""Synthesis: every sentence of the cast book rendered offline by its voice's engine
(`engines/`), verified and cached by content, in clean processes or on a cluster
(a `RemoteRenderer`).

    render.py   `synthesize`: what is cached taken, the rest rendered, chapter by chapter
    jobs.py     what it is asked to render (`ClipJob`), in what order, and its errors
    workers.py  the worker processes (a fork per clip for espeak-ng) and what they send back
    remote.py   clips rendered elsewhere (narration/cluster/), checked and cached here
    clips.py    a clip's cache key, and the checks a WAV passes before it is a clip
    cache.py    the clip cache, its entries sealed with their digests
"""

from narration.synthesis.cache import ClipCache
from narration.synthesis.clips import (
    ClipProblem,
    WavInfo,
    check_clip,
    clip_key,
    full_scale_samples,
    plausible_speech_seconds,
    speech_seconds,
    wav_info,
)
from narration.synthesis.engines import Engine, EngineVoice, get_engine, list_voices
from narration.synthesis.jobs import ClipJob
from narration.synthesis.remote import RemoteClip, RemoteRenderer, RemoteTask
from narration.synthesis.render import ProgressFn, synthesize
from narration.synthesis.workers import ClipTask, Failed, Rendered, RenderResult, WorkerPool

__all__ = [
    "ClipCache",
    "ClipJob",
    "ClipProblem",
    "ClipTask",
    "Engine",
    "EngineVoice",
    "Failed",
    "ProgressFn",
    "RemoteClip",
    "RemoteRenderer",
    "RemoteTask",
    "RenderResult",
    "Rendered",
    "WavInfo",
    "WorkerPool",
    "check_clip",
    "clip_key",
    "full_scale_samples",
    "get_engine",
    "list_voices",
    "plausible_speech_seconds",
    "speech_seconds",
    "synthesize",
    "wav_info",
]
