"""voices.yaml's rules: which segments a rule matches (every matcher it sets agrees), the
dialogue rules that match the quotations inside narration, how `narrate cast` names a rule,
and the rules that match nothing. A new kind of casting rule goes here.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from narration.config import RuleConfig, VoicesConfig, text_matches
from narration.errors import Problem
from narration.model import (
    Book,
    Chapter,
    Segment,
    Speakers,
)


def rule_label(index: int, rule: RuleConfig) -> str:
    """How `narrate cast` names a rule: its position, and its name if it has one."""
    return f"rules[{index}]" + (f" {rule.name}" if rule.name else "")


def rule_matches(rule: RuleConfig, chapter: Chapter, segment: Segment) -> bool:
    """True when every matcher the rule sets agrees with the segment (matchers are ANDed)."""
    if rule.kind == "dialogue":
        # Dialogue rules match quotations inside narration, handled by `_speech_parts`.
        return False
    if rule.file is not None and not fnmatch.fnmatchcase(chapter.file, rule.file):
        return False
    if rule.chapter is not None and not fnmatch.fnmatchcase(chapter.id, rule.chapter):
        return False
    if rule.kind is not None and rule.kind != segment.kind:
        return False
    if rule.id is not None and rule.id != segment.id:
        return False
    source = segment.source
    if rule.author is not None and not text_matches(rule.author, source.author if source else None):
        return False
    return not (
        rule.work is not None and not text_matches(rule.work, source.work if source else None)
    )


def dialogue_rule_matches(rule: RuleConfig, chapter: Chapter, segment: Segment) -> bool:
    """True when a dialogue rule applies to the quotations inside a narration segment."""
    if rule.kind != "dialogue" or segment.kind != "narration":
        return False
    if rule.file is not None and not fnmatch.fnmatchcase(chapter.file, rule.file):
        return False
    if rule.chapter is not None and not fnmatch.fnmatchcase(chapter.id, rule.chapter):
        return False
    return rule.id is None or rule.id == segment.id


def first_rule(
    rules: Sequence[RuleConfig], chapter: Chapter, segment: Segment
) -> tuple[int, RuleConfig] | None:
    """The first rule that matches a segment, with its index; None: the default voice."""
    return next(((i, r) for i, r in enumerate(rules) if rule_matches(r, chapter, segment)), None)


def dialogue_rule(
    rules: Sequence[RuleConfig], chapter: Chapter, segment: Segment
) -> tuple[int, RuleConfig] | None:
    """The first dialogue rule for a narration segment's quotations, with its index."""
    return next(
        ((i, r) for i, r in enumerate(rules) if dialogue_rule_matches(r, chapter, segment)), None
    )


def unused_rules(
    book: Book,
    config: VoicesConfig,
    path: Path,
    lines: Mapping[Any, int] | None = None,
    speakers: Speakers | None = None,
) -> list[Problem]:
    """Rules that match nothing in the current seeds: warnings, not errors. A dialogue rule
    matches a narration segment holding a quotation (any narration one, without
    `speakers`)."""
    warnings = []
    for i, rule in enumerate(config.rules):
        hit = any(
            rule_matches(rule, ch, seg)
            or (
                dialogue_rule_matches(rule, ch, seg)
                and (speakers is None or bool(speakers.in_segment(seg.id)))
            )
            for ch in book.chapters
            for seg in ch.segments
        )
        if not hit:
            line = (lines or {}).get(("rules", i))
            warnings.append(
                Problem(
                    path, line, f"{rule_label(i, rule)} matches no segment in the current seeds"
                )
            )
    return warnings
