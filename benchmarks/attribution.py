"""Who speaks, measured: narrate's quotations and speakers against PDNC's annotations.

    .venv/bin/python benchmarks/attribution.py PDNC_DIR               # all 28 novels, timed
    .venv/bin/python benchmarks/attribution.py PDNC_DIR --no-timing   # the figures alone (fast)
    .venv/bin/python benchmarks/attribution.py PDNC_DIR --novels Emma,TheGambler --json

PDNC (the Project Dialogism Novel Corpus, github: Priya22/project-dialogism-novel-corpus) is
fetched by whoever runs this: PDNC_DIR holds `PDNC-Novel-Index.csv` and
`data/<Novel>/{novel_text.txt, quotation_info.csv, character_info.csv}`. Nothing is fetched
here, and nothing of the novels' text is printed (some are not public domain everywhere).

Each novel's text is one seed file; narrate segments it (`segment_book`) and finds its
speakers (`find_speakers`) as a build does. Its quotation pieces, placed in the file, are
compared with PDNC's sub-quotations (spans with the quote marks excluded):

- detection: a piece is right if it overlaps a sub-quotation (precision), a sub-quotation is
  found if a piece overlaps it (recall);
- attribution: each sub-quotation takes the speaker of the piece overlapping it most; it is
  right when that narrate character maps to the gold speaker. Abstaining, or missing the
  quotation, counts as wrong. A narrate character maps to the PDNC character whose aliases
  hold its name and aliases (its name first, then the most aliases, then the character with
  more sub-quotations), else to the one character with an alias holding all its name's
  words (titles set aside, a title's gender agreeing: see by_words); several may map to
  one. narrate's first-person narrator maps to the character PDNC marks with the alias
  `_narr` (or `Narr`), when the novel index says the narration is first person; where it
  says so and no character is marked, the narrator maps to nobody and the notes say so;
- precision over the sub-quotations narrate attributed, coverage (attributed / all), gender
  agreement (narrate's gender for the character against the gold speaker's, where both are
  known), and PDNC's major characters that some narrate character maps to.

Totals pool the counts of the novels: accuracy, coverage, precision and gender are weighted
by sub-quotations, detection precision by narrate's pieces, major characters by characters.

With timing (the default), each novel is segmented in a fresh process, then segmented and
attributed in another, `--repeat` pairs back to back (this machine's speed drifts); the
medians are reported, with the median of the pairs' ratios. Peak memory is each process's
own peak resident set (VmHWM), after its imports and at its end: the segmenter's is its
process's peak above the imports, attribution's what it adds to the peak of segmenting.
"""

from __future__ import annotations

import argparse
import ast
import bisect
import csv
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # this checkout's narration, not an installed one

from narration.model import Book, Character, Speakers  # noqa: E402
from narration.segmenting.inline import WORD  # noqa: E402

#: The novels attribution is tuned on (the first 14 of PDNC's 28 in the lead's choice); the
#: other 14 are held out, and reported beside them.
TUNED = (
    "AHandfulOfDust",
    "ARoomWithAView",
    "AnneOfGreenGables",
    "Emma",
    "HowardsEnd",
    "NightAndDay",
    "OliverTwist",
    "PrideAndPrejudice",
    "TheAgeOfInnocence",
    "TheGambler",
    "TheManWhoWasThursday",
    "ThePictureOfDorianGray",
    "TheSportOfTheGods",
    "WhereAngelsFearToTread",
)
#: PDNC's quote types, as its `quoteType` column spells them.
TYPES = ("Explicit", "Anaphoric", "Implicit")
#: The aliases PDNC gives a first-person narrator (normalised): "_narr" in four novels,
#: "Narr" alone for Dr. Watson in The Sign of the Four.
NARRATOR_ALIASES = frozenset({"_narr", "narr"})
#: A narrate character mapping to no PDNC character is noted when it speaks this often.
UNMAPPED_NOTE = 10
#: Issue 24's goals: (figure, at least). Time and memory are at most.
GOALS = {
    "accuracy": 0.70,
    "explicit": 0.95,
    "precision": 0.90,
    "gender": 0.97,
    "majors": 0.95,
    "f1": 0.95,
}
TIME_GOAL = 1.25


class BenchError(Exception):
    """Bad input: printed as one line, exit status 2."""


# --- PDNC, read ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldCharacter:
    name: str  # PDNC's Main Name
    aliases: frozenset[str]  # normalised (see norm), the main name among them
    forms: frozenset[str]  # and each without "the" before it or PDNC's " - Story" after it
    gender: str  # "M", "F", or PDNC's U (unknown) / X (not annotated) / ...
    category: str  # major / intermediate / minor
    narrator: bool  # PDNC marks it with the alias _narr or Narr


@dataclass(frozen=True)
class GoldQuote:
    start: int  # Python string indices into novel_text.txt, quote marks excluded
    end: int
    speaker: str  # a GoldCharacter's name
    kind: str  # one of TYPES, or "" where PDNC gives none


@dataclass(frozen=True)
class Novel:
    name: str  # its folder
    path: Path  # novel_text.txt
    quotes: tuple[GoldQuote, ...]  # every sub-quotation, in file order
    characters: tuple[GoldCharacter, ...]
    first_person: bool | None  # the index's Narrative Person is 1 (None: not in the index)


def norm(name: str) -> str:
    """A name as names are compared: no full stops, spaces collapsed, lower case, straight
    apostrophes ("Mr. Darcy" and "mr darcy" are one)."""
    name = name.replace(".", "").replace("\u2019", "'")
    return re.sub(r"\s+", " ", name).strip().lower()


def bare(name: str) -> str:
    """A normalised name without "the" before it ("the frenchman") or PDNC's part after a
    dash ("christopher robin - story": Winnie-the-Pooh's two Christopher Robins)."""
    name = re.sub(r"^the ", "", name)
    return re.sub(r" - .*$", "", name)


def _csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with the line each starts on, or a one-line BenchError."""
    if not path.is_file():
        raise BenchError(f"{path}: missing")
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:  # reads the header line
                raise BenchError(f"{path}: empty")
            rows = []
            line = reader.line_num + 1
            for row in reader:
                rows.append((line, row))
                line = reader.line_num + 1
            return rows
    except (UnicodeDecodeError, csv.Error) as e:
        raise BenchError(f"{path}: not a readable CSV file ({e})") from None


def _field(path: Path, line: int, row: dict[str, str], key: str) -> str:
    value = row.get(key)
    if value is None:
        raise BenchError(f"{path}:{line}: no {key!r} column")
    return value


def _literal(path: Path, line: int, row: dict[str, str], key: str) -> object:
    try:
        return ast.literal_eval(_field(path, line, row, key))
    except (ValueError, SyntaxError):
        raise BenchError(f"{path}:{line}: {key} is not a Python literal") from None


def read_index(pdnc: Path) -> dict[str, bool]:
    """Each novel's folder -> whether its narration is first person (Narrative Person 1)."""
    path = pdnc / "PDNC-Novel-Index.csv"
    out = {}
    for line, row in _csv_rows(path):
        folder = _field(path, line, row, "Folder Name").strip()
        person = _field(path, line, row, "Narrative Person").strip()
        if folder:
            try:
                out[folder] = float(person) == 1
            except ValueError:
                raise BenchError(f"{path}:{line}: Narrative Person is not a number") from None
    return out


def read_novel(pdnc: Path, name: str, first_person: bool | None) -> Novel:
    folder = pdnc / "data" / name
    if not folder.is_dir():
        raise BenchError(f"{folder}: missing")
    text_path = folder / "novel_text.txt"
    if not text_path.is_file():
        raise BenchError(f"{text_path}: missing")
    text_length = len(text_path.read_text(encoding="utf-8"))
    chars_path = folder / "character_info.csv"
    characters = []
    for line, row in _csv_rows(chars_path):
        main = _field(chars_path, line, row, "Main Name").strip()
        aliases = _literal(chars_path, line, row, "Aliases")
        if not isinstance(aliases, (set, list, tuple)) or not all(
            isinstance(a, str) for a in aliases
        ):
            raise BenchError(f"{chars_path}:{line}: Aliases is not a set of names")
        normalised = frozenset({norm(a) for a in aliases} | {norm(main)})
        characters.append(
            GoldCharacter(
                name=main,
                aliases=normalised,
                forms=normalised | {bare(a) for a in normalised},
                gender=_field(chars_path, line, row, "Gender").strip(),
                category=_field(chars_path, line, row, "Category").strip(),
                narrator=any(norm(a) in NARRATOR_ALIASES for a in aliases),
            )
        )
    by_name = {norm(c.name): c.name for c in characters}
    by_alias: dict[str, set[str]] = {}
    for c in characters:
        for a in c.aliases:
            by_alias.setdefault(a, set()).add(c.name)
    quotes_path = folder / "quotation_info.csv"
    quotes = []
    for line, row in _csv_rows(quotes_path):
        spans = _literal(quotes_path, line, row, "quoteByteSpans")
        speaker = _field(quotes_path, line, row, "speaker")
        # The speaker is a main name, or (in a few rows) one alias of one character.
        who = by_name.get(norm(speaker))
        if who is None:
            held = by_alias.get(norm(speaker), set())
            if len(held) != 1:
                raise BenchError(f"{quotes_path}:{line}: speaker is no one character's name")
            (who,) = held
        kind = _field(quotes_path, line, row, "quoteType").strip()
        kind = kind if kind in TYPES else ""
        if not isinstance(spans, list):
            raise BenchError(f"{quotes_path}:{line}: quoteByteSpans is not a list of spans")
        for span in spans:
            if not (
                isinstance(span, list)
                and len(span) == 2
                and all(isinstance(x, int) for x in span)
                and 0 <= span[0] < span[1] <= text_length
            ):
                raise BenchError(f"{quotes_path}:{line}: a span is not [start, end] in the text")
            quotes.append(GoldQuote(span[0], span[1], who, kind))
    return Novel(
        name,
        text_path,
        tuple(sorted(quotes, key=lambda q: q.start)),
        tuple(characters),
        first_person,
    )


# --- narrate, run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """One quotation piece narrate found, placed in the novel's file."""

    start: int
    end: int
    speaker: str | None  # a narrate Character's id
    attribution: str | None


@dataclass(frozen=True)
class Found:
    pieces: tuple[Piece, ...]  # in file order
    characters: tuple[Character, ...]


def seeds_for(novel: Novel, scratch: Path) -> Path:
    seeds = scratch / novel.name / "seeds"
    seeds.mkdir(parents=True)
    shutil.copy(novel.path, seeds / "novel.txt")
    return seeds


def run_narrate(novel: Novel, scratch: Path) -> Found:
    from narration.segmenting import segment_book
    from narration.segmenting.speakers import find_speakers

    book = segment_book(seeds_for(novel, scratch))
    speakers = find_speakers(book)
    return found_in(book, speakers)


def found_in(book: Book, speakers: Speakers) -> Found:
    """narrate's quotation pieces in file offsets, as `narrate cast --json` reports them."""
    from narration.segmenting.offsets import Offsets

    where = Offsets(book.texts)
    segments = {s.id: s for ch in book.chapters for s in ch.segments}
    pieces = []
    for q in speakers.quotations:
        for p in q.pieces:
            at = where.range(segments[p.segment], p.start, p.end)
            if at is not None:
                pieces.append(Piece(at.start, at.end, q.speaker, q.attribution))
    pieces.sort(key=lambda p: (p.start, p.end))
    return Found(tuple(pieces), speakers.characters)


# --- the figures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """What one novel's figures are made of; the totals add them."""

    quotes: int = 0  # PDNC's sub-quotations
    found: int = 0  # of them, overlapped by a piece narrate found
    pieces: int = 0  # narrate's quotation pieces
    pieces_right: int = 0  # of them, overlapping a sub-quotation
    correct: int = 0  # sub-quotations attributed to their speaker
    attributed: int = 0  # sub-quotations whose piece narrate attributed
    explicit: int = 0
    explicit_correct: int = 0
    anaphoric: int = 0
    anaphoric_correct: int = 0
    implicit: int = 0
    implicit_correct: int = 0
    gendered: int = 0  # attributed, both genders known
    gender_agrees: int = 0
    majors: int = 0  # PDNC's major characters
    majors_found: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True)
class Score:
    counts: Counts
    mapping: dict[str, str | None]  # narrate character id -> PDNC name
    notes: tuple[str, ...] = ()


def figures(c: Counts) -> dict[str, float | None]:
    """The ratios the table shows (None where there is nothing to divide)."""

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    p, r = ratio(c.pieces_right, c.pieces), ratio(c.found, c.quotes)
    f1 = 2 * p * r / (p + r) if p is not None and r is not None and p + r else None
    return {
        "precision_detection": p,
        "recall": r,
        "f1": f1,
        "accuracy": ratio(c.correct, c.quotes),
        "explicit": ratio(c.explicit_correct, c.explicit),
        "anaphoric": ratio(c.anaphoric_correct, c.anaphoric),
        "implicit": ratio(c.implicit_correct, c.implicit),
        "precision": ratio(c.correct, c.attributed),
        "coverage": ratio(c.attributed, c.quotes),
        "gender": ratio(c.gender_agrees, c.gendered),
        "majors": ratio(c.majors_found, c.majors),
    }


def map_characters(novel: Novel, characters: Iterable[Character]) -> tuple[dict, list[str]]:
    """narrate character id -> the PDNC character's name it is (None: nobody), and notes."""
    spoken = Counter(q.speaker for q in novel.quotes)
    narrators = [g for g in novel.characters if g.narrator]
    notes = []
    out: dict[str, str | None] = {}
    for c in characters:
        if c.narrator:
            if novel.first_person and len(narrators) == 1:
                out[c.id] = narrators[0].name
            else:
                out[c.id] = None
                if novel.first_person is None:
                    notes.append(
                        "not in PDNC-Novel-Index.csv: whether the narration is first person "
                        "cannot be known; narrate's narrator maps to nobody"
                    )
                elif novel.first_person:
                    notes.append(
                        "the index says first person but PDNC marks "
                        f"{'no' if not narrators else 'more than one'} narrator (_narr, Narr): "
                        "narrate's narrator maps to nobody"
                    )
            continue
        name = bare(norm(c.name))
        names = {name} | {bare(norm(a)) for a in c.aliases}
        best, key = None, (False, 0, 0)
        for g in novel.characters:
            hits = len(names & g.forms)
            k = (name in g.forms, hits, spoken[g.name])
            if hits and k > key:
                best, key = g.name, k
        out[c.id] = best if best is not None else by_words(novel, c)
    return out, notes


#: Titles, and the gender a title gives ("" : either).
TITLES = {
    "mr": "M", "mister": "M", "sir": "M", "lord": "M", "master": "M", "monsieur": "M",
    "mrs": "F", "miss": "F", "lady": "F", "madame": "F", "mme": "F", "mademoiselle": "F",
    "ms": "F", "dr": "", "doctor": "", "captain": "", "colonel": "", "professor": "",
}  # fmt: skip


def by_words(novel: Novel, c: Character) -> str | None:
    """The PDNC character one of whose aliases holds every word of the narrate character's
    name, titles set aside ("Miss Quested": "Adela Quested"; "Harvey": "Harvey Stone"),
    where a title's gender agrees and exactly one character fits; else None."""
    words = bare(norm(c.name)).split()
    sexes = {TITLES[w] for w in words if w in TITLES} - {""}
    core = {w for w in words if w not in TITLES}
    if not core or len(sexes) > 1:
        return None
    fits = [
        g.name
        for g in novel.characters
        if any(core <= set(a.split()) for a in g.forms)
        and not (sexes and g.gender in ("M", "F") and g.gender not in sexes)
    ]
    return fits[0] if len(fits) == 1 else None


def score(novel: Novel, found: Found) -> Score:
    mapping, notes = map_characters(novel, found.characters)
    genders = {c.id: c.gender for c in found.characters}
    gold_gender = {g.name: g.gender for g in novel.characters}
    pieces = found.pieces
    starts = [p.start for p in pieces]
    longest = max((p.end - p.start for p in pieces), default=0)
    n: Counter[str] = Counter()
    for q in novel.quotes:
        n["quotes"] += 1
        if q.kind:
            n[q.kind.lower()] += 1
        # pieces overlapping [q.start, q.end): those starting before q.end, not ending by q.start
        lo = bisect.bisect_left(starts, q.start - longest)
        hi = bisect.bisect_left(starts, q.end)
        best, overlap = None, 0
        for p in pieces[lo:hi]:
            o = min(q.end, p.end) - max(q.start, p.start)
            if o > overlap:
                best, overlap = p, o
        if best is None:
            continue
        n["found"] += 1
        if best.speaker is None:
            continue
        n["attributed"] += 1
        if mapping.get(best.speaker) == q.speaker:
            n["correct"] += 1
            if q.kind:
                n[q.kind.lower() + "_correct"] += 1
        ours, theirs = genders.get(best.speaker, "unknown"), gold_gender.get(q.speaker, "")
        if ours in ("female", "male") and theirs in ("F", "M"):
            n["gendered"] += 1
            n["gender_agrees"] += ours[0].upper() == theirs
    gold_starts = [q.start for q in novel.quotes]
    gold_longest = max((q.end - q.start for q in novel.quotes), default=0)
    for p in pieces:
        n["pieces"] += 1
        lo = bisect.bisect_left(gold_starts, p.start - gold_longest)
        hi = bisect.bisect_left(gold_starts, p.end)
        if any(min(p.end, q.end) > max(p.start, q.start) for q in novel.quotes[lo:hi]):
            n["pieces_right"] += 1
    majors = {g.name for g in novel.characters if g.category == "major"}
    n["majors"] = len(majors)
    n["majors_found"] = len(majors & set(mapping.values()))
    said: Counter[str] = Counter()
    for p in pieces:
        if p.speaker is not None and mapping.get(p.speaker) is None:
            said[p.speaker] += 1
    names = {c.id: c.name for c in found.characters}
    for cid, k in sorted(said.items(), key=lambda x: (-x[1], x[0])):
        if k >= UNMAPPED_NOTE:
            notes.append(f"{names[cid]!r} ({cid}) maps to no PDNC character; {k} pieces")
    counts = Counts(**{f.name: n[f.name] for f in fields(Counts)})
    return Score(counts, mapping, tuple(notes))


# --- time and memory ------------------------------------------------------------------------


def peak_kb() -> int:
    """This process's peak resident memory in KB: the kernel's VmHWM, which starts afresh at
    exec. (getrusage's ru_maxrss does not: a child started from this benchmark inherits the
    benchmark's own high-water mark, a book's worth, and reports it.)"""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(mode: str, seeds: Path) -> None:
    """Run in a fresh process: segment (and, with mode "speakers", attribute) one book, and
    print the seconds and the peak resident memory (KB) after imports and at the end."""
    from narration.segmenting import segment_book
    from narration.segmenting.speakers import find_speakers

    base = peak_kb()
    start = time.perf_counter()
    book = segment_book(seeds)
    segmented = time.perf_counter()
    segment_kb = peak_kb()
    if mode == "speakers":
        find_speakers(book)
    end = time.perf_counter()
    peak = peak_kb()
    print(
        json.dumps(
            {
                "seconds": end - start,
                "segment_seconds": segmented - start,
                "base_kb": base,
                "segment_kb": segment_kb,
                "peak_kb": peak,
            }
        )
    )


@dataclass(frozen=True)
class Timing:
    words: int
    segments_seconds: float  # medians over the pairs
    speakers_seconds: float
    ratio: float  # the median of the pairs' ratios
    base_mb: float  # after imports
    segments_mb: float  # peak, segmenting alone
    speakers_mb: float  # peak, segmenting and attributing
    ratios: tuple[float, ...] = field(default=())

    @property
    def segmenter_mb(self) -> float:
        """What the segmenter itself takes, above the interpreter and its imports."""
        return self.segments_mb - self.base_mb

    @property
    def added_mb(self) -> float:
        return self.speakers_mb - self.segments_mb


def _measure(mode: str, seeds: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(seeds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise BenchError(f"{seeds}: narrate failed in the timed process: {last}")
    return json.loads(proc.stdout)


def timing(novel: Novel, scratch: Path, repeat: int) -> Timing:
    seeds = seeds_for(novel, scratch / "timed")
    runs = [(_measure("segments", seeds), _measure("speakers", seeds)) for _ in range(repeat)]
    med = statistics.median
    ratios = tuple(round(b["seconds"] / a["seconds"], 3) for a, b in runs)
    words = len(WORD.findall(novel.path.read_text(encoding="utf-8")))
    return Timing(
        words=words,
        segments_seconds=med(a["seconds"] for a, _ in runs),
        speakers_seconds=med(b["seconds"] for _, b in runs),
        ratio=med(ratios),
        base_mb=med(a["base_kb"] for a, _ in runs) / 1024,
        segments_mb=med(a["peak_kb"] for a, _ in runs) / 1024,
        speakers_mb=med(b["peak_kb"] for _, b in runs) / 1024,
        ratios=ratios,
    )


# --- the report -----------------------------------------------------------------------------

QUALITY_COLUMNS = (
    ("P", "precision_detection"),
    ("R", "recall"),
    ("F1", "f1"),
    ("accuracy", "accuracy"),
    ("explicit", "explicit"),
    ("anaphoric", "anaphoric"),
    ("implicit", "implicit"),
    ("precision", "precision"),
    ("coverage", "coverage"),
    ("gender", "gender"),
    ("majors", "majors"),
)


def _cell(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def quality_table(scores: dict[str, Score]) -> list[str]:
    head = ["novel", "split", "sub-quotations", *(c for c, _ in QUALITY_COLUMNS)]
    lines = [_row(head), _row(["---"] * 2 + ["---:"] * (len(head) - 2))]
    for name, s in scores.items():
        f = figures(s.counts)
        split = "tuned" if name in TUNED else "held out"
        lines.append(
            _row([name, split, str(s.counts.quotes), *(_cell(f[k]) for _, k in QUALITY_COLUMNS)])
        )
    for label, total in totals(scores).items():
        f = figures(total)
        cells = [f"**{label}**", "", str(total.quotes), *(_cell(f[k]) for _, k in QUALITY_COLUMNS)]
        lines.append(_row(cells))
    return lines


def totals(scores: dict[str, Score]) -> dict[str, Counts]:
    """The tuned half, the held-out half and all, each where the run holds any of it."""
    groups = {
        f"tuned ({sum(1 for n in scores if n in TUNED)})": [n for n in scores if n in TUNED],
        f"held out ({sum(1 for n in scores if n not in TUNED)})": [
            n for n in scores if n not in TUNED
        ],
        f"all ({len(scores)})": list(scores),
    }
    return {
        label: sum((scores[n].counts for n in names), Counts())
        for label, names in groups.items()
        if names
    }


def speed_table(timings: dict[str, Timing]) -> list[str]:
    head = [
        "novel",
        "words",
        "segments s",
        "+ speakers s",
        "ratio",
        "segmenter MB",
        "with speakers MB",
        "added MB",
    ]
    lines = [_row(head), _row(["---"] + ["---:"] * (len(head) - 1))]
    for name, t in timings.items():
        lines.append(
            _row(
                [
                    name,
                    f"{t.words:,}",
                    f"{t.segments_seconds:.2f}",
                    f"{t.speakers_seconds:.2f}",
                    f"{t.ratio:.2f}",
                    f"{t.segmenter_mb:.1f}",
                    f"{t.speakers_mb - t.base_mb:.1f}",
                    f"{t.added_mb:+.1f}",
                ]
            )
        )
    if len(timings) > 1:
        seg = sum(t.segments_seconds for t in timings.values())
        spk = sum(t.speakers_seconds for t in timings.values())
        words = sum(t.words for t in timings.values())
        cells = [f"**all ({len(timings)})**", f"{words:,}", f"{seg:.2f}", f"{spk:.2f}"]
        lines.append(_row([*cells, f"{spk / seg:.2f}", "", "", ""]))
    return lines


def goal_lines(scores: dict[str, Score], timings: dict[str, Timing]) -> list[str]:
    out = []
    groups = totals(scores)
    everything = figures(list(groups.values())[-1])
    for key, least in GOALS.items():
        got = everything[key]
        met = got is not None and got >= least
        out.append(
            f"{'PASS' if met else 'MISS'}  {key} >= {least}: {'-' if got is None else f'{got:.3f}'}"
        )
    halves = [figures(c)["accuracy"] for label, c in groups.items() if not label.startswith("all")]
    if len(halves) == 2 and None not in halves:
        gap = abs(halves[0] - halves[1])  # type: ignore[operator]
        out.append(
            f"{'PASS' if gap <= 0.03 else 'MISS'}  held-out accuracy within 0.03 of tuned: "
            f"{gap:.2f} apart"
        )
    if timings:
        largest = max(timings, key=lambda n: timings[n].words)
        t = timings[largest]
        out.append(
            f"{'PASS' if t.ratio <= TIME_GOAL else 'MISS'}  attribution adds <= 25% time "
            f"({largest}, {t.words:,} words): x{t.ratio:.2f}"
        )
        fat = [n for n, t in timings.items() if t.added_mb > t.segmenter_mb]
        out.append(
            f"{'PASS' if not fat else 'MISS'}  attribution adds no more memory than the "
            f"segmenter uses: {len(timings) - len(fat)} of {len(timings)} novels"
            + (f" (not: {', '.join(fat)})" if fat else "")
        )
    return out


def report(scores: dict[str, Score], timings: dict[str, Timing]) -> str:
    lines = ["### Who speaks: narrate against PDNC", "", *quality_table(scores)]
    if timings:
        lines += ["", "### Time and memory (medians of paired runs)", "", *speed_table(timings)]
    lines += ["", *goal_lines(scores, timings)]
    notes = [(n, note) for n, s in scores.items() for note in s.notes]
    if notes:
        lines += ["", "Notes:"] + [f"- {n}: {note}" for n, note in notes]
    return "\n".join(lines)


def as_json(scores: dict[str, Score], timings: dict[str, Timing]) -> str:
    payload = {
        "tuned": list(TUNED),
        "novels": {
            name: {
                "split": "tuned" if name in TUNED else "held out",
                "counts": asdict(s.counts),
                "figures": figures(s.counts),
                "mapping": s.mapping,
                "notes": list(s.notes),
                **(
                    {
                        "timing": {
                            **asdict(timings[name]),
                            "segmenter_mb": timings[name].segmenter_mb,
                            "added_mb": timings[name].added_mb,
                        }
                    }
                    if name in timings
                    else {}
                ),
            }
            for name, s in scores.items()
        },
        "totals": {
            label: {"counts": asdict(c), "figures": figures(c)}
            for label, c in totals(scores).items()
        },
    }
    return json.dumps(payload, indent=2)


# --- the command ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdnc", type=Path, metavar="PDNC_DIR")
    parser.add_argument("--novels", help="a comma-separated subset (folder names)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--no-timing", action="store_true", help="skip the timed processes")
    parser.add_argument("--repeat", type=int, default=3, help="timed pairs per novel (3)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.pdnc)
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        scores, timings = run(args.pdnc, args.novels, not args.no_timing, args.repeat)
    except BenchError as e:
        print(f"attribution: {e}", file=sys.stderr)
        return 2
    print(as_json(scores, timings) if args.json else report(scores, timings))
    return 0


def run(
    pdnc: Path, novels: str | None, timed: bool, repeat: int
) -> tuple[dict[str, Score], dict[str, Timing]]:
    if not pdnc.is_dir():
        raise BenchError(f"{pdnc}: missing (PDNC_DIR: a checkout of the PDNC repository)")
    index = read_index(pdnc)
    data = pdnc / "data"
    if not data.is_dir():
        raise BenchError(f"{data}: missing")
    names = sorted(p.name for p in data.iterdir() if p.is_dir())
    if novels:
        wanted = [n.strip() for n in novels.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise BenchError(f"{data}: no novel {', '.join(unknown)}")
        names = wanted
    scores: dict[str, Score] = {}
    timings: dict[str, Timing] = {}
    scratch = Path(tempfile.mkdtemp(prefix="narrate-attribution-"))
    try:
        for name in names:
            novel = read_novel(pdnc, name, index.get(name))
            print(f"[{name}] attributing...", file=sys.stderr, flush=True)
            scores[name] = score(novel, run_narrate(novel, scratch))
            if timed:
                print(f"[{name}] timing {repeat} pairs...", file=sys.stderr, flush=True)
                timings[name] = timing(novel, scratch, repeat)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return scores, timings


if __name__ == "__main__":
    sys.exit(main())
