"""The video downloader against real HTTP servers on 127.0.0.1: the sandbox and small hostile ones.

Nothing here resolves a real name or connects outside the machine: refusals are asserted to happen
before any request starts (an aiohttp trace records every request the session begins), and global
addresses such as 8.8.8.8 only ever meet the pure :func:`is_global_host`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from sandbox import SAMPLE_PATH, Sandbox
from ulazai import download
from ulazai.download import (
    DownloadedVideo,
    DownloadError,
    UnsafeURLError,
    VideoTooLargeError,
    download_video,
    host_is_private,
    is_global_host,
)
from ulazai.errors import ProviderError

SAMPLE = SAMPLE_PATH.read_bytes()
KEY = "sandbox-key"
T2V_30 = {
    "prompt": "A heroic wide shot of a spaceship entering orbit above Earth.",
    "generationMode": "text_to_video",
    "durationSeconds": 5,
    "qualityMode": "std",
}
MB = 1024 * 1024


# --------------------------------------------------------------------------------------------------
# Fixtures and servers.
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """Where downloads go; every failing test asserts it is left empty."""
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture
def started() -> list[str]:
    """Every URL the session began a request to (filled by the session's trace)."""
    return []


@pytest.fixture
async def session(started: list[str]) -> AsyncIterator[aiohttp.ClientSession]:
    async def on_start(_s: aiohttp.ClientSession, _ctx: SimpleNamespace, params: Any) -> None:
        started.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as http:
        yield http


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(api_key=KEY, task_seconds=0.3) as sb:
        yield sb


async def video_url(sandbox: Sandbox, query: str = "") -> str:
    """A completed task's video URL, made the way the bot gets one: generate, then complete."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sandbox.base_url}/kling30/api/generate/",
            json=T2V_30,
            headers={"Authorization": f"Bearer {KEY}"},
        ) as response,
    ):
        assert response.status == 200
        task_id = (await response.json())["task_id"]
    sandbox.complete_now(task_id)
    return f"{sandbox.public_url}/media/videos/{task_id}.mp4{query}"


def video_requests(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests if r.route == "video")


@contextlib.asynccontextmanager
async def serve(
    routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]], host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """A small aiohttp app on ``host`` (port picked by the OS); yields its base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.2)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, 0).start()
        yield f"http://{host}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(answer: bytes, stall: asyncio.Event | None = None) -> AsyncIterator[str]:
    """A bare TCP server that answers any request with exactly ``answer`` (then waits for ``stall``).

    aiohttp's own server will not send a wrong Content-Length or a close-delimited body; this will.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            if stall is not None:
                await stall.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


def assert_empty(directory: Path) -> None:
    assert list(directory.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# Downloading from the sandbox.
# --------------------------------------------------------------------------------------------------


async def test_downloads_the_sandbox_video_to_a_temp_file(
    sandbox: Sandbox, session: aiohttp.ClientSession, directory: Path
) -> None:
    url = await video_url(sandbox)

    video = await download_video(session, url, directory=directory, allow_private=True)

    assert isinstance(video, DownloadedVideo)
    assert video.path.parent == directory
    assert video.path.suffix == ".mp4"
    assert video.path.read_bytes() == SAMPLE
    assert video.size == len(SAMPLE)
    assert video.content_type == "video/mp4"
    await asyncio.to_thread(video.cleanup)
    assert not video.path.exists()
    video.cleanup()  # a file already gone is fine
    assert_empty(directory)


async def test_a_padded_video_arrives_whole(
    sandbox: Sandbox, session: aiohttp.ClientSession, directory: Path
) -> None:
    sandbox.video_bytes = 5 * MB
    url = await video_url(sandbox)

    video = await download_video(session, url, directory=directory, allow_private=True, chunk_size=64 * 1024)

    assert video.size == 5 * MB == video.path.stat().st_size
    with video.path.open("rb") as file:
        assert file.read(len(SAMPLE)) == SAMPLE
        assert file.read(8) == struct.pack(">I4s", 5 * MB - len(SAMPLE), b"free")
    video.cleanup()


@pytest.mark.parametrize(
    ("chunk_size", "bound"),
    [
        (256 * 1024, 3 * MB),
        # aiohttp 3.14's iter_chunked(n) raises the stream's read buffer to 2n, so the default 1 MiB
        # chunk costs about 4 MB at peak: bounded by the chunk size, never by the video's size.
        (download.DEFAULT_CHUNK_SIZE, 6 * MB),
    ],
)
async def test_a_20_mb_video_never_sits_in_memory(
    sandbox: Sandbox, session: aiohttp.ClientSession, directory: Path, chunk_size: int, bound: int
) -> None:
    sandbox.video_bytes = 20 * MB
    url = await video_url(sandbox)
    tracemalloc.start()
    try:
        video = await download_video(
            session, url, directory=directory, allow_private=True, chunk_size=chunk_size
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert video.size == 20 * MB == video.path.stat().st_size
    assert peak < bound, f"peak traced memory {peak} bytes while downloading 20 MB"
    video.cleanup()


async def test_the_default_timeout_is_explicit() -> None:
    timeout = download.DEFAULT_TIMEOUT
    assert timeout.total
    assert timeout.connect
    assert timeout.sock_read
    assert download.MAX_VIDEO_BYTES == 512 * MB


# --------------------------------------------------------------------------------------------------
# The size cap.
# --------------------------------------------------------------------------------------------------


async def test_a_content_length_over_the_cap_is_refused_before_the_body(
    sandbox: Sandbox, session: aiohttp.ClientSession, directory: Path
) -> None:
    url = await video_url(sandbox)

    with pytest.raises(VideoTooLargeError) as caught:
        await download_video(session, url, directory=directory, allow_private=True, max_bytes=len(SAMPLE) - 1)

    assert caught.value.limit == len(SAMPLE) - 1
    assert caught.value.size == len(SAMPLE)
    assert caught.value.status == 200
    assert isinstance(caught.value, DownloadError)
    assert isinstance(caught.value, ProviderError)
    assert_empty(directory)


async def test_a_chunked_body_over_the_cap_is_cut_off_mid_stream(
    session: aiohttp.ClientSession, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse()
        response.content_type = "video/mp4"
        response.enable_chunked_encoding()  # no Content-Length at all
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(10 * MB // 65536):
                await response.write(bytes(65536))
                sent += 65536
            await response.write_eof()
        return response

    created = record_created_files(monkeypatch)
    async with serve({"/video.mp4": endless}) as base:
        with pytest.raises(VideoTooLargeError) as caught:
            await download_video(
                session, f"{base}/video.mp4", directory=directory, allow_private=True, max_bytes=MB
            )

    assert caught.value.limit == MB
    assert caught.value.size is None  # the server never said
    assert len(created) == 1
    assert not created[0].exists()
    assert_empty(directory)
    assert sent < 10 * MB  # the download stopped early, not after reading everything


async def test_a_chunked_body_within_the_cap_downloads(
    session: aiohttp.ClientSession, directory: Path
) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(4):
            await response.write(SAMPLE)
        await response.write_eof()
        return response

    async with serve({"/v": chunked}) as base:
        video = await download_video(session, f"{base}/v", directory=directory, allow_private=True)

    assert video.path.read_bytes() == SAMPLE * 4
    video.cleanup()


async def test_a_close_delimited_body_over_the_cap_is_cut_off(
    session: aiohttp.ClientSession, directory: Path
) -> None:
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"  # no length, no chunking, no type
    async with raw_server(head + bytes(2 * MB)) as base:
        with pytest.raises(VideoTooLargeError) as caught:
            await download_video(
                session, f"{base}/v.mp4", directory=directory, allow_private=True, max_bytes=MB
            )
    assert caught.value.size is None
    assert_empty(directory)


async def test_a_close_delimited_body_without_content_type(
    session: aiohttp.ClientSession, directory: Path
) -> None:
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    async with raw_server(head + b"0123456789") as base:
        video = await download_video(session, f"{base}/v.mp4", directory=directory, allow_private=True)
    assert (video.size, video.content_type) == (10, None)
    assert video.path.read_bytes() == b"0123456789"
    video.cleanup()


async def test_a_body_shorter_than_its_content_length_fails_and_leaves_nothing(
    session: aiohttp.ClientSession, directory: Path
) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n"
    )
    async with raw_server(head + bytes(1000)) as base:
        with pytest.raises(DownloadError) as caught:
            await download_video(session, f"{base}/v.mp4", directory=directory, allow_private=True)
    assert not isinstance(caught.value, VideoTooLargeError)
    assert caught.value.status is None
    assert_empty(directory)


# --------------------------------------------------------------------------------------------------
# Addresses outside the global internet.
# --------------------------------------------------------------------------------------------------


async def test_loopback_is_refused_unless_private_is_allowed(
    sandbox: Sandbox, session: aiohttp.ClientSession, directory: Path, started: list[str]
) -> None:
    url = await video_url(sandbox)

    with pytest.raises(UnsafeURLError) as caught:
        await download_video(session, url, directory=directory)

    assert "127.0.0.1" in str(caught.value)
    assert caught.value.status is None
    assert started == []
    assert video_requests(sandbox) == 0
    assert_empty(directory)

    video = await download_video(session, url, directory=directory, allow_private=True)
    assert video_requests(sandbox) == 1
    video.cleanup()


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:127.0.0.1]:{port}/v.mp4",  # IPv4-mapped IPv6
        "http://[::1]:{port}/v.mp4",
        "http://localhost:{port}/v.mp4",  # a name that resolves to loopback
        "http://127.1:{port}/v.mp4",  # shorthand the system resolver reads as 127.0.0.1
        "http://2130706433:{port}/v.mp4",  # 127.0.0.1 as one decimal number
        "http://0.0.0.0:{port}/v.mp4",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # cloud metadata
        "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6 (unique-local)
        "http://[fe80::1]/v.mp4",
        "http://10.0.0.1/v.mp4",
        "https://192.168.1.1/v.mp4",
        "http://172.16.0.1/v.mp4",
        "http://100.64.0.1/v.mp4",  # carrier-grade NAT
        "http://[64:ff9b::7f00:1]/v.mp4",  # NAT64 to 127.0.0.1
        "http://[2002:7f00:1::]/v.mp4",  # 6to4 around 127.0.0.1
    ],
)
async def test_non_global_addresses_are_refused_before_any_request(
    sandbox: Sandbox, session: aiohttp.ClientSession, directory: Path, started: list[str], url: str
) -> None:
    port = URL(sandbox.base_url).port
    with pytest.raises(UnsafeURLError):
        await download_video(session, url.format(port=port), directory=directory)
    assert started == []
    assert sandbox.requests == []
    assert_empty(directory)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/v.mp4",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "/media/v.mp4",
        "http:///v.mp4",
        "v.mp4",
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_only_http_urls_with_a_host_are_fetched(
    session: aiohttp.ClientSession, directory: Path, started: list[str], url: str, allow_private: bool
) -> None:
    with pytest.raises(UnsafeURLError):
        await download_video(session, url, directory=directory, allow_private=allow_private)
    assert started == []
    assert_empty(directory)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("[2606:4700::1111]", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("10.1.2.3", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.100.100.200", False),  # Alibaba Cloud metadata (CGNAT range)
        ("0.0.0.0", False),  # noqa: S104 - a value checked, nothing binds here
        ("224.0.0.1", False),  # multicast: Python 3.11 calls it global
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("[::1]", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::127.0.0.1", False),  # IPv4-compatible: Python 3.11 calls it global
        ("64:ff9b::a00:1", False),
        ("2002:a00:1::", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("fec0::1", False),  # deprecated site-local: Python 3.11 calls it global
        ("ff02::1", False),
        ("2001:db8::1", False),
        ("localhost", None),
        ("example.com", None),
        ("127.1", None),  # a name to ipaddress; the resolver check catches it
    ],
)
def test_is_global_host(host: str, expected: bool | None) -> None:
    assert is_global_host(host) is expected


async def test_host_is_private() -> None:
    assert await host_is_private("http://127.0.0.1:8080") is True
    assert await host_is_private("http://localhost:8080/") is True
    assert await host_is_private("http://[::1]:8080") is True
    assert await host_is_private("http://192.168.1.20:8080") is True
    assert await host_is_private("https://8.8.8.8/") is False  # a literal: nothing is resolved or contacted
    with pytest.raises(ValueError, match="no host"):
        await host_is_private("/just/a/path")


async def test_host_is_private_treats_an_unresolvable_name_as_public(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def no_dns(host: str, port: int | None) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(download, "_resolve", no_dns)
    with caplog.at_level(logging.WARNING, logger="ulazai.download"):
        assert await host_is_private("https://ulazai.example") is False
    assert "ulazai.example" in caplog.text


async def test_a_name_that_does_not_resolve_is_a_download_error(
    session: aiohttp.ClientSession, directory: Path, started: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_dns(host: str, port: int | None) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(download, "_resolve", no_dns)
    with pytest.raises(DownloadError) as caught:
        await download_video(session, "https://cdn.ulazai.example/v.mp4", directory=directory)
    assert not isinstance(caught.value, UnsafeURLError)
    assert started == []


# --------------------------------------------------------------------------------------------------
# Redirects.
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend 127.0.0.1 (only) is a public address, so redirect checks run with allow_private=False."""
    original = download._ip_is_global
    public = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(download, "_ip_is_global", lambda ip: ip == public or original(ip))


def redirect(location: str, status: int = 302) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location} if location else {})

    return handler


async def mp4(request: web.Request) -> web.StreamResponse:
    return web.Response(body=SAMPLE, content_type="video/mp4")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.usefixtures("loopback_is_public")
async def test_a_relative_redirect_to_a_public_host_is_followed(
    session: aiohttp.ClientSession, directory: Path, started: list[str], status: int
) -> None:
    async with serve({"/a/start": redirect("../media/v.mp4?sig=1", status), "/media/v.mp4": mp4}) as base:
        video = await download_video(session, f"{base}/a/start", directory=directory)
        video.cleanup()
    assert video.size == len(SAMPLE)
    assert started == [f"{base}/a/start", f"{base}/media/v.mp4?sig=1"]


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/v.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/v.mp4",
    ],
)
@pytest.mark.usefixtures("loopback_is_public")
async def test_a_redirect_to_a_private_address_is_refused(
    session: aiohttp.ClientSession, directory: Path, started: list[str], target: str
) -> None:
    private_hits = 0

    async def private(request: web.Request) -> web.StreamResponse:
        nonlocal private_hits
        private_hits += 1
        return await mp4(request)

    async with serve({"/v.mp4": private}, host="127.0.0.2") as private_base:
        port = URL(private_base).port
        async with serve({"/start": redirect(target.format(port=port))}) as base:
            with pytest.raises(UnsafeURLError) as caught:
                await download_video(session, f"{base}/start", directory=directory)

    assert "refused" in str(caught.value)
    assert started == [f"{base}/start"]  # the hop was never requested
    assert private_hits == 0
    assert_empty(directory)


async def test_redirects_are_bounded(
    session: aiohttp.ClientSession, directory: Path, started: list[str]
) -> None:
    async def hop(request: web.Request) -> web.StreamResponse:
        left = int(request.match_info["n"])
        if left == 0:
            return await mp4(request)
        return web.Response(status=302, headers={"Location": f"/r/{left - 1}"})

    async with serve({"/r/{n}": hop}) as base:
        video = await download_video(
            session, f"{base}/r/3", directory=directory, allow_private=True, max_redirects=3
        )
        video.cleanup()
        started.clear()
        with pytest.raises(UnsafeURLError, match="more than 3 redirects") as caught:
            await download_video(
                session, f"{base}/r/4", directory=directory, allow_private=True, max_redirects=3
            )

    assert caught.value.status == 302
    assert len(started) == 4  # the first request and three redirects
    assert_empty(directory)


async def test_a_redirect_loop_ends(
    session: aiohttp.ClientSession, directory: Path, started: list[str]
) -> None:
    async with serve({"/loop": redirect("/loop")}) as base:
        with pytest.raises(UnsafeURLError):
            await download_video(session, f"{base}/loop", directory=directory, allow_private=True)
    assert len(started) == download.DEFAULT_MAX_REDIRECTS + 1


async def test_a_redirect_to_another_scheme_is_refused(
    session: aiohttp.ClientSession, directory: Path, started: list[str]
) -> None:
    async with serve(
        {"/ftp": redirect("ftp://127.0.0.1/v.mp4"), "/file": redirect("file:///etc/passwd")}
    ) as base:
        for path in ("/ftp", "/file"):
            with pytest.raises(UnsafeURLError):
                await download_video(session, f"{base}{path}", directory=directory, allow_private=True)
    assert len(started) == 2


async def test_a_redirect_without_location_is_an_error(
    session: aiohttp.ClientSession, directory: Path
) -> None:
    async with serve({"/nowhere": redirect("")}) as base:
        with pytest.raises(DownloadError) as caught:
            await download_video(session, f"{base}/nowhere", directory=directory, allow_private=True)
    assert caught.value.status == 302
    assert not isinstance(caught.value, UnsafeURLError)


def test_redirect_targets() -> None:
    here = URL("https://cdn.example/videos/a/b.mp4?sig=SECRET")
    assert download._next_hop(here, "../c.mp4") == URL("https://cdn.example/videos/c.mp4")
    assert download._next_hop(here, "//other.example/x") == URL("https://other.example/x")
    assert download._next_hop(URL("http://a.example/"), "https://b.example/v") == URL("https://b.example/v")
    with pytest.raises(UnsafeURLError, match="https to http") as caught:
        download._next_hop(here, "http://cdn.example/videos/c.mp4")
    assert "SECRET" not in str(caught.value)
    with pytest.raises(UnsafeURLError, match="https to http"):
        download._next_hop(here, "http://8.8.8.8/")
    with pytest.raises(UnsafeURLError):
        download._next_hop(here, "file:///etc/passwd")


# --------------------------------------------------------------------------------------------------
# Errors, timeouts and cleanup.
# --------------------------------------------------------------------------------------------------


def record_created_files(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record each temporary file the downloader creates, to prove partial files are deleted."""
    created: list[Path] = []
    original = download._create_file

    def create(directory: Path | None) -> tuple[BinaryIO, Path]:
        file, path = original(directory)
        created.append(path)
        return file, path

    monkeypatch.setattr(download, "_create_file", create)
    return created


async def test_http_errors_carry_their_status(
    sandbox: Sandbox, session: aiohttp.ClientSession, directory: Path
) -> None:
    with pytest.raises(DownloadError) as caught:
        await download_video(
            session, f"{sandbox.base_url}/media/videos/nope.mp4", directory=directory, allow_private=True
        )
    assert caught.value.status == 404
    assert "404" in str(caught.value)

    sandbox.inject("video", status=500)
    with pytest.raises(DownloadError) as caught:
        await download_video(session, await video_url(sandbox), directory=directory, allow_private=True)
    assert caught.value.status == 500
    assert_empty(directory)


async def test_a_server_slow_to_answer_times_out(
    sandbox: Sandbox, session: aiohttp.ClientSession, directory: Path
) -> None:
    sandbox.inject("video", delay=0.5)
    url = await video_url(sandbox)
    with pytest.raises(DownloadError, match="timed out") as caught:
        await download_video(
            session, url, directory=directory, allow_private=True, timeout=aiohttp.ClientTimeout(total=0.1)
        )
    assert caught.value.status is None
    assert_empty(directory)


async def test_a_stall_mid_body_times_out_and_the_partial_file_is_deleted(
    session: aiohttp.ClientSession, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = record_created_files(monkeypatch)
    stall = asyncio.Event()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 1000000\r\n\r\n"
    async with raw_server(head + bytes(100_000), stall) as base:
        with pytest.raises(DownloadError, match="timed out") as caught:
            await download_video(
                session,
                f"{base}/v.mp4",
                directory=directory,
                allow_private=True,
                timeout=aiohttp.ClientTimeout(total=5, sock_read=0.2),
            )
        stall.set()
    assert caught.value.status is None
    assert len(created) == 1
    assert not created[0].exists()
    assert_empty(directory)


async def test_cancelling_a_download_deletes_the_partial_file(
    session: aiohttp.ClientSession, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = record_created_files(monkeypatch)
    stall = asyncio.Event()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 1000000\r\n\r\n"
    async with raw_server(head + bytes(100_000), stall) as base:
        task = asyncio.create_task(
            download_video(session, f"{base}/v.mp4", directory=directory, allow_private=True)
        )
        for _ in range(200):  # until the first bytes are on disk
            if created and created[0].exists() and created[0].stat().st_size > 0:
                break
            await asyncio.sleep(0.01)
        assert created, "the download never started writing"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stall.set()
    assert not created[0].exists()
    assert_empty(directory)


async def test_cancelling_while_the_file_is_being_created_leaves_nothing(
    sandbox: Sandbox, session: aiohttp.ClientSession, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The creating thread cannot be stopped; the file it makes after the cancellation is deleted."""
    original = download._create_file
    entered, gate = threading.Event(), threading.Event()
    created: list[Path] = []

    def slow_create(where: Path | None) -> tuple[BinaryIO, Path]:
        entered.set()
        gate.wait(5)
        file, path = original(where)
        created.append(path)
        return file, path

    monkeypatch.setattr(download, "_create_file", slow_create)
    url = await video_url(sandbox)
    task = asyncio.create_task(download_video(session, url, directory=directory, allow_private=True))
    assert await asyncio.to_thread(entered.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    for _ in range(200):  # the file appears once the thread runs on, then is deleted
        if created and not created[0].exists():
            break
        await asyncio.sleep(0.01)
    assert len(created) == 1
    assert_empty(directory)
    assert video_requests(sandbox) == 1  # the headers had arrived; the body was never read


async def test_an_empty_body_is_an_error(session: aiohttp.ClientSession, directory: Path) -> None:
    async def empty(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"", content_type="video/mp4")

    async with serve({"/v.mp4": empty}) as base:
        with pytest.raises(DownloadError, match="empty") as caught:
            await download_video(session, f"{base}/v.mp4", directory=directory, allow_private=True)
    assert caught.value.status == 200
    assert_empty(directory)


async def test_a_refused_connection_is_a_download_error(
    session: aiohttp.ClientSession, directory: Path
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, and nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match="connection failed") as caught:
        await download_video(
            session, f"http://127.0.0.1:{port}/v.mp4", directory=directory, allow_private=True
        )
    assert caught.value.status is None
    assert_empty(directory)


async def test_a_missing_directory_is_a_download_error(
    sandbox: Sandbox, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = await video_url(sandbox)
    with pytest.raises(DownloadError, match="to disk"):
        await download_video(session, url, directory=tmp_path / "missing", allow_private=True)


async def test_signed_query_strings_and_credentials_never_reach_errors_or_logs(
    sandbox: Sandbox, session: aiohttp.ClientSession, directory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "?Signature=SECRET-SIG&Expires=1"
    caplog.set_level(logging.DEBUG)
    errors: list[DownloadError] = []
    base = URL(sandbox.base_url)
    with_password = f"http://user:PASSWORD@{base.host}:{base.port}/media/videos/nope.mp4{secret}"
    cases: list[tuple[str, dict[str, Any]]] = [
        (with_password, {"allow_private": True}),  # 404
        (await video_url(sandbox, secret), {}),  # refused: loopback
        ("ftp://127.0.0.1/v.mp4" + secret, {}),  # refused: scheme
    ]
    for url, kwargs in cases:
        with pytest.raises(DownloadError) as caught:
            await download_video(session, url, directory=directory, **kwargs)
        errors.append(caught.value)
    sandbox.inject("video", delay=0.5)
    with pytest.raises(DownloadError) as caught:
        await download_video(
            session,
            await video_url(sandbox, secret),
            directory=directory,
            allow_private=True,
            timeout=aiohttp.ClientTimeout(total=0.1),
        )
    errors.append(caught.value)

    for error in errors:
        for text in (str(error), repr(error)):
            assert "SECRET" not in text
            assert "PASSWORD" not in text
            assert "user" not in text
        assert error.__cause__ is None  # aiohttp's own texts may carry the full URL
    assert "/media/videos/nope.mp4" in str(errors[0])
    # Our records only: the test servers' own access logs print what they were sent.
    ours = [r.getMessage() for r in caplog.records if r.name != "aiohttp.access"]
    assert any("refused" in message for message in ours)
    assert not any("SECRET" in message or "PASSWORD" in message for message in ours)


async def test_bad_arguments_are_refused(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        await download_video(session, "http://127.0.0.1/", chunk_size=0)
    with pytest.raises(ValueError, match="max_bytes"):
        await download_video(session, "http://127.0.0.1/", max_bytes=-1)
