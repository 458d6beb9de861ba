"""Names in a book's text: the titles ("Mr.", "Lady", "Captain") and the genders they
give, the capitalised words that are never names, and the mentions of names in a
paragraph. A name is a run of capitalised words the book capitalises wherever it uses them
(so "Poor" opening a sentence is not one), with or without a title. No list of first
names."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from narration.segmenting.sentences import wordset

MALE_TITLES = frozenset(
    [
        "Mr",
        "Mister",
        "Sir",
        "Lord",
        "Monsieur",
        "Mons",
        "M",
        "Herr",
        "Signor",
        "Senor",
        "Señor",
        "Don",
        "Father",
        "Uncle",
        "Master",
        "Count",
        "Baron",
        "Prince",
        "King",
        "Duke",
        "Earl",
        "Marquis",
        "Brother",
        "Squire",
    ]
)


FEMALE_TITLES = frozenset(
    [
        "Mrs",
        "Miss",
        "Ms",
        "Mme",
        "Madame",
        "Mlle",
        "Mademoiselle",
        "Lady",
        "Dame",
        "Aunt",
        "Mistress",
        "Countess",
        "Baroness",
        "Princess",
        "Queen",
        "Duchess",
        "Frau",
        "Fraulein",
        "Fräulein",
        "Signora",
        "Signorina",
        "Senora",
        "Señora",
        "Donna",
        "Sister",
        "Mother",
        "Marchioness",
    ]
)


OTHER_TITLES = frozenset(
    [
        "Dr",
        "Doctor",
        "Captain",
        "Capt",
        "Colonel",
        "Col",
        "Major",
        "General",
        "Gen",
        "Professor",
        "Prof",
        "Rev",
        "Reverend",
        "Inspector",
        "Sergeant",
        "Sgt",
        "Lieutenant",
        "Lieut",
        "Lt",
        "Cousin",
        "Nurse",
        "Judge",
        "Admiral",
        "Corporal",
        "Private",
        "Saint",
        "St",
    ]
)


TITLES = MALE_TITLES | FEMALE_TITLES | OTHER_TITLES


TITLE_PATTERN = r"(?:" + "|".join(sorted(TITLES, key=len, reverse=True)) + r")\.?"


_WORD = r"[A-Z][a-zà-öø-ÿ]+(?:['’-](?![sS]\b)[A-Za-zà-öø-ÿ]+)*"


CAPITALISED = r"(?!(?:" + "|".join(sorted(TITLES, key=len, reverse=True)) + r")\b)" + _WORD


NAME = re.compile(
    rf"(?<![\w'’])(?=[A-Z])(?:(?P<title>{TITLE_PATTERN})\s+)?"
    rf"(?P<words>(?:(?:van|von|der|den|de|du|da|di|del|della|la|le|ten|ter)\s+){{0,2}}"
    rf"{CAPITALISED}(?:\s+{CAPITALISED}){{0,2}})\b"
)


#: Words that make a place of a name ("King Street", "Hyde Park").
_PLACES = frozenset(
    (
        *("Street", "Road", "Square", "Lane", "Hall", "Park", "House", "Church", "Court"),
        *("Place", "Bridge", "Abbey", "Castle", "Inn", "Row", "Hill", "Gate", "Cross"),
        *("Terrace", "Gardens", "Avenue", "Chapel", "Cathedral", "College", "Station"),
    )
)


#: Capitalised words that are not names even where a book capitalises them everywhere.
_NOT_NAMES = frozenset(
    [
        "I",
        "I'm",
        "I've",
        "I'll",
        "I'd",
        "Me",
        "My",
        "Mine",
        "Myself",
        "We",
        "Us",
        "Our",
        "You",
        "Your",
        "He",
        "Him",
        "His",
        "She",
        "Her",
        "Hers",
        "It",
        "Its",
        "They",
        "Them",
        "Their",
        "The",
        "A",
        "An",
        "And",
        "But",
        "Or",
        "If",
        "Then",
        "When",
        "Where",
        "What",
        "Who",
        "Why",
        "How",
        "Yes",
        "No",
        "Oh",
        "Ah",
        "Well",
        "Sir",
        "Madam",
        "Ma'am",
        "God",
        "Lord",
        "Heaven",
        "Heavens",
        "Christ",
        "Jesus",
        "Christmas",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
        "English",
        "French",
        "German",
        "Italian",
        "Spanish",
        "Russian",
        "American",
        "Indian",
        "Irish",
        "Scotch",
        "Scottish",
        "Welsh",
        "British",
        "Europe",
        "Chapter",
        "Book",
        "Part",
        "Volume",
        "Mamma",
        "Papa",
        "Mama",
        "Pa",
        "Ma",
        "Mother",
        "Father",
        "Uncle",
        "Aunt",
        "Grandmother",
        "Grandfather",
        "This",
        "That",
        "These",
        "Those",
        "There",
        "Here",
        "Not",
        "Now",
        "Do",
        "Don't",
        "Did",
        "Is",
        "Was",
        "Are",
        "Were",
        "Be",
        "Been",
        "Have",
        "Had",
        "Has",
        "Let",
        "Come",
        "Go",
        "Good",
        "Dear",
        "Poor",
        "Miss",
        "Mrs",
        "Mr",
        "Ms",
        "Mlle",
        "Mme",
        "Dr",
        "Street",
        "Square",
        "Road",
        "Lane",
        "Hall",
        "House",
        "Park",
        "Court",
        "Church",
        "Abbey",
        "London",
        "Paris",
        "England",
        "France",
        "Italy",
        "Rome",
        "America",
        "Lady",
    ]
)


#: Words that open sentences and attributions ("Presently Tony said"), never names.
_NOT_NAMES |= wordset(
    """One So Shame Nobody Somebody Everybody Everyone Someone Anyone Nothing Something All Both
    Each Either Neither Some Many Few Such Another Other Others Nay Yea Hush Alas Hullo Hello
    Goodbye Thank Thanks Please Pray See Look Listen Hark Stop Wait Quick Never Always Perhaps
    Certainly Surely Indeed Really Quite Very Only Just Still Yet Even Too Also Again Once
    Twice Aye Ay Bravo Nonsense Fiddlesticks Mercy Goodness Gracious Dearest Darling Honey
    For From With Without At In On Of To By Upon Into After Before Presently Suddenly
    Meanwhile Afterwards Later Soon Finally Instantly Immediately Slowly Quickly As While
    Though Although Because Since Unless Until Whether"""
)
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]['\"”’)]*\s+|[\"“‘(—–]\s*)$")


PRONOUNS_MALE = frozenset(["he", "him", "his", "himself"])


def title_gender(title: str | None) -> str | None:
    t = (title or "").rstrip(".")
    if t in MALE_TITLES:
        return "male"
    if t in FEMALE_TITLES:
        return "female"
    return None


def title_of(name: str) -> str | None:
    m = NAME.fullmatch(name)
    return m.group("title") if m else None


@dataclass(frozen=True)
class Mention:
    """A name found in a paragraph: where, as written, and its parts."""

    start: int
    end: int
    text: str
    title: str | None
    words: tuple[str, ...]


#: A title standing for a name: "the General", "the Marquis" (capitalised, no name after).
THE_TITLE = re.compile(
    r"\b[Tt]he\s+(?P<title>(?:"
    + "|".join(sorted((t for t in TITLES if len(t) > 3), key=len, reverse=True))
    + r"))\b(?!\.?\s+[A-Z])"
)


def name_mentions(text: str, valid: frozenset[str] | None = None) -> list[Mention]:
    """Names in a text, leading words that are not names dropped ("Poor Miss Taylor"), and
    words after the name that are not names ("Emma Dear"); a capitalised title alone ("the
    General") is a name too."""
    out: list[Mention] = []
    if "he " in text:
        for m in THE_TITLE.finditer(text):
            name = f"the {m.group('title')}"
            out.append(Mention(m.start(), m.end(), name, None, (name,)))
    for m in NAME.finditer(text):
        title = m.group("title")
        words = m.group("words")
        if title is None and " " not in words:
            # the common case: one capitalised word, a name or not
            if _name_word(words, valid) and words not in _PLACES:
                out.append(Mention(m.start(), m.end(), words, None, (words,)))
            continue
        toks = list(_WORD_RE.finditer(text, m.start("words"), m.end("words")))
        if title is None:
            while toks and not _name_word(toks[0].group(0), valid):
                toks.pop(0)
        if toks and toks[0].group(0) in _PLACES:
            continue  # King Street, St. Paul's Church
        kept = toks[:1]
        for t in toks[1:]:
            if not _name_word(t.group(0), valid):
                break
            kept.append(t)
        if not kept:
            continue
        start = m.start() if title else kept[0].start()
        end = kept[-1].end()
        out.append(Mention(start, end, text[start:end], title, tuple(t.group(0) for t in kept)))
    if len(out) > 1:
        out.sort(key=lambda m: m.start)
    return out


_WORD_RE = re.compile(_WORD)


def _name_word(word: str, valid: frozenset[str] | None) -> bool:
    return word not in _NOT_NAMES and (valid is None or word in valid)


def outside(mentions: Sequence[Mention], spans: Sequence[tuple[int, int]]) -> list[Mention]:
    """The mentions outside quoted stretches (their quote marks included)."""
    if not spans:
        return list(mentions)
    return [m for m in mentions if not any(s - 1 < m.end and m.start < e + 1 for s, e in spans)]


_LETTERS = "A-Za-zà-öø-ÿ"


_CAPITAL_WORD = re.compile(rf"(?<![{_LETTERS}])[A-Z][a-zà-öø-ÿ]+(?:['’-][{_LETTERS}]+)*")


_STARTING_WORD = re.compile(
    rf"(?:^|[.!?:;]['\"”’)]*\s+|[\"“‘(—–]\s*)([A-Z][a-zà-öø-ÿ]+(?:['’-][{_LETTERS}]+)*)", re.M
)


_LOWER_WORD = re.compile(rf"(?<![{_LETTERS}])[a-zà-öø-ÿ]+(?:['’-][{_LETTERS}]+)*")


def name_words(texts: Iterable[str]) -> frozenset[str]:
    """Capitalised words the book writes capitalised where no sentence starts, and rarely in
    lower case: the words names are made of."""
    text = "\n\n".join(texts)
    capital = Counter(_CAPITAL_WORD.findall(text))
    starts = Counter(_STARTING_WORD.findall(text))
    lower = Counter(_LOWER_WORD.findall(text))
    return frozenset(
        w
        for w, n in capital.items()
        if (n - starts[w] >= 2 or (n - starts[w] >= 1 and n >= 2))
        and lower.get(w.lower(), 0) * 3 <= n
        and w not in _NOT_NAMES
        and not w.isupper()
    )


#: Titles written two ways: one class each ("Doctor Watson" is "Dr. Watson").
_TITLE_CLASS = {
    "Mister": "Mr",
    "Doctor": "Dr",
    "Captain": "Capt",
    "Colonel": "Col",
    "General": "Gen",
    "Professor": "Prof",
    "Reverend": "Rev",
    "Lieutenant": "Lt",
    "Lieut": "Lt",
    "Sergeant": "Sgt",
    "Madame": "Mme",
    "Mademoiselle": "Mlle",
    "Monsieur": "M",
    "Mons": "M",
    "Fraulein": "Fräulein",
    "Saint": "St",
}


def title_class(title: str) -> str:
    t = title.rstrip(".")
    return _TITLE_CLASS.get(t, t)
