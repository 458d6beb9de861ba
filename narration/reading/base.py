"""What every reader gives the segmenter: the texts of a seed file, and what the file says
about the book (an EPUB's title, author, language and cover)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from narration.model import BookFacts, Removed


@dataclass(frozen=True)
class ReadOptions:
    """How the readers read (voices.yaml's `reading:`)."""

    #: an image's alt text read where the image stands, instead of listed as not read
    image_descriptions: bool = False


@dataclass(frozen=True)
class Signed:
    """A letter read as a quote, and the name it is signed with: the source announced before
    it ("From H. J."), while the signature itself is read where it stands in the letter, so
    the name's words are counted there and the source is not an attribution line of its own.
    """

    first: int  # the letter's first line in the rendered text
    last: int  # and its last
    name: str


@dataclass(frozen=True)
class SourceText:
    """One text to segment: a plain-text or Markdown seed, or one document of an EPUB or an
    HTML file rendered as Markdown (its headings, quotes and lists marked as Markdown marks
    them, each block on the line where it starts in the document)."""

    file: str  # as chapters and errors name it: "01-intro.txt", "book.epub/OEBPS/ch1.xhtml"
    text: str
    markdown: bool
    where: Path  # the seed file itself, for errors about the whole file
    #: whether `&...;` in the text are character references, decoded as text (Markdown's)
    references: bool = False
    title: str | None = None  # the chapter's title when the text has no heading (EPUB nav)
    #: what the reader took out before the segmenter saw the text (footnotes, page numbers)
    removed: tuple[Removed, ...] = ()
    #: the document's text content, every word the proof must find (None: `text` itself)
    content: str | None = None
    #: chapter headings' lines in `text` and the table of contents' titles for them
    titles: tuple[tuple[int, str], ...] = ()
    #: letters whose source is the name they are signed with
    signed: tuple[Signed, ...] = ()
    #: an EPUB or HTML document's text content, its text nodes in document order (the head's
    #: title among them): the text segments' spans index (None: `text` itself, a text
    #: seed's decoded text)
    document: str | None = field(default=None, repr=False)
    #: where the body's text starts in `document` (segments are looked for from there)
    body_at: int = 0


@dataclass(frozen=True)
class Reading:
    """A seed file as read: its texts in reading order, and its facts."""

    texts: tuple[SourceText, ...]
    facts: BookFacts = field(default_factory=BookFacts)
    #: parts of the file not read at all (a colophon, a copyright page), with their reasons
    removed: tuple[Removed, ...] = ()

    def contents(self) -> dict[str, str]:
        """Each text's words as the file holds them (file -> text), read or not: what the
        proof that no word is lost checks the Book against."""
        out = {st.file: st.text if st.content is None else st.content for st in self.texts}
        for r in self.removed:
            out[r.file] = f"{out.get(r.file, '')}\n{r.text}"
        return out
