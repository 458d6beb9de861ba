"""HTML and XHTML documents (a seed of their own, or an EPUB's chapters): structure from the
markup, rendered as the Markdown the segmenter reads.

Headings become `#` headings, `<blockquote>` a quote (a closing `<cite>`, `<footer>` or
"— Name" line its source), lists list items, a poem's lines one pause each. What is not
spoken is taken out and listed with its reason: footnote and endnote references and the
notes themselves, page-break markers, images (their alt text), scripts. Each block is put
on the line where it starts in the document, so messages name the document's own lines.
The text content (what a browser shows, an image's alt text included) is what the proof
that no word is lost checks against.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from lxml import etree
from lxml import html as lxml_html

from ..errors import InputError
from ..model import Removed
from .base import Reading, SourceText

#: Elements whose content is not text at all.
_SKIP = frozenset({"head", "script", "style", "template", "noscript", "svg", "math", "title"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
#: Elements that start a block of their own (the rest are inline).
_BLOCKS = frozenset(
    (
        *("address", "article", "aside", "blockquote", "body", "dd", "div", "dl", "dt"),
        *("figcaption", "figure", "footer", "header", "hr", "li", "main", "nav", "ol", "p"),
        *("pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"),
        *("caption", "center", "hgroup", "details", "summary", "form", "fieldset", "legend"),
        *_HEADINGS,
    )
)
_NOTE_TYPES = frozenset(
    (
        *("footnote", "footnotes", "endnote", "endnotes", "rearnote", "rearnotes", "note"),
        *("notes", "doc-footnote", "doc-endnote", "doc-endnotes"),
    )
)
_NOTE_REF = frozenset({"noteref", "doc-noteref"})
_PAGE_BREAK = frozenset({"pagebreak", "doc-pagebreak"})
#: A letter or an epigraph is read as a quote; its signature or attribution is its source.
_LETTER = frozenset({"z3998:letter", "epigraph", "doc-epigraph", "z3998:epigraph"})
_LETTER_CLASS = re.compile(r"\b(?:letter|epigraph|epistle)\b", re.I)
_SIGNED = frozenset({"cite", "z3998:attribution", "z3998:signature", "doc-credit"})
_SIGNED_CLASS = re.compile(r"\b(?:attribution|signature|signed|source|credit)\b", re.I)
_POEM = re.compile(r"\b(?:poem|verse|stanza|z3998:poem|z3998:verse|z3998:song)\b", re.I)
#: Parts of a book that are not read, by epub:type (or role) and what they are.
NOT_READ = {
    "copyright-page": "copyright page",
    "colophon": "colophon",
    "imprint": "imprint",
    "imprimatur": "imprimatur",
    "titlepage": "title page",
    "halftitlepage": "half-title page",
    "toc": "table of contents",
    "landmarks": "landmarks",
    "loi": "list of illustrations",
    "lot": "list of tables",
    "page-list": "list of pages",
    "cover": "cover page",
    "doc-toc": "table of contents",
    "doc-colophon": "colophon",
    "doc-pagelist": "list of pages",
}
_SHORT_MARK = re.compile(r"^\s*[\[(]?(?:\d{1,3}|[*†‡§¶]{1,3}|[a-z])[\])]?\s*$")
_WS = re.compile(r"\s+")
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)[\"']")
_META_CHARSET = re.compile(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9._-]+)", re.I)


def read_html(path: Path) -> Reading:
    """An .html/.xhtml seed: one document, its title from <title> when it has no heading."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the file: {exc.strerror or exc}") from None
    root = parse_document(data, path)
    title = _text(root.find(".//title")) or None
    text = render_document(root, path.name, path, title=title)
    if not (text.text.strip() or text.removed):
        raise InputError(path, "nothing to read: the document has no text")
    return Reading((text,))


def parse_document(data: bytes, where: Path | str) -> etree._Element:
    """Parse HTML or XHTML safely: no entity declarations, no network, strict decoding."""
    if b"<!ENTITY" in data:
        raise InputError(where, "declares XML entities, which narrate never expands; remove them")
    text = _decode(data, where)
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    parser = lxml_html.HTMLParser(no_network=True, remove_comments=True, remove_pis=True)
    try:
        root = lxml_html.document_fromstring(text, parser=parser)
    except (etree.ParserError, ValueError) as exc:
        raise InputError(where, f"not a readable HTML document ({exc})") from None
    return root


def _decode(data: bytes, where: Path | str) -> str:
    m = _XML_DECL.match(data) or _META_CHARSET.search(data[:4096])
    name = m.group(1).decode("ascii") if m else "utf-8"
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise InputError(
            where, f"declares the encoding '{name}', which Python does not know"
        ) from None
    if data.startswith(codecs.BOM_UTF8):
        data, codec = data[3:], "utf-8"
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise InputError(
            where, f"not valid {name} at byte offset {exc.start}; save it as UTF-8"
        ) from None


def _esc(text: str | None) -> str:
    """The document's text as Markdown text, never Markdown markup: `&`, `<` and a link's
    `](` written as character references (decoded, as text, by the segmenter). A bracketed
    "[12]" or "[Illustration]" is left to the segmenter's rules for such markers."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace("](", "&#93;(")


def _lead(line: str) -> str:
    """A paragraph line beginning with `#` or `>` is text, not a heading or a quote."""
    return f"&#{ord(line[0])};{line[1:]}" if line[:1] in ("#", ">") else line


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]+", text.casefold()))


def _kinds(el: etree._Element) -> set[str]:
    types = (el.get("epub:type") or "") + " " + (el.get("role") or "")
    return set(types.lower().split())


def _text(el: etree._Element | None) -> str:
    return _WS.sub(" ", "".join(el.itertext())).strip() if el is not None else ""


def not_read(el: etree._Element) -> str | None:
    """Why a part of a book is not read (its epub:type or role), or None."""
    for kind in _kinds(el):
        if kind in NOT_READ:
            return NOT_READ[kind]
    return None


def content_text(el: etree._Element) -> str:
    """The text a reader of the page sees (blocks apart, an image's alt text included)."""
    out: list[str] = []

    def walk(node: etree._Element) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag in _SKIP or not tag:
            return
        # what is taken out where it stands (a note's number, a page number, an image) is a
        # token of its own, as it reads on the page: "the¹" is "the" and "1"
        block = tag in _BLOCKS or tag == "br" or _taken_out(node)
        if block:
            out.append("\n")
        if tag == "img" and node.get("alt"):
            out.append(f" {node.get('alt')} ")
        out.append(node.text or "")
        for child in node:
            walk(child)
            out.append(child.tail or "")
        if block:
            out.append("\n")

    walk(el)
    return "".join(out)


def _taken_out(el: etree._Element) -> bool:
    kinds = _kinds(el)
    return (
        el.tag == "img"
        or bool(kinds & (_PAGE_BREAK | _NOTE_REF | _NOTE_TYPES))
        or _Renderer.looks_like_note_ref(el)
    )


class _Renderer:
    """Blocks as Markdown lines, each placed at its source line when that lies ahead."""

    def __init__(self, file: str, title: str | None = None) -> None:
        self.file = file
        self.title = title  # the navigation's title for the document, announced for it
        self.lines: list[str] = []
        self.removed: list[Removed] = []

    def remove(self, el: etree._Element, text: str, reason: str) -> None:
        text = _WS.sub(" ", text).strip()
        if text:
            self.removed.append(Removed(self.file, self.line_of(el), text, reason))

    def line_of(self, el: etree._Element) -> int:
        return el.sourceline or len(self.lines) + 1

    def emit(self, el: etree._Element, lines: list[str]) -> None:
        lines = [t for t in lines if t.strip(" >")]
        if not lines:
            return
        # inside a quote, the lines between its paragraphs keep the quote's marks
        gap = lines[0][: len(lines[0]) - len(lines[0].lstrip(" >"))].rstrip()
        if self.lines and self.lines[-1].strip(" >"):
            self.lines.append(gap)
        while len(self.lines) < self.line_of(el) - 1:
            self.lines.append(gap)
        self.lines.extend(lines)

    # inline content -------------------------------------------------------------------

    def inline(self, el: etree._Element) -> str:
        """An element's text, markers taken out (and listed), <br> as a line break."""
        parts = [_esc(el.text)]
        for child in el:
            parts.append(self.inline_child(child))
            parts.append(_esc(child.tail))
        return "".join(parts)

    def inline_child(self, child: etree._Element) -> str:
        tag = child.tag if isinstance(child.tag, str) else ""
        if not tag or tag in _SKIP:
            return ""
        kinds = _kinds(child)
        if tag == "br":
            return "\n"
        if tag == "img":
            self.remove(child, child.get("alt") or "", "image (its alt text is not read)")
            return " "
        if kinds & _PAGE_BREAK:
            self.remove(child, content_text(child), "page-break marker")
            return " "
        if kinds & _NOTE_REF or self.looks_like_note_ref(child):
            self.remove(child, content_text(child), "footnote reference")
            return ""
        if kinds & _NOTE_TYPES:
            self.remove(child, content_text(child), "footnote")
            return " "
        return self.inline(child)

    @staticmethod
    def looks_like_note_ref(el: etree._Element) -> bool:
        """<sup><a href="#n1">1</a></sup> and <a href="notes.xhtml#n1"><sup>1</sup></a>."""
        if el.tag not in ("a", "sup"):
            return False
        link = el if el.tag == "a" else el.find("a")
        if link is None or "#" not in (link.get("href") or ""):
            return False
        in_sup = el.tag == "sup" or link.find("sup") is not None
        parent = el.getparent()
        in_sup = in_sup or (parent is not None and parent.tag == "sup")
        return in_sup and bool(_SHORT_MARK.match("".join(el.itertext())))

    # blocks -----------------------------------------------------------------------------

    def block(self, el: etree._Element, prefix: str = "", top: int = 1) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if not tag or tag in _SKIP:
            return
        kinds = _kinds(el)
        why = not_read(el)
        if why is not None:
            self.remove(el, content_text(el), why)
            return
        if kinds & _NOTE_TYPES:
            self.remove(el, content_text(el), "footnote (notes are not read)")
            return
        if kinds & _PAGE_BREAK:
            self.remove(el, content_text(el), "page-break marker")
            return
        if tag in _HEADINGS:
            level = _HEADINGS[tag] - top + 1
            text = _WS.sub(" ", self.inline(el)).strip()
            if level < 1:  # above the chapters' headings: the book's title page, not a chapter
                self.emit(el, [prefix + text])
                return
            if level == 1 and self.title is not None and not prefix:
                # the document's chapter is the navigation's: its own first heading is said
                # by that title ("The Dawn" in "Chapter One: The Dawn"), or is a section
                title, self.title = self.title, None
                said = content_text(el)
                if _words(said) <= _words(title):
                    self.remove(el, said, "chapter heading (the contents' title says it)")
                    return
                level = 2
            self.emit(el, [f"{prefix}{'#' * level} {text}" if not prefix else prefix + text])
            return
        if tag == "blockquote" or kinds & _LETTER or _LETTER_CLASS.search(el.get("class") or ""):
            self.quote(el, prefix)
            return
        if tag in ("ul", "ol"):
            for n, li in enumerate((c for c in el if c.tag == "li"), 1):
                mark = f"{n}. " if tag == "ol" else "- "
                if any(c.tag in _BLOCKS for c in li):
                    self.block(li, prefix, top)
                else:
                    self.emit(li, [prefix + mark + _WS.sub(" ", self.inline(li)).strip()])
            return
        if _POEM.search((el.get("class") or "") + " " + (el.get("epub:type") or "")):
            self.poem(el, prefix)
            return
        if tag == "hr":
            return
        if any(isinstance(c.tag, str) and c.tag in _BLOCKS for c in el):
            self.mixed(el, prefix, top)
            return
        self.paragraph(el, self.inline(el), prefix)

    def paragraph(self, el: etree._Element, text: str, prefix: str) -> None:
        lines = [_lead(_WS.sub(" ", t).strip()) for t in text.split("\n")]
        self.emit(el, [prefix + t for t in lines if t])

    def mixed(self, el: etree._Element, prefix: str, top: int) -> None:
        """A container: its blocks in order, and loose text between them as paragraphs."""
        run = [_esc(el.text)]
        for child in el:
            if isinstance(child.tag, str) and child.tag in _BLOCKS:
                self.paragraph(el, "".join(run), prefix)
                self.block(child, prefix, top)
                run = [_esc(child.tail)]
            else:
                run.append(self.inline_child(child))
                run.append(_esc(child.tail))
        self.paragraph(el, "".join(run), prefix)

    def quote(self, el: etree._Element, prefix: str) -> None:
        """A block quote, `> ` on each line; a closing <cite>/<footer> is its source line."""
        children = [c for c in el if isinstance(c.tag, str)]
        source = None
        if children and (
            children[-1].tag in ("cite", "footer")
            or _kinds(children[-1]) & _SIGNED
            or _SIGNED_CLASS.search(children[-1].get("class") or "")
        ):
            source = children[-1]
        inner = prefix + "> "
        if self.lines and self.lines[-1].strip():
            self.lines.append(prefix.rstrip())  # a quote of its own, not the one above
        run = [_esc(el.text)]
        for child in el:
            if child is source:
                self.paragraph(el, "".join(run), inner)
                run = []
                text = _WS.sub(" ", self.inline(child)).strip().lstrip("—–-― ").strip()
                self.emit(child, [f"{inner}— {text}"])
                run.append(_esc(child.tail))
            elif isinstance(child.tag, str) and child.tag in _BLOCKS:
                self.paragraph(el, "".join(run), inner)
                self.block(child, inner)
                run = [_esc(child.tail)]
            else:
                run.append(self.inline_child(child))
                run.append(_esc(child.tail))
        self.paragraph(el, "".join(run), inner)

    def poem(self, el: etree._Element, prefix: str) -> None:
        """Verse: each line its own block, so each ends with a pause."""
        for child_text, child in self._verse_lines(el):
            self.emit(child, [prefix + child_text])

    def _verse_lines(self, el: etree._Element) -> list[tuple[str, etree._Element]]:
        blocks = [c for c in el if isinstance(c.tag, str) and c.tag in _BLOCKS]
        if blocks:
            out = []
            for c in blocks:
                out.extend(self._verse_lines(c))
            return out
        return [
            (_lead(t), el)
            for t in (_WS.sub(" ", t).strip() for t in self.inline(el).split("\n"))
            if t
        ]


def render_document(
    root: etree._Element,
    file: str,
    where: Path,
    *,
    title: str | None = None,
    from_contents: bool = False,
    chapters_at: frozenset[str] = frozenset(),
) -> SourceText:
    """A parsed document as a SourceText. `title` names its chapter when it has no heading
    of its own; `from_contents`: it is the table of contents' title, which is the chapter's
    even when the document has a heading. `chapters_at`: ids where the table of contents
    starts a chapter in this document (a whole book in one file): the headings there are
    the chapters' (a level above them, the book's own title, is not a chapter's)."""
    body = root.find(".//body")
    if body is None:
        body = root
    r = _Renderer(file, title if from_contents and not chapters_at else None)
    headings = [int(h.tag[1]) for h in body.iter(*_HEADINGS)]
    top = min(headings) if headings else 1
    if chapters_at:
        levels = []
        for el in body.iter():
            if isinstance(el.tag, str) and el.get("id") in chapters_at:
                heading = el if el.tag in _HEADINGS else next(el.iter(*_HEADINGS), None)
                if heading is None:  # an anchor just before its heading
                    heading = next(el.itersiblings(*_HEADINGS), None)
                if heading is not None:
                    levels.append(_HEADINGS[heading.tag])
        top = min(levels, default=top)
    r.block(body, "", top)
    return SourceText(
        file=file,
        text="\n".join(r.lines) + "\n",
        markdown=True,
        references=True,
        where=where,
        title=title,
        removed=tuple(r.removed),
        content=content_text(body),
    )
