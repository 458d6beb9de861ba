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

from narration.errors import InputError
from narration.model import Removed
from narration.reading.base import Reading, ReadOptions, Signed, SourceText
from narration.reading.text import BOMS, NOT_TEXT

#: Elements whose content is not text a reader sees.
_SKIP = frozenset({"head", "script", "style", "template", "title"})
#: Text a reader may see but narrate does not read, listed as removed.
_UNREAD = {"svg": "text in an SVG image", "math": "mathematics", "noscript": "noscript fallback"}
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
#: Notes and references to them by class, as Project Gutenberg and others mark them.
_NOTE_CLASS = re.compile(r"\b(?:footnotes?|endnotes?)\b", re.I)
_NOTE_REF_CLASS = re.compile(r"\b(?:fnanchor|noteref|footnote-?ref|fn-?ref)\b", re.I)
_PAGE_BREAK = frozenset({"pagebreak", "doc-pagebreak"})
#: Project Gutenberg's and others' page numbers: <span class="pagenum">[Pg 12]</span>.
_PAGE_CLASS = re.compile(r"\b(?:page-?num(?:ber)?|pageno|page-?break)\b", re.I)
#: A letter or an epigraph is read as a quote.
_LETTER = frozenset({"z3998:letter", "epigraph", "doc-epigraph", "z3998:epigraph"})
_LETTER_CLASS = re.compile(r"\b(?:letter|epigraph|epistle)\b", re.I)
_LETTER_ONLY_CLASS = re.compile(r"\b(?:letter|epistle)\b", re.I)
#: A quote's attribution (a closing <cite>, or these): announced as its source, not read.
_CITED = frozenset({"z3998:attribution", "doc-credit"})
_CITED_CLASS = re.compile(r"\b(?:attribution|source|credit)\b", re.I)
#: A letter's signature or sender's name: read where it stands, and the name announced as
#: the letter's source.
_SIGNATURE = frozenset({"z3998:signature", "z3998:sender"})
_SIGNATURE_CLASS = re.compile(r"\b(?:signature|signed|sig)\b", re.I)
#: The parts of a letter's closing (Standard Ebooks' <footer>, by epub:type): a footer
#: holding them is read in order with the letter, never taken for its source.
_LETTER_PARTS = frozenset(
    (
        *("z3998:valediction", "z3998:signature", "z3998:postscript", "z3998:sender"),
        *("z3998:recipient", "z3998:salutation", "se:letter.dateline"),
    )
)
#: Right-aligned lines (Project Gutenberg's classes): a letter's date, closing or signature.
_RIGHT_CLASS = re.compile(r"\b(?:right|r|rgt|signature|signed|sig|valediction|closing)\b", re.I)
#: A source is a name or a title, a few words: never a paragraph.
_SOURCE_WORDS = 12
_NAME_WORDS = 8
#: A rendered line a signature must not join: a heading, a quote, a list item, a separator.
_MARKED_LINE = re.compile(r"^\s*(?:#|>|[-*+•]\s|\d{1,3}[.)]\s|(?:[*\-=_~•·+]\s*){3,}$)")
_NAME_EDGES = "\"“”„‘’'«»—–―-,;: "
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
#: A letter's closing words before the name it is signed with ("Yours, Bob Smith").
_VALEDICTION = re.compile(
    r"^(?P<closing>(?:(?:yours|ever|very|most|sincerely|faithfully|truly|affectionately|"
    r"cordially|respectfully|with|love|regards|best|wishes|warmly|fraternally|comradely|"
    r"your|greetings|and)\s*)+[,.])\s*(?P<name>\S.*)$",
    re.I,
)
#: A closing line that runs on to the name ("Your affectionate brother, R. Walton").
_CLOSING_LINE = re.compile(
    r"^(?:your|yours|ever|believe|faithfully|sincerely|truly|affectionately|respectfully|"
    r"cordially|with|love|adieu|farewell|i\s+am|i\s+remain)\b[^,]*,\s*(?P<name>\S[^,]*)$",
    re.I,
)
_SEPARATOR = re.compile(r"^(?:[*\-=_~•·+]\s*){3,}$")
_SHORT_MARK = re.compile(r"^\s*[\[(]?(?:\d{1,3}|[*†‡§¶]{1,3}|[a-z])[\])]?\s*$")
_WS = re.compile(r"\s+")
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?(?:encoding=[\"']([A-Za-z0-9._-]+)[\"'])?")
_META_CHARSET = re.compile(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9._-]+)", re.I)


def read_html(path: Path, options: ReadOptions | None = None) -> Reading:
    """An .html/.xhtml seed: one document, its title from <title> when it has no heading."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the file: {exc.strerror or exc}") from None
    root = parse_document(data, path)
    title = _text(root.find(".//title")) or None
    text = render_document(root, path.name, path, title=title, options=options)
    if not (text.text.strip() or text.removed):
        raise InputError(path, "nothing to read: the document has no text")
    return Reading((text,))


def parse_document(data: bytes, where: Path | str) -> etree._Element:
    """Parse HTML or XHTML safely: no entity declarations, no network, strict decoding,
    nothing cut silently (libxml2 stops at 256 levels of nesting: such a file is refused)."""
    for magic, what in NOT_TEXT:
        if data.startswith(magic):
            raise InputError(where, f"this is {what}, not an HTML document")
    text = _decode(data, where)
    if "<!ENTITY" in text:
        raise InputError(where, "declares XML entities, which narrate never expands; remove them")
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    parser = lxml_html.HTMLParser(no_network=True, remove_comments=True, remove_pis=True)
    try:
        root = lxml_html.document_fromstring(text, parser=parser)
    except (etree.ParserError, ValueError) as exc:
        raise InputError(where, f"not a readable HTML document ({exc})") from None
    if any("depth" in e.message.lower() for e in parser.error_log):
        raise InputError(where, "elements nested too deep (over 256 levels): not a book's page")
    return root


def _decode(data: bytes, where: Path | str) -> str:
    """A byte-order mark first; then an XML document's declaration (else UTF-8: an XHTML
    page's <meta> never overrides it); then an HTML page's <meta charset>."""
    for bom, codec, _ in BOMS:
        if data.startswith(bom):
            name = codec
            break
    else:
        xml = _XML_DECL.match(data)
        meta = None if xml else _META_CHARSET.search(data[:4096])
        found = (xml and xml.group(1)) or (meta and meta.group(1))
        name = found.decode("ascii") if found else "utf-8"
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise InputError(
            where, f"declares the encoding '{name}', which Python does not know"
        ) from None
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise InputError(
            where, f"not valid {name} at byte offset {exc.start}: the file is damaged"
        ) from None


def _esc(text: str | None) -> str:
    """The document's text as Markdown text, never Markdown markup: `&`, `<` and a link's
    `](` written as character references (decoded, as text, by the segmenter). A bracketed
    "[12]" or "[Illustration]" is left to the segmenter's rules for such markers."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace("](", "&#93;(")


def _lead(line: str) -> str:
    """A paragraph line beginning with `#`, `>` or a bullet is text, not a heading, a quote
    or a list item ("* * *" stays a separator)."""
    if line[:1] in ("#", ">") or (line[:2] in ("- ", "* ", "+ ") and not _SEPARATOR.match(line)):
        return f"&#{ord(line[0])};{line[1:]}"
    return line


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
    sources = {_source_of(q) for q in el.iter() if isinstance(q.tag, str) and _is_quote(q)}

    def walk(node: etree._Element) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag in _SKIP or not tag:
            return
        # what is taken out where it stands (a note's number, a page number, an image) is a
        # token of its own, as it reads on the page: "the¹" is "the" and "1"
        block = tag in _BLOCKS or tag == "br" or _taken_out(node) or node in sources
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
    return (
        el.tag == "img"
        or el.tag in _UNREAD
        or bool(_kinds(el) & (_PAGE_BREAK | _NOTE_REF | _NOTE_TYPES))
        or is_page_number(el)
        or is_note_ref(el)
    )


def is_page_number(el: etree._Element) -> bool:
    """A page-break marker: epub:type pagebreak, or a page number's class (Gutenberg's)."""
    return bool(_kinds(el) & _PAGE_BREAK) or bool(_PAGE_CLASS.search(el.get("class") or ""))


def is_note_ref(el: etree._Element) -> bool:
    """A reference to a note: epub:type noteref, or a short mark in <sup> that links within
    the book (<sup><a href="#n1">1</a></sup>, <a href="notes.xhtml#n1"><sup>1</sup></a>)."""
    if _kinds(el) & _NOTE_REF or (
        el.tag == "a" and _NOTE_REF_CLASS.search(el.get("class") or "") and el.get("href")
    ):
        return True
    if el.tag not in ("a", "sup"):
        return False
    link = el if el.tag == "a" else el.find("a")
    if link is None or "#" not in (link.get("href") or ""):
        return False
    in_sup = el.tag == "sup" or link.find("sup") is not None
    parent = el.getparent()
    in_sup = in_sup or (parent is not None and parent.tag == "sup")
    return in_sup and bool(_SHORT_MARK.match("".join(el.itertext())))


def _internal_link(a: etree._Element) -> bool:
    href = (a.get("href") or "").strip().lower()
    return bool(href) and not href.startswith(("http:", "https:", "mailto:", "ftp:"))


def is_contents(el: etree._Element) -> bool:
    """A table of contents in the text: at least 2 links within the book carrying at least
    four fifths of the element's words."""
    links = [a for a in el.iter("a") if _internal_link(a)]
    if len(links) < 2:
        return False
    linked = sum(len(_text(a).split()) for a in links)
    return linked >= 0.8 * max(1, len(_text(el).split()))


class _Renderer:
    """Blocks as Markdown lines, each placed at its source line when that lies ahead."""

    def __init__(
        self,
        file: str,
        labels: dict[etree._Element, str],
        notes: set[etree._Element],
        options: ReadOptions,
    ) -> None:
        self.file = file
        self.options = options
        self.labels = labels  # chapter headings -> the contents' titles for them
        self.notes = notes  # blocks that note references point to
        self.lines: list[str] = []
        self.removed: list[Removed] = []
        self.titles: list[tuple[int, str]] = []  # (line of a chapter heading, its title)
        self.signed: list[Signed] = []  # letters whose source is their signature's name

    def remove(self, el: etree._Element, text: str, reason: str) -> None:
        text = _WS.sub(" ", text).strip()
        if text:
            self.removed.append(Removed(self.file, self.line_of(el), text, reason))

    def line_of(self, el: etree._Element) -> int:
        return el.sourceline or len(self.lines) + 1

    def emit(self, el: etree._Element, lines: list[str]) -> int:
        """Add lines (at the element's own line when that is ahead); the line they start on."""
        lines = [t for t in lines if t.strip(" >")]
        if not lines:
            return 0
        # inside a quote, the lines between its paragraphs keep the quote's marks
        gap = lines[0][: len(lines[0]) - len(lines[0].lstrip(" >"))].rstrip()
        if self.lines and self.lines[-1].strip(" >"):
            self.lines.append(gap)
        while len(self.lines) < self.line_of(el) - 1:
            self.lines.append(gap)
        self.lines.extend(lines)
        return len(self.lines) - len(lines) + 1

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
        if tag == "br":
            return "\n"
        if tag == "img":
            alt = _WS.sub(" ", child.get("alt") or "").strip()
            if self.options.image_descriptions and alt:
                return f" {_esc(alt)} "  # voices.yaml: reading: image_descriptions: true
            self.remove(child, alt, "image (its alt text is not read)")
            return " "
        if tag in _UNREAD:
            self.remove(child, content_text(child), _UNREAD[tag])
            return " "
        if is_page_number(child):
            self.remove(child, content_text(child), "page-break marker")
            return " "
        if is_note_ref(child):
            self.remove(child, content_text(child), "footnote reference")
            return ""
        if _kinds(child) & _NOTE_TYPES:
            self.remove(child, content_text(child), "footnote")
            return " "
        return self.inline(child)

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
        if tag in _UNREAD:
            self.remove(el, content_text(el), _UNREAD[tag])
            return
        if kinds & _NOTE_TYPES or el in self.notes or _NOTE_CLASS.search(el.get("class") or ""):
            self.remove(el, content_text(el), "footnote (notes are not read)")
            return
        if is_page_number(el):
            self.remove(el, content_text(el), "page-break marker")
            return
        if tag in ("section", "div", "nav", "ol", "ul", "table") and is_contents(el):
            self.remove(el, content_text(el), "table of contents")
            return
        if tag in _HEADINGS:
            level = _HEADINGS[tag] - top + 1
            text = _WS.sub(" ", self.inline(el)).strip()
            if not text.strip(" >"):
                return  # a heading of only an image or an anchor: nothing to say
            if level < 1:  # above the chapters' headings: the book's title page, not a chapter
                self.emit(el, [prefix + _lead(text)])
                return
            if prefix:  # a heading inside a quote is a line of it
                self.emit(el, [prefix + _lead(text)])
                return
            line = self.emit(el, [f"{'#' * level} {text}"])
            if el in self.labels:
                self.titles.append((line, self.labels[el]))
            return
        if _is_quote(el):
            self.quote(el, prefix)
            return
        if not prefix and _signs_off(el):
            self.sign(el)
            return
        if tag in ("ul", "ol"):
            for n, li in enumerate((c for c in el if c.tag == "li"), 1):
                mark = f"{n}. " if tag == "ol" else "- "
                if any(c.tag in _BLOCKS for c in li):
                    self.block(li, prefix, top)
                else:
                    item = _WS.sub(" ", self.inline(li)).strip()
                    if item:
                        self.emit(li, [prefix + mark + item])
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

    def sign(self, el: etree._Element) -> None:
        """A signature (or a right-aligned closing line) below a text: the last lines of the
        paragraph above it, read after it in the same voice and never taken for a heading."""
        lines = [_lead(_WS.sub(" ", t).strip()) for t in self.inline(el).split("\n")]
        lines = [t for t in lines if t]
        last = self.lines[-1] if self.lines else ""
        if lines and last.strip() and not _MARKED_LINE.match(last):
            self.lines.extend(lines)
        else:
            self.emit(el, lines)

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
        """A block quote, `> ` on each line; a closing <cite> or attribution is its source
        line. A letter's closing (valediction, signature, postscript) is read in order, and
        the name it is signed with is its source (`signed`)."""
        source = _source_of(el)
        name = None if source is not None else _signature_of(el)
        inner = prefix + "> "
        if self.lines and self.lines[-1].strip():
            self.lines.append(prefix.rstrip())  # a quote of its own, not the one above
        first = len(self.lines) + 1
        self.quote_body(el, source, inner, prefix)
        if name is not None:
            self.signed.append(Signed(first=first, last=len(self.lines), name=name))

    def quote_body(
        self, el: etree._Element, source: etree._Element | None, inner: str, prefix: str
    ) -> None:
        """The quote's blocks in order, its source (when it has one) the last line."""
        run = [_esc(el.text)]
        for child in el:
            if child is source:
                self.paragraph(el, "".join(run), inner)
                run = []
                text = _WS.sub(" ", self.inline(child)).strip().lstrip("—–-― ").strip()
                m = _VALEDICTION.match(text)
                if m:  # "Yours, Bob Smith": the closing words are the letter's, the name its source
                    self.emit(child, [inner + m.group("closing")])
                    text = m.group("name")
                self.emit(child, [f"{inner}— {text}"])
            elif child.tag == "blockquote":  # a quote within: a quote of its own, then ours on
                self.paragraph(el, "".join(run), inner)
                self.quote(child, prefix)
                self.lines.append(prefix.rstrip())
                run = [_esc(child.tail)]
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


def _is_quote(el: etree._Element) -> bool:
    """A block quote, a letter or an epigraph. A paragraph classed "letter" that is only a
    salutation ("My dearest Cousin,", Project Gutenberg's) opens a letter read on in the
    paragraphs after it, in the same voice: it is not a quote of its own."""
    if el.tag == "blockquote" or _kinds(el) & _LETTER:
        return True
    if not _LETTER_CLASS.search(el.get("class") or ""):
        return False
    text = _text(el)
    salutation = len(text.split()) <= _NAME_WORDS and text.rstrip(" ”’\"'").endswith(
        (",", "—", "–", ":", ";", "-")
    )
    return not (el.tag == "p" and salutation)


def _is_letter(el: etree._Element) -> bool:
    return "z3998:letter" in _kinds(el) or bool(_LETTER_ONLY_CLASS.search(el.get("class") or ""))


def _own(quote: etree._Element) -> list[etree._Element]:
    """The elements inside a quote that are its own, not a quote's within it."""
    out: list[etree._Element] = []

    def walk(el: etree._Element) -> None:
        for child in el:
            if isinstance(child.tag, str) and child.tag not in _SKIP and not _is_quote(child):
                out.append(child)
                walk(child)

    walk(quote)
    return out


def _is_signature(el: etree._Element) -> bool:
    return bool(_kinds(el) & _SIGNATURE) or bool(_SIGNATURE_CLASS.search(el.get("class") or ""))


def _source_of(quote: etree._Element) -> etree._Element | None:
    """A quote's closing attribution, announced as its source and not read: a last <cite>,
    attribution or credit, a paragraph holding only a <cite>, or a <footer> of one short line
    that is no letter's closing; with no words after it inside the quote, and a few words at
    most (a footer's long paragraph is read, never announced)."""
    children = [c for c in quote if isinstance(c.tag, str)]
    if not children or (children[-1].tail or "").strip():
        return None
    last = children[-1]
    cited = (
        last.tag == "cite"
        or _kinds(last) & _CITED
        or _CITED_CLASS.search(last.get("class") or "")
        or (
            last.tag == "footer"
            and not _is_letter(quote)
            and not any(_kinds(e) & _LETTER_PARTS or _is_signature(e) for e in last.iter())
            and sum(1 for c in last if isinstance(c.tag, str) and c.tag in _BLOCKS) <= 1
        )
    )
    only_cite = (
        last.tag == "p"
        and not (last.text or "").strip()
        and len(last) == 1
        and last[0].tag == "cite"
        and not (last[0].tail or "").strip()
    )
    if not (cited or only_cite) or _is_signature(last):
        return None
    return last if len(_text(last).split()) <= _SOURCE_WORDS else None


def _signature_of(quote: etree._Element) -> str | None:
    """The name a letter is signed with, for the source announced before it: its marked
    signature's last line (z3998:signature, class "signature"), or in a letter without one,
    the last line of its closing (a footer or a right-aligned paragraph after its body, a
    postscript or not after it); a short name, else None (announced without a source)."""
    marked = [e for e in _own(quote) if _is_signature(e)]
    if marked:
        return _name_of(marked[-1])
    if not _is_letter(quote):
        return None
    closing = None
    body = False  # a right-aligned line before the letter's body is its date
    for child in (c for c in quote if isinstance(c.tag, str)):
        if child.tag == "footer" or _RIGHT_CLASS.search(child.get("class") or ""):
            closing = child if body else closing
        else:
            body = True
    return None if closing is None else _name_of(closing)


def _lines_of(el: etree._Element) -> list[str]:
    """An element's text as its lines (a <br> or a block ends one), notes and page numbers
    left out."""
    out: list[str] = []

    def walk(node: etree._Element) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        if not tag or tag in _SKIP or _taken_out(node):
            return
        if tag == "br" or tag in _BLOCKS:
            out.append("\n")
        out.append(node.text or "")
        for child in node:
            walk(child)
            out.append(child.tail or "")
        if tag in _BLOCKS:
            out.append("\n")

    walk(el)
    lines = (_WS.sub(" ", t).strip() for t in "".join(out).split("\n"))
    return [t for t in lines if t]


def _name_of(el: etree._Element) -> str | None:
    """A signature's name: its last line, without the closing words before it ("Yours ever,
    Bob Smith"), quotation marks or a final full stop (kept after an initial: "H. J.");
    None unless it is a few words starting with a capital, not a postscript."""
    lines = _lines_of(el)
    if not lines:
        return None
    text = lines[-1].strip(_NAME_EDGES)
    m = _VALEDICTION.match(text) or _CLOSING_LINE.match(text)
    if m:
        text = m.group("name").strip(_NAME_EDGES)
    if text.endswith(".") and not re.search(r"(?:^|[\s.])[^\W\d_]\.$", text):
        text = text[:-1].rstrip(_NAME_EDGES)
    words = text.split()
    if not (1 <= len(words) <= _NAME_WORDS) or not text[0].isupper():
        return None
    if re.match(r"(?:P\.?\s?S|N\.?\s?B)\b", text) or re.search(r"[!?;:\d]", text):
        return None
    return text


def _signs_off(el: etree._Element) -> bool:
    """A signature outside a quote, or a short right-aligned line with no blocks in it (a
    letter's date, closing or signature, as Project Gutenberg aligns them)."""
    if el.tag not in ("p", "div", "span") or any(
        isinstance(c.tag, str) and c.tag in _BLOCKS for c in el
    ):
        return False
    if _is_signature(el):
        return True
    short = 0 < len(_text(el).split()) <= _NAME_WORDS
    return short and bool(_RIGHT_CLASS.search(el.get("class") or ""))


def render_document(
    root: etree._Element,
    file: str,
    where: Path,
    *,
    title: str | None = None,
    contents_title: str | None = None,
    chapters_at: dict[str, str] | None = None,
    notes: frozenset[str] = frozenset(),
    options: ReadOptions | None = None,
    content: str | None = None,
) -> SourceText:
    """A parsed document as a SourceText.

    `title` names its chapter when it has no heading of its own. `contents_title`: the
    table of contents' title for the document, given to its first chapter heading.
    `chapters_at`: ids where the contents start a chapter in this document (a whole book
    in one file) and their titles: the headings there are chapters, and a level above
    them (the book's own title) is not. `notes`: ids that note references point to; the
    blocks holding them are notes, not read. `content`: the body's content_text, when the
    caller has it already.
    """
    body = root.find(".//body")
    if body is None:
        body = root
    by_id = {el.get("id"): el for el in body.iter() if isinstance(el.tag, str) and el.get("id")}
    labels: dict[etree._Element, str] = {}
    for anchor, label in (chapters_at or {}).items():
        el = by_id.get(anchor)
        heading = None if el is None else _heading_at(el)
        if heading is not None:
            labels.setdefault(heading, label)
    headings = list(body.iter(*_HEADINGS))
    top = min((_HEADINGS[h.tag] for h in headings), default=1)
    if labels:
        top = min(_HEADINGS[h.tag] for h in labels)
    elif contents_title is not None:
        first = next((h for h in headings if _HEADINGS[h.tag] == top), None)
        if first is not None:
            labels[first] = contents_title
    held = set()
    for anchor in notes:
        el = by_id.get(anchor)
        while el is not None and el.tag not in _BLOCKS:
            el = el.getparent()
        if el is not None and el is not body:
            held.add(el)
    r = _Renderer(file, labels, held, options or ReadOptions())
    r.block(body, "", top)
    # the document's text content: every text node of it, in document order
    document = "".join(root.itertext())
    return SourceText(
        file=file,
        text="\n".join(r.lines) + "\n",
        markdown=True,
        references=True,
        where=where,
        title=contents_title or title,
        removed=tuple(r.removed),
        content=content_text(body) if content is None else content,
        titles=tuple(r.titles),
        signed=tuple(r.signed),
        document=document,
        body_at=len(document) - len("".join(body.itertext())) - len(body.tail or ""),
    )


def _heading_at(el: etree._Element) -> etree._Element | None:
    """The heading a contents entry points to: the element itself, the first heading inside
    it, or (an empty anchor) the next heading after it."""
    if el.tag in _HEADINGS:
        return el
    parent = el.getparent()
    if parent is not None and parent.tag in _HEADINGS:  # <h2><a id="c1"></a>Chapter I</h2>
        return parent
    inside = next(el.iter(*_HEADINGS), None)
    if inside is not None:
        return inside
    for following in el.itersiblings():
        if isinstance(following.tag, str):
            if following.tag in _HEADINGS:
                return following
            return next(following.iter(*_HEADINGS), None)
    return None
