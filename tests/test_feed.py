"""The feed: read back by two independent parsers, checked against the real files, stable.

Test episodes are real: sentences spoken by espeak-ng (pyttsx3, in a subprocess), encoded
to MP3 with lameenc, with a WebVTT transcript and JSON chapters written beside them, by
tests/support.py's helpers (which test_page.py and test_serve.py use too); conftest's
`speech` renders the sentences once a session.
"""

from __future__ import annotations

import html
import io
import json
import os
import time
import uuid
import wave
from dataclasses import replace
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import mutagen.mp3
import podcastparser
import pytest
from lxml import etree

from narration.config import PodcastConfig
from narration.errors import ConfigError, InputError, OutputError
from narration.publishing.feed import (
    ITUNES_NS,
    PODCAST_NS,
    load_lock,
    podcast_guid_for,
    write_feed,
)
from narration.publishing.page import write_page

from .support import (
    DEFAULT_SPECS,
    LOOPBACK,
    SENTENCES,
    TRICKY_AUTHOR,
    TRICKY_TITLE,
    VOICES,
    ChapterSpec,
    build_podcast,
    make_show,
)

NS = {"itunes": ITUNES_NS, "podcast": PODCAST_NS, "atom": "http://www.w3.org/2005/Atom"}


def items_by_guid(feed_xml: Path) -> dict[str, dict[str, str]]:
    tree = etree.parse(str(feed_xml))
    return {
        item.findtext("guid"): {
            "title": item.findtext("title"),
            "pubDate": item.findtext("pubDate"),
            "episode": item.findtext("itunes:episode", namespaces=NS),
        }
        for item in tree.iterfind("channel/item")
    }


# --------------------------------------------------------------------------- tests


def test_feed_read_back_by_feedparser_matches_the_files(
    tmp_path: Path, speech: list[bytes]
) -> None:
    episodes, _, _, out = build_podcast(tmp_path, speech)
    parsed = feedparser.parse(str(out / "feed.xml"))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    feed = parsed.feed
    assert feed.title == TRICKY_TITLE
    # feedparser folds itunes:author and itunes:owner into one author; read the XML too
    tree = etree.parse(str(out / "feed.xml"))
    assert tree.findtext("channel/itunes:author", namespaces=NS) == TRICKY_AUTHOR
    assert feed.publisher_detail == {"name": "A & B", "email": "owner@example.org"}
    assert feed.link == LOOPBACK
    assert feed.language == "en"
    assert feed.image.href == LOOPBACK + "cover.jpg"
    assert feed.itunes_type == "serial"
    assert feed.podcast_guid == podcast_guid_for(LOOPBACK + "feed.xml")
    assert {t.term for t in feed.tags} == {"Arts", "Books"}
    # descriptions are HTML to feedparser (as to Apple): markup comes back escaped
    assert html.unescape(feed.subtitle).startswith(TRICKY_TITLE)
    assert "&lt;the&gt;" in feed.subtitle

    assert len(parsed.entries) == len(episodes)
    for entry, ep in zip(parsed.entries, episodes, strict=True):
        assert entry.title == ep.title
        assert entry.summary_detail.type == "text/html"
        assert html.unescape(entry.summary) == ep.description
        (enclosure,) = entry.enclosures
        assert enclosure.href == LOOPBACK + ep.mp3.name
        assert enclosure.type == "audio/mpeg"
        assert int(enclosure.length) == ep.mp3.stat().st_size == len(ep.mp3.read_bytes())
        assert int(entry.itunes_episode) == ep.number
        assert entry.itunes_episodetype == "full"
        audio = mutagen.mp3.MP3(ep.mp3)
        assert abs(int(entry.itunes_duration) - audio.info.length) <= 1.0
        assert entry.podcast_chapters == {
            "url": LOOPBACK + ep.chapters_json.name,
            "type": "application/json+chapters",
        }
        assert entry.podcast_transcript["url"] == LOOPBACK + ep.vtt.name
        assert entry.podcast_transcript["type"] == "text/vtt"
        assert uuid.UUID(entry.guid)
        first = load_lock(tmp_path / "narrate.lock").first_build  # no `published`: that day
        assert first is not None and entry.published_parsed[:3] == first.timetuple()[:3]


def test_feed_read_back_by_podcastparser(tmp_path: Path, speech: list[bytes]) -> None:
    episodes, _, _, out = build_podcast(tmp_path, speech)
    with open(out / "feed.xml", "rb") as fh:
        parsed = podcastparser.parse(LOOPBACK + "feed.xml", fh)
    assert parsed["title"] == TRICKY_TITLE
    assert parsed["itunes_author"] == TRICKY_AUTHOR
    assert parsed["itunes_owner"] == {"name": "A & B", "email": "owner@example.org"}
    assert parsed["cover_url"] == LOOPBACK + "cover.jpg"
    assert parsed["itunes_categories"] == [["Arts", "Books"]]
    assert parsed["explicit"] is False
    assert parsed["type"] == "serial"
    # podcastparser lists items newest first
    got = sorted(parsed["episodes"], key=lambda e: e["number"])
    assert [e["number"] for e in got] == [1, 2, 3]
    previous = 0
    for item, ep in zip(got, episodes, strict=True):
        assert item["title"] == ep.title
        assert item["type"] == "full"
        assert item["explicit"] is False
        assert item["enclosures"] == [
            {
                "url": LOOPBACK + ep.mp3.name,
                "file_size": ep.mp3.stat().st_size,
                "mime_type": "audio/mpeg",
            }
        ]
        assert abs(item["total_time"] - mutagen.mp3.MP3(ep.mp3).info.length) <= 1.0
        assert item["published"] > previous  # one episode a day, in listening order
        previous = item["published"]
        # plain text to podcastparser: the ampersand stays as written, markup is escaped
        assert item["description"] == ep.description.replace("<", "&lt;").replace(">", "&gt;")
        assert html.unescape(item["description_html"]) == "".join(
            f"<p>{line}</p>" for line in ep.description.split("\n")
        )


def test_channel_tags_are_exactly_what_apple_and_podcasting_2_list(
    tmp_path: Path, speech: list[bytes]
) -> None:
    _, _, _, out = build_podcast(
        tmp_path,
        speech,
        base_url="https://example.org/my book/",
        podcast=PodcastConfig(explicit=True, owner_email="me@example.org", locked=False),
    )
    tree = etree.parse(str(out / "feed.xml"))
    ch = tree.find("channel")
    assert ch.findtext("itunes:explicit", namespaces=NS) == "true"
    assert ch.find("itunes:image", NS).get("href") == "https://example.org/my book/cover.jpg"
    cat = ch.find("itunes:category", NS)
    assert cat.get("text") == "Arts" and cat.find("itunes:category", NS).get("text") == "Books"
    assert ch.findtext("podcast:locked", namespaces=NS) == "no"
    assert ch.find("podcast:locked", NS).get("owner") == "me@example.org"
    assert ch.findtext("podcast:guid", namespaces=NS) == str(
        uuid.uuid5(
            uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6"), "example.org/my book/feed.xml"
        )
    )
    assert ch.find("atom:link", NS).get("href") == "https://example.org/my book/feed.xml"
    for item in ch.iterfind("item"):
        url = item.find("enclosure").get("url")
        assert url.startswith("https://example.org/my book/") and " " not in url[28:]
        assert item.findtext("itunes:explicit", namespaces=NS) == "true"
        assert not any(ch.isdigit() for ch in item.findtext("title")[:2])  # no number in titles
    # the official namespace URI, not the old GitHub one podcastparser looks for
    assert tree.getroot().nsmap["podcast"] == "https://podcastindex.org/namespace/1.0"


def test_file_names_with_spaces_and_accents_are_url_quoted(
    tmp_path: Path, speech: list[bytes]
) -> None:
    specs = (ChapterSpec("ete", "Été", (0,), slug="01 été & co"),)
    episodes, _, _, out = build_podcast(tmp_path, speech, specs)
    enclosure = feedparser.parse(str(out / "feed.xml")).entries[0].enclosures[0]
    assert enclosure.href == LOOPBACK + "01%20%C3%A9t%C3%A9%20%26%20co.mp3"
    assert int(enclosure.length) == episodes[0].mp3.stat().st_size


def test_two_clean_builds_are_byte_identical_and_carry_no_wall_clock(
    tmp_path: Path, speech: list[bytes]
) -> None:
    build_podcast(tmp_path / "a", speech)
    time.sleep(1.1)  # a wall-clock timestamp anywhere would now differ
    build_podcast(tmp_path / "b", speech)
    for name in ("output/feed.xml", "narrate.lock", "output/index.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    tree = etree.parse(str(tmp_path / "a" / "output" / "feed.xml"))
    dates = [d.text for d in tree.iterfind("channel/item/pubDate")]
    assert tree.findtext("channel/lastBuildDate") == dates[-1]


def test_guids_and_dates_survive_recasting_typos_and_new_chapters(
    tmp_path: Path, speech: list[bytes]
) -> None:
    build_podcast(tmp_path, speech)
    before = items_by_guid(tmp_path / "output" / "feed.xml")
    lock_before = json.loads((tmp_path / "narrate.lock").read_text())

    # re-cast (other audio), fix a typo in a title, and add a chapter in the middle
    specs = (
        replace(DEFAULT_SPECS[0], clips=(1, 0)),
        ChapterSpec("new-appendix", "An appendix", (3,)),
        replace(DEFAULT_SPECS[1], title="Memoirs of a Revolutionary (fixed)"),
        DEFAULT_SPECS[2],
    )
    build_podcast(tmp_path, speech, specs)
    after = items_by_guid(tmp_path / "output" / "feed.xml")
    lock_after = json.loads((tmp_path / "narrate.lock").read_text())

    for guid, item in before.items():
        assert guid in after, f"guid of {item['title']} changed"
        assert after[guid]["pubDate"] == item["pubDate"]
    (new_guid,) = set(after) - set(before)
    assert after[new_guid]["title"] == "An appendix" and after[new_guid]["episode"] == "2"
    new_date = parsedate_to_datetime(after[new_guid]["pubDate"])
    assert all(new_date > parsedate_to_datetime(i["pubDate"]) for i in before.values())
    for cid, entry in lock_before["episodes"].items():  # the fingerprint follows the text
        kept = lock_after["episodes"][cid]
        assert (kept["guid"], kept["published"]) == (entry["guid"], entry["published"])
    assert lock_after["episodes"]["new-appendix"]["guid"] == new_guid

    # a chapter removed and later restored comes back as the same episode
    build_podcast(tmp_path, speech, DEFAULT_SPECS[:1])
    build_podcast(tmp_path, speech, specs)
    assert items_by_guid(tmp_path / "output" / "feed.xml") == after


def test_a_corrected_chapter_title_keeps_its_episode(tmp_path: Path, speech: list[bytes]) -> None:
    """A new title gives the chapter a new id; it is still the same episode to subscribers."""
    build_podcast(tmp_path, speech)
    before = items_by_guid(tmp_path / "output" / "feed.xml")
    renamed = replace(DEFAULT_SPECS[1], chapter_id="memoirs-of-a-revolutionary", title="Memoirs")
    build_podcast(tmp_path, speech, (DEFAULT_SPECS[0], renamed, DEFAULT_SPECS[2]))
    after = items_by_guid(tmp_path / "output" / "feed.xml")
    assert set(after) == set(before)
    moved = next(g for g, item in before.items() if item["title"] == "Memoirs of a Revolutionary")
    assert after[moved]["title"] == "Memoirs"
    assert after[moved]["pubDate"] == before[moved]["pubDate"]
    lock = json.loads((tmp_path / "narrate.lock").read_text())["episodes"]
    assert "memoirs" not in lock and lock["memoirs-of-a-revolutionary"]["guid"] == moved


def test_a_chapter_removed_and_another_added_in_one_build_is_a_new_episode(
    tmp_path: Path, speech: list[bytes]
) -> None:
    """One chapter out, another in: not a rename. The new one is new to subscribers."""
    build_podcast(tmp_path, speech)
    before = items_by_guid(tmp_path / "output" / "feed.xml")
    memoirs = next(g for g, item in before.items() if item["title"] == "Memoirs of a Revolutionary")
    added = ChapterSpec("appendix", "An appendix", (0,))
    build_podcast(tmp_path, speech, (DEFAULT_SPECS[0], added, DEFAULT_SPECS[2]))
    after = items_by_guid(tmp_path / "output" / "feed.xml")
    assert memoirs not in after
    (new_guid,) = set(after) - set(before)
    assert after[new_guid]["title"] == "An appendix"
    new_date = parsedate_to_datetime(after[new_guid]["pubDate"])
    assert all(new_date > parsedate_to_datetime(i["pubDate"]) for i in before.values())
    lock = json.loads((tmp_path / "narrate.lock").read_text())["episodes"]
    assert lock["memoirs"]["guid"] == memoirs  # kept: restoring the chapter restores it
    assert lock["appendix"]["guid"] == new_guid


def test_an_edited_and_retitled_chapter_keeps_its_episode(
    tmp_path: Path, speech: list[bytes]
) -> None:
    build_podcast(tmp_path, speech)
    before = items_by_guid(tmp_path / "output" / "feed.xml")
    memoirs = next(g for g, item in before.items() if item["title"] == "Memoirs of a Revolutionary")
    edited = ChapterSpec("memoirs-1963", "Memoirs, 1963", (2, 3, 1), author="Victor Serge")
    build_podcast(tmp_path, speech, (DEFAULT_SPECS[0], edited, DEFAULT_SPECS[2]))
    after = items_by_guid(tmp_path / "output" / "feed.xml")
    assert set(after) == set(before)
    assert after[memoirs]["title"] == "Memoirs, 1963"
    assert after[memoirs]["pubDate"] == before[memoirs]["pubDate"]


def test_a_lock_from_before_fingerprints_still_follows_a_rename(
    tmp_path: Path, speech: list[bytes]
) -> None:
    build_podcast(tmp_path, speech)
    path = tmp_path / "narrate.lock"
    lock = json.loads(path.read_text())
    for entry in lock["episodes"].values():
        del entry["fingerprint"]
    path.write_text(json.dumps(lock))
    before = items_by_guid(tmp_path / "output" / "feed.xml")
    renamed = replace(DEFAULT_SPECS[1], chapter_id="memoirs-of-a-revolutionary", title="Memoirs")
    build_podcast(tmp_path, speech, (DEFAULT_SPECS[0], renamed, DEFAULT_SPECS[2]))
    assert set(items_by_guid(tmp_path / "output" / "feed.xml")) == set(before)
    assert all(e["fingerprint"] for e in json.loads(path.read_text())["episodes"].values())


def test_without_a_published_date_the_first_builds_day_dates_the_show(
    tmp_path: Path, speech: list[bytes]
) -> None:
    """Not 1 January 2000: the day of the first build, kept in narrate.lock, so later builds
    of the same inputs, on other days, give the same feed."""
    build_podcast(tmp_path, speech, today=date(2026, 12, 1))
    lock = json.loads((tmp_path / "narrate.lock").read_text())
    assert lock["first_build"] == "2026-12-01"
    feed = (tmp_path / "output" / "feed.xml").read_bytes()
    items = items_by_guid(tmp_path / "output" / "feed.xml")
    dates = sorted(parsedate_to_datetime(i["pubDate"]) for i in items.values())
    assert dates[0] == datetime(2026, 12, 1, tzinfo=timezone.utc)
    build_podcast(tmp_path, speech, today=date(2027, 3, 9))
    assert (tmp_path / "output" / "feed.xml").read_bytes() == feed
    added = ChapterSpec("appendix", "An appendix", (0,))
    build_podcast(tmp_path, speech, (*DEFAULT_SPECS, added), today=date(2027, 3, 9))
    after = items_by_guid(tmp_path / "output" / "feed.xml")
    for guid, item in items.items():
        assert after[guid]["pubDate"] == item["pubDate"]
    assert json.loads((tmp_path / "narrate.lock").read_text())["first_build"] == "2026-12-01"


def test_a_lock_of_an_older_narrate_takes_its_first_build_day_once_and_keeps_it(
    tmp_path: Path, speech: list[bytes]
) -> None:
    """A lock with episodes but no first_build (written before narrate kept one) takes the
    day of its next build, once: its episodes keep their dates, later clocks change nothing."""
    build_podcast(tmp_path, speech, today=date(2026, 12, 1))
    path = tmp_path / "narrate.lock"
    older = json.loads(path.read_text())
    del older["first_build"]
    path.write_text(json.dumps(older))
    items = items_by_guid(tmp_path / "output" / "feed.xml")
    build_podcast(tmp_path, speech, today=date(2027, 3, 9))
    assert json.loads(path.read_text())["first_build"] == "2027-03-09"
    assert items_by_guid(tmp_path / "output" / "feed.xml") == items
    lock, feed = path.read_bytes(), (tmp_path / "output" / "feed.xml").read_bytes()
    build_podcast(tmp_path, speech, today=date(2031, 1, 1))
    assert path.read_bytes() == lock and (tmp_path / "output" / "feed.xml").read_bytes() == feed


def test_podcast_guid_is_fixed_once_published_and_kept_when_the_feed_moves(
    tmp_path: Path, speech: list[bytes]
) -> None:
    build_podcast(tmp_path, speech)  # only served on this machine: nothing fixed yet
    assert load_lock(tmp_path / "narrate.lock").podcast_guid is None
    first = "https://example.org/book/"
    build_podcast(tmp_path, speech, base_url=first)
    expected = str(
        uuid.uuid5(uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6"), "example.org/book/feed.xml")
    )
    assert load_lock(tmp_path / "narrate.lock").podcast_guid == expected
    build_podcast(tmp_path, speech, base_url="https://podcasts.example.net/")
    parsed = feedparser.parse(str(tmp_path / "output" / "feed.xml"))
    assert parsed.feed.podcast_guid == expected
    assert parsed.entries[0].enclosures[0].href.startswith("https://podcasts.example.net/")


def test_published_date_sets_the_first_episodes_dates(tmp_path: Path, speech: list[bytes]) -> None:
    from datetime import date

    build_podcast(tmp_path, speech, podcast=PodcastConfig(published=date(2024, 5, 1)))
    dates = [e.published for e in feedparser.parse(str(tmp_path / "output/feed.xml")).entries]
    assert dates == [
        "Wed, 01 May 2024 00:00:00 +0000",
        "Wed, 01 May 2024 00:01:00 +0000",
        "Wed, 01 May 2024 00:02:00 +0000",
    ]


def test_broken_lock_names_the_file_and_line_and_writes_nothing(
    tmp_path: Path, speech: list[bytes]
) -> None:
    episodes, show, podcast, out = build_podcast(tmp_path, speech)
    feed_before = (out / "feed.xml").read_bytes()
    lock = tmp_path / "narrate.lock"
    lock.write_text('{\n  "episodes": {\n<<<<<<< HEAD\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        write_feed(
            episodes, show=show, podcast=podcast, out_dir=out, base_url=LOOPBACK, lock_path=lock
        )
    assert "narrate.lock:3:" in str(err.value) and "not valid JSON" in str(err.value)
    assert (out / "feed.xml").read_bytes() == feed_before
    assert lock.read_text(encoding="utf-8").startswith('{\n  "episodes"')


def test_bad_category_is_a_config_error_with_a_suggestion(
    tmp_path: Path, speech: list[bytes]
) -> None:
    (tmp_path / "podcast.yaml").write_text("title: x\ncategory: Art\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        build_podcast(tmp_path, speech, podcast=PodcastConfig(category="Art"))
    assert "podcast.yaml:2: category: 'Art' is not an Apple Podcasts category" in str(err.value)
    assert "did you mean 'Arts'" in str(err.value)
    assert not (tmp_path / "output" / "feed.xml").exists()
    with pytest.raises(ConfigError, match="'Literature' is not a subcategory of Arts"):
        build_podcast(tmp_path, speech, podcast=PodcastConfig(subcategory="Literature"))


def test_missing_episode_file_refuses_the_feed(tmp_path: Path, speech: list[bytes]) -> None:
    episodes, show, podcast, out = build_podcast(tmp_path, speech)
    before = (out / "feed.xml").read_bytes()
    os.unlink(episodes[1].vtt)
    with pytest.raises(OutputError, match="transcript is missing"):
        write_feed(
            episodes,
            show=show,
            podcast=podcast,
            out_dir=out,
            base_url=LOOPBACK,
            lock_path=tmp_path / "narrate.lock",
        )
    assert (out / "feed.xml").read_bytes() == before


def test_control_characters_and_markup_in_text_still_give_a_valid_feed(
    tmp_path: Path, speech: list[bytes]
) -> None:
    specs = (ChapterSpec("odd", "Bell\x07 and <speak><break/></speak> ]]> \u202eRTL", (0,)),)
    _, _, _, out = build_podcast(tmp_path, speech, specs)
    raw = (out / "feed.xml").read_bytes()
    assert b"\x07" not in raw and b"<speak>" not in raw and b"]]>" not in raw
    entry = feedparser.parse(io.BytesIO(raw)).entries[0]
    assert entry.title == "Bell and <speak><break/></speak> ]]> \u202eRTL"


def test_a_chapter_from_assemble_is_published(tmp_path: Path, speech: list[bytes]) -> None:
    """The real assembly stage's MP3, VTT and chapters go into the feed and the page."""
    assemble = pytest.importorskip("narration.assembly")
    from narration.config import AudioConfig, PausesConfig
    from narration.model import CastChapter, CastSegment, Chapter, Clip, Line, Segment, Voice
    from narration.publishing.page import read_chapters, read_vtt

    out = tmp_path / "output"
    out.mkdir()
    show = make_show(out)
    segments, parts, clips = [], [], []
    for i, pcm in enumerate(speech[:3]):
        wav = tmp_path / f"clip{i}.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(22050)
            w.writeframes(pcm)
        seg = Segment(id=f"s{i}", kind="narration", text=SENTENCES[i], sentences=(SENTENCES[i],))
        voice = Voice(f"v{i}", VOICES[i], "gmw/en-us", 175, 50, 1.0)
        segments.append(seg)
        parts.append(
            CastSegment(
                id=seg.id,
                kind="narration",
                voice=voice,
                rule="default",
                lines=(Line(SENTENCES[i], SENTENCES[i]),),
                segment=seg,
            )
        )
        clips.append([Clip(f"k{i}", wav, len(pcm) // 2, 22050, True)])
    chapter = Chapter("workers", 1, TRICKY_TITLE, TRICKY_AUTHOR, "01.txt", tuple(segments))
    episode = assemble.assemble_chapter(
        CastChapter(chapter, tuple(parts)),
        clips,
        number=1,
        total=1,
        show=show,
        pauses=PausesConfig(),
        audio=AudioConfig(),
        out_dir=out,
        state_dir=out.with_name("state"),
    )
    write_feed(
        [episode],
        show=show,
        podcast=PodcastConfig(),
        out_dir=out,
        base_url=LOOPBACK,
        lock_path=tmp_path / "narrate.lock",
    )
    write_page([episode], show=show, out_dir=out)
    entry = feedparser.parse(str(out / "feed.xml")).entries[0]
    assert int(entry.enclosures[0].length) == episode.mp3.stat().st_size
    assert abs(int(entry.itunes_duration) - mutagen.mp3.MP3(episode.mp3).info.length) <= 1.0
    assert entry.podcast_transcript["url"] == LOOPBACK + episode.vtt.name
    cues = read_vtt(episode.vtt)
    assert [c.speaker for c in cues] == list(VOICES[:3])
    assert read_chapters(episode.chapters_json)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert all(html.escape(c.text) in page for c in cues)
