"""EPUB 2 and 3: the spine in reading order, chapter titles from the navigation (EPUB 3's
nav document, EPUB 2's NCX), the title, subtitle, author, language, description, cover and
(where stated) the work's original year from the OPF.

An EPUB is a ZIP of XML and XHTML, and a hostile one is refused with one line before any
of it is read: not a ZIP, no container or OPF, a spine naming missing files, DRM
(encrypted content in META-INF/encryption.xml; obfuscated fonts are fine), entries whose
names escape the archive, more unpacked bytes than a book has (a zip bomb), and XML entity
declarations (never expanded, never fetched). Nothing is extracted to disk.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urldefrag

from lxml import etree
from lxml import html as lxml_html

from narration.errors import InputError
from narration.model import BookFacts, Removed
from narration.reading.base import Reading, ReadOptions, SourceText
from narration.reading.elements import content_text, is_note_ref, not_read
from narration.reading.html import parse_document, render_document

#: More than any book unpacks to (the longest novels are a few MB of XHTML; images add
#: tens): a bound against zip bombs, checked on the sizes the archive declares (zipfile
#: never reads past them).
MAX_UNPACKED = 512 * 1024 * 1024
MAX_ENTRIES = 20_000
#: A document (or the OPF, the NCX) larger than any book's page is refused as it is read,
#: before its XML can take gigabytes to parse; and the book's text as a whole is bounded.
MAX_DOCUMENT = 8 * 2**20  # the whole of Shakespeare in one HTML file is 5.6 MB
MAX_TEXT = 48 * 2**20
MAX_IMAGE = 32 * 2**20
#: Font obfuscation (IDPF, Adobe) is allowed; any other encryption is DRM.
_FONT_OBFUSCATION = (
    "http://www.idpf.org/2008/embedding",
    "http://ns.adobe.com/pdf/enc#RC",
)
_NS = {
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
    "ncx": "http://www.daisy.org/z3986/2005/ncx/",
    "enc": "http://www.w3.org/2001/04/xmlenc#",
}
#: EPUB 2 guide types and file names that mark parts of a book that are not read.
_GUIDE = {
    "copyright-page": "copyright page",
    "colophon": "colophon",
    "title-page": "title page",
    "toc": "table of contents",
    "cover": "cover page",
}
_NAMED = re.compile(r"(?:^|[/_-])(copyright|colophon|titlepage|title-page|imprint|toc|cover)\b")
_NAMED_AS = {
    "copyright": "copyright page",
    "colophon": "colophon",
    "titlepage": "title page",
    "title-page": "title page",
    "imprint": "imprint",
    "toc": "table of contents",
    "cover": "cover page",
}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def read_epub(path: Path, options: ReadOptions | None = None) -> Reading:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(path, f"not an EPUB: not a ZIP archive ({exc})") from None
    with archive:
        _check_archive(archive, path)
        return _Book(archive, path, options or ReadOptions()).read()


def _note_targets(docs: list[tuple[str, bool, etree._Element]]) -> dict[str, set[str]]:
    """Document -> the ids of its notes, as the book's note references point to them.

    A reference and the note's link back to it look alike (a small number in <sup>,
    linking within the book): of two that link to each other, the note is the one that
    comes later in reading order."""
    order = {name: k for k, (name, _, _) in enumerate(docs)}
    where: dict[tuple[str, str], tuple[int, int]] = {}
    links: list[tuple[tuple[str, str], tuple[str, str]]] = []
    for name, _, root in docs:
        for el in root.iter():
            if isinstance(el.tag, str) and el.get("id"):
                where[(name, el.get("id"))] = (order[name], el.sourceline or 0)
        for el in root.iter("a", "sup"):
            if not is_note_ref(el):
                continue
            link = el if el.tag == "a" else el.find("a")
            if link is None:
                continue
            path, fragment = urldefrag(link.get("href") or "")
            if not fragment:
                continue
            doc = posixpath.normpath(posixpath.join(posixpath.dirname(name), unquote(path)))
            own = next(
                (
                    e.get("id")
                    for e in (link, el, link.getparent())
                    if e is not None and e.get("id")
                ),
                None,
            )
            links.append(((name, own or ""), (doc if path else name, unquote(fragment))))
    pointed = {source: target for source, target in links}
    targets: dict[str, set[str]] = {}
    for source, target in links:
        back = pointed.get(target) == source
        if back and where.get(target, (0, 0)) < where.get(source, (0, 0)):
            continue  # the reference this note links back to
        targets.setdefault(target[0], set()).add(target[1])
    return targets


def _check_archive(archive: zipfile.ZipFile, path: Path) -> None:
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise InputError(path, f"{len(infos):,} entries: more than any book; not read")
    total = 0
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name):
            raise InputError(path, f"the entry '{name}' escapes the archive; refusing it")
        total += info.file_size
    if total > MAX_UNPACKED:
        raise InputError(
            path,
            f"unpacks to {total / 1e6:,.0f} MB, more than a book "
            f"(at most {MAX_UNPACKED / 1e6:,.0f} MB): a zip bomb? Not read",
        )


class _Book:
    def __init__(self, archive: zipfile.ZipFile, path: Path, options: ReadOptions) -> None:
        self.options = options
        self.archive = archive
        self.path = path
        self.names = set(archive.namelist())

    def data(self, name: str, cap: int = MAX_DOCUMENT) -> bytes:
        """An entry's bytes, never more than `cap` unpacked (whatever its header claims)."""
        try:
            with self.archive.open(name) as entry:
                data = entry.read(cap + 1)
        except KeyError:
            raise InputError(self.path, f"{name} is missing from the archive") from None
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            RuntimeError,
            NotImplementedError,
            EOFError,
        ) as exc:
            raise InputError(self.path, f"{name}: cannot be unpacked ({exc})") from None
        if len(data) > cap:
            raise InputError(
                self.path,
                f"{name} unpacks to more than {cap // 2**20} MB, more than any book's page: "
                "not read",
            )
        return data

    def xml(self, name: str) -> etree._Element:
        data = self.data(name)
        text = data.decode("utf-16", "replace") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else None
        if b"<!ENTITY" in data or (text is not None and "<!ENTITY" in text):
            raise InputError(
                self.path, f"{name} declares XML entities, which narrate never expands"
            )
        try:
            return etree.fromstring(data, parser=_PARSER)
        except etree.XMLSyntaxError as exc:
            raise InputError(self.path, f"{name} is not well-formed XML ({exc})") from None

    def read(self) -> Reading:
        self.check_drm()
        opf_name, opf = self.package()
        base = posixpath.dirname(opf_name)

        def href(h: str) -> str:
            return posixpath.normpath(posixpath.join(base, unquote(urldefrag(h)[0])))

        manifest = {}
        for item in opf.iterfind(".//opf:manifest/opf:item", _NS):
            manifest[item.get("id")] = item
        spine, order = self.spine(opf, opf_name, manifest, href)
        nav_doc = next(
            (
                href(i.get("href"))
                for i in manifest.values()
                if "nav" in (i.get("properties") or "").split()
            ),
            None,
        )
        entries = self.navigation(nav_doc, spine, manifest, href)
        labels: dict[str, str] = {}
        tops: dict[str, dict[str, str]] = {}
        for doc, fragment, label, top in entries:
            labels.setdefault(doc, label)
            if top and fragment:
                tops.setdefault(doc, {}).setdefault(fragment, label)
        guide = {
            href(r.get("href") or ""): _GUIDE[r.get("type")]
            for r in opf.iterfind(".//opf:guide/opf:reference", _NS)
            if r.get("type") in _GUIDE
        }
        docs = self.documents(order)
        not_read_as = dict(guide)
        if nav_doc is not None:
            not_read_as[nav_doc] = "table of contents"
        texts, removed = self.texts(docs, labels, tops, not_read_as)
        return Reading(tuple(texts), self.facts(opf, manifest, href), tuple(removed))

    def package(self) -> tuple[str, etree._Element]:
        """The package document (OPF) the container names: its name and its root."""
        if "META-INF/container.xml" not in self.names:
            raise InputError(self.path, "not an EPUB: no META-INF/container.xml")
        container = self.xml("META-INF/container.xml")
        rootfile = container.find(".//c:rootfile", _NS)
        opf_name = rootfile.get("full-path") if rootfile is not None else None
        if not opf_name or opf_name not in self.names:
            raise InputError(self.path, "not an EPUB: the container names no package (OPF)")
        return opf_name, self.xml(opf_name)

    def spine(
        self,
        opf: etree._Element,
        opf_name: str,
        manifest: dict[str | None, etree._Element],
        href: Callable[[str], str],
    ) -> tuple[etree._Element, list[tuple[str, bool]]]:
        """The spine, and the reading order it gives: each document, and whether it is
        linear (part of the reading order proper)."""
        spine = opf.find(".//opf:spine", _NS)
        if spine is None:
            raise InputError(self.path, f"{opf_name} has no spine: no reading order")
        order = []
        for ref in spine.iterfind("opf:itemref", _NS):
            item = manifest.get(ref.get("idref"))
            if item is None:
                raise InputError(self.path, f"the spine names '{ref.get('idref')}', not listed")
            name = href(item.get("href") or "")
            if name not in self.names:
                raise InputError(self.path, f"the spine names {name}, which is not in it")
            order.append((name, ref.get("linear") != "no"))
        return spine, order

    def documents(self, order: list[tuple[str, bool]]) -> list[tuple[str, bool, etree._Element]]:
        """The spine's documents parsed, in order; never more than MAX_TEXT in all."""
        docs, total = [], 0
        for name, linear in order:
            data = self.data(name)
            total += len(data)
            if total > MAX_TEXT:
                raise InputError(
                    self.path, f"more than {MAX_TEXT // 2**20} MB of text: more than a book"
                )
            docs.append((name, linear, parse_document(data, f"{self.path}: {name}")))
        return docs

    def texts(
        self,
        docs: list[tuple[str, bool, etree._Element]],
        labels: dict[str, str],
        tops: dict[str, dict[str, str]],
        not_read_as: dict[str, str],
    ) -> tuple[list[SourceText], list[Removed]]:
        """Each document rendered, but those not read (the navigation, the guide's cover
        or copyright page, a part not in the reading order, a title page), listed."""
        notes = _note_targets(docs)
        first_named = next((k for k, (n, _, _) in enumerate(docs) if n in labels), len(docs))
        texts, removed = [], []
        for k, (name, linear, root) in enumerate(docs):
            file = f"{self.path.name}/{name}"
            body = root.find(".//body")
            if body is None:
                body = root
            named = _NAMED.search(name.lower())
            why = (
                not_read_as.get(name)
                or not_read(body)
                or (_NAMED_AS[named.group(1)] if named and name not in labels else None)
                or (None if linear else "not in the reading order (linear=no)")
            )
            content = content_text(body)
            if why is None and k < first_named and len(content.split()) < 80:
                why = "title page (before the contents' first entry)"
            if why is not None:
                if content.strip():
                    removed.append(Removed(file, 1, re.sub(r"\s+", " ", content).strip(), why))
                continue
            here = tops.get(name, {})
            texts.append(
                render_document(
                    root,
                    file,
                    self.path,
                    contents_title=labels.get(name),
                    chapters_at=here if len(here) >= 2 else None,
                    notes=frozenset(notes.get(name, ())),
                    options=self.options,
                    content=content,
                )
            )
        return texts, removed

    def check_drm(self) -> None:
        for marker, scheme in (("META-INF/rights.xml", "Adobe"), ("META-INF/sinf.xml", "Apple")):
            if marker in self.names:
                raise InputError(
                    self.path,
                    f"the book is locked ({scheme} DRM, {marker}): narrate reads only books "
                    "without DRM",
                )
        if "META-INF/encryption.xml" not in self.names:
            return
        enc = self.xml("META-INF/encryption.xml")
        for data in enc.iterfind(".//enc:EncryptedData", _NS):
            method = data.find("enc:EncryptionMethod", _NS)
            algorithm = method.get("Algorithm") if method is not None else ""
            if algorithm not in _FONT_OBFUSCATION:
                raise InputError(
                    self.path,
                    "the book is encrypted (DRM, META-INF/encryption.xml): narrate reads "
                    "only books without DRM",
                )

    def navigation(
        self, nav_doc: str | None, spine: etree._Element, manifest: dict, href: Callable
    ) -> list[tuple[str, str, str, bool]]:
        """The table of contents in order (EPUB 3 nav, else NCX): (document, fragment,
        title, whether a top-level entry, a chapter rather than a part of one)."""
        entries: list[tuple[str, str, str, bool]] = []

        def add(base: str, target: str, label: str, top: bool) -> None:
            path, fragment = urldefrag(target)
            doc = posixpath.normpath(posixpath.join(posixpath.dirname(base), unquote(path)))
            label = re.sub(r"\s+", " ", label).strip()
            if label:
                entries.append((doc, unquote(fragment), label, top))

        if nav_doc is not None and nav_doc in self.names:
            name = nav_doc
            root = parse_document(self.data(name), f"{self.path}: {name}")
            tocs = [n for n in root.iter("nav") if "toc" in (n.get("epub:type") or "").split()]
            toc = tocs[0] if tocs else root
            first_list = next(toc.iter("ol", "ul"), None)
            # the elements themselves, kept alive in the set (never id() of a proxy)
            tops = (
                set(first_list.xpath("./li/a[1] | ./li/span/a[1]"))
                if first_list is not None
                else set()
            )
            for a in toc.iter("a"):
                add(name, a.get("href") or "", "".join(a.itertext()), a in tops)
        toc_id = spine.get("toc")
        if not entries and toc_id in manifest:
            name = href(manifest[toc_id].get("href"))
            ncx = self.xml(name)
            nav_map = ncx.find("ncx:navMap", _NS)
            top_points = (
                set(nav_map.iterfind("ncx:navPoint", _NS)) if nav_map is not None else set()
            )
            for point in ncx.iter(f"{{{_NS['ncx']}}}navPoint"):
                text = point.find("ncx:navLabel/ncx:text", _NS)
                content = point.find("ncx:content", _NS)
                if text is not None and content is not None:
                    add(name, content.get("src") or "", text.text or "", point in top_points)
        return entries

    def facts(self, opf, manifest, href) -> BookFacts:
        def first(tag: str) -> str | None:
            el = opf.find(f".//opf:metadata/dc:{tag}", _NS)
            text = re.sub(r"\s+", " ", el.text or "").strip() if el is not None else ""
            return text or None

        cover_item = next(
            (i for i in manifest.values() if "cover-image" in (i.get("properties") or "").split()),
            None,
        )
        if cover_item is None:
            meta = opf.find(".//opf:metadata/opf:meta[@name='cover']", _NS)
            if meta is not None:
                cover_item = manifest.get(meta.get("content"))
        cover = None
        if cover_item is not None:
            name = href(cover_item.get("href") or "")
            if name in self.names:
                cover = (self.data(name, MAX_IMAGE), f"{self.path.name}: {name}")
        title, subtitle = _titles(opf)
        described = opf.find(".//opf:metadata/dc:description", _NS)
        return BookFacts(
            title=title,
            subtitle=subtitle,
            author=first("creator"),
            language=first("language"),
            description=plain_description("".join(described.itertext()))
            if described is not None
            else None,
            year=_original_year(opf),
            cover=cover,
        )


def _titles(opf: etree._Element) -> tuple[str | None, str | None]:
    """The book's title and subtitle: EPUB 3 marks each dc:title's part with a refining
    `title-type` (main, subtitle, ...); without one, the first dc:title is the title."""
    kinds = {
        (m.get("refines") or "").lstrip("#"): (m.text or "").strip()
        for m in opf.iterfind(".//opf:metadata/opf:meta[@property='title-type']", _NS)
    }
    found: dict[str, str] = {}
    for el in opf.iterfind(".//opf:metadata/dc:title", _NS):
        text = re.sub(r"\s+", " ", el.text or "").strip()
        kind = kinds.get(el.get("id") or "", "")
        if text:
            found.setdefault("any", text)
            if kind in ("", "main", "subtitle"):
                found.setdefault("subtitle" if kind == "subtitle" else "title", text)
    return found.get("title", found.get("any")), found.get("subtitle")


def _original_year(opf: etree._Element) -> int | None:
    """The work's own year, only where the OPF states it: EPUB 2's dc:date with
    opf:event="original-publication". A plain dc:date is the ebook's date, never used."""
    for el in opf.iterfind(".//opf:metadata/dc:date", _NS):
        if el.get(f"{{{_NS['opf']}}}event") == "original-publication":
            m = re.match(r"\s*(\d{4})(?!\d)", el.text or "")  # ISO 8601: 1886, 1886-01-05
            if m:
                return int(m.group(1))
    return None


#: Elements after which an HTML description starts a new paragraph.
_BLOCKS = ("p", "div", "li", "dd", "dt", "blockquote", "section", "article", "tr", "ul", "ol")
_BLOCKS += ("dl", "h1", "h2", "h3", "h4", "h5", "h6")


def plain_description(text: str) -> str | None:
    """An OPF's dc:description as plain text: markup in it (often escaped HTML) is dropped,
    paragraphs kept apart by a blank line, whitespace within them collapsed."""
    if re.search(r"<[A-Za-z/!]", text):
        try:
            root = lxml_html.fragment_fromstring(text, create_parent="div")
        except etree.ParserError:
            root = None
        if root is not None:
            for el in list(root.iter("script", "style")):
                el.drop_tree()
            for el in root.iter(*_BLOCKS):
                el.tail = "\n\n" + (el.tail or "")
            for el in root.iter("br"):
                el.tail = " " + (el.tail or "")
            text = root.text_content()
    paragraphs = (re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p) or None
