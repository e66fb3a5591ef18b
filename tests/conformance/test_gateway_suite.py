"""SECURITY.md VT-1: the official conformance suite through the gateway: ``bastion serve``
fronting the fixture (a) as a stdio child and (b) over HTTP, with ``prefix: ""`` because the
suite calls the fixture's tools by their bare names. Same pinned runs and bar as against
the fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.harness import run_suite
from tests.conformance.test_server_suite import _scored
from tests.support import (
    BASTION,
    CONFORMANCE_ALPHA,
    CONFORMANCE_STABLE,
    fixture_http_server,
    free_port,
    gateway_http_server,
)

pytestmark = pytest.mark.conformance


def _config(tmp: Path, server_yaml: str) -> Path:
    path = tmp / "bastion.yaml"
    path.write_text(f'servers:\n  fixture:\n{server_yaml}    prefix: ""\n')
    return path


@pytest.fixture(scope="module", params=["stdio-child", "http-upstream"])
def gateway_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("gw")
    port = free_port()
    if request.param == "stdio-child":
        cfg = _config(tmp, f"    command: {BASTION}\n    args: [fixture, --stdio]\n")
        with gateway_http_server(cfg, port):
            yield f"http://localhost:{port}/mcp"
    else:
        with fixture_http_server() as upstream:
            cfg = _config(tmp, f"    url: {upstream}\n")
            with gateway_http_server(cfg, port):
                yield f"http://localhost:{port}/mcp"


def test_stable_default_suite_through_gateway(gateway_url: str, tmp_path: Path) -> None:
    run = run_suite(CONFORMANCE_STABLE, ["server", "--url", gateway_url], tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    assert len(run.scenarios()) == 30
    assert run.bad() == []


@pytest.mark.parametrize("revision,scored_count", [("2025-11-25", 30), ("2026-07-28", 37)])
def test_alpha_requirements_through_gateway(
    gateway_url: str, tmp_path: Path, revision: str, scored_count: int
) -> None:
    run = run_suite(
        CONFORMANCE_ALPHA, ["server", "--url", gateway_url, "--requirements", revision], tmp_path
    )
    assert run.returncode == 0, run.output[-3000:]
    scored = _scored(run.scenarios())
    assert len(scored) == scored_count
    assert run.bad(scored) == []
