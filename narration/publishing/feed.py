"""The podcast feed: output/feed.xml, and narrate.lock, what must never change once published.

Podcast apps de-duplicate episodes on their guid and sort them by date, so both must stay
fixed once a listener has subscribed. They are derived deterministically (two clean builds
give byte-identical files) and then remembered in the project's `narrate.lock`, which the
user commits like a lock file:

- `podcast:guid` is the UUIDv5 of the feed URL (Podcasting 2.0). It is written to the lock
  the first time the feed is built for a real address, and kept from then on even if the
  feed moves. A feed built for `narrate serve` on this machine (a loopback URL) does not
  fix it: it is computed afresh until the show is published somewhere.
- An episode's guid is the UUIDv5 of its chapter id under the podcast guid; its first
  pubDate is podcast.yaml's `published` date (default: the day of the project's first
  build, `first_build` in the lock, which is also the MP3s' recording year) plus one
  minute per episode number (in order, and none in the future when the show is published
  the day it is dated), and never earlier than a minute after the newest episode already
  in the lock. Both are written to the lock the first time the chapter is built and read
  from it after, so re-casting, fixing a typo or adding a seed changes no existing
  episode. A corrected title changes a chapter's id: a new id takes the guid and date of
  the gone chapter whose text it shares most (the lock keeps a fingerprint of each
  chapter's transcript), and is a new episode when it shares little with every gone one.

The feed is RSS 2.0 written by feedgen, with the `itunes`, `content` and Podcasting 2.0
namespaces. feedgen's own podcast extension is not used: it rejects `itunes:explicit`
`true`/`false` (the values Apple lists) and knows only Apple's category list before 2019
(no Arts > Books), so the `itunes:` and `podcast:` tags come from two small registered
extensions below.
"""

from __future__ import annotations

import html
import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from narration import fingerprint
from narration.config import PodcastConfig, line_index_of
from narration.config.directories import check_podcast
from narration.errors import ConfigError, InputError, OutputError
from narration.files import write_atomic
from narration.layout import FEED_FILE, PODCAST_FILE
from narration.model import Episode, Show

ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST_NS = "https://podcastindex.org/namespace/1.0"
#: Podcasting 2.0's namespace for podcast:guid (UUIDv5 of the feed URL).
PODCAST_GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")
#: The reproducible-builds convention for "now" (seconds since 1970): when set, the day a
#: project's first build records is this one's, not the clock's.
SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"
LOCK_VERSION = 1
_LOCK_NOTE = (
    "Written by narrate build: the podcast's guid and each episode's guid and first "
    "publication date, and a fingerprint of its text (to tell an edited chapter from a new "
    "one). Commit it: podcast apps rely on the guids and dates never changing."
)
_MAX_DESCRIPTION = 4000  # Apple: channel and item descriptions up to 4000 characters

# Characters XML 1.0 cannot carry at all (lxml refuses them): C0 controls but tab and
# newlines, lone surrogates, U+FFFE/U+FFFF.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


# --------------------------------------------------------------------------- text helpers


def xml_text(text: str | None) -> str:
    """Text as XML can carry it: invalid characters dropped, whitespace runs kept, trimmed."""
    return _XML_INVALID.sub("", text or "").strip()


def file_url(base_url: str, path: Path, out_dir: Path) -> str:
    """The absolute URL of a file in output/: base URL + its URL-quoted relative path."""
    try:
        rel = path.resolve().relative_to(out_dir.resolve())
    except ValueError:
        raise OutputError(f"{path}: not inside {out_dir}; cannot publish it") from None
    return base_url + quote(rel.as_posix())


def is_loopback_url(url: str) -> bool:
    """True for a URL on this machine only (what `narrate serve` answers by default)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def podcast_guid_for(feed_url: str) -> str:
    """Podcasting 2.0's podcast:guid: UUIDv5 of the feed URL, scheme and trailing '/' removed."""
    bare = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", feed_url.strip()).rstrip("/")
    return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, bare))


# --------------------------------------------------------------------------- narrate.lock


@dataclass(frozen=True)
class EpisodeLock:
    """What was published for one chapter: its guid and first publication date."""

    guid: str
    published: datetime
    #: what the chapter said when last built (fingerprint.sketch of its transcript), so an
    #: edited or retitled chapter is told from a new one; () in locks of older builds
    fingerprint: tuple[str, ...] = ()


@dataclass
class Lock:
    """narrate.lock: what must persist across builds for podcast apps to stay in step."""

    podcast_guid: str | None = None
    episodes: dict[str, EpisodeLock] = field(default_factory=dict)
    #: the day of the first build: the MP3s' recording year, and its episodes' date when
    #: podcast.yaml sets no `published` (None in locks of older narrates until their next
    #: build records that one's day)
    first_build: date | None = None

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "_note": _LOCK_NOTE,
            "version": LOCK_VERSION,
            "podcast_guid": self.podcast_guid,
            **({"first_build": self.first_build.isoformat()} if self.first_build else {}),
            "episodes": {
                cid: {"guid": e.guid, "published": _iso(e.published)}
                | ({"fingerprint": " ".join(e.fingerprint)} if e.fingerprint else {})
                for cid, e in self.episodes.items()
            },
        }
        return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_lock(path: Path) -> Lock:
    """Read narrate.lock; a missing file is an empty lock. Broken: InputError naming the file.

    The build can call this with the configuration check, so a broken lock stops it before
    output/ is touched.
    """
    if not path.is_file():
        return Lock()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read ({exc}); restore it from version control") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            path,
            f"not valid JSON ({exc.msg}); restore it from version control "
            "(deleting it gives episodes added later new publication dates)",
            line=exc.lineno,
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("episodes", {}), dict):
        raise InputError(path, "expected an object with 'podcast_guid' and 'episodes'")
    if data.get("version", LOCK_VERSION) != LOCK_VERSION:
        raise InputError(
            path, f"written by another version of narrate (version {data.get('version')!r})"
        )
    guid = data.get("podcast_guid")
    if guid is not None and not _is_uuid(guid):
        raise InputError(path, f"podcast_guid: '{guid}' is not a UUID")
    first = data.get("first_build")
    try:
        first_build = date.fromisoformat(first) if first is not None else None
    except (TypeError, ValueError):
        raise InputError(path, f"first_build: '{first}' is not a date like 2026-12-01") from None
    episodes: dict[str, EpisodeLock] = {}
    for cid, entry in data.get("episodes", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("guid"), str):
            raise InputError(path, f"episodes.{cid}: expected {{'guid': ..., 'published': ...}}")
        try:
            when = datetime.strptime(str(entry.get("published")), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise InputError(
                path,
                f"episodes.{cid}.published: '{entry.get('published')}' is not a date like "
                "2000-01-01T00:00:00Z",
            ) from None
        print_ = entry.get("fingerprint", "")
        if not isinstance(print_, str) or not re.fullmatch(r"(?:[0-9a-f]{16}(?: |$))*", print_):
            raise InputError(
                path, f"episodes.{cid}.fingerprint: expected 16-digit hex hashes, space separated"
            )
        episodes[str(cid)] = EpisodeLock(
            entry["guid"], when.replace(tzinfo=timezone.utc), tuple(print_.split())
        )
    return Lock(podcast_guid=guid, episodes=episodes, first_build=first_build)


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def today() -> date:
    """The UTC day now, or SOURCE_DATE_EPOCH's when it is set (reproducible builds)."""
    epoch = os.environ.get(SOURCE_DATE_EPOCH)
    if epoch is None or not epoch.strip():
        return datetime.now(timezone.utc).date()
    try:
        return datetime.fromtimestamp(int(epoch.strip()), timezone.utc).date()
    except (ValueError, OverflowError, OSError):
        raise InputError(
            f"${SOURCE_DATE_EPOCH}", f"'{epoch}' is not a count of seconds since 1970"
        ) from None


def first_build_day(lock: Lock, day: date | None = None) -> date:
    """The day of the project's first build: the lock's, else `day` (default today()), which
    the lock keeps from then on. The only place the clock is read, so a later build of the
    same inputs and lock gives the same bytes."""
    return lock.first_build or day or today()


#: Between the first publication dates of consecutive episodes.
EPISODE_STEP = timedelta(minutes=1)


@dataclass(frozen=True)
class LockEntry:
    """A chapter as the lock knows it: its id, its number, and its text's fingerprint."""

    chapter_id: str
    number: int
    fingerprint: tuple[str, ...]


def lock_entries(episodes: Sequence[Episode]) -> list[LockEntry]:
    """The episodes as the lock knows them, fingerprinted from their transcripts."""
    return [
        LockEntry(
            ep.chapter_id, ep.number, fingerprint.sketch(fingerprint.transcript_words(ep.vtt))
        )
        for ep in episodes
    ]


def update_lock(
    lock: Lock,
    episodes: Sequence[LockEntry],
    *,
    feed_url: str,
    published: date | None,
    today: date | None = None,
) -> tuple[Lock, str]:
    """The lock with every chapter given a guid and date; and the podcast guid to publish.

    New episodes are dated from podcast.yaml's `published`, else from the day of the
    project's first build, which the lock records (`today` when it has none, also in a lock
    of an older narrate that kept no such day: its episodes keep their dates). Given every
    chapter of the book at once (not only those published so far), the lock is the one the
    whole book gets, whatever order its episodes are finished in.
    """
    podcast_guid = lock.podcast_guid or podcast_guid_for(feed_url)
    keep_guid = lock.podcast_guid or (None if is_loopback_url(feed_url) else podcast_guid)
    first_build = first_build_day(lock, today)
    start = published or first_build
    base = datetime.combine(start, datetime.min.time(), timezone.utc)
    entries = dict(lock.episodes)
    latest = max((e.published for e in entries.values()), default=None)
    prints = {ep.chapter_id: ep.fingerprint for ep in episodes}
    # A chapter whose title was corrected gets a new id; so does one that was edited. Each
    # new id takes the guid and date of the lost chapter whose text it shares most, so
    # subscribers do not get it twice; one that shares little with every lost chapter is a
    # new episode, even when another was removed in the same build.
    current = {ep.chapter_id for ep in episodes}
    lost = sorted(
        (cid for cid in entries if cid not in current), key=lambda c: entries[c].published
    )
    new = [
        ep.chapter_id
        for ep in sorted(episodes, key=lambda e: e.number)
        if ep.chapter_id not in entries
    ]
    printed = [cid for cid in lost if entries[cid].fingerprint]
    found = fingerprint.match(
        [(cid, prints[cid]) for cid in new], [(cid, entries[cid].fingerprint) for cid in printed]
    )
    for new_id, old_id in found.items():
        entries[new_id] = entries.pop(old_id)
    # Lost chapters locked by a narrate that kept no fingerprints: as it did, by count.
    unprinted = [cid for cid in lost if cid not in printed]
    unmatched = [cid for cid in new if cid not in found]
    if unprinted and len(unprinted) == len(unmatched):
        for old_id, new_id in zip(unprinted, unmatched, strict=True):
            entries[new_id] = entries.pop(old_id)
    for ep in episodes:
        if ep.chapter_id in entries:
            entries[ep.chapter_id] = replace(
                entries[ep.chapter_id], fingerprint=prints[ep.chapter_id]
            )
    namespace = uuid.UUID(podcast_guid)
    for ep in sorted(episodes, key=lambda e: e.number):
        if ep.chapter_id in entries:
            continue
        when = base + EPISODE_STEP * max(ep.number - 1, 0)
        if latest is not None and when <= latest:
            when = latest + EPISODE_STEP
        entries[ep.chapter_id] = EpisodeLock(
            str(uuid.uuid5(namespace, ep.chapter_id)), when, prints[ep.chapter_id]
        )
        latest = when if latest is None else max(latest, when)
    return Lock(podcast_guid=keep_guid, episodes=entries, first_build=first_build), podcast_guid


# --------------------------------------------------------------------------- feedgen extensions


def _sub(parent: Any, ns: str, tag: str, value: str | None = None, **attrs: str) -> Any:
    """A namespaced child element with optional text and attributes."""
    el = etree.SubElement(parent, f"{{{ns}}}{tag}", attrs)
    if value is not None:
        el.text = value
    return el


class ChannelTags(BaseExtension):  # type: ignore[misc]
    """itunes: and podcast: tags of the channel, as Apple and Podcasting 2.0 define them."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def extend_ns(self) -> dict[str, str]:
        return {"itunes": ITUNES_NS, "podcast": PODCAST_NS}

    def extend_rss(self, feed: Any) -> Any:
        v = self.values
        channel = feed[0]
        if v["author"]:
            _sub(channel, ITUNES_NS, "author", v["author"])
        if v["owner_name"] or v.get("owner_email"):
            owner = _sub(channel, ITUNES_NS, "owner")
            if v["owner_name"]:
                _sub(owner, ITUNES_NS, "name", v["owner_name"])
            if v.get("owner_email"):
                _sub(owner, ITUNES_NS, "email", v["owner_email"])
        _sub(channel, ITUNES_NS, "image", href=v["image"])
        cat = _sub(channel, ITUNES_NS, "category", text=v["category"])
        if v.get("subcategory"):
            _sub(cat, ITUNES_NS, "category", text=v["subcategory"])
        _sub(channel, ITUNES_NS, "explicit", "true" if v["explicit"] else "false")
        _sub(channel, ITUNES_NS, "type", "serial")
        _sub(channel, PODCAST_NS, "guid", v["guid"])
        locked = {"owner": v["owner_email"]} if v.get("owner_email") else {}
        _sub(channel, PODCAST_NS, "locked", "yes" if v["locked"] else "no", **locked)
        return feed


class EpisodeTags(BaseEntryExtension):  # type: ignore[misc]
    """itunes: and podcast: tags of an item: number, duration, chapters and transcript."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def extend_ns(self) -> dict[str, str]:
        return {"itunes": ITUNES_NS, "podcast": PODCAST_NS}

    def extend_rss(self, item: Any) -> Any:
        v = self.values
        if v["author"]:
            _sub(item, ITUNES_NS, "author", v["author"])
        _sub(item, ITUNES_NS, "duration", str(v["duration"]))
        _sub(item, ITUNES_NS, "episode", str(v["episode"]))
        _sub(item, ITUNES_NS, "episodeType", "full")
        _sub(item, ITUNES_NS, "explicit", "true" if v["explicit"] else "false")
        _sub(item, PODCAST_NS, "chapters", url=v["chapters"], type="application/json+chapters")
        _sub(
            item,
            PODCAST_NS,
            "transcript",
            url=v["transcript"],
            type="text/vtt",
            language=v["language"],
            rel="captions",
        )
        return item


# --------------------------------------------------------------------------- the feed


def _clip(text: str, limit: int = _MAX_DESCRIPTION) -> str:
    """At most `limit` characters, cut at a word with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(None, 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip() + "…"


def description_text(text: str) -> str:
    """Text for <description>, right whether a reader takes it as HTML or as plain text.

    RSS readers mostly take a description as HTML (Apple, feedparser), some as plain text
    (gPodder's podcastparser). Escaping only what HTML would misread (< > and an & that
    starts an entity) keeps "Bread & Roses" intact in both and "<speak>" visible in HTML.
    """
    text = re.sub(r"&(?=#?[A-Za-z0-9]+;)", "&amp;", text)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _paragraphs_html(text: str) -> str:
    """Plain text as escaped HTML paragraphs, for content:encoded."""
    paras = [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]
    return "".join(f"<p>{html.escape(p)}</p>" for p in paras)


def _checked_file(path: Path, what: str) -> int:
    """The file's size; OutputError if it is not there (a feed never names a missing file)."""
    try:
        st = path.stat()
    except OSError:
        raise OutputError(f"{path}: the episode's {what} is missing; build again") from None
    return st.st_size


def render_feed(
    episodes: Sequence[Episode],
    *,
    show: Show,
    podcast: PodcastConfig,
    out_dir: Path,
    base_url: str,
    lock: Lock,
    podcast_guid: str,
) -> bytes:
    """The feed's bytes: RSS 2.0 with itunes, content and podcast namespaces. Writes nothing."""
    if not base_url.endswith("/"):
        base_url += "/"
    title = xml_text(show.title) or "Untitled"
    author = xml_text(show.author)  # "" when nobody names one: no itunes:author then
    description = description_text(_clip(xml_text(show.description) or title))
    feed_url = base_url + FEED_FILE
    page_url = xml_text(podcast.link) or base_url
    language = (
        show.language.strip() or podcast.language
    )  # the show's: podcast.yaml's, else the book's

    fg = FeedGenerator()
    fg.register_extension("narrate_channel", ChannelTags, EpisodeTags, atom=False, rss=True)
    fg.title(title)
    fg.link(href=feed_url, rel="self", type="application/rss+xml")
    fg.link(href=page_url, rel="alternate")  # feedgen takes the last link for RSS <link>
    fg.description(description)
    fg.language(language)
    fg.generator("narrate")
    cover_url = file_url(base_url, out_dir / show.cover.name, out_dir)
    fg.image(url=cover_url, title=title, link=page_url)
    fg.narrate_channel.values = {
        "author": author,
        # itunes:owner is the show's contact (Apple: recommended, not required): only the one
        # podcast.yaml gives, never the book's author, who may have died a century ago
        "owner_name": xml_text(podcast.owner_name),
        "owner_email": xml_text(podcast.owner_email),
        "image": cover_url,
        "category": podcast.category.strip(),
        "subcategory": (podcast.subcategory or "").strip(),
        "explicit": podcast.explicit,
        "guid": podcast_guid,
        "locked": podcast.locked,
    }

    ordered = sorted(episodes, key=lambda e: e.number)
    seen: set[str] = set()
    dates = []
    for ep in ordered:
        if ep.chapter_id in seen:
            raise OutputError(f"{ep.mp3}: two episodes for chapter '{ep.chapter_id}'")
        seen.add(ep.chapter_id)
        size = _checked_file(ep.mp3, "MP3")
        _checked_file(ep.vtt, "transcript")
        _checked_file(ep.chapters_json, "chapters file")
        published = lock.episodes[ep.chapter_id]
        dates.append(published.published)
        ep_title = xml_text(ep.title) or f"Chapter {ep.number}"
        text = xml_text(ep.description) or ep_title
        entry = fg.add_entry(order="append")
        entry.title(ep_title)
        entry.link(href=f"{page_url}#ep-{quote(ep.chapter_id)}")
        entry.description(description_text(_clip(text)))
        entry.content(_paragraphs_html(_clip(text)))
        entry.guid(published.guid, permalink=False)
        entry.pubDate(published.published)
        entry.enclosure(file_url(base_url, ep.mp3, out_dir), str(size), "audio/mpeg")
        entry.narrate_channel.values = {
            "author": xml_text(ep.author) or author,
            "duration": max(1, round(ep.seconds)),
            "episode": ep.number,
            "explicit": podcast.explicit,
            "chapters": file_url(base_url, ep.chapters_json, out_dir),
            "transcript": file_url(base_url, ep.vtt, out_dir),
            "language": language,
        }
    # the newest episode's date, never the wall clock: same inputs, same bytes
    newest = max(dates, default=None) or datetime.combine(
        podcast.published or first_build_day(lock), datetime.min.time(), timezone.utc
    )
    fg.lastBuildDate(newest)
    data: bytes = fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return data


def write_feed(
    episodes: Sequence[Episode],
    *,
    show: Show,
    podcast: PodcastConfig,
    out_dir: Path,
    base_url: str,
    lock_path: Path,
    today: date | None = None,
    chapters: Sequence[LockEntry] | None = None,
) -> Path:
    """Write out_dir/feed.xml (and narrate.lock when it gains entries); return the feed's path.

    Episode files are published at base_url + their URL-quoted names. The lock is written
    before the feed, so a feed on disk never carries a guid the lock does not remember.
    `chapters`, every chapter of the book, gives the lock its entries when the feed lists
    only the episodes finished so far (default: the episodes, fingerprinted from their
    transcripts).
    """
    podcast_file = lock_path.parent / PODCAST_FILE
    problems = check_podcast(podcast, podcast_file, line_index_of(podcast_file))
    if problems:
        raise ConfigError(problems)
    if not base_url.endswith("/"):
        base_url += "/"
    lock = load_lock(lock_path)
    new_lock, podcast_guid = update_lock(
        lock,
        lock_entries(episodes) if chapters is None else chapters,
        feed_url=base_url + FEED_FILE,
        published=podcast.published,
        today=today,
    )
    data = render_feed(
        episodes,
        show=show,
        podcast=podcast,
        out_dir=out_dir,
        base_url=base_url,
        lock=new_lock,
        podcast_guid=podcast_guid,
    )
    write_atomic(lock_path, new_lock.to_json())
    target = out_dir / FEED_FILE
    write_atomic(target, data)
    return target


__all__ = [
    "EpisodeLock",
    "Lock",
    "LockEntry",
    "file_url",
    "first_build_day",
    "is_loopback_url",
    "load_lock",
    "lock_entries",
    "podcast_guid_for",
    "render_feed",
    "today",
    "update_lock",
    "write_feed",
]
