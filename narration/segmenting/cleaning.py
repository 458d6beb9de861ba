"""The file's lines made fit to read before they are cut into blocks: control characters
and odd spaces, Project Gutenberg's header, footer and licence, and in Markdown the
metadata block at the top and <script> or <style> elements over several lines; all of it
listed as removed, with why."""

from __future__ import annotations

import re
import unicodedata

from narration.segmenting.blocks import Segmenting
from narration.segmenting.inline import (
    INVISIBLE,
    NEWLINES,
    RESERVED,
    SPACES,
    SUSPECT,
    TERMINAL,
    TERMINAL_REASON,
)

_PG_START = re.compile(
    r"^\s*\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG|^\s*\*END\*\s*THE SMALL PRINT", re.I
)
_PG_END = re.compile(
    r"^\s*\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG|^\s*End of (?:the |this )?Project "
    r"Gutenberg",
    re.I,
)


def clean_lines(text: str, f: Segmenting) -> list[tuple[int, str]]:
    """Lines with control characters removed (and reported) and odd spaces made plain."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = NEWLINES.sub("\n", text)
    out: list[tuple[int, str]] = []
    for no, line in enumerate(text.split("\n"), 1):
        if not line.isascii():
            line = INVISIBLE.sub("", line)
        if "\x1b" in line or "\x9b" in line:  # a terminal log's colours: not text
            escapes = TERMINAL.findall(line)
            if escapes:
                line = TERMINAL.sub("", line)
                f.remove(no, "".join(escapes), TERMINAL_REASON)
        if SUSPECT.search(line):
            bad: dict[str, list[str]] = {}
            chars = []
            for ch in line:
                cat = unicodedata.category(ch)
                reserved = ch in RESERVED or "\uf700" <= ch <= "\uf77f"
                if ch == "\t" or not (cat in ("Cc", "Cs") or ch == "\ufffd" or reserved):
                    chars.append(ch)
                    continue
                reason = (
                    "replacement character: a character was already lost before this file was saved"
                    if ch == "\ufffd"
                    else "private-use character that narrate reserves"
                    if reserved
                    else "lone surrogate (not a character)"
                    if cat == "Cs"
                    else "control character"
                )
                bad.setdefault(reason, []).append("\ufffd" if cat == "Cs" else ch)
                chars.append(" ")
            line = "".join(chars)
            for reason, found in bad.items():
                f.remove(no, "".join(found), reason)
        if "\t" in line or not line.isascii():
            line = SPACES.sub(" ", line)
        out.append((no, line.rstrip()))
    return out


def strip_gutenberg(lines: list[tuple[int, str]], f: Segmenting) -> list[tuple[int, str]]:
    """Project Gutenberg's header, footer and licence, removed whole."""
    start = next((i for i, (_, t) in enumerate(lines[:2000]) if _PG_START.match(t)), None)
    end_from = start + 1 if start is not None else 0
    end = next((i for i in range(end_from, len(lines)) if _PG_END.match(lines[i][1])), None)
    if end is not None and start is None and end < len(lines) // 2:
        end = None  # a mention near the top is not the footer
    if end is not None:
        f.remove_lines(lines[end:], "Project Gutenberg footer and licence")
        lines = lines[:end]
    if start is not None:
        f.remove_lines(lines[: start + 1], "Project Gutenberg header")
        lines = lines[start + 1 :]
    return lines


def strip_front_matter(lines: list[tuple[int, str]], f: Segmenting) -> list[tuple[int, str]]:
    """A Markdown file's YAML metadata block (between `---` lines at the top): not read."""
    if not lines or lines[0][1].strip() != "---":
        return lines
    for k in range(1, min(len(lines), 80)):
        t = lines[k][1]
        if t.strip() in ("---", "..."):
            f.remove_lines(lines[: k + 1], "metadata block (front matter)")
            return lines[k + 1 :]
        if t.strip() and not re.match(r"^(?:[\w-]+\s*:|\s+\S|-\s)", t):
            return lines  # not YAML: a separator line and text
    return lines


_SCRIPT_LINE = re.compile(r"^\s*<(script|style)\b[^>]{0,1000}>", re.I)


def strip_script_lines(lines: list[tuple[int, str]], f: Segmenting) -> list[tuple[int, str]]:
    """A Markdown file's <script> or <style> element that runs over several lines (blank
    ones too, which would cut it into paragraphs): its lines removed whole, listed."""
    out: list[tuple[int, str]] = []
    k = 0
    while k < len(lines):
        m = _SCRIPT_LINE.match(lines[k][1])
        closing = f"</{m.group(1).lower()}" if m else ""
        if m and closing not in lines[k][1].lower():
            end = next(
                (j for j in range(k + 1, len(lines)) if closing in lines[j][1].lower()), None
            )
            if end is not None and lines[end][1].lower().rstrip().endswith(">"):
                f.remove_lines(lines[k : end + 1], "script or style (not text)")
                k = end + 1
                continue
        out.append(lines[k])
        k += 1
    return out
