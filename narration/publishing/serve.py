"""`narrate serve`: output/ over HTTP, for podcast apps on this machine or a phone nearby.

Podcast apps need byte ranges (Apple's player first asks for `bytes=0-1`, and rejects a
host that answers a range with 200) and HEAD; Python's http.server ignores Range, so
this is a Starlette app on uvicorn, whose FileResponse answers ranges. In front of it:

- Only regular files under output/ are served. A path is refused (404) if any part of
  it is empty, `.` or `..`, hidden (`.cache`, `.lock`, temp files), holds a backslash or
  NUL, or if it resolves (symlinks followed) outside output/. Percent-encodings are
  decoded once, before these checks, so `%2e%2e%2f` is `../` and refused as such.
- The Range header is checked strictly before Starlette sees it: an unknown unit or bad
  syntax is ignored (200 with the whole file, as RFC 9110 requires), a range that starts
  past the end, a zero-length suffix (`bytes=-0`) or a reversed range (`bytes=9-3`) is
  answered 416, and more than 16 ranges are ignored rather than served piecemeal.
- When the feed was built for this machine (no base URL configured), the feed served
  carries URLs for the address the request came to, so a phone that reached the server
  as http://192.168.1.5:8000/ downloads episodes from there too.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from narration.errors import OutputError
from narration.invocation import narrate
from narration.layout import FEED_FILE, PAGE_FILE
from narration.publishing.feed import is_loopback_url

MAX_RANGES = 16

#: Content types by file extension; the platform's mimetypes table varies between machines.
MEDIA_TYPES = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".m4b": "audio/mp4",  # audio/x-m4b is unknown to browsers: they would not play it
    ".epub": "application/epub+zip",
    ".xml": "application/rss+xml; charset=utf-8",
    ".vtt": "text/vtt; charset=utf-8",
    ".srt": "application/x-subrip",
    ".json": "application/json",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".wav": "audio/wav",
}
#: Browser players fetch transcripts and chapters cross-origin; web podcast apps the feed.
CORS_SUFFIXES = (".vtt", ".json", ".xml")

# ASCII digits, and few enough that int() stays cheap (a 5,000-digit one would raise)
_RANGE_SPEC = re.compile(r"^[ \t]*([0-9]{0,19})[ \t]*-[ \t]*([0-9]{0,19})[ \t]*$")
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$"
)


def _not_found() -> Response:
    return PlainTextResponse("Not found\n", status_code=404)


def resolve_request_path(root: Path, url_path: str) -> Path | None:
    """The file under root that a decoded URL path names, or None if it must not be served."""
    if "\\" in url_path or "\x00" in url_path:
        return None
    parts = url_path.split("/")[1:] if url_path.startswith("/") else None
    if parts is None:
        return None
    if parts == [""]:
        parts = [PAGE_FILE]
    for part in parts:
        if part in ("", ".", "..") or part.startswith(".") or ":" in part:
            return None
    candidate = root.joinpath(*parts)
    try:
        real = Path(os.path.realpath(candidate))
        rel = real.relative_to(root)
    except (ValueError, OSError):
        return None
    if any(p.startswith(".") for p in rel.parts):
        return None
    try:
        st = real.stat()
    except OSError:
        return None
    return real if stat.S_ISREG(st.st_mode) else None


def check_range(header: str, size: int) -> str | int | None:
    """Judge a Range header: the header to pass on, None to ignore it, or 416.

    RFC 9110 section 14: a server must ignore a range unit it does not know, and may ignore
    or reject an invalid or hostile set of ranges. Here bad syntax and too many ranges are
    ignored (the whole file, 200) and ranges that select nothing are rejected (416).
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = spec.split(",")
    if len(specs) > MAX_RANGES:
        return None
    satisfiable = []
    for part in specs:
        m = _RANGE_SPEC.match(part)
        if m is None or (not m.group(1) and not m.group(2)):
            return None
        first, last = m.group(1), m.group(2)
        if first:
            start = int(first)
            if last and int(last) < start:
                return 416  # bytes=9-3: invalid, rejected
            if start < size:
                satisfiable.append(f"{start}-{last}")
        elif int(last) > 0 and size > 0:
            satisfiable.append(f"-{last}")
    if not satisfiable:
        return 416
    return "bytes=" + ",".join(satisfiable)


class _ServedFile(FileResponse):
    """A file answered with ranges already checked: Starlette sees only a valid header."""

    def __init__(self, path: Path, *, media_type: str, headers: dict[str, str], rng: str | None):
        super().__init__(path, media_type=media_type, headers=headers)
        self._range = rng

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]
        if self._range is not None:
            raw.append((b"range", self._range.encode("latin-1")))
        await super().__call__({**scope, "headers": raw}, receive, send)


def _etag(st: os.stat_result) -> str:
    """The ETag Starlette's FileResponse sends for this file (so If-None-Match can match)."""
    base = f"{st.st_mtime}-{st.st_size}".encode()
    return f'"{hashlib.md5(base, usedforsecurity=False).hexdigest()}"'


def _media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


def _base_headers(path: Path) -> dict[str, str]:
    headers = {"x-content-type-options": "nosniff", "cache-control": "no-cache"}
    if path.name.lower().endswith(CORS_SUFFIXES):
        headers["access-control-allow-origin"] = "*"
        headers["access-control-expose-headers"] = "Content-Length, Content-Range, ETag"
    return headers


def request_base_url(request: Request) -> str:
    """http://<the address the client used>/, from a sane Host header or the socket."""
    host = request.headers.get("host", "")
    if not _HOST.match(host):
        server = request.scope.get("server") or ("127.0.0.1", 8000)
        name = server[0]
        host = f"[{name}]" if ":" in str(name) else str(name)
        host = f"{host}:{server[1]}" if server[1] else host
    return f"http://{host}/"


def feed_base(feed_text: str) -> str | None:
    """The base URL a feed was built with (as written in the XML), from its rel="self" link."""
    for m in re.finditer(r"<atom:link\b([^>]*)>", feed_text):
        attrs = dict(re.findall(r'([\w:-]+)="([^"]*)"', m.group(1)))
        href = attrs.get("href", "")
        if attrs.get("rel") == "self" and href.endswith("/" + FEED_FILE):
            return href[: -len(FEED_FILE)]
    return None


def localized_feed(feed_text: str, built_base: str, new_base: str) -> str:
    """The feed with every URL under the base it was built with moved to new_base.

    new_base comes from request_base_url, which admits no character XML would escape.
    """
    return feed_text.replace(built_base, new_base)


def make_app(output_dir: Path, *, feed_base_url: str | None) -> Starlette:
    """The ASGI app serving output_dir. feed_base_url: the configured base URL, if any."""
    root = Path(os.path.realpath(output_dir))

    async def serve_file(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(
                status_code=204,
                headers={
                    "access-control-allow-origin": "*",
                    "access-control-allow-methods": "GET, HEAD, OPTIONS",
                    "access-control-allow-headers": "Range, If-None-Match, If-Range",
                    "access-control-max-age": "86400",
                },
            )
        path = resolve_request_path(root, request.scope["path"])
        if path is None:
            return _not_found()
        try:
            st = path.stat()
        except OSError:
            return _not_found()
        headers = _base_headers(path)
        media_type = _media_type(path)
        if path == root / FEED_FILE and feed_base_url is None:
            response = await _feed_for_request(request, path, headers)
            if response is not None:
                return response
        etag = _etag(st)
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers={**headers, "etag": etag})
        rng: str | None = None
        if "range" in request.headers:
            judged = check_range(request.headers["range"], st.st_size)
            if judged == 416:
                return PlainTextResponse(
                    "Range not satisfiable\n",
                    status_code=416,
                    headers={**headers, "content-range": f"bytes */{st.st_size}"},
                )
            rng = judged if isinstance(judged, str) else None
        return _ServedFile(path, media_type=media_type, headers=headers, rng=rng)

    async def _feed_for_request(
        request: Request, path: Path, headers: dict[str, str]
    ) -> Response | None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        built = feed_base(text)
        if built is None or not is_loopback_url(built):
            return None
        body = localized_feed(text, built, request_base_url(request)).encode("utf-8")
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers={**headers, "etag": etag})
        return Response(
            body,
            media_type=MEDIA_TYPES[".xml"],
            headers={**headers, "etag": etag, "accept-ranges": "none"},
        )

    return Starlette(routes=[Route("/{path:path}", serve_file, methods=["GET", "HEAD", "OPTIONS"])])


def _lan_addresses() -> list[str]:
    """This machine's addresses a phone on its network can reach: every IPv4 address of a
    network interface that is up, but loopback, read from the interfaces (psutil; nothing
    is sent, and the host name, which often resolves to 127.0.1.1 only, is not asked)."""
    import psutil

    try:
        interfaces = psutil.net_if_addrs()
        up = {name for name, st in psutil.net_if_stats().items() if st.isup}
    except OSError:
        return []
    found = {
        a.address
        for name, addresses in interfaces.items()
        if name in up
        for a in addresses
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    }
    return sorted(found, key=lambda a: tuple(int(x) for x in a.split(".")))


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; OutputError with a plain reason if it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OutputError(
            f"--host {host}: not an address of this machine ({exc.strerror})"
        ) from None
    family, kind, proto, _name, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = " (another server is using it; try --port 8001)" if exc.errno == 98 else ""
        raise OutputError(f"{host}:{port}: cannot listen there: {exc.strerror}{hint}") from None
    sock.set_inheritable(True)
    return sock


def feed_url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/{FEED_FILE}"


def serve(
    output_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    feed_base_url: str | None,
    echo: Callable[[str], None],
) -> None:
    """Serve output_dir with uvicorn until interrupted, after printing the feed URL."""
    import uvicorn

    if not (Path(output_dir) / FEED_FILE).is_file():
        raise OutputError(f"{Path(output_dir) / FEED_FILE}: not built yet; run `{narrate()} build`")
    feed_text = (Path(output_dir) / FEED_FILE).read_text(encoding="utf-8", errors="replace")
    built = feed_base(feed_text)
    sock = bind_socket(host, port)
    port = sock.getsockname()[1]
    app = make_app(Path(output_dir), feed_base_url=feed_base_url)
    if host in ("0.0.0.0", "::", ""):
        echo(
            f"Warning: serving on {host or 'all addresses'}: anyone on your network can "
            "download everything in output/. Stop with Ctrl-C when done."
        )
        urls = [feed_url_for(a, port) for a in _lan_addresses()] or [
            f"http://<this machine's address>:{port}/{FEED_FILE}"
        ]
        echo("Subscribe in your podcast app (a phone on the same network):")
        for url in urls:
            echo(f"  {url}")
        echo(f"Show page on this machine: http://127.0.0.1:{port}/")
    else:
        url = feed_url_for(host, port)
        echo(f"Subscribe in your podcast app: {url}")
        echo(f"Show page: {url[: -len(FEED_FILE)]}")
    if feed_base_url is not None or (built is not None and not is_loopback_url(built)):
        where = feed_base_url or built
        echo(f"(the feed's episode URLs point at {where}, where it is published)")
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            http="h11",
            lifespan="off",
            server_header=False,
            date_header=True,
            limit_concurrency=256,
            timeout_keep_alive=15,
        )
    )

    def _stop(signum: int, frame: object) -> None:
        # Ctrl-C before uvicorn has put its own handler in place (or after it took it away):
        # ask the server to stop rather than raise KeyboardInterrupt into its start-up.
        server.should_exit = True

    main_thread = threading.current_thread() is threading.main_thread()
    signals = (signal.SIGINT, signal.SIGTERM) if main_thread else ()
    previous = {sig: signal.signal(sig, _stop) for sig in signals}
    echo("Press Ctrl-C to stop.")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    echo("Stopped.")


__all__ = ["MEDIA_TYPES", "check_range", "make_app", "resolve_request_path", "serve"]
