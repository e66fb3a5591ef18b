"""Pages of list results and their cursors (AZ-2).

``paginate`` pages the items a caller may be shown: it is handed every item with its name
and the caller's filter (``Call.shown``), and filters before it cuts, so a page is full of
such items and a ``nextCursor`` means more of them follow. A cursor holds how many of them
were served and a keyed digest of the last one's name (the payload is readable, and a name
may hold a secret the sanitiser masks in the list), sealed by the ``RequestStateSealer``
(HMAC, with its expiry) and bound to the list method and the caller:
one forged, altered, expired, of another list or of another principal or credential is
-32602 ``Invalid cursor``. The next page resumes after the named item, so it asks the filter
about its own items only (a policy decision each), however deep in the list it lies; when
that item has left the list meanwhile, it resumes after the count instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Final, TypeVar

import msgspec

from bastion.errors import InvalidParams
from bastion.protocol.request_state import RequestStateSealer

__all__ = ["Named", "cursor_binding", "paginate"]

T = TypeVar("T")
Named = Callable[[], Iterable[tuple[str, T]]]  # each item with its name, afresh on each call
Filter = Callable[[str], bool]

_END: Final = object()
# First element of a cursor's binding; a requestState's binding begins with a method name.
_CURSOR: Final = "cursor"


class _Position(msgspec.Struct, array_like=True, frozen=True):
    served: int  # items of this list served to this caller so far
    last: str  # the digest of the last one's name (``RequestStateSealer.digest``)


def cursor_binding(method: str, caller: tuple[str, str] | None) -> str:
    """What a cursor of ``method``'s list is bound to: that list and the caller
    (``Principal.binding``), or the list alone for a server that serves nobody in particular."""
    return msgspec.json.encode([_CURSOR, method, *(caller or ())]).decode()


def paginate(
    named: Named[T],
    shown: Filter | None,
    cursor: str | None,
    page_size: int,
    *,
    sealer: RequestStateSealer,
    binding: str,
) -> tuple[list[T], str | None]:
    """One page of the items of ``named`` that ``shown`` passes (all when None), and the
    cursor of the next page (None on the last). The filter is asked about no item past the
    first after the page.

    Raises:
        InvalidParams: the cursor is not one issued for ``binding``, or it expired.
    """
    position = None if cursor is None else _position(sealer, cursor, binding)
    rest = _after(named, shown, position, sealer.digest)
    page = list(islice(rest, page_size))
    if not page or next(rest, _END) is _END:
        return [item for _, item in page], None
    served = (0 if position is None else position.served) + len(page)
    last = sealer.digest(page[-1][0])
    return [item for _, item in page], sealer.seal([served, last], binding=binding)


def _after(
    named: Named[T],
    shown: Filter | None,
    position: _Position | None,
    digest: Callable[[str], str],
) -> Iterator[tuple[str, T]]:
    """The items ``shown`` passes, from the one after ``position``."""

    def passed(pairs: Iterator[tuple[str, T]]) -> Iterator[tuple[str, T]]:
        return pairs if shown is None else (pair for pair in pairs if shown(pair[0]))

    if position is None:
        return passed(iter(named()))
    pairs = iter(named())
    # The last item served follows the ``served - 1`` served before it: skip those unread.
    # No filter is asked on the way: the caller saw these pages.
    deque(islice(pairs, position.served - 1), maxlen=0)
    for name, _ in pairs:
        if digest(name) == position.last:
            return passed(pairs)
    return islice(passed(iter(named())), position.served, None)  # that item is gone


def _position(sealer: RequestStateSealer, cursor: str, binding: str) -> _Position:
    try:
        sealed = sealer.unseal(cursor, binding=binding)
        position = msgspec.convert(sealed, _Position, strict=True)
    except (InvalidParams, msgspec.ValidationError) as exc:
        raise InvalidParams(
            "cursor not issued for this list and caller, or expired", message="Invalid cursor"
        ) from exc
    if position.served < 0:
        raise InvalidParams("cursor holds no position", message="Invalid cursor")
    return position
