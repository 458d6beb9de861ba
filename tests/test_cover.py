"""Cover art: the user's image checked and normalised, or a generated one, always stable."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from narration.assembly.cover import generate_cover, prepare_cover, user_cover
from narration.errors import InputError

TITLE = "The Workers' Opposition in Russia"
AUTHOR = "Alexandra Kollontai"


def _image(path: Path, size: tuple[int, int], mode: str = "RGB", **save: object) -> Path:
    colour = (30, 90, 160, 128) if mode == "RGBA" else (30, 90, 160)
    im = Image.new(mode, size, colour[: len(mode)])
    # a mark in one corner, to see where it ends up after cropping or rotating
    im.paste((250, 250, 0)[: len(mode)] if mode != "RGBA" else (250, 250, 0, 255), (0, 0, 80, 80))
    im.save(path, **save)  # type: ignore[arg-type]
    return path


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.copy()


def test_generated_cover_is_square_png_stable_and_kept(tmp_path: Path) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    seeds.mkdir()
    out.mkdir()
    path = prepare_cover(seeds, TITLE, AUTHOR, out)
    assert path == out / "cover.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (1400, 1400)
    assert path.read_bytes() == generate_cover(TITLE, AUTHOR)  # same bytes every time
    mtime = path.stat().st_mtime_ns
    prepare_cover(seeds, TITLE, AUTHOR, out)
    assert path.stat().st_mtime_ns == mtime  # unchanged: not rewritten
    assert generate_cover("Another Book", AUTHOR) != path.read_bytes()


def test_generated_cover_draws_title_and_author_large_and_centred() -> None:
    im = Image.open(io.BytesIO(generate_cover(TITLE, AUTHOR))).convert("RGB")
    px = np.asarray(im).astype(int)
    white = (px > 240).all(axis=2)  # the title is white, nothing else is
    rows = np.flatnonzero(white.any(axis=1))
    cols = np.flatnonzero(white.any(axis=0))
    # a big block of lettering, well inside the frame, centred
    assert rows.size and 300 < rows[-1] - rows[0] < 900
    assert 700 < cols[-1] - cols[0] <= 1180
    assert abs((cols[0] + cols[-1]) / 2 - 700) < 40
    assert white.mean() > 0.02  # strokes, not a hairline
    # the author's line: accent-coloured text below the title
    background = px[700, 5]
    below = px[rows[-1] + 40 :, 150:1250]
    differs = (np.abs(below - background).sum(axis=2) > 60).any(axis=1)
    assert differs.sum() > 40
    # a long title is wrapped and shrunk to fit, never cut off at the edges
    long = Image.open(io.BytesIO(generate_cover("A " + "very long title " * 12, AUTHOR)))
    edge = np.asarray(long.convert("RGB")).astype(int)[:, :100]
    assert not (edge > 240).all(axis=2).any()


def test_seed_cover_is_used_as_is_when_it_is_already_right(tmp_path: Path) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    seeds.mkdir()
    out.mkdir()
    src = _image(seeds / "Cover.JPG", (1600, 1600), quality=90)
    path = prepare_cover(seeds, TITLE, AUTHOR, out)
    assert path == out / "cover.jpg"
    assert path.read_bytes() == src.read_bytes()


def test_a_user_cover_is_normalised(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # transparent PNG: flattened to RGB, still PNG
    png = _image(tmp_path / "alpha.png", (2000, 2000), "RGBA")
    path = prepare_cover(tmp_path / "none", TITLE, AUTHOR, out, explicit=png)
    with Image.open(path) as im:
        assert path.name == "cover.png" and im.format == "PNG"
        assert im.mode == "RGB" and im.size == (2000, 2000)
    # too big: brought down to 3000; a stale cover.png from the run before goes away
    big = _image(tmp_path / "big.jpg", (4000, 4000), quality=85)
    path = prepare_cover(tmp_path / "none", TITLE, AUTHOR, out, explicit=big)
    with Image.open(path) as im:
        assert path.name == "cover.jpg" and im.format == "JPEG" and im.size == (3000, 3000)
    assert not (out / "cover.png").exists()
    # nearly square: centred whole on a square, never cropped
    near = _image(tmp_path / "near.jpg", (1500, 1450), quality=90)
    assert _open(prepare_cover(tmp_path, TITLE, AUTHOR, out, explicit=near)).size == (1500, 1500)
    # CMYK: converted to RGB, as Apple requires
    cmyk = Image.new("CMYK", (1400, 1400), (0, 80, 160, 0))
    cmyk.save(tmp_path / "cmyk.jpg")
    assert _open(prepare_cover(tmp_path, TITLE, AUTHOR, out, tmp_path / "cmyk.jpg")).mode == "RGB"
    # EXIF orientation: turned upright, so the corner mark moves
    rot = Image.new("RGB", (1400, 1400), (30, 90, 160))
    rot.paste((250, 250, 0), (0, 0, 80, 80))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rot.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    upright = _open(prepare_cover(tmp_path, TITLE, AUTHOR, out, tmp_path / "rot.jpg"))
    r, g, b = upright.getpixel((1400 - 40, 40))  # type: ignore[misc]
    assert r > 200 and g > 200 and b < 80


BORDER = (20, 60, 120)
INSIDE = (200, 40, 40)
MARK = (250, 250, 0)


def _framed(path: Path, size: tuple[int, int], fmt: str) -> Path:
    """A printed cover: a frame of one colour (what the square is padded with), another
    inside, and a mark just inside its top-left corner (to find where it lands)."""
    w, h = size
    im = Image.new("RGB", size, BORDER)
    im.paste(INSIDE, (40, 40, w - 40, h - 40))
    im.paste(MARK, (40, 40, 140, 140))
    im.save(path, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return path


def _near(pixel: object, colour: tuple[int, int, int], within: int = 12) -> bool:
    return all(abs(a - b) <= within for a, b in zip(pixel, colour, strict=True))  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("name", "fmt", "size", "side", "at", "scale"),
    [
        ("cover.jpg", "JPEG", (1000, 1500), 1500, (250, 0), 1.0),  # a printed book's 2:3
        ("cover.png", "PNG", (2000, 1450), 2000, (0, 275), 1.0),  # landscape
        ("cover.jpg", "JPEG", (2000, 4000), 3000, (750, 0), 0.75),  # too big: brought down
    ],
)
def test_a_portrait_or_landscape_cover_is_centred_on_a_square_of_its_border(
    tmp_path: Path,
    name: str,
    fmt: str,
    size: tuple[int, int],
    side: int,
    at: tuple[int, int],
    scale: float,
) -> None:
    """A user's cover that is not square is taken whole (nothing cropped, nothing enlarged),
    centred on a square painted its border's colour, in its own format, the same bytes on
    every run."""
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    seeds.mkdir()
    out.mkdir()
    _framed(seeds / name, size, fmt)
    path = prepare_cover(seeds, TITLE, AUTHOR, out)
    assert path.name == name
    with Image.open(path) as im:
        assert im.format == fmt and im.mode == "RGB" and im.size == (side, side)
        w, h = round(size[0] * scale), round(size[1] * scale)
        x, y = at
        assert (side - w) // 2 == x and (side - h) // 2 == y
        # the padding on both sides: the frame's colour
        for corner in ((2, 2), (side - 3, side - 3), (2, side - 3), (side - 3, 2)):
            assert _near(im.getpixel(corner), BORDER), (corner, im.getpixel(corner))
        # the picture whole and in the middle: its mark, its inside, its far corner
        assert _near(im.getpixel((x + round(90 * scale), y + round(90 * scale))), MARK)
        assert _near(im.getpixel((side // 2, side // 2)), INSIDE)
        assert _near(im.getpixel((x + w - round(60 * scale), y + h - round(60 * scale))), INSIDE)
        if x:  # the padding is beside the picture, not over it
            assert _near(im.getpixel((x - 5, side // 2)), BORDER)
            assert _near(im.getpixel((x + round(60 * scale), side // 2)), INSIDE)
        else:
            assert _near(im.getpixel((side // 2, y - 5)), BORDER)
            assert _near(im.getpixel((side // 2, y + round(60 * scale))), INSIDE)
    first = path.read_bytes()
    again = tmp_path / "again"
    again.mkdir()
    assert prepare_cover(seeds, TITLE, AUTHOR, again).read_bytes() == first  # deterministic


def test_the_explicit_cover_wins_over_the_seeds(tmp_path: Path) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    seeds.mkdir()
    out.mkdir()
    _image(seeds / "cover.png", (1400, 1400))
    explicit = _image(tmp_path / "mine.jpg", (1400, 1400), quality=90)
    assert user_cover(seeds, explicit) == (explicit.read_bytes(), ".jpg")
    assert user_cover(seeds) == ((seeds / "cover.png").read_bytes(), ".png")
    assert user_cover(tmp_path / "no-seeds") is None
    assert prepare_cover(seeds, TITLE, AUTHOR, out, explicit=explicit).read_bytes() == (
        explicit.read_bytes()
    )


@pytest.mark.parametrize(
    ("size", "content", "message"),
    [
        ((800, 800), None, r"cover\.jpg: cover is 800x800 px; .*at least 1400x1400"),
        ((900, 1300), None, r"cover\.jpg: cover is 900x1300 px \(a square of 1300x1300 once "),
        ((1399, 700), None, r"cover\.jpg: cover is 1399x700 px \(a square of 1399x1399 once "),
        (None, b"this is not a picture", r"cover\.jpg: not a readable image"),
        (None, b"\xff\xd8\xff\xe0 truncated jpeg", r"cover\.jpg: not a readable image"),
    ],
)
def test_a_bad_cover_is_refused_naming_the_file(
    tmp_path: Path, size: tuple[int, int] | None, content: bytes | None, message: str
) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    seeds.mkdir()
    out.mkdir()
    if size is not None:
        _image(seeds / "cover.jpg", size)
    else:
        (seeds / "cover.jpg").write_bytes(content or b"")
    with pytest.raises(InputError, match=message):
        user_cover(seeds)  # what a build checks before it writes anything
    with pytest.raises(InputError, match=message):
        prepare_cover(seeds, TITLE, AUTHOR, out)
    assert list(out.iterdir()) == []


def test_titles_beyond_ascii_are_drawn() -> None:
    """Accents and other scripts come out as letters, never as the font's empty boxes."""
    accented = generate_cover("Les Misérables — Fantine", "Victor Hugo")
    plain = generate_cover("Les Miserables - Fantine", "Victor Hugo")
    im = np.asarray(Image.open(io.BytesIO(accented)).convert("RGB")).astype(int)
    assert (im > 240).all(axis=2).mean() > 0.01
    assert accented != generate_cover("Les Mis?rables ? Fantine", "Victor Hugo")
    assert plain != generate_cover("", "")
