"""Refusals by a limit, counted rather than written one by one (DS-3, DS-4), with every
refusal still reaching the log (AD-1): ``RefusalTally`` on a fake clock, and ``AuditLog``."""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec
import pytest

from bastion.audit import AuditLog, AuditRecord, verify
from bastion.audit.read import iter_rows, open_readonly
from bastion.audit.refusals import MAX_SUMMARY_PAIRS, RefusalTally
from tests.audit.support import public_key

ALICE = ("alice", "principal")


def refusal(
    n: int = 0, who: str = "alice", target: str | None = None, session: str | None = None
) -> AuditRecord:
    return AuditRecord(
        time=1000.0 + n,
        principal=who,
        session=session,
        request_id=n,
        method="tools/call",
        target=target,
        decision="deny",
        outcome="-32005",
        detail={"limit": "principal"},
    )


def attempted(records: list[AuditRecord]) -> dict[str | None, int]:
    """The refused attempts per target that ``records`` name: one each, or a summary's
    ``attempts`` counts (checked to add up to its ``refused``)."""
    counts: dict[str | None, int] = {}
    for r in records:
        if "refused" not in r.detail:
            counts[r.target] = counts.get(r.target, 0) + 1
            continue
        pairs = r.detail["attempts"]
        assert isinstance(pairs, list)
        for pair in pairs:
            assert isinstance(pair, dict) and pair["method"] == "tools/call"
            target, count = pair["target"], pair["count"]
            assert isinstance(target, str | None) and isinstance(count, int) and count > 0
            counts[target] = counts.get(target, 0) + count
        other = r.detail.get("other", 0)
        assert isinstance(other, int)
        assert (
            sum(int(p["count"]) for p in pairs if isinstance(p, dict)) + other
            == r.detail["refused"]
        )
        if other:
            counts["other"] = counts.get("other", 0) + other
    return counts


def refusals_in(records: list[AuditRecord]) -> int:
    """How many refusals ``records`` stand for: one each, or a summary's count."""
    return sum(int(r.detail.get("refused", 1)) for r in records)


def test_ds4_a_flood_in_one_window_is_its_first_record_and_one_summary() -> None:
    tally = RefusalTally(window=1.0)
    written = tally.refused(ALICE, refusal(0), now=10.0)
    for n in range(1, 300):
        written += tally.refused(ALICE, refusal(n), now=10.0 + n / 1000)
    assert written == [refusal(0)]  # the first one, as before
    assert tally.due(now=10.9, wall=2000.0) == []  # the window is still open
    summaries = tally.due(now=11.0, wall=2000.0)
    assert len(summaries) == 1 and len(tally) == 0
    summary = summaries[0]
    assert summary.detail == {
        "limit": "principal",
        "refused": 299,
        "window_s": 1.0,
        "attempts": [{"method": "tools/call", "target": None, "count": 299}],
    }
    assert (summary.principal, summary.outcome, summary.decision) == ("alice", "-32005", "deny")
    assert summary.time == 2000.0 and summary.request_id is None
    assert refusals_in(written + summaries) == 300


def test_ad1_a_summary_names_the_tool_it_counts_not_the_first_refusal() -> None:
    """Red-team R4: alice's 6th echo_meta is refused, then her read_file calls are counted;
    the summary named echo_meta for them all. It names what it counts now."""
    tally = RefusalTally(window=1.0)
    written = tally.refused(ALICE, refusal(0, target="fk__echo_meta", session="s1"), now=0.0)
    for n in range(1, 200):
        written += tally.refused(ALICE, refusal(n, target="fk__read_file", session="s1"), now=0.5)
    summaries = tally.due(now=1.0, wall=5.0)
    assert [(r.method, r.target, r.session) for r in summaries] == [
        ("tools/call", "fk__read_file", "s1")
    ]
    assert summaries[0].detail["attempts"] == [
        {"method": "tools/call", "target": "fk__read_file", "count": 199}
    ]
    assert attempted(written + summaries) == {"fk__echo_meta": 1, "fk__read_file": 199}


def test_ad1_a_summary_of_two_tools_lists_both_and_names_neither() -> None:
    """A flood over two tools (and two sessions) is one summary a window whose attempts add
    up exactly; its target and session, not shared by all it counts, are left empty."""
    tally = RefusalTally(window=1.0)
    written = tally.refused(ALICE, refusal(0, target="fk__echo_meta", session="s1"), now=0.0)
    for n in range(1, 200):
        tool, session = ("fk__read_file", "s1") if n % 3 else ("fk__echo_meta", "s2")
        written += tally.refused(ALICE, refusal(n, target=tool, session=session), now=0.5)
    summaries = tally.due(now=1.0, wall=5.0)
    assert len(summaries) == 1
    summary = summaries[0]
    assert (summary.method, summary.target, summary.session) == ("tools/call", None, None)
    assert summary.detail["refused"] == 199 and summary.detail["limit"] == "principal"
    assert attempted(written + summaries) == {"fk__echo_meta": 1 + 66, "fk__read_file": 133}


def test_ds4_a_summary_names_a_bounded_number_of_pairs_and_counts_the_rest() -> None:
    tally = RefusalTally(window=1.0)
    written = tally.refused(ALICE, refusal(0), now=0.0)
    tools = [f"t{k}" for k in range(MAX_SUMMARY_PAIRS + 4)]
    for n in range(1, 1 + 3 * len(tools)):
        written += tally.refused(ALICE, refusal(n, target=tools[n % len(tools)]), now=0.5)
    summaries = tally.due(now=1.0, wall=5.0)
    pairs = summaries[0].detail["attempts"]
    assert isinstance(pairs, list) and len(pairs) == MAX_SUMMARY_PAIRS
    counts = attempted(written + summaries)
    assert counts["other"] == 3 * 4 and sum(counts.values()) == 1 + 3 * len(tools)


def test_ds4_the_next_refusal_after_a_window_writes_its_summary_and_opens_another() -> None:
    tally = RefusalTally(window=1.0)
    written = tally.refused(ALICE, refusal(0), now=0.0)
    written += tally.refused(ALICE, refusal(1), now=0.5)
    written += tally.refused(ALICE, refusal(2), now=1.5)
    assert [r.detail.get("refused") for r in written] == [None, 1, None]
    assert written[2] == refusal(2)
    written += tally.drain(wall=5.0)  # shutdown: the open count is written, not lost
    assert refusals_in(written) == 3 and len(tally) == 0


def test_ds4_keys_are_counted_apart_and_a_lone_refusal_has_no_summary() -> None:
    tally = RefusalTally(window=1.0)
    written = tally.refused(ALICE, refusal(0), now=0.0)
    written += tally.refused(("bob", "principal"), refusal(1, "bob"), now=0.1)
    written += tally.refused(("alice", "tool"), refusal(2), now=0.2)
    assert len(written) == 3
    assert tally.due(now=5.0, wall=5.0) == [] and len(tally) == 0


def test_ds4_a_full_table_writes_new_keys_one_by_one_and_never_drops() -> None:
    tally = RefusalTally(window=1.0, max_keys=2)
    written: list[AuditRecord] = []
    for n in range(10):
        for who in ("a", "b", "c"):
            written += tally.refused((who, "principal"), refusal(n, who), now=n / 100)
    assert len(tally) == 2
    assert [r.principal for r in written].count("c") == 10  # past the cap: each written
    written += tally.drain(wall=9.0)
    assert refusals_in(written) == 30
    assert len([r for r in written if r.principal in ("a", "b")]) == 4


@pytest.mark.anyio
async def test_ad1_open_counts_reach_the_log_at_close_and_the_chain_verifies(
    tmp_path: Path,
) -> None:
    db = tmp_path / "audit.db"
    with anyio.fail_after(30):
        async with AuditLog(db, refusals=RefusalTally(window=60.0)) as log:
            for n in range(200):
                await log.refused(ALICE, refusal(n))
    conn = open_readonly(db)
    try:
        rows = [msgspec.json.decode(bytes(r.record), type=AuditRecord) for r in iter_rows(conn)]
    finally:
        conn.close()
    assert len(rows) == 2 and refusals_in(rows) == 200
    report = verify(db, public_key(db))
    assert report.ok, report.problems


@pytest.mark.anyio
async def test_ad1_a_logged_flood_of_two_tools_adds_up_and_the_chain_verifies(
    tmp_path: Path,
) -> None:
    db = tmp_path / "audit.db"
    with anyio.fail_after(30):
        async with AuditLog(db, refusals=RefusalTally(window=60.0)) as log:
            await log.refused(ALICE, refusal(0, target="fk__echo_meta"))
            for n in range(1, 200):
                tool = "fk__read_file" if n % 2 else "fk__echo_meta"
                await log.refused(ALICE, refusal(n, target=tool))
    conn = open_readonly(db)
    try:
        rows = [msgspec.json.decode(bytes(r.record), type=AuditRecord) for r in iter_rows(conn)]
    finally:
        conn.close()
    assert len(rows) == 2
    assert attempted(rows) == {"fk__echo_meta": 100, "fk__read_file": 100}
    report = verify(db, public_key(db))
    assert report.ok, report.problems
