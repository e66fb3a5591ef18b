"""List pages and their cursors (AZ-2, ``server.pagination``): a cursor is good for its own
list and caller only, and only for a while; a page asks the caller's filter about its own
items only, however deep in the list it lies."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable

import pytest

from bastion.errors import InvalidParams
from bastion.protocol.request_state import DEFAULT_STATE_TTL, RequestStateSealer
from bastion.server.pagination import Named, cursor_binding, paginate
from tests.clock import FakeClock

ALICE = cursor_binding("resources/list", ("alice", "key:alice"))


def _named(names: list[str]) -> Named[str]:
    return lambda: ((name, name) for name in names)


def _sealer(clock: Callable[[], float] | None = None) -> RequestStateSealer:
    if clock is None:
        return RequestStateSealer([secrets.token_bytes(32)])
    return RequestStateSealer([secrets.token_bytes(32)], clock=clock)


NAMES = [f"n{i}" for i in range(250)]


def test_az2_a_cursor_serves_its_next_page_until_it_expires_AZ2() -> None:
    clock = FakeClock()
    sealer = _sealer(clock)
    first, cursor = paginate(_named(NAMES), None, None, 100, sealer=sealer, binding=ALICE)
    assert first == NAMES[:100] and cursor is not None
    second, _ = paginate(_named(NAMES), None, cursor, 100, sealer=sealer, binding=ALICE)
    assert second == NAMES[100:200]
    clock.advance(DEFAULT_STATE_TTL + 1)
    with pytest.raises(InvalidParams) as refused:
        paginate(_named(NAMES), None, cursor, 100, sealer=sealer, binding=ALICE)
    assert refused.value.wire_message == "Invalid cursor"


def test_az2_a_cursor_is_bound_to_its_list_and_caller_AZ2() -> None:
    sealer = _sealer()
    _, cursor = paginate(_named(NAMES), None, None, 100, sealer=sealer, binding=ALICE)
    assert cursor is not None
    for other in (
        cursor_binding("resources/list", ("bob", "key:bob")),
        cursor_binding("resources/list", ("alice", "key:other")),
        cursor_binding("resources/templates/list", ("alice", "key:alice")),
        cursor_binding("resources/list", None),
    ):
        with pytest.raises(InvalidParams):
            paginate(_named(NAMES), None, cursor, 100, sealer=sealer, binding=other)


def test_az2_each_page_asks_the_filter_about_its_own_items_only_AZ2() -> None:
    """Deep pages cost what the first does: the filter (a policy decision each) is asked
    about the page's items and the denied ones among them, and about those up to the next
    shown item (to know whether more follow); never again about the pages before. Every
    shown item comes once."""
    asked: list[str] = []

    def shown(name: str) -> bool:
        asked.append(name)
        return int(name[1:]) % 2 == 0

    sealer, served, cursor, calls = _sealer(), [], None, []
    for _ in range(5):
        before = len(asked)
        page, cursor = paginate(_named(NAMES), shown, cursor, 50, sealer=sealer, binding=ALICE)
        served += page
        calls.append(len(asked) - before)
        if cursor is None:
            break
    assert served == NAMES[::2]
    # n0..n98 and the look past the page (n99, n100); n99..n198 and n199, n200; n199..n249
    assert calls == [101, 102, 51]


def test_az2_a_page_resumes_by_count_when_its_last_item_left_the_list_AZ2() -> None:
    names = list(NAMES)
    sealer = _sealer()
    _, cursor = paginate(_named(names), None, None, 100, sealer=sealer, binding=ALICE)
    names.remove("n99")
    page, _ = paginate(_named(names), None, cursor, 100, sealer=sealer, binding=ALICE)
    assert page == names[100:200]


def test_az2_a_cursor_does_not_show_the_names_it_resumes_after_AZ2() -> None:
    """A cursor's payload is readable; a name in it (a URI may carry a credential, which the
    sanitiser masks in the list itself) would hand it to the client unmasked."""
    names = [f"x+https://host/{i}?token=s3cr3t-{i}" for i in range(150)]
    sealer = _sealer()
    _, cursor = paginate(_named(names), None, None, 100, sealer=sealer, binding=ALICE)
    assert cursor is not None
    body = cursor.partition(".")[0]
    payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    assert "s3cr3t" not in payload and "host" not in payload
    page, _ = paginate(_named(names), None, cursor, 100, sealer=sealer, binding=ALICE)
    assert page == names[100:]
