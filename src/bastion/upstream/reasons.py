"""Why an upstream is down, in one line fit for the public ``/readyz`` and the logs.

``describe`` names the failure (task groups unwrapped; an unexpected error is logged in
full and named by its type only). An upstream writes part of a reason (its error text),
so ``clean_reason`` masks credentials and internal URLs, escapes every character that is not
printable (``bastion._shown``: no terminal escape, no line break that would forge a log
line) and caps it at ``MAX_REASON`` characters (UP-4, IN-5) before anyone sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import anyio

from bastion._shown import shown
from bastion.audit.redact import REDACTED, redact_text
from bastion.config.secrets import server_secrets
from bastion.errors import BastionError
from bastion.guard.peer_errors import mask_internal_urls
from bastion.guard.sanitise import MIN_KNOWN_SECRET

if TYPE_CHECKING:
    from bastion.config.model import ServerConfig

__all__ = ["MAX_REASON", "clean_reason", "describe", "known_secrets", "mask_secrets"]

logger = logging.getLogger(__name__)

MAX_REASON: Final = 500  # characters of an upstream's last error kept for /readyz


def known_secrets(config: ServerConfig) -> list[str]:
    """One upstream's configured credentials worth masking (``server_secrets``), the
    longest first."""
    found = [v for v in server_secrets(config) if len(v) >= MIN_KNOWN_SECRET]
    return sorted(found, key=len, reverse=True)


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with recognised credentials (the audit redactor's patterns) and each of
    ``secrets`` (an upstream's own configured values, ``known_secrets``) masked."""
    text = redact_text(text)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def clean_reason(reason: str, secrets: Iterable[str]) -> str:
    """UP-4, IN-5: a reason is shown on the public ``/readyz`` and logged, and an upstream
    writes part of it (its error text): credentials masked (the patterns of the audit
    redactor, and this upstream's own configured header and environment values, exactly),
    internal URLs replaced, control and other unprintable characters escaped, capped at
    ``MAX_REASON`` characters."""
    text = mask_secrets(reason, secrets)
    masked = mask_internal_urls(text, [])
    text = shown(masked) if isinstance(masked, str) else ""
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "…"


def describe(exc: BaseException, label: str) -> str:
    """A one-line reason for ``/readyz``; task groups wrap the real error in a group."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "did not become ready in time"
    if isinstance(exc, BastionError):
        return f"{type(exc).__name__}: {exc.detail or exc.wire_message}"
    if isinstance(exc, OSError):
        return f"could not start: {exc.strerror or exc}"
    if isinstance(exc, anyio.BrokenResourceError | anyio.ClosedResourceError | anyio.EndOfStream):
        # A write to (or read from) a child that had already exited, racing its exit report.
        return "connection closed: the upstream went away"
    logger.error("upstream %s failed unexpectedly", label, exc_info=exc)
    return f"unexpected {type(exc).__name__}"
