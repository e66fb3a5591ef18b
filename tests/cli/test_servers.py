"""``/readyz`` and ``bastion servers list`` on a gateway that authenticates its callers (IN-5,
AZ-6): the public probe says only whether it is ready; upstream names, pids, restarts and
last errors come from the admin API, to an admin key only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.pipeline.live import Gateway, serve
from tests.support import BASTION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

POLICY = """\
version: 1
roles:
  dev: {}
rules:
  - id: dev
    effect: allow
    roles: [dev]
    methods: [initialize, ping, "notifications/*", tools/list]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    servers = f"""\
  fixture:
    command: {sys.executable}
    args: ["-m", "bastion", "fixture", "--stdio"]
"""
    keys: dict[str, tuple[str, ...]] = {"admin": ("admin",), "dev": ("dev",)}
    with serve(tmp_path_factory.mktemp("servers"), servers, POLICY, keys) as gateway:
        yield gateway


def servers_list(
    gw: Gateway, *extra: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BASTION_ADMIN_KEY"}
    if key is not None:
        env["BASTION_ADMIN_KEY"] = key
    return subprocess.run(
        [str(BASTION), "servers", "list", "--url", gw.base, *extra],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )


def test_in5_public_readyz_says_only_whether_the_gateway_is_ready(gw: Gateway) -> None:
    response = httpx.get(f"{gw.base}/readyz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"ready": True}
    assert "fixture" not in response.text


def test_az6_upstream_status_is_for_admins_only(gw: Gateway) -> None:
    listed = gw.admin("GET", "/upstreams")
    assert listed.status_code == 200
    (row,) = listed.json()["upstreams"]
    assert row["server"] == "fixture" and row["state"] == "ready" and row["pid"] > 0
    dev = {"authorization": f"Bearer {gw.keys['dev']}"}
    assert httpx.get(f"{gw.api}/upstreams", headers=dev, timeout=5).status_code == 403
    assert httpx.get(f"{gw.api}/upstreams", timeout=5).status_code == 401


def test_servers_list_reads_the_admin_api_with_an_admin_key(gw: Gateway) -> None:
    by_option = servers_list(gw, "--key", gw.keys["admin"])
    assert by_option.returncode == 0, by_option.stderr
    assert "fixture" in by_option.stdout and "ready" in by_option.stdout
    by_env = servers_list(gw, "--json", key=gw.keys["admin"])
    assert by_env.returncode == 0, by_env.stderr
    assert json.loads(by_env.stdout)[0]["server"] == "fixture"


def test_servers_list_without_a_key_or_with_a_users_key_says_what_is_missing(
    gw: Gateway,
) -> None:
    missing = servers_list(gw)
    assert missing.returncode != 0
    assert "--key" in missing.stderr and "BASTION_ADMIN_KEY" in missing.stderr
    user = servers_list(gw, "--key", gw.keys["dev"])
    assert user.returncode != 0 and "admin" in user.stderr
    assert gw.keys["dev"] not in user.stderr + user.stdout
