"""HTML and XHTML documents (a seed of their own, or an EPUB's chapters): structure from the
markup, rendered as the Markdown the segmenter reads.

Headings become `#` headings, `<blockquote>` a quote (a closing `<cite>`, `<footer>` or
"— Name" line its source), lists list items, a poem's lines one pause each. What is not
spoken is taken out and listed with its reason: footnote and endnote references and the
notes themselves, page-break markers, images (their alt text), scripts. Each block is put
on the line where it starts in the document, so messages name the document's own lines.
The text content (what a browser shows, an image's alt text included) is what the proof
that no word is lost checks against. What each element is (a note, a page number, a quote's
source, a letter's signature) is elements.py's.
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
from narration.reading.elements import (
    BLOCKS,
    HEADINGS,
    MARKED_LINE,
    NOTE_CLASS,
    NOTE_TYPES,
    POEM,
    SEPARATOR,
    SKIP,
    UNREAD,
    VALEDICTION,
    WS,
    content_text,
    element_kinds,
    element_text,
    is_contents,
    is_note_ref,
    is_page_number,
    is_quote,
    not_read,
    signature_of,
    signs_off,
    source_of,
)
from narration.reading.text import BOMS, NOT_TEXT

_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?(?:encoding=[\"']([A-Za-z0-9._-]+)[\"'])?")


_META_CHARSET = re.compile(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9._-]+)", re.I)


def read_html(path: Path, options: ReadOptions | None = None) -> Reading:
    """An .html/.xhtml seed: one document, its title from <title> when it has no heading."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the file: {exc.strerror or exc}") from None
    root = parse_document(data, path)
    title = element_text(root.find(".//title")) or None
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
    if line[:1] in ("#", ">") or (line[:2] in ("- ", "* ", "+ ") and not SEPARATOR.match(line)):
        return f"&#{ord(line[0])};{line[1:]}"
    return line


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
        text = WS.sub(" ", text).strip()
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
        if not tag or tag in SKIP:
            return ""
        if tag == "br":
            return "\n"
        if tag == "img":
            alt = WS.sub(" ", child.get("alt") or "").strip()
            if self.options.image_descriptions and alt:
                return f" {_esc(alt)} "  # voices.yaml: reading: image_descriptions: true
            self.remove(child, alt, "image (its alt text is not read)")
            return " "
        if tag in UNREAD:
            self.remove(child, content_text(child), UNREAD[tag])
            return " "
        if is_page_number(child):
            self.remove(child, content_text(child), "page-break marker")
            return " "
        if is_note_ref(child):
            self.remove(child, content_text(child), "footnote reference")
            return ""
        if element_kinds(child) & NOTE_TYPES:
            self.remove(child, content_text(child), "footnote")
            return " "
        return self.inline(child)

    # blocks -----------------------------------------------------------------------------

    def block(self, el: etree._Element, prefix: str = "", top: int = 1) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if not tag or tag in SKIP:
            return
        kinds = element_kinds(el)
        why = not_read(el)
        if why is not None:
            self.remove(el, content_text(el), why)
            return
        if tag in UNREAD:
            self.remove(el, content_text(el), UNREAD[tag])
            return
        if kinds & NOTE_TYPES or el in self.notes or NOTE_CLASS.search(el.get("class") or ""):
            self.remove(el, content_text(el), "footnote (notes are not read)")
            return
        if is_page_number(el):
            self.remove(el, content_text(el), "page-break marker")
            return
        if tag in ("section", "div", "nav", "ol", "ul", "table") and is_contents(el):
            self.remove(el, content_text(el), "table of contents")
            return
        if tag in HEADINGS:
            level = HEADINGS[tag] - top + 1
            text = WS.sub(" ", self.inline(el)).strip()
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
        if is_quote(el):
            self.quote(el, prefix)
            return
        if not prefix and signs_off(el):
            self.sign(el)
            return
        if tag in ("ul", "ol"):
            for n, li in enumerate((c for c in el if c.tag == "li"), 1):
                mark = f"{n}. " if tag == "ol" else "- "
                if any(c.tag in BLOCKS for c in li):
                    self.block(li, prefix, top)
                else:
                    item = WS.sub(" ", self.inline(li)).strip()
                    if item:
                        self.emit(li, [prefix + mark + item])
            return
        if POEM.search((el.get("class") or "") + " " + (el.get("epub:type") or "")):
            self.poem(el, prefix)
            return
        if tag == "hr":
            return
        if any(isinstance(c.tag, str) and c.tag in BLOCKS for c in el):
            self.mixed(el, prefix, top)
            return
        self.paragraph(el, self.inline(el), prefix)

    def sign(self, el: etree._Element) -> None:
        """A signature (or a right-aligned closing line) below a text: the last lines of the
        paragraph above it, read after it in the same voice and never taken for a heading."""
        lines = [_lead(WS.sub(" ", t).strip()) for t in self.inline(el).split("\n")]
        lines = [t for t in lines if t]
        last = self.lines[-1] if self.lines else ""
        if lines and last.strip() and not MARKED_LINE.match(last):
            self.lines.extend(lines)
        else:
            self.emit(el, lines)

    def paragraph(self, el: etree._Element, text: str, prefix: str) -> None:
        lines = [_lead(WS.sub(" ", t).strip()) for t in text.split("\n")]
        self.emit(el, [prefix + t for t in lines if t])

    def mixed(self, el: etree._Element, prefix: str, top: int) -> None:
        """A container: its blocks in order, and loose text between them as paragraphs."""
        run = [_esc(el.text)]
        for child in el:
            if isinstance(child.tag, str) and child.tag in BLOCKS:
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
        source = source_of(el)
        name = None if source is not None else signature_of(el)
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
                text = WS.sub(" ", self.inline(child)).strip().lstrip("—–-― ").strip()
                m = VALEDICTION.match(text)
                if m:  # "Yours, Bob Smith": the closing words are the letter's, the name its source
                    self.emit(child, [inner + m.group("closing")])
                    text = m.group("name")
                self.emit(child, [f"{inner}— {text}"])
            elif child.tag == "blockquote":  # a quote within: a quote of its own, then ours on
                self.paragraph(el, "".join(run), inner)
                self.quote(child, prefix)
                self.lines.append(prefix.rstrip())
                run = [_esc(child.tail)]
            elif isinstance(child.tag, str) and child.tag in BLOCKS:
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
        blocks = [c for c in el if isinstance(c.tag, str) and c.tag in BLOCKS]
        if blocks:
            out = []
            for c in blocks:
                out.extend(self._verse_lines(c))
            return out
        return [
            (_lead(t), el)
            for t in (WS.sub(" ", t).strip() for t in self.inline(el).split("\n"))
            if t
        ]


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
    headings = list(body.iter(*HEADINGS))
    top = min((HEADINGS[h.tag] for h in headings), default=1)
    if labels:
        top = min(HEADINGS[h.tag] for h in labels)
    elif contents_title is not None:
        first = next((h for h in headings if HEADINGS[h.tag] == top), None)
        if first is not None:
            labels[first] = contents_title
    held = set()
    for anchor in notes:
        el = by_id.get(anchor)
        while el is not None and el.tag not in BLOCKS:
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
    if el.tag in HEADINGS:
        return el
    parent = el.getparent()
    if parent is not None and parent.tag in HEADINGS:  # <h2><a id="c1"></a>Chapter I</h2>
        return parent
    inside = next(el.iter(*HEADINGS), None)
    if inside is not None:
        return inside
    for following in el.itersiblings():
        if isinstance(following.tag, str):
            if following.tag in HEADINGS:
                return following
            return next(following.iter(*HEADINGS), None)
    return None
