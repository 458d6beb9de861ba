"""Characters, from the book itself: the people named in it, their names merged where the
text links them, and their gender where the text says it.

A name is a run of capitalised words the book capitalises wherever it uses them (so
"Poor" opening a sentence is not one), with or without a title ("Mr.", "Lady", "Captain").
Names are merged as readers link them: "Mr. Frank Churchill", "Frank Churchill" and
"Frank" are one person; "Mr. Weston" and "Mrs. Weston" are two; a title and surname joins
the one full name of that surname and gender when the full name is not rare beside it.
A name is a character when the book treats it as a person: it carries a title, speaks in
an attribution ("said Holmes"), or is addressed in speech.

Gender comes from titles (Mr., Mrs., Lady…) and, failing them, from the pronouns that
follow the name in narration; unknown when neither is clear. No list of first names.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

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
PRONOUNS_FEMALE = frozenset(["she", "her", "hers", "herself"])


def title_gender(title: str | None) -> str | None:
    t = (title or "").rstrip(".")
    if t in MALE_TITLES:
        return "male"
    if t in FEMALE_TITLES:
        return "female"
    return None


@dataclass(eq=False)
class Person:
    """A character being found: its names (with counts) and the evidence for its gender."""

    key: str
    names: Counter[str] = field(default_factory=Counter)
    male: int = 0  # votes from titles and pronouns
    female: int = 0
    titled: str | None = None  # gender its titles give, if any
    titles: Counter[str] = field(default_factory=Counter)  # title class -> times
    speaks: int = 0  # attributions naming it
    addressed: int = 0  # times it is addressed in speech
    narrated: int = 0  # times narration (outside quotations) names it
    located: int = 0  # of them, after "in", "at", "from"…: as a place is named
    narrator: bool = False
    fixed: bool = False  # merged or split by the user's voices.yaml: a character whatever else

    @property
    def name(self) -> str:
        """The name it is most often called by; of names nearly as frequent, the fullest."""
        ranked = sorted(self.names.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))
        top = ranked[0][1]
        common = [n for n, c in ranked if c * 2 > top]
        return max(common, key=lambda n: (_title_of(n) is not None, len(n.split()), self.names[n]))

    def gender(self) -> tuple[str, str | None]:
        if self.titled:
            return self.titled, "title"
        votes = self.male + self.female
        if (votes >= 3 and max(self.male, self.female) >= 0.75 * votes) or (
            votes == 2 and self.male != self.female
        ):
            g = "male" if self.male > self.female else "female"
            return g, f"pronouns ({max(self.male, self.female)} of {votes})"
        return "unknown", None


def _title_of(name: str) -> str | None:
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


class Cast:
    """The characters of a book: names merged into people, with an index from every name
    and title-and-surname to its person."""

    def __init__(self) -> None:
        self.people: dict[str, Person] = {}
        self.by_name: dict[str, str] = {}  # alias as written -> person key

    def lookup(self, mention: Mention) -> Person | None:
        key = self.by_name.get(_norm(mention.text))
        if key is None and mention.title:
            key = self.by_name.get(_norm(" ".join(mention.words)))
            if key is not None:
                g = title_gender(mention.title)
                p = self.people[key]
                if g and p.titled and p.titled != g:
                    return None
        return self.people.get(key) if key else None


@functools.lru_cache(maxsize=65536)
def _norm(name: str) -> str:
    """A name as the index keys it: "Mr. Darcy" and "Mr Darcy" alike (asked for every
    mention of a book: cached)."""
    return " ".join(name.replace(".", "").split())


def build_cast(
    mentions: Sequence[Mention],
    speakers: Counter[str],
    addressed: Counter[str],
    merge: Sequence[Sequence[str]] = (),
    split: Sequence[str] = (),
) -> Cast:
    """People from the names found: full names first, then titles with surnames, then single
    names, each merged where the text links them (see the module docstring); then the
    user's corrections: names `split` off the person they were merged into, and each
    `merge` group made one person."""
    cast = Cast()
    forms: Counter[tuple[str | None, tuple[str, ...]]] = Counter()
    for m in mentions:
        forms[(_norm(m.title) if m.title else None, m.words)] += 1
    # 1. full names (two words or more), a title's gender kept
    # ("Mrs. Charles Wilcox" is not Charles Wilcox: a title of the other gender is another
    # person, the more frequent gender keeping the name without a title)
    full: dict[tuple[str, ...], Person] = {}
    other: dict[tuple[str, tuple[str, ...]], Person] = {}
    for (title, words), n in sorted(
        forms.items(), key=lambda kv: (-len(kv[0][1]), -kv[1], kv[0][1], kv[0][0] or "")
    ):
        if len(words) < 2:
            continue
        p = full.get(words)
        if p is None:
            p = full[words] = Person(key=" ".join(words))
        g = title_gender(title)
        if g and p.titled and p.titled != g:
            p = other.setdefault((g, words), Person(key=f"{title} {' '.join(words)}"))
        p.names[_alias(title, words)] += n
        _vote_title(p, title, n)
    # 2. title and surname ("Mr. Weston" and "Mrs. Weston" are two, "Miss Bennet" and
    # "Mrs. Bennet" too): the full name of that surname seen with that very title, when
    # the full name is not rare beside it, or is the formal name it is introduced by;
    # else, when the book gives that surname no other title, its one full name
    titled: dict[tuple[str, str], Person] = {}
    for (title, words), n in sorted(forms.items(), key=lambda kv: (kv[0][1], kv[0][0] or "")):
        if len(words) != 1 or title is None:
            continue
        kind = title_class(title)
        p = titled.get((kind, words[0]))
        if p is None:
            count = sum(
                c for (t, w), c in forms.items() if w == words and t and title_class(t) == kind
            )
            # how often the surname takes another title ("Mrs. Denham", beside "Mr. Denham")
            others = sum(
                c
                for (t, w), c in forms.items()
                if t and w[-1:] == words and len(w) == 1 and title_class(t) != kind
            )
            matches = [
                f
                for w, f in full.items()
                if w[-1] == words[0]
                and (kind in f.titles or (not f.titles and others * 3 <= count))
            ]
            size = sum(matches[0].names.values()) if len(matches) == 1 else 0
            # the full name with its given name alone ("Charles" is called so 130 times:
            # not a formal name to be merged with "Mr. Wilcox", his father)
            called = size + sum(
                forms.get((None, (w[0],)), 0)
                for w, f in full.items()
                if matches and f is matches[0]
            )
            if len(matches) == 1 and (size * 4 >= count or called * 10 <= count):
                p = matches[0]
            else:
                p = Person(key=f"{title} {words[0]}")
            titled[(kind, words[0])] = p
        p.names[_alias(title, words)] += n
        _vote_title(p, title, n)
    # 3. a single name: the given name of one full name, else a surname, else its own
    singles: dict[str, Person] = {}
    for (title, words), n in sorted(forms.items(), key=lambda kv: kv[0][1]):
        if len(words) != 1 or title is not None:
            continue
        w = words[0]
        if w.startswith("the "):  # "the General": its own person, its title's gender
            p = singles[w] = Person(key=w)
            p.names[w] += n
            _vote_title(p, w[4:], n)
            continue
        given = [f for ws, f in full.items() if ws[0] == w]
        if len(given) == 1:
            p = given[0]
        else:
            # a surname alone: the person of that surname the book names most, when it
            # names them far more than any other ("Archer" is Newland Archer)
            named = {id(f): f for ws, f in full.items() if ws[-1] == w and len(ws) > 1}
            named.update({id(q): q for (g, s2), q in titled.items() if s2 == w})
            ranked = sorted(named.values(), key=lambda q: (-sum(q.names.values()), q.key))
            if given or not ranked:
                p = Person(key=w)
            elif len(ranked) == 1 or sum(ranked[0].names.values()) >= 2 * sum(
                ranked[1].names.values()
            ):
                p = ranked[0]
            else:
                p = Person(key=w)
        singles[w] = p
        p.names[w] += n
    people: dict[int, Person] = {}
    for p in [*full.values(), *other.values(), *titled.values(), *singles.values()]:
        people[id(p)] = p
    for p in people.values():
        cast.people[p.key] = p
        for alias in p.names:
            cast.by_name.setdefault(_norm(alias), p.key)
    for name in split:
        _split(cast, name)
    for group in merge:
        _merge(cast, group)
    for name, n in speakers.items():
        key = cast.by_name.get(_norm(name))
        if key:
            cast.people[key].speaks += n
    for name, n in addressed.items():
        key = cast.by_name.get(_norm(name))
        if key:
            cast.people[key].addressed += n
    return cast


def _split(cast: Cast, name: str) -> None:
    """Make `name` (and its spellings: "Mrs Fezziwig", "Mrs. Fezziwig") a person of its own."""
    key = _named(cast, name)
    if key is None:
        return  # not found: the check of voices.yaml against the characters says so
    p = cast.people[key]
    folded = _norm(name).casefold()
    aliases = [a for a in p.names if _norm(a).casefold() == folded]
    if not aliases:
        return
    if len(aliases) == len(p.names):
        p.fixed = True  # a person of its own already
        return
    new = Person(key=_free_key(cast, aliases[0]), fixed=True)
    for alias in aliases:
        n = p.names.pop(alias)
        new.names[alias] += n
        _vote_title(new, _title_of(alias), n)
        cast.by_name[_norm(alias)] = new.key
    p.titles.clear()
    p.titled = None
    for alias, n in p.names.items():
        _vote_title(p, _title_of(alias), n)
    cast.people[new.key] = new


def _merge(cast: Cast, names: Sequence[str]) -> None:
    """Make the people called by `names` one, under the first name's person."""
    keys = list(dict.fromkeys(k for n in names if (k := _named(cast, n))))
    if not keys:
        return
    into = cast.people[keys[0]]
    into.fixed = True
    for key in keys[1:]:
        other = cast.people.pop(key)
        into.names.update(other.names)
        for title, n in other.titles.items():
            _vote_title(into, title, n)
        for alias, k in cast.by_name.items():
            if k == key:
                cast.by_name[alias] = into.key


def _named(cast: Cast, name: str) -> str | None:
    """The person a user's name is, as voices.yaml may write it: in any case, with or
    without the dots of titles ("mrs fezziwig")."""
    norm = _norm(name)
    key = cast.by_name.get(norm)
    if key is None:
        folded = norm.casefold()
        key = next((k for a, k in cast.by_name.items() if a.casefold() == folded), None)
    return key


def _free_key(cast: Cast, name: str) -> str:
    key, n = name, 2
    while key in cast.people:
        key, n = f"{name} {n}", n + 1
    return key


def _alias(title: str | None, words: tuple[str, ...]) -> str:
    return (
        f"{title}. " if title and title in _ABBREVIATED else f"{title} " if title else ""
    ) + " ".join(words)


_ABBREVIATED = frozenset(
    [
        "Mr",
        "Mrs",
        "Ms",
        "Dr",
        "Mme",
        "Mlle",
        "Mons",
        "Capt",
        "Col",
        "Gen",
        "Prof",
        "Rev",
        "Sgt",
        "Lieut",
        "Lt",
        "St",
        "M",
    ]
)


def _vote_title(p: Person, title: str | None, n: int) -> None:
    """A title the person is called by, n times: its gender is the majority of its
    gendered titles'."""
    if not title:
        return
    p.titles[title_class(title)] += n
    male = sum(c for t, c in p.titles.items() if title_gender(t) == "male")
    female = sum(c for t, c in p.titles.items() if title_gender(t) == "female")
    if male != female:
        p.titled = "male" if male > female else "female"


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


def pronoun_votes(text: str, mentions: Sequence[Mention], cast: Cast) -> None:
    """Votes for a person's gender: a name opening its sentence, and the first subject or
    reflexive pronoun after it (he, himself; she, herself) before another name. "His",
    "her" and "him" are left out: they are as often someone else ("Emma listened to his
    reasons")."""
    for k, m in enumerate(mentions):
        p = cast.lookup(m)
        if p is None:
            continue
        p.narrated += 1
        head = text[max(0, m.start - 30) : m.start]
        if _LOCATIVE.search(head):
            p.located += 1  # "in India", "at Monteriano": a place's way of being named
        if p.titled:
            continue
        cut = max(head.rfind("."), head.rfind("!"), head.rfind("?"), head.rfind(";"))
        if len(head[cut + 1 :].split()) > 2 and m.start > 30:
            continue
        stop = mentions[k + 1].start if k + 1 < len(mentions) else len(text)
        pm = _SUBJECT_PRONOUN.search(text, m.end, min(stop, m.end + 300))
        if pm:
            if pm.group(1).lower() in PRONOUNS_MALE:
                p.male += 1
            else:
                p.female += 1


_LOCATIVE = re.compile(r"\b(?:in|at|into|near|through|across)\s+(?:the\s+)?$", re.I)
_SUBJECT_PRONOUN = re.compile(r"\b(he|himself|she|herself)\b", re.I)
