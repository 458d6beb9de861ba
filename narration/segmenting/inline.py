"""Text as characters and as spoken: what the segmenter and the proof that no word is
lost agree on. Invisible characters, terminal escape sequences, Markdown's character
references and inline HTML, emphasis marks, abbreviations read as words, hard-wrapped
lines joined.
"""

from __future__ import annotations

import html.entities
import re
import unicodedata
from collections.abc import Iterable

NEWLINES = re.compile(r"\r\n|\r|\u2028|\u2029|\x85")
#: Invisible formatting characters: dropped from the spoken text (and by the word checker).
INVISIBLE = re.compile("[\u00ad\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
SPACES = re.compile("[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
#: Control characters, and the private-use characters narrate reserves: U+E000/U+E001 mark
#: phonemes in spoken text (model.Line), U+F700-U+F77F stand in for referenced marks.
SUSPECT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffd\ue000\ue001\uf700-\uf77f]")
RESERVED = "\ue000\ue001"
#: ECMA-48 escape sequences (a terminal's colours, cursor moves, window titles): CSI (ESC [
#: or U+009B, parameters, a final letter), strings (OSC ESC ], DCS ESC P, ... up to BEL or
#: ESC \\), character-set and the common two-character escapes. Invisible on a terminal, so
#: removed whole (and listed), before the words are counted. No pattern takes an `&`, `#`
#: or `;` after the ESC, so no removal can make or break a character reference.
TERMINAL = re.compile(
    "(?:\x1b\\[|\x9b)[0-?]*[ !\"$']?[@-~]"
    "|\x1b[\\]P^_X][^\x07\x1b\n\r\x85\u2028\u2029]{0,2000}(?:\x07|\x1b\\\\)"
    "|\x1b[()*+][0-9A-Za-z]"
    "|\x1b[78=>cDEHMNOZ\\\\]"
)


TERMINAL_REASON = "terminal escape sequence"
#: Markdown's inline HTML (CommonMark "raw HTML"): a tag is markup, not text to read aloud.
HTML_TAG = re.compile(
    r"</?(?P<tag>[A-Za-z][A-Za-z0-9-]{0,40})"
    r"(?:[ \t]+[^\s\"'>/=]{1,100}(?:[ \t]*=[ \t]*(?:\"[^\"\n]{0,1000}\"|'[^'\n]{0,1000}'"
    r"|[^\s\"'=<>`]{1,1000}))?){0,50}[ \t]*/?>"
)


#: Tags that end a line of text where they stand (so "one<br>two" is two words, as
#: rendered), where an inline tag such as <em> leaves its neighbours joined.
HTML_BREAKS = frozenset(
    (
        *("address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt"),
        *("figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header"),
        *("hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td"),
        *("tfoot", "th", "thead", "tr", "ul"),
    )
)


_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
#: Characters that shape Markdown (headings, quotes, tags, links, emphasis). A reference
#: to one is text, never structure (CommonMark): decoded to a private-use stand-in that no
#: rule reacts to, and turned back into the character in everything the segmenter returns.
_STRUCTURAL = "#<>&[](){}!*_`=-~|\\"
_STAND_IN = {c: chr(0xF700 + ord(c)) for c in _STRUCTURAL}
_RESTORE = str.maketrans({v: k for k, v in _STAND_IN.items()})


def _entity(m: re.Match[str]) -> str:
    """A character reference as the character it names (HTML5's table, or a code point);
    left as written if it names none, or a character narrate never reads (a control or
    private-use character, a surrogate, an unassigned code point)."""
    ref = m.group(0)
    if ref[1] == "#":
        try:
            out = chr(int(ref[3:-1], 16) if ref[2] in "xX" else int(ref[2:-1]))
        except (ValueError, OverflowError):
            return ref
    else:
        out = html.entities.html5.get(ref[1:], ref)
        if out == ref:
            return ref
    if out in ("\t", "\n"):  # &Tab; and &NewLine;: white space, within the line
        return " "
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") for c in out):
        return ref
    return "".join(_STAND_IN.get(c, c) for c in out)


def decode_entities(text: str) -> str:
    """`&amp;`, `&mdash;`, `&#233;` as the characters they name (Markdown's character
    references); one naming a Markdown mark is a stand-in for it (see restore)."""
    return _ENTITY.sub(_entity, text) if "&" in text else text


def restore(text: str) -> str:
    """Stand-ins back to the characters their references named."""
    return text.translate(_RESTORE)


def source_text(text: str, file: str) -> str:
    """A seed's text as the segmenter reads it, what every word is accounted against:
    terminal escape sequences gone (after invisible characters, as the segmenter drops them
    first), and in a Markdown file character references decoded."""
    if "\x1b" in text or "\x9b" in text:
        text = TERMINAL.sub("", INVISIBLE.sub("", text))
    return decode_entities(text) if file.lower().endswith(".md") else text


TAG_GAP = "\x00"  # where a tag stood (control characters never reach _spoken)
_TAG_GAPS = re.compile(f"{TAG_GAP}+")


def close_tag_gaps(text: str) -> str:
    """Inline tags removed: neighbours join ("<em>word</em>." is "word."), unless that would
    join two words the source had apart ("un<em>usual" is "un usual"): the text keeps
    exactly the source's words."""

    def gap(m: re.Match[str]) -> str:
        a = text[m.start() - 1] if m.start() else " "
        b = text[m.end()] if m.end() < len(text) else " "
        return "" if _joins_nothing(a) or _joins_nothing(b) else " "

    return _TAG_GAPS.sub(gap, text)


def _joins_nothing(c: str) -> bool:
    return c.isspace() or (unicodedata.category(c)[0] in "PSZ" and c not in "_`")


WORD = re.compile(r"[^\W_]+")
_ABBREVIATIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![^\W_])viz\.", re.I), "namely"),
    (re.compile(r"(?<![^\W_])i\.e\.", re.I), "that is"),
    (re.compile(r"(?<![^\W_])e\.g\.", re.I), "for example"),
    (re.compile(r"(?<![^\W_])etc\.", re.I), "et cetera"),
    (re.compile(r"&c\.", re.I), "et cetera"),
    (re.compile(r"(?<![^\W_])cf\.", re.I), "compare"),
    (re.compile(r"(?<![^\W_])N\.B\.", re.I), "note well"),
)


_SENTENCE_START = re.compile(r"\s+[\"“‘'(\[]*[A-Z0-9À-ÖØ-Þ]")
_ONLY_SPACE = re.compile(r"\s*\Z")
_WORD_NEXT = re.compile(r"\s+[^\W_]")


def expand_abbreviations(text: str) -> str:
    """viz. -> namely, i.e. -> that is, e.g. -> for example, etc. -> et cetera (read as words).

    'etc.' ending a sentence keeps its full stop, so sentence splitting still sees it; the
    others get the comma a reader pauses on ("i.e. the rest" -> "that is, the rest").
    """

    def sub(pattern: re.Pattern[str], words: str, s: str) -> str:
        def repl(m: re.Match[str]) -> str:
            out = words.capitalize() if m.group(0)[0].isupper() else words
            if words == "et cetera":
                if _ONLY_SPACE.match(s, m.end()) or _SENTENCE_START.match(s, m.end()):
                    out += "."
            elif _WORD_NEXT.match(s, m.end()):
                out += ","
            return out

        return pattern.sub(repl, s)

    for pattern, words in _ABBREVIATIONS:
        if pattern.search(text):
            text = sub(pattern, words, text)
    return text


MARKERS = re.compile(r"[_`]+")
_BOLD_OPEN = re.compile(r"(?:(?<=[\s(\[\"“‘'])|^)=+(?=[^\W_])")
_BOLD_CLOSE = re.compile(r"(?<=[^\W_]|[.,;:!?'\")”’])=+(?=[\s.,;:!?)\]\"”’]|$)")
_STAR_OPEN = re.compile(r"(?:(?<=[\s(\[\"“‘'])|^)\*+(?=[^\s*])")
_STAR_CLOSE = re.compile(r"(?<=[^\s*])\*+(?=[\s.,;:!?)\]\"”’]|$)")
_DASHES = re.compile(r"[ \t]*-{2,3}[ \t]*|[ \t]+-[ \t]+")
WHITESPACE = re.compile(r"\s+")


def markup_dropped(text: str) -> str:
    """`_italic_`, `=bold=`, `*emphasis*` and backticks dropped; `--` and ` - ` read as dashes.

    Every underscore and backtick goes: Gutenberg italics mark parts of words too ("They
    _mis_managed it"), and an underscore read aloud is never what a listener wants.
    """
    text = MARKERS.sub("", text)  # _italic_, and _mis_managed: emphasis inside a word
    if "=" in text:
        text = _BOLD_CLOSE.sub("", _BOLD_OPEN.sub("", text))
    if "*" in text:
        text = _STAR_CLOSE.sub("", _STAR_OPEN.sub("", text))
    if "-" in text:
        text = _DASHES.sub(" — ", text)
    return text


def spoken_text(text: str) -> str:
    """Markup dropped, abbreviations read as words, whitespace collapsed, NFC."""
    text = markup_dropped(text)
    text = expand_abbreviations(text)
    text = WHITESPACE.sub(" ", text).strip()
    return unicodedata.normalize("NFC", text)


def join_lines(parts: Iterable[str]) -> str:
    """Hard-wrapped lines joined: a word broken after a hyphen is rejoined, hyphen kept.

    Project Gutenberg texts keep only real hyphens at line ends ("after-/lecture",
    "subject-/matter"), so the hyphen stays and no space is added.
    """
    out: list[str] = []
    prev = ""
    for raw in parts:
        part = raw.strip()
        if not part:
            continue
        if prev:
            glued = (
                prev.endswith("-")
                and not prev.endswith("--")
                and len(prev) > 1
                and prev[-2].isalpha()
                and part[0].isalpha()
            )
            out.append("" if glued else " ")
        out.append(part)
        prev = part
    return "".join(out)
