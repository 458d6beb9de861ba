"""`narrate serve` against real clients: a uvicorn server in a subprocess on 127.0.0.1.

Byte ranges as podcast apps send them, HEAD, content types, CORS, path traversal and
hidden files, hostile headers, slow clients, a bounded load test and a real podcast
client (greg) downloading every episode.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

from narration.errors import OutputError
from narration.publishing.serve import bind_socket, check_range

from .support import ChapterSpec, build_podcast, start_server, stop

SECRET = "this file is outside output/ and must never be served"


class Site:
    def __init__(self, root: Path, out: Path, base: str, printed: list[str]) -> None:
        self.root, self.out, self.base, self.printed = root, out, base, printed
        self.host, port = base[len("http://") :].rstrip("/").split(":")
        self.port = int(port)

    def raw(
        self, method: str, target: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """A request with the target sent exactly as given (httpx would normalise '..')."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.putrequest(
                method,
                target,
                skip_accept_encoding=True,
                skip_host="host" in {k.lower() for k in headers or {}},
            )
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            conn.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, speech: list[bytes]) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("served")
    specs = (
        ChapterSpec("first", "First & <best>", (0, 1), slug="01-first"),
        ChapterSpec("second", "Second", (2, 3), slug="02-second"),
        ChapterSpec("third", "Third", (1, 2, 3), slug="03-third"),
    )
    _, _, _, out = build_podcast(root, speech, specs)
    (root / "secret.txt").write_text(SECRET, encoding="utf-8")
    (out / ".cache" / "clips").mkdir(parents=True)
    (out / ".cache" / "clips" / "x.wav").write_text(SECRET, encoding="utf-8")
    (out / ".lock").write_text(SECRET, encoding="utf-8")
    (out / ".feed.xml.tmp123").write_text(SECRET, encoding="utf-8")
    (out / "leak.txt").symlink_to(root / "secret.txt")
    (out / "passwd.txt").symlink_to("/etc/passwd")
    (out / "hidden.txt").symlink_to(out / ".lock")
    (out / "alias.json").symlink_to(out / "01-first.chapters.json")  # inside: served
    (out / "sub").mkdir()
    (out / "sub" / "up.txt").symlink_to(root / "secret.txt")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(out / "thumb.png")
    proc, printed = start_server(out)
    url = next(m.group(0) for line in printed if (m := re.search(r"http://\S+/feed\.xml", line)))
    try:
        yield Site(root, out, url[: -len("feed.xml")], printed)
    finally:
        stop(proc)


def test_serve_prints_the_feed_url_and_serves_the_page_at_root(site: Site) -> None:
    assert site.printed[0] == f"Subscribe in your podcast app: {site.base}feed.xml"
    r = httpx.get(site.base)
    assert r.status_code == 200
    assert r.content == (site.out / "index.html").read_bytes()


def test_apples_first_probe_bytes_0_1(site: Site) -> None:
    mp3 = site.out / "01-first.mp3"
    data = mp3.read_bytes()
    r = httpx.get(site.base + "01-first.mp3", headers={"Range": "bytes=0-1"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 0-1/{len(data)}"
    assert r.headers["content-length"] == "2"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"] == "audio/mpeg"
    assert r.content == data[:2]


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=100-", 100, None),  # open-ended
        ("bytes=-500", -500, None),  # suffix
        ("bytes=0-99999999999", 0, None),  # past the end: clamped
        ("bytes=10-20", 10, 21),
        ("bytes=5000-5000", 5000, 5001),
        ("bytes=-99999999", 0, None),  # suffix longer than the file: all of it
        ("bytes=0-1, 999999999-", 0, 2),  # the unsatisfiable part is dropped
    ],
)
def test_single_ranges(site: Site, header: str, start: int, end: int | None) -> None:
    data = (site.out / "02-second.mp3").read_bytes()
    size = len(data)
    r = httpx.get(site.base + "02-second.mp3", headers={"Range": header})
    want = data[start:end] if start >= 0 else data[start:]
    first = start if start >= 0 else size + start
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {first}-{first + len(want) - 1}/{size}"
    assert r.content == want


@pytest.mark.parametrize(
    "header",
    ["bytes=9999999-", "bytes=9-3", "bytes=-0", "bytes=999999999-999999999"],
)
def test_unsatisfiable_ranges_get_416(site: Site, header: str) -> None:
    size = (site.out / "02-second.mp3").stat().st_size
    r = httpx.get(site.base + "02-second.mp3", headers={"Range": header})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{size}"


@pytest.mark.parametrize(
    "header",
    [
        "items=0-1",  # unknown unit: must be ignored
        "bytes=abc",
        "bytes=1_0-2_0",
        "bytes=--5",
        "bytes=0x10-20",
        "bytes=",
        "bytes=0-" + "9" * 5000,  # too long for int(): must not crash the server
        ",".join(["bytes=0-0"] + [f"{i}-{i}" for i in range(1, 500)]),  # many ranges
    ],
)
def test_malformed_and_hostile_ranges_are_ignored(site: Site, header: str) -> None:
    data = (site.out / "02-second.mp3").read_bytes()
    r = httpx.get(site.base + "02-second.mp3", headers={"Range": header})
    assert r.status_code == 200
    assert r.content == data


def test_two_ranges_come_as_multipart(site: Site) -> None:
    data = (site.out / "02-second.mp3").read_bytes()
    r = httpx.get(site.base + "02-second.mp3", headers={"Range": "bytes=0-9,-10"})
    assert r.status_code == 206
    assert r.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert data[:10] in r.content and data[-10:] in r.content
    assert f"Content-Range: bytes 0-9/{len(data)}".encode() in r.content


def test_head_answers_without_a_body(site: Site) -> None:
    size = (site.out / "03-third.mp3").stat().st_size
    status, headers, body = site.raw("HEAD", "/03-third.mp3")
    assert (status, headers["content-length"], body) == (200, str(size), b"")
    assert headers["content-type"] == "audio/mpeg" and headers["accept-ranges"] == "bytes"
    status, headers, body = site.raw("HEAD", "/03-third.mp3", {"Range": "bytes=0-1"})
    assert (status, headers["content-range"], body) == (206, f"bytes 0-1/{size}", b"")
    status, headers, body = site.raw("HEAD", "/feed.xml")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 1000
    status, _, body = site.raw("HEAD", "/cover.jpg")
    assert status == 200 and body == b""  # Apple checks the cover with HEAD


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("01-first.mp3", "audio/mpeg"),
        ("feed.xml", "application/rss+xml; charset=utf-8"),
        ("01-first.vtt", "text/vtt; charset=utf-8"),
        ("01-first.chapters.json", "application/json"),
        ("cover.jpg", "image/jpeg"),
        ("thumb.png", "image/png"),
        ("index.html", "text/html; charset=utf-8"),
    ],
)
def test_content_types(site: Site, name: str, media_type: str) -> None:
    r = httpx.get(site.base + name)
    assert r.status_code == 200
    assert r.headers["content-type"] == media_type
    assert r.headers["x-content-type-options"] == "nosniff"
    if name != "feed.xml":
        assert r.content == (site.out / name).read_bytes()


def test_cors_for_transcripts_and_chapters(site: Site) -> None:
    for name in ("01-first.vtt", "01-first.chapters.json"):
        r = httpx.get(site.base + name, headers={"Origin": "https://player.example"})
        assert r.headers["access-control-allow-origin"] == "*"
    r = httpx.options(
        site.base + "01-first.vtt",
        headers={"Origin": "https://player.example", "Access-Control-Request-Method": "GET"},
    )
    assert r.status_code == 204 and "GET" in r.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in httpx.get(site.base + "01-first.mp3").headers


def test_conditional_get(site: Site) -> None:
    r = httpx.get(site.base + "01-first.mp3")
    again = httpx.get(site.base + "01-first.mp3", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    feed = httpx.get(site.base + "feed.xml")
    again = httpx.get(site.base + "feed.xml", headers={"If-None-Match": feed.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/etc/passwd",
        "/leak.txt",  # symlink out of output/
        "/passwd.txt",  # symlink to /etc/passwd
        "/sub/up.txt",
        "/hidden.txt",  # symlink to a hidden file
        "/.lock",
        "/.cache/clips/x.wav",
        "/%2ecache/clips/x.wav",
        "/.feed.xml.tmp123",
        "/sub/",
        "/sub",
        "/./feed.xml",
        "/feed.xml%00.mp3",
        "http://evil.example/../secret.txt",
    ],
)
def test_nothing_outside_output_and_nothing_hidden(site: Site, target: str) -> None:
    status, _, body = site.raw("GET", target)
    assert status == 404, target
    assert SECRET.encode() not in body and b"root:" not in body


def test_symlink_inside_output_is_served(site: Site) -> None:
    r = httpx.get(site.base + "alias.json")
    assert r.status_code == 200
    assert r.content == (site.out / "01-first.chapters.json").read_bytes()


def test_served_feed_carries_the_address_it_was_reached_at(site: Site) -> None:
    parsed = feedparser.parse(httpx.get(site.base + "feed.xml").content)
    for entry in parsed.entries:
        assert entry.enclosures[0].href.startswith(site.base)
        assert entry.podcast_transcript["url"].startswith(site.base)
    # a phone that reached this machine at its LAN address gets URLs for that address
    status, _, body = site.raw("GET", "/feed.xml", {"Host": "192.168.1.5:8000"})
    parsed = feedparser.parse(body)
    assert status == 200
    assert parsed.entries[0].enclosures[0].href == "http://192.168.1.5:8000/01-first.mp3"
    assert parsed.feed.image.href == "http://192.168.1.5:8000/cover.jpg"
    # a Host header that is not a host name cannot inject anything
    status, _, body = site.raw("GET", "/feed.xml", {"Host": 'evil"><x a="'})
    assert status in (200, 400)
    if status == 200:
        assert b"evil" not in body and feedparser.parse(body).entries[0].enclosures[
            0
        ].href.startswith(f"http://127.0.0.1:{site.port}/")


def test_configured_base_url_is_left_alone(tmp_path: Path, speech: list[bytes]) -> None:
    import anyio

    from narration.publishing.serve import make_app

    _, _, _, out = build_podcast(tmp_path, speech, base_url="https://example.org/book/")

    async def fetch(feed_base_url: str | None) -> bytes:
        app = make_app(out, feed_base_url=feed_base_url)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://phone:8000") as c:
            return (await c.get("/feed.xml")).content

    assert anyio.run(fetch, "https://example.org/book/") == (out / "feed.xml").read_bytes()
    # built with --base-url (not in podcast.yaml): a published feed is not rewritten either
    assert anyio.run(fetch, None) == (out / "feed.xml").read_bytes()


def test_oversized_headers_are_refused_and_the_server_keeps_serving(site: Site) -> None:
    with socket.create_connection((site.host, site.port), timeout=10) as s:
        s.sendall(b"GET /feed.xml HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert reply == b"" or reply.split(b" ")[1] in (b"400", b"413", b"431")
    assert httpx.get(site.base + "feed.xml").status_code == 200


def test_a_slow_client_does_not_hold_up_others(site: Site) -> None:
    slow = socket.create_connection((site.host, site.port), timeout=10)
    try:
        slow.sendall(b"GET /01-first.mp3 HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        start = time.monotonic()
        for _ in range(5):
            assert httpx.get(site.base + "02-second.mp3", timeout=5).status_code == 200
        assert time.monotonic() - start < 5
    finally:
        slow.close()


def test_load_many_clients_with_ranges_get_every_byte(site: Site) -> None:
    names = ["01-first.mp3", "02-second.mp3", "03-third.mp3", "feed.xml", "01-first.vtt"]
    want = {n: (site.out / n).read_bytes() for n in names if n != "feed.xml"}
    want["feed.xml"] = httpx.get(site.base + "feed.xml").content

    def client(seed: int) -> int:
        rng = random.Random(seed)
        got = 0
        with httpx.Client(base_url=site.base, timeout=30) as c:
            for name in rng.sample(names, len(names)):
                data = want[name]
                if name == "feed.xml":
                    assert c.get(name).content == data
                    continue
                assert c.get(name, headers={"Range": "bytes=0-1"}).content == data[:2]
                parts, pos = [], 0
                while pos < len(data):
                    step = rng.randint(1, 20_000)
                    r = c.get(name, headers={"Range": f"bytes={pos}-{pos + step - 1}"})
                    assert r.status_code == 206
                    parts.append(r.content)
                    pos += len(r.content)
                assert hashlib.sha256(b"".join(parts)).digest() == hashlib.sha256(data).digest()
                got += len(data)
        return got

    clients = 40
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        total = sum(pool.map(client, range(clients)))
    took = time.monotonic() - start
    assert total == clients * sum(len(v) for k, v in want.items() if k != "feed.xml")
    assert took < 60, f"{clients} clients took {took:.1f} s"
    assert httpx.get(site.base + "feed.xml").status_code == 200


def test_greg_downloads_every_episode_byte_for_byte(site: Site, tmp_path: Path) -> None:
    greg = shutil.which("greg", path=os.path.dirname(sys.executable))
    if greg is None:
        pytest.skip("the greg podcast client is not installed (pip install greg)")
    home = tmp_path / "home"
    downloads = home / "Podcasts"  # greg's default download directory
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    run = {"env": env, "capture_output": True, "text": True, "timeout": 60}
    add = subprocess.run([greg, "add", "book", site.base + "feed.xml"], **run)
    assert add.returncode == 0, add.stderr
    sync = subprocess.run([greg, "sync", "book", "-fs", "all"], **run)
    assert sync.returncode == 0, sync.stderr + sync.stdout
    got = sorted(p.name for p in downloads.iterdir())
    assert got == ["01-first.mp3", "02-second.mp3", "03-third.mp3"], sync.stdout
    for name in got:
        assert (downloads / name).read_bytes() == (site.out / name).read_bytes()


def test_wildcard_host_warns(tmp_path: Path, speech: list[bytes]) -> None:
    _, _, _, out = build_podcast(tmp_path, speech, page=False)
    proc, printed = start_server(out, host="0.0.0.0")
    stop(proc)
    assert printed[0].startswith("Warning: serving on 0.0.0.0: anyone on your network")
    assert printed[1] == "Subscribe in your podcast app (a phone on the same network):"
    assert re.fullmatch(
        r"  http://(\d+\.\d+\.\d+\.\d+|<this machine's address>):\d+/feed\.xml", printed[2]
    )
    # the interfaces' own addresses, as `ip` lists them (never the host name's 127.0.1.1)
    ip = shutil.which("ip")
    if ip is None:
        return
    listed = subprocess.run([ip, "-o", "-4", "addr", "show", "up"], capture_output=True, text=True)
    real = [f.split()[3].split("/")[0] for f in listed.stdout.splitlines() if " lo " not in f]
    urls = [line.strip() for line in printed[2:] if line.startswith("  http://")]
    if real:
        assert sorted(urls) == sorted(f"http://{a}:{urls[0].split(':')[2]}" for a in real)


def test_port_in_use_is_a_clear_error() -> None:
    taken = bind_socket("127.0.0.1", 0)
    try:
        with pytest.raises(OutputError, match=r"cannot listen there: Address already in use"):
            bind_socket("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_check_range_decisions() -> None:
    assert check_range("bytes=0-1", 10) == "bytes=0-1"
    assert check_range("bytes=8-", 10) == "bytes=8-"
    assert check_range("bytes=10-", 10) == 416
    assert check_range("bytes=0-0", 0) == 416
    assert check_range("Bytes = 1-2", 10) == "bytes=1-2"
    assert check_range("bytes=1-2,x", 10) is None


def test_ctrl_c_stops_the_server_cleanly(tmp_path: Path, speech: list[bytes]) -> None:
    import signal

    _, _, _, out = build_podcast(tmp_path, speech, page=False)
    # At once (uvicorn may still be starting) and once it answers requests.
    for wait_until_serving in (False, True):
        proc, printed = start_server(out)
        if wait_until_serving:
            url = printed[0].split(": ", 1)[1]
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        assert response.status == 200
                    break
                except OSError:
                    assert time.monotonic() < deadline, "server never answered"
                    time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert rest.strip().endswith("Stopped.") and "Traceback" not in err
