"""What an element of an HTML or XHTML document is, as html.py renders it and epub.py reads
it: a part not read (its epub:type or role), a note or a reference to one, a page number,
a table of contents, a quote and its source, a letter and the name it is signed with;
and the text a reader of the page sees, which the proof that no word is lost checks."""

from __future__ import annotations

import re

from lxml import etree

#: Elements whose content is not text a reader sees.
SKIP = frozenset({"head", "script", "style", "template", "title"})


#: Text a reader may see but narrate does not read, listed as removed.
UNREAD = {"svg": "text in an SVG image", "math": "mathematics", "noscript": "noscript fallback"}


HEADINGS = {f"h{n}": n for n in range(1, 7)}


#: Elements that start a block of their own (the rest are inline).
BLOCKS = frozenset(
    (
        *("address", "article", "aside", "blockquote", "body", "dd", "div", "dl", "dt"),
        *("figcaption", "figure", "footer", "header", "hr", "li", "main", "nav", "ol", "p"),
        *("pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"),
        *("caption", "center", "hgroup", "details", "summary", "form", "fieldset", "legend"),
        *HEADINGS,
    )
)


NOTE_TYPES = frozenset(
    (
        *("footnote", "footnotes", "endnote", "endnotes", "rearnote", "rearnotes", "note"),
        *("notes", "doc-footnote", "doc-endnote", "doc-endnotes"),
    )
)


_NOTE_REF = frozenset({"noteref", "doc-noteref"})


#: Notes and references to them by class, as Project Gutenberg and others mark them.
NOTE_CLASS = re.compile(r"\b(?:footnotes?|endnotes?)\b", re.I)


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
MARKED_LINE = re.compile(r"^\s*(?:#|>|[-*+•]\s|\d{1,3}[.)]\s|(?:[*\-=_~•·+]\s*){3,}$)")


_NAME_EDGES = "\"“”„‘’'«»—–―-,;: "


POEM = re.compile(r"\b(?:poem|verse|stanza|z3998:poem|z3998:verse|z3998:song)\b", re.I)


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
VALEDICTION = re.compile(
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


SEPARATOR = re.compile(r"^(?:[*\-=_~•·+]\s*){3,}$")


_SHORT_MARK = re.compile(r"^\s*[\[(]?(?:\d{1,3}|[*†‡§¶]{1,3}|[a-z])[\])]?\s*$")


WS = re.compile(r"\s+")


def element_kinds(el: etree._Element) -> set[str]:
    types = (el.get("epub:type") or "") + " " + (el.get("role") or "")
    return set(types.lower().split())


def element_text(el: etree._Element | None) -> str:
    return WS.sub(" ", "".join(el.itertext())).strip() if el is not None else ""


def not_read(el: etree._Element) -> str | None:
    """Why a part of a book is not read (its epub:type or role), or None."""
    for kind in element_kinds(el):
        if kind in NOT_READ:
            return NOT_READ[kind]
    return None


def content_text(el: etree._Element) -> str:
    """The text a reader of the page sees (blocks apart, an image's alt text included)."""
    out: list[str] = []
    sources = {source_of(q) for q in el.iter() if isinstance(q.tag, str) and is_quote(q)}

    def walk(node: etree._Element) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag in SKIP or not tag:
            return
        # what is taken out where it stands (a note's number, a page number, an image) is a
        # token of its own, as it reads on the page: "the¹" is "the" and "1"
        block = tag in BLOCKS or tag == "br" or _taken_out(node) or node in sources
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
        or el.tag in UNREAD
        or bool(element_kinds(el) & (_PAGE_BREAK | _NOTE_REF | NOTE_TYPES))
        or is_page_number(el)
        or is_note_ref(el)
    )


def is_page_number(el: etree._Element) -> bool:
    """A page-break marker: epub:type pagebreak, or a page number's class (Gutenberg's)."""
    return bool(element_kinds(el) & _PAGE_BREAK) or bool(_PAGE_CLASS.search(el.get("class") or ""))


def is_note_ref(el: etree._Element) -> bool:
    """A reference to a note: epub:type noteref, or a short mark in <sup> that links within
    the book (<sup><a href="#n1">1</a></sup>, <a href="notes.xhtml#n1"><sup>1</sup></a>)."""
    if element_kinds(el) & _NOTE_REF or (
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
    linked = sum(len(element_text(a).split()) for a in links)
    return linked >= 0.8 * max(1, len(element_text(el).split()))


def is_quote(el: etree._Element) -> bool:
    """A block quote, a letter or an epigraph. A paragraph classed "letter" that is only a
    salutation ("My dearest Cousin,", Project Gutenberg's) opens a letter read on in the
    paragraphs after it, in the same voice: it is not a quote of its own."""
    if el.tag == "blockquote" or element_kinds(el) & _LETTER:
        return True
    if not _LETTER_CLASS.search(el.get("class") or ""):
        return False
    text = element_text(el)
    salutation = len(text.split()) <= _NAME_WORDS and text.rstrip(" ”’\"'").endswith(
        (",", "—", "–", ":", ";", "-")
    )
    return not (el.tag == "p" and salutation)


def _is_letter(el: etree._Element) -> bool:
    return "z3998:letter" in element_kinds(el) or bool(
        _LETTER_ONLY_CLASS.search(el.get("class") or "")
    )


def _own(quote: etree._Element) -> list[etree._Element]:
    """The elements inside a quote that are its own, not a quote's within it."""
    out: list[etree._Element] = []

    def walk(el: etree._Element) -> None:
        for child in el:
            if isinstance(child.tag, str) and child.tag not in SKIP and not is_quote(child):
                out.append(child)
                walk(child)

    walk(quote)
    return out


def _is_signature(el: etree._Element) -> bool:
    return bool(element_kinds(el) & _SIGNATURE) or bool(
        _SIGNATURE_CLASS.search(el.get("class") or "")
    )


def source_of(quote: etree._Element) -> etree._Element | None:
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
        or element_kinds(last) & _CITED
        or _CITED_CLASS.search(last.get("class") or "")
        or (
            last.tag == "footer"
            and not _is_letter(quote)
            and not any(element_kinds(e) & _LETTER_PARTS or _is_signature(e) for e in last.iter())
            and sum(1 for c in last if isinstance(c.tag, str) and c.tag in BLOCKS) <= 1
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
    return last if len(element_text(last).split()) <= _SOURCE_WORDS else None


def signature_of(quote: etree._Element) -> str | None:
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
        if not tag or tag in SKIP or _taken_out(node):
            return
        if tag == "br" or tag in BLOCKS:
            out.append("\n")
        out.append(node.text or "")
        for child in node:
            walk(child)
            out.append(child.tail or "")
        if tag in BLOCKS:
            out.append("\n")

    walk(el)
    lines = (WS.sub(" ", t).strip() for t in "".join(out).split("\n"))
    return [t for t in lines if t]


def _name_of(el: etree._Element) -> str | None:
    """A signature's name: its last line, without the closing words before it ("Yours ever,
    Bob Smith"), quotation marks or a final full stop (kept after an initial: "H. J.");
    None unless it is a few words starting with a capital, not a postscript."""
    lines = _lines_of(el)
    if not lines:
        return None
    text = lines[-1].strip(_NAME_EDGES)
    m = VALEDICTION.match(text) or _CLOSING_LINE.match(text)
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


def signs_off(el: etree._Element) -> bool:
    """A signature outside a quote, or a short right-aligned line with no blocks in it (a
    letter's date, closing or signature, as Project Gutenberg aligns them)."""
    if el.tag not in ("p", "div", "span") or any(
        isinstance(c.tag, str) and c.tag in BLOCKS for c in el
    ):
        return False
    if _is_signature(el):
        return True
    short = 0 < len(element_text(el).split()) <= _NAME_WORDS
    return short and bool(_RIGHT_CLASS.search(el.get("class") or ""))
