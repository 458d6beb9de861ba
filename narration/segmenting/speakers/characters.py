"""Characters, from the book itself: the people named in it (names.py finds the names), their
names merged where the text links them, and their gender where the text says it.

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
from collections.abc import Sequence
from dataclasses import dataclass, field

from narration.segmenting.speakers.names import (
    PRONOUNS_MALE,
    Mention,
    title_class,
    title_gender,
    title_of,
)


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
        return max(common, key=lambda n: (title_of(n) is not None, len(n.split()), self.names[n]))

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


#: How often each form of a name is written: (its title's class, its words) -> times.
_Forms = Counter[tuple[str | None, tuple[str, ...]]]


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
    forms: _Forms = Counter()
    for m in mentions:
        forms[(_norm(m.title) if m.title else None, m.words)] += 1
    full, other = _full_names(forms)
    titled = _titled_names(forms, full)
    singles = _single_names(forms, full, titled)
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


def _full_names(
    forms: _Forms,
) -> tuple[dict[tuple[str, ...], Person], dict[tuple[str, tuple[str, ...]], Person]]:
    """1. Full names (two words or more), a title's gender kept ("Mrs. Charles Wilcox" is
    not Charles Wilcox: a title of the other gender is another person, the more frequent
    gender keeping the name without a title): the people by their words, and the others."""
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
    return full, other


def _titled_names(
    forms: _Forms, full: dict[tuple[str, ...], Person]
) -> dict[tuple[str, str], Person]:
    """2. Title and surname ("Mr. Weston" and "Mrs. Weston" are two, "Miss Bennet" and
    "Mrs. Bennet" too): the full name of that surname seen with that very title, when the
    full name is not rare beside it, or is the formal name it is introduced by; else, when
    the book gives that surname no other title, its one full name. By (title class, surname)."""
    titled: dict[tuple[str, str], Person] = {}
    for (title, words), n in sorted(forms.items(), key=lambda kv: (kv[0][1], kv[0][0] or "")):
        if len(words) != 1 or title is None:
            continue
        kind = title_class(title)
        p = titled.get((kind, words[0]))
        if p is None:
            p = titled[(kind, words[0])] = _titled_person(title, words, kind, forms, full)
        p.names[_alias(title, words)] += n
        _vote_title(p, title, n)
    return titled


def _titled_person(
    title: str,
    words: tuple[str, ...],
    kind: str,
    forms: _Forms,
    full: dict[tuple[str, ...], Person],
) -> Person:
    """The person a title and surname first seen names: a full name's, or its own."""
    count = sum(c for (t, w), c in forms.items() if w == words and t and title_class(t) == kind)
    # how often the surname takes another title ("Mrs. Denham", beside "Mr. Denham")
    others = sum(
        c
        for (t, w), c in forms.items()
        if t and w[-1:] == words and len(w) == 1 and title_class(t) != kind
    )
    matches = [
        f
        for w, f in full.items()
        if w[-1] == words[0] and (kind in f.titles or (not f.titles and others * 3 <= count))
    ]
    size = sum(matches[0].names.values()) if len(matches) == 1 else 0
    # the full name with its given name alone ("Charles" is called so 130 times:
    # not a formal name to be merged with "Mr. Wilcox", his father)
    called = size + sum(
        forms.get((None, (w[0],)), 0) for w, f in full.items() if matches and f is matches[0]
    )
    if len(matches) == 1 and (size * 4 >= count or called * 10 <= count):
        return matches[0]
    return Person(key=f"{title} {words[0]}")


def _single_names(
    forms: _Forms, full: dict[tuple[str, ...], Person], titled: dict[tuple[str, str], Person]
) -> dict[str, Person]:
    """3. A single name: the given name of one full name, else a surname, else its own."""
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
    return singles


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
        _vote_title(new, title_of(alias), n)
        cast.by_name[_norm(alias)] = new.key
    p.titles.clear()
    p.titled = None
    for alias, n in p.names.items():
        _vote_title(p, title_of(alias), n)
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
