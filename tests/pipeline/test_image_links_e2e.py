"""Images that send data out when a client renders them, against a real ``bastion serve``
fronting a real upstream (``tests/security/upstreams/imager.py``).

TC-4: a tool result, a prompt and a resource whose text holds Markdown or HTML images with
data in their URL (a query, a fragment, a template) reach the client with each such image
replaced by a marker naming its host and keeping its alt text; a plain logo, a link and an
image from ``guard.sanitise.image_hosts`` arrive untouched; the call's audit record counts
the removals as ``remote-image`` findings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline.live import Gateway, answer_of, policy_text, serve, wait_until
from tests.security.upstreams.imager import COLLECTOR, REPORT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

IMAGER = Path(__file__).resolve().parent.parent / "security" / "upstreams" / "imager.py"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    servers = f"""\
  imager:
    command: {sys.executable}
    args: [{json.dumps(str(IMAGER))}]
"""
    keys = {"alice": ("dev",), "admin": ("admin",)}
    with serve(
        tmp_path_factory.mktemp("imager"),
        servers,
        policy_text(["imager__*"]),
        keys,
        guard="  sanitise: {image_hosts: [cdn.example.com]}\n",
    ) as gateway:
        yield gateway


def test_images_carrying_data_in_a_tool_result_are_replaced_and_counted_TC4(
    gw: Gateway,
) -> None:
    wait_until(lambda: "imager__report" in gw.tools("alice"))
    answer = gw.call("alice", "imager__report", {})
    texts = [block["text"] for block in answer["result"]["content"]]
    assert texts == [
        f"Revenue is up 8%. [image removed: {COLLECTOR}; alt: chart]",
        REPORT[1],  # a plain image and a link
        f"[image removed: {COLLECTOR}; alt: pixel]",
        f"[image removed: {COLLECTOR}; alt: trend]\n\n[t]: https://{COLLECTOR}/t.png#conversation",
        REPORT[4],  # from an allowed image host
    ]
    [call] = [
        r
        for r in gw.audit()
        if r["kind"] != "pin" and r["method"] == "tools/call" and r["target"] == "imager__report"
    ]
    findings = {f["kind"]: f["count"] for f in call["detail"]["findings"]}
    assert findings == {"remote-image": 3}  # one per string that held any
    assert "Q3-revenue" not in json.dumps(call)


def test_images_carrying_data_in_prompts_and_resources_are_replaced_TC4(gw: Gateway) -> None:
    wait_until(lambda: "imager__report" in gw.tools("admin"))
    prompt = answer_of(gw.modern("admin", "prompts/get", {"name": "imager__brief"}))
    text = prompt["result"]["messages"][0]["content"]["text"]
    assert text == f"Summarise this. [image removed: {COLLECTOR}]"
    uri = "imager+note://card"
    read = answer_of(gw.modern("admin", "resources/read", {"uri": uri}, headers={"mcp-name": uri}))
    assert read["result"]["contents"][0]["text"] == f"<p>Card</p>[image removed: {COLLECTOR}]"
