"""DS-3 and AU-5 on parked calls, against a real ``bastion serve`` in front of a 2025-11-25
HTTP upstream (``bastion fixture --legacy-only``): a 2026-07-28 client's call that the
upstream answers with an elicitation is parked, holding an upstream connection open, until
the client retries with the answer. One principal cannot park so many that another's calls
hang (its own oldest make way), and a revoked key's parked calls are dropped. A 2025-11-25
stdio upstream that keeps asking (``upstreams/asker.py``) gets no more input rounds, and no
more questions at once, than the gateway allows."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.client.session import MAX_INPUT_ROUNDS
from bastion.transport.http_client import MAX_CONNECTIONS as HTTP_POOL
from bastion.upstream.parking import MAX_OPEN_QUESTIONS, MAX_PARKED_PER_CALLER
from tests.security.conftest import (
    Gateway,
    Issuer,
    answer_of,
    create_key,
    run_cli,
    wait_ready,
    write_config,
)
from tests.support import BASTION, PYTHON, free_port, stop_process, wait_for_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

POLICY = """\
version: 1
roles:
  dev: {description: developers}
  strict: {description: tools/call only}
rules:
  - id: dev
    effect: allow
    roles: [dev]
    methods: [initialize, ping, "notifications/*", tools/list]
  - id: dev-tools
    effect: allow
    roles: [dev]
    tools: ["lh__*", "ask__*", "pair__*"]
  - id: strict
    effect: allow
    roles: [strict]
    methods: [initialize, ping, "notifications/*", tools/list, tools/call]
    tools: ["ask__*"]
"""
ASKER = Path(__file__).parent / "upstreams" / "asker.py"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("parked")
    upstream_port, port = free_port(), free_port()
    upstream = subprocess.Popen(
        [str(BASTION), "fixture", "--port", str(upstream_port), "--legacy-only"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    issuer = Issuer(audience=f"http://127.0.0.1:{port}/mcp")
    (tmp / "jwks.json").write_text(json.dumps(issuer.jwks()))
    servers = f"""\
  lh:
    url: http://127.0.0.1:{upstream_port}/mcp
    prefix: "lh__"
  ask:
    command: {PYTHON}
    args: ["{ASKER}", "{tmp / "asker.jsonl"}"]
    prefix: "ask__"
  pair:
    command: {PYTHON}
    args: ["{ASKER}", "{tmp / "pair.jsonl"}"]
    prefix: "pair__"
    replicas: 2
"""
    config = write_config(tmp, port, servers=servers, policy=POLICY)
    keys = {name: create_key(tmp / "keys.db", name, "dev") for name in ("alice", "bob")}
    keys["carol"] = create_key(tmp / "keys.db", "carol", "strict")  # tools/call only
    proc = None
    try:
        wait_for_port(upstream_port)
        with (tmp / "serve.log").open("wb") as log:  # -v: the INFO lines say what was dropped
            argv = ["-v", "serve", "-c", str(config), "--port", str(port), "--no-register"]
            proc = subprocess.Popen(
                [str(BASTION), *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_ready(f"http://127.0.0.1:{port}", proc, tmp / "serve.log")
        gateway = Gateway(
            port=port, tmp=tmp, keys=keys, issuer=issuer, proc=proc,
            recorder_log=tmp / "none", recorder_port=0,
        )  # fmt: skip
        gateway.client.timeout = httpx.Timeout(8)  # a parked-out call would hang: fail instead
        yield gateway
        gateway.client.close()
    finally:
        if proc is not None:
            stop_process(proc, grace=15)
        stop_process(upstream)


def _elicit(gw: Gateway, who: str, message: str) -> dict[str, Any]:
    return answer_of(gw.call(gw.auth(who), "lh__test_elicitation", {"message": message}))


def test_ds3_one_principals_parked_calls_never_hold_up_anothers(gw: Gateway) -> None:
    # Past alice's share, and past the upstream's connection pool (128): before the share,
    # the 128th parked call held the last connection and every call to this upstream hung.
    assert MAX_PARKED_PER_CALLER < HTTP_POOL
    for i in range(HTTP_POOL + 2):
        answer = _elicit(gw, "alice", f"alice-{i}")
        assert answer["result"]["resultType"] == "input_required", answer
    # bob is served at once, both a plain call and one that parks.
    echo = answer_of(gw.call(gw.auth("bob"), "lh__test_simple_text"))
    assert echo["result"]["content"][0]["text"]
    assert _elicit(gw, "bob", "bob")["result"]["resultType"] == "input_required"


def _sample(gw: Gateway, who: str, tool: str) -> None:
    """``tool`` (the asker's ``sample``) through both rounds: asked, answered, completed."""
    params: dict[str, Any] = {"name": tool, "arguments": {}}
    result = answer_of(gw.modern(gw.auth(who), "tools/call", params))["result"]
    assert result.get("resultType") == "input_required", result
    (key, _request), *_ = result["inputRequests"].items()
    reply = {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}
    params.update(requestState=result["requestState"], inputResponses={key: reply})
    done = answer_of(gw.modern(gw.auth(who), "tools/call", params))
    assert '"model": "m"' in done["result"]["content"][0]["text"], done


def test_a_parked_call_holds_one_replica_and_the_others_still_ask(gw: Gateway) -> None:
    """``pair`` is the stdio asker with two replicas. alice's call, parked at one with its
    question unanswered, keeps a call in flight there; bob's calls go to the other (fewest
    calls in flight), whose questions can be attributed, and each retry goes back to the
    replica its call is parked at. Before, calls went round robin: a retry reached the
    wrong replica half the time ("Input round expired") and bob's question, on alice's
    replica, was refused -32601 to the upstream."""
    params: dict[str, Any] = {"name": "pair__ask", "arguments": {"n": 1}}
    held = answer_of(gw.modern(gw.auth("alice"), "tools/call", params))
    assert held["result"]["resultType"] == "input_required", held
    for _ in range(3):
        _sample(gw, "bob", "pair__sample")
    assert not (gw.tmp / "pair.jsonl").exists()  # no question was refused to the upstream


def test_au5_a_revoked_keys_parked_calls_are_dropped(gw: Gateway) -> None:
    _elicit(gw, "alice", "before revocation")
    run_cli("keys", "revoke", "alice", "--db", str(gw.keys_db))
    log = gw.tmp / "serve.log"
    deadline = time.monotonic() + 10
    while "parked call(s) of revoked or expired keys" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.2)


def test_az1_a_retry_with_other_arguments_does_not_resume_the_parked_call(gw: Gateway) -> None:
    """The retry is authorized with its own arguments, so it must carry the parked call's:
    bob's retry of the elicitation with another message is told the round expired, and
    with the same message it resumes the call."""
    first = _elicit(gw, "bob", "first")["result"]
    assert first["resultType"] == "input_required", first
    (key, _request), *_ = first["inputRequests"].items()
    retry: dict[str, Any] = {
        "name": "lh__test_elicitation",
        "arguments": {"message": "other"},
        "requestState": first["requestState"],
        "inputResponses": {key: {"action": "decline"}},
    }
    answer = answer_of(gw.modern(gw.auth("bob"), "tools/call", retry))
    assert answer.get("error", {}).get("code") == -32602, answer
    retry["arguments"] = {"message": "first"}
    answer = answer_of(gw.modern(gw.auth("bob"), "tools/call", retry))
    assert answer["result"].get("resultType", "complete") == "complete", answer


def _rounds(gw: Gateway, n: int) -> tuple[list[int], dict[str, Any]]:
    """As bob (alice's key is revoked above), calls ``ask__ask`` (``n`` questions at once,
    forever) and answers every input request it is given, until the call ends; the number of
    questions of each round, and the end."""
    params: dict[str, Any] = {"name": "ask__ask", "arguments": {"n": n}}
    asked: list[int] = []
    for _ in range(3 * MAX_INPUT_ROUNDS):
        answer = answer_of(gw.modern(gw.auth("bob"), "tools/call", params))
        result = answer.get("result") or {}
        if result.get("resultType") != "input_required":
            return asked, answer
        questions = result["inputRequests"]
        asked.append(len(questions))
        responses = {key: {"action": "accept", "content": {"v": "x"}} for key in questions}
        params = {**params, "requestState": result["requestState"], "inputResponses": responses}
    return asked, {}


def _upstream_errors(gw: Gateway, count: int) -> list[dict[str, Any]]:
    log = gw.tmp / "asker.jsonl"
    deadline = time.monotonic() + 10
    while len(lines := log.read_text().splitlines() if log.exists() else []) < count:
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    return [json.loads(line) for line in lines]


def test_tc4_an_upstreams_sampling_request_reaches_the_client_without_context(
    gw: Gateway,
) -> None:
    """``ask__sample`` asks for sampling with ``includeContext: "allServers"``: the client
    is asked with ``"none"`` (the gateway is one server to it: anything else would ask for
    the other upstreams' context). The call is completed, so the stdio upstream has no call
    left in flight for the tests below."""
    params: dict[str, Any] = {"name": "ask__sample", "arguments": {}}
    result = answer_of(gw.modern(gw.auth("bob"), "tools/call", params))["result"]
    assert result["resultType"] == "input_required", result
    (key, request), *_ = result["inputRequests"].items()
    assert request["method"] == "sampling/createMessage"
    assert request["params"]["includeContext"] == "none"
    reply = {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}
    params.update(requestState=result["requestState"], inputResponses={key: reply})
    done = answer_of(gw.modern(gw.auth("bob"), "tools/call", params))
    assert '"model": "m"' in done["result"]["content"][0]["text"], done


def test_ds3_a_legacy_upstream_asks_at_most_max_open_questions_at_once(gw: Gateway) -> None:
    """An upstream sending 40 elicitations at once within one call: at most
    MAX_OPEN_QUESTIONS of them wait for the client at a time, the rest are refused to the
    upstream (before: up to 39 reached the client in one round). How many are refused
    depends on how fast the client answers; every question is either asked or refused."""
    before = len(_upstream_errors(gw, 0))
    asked, end = _rounds(gw, 40)
    assert asked and max(asked) <= MAX_OPEN_QUESTIONS, asked
    assert "result" in end, end
    refused = int(end["result"]["content"][0]["text"].removesuffix(" refused"))
    assert refused > 0 and refused + sum(asked) == 40, (refused, asked)
    errors = _upstream_errors(gw, before + refused)[before:]
    assert errors == [{"code": -32600, "message": "Invalid request"}] * refused


def test_az1_a_question_the_policy_denies_is_refused_to_the_upstream_not_left_parked(
    gw: Gateway,
) -> None:
    """carol may call ``ask__*`` but only ``tools/call``: the upstream's elicitation is not
    hers to relay. The upstream gets -32003 for it at once, as in a 2025-11-25 session, and
    the call ends with the upstream's own answer. Before, her call was refused whole and
    its upstream call stayed parked for the 600 s time-to-live, so the stdio upstream had a
    call in flight and nobody else's question could be attributed: bob's sampling (below)
    was refused -32601 to the upstream and his call never got an input round."""
    before = len(_upstream_errors(gw, 0))
    params: dict[str, Any] = {"name": "ask__ask", "arguments": {"n": 1}}
    carol = answer_of(gw.modern(gw.auth("carol"), "tools/call", params))
    assert carol.get("result", {}).get("content") == [{"type": "text", "text": "1 refused"}], carol
    assert _upstream_errors(gw, before + 1)[before:] == [
        {"code": -32003, "message": "Denied by policy"}
    ]
    _sample(gw, "bob", "ask__sample")
    assert len(_upstream_errors(gw, 0)) == before + 1  # bob's question was not refused


def test_ds3_a_legacy_upstream_gets_no_more_input_rounds_than_a_modern_one(gw: Gateway) -> None:
    """Through a 2025-11-25 upstream, an ``ask`` looping forever is cut after
    MAX_INPUT_ROUNDS rounds with -32600, as through a 2026-07-28 upstream; the upstream's
    pending question is answered with an error (before: 24 rounds and still asking). Runs
    after the test above: the cut call is cancelled, and a stdio upstream's unattributed
    requests are refused from then on (until it restarts)."""
    before = len(_upstream_errors(gw, 0))
    asked, end = _rounds(gw, 1)
    assert asked == [1] * MAX_INPUT_ROUNDS
    assert end.get("error") == {"code": -32600, "message": "Invalid request"}, end
    refused = _upstream_errors(gw, before + 1)[before:]
    assert refused == [{"code": -32600, "message": "Invalid request"}]
