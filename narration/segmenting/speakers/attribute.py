"""Attribution: who speaks each quotation, by sieves from the surest evidence to the
weakest, each leaving alone what an earlier one decided (after Muzny et al., "A two-stage
sieve approach for quote attribution", EACL 2017, without a parser):

1. explicit: a verb of speech with a name, title or pronoun beside the quotation ("said
   Holmes", "Holmes said", "said he", "I said"; "Emma said," closing the paragraph before);
   a pronoun is, in a conversation, the one who spoke before the last when of its gender,
   else the last person of its gender named or heard; "she added" is the last speaker
   going on. An action beside it ("Holmes placed the lamp") counts, labelled narration;
2. a paragraph whose narration names one character, or whose sentence leading into the
   quotation opens with one ("Emma turned to Harriet. “…”");
3. a turn answers whom the turn before addressed ("…, Mr. Darcy," said Miss Bingley);
4. turn-taking: the gaps between known turns of a conversation filled by alternation.

Where the evidence is weak it abstains (speaker None): a wrong voice is worse than the
narrator's. A pronoun never gives a character of the other gender. The patterns the sieves
read (an attribution, a vocative) are evidence.py's.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from narration.segmenting.inline import WORD
from narration.segmenting.sentences import wordset
from narration.segmenting.speakers.characters import Cast, Person
from narration.segmenting.speakers.evidence import (
    BEFORE_VERB,
    OPENING_QUOTE,
    SENTENCE_END,
    Said,
    explicit_who,
    vocatives,
)
from narration.segmenting.speakers.names import (
    Mention,
    name_mentions,
    outside,
)
from narration.segmenting.speakers.quotes import Paragraph, Stretch


@dataclass
class Turn:
    """A quotation being attributed: its paragraphs, text around it, and its speaker."""

    index: int
    para: int  # index of its first paragraph in the chapter's list
    pieces: list[Stretch]
    speaker: Person | None = None
    evidence: str | None = None
    #: an explicit attribution names someone narrate cannot resolve (hold off guessing)
    blocked: bool = False
    gender: str | None = None  # the gender a pronoun attribution gives
    #: the attribution names someone outside the conversation ("said the coachman"):
    #: turn-taking passes over it
    outsider: bool = False
    addressed: list[Person] = field(default_factory=list)


@dataclass(frozen=True)
class Around:
    """The narration around a quotation: before its first piece in that paragraph, between
    its pieces in one paragraph, and after its last piece up to the next quoted stretch."""

    before: str
    betweens: tuple[str, ...]
    after: str


def around(pieces: Sequence[Stretch], paragraphs: Sequence[Paragraph]) -> Around:
    first, last = pieces[0], pieces[-1]
    before = paragraphs[first.paragraph].segment.text[: first.start]
    betweens = tuple(
        paragraphs[a.paragraph].segment.text[a.end : b.start]
        for a, b in itertools.pairwise(pieces)
        if a.paragraph == b.paragraph
    )
    after = paragraphs[last.paragraph].segment.text[last.end :]
    q = _NEXT_QUOTE.search(after, 1)
    if q:
        after = after[: q.start()]
    return Around(before, betweens, after)


_NEXT_QUOTE = re.compile('["“‘]')


@dataclass
class Recent:
    """Who was last named or heard, by gender, as a chapter is read (for pronouns)."""

    seen: list[Person] = field(default_factory=list)

    def add(self, p: Person) -> None:
        if p in self.seen:
            self.seen.remove(p)
        self.seen.append(p)
        if len(self.seen) > 12:
            self.seen.pop(0)

    def last(self, gender: str, exclude: Sequence[Person] = ()) -> Person | None:
        for p in reversed(self.seen):
            if p in exclude:
                continue
            g = p.gender()[0]
            if g == gender:
                return p
        return None


class Attributor:
    """Attributes one chapter's quotations, given the book's characters."""

    def __init__(
        self, cast: Cast, narrator: Person | None, names: Mapping[str, list[Mention]]
    ) -> None:
        self.cast = cast
        self.narrator = narrator
        self.names = names  # segment id -> the names in its text

    def resolve_name(self, who: str) -> Person | None:
        ms = name_mentions(who, None)
        if not ms:
            return None
        return self.cast.lookup(ms[0])

    def chapter(
        self, paragraphs: Sequence[Paragraph], quotations: Sequence[Sequence[Stretch]]
    ) -> list[Turn]:
        turns = [
            Turn(index=n, para=q[0].paragraph, pieces=list(q)) for n, q in enumerate(quotations)
        ]
        by_para: dict[int, list[Turn]] = {}
        for t in turns:
            for p in t.pieces:
                by_para.setdefault(p.paragraph, []).append(t)
        recent = Recent()
        # 1. explicit, reading in order so pronouns see who came before
        for k, para in enumerate(paragraphs):
            text = para.segment.text
            here = by_para.get(k, [])
            spans = [(p.start, p.end) for t in here for p in t.pieces if p.paragraph == k]
            narration_mentions = [
                (m, p)
                for m in outside(self.names[para.segment.id], spans)
                if (p := self.cast.lookup(m)) is not None
            ]
            first_quote = min(
                (p.start for t in here for p in t.pieces if p.paragraph == k), default=len(text)
            )
            for m, p in narration_mentions:
                if m.start < first_quote:
                    recent.add(p)
            for t in here:
                if t.para != k:
                    continue
                inner = [paragraphs[p.paragraph].segment.text[p.start : p.end] for p in t.pieces]
                for who, _ in (v for piece in inner for v in vocatives(piece)):
                    p = self.resolve_name(who)
                    if p is not None and p not in t.addressed:
                        t.addressed.append(p)
                # who the quotation names is seldom who speaks it
                named = [
                    person
                    for p in t.pieces
                    for m in self.names[p.segment]
                    if p.start <= m.start < p.end and (person := self.cast.lookup(m)) is not None
                ]
                before = turns[t.index - 1] if t.index else None
                prev = before if before and _adjacent(before, t, paragraphs) else None
                before2 = turns[t.index - 2] if t.index > 1 else None
                prev2 = (
                    before2 if prev and before2 and _adjacent(before2, prev, paragraphs) else None
                )
                self._explicit(t, paragraphs, recent, [*t.addressed, *named], prev, prev2)
                if t.speaker is not None:
                    recent.add(t.speaker)
            for m, p in narration_mentions:
                if m.start >= first_quote:
                    recent.add(p)
        # 2. one character acting in the quotation's paragraph
        for t in turns:
            if t.speaker is None and not t.blocked:
                self._actor(t, paragraphs, by_para)
        # 3-4. conversation: vocatives and turn-taking, until nothing changes
        self._conversation(turns, paragraphs)
        return turns

    def _explicit(
        self,
        t: Turn,
        paragraphs: Sequence[Paragraph],
        recent: Recent,
        named: Sequence[Person],
        prev: Turn | None,
        prev2: Turn | None = None,
    ) -> None:
        near = around(t.pieces, paragraphs)
        before, betweens, after = near.before, near.betweens, near.after
        k = t.pieces[0].paragraph
        where = paragraphs[k].segment.id
        if not before.strip(" \"“‘'") and k > 0 and paragraphs[k - 1].introduces:
            # 'Emma said,' closing the paragraph before, the quotation opening the next
            before, where = paragraphs[k - 1].segment.text, paragraphs[k - 1].segment.id
        found = explicit_who(before, betweens, after)
        if found is None:
            self._subject(t, where, before, recent)
            return
        who, label = found.who, found.label
        lowered = who.lower()
        if lowered == "i":
            if self.narrator is not None:
                t.speaker, t.evidence = self.narrator, label
            else:
                t.blocked = True
            return
        if lowered in ("he", "she"):
            gender = "male" if lowered == "he" else "female"
            self._pronoun(t, gender, found, recent, named, prev, prev2)
            return
        p = self.resolve_name(who)
        if p is not None:
            t.speaker, t.evidence = p, label
        else:
            t.blocked = True
            np_gender = _np_gender(lowered)
            if np_gender:
                t.gender = np_gender
            t.outsider = lowered.split()[-1] in _OUTSIDERS

    def _pronoun(
        self,
        t: Turn,
        gender: str,
        found: Said,
        recent: Recent,
        named: Sequence[Person],
        prev: Turn | None,
        prev2: Turn | None,
    ) -> None:
        """ "said he", "she added": the last speaker going on, in a conversation the one
        who spoke before the last, else the last person of that gender named or heard."""
        evidence, label = found.evidence, found.label
        t.gender = gender
        verb = (
            evidence.split()[-1].lower()
            if evidence.split()[0].lower() in ("he", "she")
            else evidence.split()[0].lower()
        )
        if (
            verb in _GOING_ON
            and prev is not None
            and prev.speaker is not None
            and prev.speaker.gender()[0] == gender
        ):
            # "she added": the one who spoke last goes on
            t.speaker, t.evidence = prev.speaker, label
            return
        p = None
        if (
            prev is not None
            and prev2 is not None
            and prev.speaker is not None
            and prev2.speaker is not None
            and prev2.speaker is not prev.speaker
            and prev2.speaker.gender()[0] == gender
            and prev2.speaker not in named
        ):
            # in a conversation, "he said" answers: the one who spoke before the last
            p = prev2.speaker
        p = p or recent.last(gender, named) or recent.last(gender)
        if p is not None:
            t.speaker, t.evidence = p, label
        else:
            t.blocked = True

    def _subject(self, t: Turn, segment_id: str, before: str, recent: Recent) -> None:
        """A verb of speech ending the narration before the quotation, its subject the first
        person named in that sentence (or a pronoun opening it)."""
        before = OPENING_QUOTE.sub("", before)
        m = BEFORE_VERB.search(before, max(0, len(before) - 200))
        if m is None:
            return
        ends = [e.end() for e in SENTENCE_END.finditer(before, 0, m.start())]
        start = ends[-1] if ends else 0
        for mention in self.names[segment_id]:
            if start <= mention.start < m.start():
                p = self.cast.lookup(mention)
                if p is not None:
                    t.speaker = p
                    t.evidence = f"explicit: {mention.text} … {m.group(0).strip(' ,:—–-')}"
                    return
        opening = before[start : m.start()].split()
        if opening and opening[0] in ("He", "She", "he", "she"):
            gender = "male" if opening[0].lower() == "he" else "female"
            t.gender = gender
            p = recent.last(gender)
            if p is not None:
                t.speaker = p
                t.evidence = f"explicit: {opening[0]} … {m.group(0).strip(' ,:—–-')}"

    def _actor(
        self, t: Turn, paragraphs: Sequence[Paragraph], by_para: dict[int, list[Turn]]
    ) -> None:
        k = t.para
        if len(by_para.get(k, [])) != 1:
            return
        text = paragraphs[k].segment.text
        spans = [(p.start, p.end) for p in t.pieces if p.paragraph == k]
        people = []
        for m in outside(self.names[paragraphs[k].segment.id], spans):
            p = self.cast.lookup(m)
            if p is not None and p not in people and not _possessive(text, m):
                people.append(p)
        if len(people) == 1 and (t.gender is None or people[0].gender()[0] == t.gender):
            t.speaker, t.evidence = people[0], "narration names one character"
            return
        if not people and k > 0 and not by_para.get(k - 1) and not t.blocked:
            # a speech alone in its paragraph after narration naming one person acting
            before = paragraphs[k - 1]
            named: list[Person] = []
            for m in self.names[before.segment.id]:
                p = self.cast.lookup(m)
                if p is not None and p not in named and not _possessive(before.segment.text, m):
                    named.append(p)
            if len(named) == 1 and (t.gender is None or named[0].gender()[0] == t.gender):
                t.speaker, t.evidence = named[0], "narration before names one character"
                return
        # several named: the subject of the sentence leading into the quotation
        # ("Emma turned to Harriet. “…”")
        first = spans[0][0] if spans else len(text)
        lead = text[: max(0, first - 1)].rstrip().rstrip(".!?,:;—–-")
        cut = max(lead.rfind(". "), lead.rfind("! "), lead.rfind("? "), lead.rfind('" '))
        sentence_start = cut + 2 if cut >= 0 else 0
        while sentence_start < len(lead) and lead[sentence_start] in " \"“‘'":
            sentence_start += 1
        for m in outside(self.names[paragraphs[k].segment.id], spans):
            if m.start >= first:
                break
            if m.start <= sentence_start + 1 and m.start >= sentence_start:
                p = self.cast.lookup(m)
                if p is not None and (t.gender is None or p.gender()[0] == t.gender):
                    t.speaker, t.evidence = p, "narration: its subject leads into the quotation"
                return

    def _conversation(self, turns: list[Turn], paragraphs: Sequence[Paragraph]) -> None:
        """Turn-taking in each run of adjacent turns: with two speakers known (from the
        attributions in the run, or one of them and who they address), a turn is spoken by
        the speaker of the anchor an even number of turns away, else by the other; where the
        anchors before and after disagree, by neither."""
        run: list[Turn] = []
        for t in turns:
            if run and not _adjacent(run[-1], t, paragraphs):
                self._run(run, paragraphs)
                run = []
            run.append(t)
        if run:
            self._run(run, paragraphs)

    def _named_around(
        self, run: list[Turn], paragraphs: Sequence[Paragraph], speaker: Person
    ) -> list[Person]:
        """The people named in the narration of a conversation and the paragraph before it,
        other than `speaker`."""
        first, last = run[0].para, run[-1].pieces[-1].paragraph
        spans: dict[int, list[tuple[int, int]]] = {}
        for t in run:
            for p in t.pieces:
                spans.setdefault(p.paragraph, []).append((p.start, p.end))
        out: list[Person] = []
        for k in range(max(0, first - 1), last + 1):
            seg = paragraphs[k].segment
            for m in outside(self.names[seg.id], spans.get(k, [])):
                p = self.cast.lookup(m)
                if p is not None and p is not speaker and p not in out:
                    out.append(p)
        return out

    def _run(self, run: list[Turn], paragraphs: Sequence[Paragraph]) -> None:
        """Fill each gap between the run's known turns by alternation: between A and B an
        odd number of turns apart, A B A B…; between A and A an even number apart, A and
        the other one (the neighbouring known speaker, whom A addresses, or the one other
        person the narration names); at the run's ends, up to MAX_REACH turns out.
        Alternation that the anchors contradict fills nothing."""
        # a turn answers whom the turn before addressed ("…, Mr. Darcy," said Miss Bingley)
        for i in range(1, len(run)):
            t, before = run[i], run[i - 1]
            if t.outsider or t.speaker is not None:
                continue
            if before.speaker is None or len(before.addressed) != 1:
                continue
            p = before.addressed[0]
            if p is before.speaker or p in t.addressed:
                continue
            if t.gender is not None and p.gender()[0] != t.gender:
                continue
            t.speaker, t.evidence = p, "addressed in the turn before"
        anchors = [i for i, t in enumerate(run) if t.speaker is not None]
        if not anchors:
            return
        guesses: list[tuple[int, Person]] = []
        bounds = [None, *anchors, None]
        for left, right in itertools.pairwise(bounds):
            lo = 0 if left is None else left + 1
            hi = len(run) if right is None else right
            if lo >= hi:
                continue
            a_sp = run[left].speaker if left is not None else None
            b_sp = run[right].speaker if right is not None else None
            for i in range(lo, hi):
                if left is not None and right is not None:
                    assert a_sp is not None and b_sp is not None
                    if (right - left) % 2 == 1 and a_sp is not b_sp:
                        p = a_sp if (i - left) % 2 == 0 else b_sp
                    elif (right - left) % 2 == 0 and a_sp is b_sp:
                        x = self._other(run, left, right, paragraphs)
                        p = a_sp if (i - left) % 2 == 0 else x
                    else:
                        p = None
                elif left is not None:
                    assert a_sp is not None
                    if i - left > MAX_REACH:
                        break
                    x = self._other(run, left, left, paragraphs)
                    p = a_sp if (i - left) % 2 == 0 else x
                else:
                    assert right is not None and b_sp is not None
                    if right - i > MAX_REACH:
                        continue
                    x = self._other(run, right, right, paragraphs)
                    p = b_sp if (right - i) % 2 == 0 else x
                t = run[i]
                if p is None or p in t.addressed or t.outsider:
                    continue
                if t.gender is not None and p.gender()[0] != t.gender:
                    continue
                guesses.append((i, p))
        for i, p in guesses:
            run[i].speaker, run[i].evidence = p, "turn-taking"

    def _other(
        self, run: list[Turn], left: int, right: int, paragraphs: Sequence[Paragraph]
    ) -> Person | None:
        """The one talking with the speaker of run[left] (who is also run[right]'s): the
        known speaker just outside the gap, else whom they address, else the one other
        person the narration names."""
        speaker = run[left].speaker
        assert speaker is not None
        for k in (left - 1, right + 1):
            if 0 <= k < len(run):
                sp = run[k].speaker
                if sp is not None and sp is not speaker:
                    return sp
        heard: dict[Person, int] = {}
        for t in run:
            if t.speaker is speaker:
                for p in t.addressed:
                    if p is not speaker:
                        heard[p] = heard.get(p, 0) + 1
        if heard:
            return max(heard, key=lambda p: heard[p])
        others = self._named_around(run, paragraphs, speaker)
        return others[0] if len(others) == 1 else None


#: How many turns past the last known speaker turn-taking reaches at a conversation's end.
MAX_REACH = 12


#: Verbs that carry on a speech: "she added" is the last speaker going on.
_GOING_ON = wordset("added continued went resumed pursued repeated persisted")


_NP_MALE = frozenset(
    [
        "father",
        "man",
        "gentleman",
        "boy",
        "brother",
        "son",
        "husband",
        "uncle",
        "king",
        "lord",
        "sir",
        "doctor's",
    ]
)


#: Who an attribution may name from outside a conversation ("said the coachman",
#: "cried a voice"), never one of its two speakers seen from outside ("her companion").
_OUTSIDERS = wordset(
    "coachman driver cabman servant maid housemaid footman butler waiter porter clerk "
    "officer policeman constable inspector magistrate judge landlord landlady boatman "
    "guard conductor sailor soldier messenger stranger voice voices crowd someone somebody "
    "everybody everyone another others all several many few newcomer"
)


_NP_FEMALE = frozenset(
    ["mother", "woman", "lady", "girl", "sister", "daughter", "wife", "aunt", "queen"]
)


def _np_gender(np: str) -> str | None:
    words = np.split()
    head = words[-1] if words else ""
    if head in _NP_MALE:
        return "male"
    if head in _NP_FEMALE:
        return "female"
    return None


def _possessive(text: str, m: Mention) -> bool:
    return text[m.end : m.end + 2] in ("'s", "’s")


def _adjacent(a: Turn, b: Turn, paragraphs: Sequence[Paragraph]) -> bool:
    """Whether two turns are one conversation: consecutive paragraphs, or one short
    paragraph of narration between them."""
    last_a = a.pieces[-1].paragraph
    first_b = b.pieces[0].paragraph
    if first_b - last_a == 1:
        return True
    if first_b - last_a == 2:
        mid = paragraphs[last_a + 1].segment.text
        return len(mid) < 400 and len(WORD.findall(mid)) <= 40
    return False
