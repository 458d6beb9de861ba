"""The `narrate` command: a thin layer over the library.

Each command calls the library and turns its NarrateError into a one-line (or one-list)
click error with a non-zero exit; nothing here knows how a stage works.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from narration import DEFAULT_ENGINE, __version__
from narration.errors import NarrateError

if TYPE_CHECKING:
    from narration.pipeline.project import Project

F = TypeVar("F", bound=Callable[..., Any])


class NarrateClickError(click.ClickException):
    """A library error as click shows it: 'Error: <message>' on stderr, the error's exit code."""

    def __init__(self, error: NarrateError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code


class Interrupted(click.ClickException):
    """Ctrl-C, SIGTERM or SIGHUP: one line, and the exit status shells expect after the
    signal (128 + its number: 130, 143, 129)."""

    def __init__(self, signum: int) -> None:
        how = (
            "interrupted"
            if signum == signal.SIGINT
            else f"stopped by {signal.Signals(signum).name}"
        )
        super().__init__(f"{how}; the next build resumes from the cache")
        self.exit_code = 128 + signum


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the build is: it stops as after Ctrl-C (every
    `finally` runs: workers stopped, temporary files removed, the lock released)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: The signals that end a build as Ctrl-C does: a plain `kill`, `docker stop`, a CI time-out,
#: a closed terminal.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP raise Stopped in the main thread; a second one while the build
    cleans up is ignored, so the cleanup runs to its end."""

    def stop(signum: int, _frame: object) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise Stopped(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)


def handle_errors(func: F) -> F:
    """Turn the library's exceptions into click errors: no tracebacks for user mistakes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NarrateError as exc:
            raise NarrateClickError(exc) from exc
        except KeyboardInterrupt as exc:
            raise Interrupted(getattr(exc, "signum", signal.SIGINT)) from None

    return wrapper  # type: ignore[return-value]


def project_option(func: F) -> F:
    return click.option(
        "--project",
        "-p",
        "project_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        show_default="the current directory, or the project above it",
        help="Book directory holding seeds/, voices.yaml and output/.",
    )(func)


def voices_option(func: F) -> F:
    return click.option(
        "--voices",
        "voices_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Cast file to use instead of voices.yaml, e.g. voices.kokoro.yaml.",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)


def jobs_option(func: F) -> F:
    return click.option(
        "--jobs",
        "-j",
        type=click.IntRange(1, 64),
        default=None,
        help="Worker processes (default: one per core).",
    )(func)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="narrate")
def main() -> None:
    """Turn a folder of texts into a multi-voice audiobook published as a podcast."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def init(directory: Path) -> None:
    """Create a new book project in DIRECTORY with a commented voices.yaml."""
    from narration.invocation import command
    from narration.layout import SEEDS_DIR
    from narration.pipeline.scaffold import init_project

    for path in init_project(directory):
        click.echo(f"created {path}")
    typed = command("build", "-p", directory)
    click.echo(f"Put your texts in {directory / SEEDS_DIR} and run: {typed}")


@main.command()
@project_option
@json_option
@handle_errors
def segments(project_dir: Path | None, as_json: bool) -> None:
    """Show how the seeds split into chapters, headings and quote blocks."""
    from narration.pipeline.project import load_book
    from narration.segmenting.outline import book_to_json, outline

    book = load_book(open_project_dir(project_dir), _warn)
    if as_json:
        _echo_json(book_to_json(book))
    else:
        click.echo(outline(book))


@main.command()
@project_option
@voices_option
@json_option
@handle_errors
def cast(project_dir: Path | None, voices_file: Path | None, as_json: bool) -> None:
    """Show who reads what: each segment's voice and the rule that chose it."""
    from narration.casting import cast_outline, cast_to_json
    from narration.pipeline.checks import check_project

    checked = check_project(open_project_dir(project_dir, voices_file), warn=_warn)
    if as_json:
        _echo_json(
            cast_to_json(
                checked.cast, checked.speakers, checked.book.texts, checked.roles, checked.voices
            )
        )
    else:
        click.echo(cast_outline(checked.cast, speakers=checked.speakers, roles=checked.roles))


@main.command()
@project_option
@voices_option
@json_option
@handle_errors
def characters(project_dir: Path | None, voices_file: Path | None, as_json: bool) -> None:
    """List the characters found in the seeds, most quoted first: names, genders, evidence,
    and the voice voices.yaml gives each, and why."""
    from narration.casting import characters_json
    from narration.casting.characters import role_text
    from narration.pipeline.checks import check_project
    from narration.segmenting.speakers.review import characters_table

    checked = check_project(open_project_dir(project_dir, voices_file), warn=_warn)
    if as_json:
        _echo_json({"characters": characters_json(checked.speakers, checked.roles, checked.voices)})
    else:
        voice_of = {
            c.id: role_text(checked.roles.get(c.id), checked.voices)
            for c in checked.speakers.characters
        }
        click.echo(characters_table(checked.speakers, voice_of))


def open_project_dir(project_dir: Path | None, voices_file: Path | None = None) -> Project:
    """The project given with --project, or else the one this command runs in (from inside
    its seeds/ too)."""
    from narration.pipeline.project import find_project, open_project

    return open_project(project_dir or find_project(Path.cwd()), voices_file)


@main.command()
@click.option("--lang", default=None, help="Only voices whose language starts with this, e.g. en.")
@click.option(
    "--engine",
    "engine_name",
    default=DEFAULT_ENGINE,
    show_default=True,
    help="Whose voices: pyttsx3 (espeak-ng) or kokoro.",
)
@json_option
@handle_errors
def voices(lang: str | None, engine_name: str, as_json: bool) -> None:
    """List an engine's voices, to pick from in voices.yaml."""
    from narration.synthesis.engines import get_engine

    engine = get_engine(engine_name)
    found = [
        v
        for v in engine.list_voices()
        if lang is None or any(lg.lower().startswith(lang.lower()) for lg in v.languages)
    ]
    variants = engine.list_variants()
    if as_json:
        _echo_json(
            {
                "voices": [
                    {
                        "id": v.id,
                        "name": v.name,
                        "languages": list(v.languages),
                        "gender": v.gender,
                        "accent": v.accent,
                    }
                    for v in found
                ],
                "variants": [
                    {"id": v.id, "name": v.name, "gender": v.gender, "castable": v.castable}
                    for v in variants
                ],
            }
        )
        return
    click.echo(f"{'ID':<28} {'NAME':<36} {'GENDER':<7} {'ACCENT':<32} LANGUAGES")
    for v in found:
        click.echo(
            f"{v.id:<28} {v.name:<36} {v.gender or '-':<7} {v.accent or '-':<32} "
            + ", ".join(v.languages)
        )
    if variants:
        click.echo(
            f"\n{len(found)} voices, of no gender of their own: a variant gives it "
            "(voice: gmw/en-us+f3, or variant: f3).\n"
            "Variants (* a plain voice the automatic cast uses):"
        )
        for gender in ("female", "male", None):
            ids = [f"{v.id}*" if v.castable else v.id for v in variants if v.gender == gender]
            if ids:
                click.echo(f"  {gender or 'no gender'}: " + ", ".join(ids))
    elif engine.usage:
        click.echo(f"\n{len(found)} voices. {engine.usage}")


@main.command()
@click.argument("segment_id", required=False)
@click.argument("text", required=False)
@click.option("--voice", "voice_name", default=None, help="Voice from voices.yaml to read TEXT.")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the clip (.wav or .mp3).",
)
@click.option("--play", is_flag=True, help="Play the clip when a player is available.")
@project_option
@voices_option
@handle_errors
def preview(
    segment_id: str | None,
    text: str | None,
    voice_name: str | None,
    out: Path | None,
    play: bool,
    project_dir: Path | None,
    voices_file: Path | None,
) -> None:
    """Render one segment (SEGMENT_ID) or some text (--voice NAME "text") to hear a voice."""
    from narration.pipeline.preview import preview_clip

    path = preview_clip(
        open_project_dir(project_dir, voices_file),
        segment_id=segment_id,
        text=text,
        voice_name=voice_name,
        out=out,
    )
    click.echo(str(path))
    if play:
        from narration.pipeline.playback import play as play_clip

        message = play_clip(path)
        if message:
            click.echo(message, err=True)


@main.command()
@click.option(
    "--project",
    "-p",
    "project_dirs",
    type=click.Path(file_okay=False, path_type=Path),
    multiple=True,
    help="Book directory holding seeds/, voices.yaml and output/ (default: the current "
    "directory, or the project above it). Give it again to build several books in turn, "
    "on one cluster.",
)
@voices_option
@jobs_option
@click.option(
    "--base-url", default=None, help="Where output/ will be published (overrides podcast.yaml)."
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Render the clips on the Dask cluster of this scheduler, e.g. tcp://host:8786 "
    "(default: podcast.yaml's scheduler, then $DASK_SCHEDULER_ADDRESS). Needs the dask extra.",
)
@click.option(
    "--workers",
    "cluster_workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Render the clips on a Dask LocalCluster of this many worker processes here.",
)
@click.option(
    "--m4b/--no-m4b",
    default=None,
    help="Also write the whole book as one M4B audiobook (default: podcast.yaml's m4b).",
)
@click.option(
    "--readalong/--no-readalong",
    default=None,
    help="Also write the read-along book: an EPUB 3 whose text is highlighted as the "
    "narration reads it (default: podcast.yaml's readalong).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@handle_errors
def build(
    project_dirs: tuple[Path, ...],
    voices_file: Path | None,
    jobs: int | None,
    base_url: str | None,
    scheduler: str | None,
    cluster_workers: int | None,
    m4b: bool | None,
    readalong: bool | None,
    quiet: bool,
) -> None:
    """Build the audiobook and podcast into output/."""
    import contextlib

    from narration.pipeline.build import BuildOptions, build_project

    _stop_on_signals()
    options = BuildOptions(jobs, base_url, m4b, readalong, scheduler, quiet)
    if base_url is not None:
        _check_base_url(base_url)
    if scheduler is not None and cluster_workers is not None:
        raise click.UsageError("give --scheduler or --workers, not both")
    projects = [open_project_dir(p, voices_file) for p in project_dirs or (None,)]
    say = (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))
    with contextlib.ExitStack() as stack:
        cluster = None
        if cluster_workers is not None or (scheduler is not None and len(projects) > 1):
            from narration.cluster import Cluster  # one cluster for every book

            cluster = stack.enter_context(
                Cluster.connect(scheduler.strip() if scheduler else None, workers=cluster_workers)
            )
        for project in projects:
            report = build_project(project, options, cluster=cluster, say=say, warn=_warn)
            if not quiet:
                click.echo(report.summary())


def _check_base_url(url: str) -> None:
    """Refuse a --base-url that urllib cannot even split ("http://[x"), as an InputError."""
    from urllib.parse import urlsplit

    from narration.errors import InputError

    try:
        urlsplit(url)
    except ValueError:
        raise InputError(
            "--base-url", f"'{url}' is not an http(s) URL like https://example.org/book/"
        ) from None


@main.command()
@project_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@handle_errors
def serve(project_dir: Path | None, host: str, port: int) -> None:
    """Serve output/ over HTTP so podcast apps can subscribe."""
    from narration.pipeline.serve import serve_project

    serve_project(open_project_dir(project_dir), host=host, port=port, echo=click.echo)


@main.command()
@project_option
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Remove output/ and .narrate/ (cache, state, previews), not just the clip cache.",
)
@handle_errors
def clean(project_dir: Path | None, everything: bool) -> None:
    """Empty the clip cache (with --all, remove output/ and .narrate/; never the seeds or
    the configuration). Refused while a build runs on the project."""
    from narration.pipeline.clean import clean_project

    for line in clean_project(open_project_dir(project_dir), everything=everything):
        click.echo(line)


def run() -> None:  # pragma: no cover - console entry point alias
    main(prog_name="narrate")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
