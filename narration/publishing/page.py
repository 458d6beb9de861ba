"""The show page: output/index.html, a static page to listen in a browser.

It must work opened from disk (file://) as well as from `narrate serve`, so it uses only
relative URLs and no external assets, and it fetches nothing: fetch() and <track> both
fail on file:// in Chromium. Chapter times are read from each episode's JSON chapters
file and the transcript from its WebVTT file at build time, and written into the page;
a few lines of inline script make chapter and transcript times seek the player.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from narration.assembly.sidecars import VttCue as Cue
from narration.assembly.sidecars import read_vtt
from narration.errors import OutputError
from narration.files import write_atomic
from narration.layout import FEED_FILE, PAGE_FILE
from narration.model import Audiobook, Episode, ReadAlong, Show


@dataclass(frozen=True)
class Mark:
    """A chapter mark: where it starts (seconds) and its title."""

    start: float
    title: str


def read_chapters(path: Path) -> list[Mark]:
    """The chapter marks of a JSON chapters file (Podcasting 2.0, v1.2), sorted by time."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputError(f"{path}: cannot read the chapters file ({exc})") from None
    items = data.get("chapters", []) if isinstance(data, dict) else []
    marks = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("toc") is False:
            continue
        start = item.get("startTime")
        if isinstance(start, int | float) and not isinstance(start, bool) and start >= 0:
            marks.append(Mark(float(start), str(item.get("title") or "").strip()))
    return sorted(marks, key=lambda m: m.start)


def clock(seconds: float) -> str:
    """1:02:03 or 2:03, as players show times (whole seconds elapsed, not rounded)."""
    s = max(0, int(seconds + 1e-6))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _e(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def _href(path: Path, out_dir: Path) -> str:
    """A relative URL for a file in output/, escaped for an attribute."""
    try:
        rel = path.resolve().relative_to(out_dir.resolve()).as_posix()
    except ValueError:
        raise OutputError(f"{path}: not inside {out_dir}; the page cannot link to it") from None
    return _e(quote(rel))


def _paragraphs(text: str) -> str:
    return "\n".join(f"<p>{_e(p.strip())}</p>" for p in text.split("\n") if p.strip())


def _mark_items(marks: Sequence[Mark]) -> str:
    """A chapter list's items: buttons that seek the section's player to each mark."""
    return "\n".join(
        f'<li><button type="button" class="mark" data-start="{m.start:.3f}">'
        f'<span class="at">{clock(m.start)}</span> {_e(m.title) or "(untitled)"}</button></li>'
        for m in marks
    )


def _paragraph_key(cue: Cue) -> str | None:
    """The segment a cue reads (the part of its identifier before the first dot: a
    segment's pieces, its sentences and its announcement share it)."""
    return cue.ident.split(".", 1)[0] if cue.ident else None


def _read_along(cues: Sequence[Cue]) -> str:
    """The transcript as running text, a paragraph per segment, every cue a sentence that
    seeks the player when clicked and is highlighted while it plays. A paragraph opens
    with a time button (for the keyboard) and, when the voice changes, who reads it."""
    paragraphs: list[list[Cue]] = []
    for k, cue in enumerate(cues):
        key = _paragraph_key(cue)
        if k == 0 or key is None or key != _paragraph_key(cues[k - 1]):
            paragraphs.append([])
        paragraphs[-1].append(cue)
    out, speaker = [], None
    for para in paragraphs:
        first = para[0]
        who = ""
        if first.speaker and first.speaker != speaker:
            who = f'<span class="who">{_e(first.speaker)}:</span> '
        speaker = para[-1].speaker
        sentences = " ".join(
            f'<span class="cue" data-start="{c.start:.3f}" data-end="{c.end:.3f}"'
            + (f' title="{_e(c.speaker)}"' if c.speaker else "")
            + f">{_e(c.text)}</span>"
            for c in para
        )
        out.append(
            f'<p><button type="button" class="at" data-start="{first.start:.3f}" '
            f'aria-label="Play from {clock(first.start)}">{clock(first.start)}</button> '
            f"{who}{sentences}</p>"
        )
    return "\n".join(out)


#: Each episode's section as last rendered, by what it is made from: a build publishing
#: chapter by chapter renders the page again for each one, and only the new one changes.
_SECTIONS: dict[tuple[object, ...], str] = {}


def _files_key(*paths: Path) -> tuple[object, ...]:
    try:
        return tuple((p, p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    except OSError:  # gone: read_* say so
        return (None,)


def _episode_html(ep: Episode, out_dir: Path) -> str:
    key = (
        ep.number, ep.chapter_id, ep.title, ep.author, ep.mp3, ep.seconds, ep.voices, out_dir,
        *_files_key(ep.vtt, ep.chapters_json),
    )  # fmt: skip
    if key[-1] is not None and key in _SECTIONS:
        return _SECTIONS[key]
    section = _render_episode(ep, out_dir)
    if key[-1] is not None:
        if len(_SECTIONS) > 4096:
            _SECTIONS.clear()
        _SECTIONS[key] = section
    return section


def _render_episode(ep: Episode, out_dir: Path) -> str:
    marks = read_chapters(ep.chapters_json)
    cues = read_vtt(ep.vtt)
    anchor = _e(f"ep-{ep.chapter_id}")
    voices = ", ".join(ep.voices)
    meta = [clock(ep.seconds)]
    if ep.author:
        meta.append(_e(ep.author))
    if voices:
        meta.append("read by " + _e(voices))
    chapter_items = _mark_items(marks)
    chapters_html = (
        f'<nav aria-label="Chapters of {_e(ep.title)}"><h3>Chapters</h3>\n'
        f'<ol class="marks">\n{chapter_items}\n</ol></nav>'
        if marks
        else ""
    )
    transcript_html = (
        f'<details class="transcript"><summary>Read along</summary>\n'
        f'<div class="readalong">\n{_read_along(cues)}\n</div>\n'
        f'<p class="files">Transcript: <a href="{_href(ep.vtt, out_dir)}">WebVTT</a></p>'
        "</details>"
        if cues
        else ""
    )
    return f"""<section class="episode" id="{anchor}">
<h2><span class="num">{ep.number}.</span> {_e(ep.title)}</h2>
<p class="meta">{" · ".join(meta)}</p>
<audio controls preload="metadata" src="{_href(ep.mp3, out_dir)}"></audio>
<p class="files"><a href="{_href(ep.mp3, out_dir)}" download>Download MP3</a></p>
{chapters_html}
{transcript_html}
</section>"""


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"


def _audiobook_html(book: Audiobook, out_dir: Path) -> str:
    """The whole book in one file: its player, download and chapters, before the episodes."""
    href = _href(book.path, out_dir)
    items = _mark_items([Mark(start, title) for start, title in book.marks])
    meta = f"{clock(book.seconds)} · {len(book.marks)} chapters · M4B, {_size(book.size)}"
    return f"""<section class="episode audiobook" id="audiobook">
<h2>The audiobook</h2>
<p class="meta">The whole book in one file, with chapters, for audiobook apps · {meta}</p>
<audio controls preload="metadata" src="{href}"></audio>
<p class="files"><a href="{href}" download type="audio/mp4">Download the audiobook (M4B)</a></p>
<details class="book-chapters"><summary>Chapters</summary>
<ol class="marks">
{items}
</ol></details>
</section>"""


def _readalong_html(book: ReadAlong, out_dir: Path) -> str:
    """The read-along book: the text and the narration in one EPUB, for ebook readers."""
    href = _href(book.path, out_dir)
    return f"""<section class="episode readalong-book" id="readalong">
<h2>Read along</h2>
<p class="meta">The whole text with its narration, each sentence highlighted as it is read,
for ebook readers that play EPUB 3 media overlays (Thorium Reader, Apple Books, Readest)
· {book.chapters} chapters · EPUB, {_size(book.size)}</p>
<p class="files"><a href="{href}" download type="application/epub+zip">Download the read-along
book (EPUB)</a></p>
</section>"""


_CSS = """
:root { color-scheme: light dark; --accent: #8a2d1c; }
body { font: 17px/1.5 Georgia, "Times New Roman", serif; max-width: 46rem; margin: 0 auto;
  padding: 1rem; }
header { display: flex; gap: 1.25rem; align-items: flex-start; flex-wrap: wrap; }
header img { width: 12rem; height: 12rem; object-fit: cover; border-radius: 4px; }
header div { flex: 1 1 18rem; }
h1 { margin: 0 0 .25rem; line-height: 1.2; }
h2 { font-size: 1.3rem; margin: 2rem 0 .25rem; }
h3 { font-size: 1rem; margin: .75rem 0 .25rem; }
.author, .meta, .files { color: #666; margin: .25rem 0; }
audio { width: 100%; margin: .5rem 0; }
ol.marks { padding-left: 0; list-style: none; }
button { font: inherit; color: inherit; background: none; border: 0; padding: 0;
  cursor: pointer; text-align: left; }
.mark { padding: .15rem .3rem; border-radius: 3px; }
.mark:hover, .mark:focus, .at:hover, .at:focus { text-decoration: underline; }
.now { background: rgba(138, 45, 28, .15); }
.at { font-variant-numeric: tabular-nums; color: var(--accent); }
.who { font-weight: bold; }
.readalong p { margin: .4rem 0; }
.readalong .at { font-size: .85em; margin-right: .2rem; }
.cue { cursor: pointer; border-radius: 3px; }
.cue:hover { text-decoration: underline dotted; }
.cue.now { background: rgba(255, 214, 10, .45); }
.subscribe code { overflow-wrap: anywhere; }  /* moves to its own line; splits only if too long */
"""

_JS = """
(function () {
  "use strict";
  function current(list, t) {
    // the last whose start has passed (they are in time order): a binary search, as a
    // novel's chapter holds a thousand sentences
    var lo = 0, hi = list.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (parseFloat(list[mid].getAttribute("data-start")) <= t + 0.05) { lo = mid + 1; }
      else { hi = mid; }
    }
    return lo ? list[lo - 1] : null;
  }
  function inView(el) {
    var r = el.getBoundingClientRect();
    return r.bottom > 0 && r.top < window.innerHeight && el.offsetParent !== null;
  }
  var sections = document.querySelectorAll("section.episode");
  Array.prototype.forEach.call(sections, function (section) {
    var audio = section.querySelector("audio");
    var marks = section.querySelectorAll(".mark");
    var cues = section.querySelectorAll(".cue");
    section.addEventListener("click", function (event) {
      var el = event.target.closest("[data-start]");
      if (!el || !audio) { return; }
      event.preventDefault();
      audio.currentTime = parseFloat(el.getAttribute("data-start"));
      var playing = audio.play();
      if (playing && playing.catch) { playing.catch(function () {}); }
    });
    if (!audio) { return; }
    var lastMark = null, lastCue = null;
    var view = section.querySelector("details.transcript");
    if (view) {
      // opened while it plays: the sentence being read is shown at once
      view.addEventListener("toggle", function () {
        if (view.open && lastCue && !inView(lastCue)) {
          lastCue.scrollIntoView({block: "center"});
        }
      });
    }
    audio.addEventListener("timeupdate", function () {
      var mark = current(marks, audio.currentTime);
      if (mark !== lastMark) {
        if (lastMark) { lastMark.classList.remove("now"); }
        if (mark) { mark.classList.add("now"); }
        lastMark = mark;
      }
      var cue = current(cues, audio.currentTime);
      if (cue !== lastCue) {
        // the view follows the reading while the reader follows it (the sentence before
        // was in view), and leaves alone a reader who scrolled elsewhere
        var follow = lastCue === null || lastCue.offsetParent === null || inView(lastCue);
        if (lastCue) { lastCue.classList.remove("now"); }
        if (cue) {
          cue.classList.add("now");
          if (follow && !inView(cue) && cue.offsetParent !== null) {
            cue.scrollIntoView({block: "center"});
          }
        }
        lastCue = cue;
      }
    });
  });
  var sub = document.getElementById("feed-url");
  if (sub && /^https?:$/.test(location.protocol)) {
    // served: the address to paste into a podcast app, shown and linked in full
    var feed = new URL(sub.getAttribute("data-href"), location.href).href;
    sub.textContent = feed;
    sub.parentNode.setAttribute("href", feed);
  }
})();
"""


def render_page(
    episodes: Sequence[Episode],
    *,
    show: Show,
    out_dir: Path,
    audiobook: Audiobook | None = None,
    readalong: ReadAlong | None = None,
) -> str:
    """The page's HTML. Every text is escaped; every URL is relative to output/."""
    ordered = sorted(episodes, key=lambda e: e.number)
    cover = out_dir / show.cover.name
    cover_html = (
        f'<img src="{_href(cover, out_dir)}" alt="Cover of {_e(show.title)}" '
        f'width="1400" height="1400">'
        if cover.is_file()
        else ""
    )
    total = sum(ep.seconds for ep in ordered)
    body = "\n".join(_episode_html(ep, out_dir) for ep in ordered)
    if readalong is not None:
        body = _readalong_html(readalong, out_dir) + "\n" + body
    if audiobook is not None:
        body = _audiobook_html(audiobook, out_dir) + "\n" + body
    feed = _e(FEED_FILE)
    count = f"{len(ordered)} episode{'s' if len(ordered) != 1 else ''}, {clock(total)}"
    # the work's own year, as podcast.yaml or the book gives it; none is guessed
    year = f'<span class="year">({show.year})</span>' if show.year is not None else ""
    named = " ".join(p for p in (_e(show.author or ""), year) if p)
    byline = f'<p class="author">{named}</p>' if named else ""
    return f"""<!DOCTYPE html>
<html lang="{_e(show.language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(show.title)}</title>
<link rel="icon" href="data:,">
<link rel="alternate" type="application/rss+xml" title="{_e(show.title)}" href="{feed}">
<style>{_CSS}</style>
</head>
<body>
<header>
{cover_html}
<div>
<h1>{_e(show.title)}</h1>
{byline}
{_paragraphs(show.description)}
<p class="meta">{count}</p>
<p class="subscribe">Listen in your podcast app: add the feed
<a href="{feed}" type="application/rss+xml"><code id="feed-url" data-href="{feed}">{feed}</code></a>
</p>
</div>
</header>
<main>
{body}
</main>
<script>{_JS}</script>
</body>
</html>
"""


def write_page(
    episodes: Sequence[Episode],
    *,
    show: Show,
    out_dir: Path,
    audiobook: Audiobook | None = None,
    readalong: ReadAlong | None = None,
) -> Path:
    """Write out_dir/index.html atomically and return its path."""
    target = out_dir / PAGE_FILE
    page = render_page(
        episodes, show=show, out_dir=out_dir, audiobook=audiobook, readalong=readalong
    )
    write_atomic(target, page.encode("utf-8"))
    return target


__all__ = ["Cue", "Mark", "clock", "read_chapters", "read_vtt", "write_page"]
