"""``_http_asgi.Headers``: a repeated field's values joined in order, names case-insensitive,
and a head of many repeats read in linear time (DS-4: the work happens before
authentication)."""

from __future__ import annotations

import time

from bastion.transport._http_asgi import Headers

REPEATS = 100_000  # of a one-byte value: about 0.4 MB of scope, far past any wire cap


def test_repeated_fields_are_joined_in_order_and_names_ignore_case() -> None:
    headers = Headers(
        {
            "headers": [
                (b"Accept", b"application/json"),
                (b"x-one", b"1"),
                (b"accept", b"text/event-stream"),
                (b"ACCEPT", b"*/*"),
            ]
        }
    )
    assert headers.get("accept") == "application/json, text/event-stream, */*"
    assert headers.get("x-one") == "1"
    assert headers.get("x-two") is None
    assert Headers({}).get("accept") is None


def _fastest(scope: dict[str, list[tuple[bytes, bytes]]]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        Headers(scope)
        best = min(best, time.perf_counter() - started)
    return best


def test_ds4_many_repeats_of_one_field_cost_no_more_than_as_many_distinct_fields() -> None:
    """Joining each repeat onto the value so far copies it every time (quadratic: about 10x the
    baseline here); joined once, one name repeated costs about as much as as many distinct
    names, measured side by side so a loaded machine slows both."""
    repeats = {"headers": [(b"x", b"a")] * REPEATS}
    distinct = {"headers": [(b"x%d" % i, b"a") for i in range(REPEATS)]}
    assert len(Headers(repeats).get("x") or "") == 3 * REPEATS - 2
    assert _fastest(repeats) < 3 * _fastest(distinct)
