"""Where verification keys come from (AU-7): the configured JWKS file or HTTPS URL, never a
URL named in a token.

The URL is fetched with a timeout over the whole exchange, a size cap on the body, no
redirects (a 3xx is a failure), no proxy from the environment and no compression (asked
for ``identity``; a compressed answer is refused, never inflated: DS-4). ``JwksCache`` keeps
the keys for ``ttl`` seconds and refetches early for an unknown ``kid``, at most once per
``refresh_interval`` counted from the end of the last fetch, so tokens with random kids
cannot make the gateway hammer the IdP. One fetch at a time: callers that need keys share
the fetch in flight (waiting at most ``FETCH_TIMEOUT``), and a caller whose ``kid`` is
cached never waits for one (with ``run`` going, stale keys are refreshed beside it; DS-2).
A failed refresh keeps the previous keys and is logged.

Whoever may write the JWKS file, or the CA file that authenticates the JWKS URL, mints
tokens the gateway accepts (admin ones too, through ``oidc.grants``): a file that a user
other than root or the gateway's own could change (``bastion._file_trust``) is refused at
start (``ConfigError``, exit 78 from ``bastion serve``); a JWKS file that becomes so while
running is not read (a failed refresh: the keys read while it was trusted stay in force,
and the refusal is logged with the command that fixes it).
"""

from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup, TaskStatus

from bastion._file_trust import change_refused
from bastion._types import Clock
from bastion.auth.jwk import Jwk, JwksError, parse_jwks
from bastion.errors import ConfigError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "FETCH_TIMEOUT",
    "MAX_JWKS_BYTES",
    "FileJwks",
    "JwksCache",
    "JwksSource",
    "JwksUnavailable",
    "UrlJwks",
]

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES: Final = 256 * 1024  # real JWKS are a few KiB
FETCH_TIMEOUT: Final = 5.0  # whole fetch; a slow IdP must not hold authentication for long


class JwksUnavailable(Exception):
    """No keys could be loaded (and none were loaded before)."""


class JwksSource(Protocol):
    """Something that yields the raw JWKS document (raises ``JwksUnavailable``)."""

    async def fetch(self) -> bytes: ...

    async def aclose(self) -> None: ...


class FileJwks:
    """A JWKS in a local file, reread whenever the cache expires, each time only if no other
    user may change it."""

    def __init__(self, path: Path) -> None:
        """The JWKS file at ``path``.

        Raises:
            ConfigError: others may change the file (see the module docstring).
        """
        if (refused := change_refused(path, "the JWKS (oidc.jwks_file)")) is not None:
            raise ConfigError(refused)
        self._path = path

    async def fetch(self) -> bytes:
        refused = await anyio.to_thread.run_sync(change_refused, self._path, "the JWKS")
        if refused is not None:
            raise JwksUnavailable(refused)
        try:
            data = await anyio.Path(self._path).read_bytes()
        except OSError as exc:
            raise JwksUnavailable(f"cannot read {self._path}: {exc.strerror or exc}") from exc
        if len(data) > MAX_JWKS_BYTES:
            raise JwksUnavailable(f"{self._path} is larger than {MAX_JWKS_BYTES} bytes")
        return data

    async def aclose(self) -> None:
        return None


class UrlJwks:
    """A JWKS at an HTTPS URL (``http://`` only for loopback, checked by the settings)."""

    def __init__(self, url: str, *, ca_file: str | None = None, timeout: float = FETCH_TIMEOUT):
        """The JWKS at ``url``, its server authenticated by ``ca_file`` if given.

        Raises:
            ConfigError: others may change ``ca_file`` (see the module docstring).
        """
        if ca_file is not None:
            refused = change_refused(Path(ca_file), "the CAs of the JWKS URL (oidc.ca_file)")
            if refused is not None:
                raise ConfigError(refused)
        # Lazily: `bastion stdio` imports bastion.auth for Principal and must not load httpx.
        import httpx  # noqa: PLC0415

        self._url = url
        self._timeout = timeout
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=ca_file)
        self._client: httpx.AsyncClient = httpx.AsyncClient(
            verify=verify,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout),
            headers={"Accept": "application/json", "Accept-Encoding": "identity"},
        )

    async def fetch(self) -> bytes:
        import httpx  # noqa: PLC0415

        try:
            with anyio.fail_after(self._timeout):
                return await self._fetch()
        except TimeoutError as exc:
            raise JwksUnavailable(f"{self._url}: no answer within {self._timeout}s") from exc
        except httpx.HTTPError as exc:
            raise JwksUnavailable(f"{self._url}: {type(exc).__name__}: {exc}") from exc

    async def _fetch(self) -> bytes:
        async with self._client.stream("GET", self._url) as response:
            if response.is_redirect:
                raise JwksUnavailable(f"{self._url}: redirects are not followed")
            if response.status_code != 200:
                raise JwksUnavailable(f"{self._url}: HTTP {response.status_code}")
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding != "identity":  # inflating would cost memory the size cap never sees
                raise JwksUnavailable(f"{self._url}: compressed answer ({encoding[:32]!r})")
            declared = response.headers.get("content-length", "0")
            if not declared.isdigit() or int(declared) > MAX_JWKS_BYTES:
                raise JwksUnavailable(f"{self._url}: larger than {MAX_JWKS_BYTES} bytes")
            body = bytearray()
            async for chunk in response.aiter_raw():  # the bytes on the wire, never decoded
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksUnavailable(f"{self._url}: larger than {MAX_JWKS_BYTES} bytes")
            return bytes(body)

    async def aclose(self) -> None:
        await self._client.aclose()


class JwksCache:
    """Keys by ``kid`` from ``source``, cached for ``ttl`` seconds, one fetch at a time.

    Without ``run`` (tests, one-shot tools), the caller that finds the keys stale fetches
    them itself; with it, a caller whose ``kid`` is cached leaves that to a background task.
    """

    def __init__(
        self,
        source: JwksSource,
        *,
        ttl: float,
        refresh_interval: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl = ttl
        self._interval = refresh_interval
        self._clock = clock
        self._keys: dict[str, Jwk] | None = None
        self._loaded_at = 0.0
        self._ended_at: float | None = None  # when the last fetch ended, loaded or not
        self._in_flight: anyio.Event | None = None  # set when the fetch in flight ends
        self._background: TaskGroup | None = None
        self.fetches = 0
        """How many times the source was asked (for tests and metrics)."""

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the fetches in a task of their own, so no caller carries one; until cancelled."""
        async with anyio.create_task_group() as tg:
            self._background = tg
            try:
                task_status.started()
                await anyio.sleep_forever()
            finally:
                self._background = None

    async def get(self, kid: str) -> Jwk | None:
        """The key named ``kid``, or None if the (possibly refreshed) JWKS has no such key.

        Raises:
            JwksUnavailable: no JWKS was ever loaded and loading failed now.
        """
        if self._keys is not None and kid in self._keys:
            if self._stale() and self._in_flight is None and self._may_try():
                if self._background is not None:
                    self._start_in(self._background)
                else:
                    await self._fetch_here()
        elif self._in_flight is not None or self._may_try():
            await self._shared_fetch()
        if self._keys is None:
            raise JwksUnavailable("no JWKS loaded")
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._keys is None or self._clock() - self._loaded_at >= self._ttl

    def _may_try(self) -> bool:
        return self._ended_at is None or self._clock() - self._ended_at >= self._interval

    async def _shared_fetch(self) -> None:
        """Join the fetch in flight or start one, waiting for it at most ``FETCH_TIMEOUT``."""
        done = self._in_flight
        if done is None:
            if self._background is None:
                await self._fetch_here()
                return
            done = self._start_in(self._background)
        with anyio.move_on_after(FETCH_TIMEOUT):
            await done.wait()

    async def _fetch_here(self) -> None:
        done = self._in_flight = anyio.Event()
        # Others may be waiting on it; the source bounds it (FETCH_TIMEOUT for a URL).
        with anyio.CancelScope(shield=True):
            await self._fetch(done)

    def _start_in(self, background: TaskGroup) -> anyio.Event:
        done = self._in_flight = anyio.Event()
        background.start_soon(self._fetch_beside, done)
        return done

    async def _fetch_beside(self, done: anyio.Event) -> None:
        try:
            await self._fetch(done)
        except Exception:  # a bug here must not end the gateway's task group
            logger.exception("JWKS refresh failed unexpectedly")

    async def _fetch(self, done: anyio.Event) -> None:
        self.fetches += 1
        try:
            keys = parse_jwks(await self._source.fetch())
        except (JwksUnavailable, JwksError) as exc:
            kept = "keeping the previous keys" if self._keys is not None else "no keys yet"
            logger.warning("JWKS refresh failed (%s): %s", kept, exc)
        else:
            self._keys = keys
            self._loaded_at = self._clock()
        finally:
            self._ended_at = self._clock()
            self._in_flight = None
            done.set()

    async def aclose(self) -> None:
        await self._source.aclose()
