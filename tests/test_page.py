"""The show page: static, self-contained, escaped; and working in a real headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import mutagen.mp3
import pytest

from narration.publishing.page import clock, read_chapters, read_vtt, write_page

from .support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SENTENCES,
    TRICKY_AUTHOR,
    TRICKY_TITLE,
    VOICES,
    ChapterSpec,
    build_podcast,
    start_server,
    stop,
)


class _Refs(HTMLParser):
    """Every URL the page refers to (src, href), and every tag name."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append(value)


SPECS = (
    ChapterSpec("first", TRICKY_TITLE, (0, 1, 2)),
    ChapterSpec("second", "Second <script>alert(1)</script>", (3, 1)),
)


def test_page_is_self_contained_and_links_only_files_in_output(
    tmp_path: Path,
    speech: list[bytes],
) -> None:
    episodes, _, _, out = build_podcast(tmp_path, speech, SPECS)
    text = (out / "index.html").read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(text)
    assert "script" in parser.tags and "audio" in parser.tags
    for ref in parser.refs:
        if ref.startswith(("#", "data:")):
            continue
        assert "://" not in ref and not ref.startswith("/"), ref  # relative: file:// and http
        assert (out / html.unescape(ref).split("#")[0]).is_file(), ref
    for ep in episodes:
        assert f'src="{ep.mp3.name}"' in text
    assert not re.search(r"<(link|script)[^>]+(src|href)=\"(https?:)?//", text)


def test_page_escapes_every_text(tmp_path: Path, speech: list[bytes]) -> None:
    _, _, _, out = build_podcast(tmp_path, speech, SPECS)
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in text
    assert "Second &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert html.escape(TRICKY_TITLE) in text and html.escape(TRICKY_AUTHOR) in text
    assert "<the>" not in text and "<Serge>" not in text
    assert text.count("<script>") == 1  # only the page's own


def test_chapters_and_transcript_are_inlined_from_the_sidecar_files(
    tmp_path: Path,
    speech: list[bytes],
) -> None:
    episodes, _, _, out = build_podcast(tmp_path, speech, SPECS)
    text = (out / "index.html").read_text(encoding="utf-8")
    for ep in episodes:
        section = text[text.index(f'id="ep-{ep.chapter_id}"') :]
        section = section[: section.index("</section>")]
        starts = [c["startTime"] for c in json.loads(ep.chapters_json.read_text())["chapters"]]
        marks = [float(s) for s in re.findall(r'class="mark" data-start="([\d.]+)"', section)]
        assert marks == pytest.approx(starts, abs=0.001)
        cues = read_vtt(ep.vtt)
        assert len(cues) == len(starts)
        for cue in cues:
            assert f'<span class="who">{html.escape(cue.speaker or "")}:</span>' in section
            assert html.escape(cue.text) in section


def test_read_vtt_takes_speakers_entities_ids_and_notes(tmp_path: Path) -> None:
    vtt = tmp_path / "t.vtt"
    vtt.write_text(
        "\ufeffWEBVTT - a title\n\nNOTE made by hand\n--> not a cue\n\n"
        "intro\n00:00.500 --> 00:02.000 align:start\n<v.loud Anna K>Bread &amp; <b>roses</b> &lt;3\n\n"
        "1:02:03.250 --> 1:02:04.000\nno speaker\nsecond line\n",
        encoding="utf-8",
    )
    cues = read_vtt(vtt)
    assert [(c.start, c.end, c.speaker, c.text) for c in cues] == [
        (0.5, 2.0, "Anna K", "Bread & roses <3"),
        (3723.25, 3724.0, None, "no speaker second line"),
    ]
    chapters = tmp_path / "c.json"
    chapters.write_text(
        json.dumps(
            {
                "version": "1.2.0",
                "chapters": [
                    {"startTime": 5, "title": "B"},
                    {"startTime": 0, "title": "A"},
                    {"startTime": 7, "title": "hidden", "toc": False},
                ],
            }
        )
    )
    assert [(m.start, m.title) for m in read_chapters(chapters)] == [(0.0, "A"), (5.0, "B")]
    assert (clock(0), clock(59.6), clock(60), clock(3723.2)) == ("0:00", "0:59", "1:00", "1:02:03")


# --------------------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"no browser at {CHROMIUM}: the show page test needs Debian's chromium "
            "(CI's .ci/run installs it: apt-get install chromium)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _check_in_browser(browser: object, url: str, episodes: list, shot: Path | None) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    # a seek makes the player cancel its own request for the MP3 (ERR_ABORTED): not a fault
    page.on(
        "requestfailed",
        lambda r: (
            None if r.failure == "net::ERR_ABORTED" else problems.append(f"{r.url} {r.failure}")
        ),
    )
    page.on(
        "response", lambda r: problems.append(f"{r.url} {r.status}") if r.status >= 400 else None
    )
    page.goto(url)
    page.wait_for_function(
        "Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1)",
        timeout=15_000,
    )
    durations = page.evaluate("Array.from(document.querySelectorAll('audio')).map(a => a.duration)")
    for got, ep in zip(durations, episodes, strict=True):
        want = mutagen.mp3.MP3(ep.mp3).info.length
        assert abs(got - want) < 0.1, (ep.mp3.name, got, want)

    # clicking a chapter seeks its player there
    ep = episodes[0]
    starts = [c["startTime"] for c in json.loads(ep.chapters_json.read_text())["chapters"]]
    section = page.locator(f"#ep-{ep.chapter_id}")
    section.locator(".mark").nth(2).click()
    at = page.evaluate(f"document.querySelector('#ep-{ep.chapter_id} audio').currentTime")
    assert starts[2] - 0.01 <= at < starts[2] + 0.5, (at, starts[2])
    # and so does a transcript time, in another episode
    other = episodes[1]
    cues = read_vtt(other.vtt)
    target = page.locator(f"#ep-{other.chapter_id}")
    target.locator("summary").click()
    target.locator(".readalong .cue").nth(1).click()
    at = page.evaluate(f"document.querySelector('#ep-{other.chapter_id} audio').currentTime")
    assert cues[1].start - 0.01 <= at < cues[1].start + 0.5, (at, cues[1].start)
    page.evaluate("document.querySelectorAll('audio').forEach(a => a.pause())")
    if shot is not None:
        page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert problems == []


def test_page_in_chromium_from_the_server(
    browser: object,
    tmp_path: Path,
    speech: list[bytes],
) -> None:
    episodes, _, _, out = build_podcast(tmp_path, speech, SPECS)
    proc, printed = start_server(out)
    try:
        base = re.search(r"http://\S+/", printed[0]).group(0)  # type: ignore[union-attr]
        shot = Path(os.environ["NARRATE_PAGE_SHOT"]) if "NARRATE_PAGE_SHOT" in os.environ else None
        _check_in_browser(browser, base, episodes, shot)
    finally:
        stop(proc)


def test_page_at_phone_width_links_the_whole_feed_url_on_one_line(
    browser: object,
    tmp_path: Path,
    speech: list[bytes],
) -> None:
    """Served, the feed's address is absolute (to paste into a podcast app), and at 390 px
    it is not broken in the middle."""
    _, _, _, out = build_podcast(tmp_path, speech, SPECS)
    proc, printed = start_server(out)
    try:
        base = re.search(r"http://\S+/", printed[0]).group(0)  # type: ignore[union-attr]
        page = browser.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
        page.goto(base)
        link = page.locator(".subscribe a")
        assert link.get_attribute("href") == base + "feed.xml"
        assert page.locator("#feed-url").inner_text() == base + "feed.xml"
        lines = page.evaluate("document.getElementById('feed-url').getClientRects().length")
        assert lines == 1, f"the feed URL is split over {lines} lines at 390 px"
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 390, f"the page is {wide} px wide at a 390 px viewport"
        page.close()
    finally:
        stop(proc)


def test_page_in_chromium_from_disk(
    browser: object,
    tmp_path: Path,
    speech: list[bytes],
) -> None:
    episodes, _, _, out = build_podcast(tmp_path, speech, SPECS)
    _check_in_browser(browser, (out / "index.html").as_uri(), episodes, None)


def test_write_page_is_atomic_and_skips_unchanged(tmp_path: Path, speech: list[bytes]) -> None:
    episodes, show, _, out = build_podcast(tmp_path, speech, SPECS)
    page = out / "index.html"
    before = page.stat().st_mtime_ns
    assert write_page(episodes, show=show, out_dir=out) == page
    assert page.stat().st_mtime_ns == before
    assert not [p for p in out.iterdir() if p.name.startswith(".index.html")]
    assert SENTENCES[0] in html.unescape(page.read_text(encoding="utf-8"))
    assert VOICES[1] in page.read_text(encoding="utf-8")
