"""Download a finished video from the provider's ``video_url`` to a temporary file, safely.

Why this module exists: the provider's video URLs expire, so the delivery worker copies each video
and re-hosts it on Discord. The URL is data we did not write, so fetching it is treated like fetching
any untrusted URL (server-side request forgery):

* **only http(s)** with a host; ``file:``, ``ftp:`` and friends are refused before any request;
* **only global addresses**: before every request (the first and each redirect hop) the host is
  resolved and refused if *any* address is loopback, private, link-local (the cloud metadata service at
  169.254.169.254), CGNAT, reserved, unspecified or multicast, IPv4-mapped and NAT64/6to4-embedded IPv4
  included. ``allow_private=True`` lifts this for a local sandbox only, when ``ULAZAI_BASE_URL`` itself
  points at such an address (:func:`host_is_private` decides that at start-up);
* **redirects are followed by hand** (aiohttp's own following would skip our checks): at most
  ``max_redirects``, each target checked like the first URL, an https to http downgrade refused;
* **bounded size and time**: a ``Content-Length`` over ``max_bytes`` is refused before the body is
  read, and the byte count is enforced while streaming too, because servers omit or misstate the
  length; every request has an explicit timeout;
* **never the whole video in memory**: chunks go straight to a temporary file, written off the event
  loop, and the partial file is deleted on any failure (cancellation included);
* **no secrets in errors or logs**: provider URLs may carry signed query strings, so messages show only
  the scheme, host, port and path (:func:`_redact`), and aiohttp's own exceptions, whose text can
  contain the full URL, are not chained.

A limitation, stated plainly: the address check and the connection resolve the name separately
(aiohttp resolves again, and may answer from its own DNS cache). An attacker who controls DNS for
the URL's host can answer a public address to the check and a private one to the connection
(DNS rebinding). Closing that gap needs the connection pinned to the checked address, i.e. a
connector whose resolver filters addresses, which the bot's shared session does not have. What this
module does stop is a URL or redirect that *names* a private host or literal address, which is how
the simple attacks and the honest misconfigurations look. Likewise, a session with a proxy
(``trust_env=True``) connects through the proxy, which does its own resolution.

URLs are parsed with :mod:`yarl`, aiohttp's own URL type (a dependency of aiohttp, not a new one), and
the parsed object is what is requested: checking with one parser and connecting with another is a
classic way to let ``http://evil\\@127.0.0.1/``-style URLs through.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import aiohttp
from yarl import URL

from ulazai.errors import ProviderError

log = logging.getLogger(__name__)

#: The default size cap: Discord's own upload limits are far lower, so anything bigger is useless.
MAX_VIDEO_BYTES: Final = 512 * 1024 * 1024
#: Per request (each redirect hop gets its own). ``total`` bounds a whole 512 MB download (about
#: 600 kB/s at worst); ``sock_read`` catches a server that stalls mid-body long before that.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=15 * 60, connect=30, sock_connect=15, sock_read=60)
DEFAULT_MAX_REDIRECTS: Final = 5
DEFAULT_CHUNK_SIZE: Final = 256 * 1024  # aiohttp buffers twice this: memory stays ~1-2 MB at any size

_SCHEMES: Final = frozenset({"http", "https"})
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
#: RFC 6052's well-known NAT64 prefix: the last 32 bits are an IPv4 address the gateway connects to.
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
#: The deprecated IPv4-compatible form ``::a.b.c.d`` (``::1`` and ``::`` live here too).
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class DownloadedVideo:
    """A downloaded video on disk. The caller owns ``path`` and must delete it (:meth:`cleanup`)."""

    path: Path
    size: int
    #: The response's media type without parameters (``video/mp4``), or ``None`` when it sent none.
    content_type: str | None

    def cleanup(self) -> None:
        """Delete the file; a file already gone is fine. Blocking: run it via ``asyncio.to_thread``."""
        self.path.unlink(missing_ok=True)


class DownloadError(ProviderError):
    """The video could not be downloaded; ``status`` is the HTTP status when an answer arrived."""


class VideoTooLargeError(DownloadError):
    """The video is over the size cap. ``size`` is the declared size, or ``None`` when unknown."""

    def __init__(self, message: str, *, limit: int, size: int | None, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.limit = limit
        self.size = size


class UnsafeURLError(DownloadError):
    """Refused before connecting: bad scheme, non-global address, unsafe redirect, too many redirects."""


# --------------------------------------------------------------------------------------------------
# Addresses.
# --------------------------------------------------------------------------------------------------


def _ip_is_global(ip: _IPAddress) -> bool:
    """Whether connecting to ``ip`` reaches the public internet and nothing of ours.

    :attr:`ipaddress.IPv4Address.is_global` alone is not enough on Python 3.11: it calls multicast,
    IPv4-mapped (``::ffff:127.0.0.1`` reaches 127.0.0.1), NAT64, 6to4, IPv4-compatible and IPv6
    site-local addresses global. Embedded IPv4 addresses are judged as themselves.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _ip_is_global(ip.ipv4_mapped)
        if ip in _NAT64:
            return _ip_is_global(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            return _ip_is_global(ip.sixtofour)
        if ip in _IPV4_COMPATIBLE or ip.is_site_local:
            return False
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_unspecified
    )


def _parse_ip(host: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def is_global_host(host: str) -> bool | None:
    """For a literal IP address (brackets allowed): whether it is global. ``None`` for a name.

    Names need resolving (:func:`host_is_private`, or the checks inside :func:`download_video`); a name
    such as ``127.1`` or ``2130706433`` that the system resolver reads as an address is caught there.
    """
    ip = _parse_ip(host)
    return None if ip is None else _ip_is_global(ip)


async def _resolve(host: str, port: int | None) -> list[_IPAddress]:
    """Every address the system resolver gives for ``host`` (what a connection could use)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[_IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        ip = _parse_ip(str(sockaddr[0]))
        if ip is None:  # not an IP family we know: refuse rather than guess
            raise UnsafeURLError(f"{host} resolved to an address of an unknown kind")
        addresses.append(ip)
    return addresses


async def _non_global_address(host: str, port: int | None) -> _IPAddress | None:
    """The first address of ``host`` outside the global internet, or ``None`` if all are global.

    Raises :class:`OSError` (``socket.gaierror``) when the name does not resolve.
    """
    ip = _parse_ip(host)
    addresses = [ip] if ip is not None else await _resolve(host, port)
    return next((address for address in addresses if not _ip_is_global(address)), None)


async def host_is_private(url: str) -> bool:
    """Whether ``url``'s host resolves to any address outside the global internet.

    The bot asks this once at start-up about ``ULAZAI_BASE_URL``: a provider on 127.0.0.1 or a LAN
    address is a local sandbox, whose video URLs are private too, so downloads must be allowed to
    reach them. A name that does not resolve counts as public (``False``), the safe answer: private
    downloads stay refused.
    """
    parsed = URL(url)
    if not parsed.host:
        raise ValueError("the URL has no host")
    try:
        return await _non_global_address(parsed.host, parsed.port) is not None
    except OSError as exc:
        log.warning("cannot resolve %s (%s); treating it as a public host", parsed.host, exc)
        return False


# --------------------------------------------------------------------------------------------------
# URLs.
# --------------------------------------------------------------------------------------------------


def _redact(url: URL | str) -> str:
    """Scheme, host, port and path only: no user info, query string (signatures) or fragment."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        if parsed.is_absolute():
            return str(parsed.with_user(None).with_query(None).with_fragment(None))
        return f"{parsed.scheme}:{parsed.path}" if parsed.scheme else parsed.path
    except (ValueError, TypeError):
        return "<unparseable URL>"


def _parse(url: str) -> URL:
    try:
        return URL(url)
    except (ValueError, TypeError):
        raise UnsafeURLError(f"not a valid URL: {_redact(url)}") from None


def _check_form(url: URL) -> str:
    """Scheme and host, the checks that need no network. Returns the host."""
    if url.scheme not in _SCHEMES:
        raise UnsafeURLError(
            f"only http(s) URLs are downloaded, not {url.scheme or 'no'} scheme: {_redact(url)}"
        )
    if not url.host:
        raise UnsafeURLError(f"the URL has no host: {_redact(url)}")
    return url.host


async def _check_destination(url: URL, *, allow_private: bool) -> None:
    """Refuse a URL we must not connect to. Runs before every request, redirect hops included."""
    host = _check_form(url)
    if allow_private:
        return
    try:
        bad = await _non_global_address(host, url.port)
    except OSError:
        raise DownloadError(f"cannot resolve the host of {_redact(url)}") from None
    if bad is not None:
        log.warning("refused to download %s: %s is not a global address", _redact(url), bad)
        raise UnsafeURLError(f"refused {_redact(url)}: it resolves to {bad}, outside the global internet")


def _next_hop(current: URL, location: str) -> URL:
    """The target of a redirect from ``current``: resolved if relative, and never a downgrade to http.

    The target's address is checked later, like any URL, by :func:`_check_destination`.
    """
    try:
        target = current.join(URL(location))
    except (ValueError, TypeError):
        raise UnsafeURLError(f"{_redact(current)} redirected to an invalid URL") from None
    _check_form(target)
    if current.scheme == "https" and target.scheme == "http":
        raise UnsafeURLError(f"{_redact(current)} redirected from https to http: {_redact(target)}")
    return target


# --------------------------------------------------------------------------------------------------
# The download.
# --------------------------------------------------------------------------------------------------


def _create_file(directory: Path | None) -> tuple[BinaryIO, Path]:
    """A new, empty, private (0600) temporary file, opened for writing. Blocking."""
    fd, name = tempfile.mkstemp(suffix=".mp4", dir=directory)
    try:
        return os.fdopen(fd, "wb"), Path(name)
    except BaseException:
        os.close(fd)
        Path(name).unlink(missing_ok=True)
        raise


def _discard(file: BinaryIO, path: Path) -> None:
    """Close and delete a partial download; never raises, since it runs while another error unwinds."""
    with contextlib.suppress(OSError, ValueError):
        file.close()
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


async def _create_file_async(directory: Path | None) -> tuple[BinaryIO, Path]:
    """:func:`_create_file` off the event loop, leaving no file behind if we are cancelled meanwhile.

    The thread cannot be stopped: on cancellation it finishes, and what it made is deleted then.
    """
    creating = asyncio.ensure_future(asyncio.to_thread(_create_file, directory))
    try:
        return await asyncio.shield(creating)
    except asyncio.CancelledError:

        def discard(done: asyncio.Future[tuple[BinaryIO, Path]]) -> None:
            if not done.cancelled() and done.exception() is None:
                asyncio.get_running_loop().run_in_executor(None, _discard, *done.result())

        creating.add_done_callback(discard)
        raise


async def _save(
    response: aiohttp.ClientResponse, directory: Path | None, max_bytes: int, chunk_size: int
) -> DownloadedVideo:
    """Stream the body to a new temporary file, enforcing ``max_bytes``; the file is gone on failure."""
    declared = response.content_length
    content_type = response.content_type if "Content-Type" in response.headers else None
    file, path = await _create_file_async(directory)
    size = 0
    try:
        async for chunk in response.content.iter_chunked(chunk_size):
            size += len(chunk)
            if size > max_bytes:
                raise VideoTooLargeError(
                    f"the video from {_redact(response.url)} is larger than {max_bytes} bytes",
                    limit=max_bytes,
                    size=declared,
                    status=response.status,
                )
            await asyncio.to_thread(file.write, chunk)
        if size == 0:
            raise DownloadError(f"{_redact(response.url)} sent an empty body", status=response.status)
        if declared is not None and size != declared:  # aiohttp checks this too; a belt to its braces
            raise DownloadError(
                f"{_redact(response.url)} sent {size} bytes but announced {declared}", status=response.status
            )
        await asyncio.to_thread(file.close)
    except BaseException:
        # A thread runs to completion even if this await is cancelled, so the file always goes.
        await asyncio.to_thread(_discard, file, path)
        raise
    return DownloadedVideo(path=path, size=size, content_type=content_type)


async def _fetch(
    session: aiohttp.ClientSession,
    start: URL,
    *,
    directory: Path | None,
    max_bytes: int,
    request_timeout: aiohttp.ClientTimeout,
    allow_private: bool,
    max_redirects: int,
    chunk_size: int,
) -> DownloadedVideo:
    url = start
    redirects = 0
    while True:
        await _check_destination(url, allow_private=allow_private)
        async with session.get(
            url,
            allow_redirects=False,
            raise_for_status=False,
            timeout=request_timeout,
            # The size cap counts what reaches the file; asking for no compression keeps
            # Content-Length the true size, so an oversized video is refused before its body.
            headers={"Accept-Encoding": "identity"},
        ) as response:
            status = response.status
            if status in _REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise DownloadError(f"{_redact(url)} redirected without a Location", status=status)
                if redirects >= max_redirects:
                    raise UnsafeURLError(
                        f"more than {max_redirects} redirects, last from {_redact(url)}", status=status
                    )
                target = _next_hop(url, location)
                redirects += 1
                log.debug("download redirect %d: %s -> %s", redirects, _redact(url), _redact(target))
                url = target
                continue
            if not 200 <= status < 300:
                raise DownloadError(f"the video at {_redact(url)} could not be downloaded", status=status)
            declared = response.content_length
            if declared is not None and declared > max_bytes:
                raise VideoTooLargeError(
                    f"the video at {_redact(url)} is {declared} bytes, over the {max_bytes}-byte limit",
                    limit=max_bytes,
                    size=declared,
                    status=status,
                )
            return await _save(response, directory, max_bytes, chunk_size)


async def download_video(
    session: aiohttp.ClientSession,
    url: str,
    *,
    directory: Path | None = None,
    max_bytes: int = MAX_VIDEO_BYTES,
    timeout: aiohttp.ClientTimeout | None = None,  # noqa: ASYNC109 - aiohttp's per-request timeout, passed on
    allow_private: bool = False,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> DownloadedVideo:
    """Download ``url`` into a new temporary file in ``directory`` (default: the system's temp dir).

    See the module docstring for every safety rule and its one limitation (DNS rebinding). The caller
    owns the returned file and deletes it with :meth:`DownloadedVideo.cleanup`. Raises
    :class:`UnsafeURLError` (refused, nothing fetched from that address), :class:`VideoTooLargeError`
    or :class:`DownloadError` (HTTP status, timeout, connection or disk failure); no temporary file
    is left behind when it raises.
    """
    if max_bytes < 0 or chunk_size < 1 or max_redirects < 0:
        raise ValueError("max_bytes and max_redirects must be >= 0, chunk_size >= 1")
    start = _parse(url)
    _check_form(start)
    try:
        return await _fetch(
            session,
            start,
            directory=directory,
            max_bytes=max_bytes,
            request_timeout=timeout or DEFAULT_TIMEOUT,
            allow_private=allow_private,
            max_redirects=max_redirects,
            chunk_size=chunk_size,
        )
    # aiohttp's exception texts may hold the full URL, query string included: never chain them.
    except TimeoutError:  # asyncio.TimeoutError and aiohttp's ServerTimeoutError alike
        raise DownloadError(f"timed out downloading {_redact(url)}") from None
    except aiohttp.ClientResponseError as exc:
        raise DownloadError(
            f"bad answer from {_redact(url)} ({type(exc).__name__})", status=exc.status
        ) from None
    except aiohttp.ClientError as exc:
        raise DownloadError(f"connection failed downloading {_redact(url)} ({type(exc).__name__})") from None
    except OSError as exc:  # the temporary file: disk full, directory missing, permissions
        raise DownloadError(f"cannot write the download of {_redact(url)} to disk: {exc.strerror}") from None
