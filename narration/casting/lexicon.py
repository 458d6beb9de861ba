"""Pronunciation fixes from voices.yaml's lexicons, applied to what an engine is given."""

from __future__ import annotations

import re
from collections.abc import Mapping


class Lexicon:
    """Whole-word pronunciation fixes. A key in lower case matches any case; a key with
    capitals matches only that spelling (so `US: U S` leaves the word "us" alone)."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._exact = {k: v for k, v in entries.items() if k != k.lower()}
        self._folded = {k.casefold(): v for k, v in entries.items() if k == k.lower()}
        keys = sorted(entries, key=len, reverse=True)
        self._pattern = (
            re.compile(
                r"(?<![\w])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w])",
                re.IGNORECASE,
            )
            if keys
            else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    def apply(self, text: str) -> str:
        if self._pattern is None:
            return text

        def replace(match: re.Match[str]) -> str:
            word = match.group(0)
            if word in self._exact:
                return self._exact[word]
            return self._folded.get(word.casefold(), word)

        return self._pattern.sub(replace, text)
