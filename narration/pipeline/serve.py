"""`narrate serve`: the built show served over HTTP, at the base URL its feed names."""

from __future__ import annotations

from narration.errors import OutputError
from narration.invocation import narrate
from narration.layout import FEED_FILE
from narration.pipeline.checks import Say
from narration.pipeline.project import Project


def serve_project(project: Project, *, host: str, port: int, echo: Say) -> None:
    from narration.publishing.serve import serve

    out = project.output
    if not (out / FEED_FILE).is_file():
        raise OutputError(f"{out / FEED_FILE}: not built yet; run `{narrate()} build` first")
    from narration.config import load_podcast

    podcast = load_podcast(project.podcast_file)
    serve(out, host=host, port=port, feed_base_url=podcast.base_url, echo=echo)
