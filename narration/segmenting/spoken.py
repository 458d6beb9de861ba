"""A block's raw text as it is spoken: inline markers (illustrations, notes, footnote
marks, Markdown images, links and comments, HTML tags and scripts) removed and listed,
its lines joined."""

from __future__ import annotations

import re
from collections.abc import Callable

from narration.segmenting.blocks import Raw, Segmenting
from narration.segmenting.inline import (
    HTML_BREAKS,
    HTML_TAG,
    TAG_GAP,
    close_tag_gaps,
    join_lines,
    spoken_text,
)

_INLINE = re.compile(
    r"(?P<illustration>\[\s*Illustration\b[^\]]{0,2000}\])"
    r"|(?P<note>\[\s*(?:Transcriber|Editor|TN)['’]?s?\s*[Nn]ote[^\]]{0,2000}\])"
    r"|(?P<footnote>\[\s*Footnote\b[^\]]{0,2000}\])"
    r"|(?P<marker>\{\d{1,3}\}|\[\d{1,3}\])"
    r"|(?P<image>!\[[^\]\n]{0,500}\]\([^)\s]{1,500}(?:\s+\"[^\"\n]{0,200}\")?\))"
    r"|(?P<link>\[(?P<label>[^\]\n]{1,500})\]\((?P<url>[^)\s]{1,500}(?:\s+\"[^\"\n]{0,200}\")?)\))"
    r"|(?P<comment><!--.{0,2000}?-->)"
    r"|(?P<autolink><(?:https?|ftp|mailto):[^\s<>]{1,500}>)"
    rf"|(?P<html>{HTML_TAG.pattern})",
    re.I | re.S,
)
_INLINE_REASONS = {
    "illustration": "illustration marker",
    "note": "transcriber's note",
    "footnote": "footnote",
    "marker": "footnote marker",
    "image": "image",
    "comment": "comment",
    "autolink": "link target (a web address)",
}
_MARKDOWN_ONLY = frozenset({"image", "link", "comment", "autolink", "html"})
_SCRIPT_OPEN = re.compile(r"<(script|style)\b[^>\n]{0,1000}>", re.I)


def _cut_scripts(raw: Raw, text: str, f: Segmenting) -> str:
    """<script> and <style> elements removed whole (listed), blanked to the same length so
    every later offset still finds its line. One search per kind for its closing tag: an
    element never closed is left to the tag rule, and the scan stays linear."""
    lower = text.lower()
    out, pos, unclosed = [], 0, set()
    for m in _SCRIPT_OPEN.finditer(text):
        name = m.group(1).lower()
        if m.start() < pos or name in unclosed:
            continue
        end = lower.find(f"</{name}", m.end())
        close = text.find(">", end) if end >= 0 else -1
        if close < 0:
            unclosed.add(name)
            continue
        f.remove(raw.line(m.start()), text[m.start() : close + 1], "script or style (not text)")
        out.append(text[pos : m.start()])
        out.append(re.sub(r"[^\n]", " ", text[m.start() : close + 1]))
        pos = close + 1
    return "".join(out) + text[pos:] if out else text


_INLINE_HINT = re.compile(r"[\[{<]")


def spoken(raw: Raw, f: Segmenting) -> str:
    """A block's raw text as spoken: inline markers removed (reported), lines joined."""
    text = raw.text
    if f.markdown and "<" in text:
        text = _cut_scripts(raw, text, f)
    if _INLINE_HINT.search(text):

        def repl(m: re.Match[str]) -> str:
            kind = m.lastgroup
            assert kind is not None
            if kind in _MARKDOWN_ONLY and not f.markdown:
                return m.group(0)
            if kind == "link":
                f.remove(raw.line(m.start("url")), m.group("url"), "link target (a web address)")
                return m.group("label")
            if kind == "html":
                tag = m.group("tag").lower()
                f.remove(raw.line(m.start()), m.group(0), "image" if tag == "img" else "HTML tag")
                return " " if tag in HTML_BREAKS else TAG_GAP
            f.remove(raw.line(m.start()), m.group(0), _INLINE_REASONS[kind])
            return " "

        text = _INLINE.sub(repl, text)
        if TAG_GAP in text:
            text = close_tag_gaps(text)
    return spoken_text(join_lines(text.split("\n")))


def lines_raw(lines: list[tuple[int, str]], strip: Callable[[str], str] | None = None) -> Raw:
    return Raw.of([(no, strip(t) if strip else t) for no, t in lines])


def strip_quote_marker(t: str) -> str:
    return re.sub(r"^\s{0,3}>+ ?", "", t)


def strip_bullet(t: str) -> str:
    return re.sub(r"^(\s*)[-*+•](\s+)", r"\1\2", t)
