"""Chapters published as they finish: real builds (espeak-ng) in a subprocess, watched
while they run, killed half-way, and resumed; the feed read by feedparser each time."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import feedparser
import mutagen.mp3
import pytest

from .support import narrate_argv, narrate_env

NOVEL = Path(__file__).resolve().parent / "data" / "news-from-nowhere.txt"
CHAPTERS = 4
LAST_LONG = (3, 6, 6, 70)


def novel_book(root: Path, sizes: tuple[int, ...] = (4, 14, 14, 14)) -> Path:
    """A book of the shared novel's paragraphs, in chapters of `sizes` paragraphs."""
    text = NOVEL.read_text(encoding="utf-8")
    body = text[text.index("CHAPTER II: A MORNING BATH") :]
    paragraphs = [
        " ".join(p.split())
        for p in re.split(r"\n\s*\n", body)
        if len(p.split()) > 25 and not p.lstrip().startswith("CHAPTER")
    ]
    chapters, at = [], 0
    for n, size in enumerate(sizes, 1):
        chapters.append(f"CHAPTER {n}: PART {n}\n\n" + "\n\n".join(paragraphs[at : at + size]))
        at += size
    (root / "seeds").mkdir(parents=True)
    (root / "seeds" / "nowhere.txt").write_text(
        "Title: Nowhere\nAuthor: William Morris\n\n" + "\n\n\n".join(chapters) + "\n"
    )
    (root / "voices.yaml").write_text(
        "voices:\n  narrator:\n    label: Narrator\n    voice: gmw/en-us\n    rate: 190\n"
        "default: narrator\n"
    )
    return root


def start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        narrate_argv("build", "-p", str(root), *args),
        env=narrate_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def items(out: Path) -> dict[str, dict]:
    """The feed's episodes by guid, each checked against its file, as a client reads them."""
    for _ in range(100):  # while a build runs, a chapter's new MP3 precedes its feed item
        try:
            return _items(out)
        except AssertionError:
            time.sleep(0.05)
    return _items(out)


def _items(out: Path) -> dict[str, dict]:
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert not feed.bozo, feed.bozo_exception
    found = {}
    for entry in feed.entries:
        (enclosure,) = entry.enclosures
        mp3 = out / enclosure.href.rsplit("/", 1)[-1]
        assert int(enclosure.length) == mp3.stat().st_size, mp3.name
        assert mutagen.mp3.MP3(mp3).info.length > 1
        found[entry.id] = {"title": entry.title, "mp3": mp3.name, "length": int(enclosure.length)}
    return found


def wait_for_episodes(proc: subprocess.Popen[str], out: Path, count: int) -> dict[str, dict]:
    """Poll while the build runs until the feed lists `count` episodes of this build."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the build ended first: {proc.stdout.read()}"  # type: ignore[union-attr]
        if (out / "feed.xml").exists():
            found = items(out)
            if len(found) >= count:
                return found
        time.sleep(0.05)
    raise AssertionError("no episode published in 5 minutes")


def cached_clips(root: Path) -> int:
    return sum(1 for _ in (root / ".narrate" / "cache" / "clips").rglob("*.wav"))


def digests(out: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.iterdir())
        if p.is_file() and p.name != "build.json"
    }


def test_the_first_chapter_is_published_while_the_rest_render_and_a_kill_keeps_it(
    tmp_path: Path,
) -> None:
    # a long last chapter: its clips are still rendering when chapter 1 is out, whatever
    # the machine's speed (espeak-ng renders the whole of a small book in seconds)
    root = novel_book(tmp_path / "book", LAST_LONG)
    out = root / "output"
    proc = start(root)
    try:
        first = wait_for_episodes(proc, out, 1)
        clips_then = cached_clips(root)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    # published before the book's last clips were rendered, and still there, valid, after
    # the kill: the episode, its files, the page
    assert 1 <= len(first) < CHAPTERS
    assert "01-chapter-1-part-1.mp3" in {i["mp3"] for i in first.values()}
    assert items(out) == first
    assert (out / "01-chapter-1-part-1.vtt").is_file() and (out / "index.html").is_file()
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "01-chapter-1-part-1.mp3" in page and "04-chapter-4-part-4.mp3" not in page

    # the build goes on where it stopped, and ends as an uninterrupted build of the book
    done = subprocess.run(
        narrate_argv("build", "-q", "-p", str(root)), env=narrate_env(), capture_output=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert cached_clips(root) > clips_then
    whole = novel_book(tmp_path / "whole", LAST_LONG)
    once = subprocess.run(
        narrate_argv("build", "-q", "-p", str(whole)), env=narrate_env(), capture_output=True
    )
    assert once.returncode == 0, once.stdout + once.stderr
    assert digests(out) == digests(whole / "output")
    assert (root / "narrate.lock").read_bytes() == (whole / "narrate.lock").read_bytes()
    final = items(out)
    assert len(final) == CHAPTERS
    assert {g: i for g, i in final.items() if i["mp3"] == "01-chapter-1-part-1.mp3"} == first


def test_a_rebuild_killed_half_way_keeps_every_previous_episode(tmp_path: Path) -> None:
    root = novel_book(tmp_path / "book")
    out = root / "output"
    built = subprocess.run(
        narrate_argv("build", "-q", "-p", str(root)), env=narrate_env(), capture_output=True
    )
    assert built.returncode == 0, built.stdout + built.stderr
    before = items(out)
    assert len(before) == CHAPTERS
    voices = root / "voices.yaml"
    voices.write_text(voices.read_text().replace("rate: 190", "rate: 175"))
    proc = start(root)
    try:
        # wait until one chapter is published anew, then kill
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            now = items(out)
            if now != before:
                break
            assert proc.poll() is None
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    after = items(out)
    # every chapter is still an episode, with its guid: the finished one anew, the others
    # as they were (their files untouched)
    assert set(after) == set(before)
    changed = [g for g in after if after[g] != before[g]]
    assert 1 <= len(changed) < CHAPTERS
    for guid in set(after) - set(changed):
        assert after[guid] == before[guid]


def two_voice_book(root: Path) -> Path:
    """The novel's book, its dialogue read by a voice of its own."""
    novel_book(root)
    (root / "voices.yaml").write_text(
        "voices:\n  narrator:\n    label: Narrator\n    voice: gmw/en-us\n    rate: 190\n"
        "  talk:\n    label: Talk\n    voice: gmw/en-gb-x-rp\n    variant: f2\n    rate: 180\n"
        "default: narrator\nrules:\n  - kind: dialogue\n    voice: talk\n"
    )
    return root


def report(root: Path) -> dict:
    return json.loads((root / "output" / "build.json").read_text())


@pytest.mark.parametrize("edit", ["rate", "lexicon", "text"])
def test_a_rebuild_after_an_edit_ends_as_a_cold_build_of_the_edited_book(
    tmp_path: Path, edit: str
) -> None:
    """Rebuilt after a change, the book is byte for byte a cold build of the changed book,
    and only the pieces holding what changed were encoded again."""
    root = two_voice_book(tmp_path / "book")
    ok = subprocess.run(narrate_argv("build", "-q", "-p", str(root)), env=narrate_env())
    assert ok.returncode == 0

    def change(project: Path) -> None:
        voices = project / "voices.yaml"
        if edit == "rate":
            voices.write_text(voices.read_text().replace("rate: 180", "rate: 165"))
        elif edit == "lexicon":
            voices.write_text(voices.read_text() + "lexicon:\n  Thames: Tamesis\n")
        else:
            seed = project / "seeds" / "nowhere.txt"
            seed.write_text(
                seed.read_text().replace(
                    "CHAPTER 3: PART 3\n\n", "CHAPTER 3: PART 3\n\nA new first line.\n\n"
                )
            )

    change(root)
    again = subprocess.run(narrate_argv("build", "-q", "-p", str(root)), env=narrate_env())
    assert again.returncode == 0
    cold = two_voice_book(tmp_path / "cold")
    change(cold)
    shutil.copy(root / "narrate.lock", cold / "narrate.lock")
    once = subprocess.run(narrate_argv("build", "-q", "-p", str(cold)), env=narrate_env())
    assert once.returncode == 0
    assert digests(root / "output") == digests(cold / "output")

    # what was encoded again: counted by the build, and what the change can explain
    chapters = report(root)["chapters"]
    encoded = {c["id"]: (c["pieces_encoded"], c["pieces"]) for c in chapters if c["encoded"]}
    whole = {c["id"]: c["pieces"] for c in report(cold)["chapters"]}
    assert all(c["pieces_encoded"] == c["pieces"] for c in report(cold)["chapters"])
    assert {c: p for c, (_, p) in encoded.items()} == {c: whole[c] for c in encoded}
    if edit == "text":  # the edited chapter's first piece, and none of the others
        assert list(encoded) == ["chapter-3-part-3"]
        assert encoded["chapter-3-part-3"][0] <= 2 < encoded["chapter-3-part-3"][1]
        return
    # the pieces holding the dialogue (the voice) or the word (the lexicon), no others
    vtts = {p.stem: p.read_text() for p in (root / "output").glob("*.vtt")}
    assert encoded
    for pieces_encoded, pieces in encoded.values():
        assert 1 <= pieces_encoded < pieces
    assert sum(n for n, _ in encoded.values()) < sum(whole.values()) / 2
    if edit == "lexicon":
        holding = {stem.split("-", 1)[1] for stem, text in vtts.items() if "Thames" in text}
        assert set(encoded) == holding
