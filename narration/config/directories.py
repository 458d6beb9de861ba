"""What podcast directories (Apple Podcasts, Spotify, Podcast Index) accept in a show's
settings: checked with podcast.yaml, so a bad category or address stops a build before
anything is written, and again by the feed as it writes them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from narration.errors import Problem, closest

if TYPE_CHECKING:
    from narration.config.schema import PodcastConfig

#: Apple Podcasts categories and their subcategories (podcasters.apple.com support 1691).
APPLE_CATEGORIES: dict[str, tuple[str, ...]] = {
    "Arts": ("Books", "Design", "Fashion & Beauty", "Food", "Performing Arts", "Visual Arts"),
    "Business": (
        "Careers",
        "Entrepreneurship",
        "Investing",
        "Management",
        "Marketing",
        "Non-Profit",
    ),
    "Comedy": ("Comedy Interviews", "Improv", "Stand-Up"),
    "Education": ("Courses", "How To", "Language Learning", "Self-Improvement"),
    "Fiction": ("Comedy Fiction", "Drama", "Science Fiction"),
    "Government": (),
    "History": (),
    "Health & Fitness": (
        "Alternative Health",
        "Fitness",
        "Medicine",
        "Mental Health",
        "Nutrition",
        "Sexuality",
    ),
    "Kids & Family": ("Education for Kids", "Parenting", "Pets & Animals", "Stories for Kids"),
    "Leisure": (
        "Animation & Manga",
        "Automotive",
        "Aviation",
        "Crafts",
        "Games",
        "Hobbies",
        "Home & Garden",
        "Video Games",
    ),
    "Music": ("Music Commentary", "Music History", "Music Interviews"),
    "News": (
        "Business News",
        "Daily News",
        "Entertainment News",
        "News Commentary",
        "Politics",
        "Sports News",
        "Tech News",
    ),
    "Religion & Spirituality": (
        "Buddhism",
        "Christianity",
        "Hinduism",
        "Islam",
        "Judaism",
        "Religion",
        "Spirituality",
    ),
    "Science": (
        "Astronomy",
        "Chemistry",
        "Earth Sciences",
        "Life Sciences",
        "Mathematics",
        "Natural Sciences",
        "Nature",
        "Physics",
        "Social Sciences",
    ),
    "Society & Culture": (
        "Documentary",
        "Personal Journals",
        "Philosophy",
        "Places & Travel",
        "Relationships",
    ),
    "Sports": (
        "Baseball",
        "Basketball",
        "Cricket",
        "Fantasy Sports",
        "Football",
        "Golf",
        "Hockey",
        "Rugby",
        "Running",
        "Soccer",
        "Swimming",
        "Tennis",
        "Volleyball",
        "Wilderness",
        "Wrestling",
    ),
    "Technology": (),
    "True Crime": (),
    "TV & Film": ("After Shows", "Film History", "Film Interviews", "Film Reviews", "TV Reviews"),
}

_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")


def check_podcast(
    podcast: PodcastConfig, path: Path, lines: dict[tuple[str | int, ...], int]
) -> list[Problem]:
    """What in podcast.yaml a podcast directory would refuse, found before anything is built.

    load_podcast calls this, so a bad category or e-mail address stops a build before
    output/ is touched; write_feed checks again and raises ConfigError. `lines` maps
    podcast.yaml's keys to their lines.
    """
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        problems.append(Problem(path, lines.get((key,)), f"{key}: {message}"))

    category = (podcast.category or "").strip()
    if category not in APPLE_CATEGORIES:
        hint = closest(category, APPLE_CATEGORIES)
        problem(
            "category",
            f"'{category}' is not an Apple Podcasts category"
            + (f" (did you mean '{hint}'?)" if hint else f" ({', '.join(APPLE_CATEGORIES)})"),
        )
    elif podcast.subcategory is not None:
        sub = podcast.subcategory.strip()
        subs = APPLE_CATEGORIES[category]
        if sub not in subs:
            hint = closest(sub, subs)
            listed = ", ".join(subs) if subs else "none; remove subcategory"
            problem(
                "subcategory",
                f"'{sub}' is not a subcategory of {category}"
                + (f" (did you mean '{hint}'?)" if hint else f" (choose from: {listed})"),
            )
    if podcast.owner_email is not None and not _EMAIL.match(podcast.owner_email.strip()):
        problem("owner_email", f"'{podcast.owner_email}' is not an e-mail address")
    if podcast.link is not None and not is_http_url(podcast.link.strip()):
        problem("link", f"'{podcast.link}' is not an http(s) URL")
    if podcast.base_url is not None and not is_http_url(podcast.base_url):
        problem(
            "base_url",
            f"'{podcast.base_url}' is not an http(s) URL like https://example.org/book/",
        )
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", podcast.language.strip()):
        problem("language", f"'{podcast.language}' is not a language code like en or en-US")
    return problems


def is_http_url(url: str) -> bool:
    """An absolute http(s) URL with a host and no spaces (urlsplit raises on some bad ones)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1", an unclosed IPv6 literal
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and not any(c.isspace() for c in url)
    )
