"""Each package's ``__all__`` is sorted and names only what the package really exports."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "bastion",
    "bastion.admin",
    "bastion.audit",
    "bastion.auth",
    "bastion.client",
    "bastion.fixture",
    "bastion.guard",
    "bastion.pipeline",
    "bastion.policy",
    "bastion.hub",
    "bastion.limits",
    "bastion.protocol",
    "bastion.sandbox",
    "bastion.server",
    "bastion.session",
    "bastion.transport",
    "bastion.workspace",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    for member in exported:
        assert hasattr(module, member), f"{name}.{member}"


def test_stdio_path_does_not_load_the_http_stack() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, bastion.cli.fixture, bastion.transport.stdio, bastion.server, "
        "bastion.fixture, bastion.cli.workspace; "
        "print(any(m in sys.modules for m in ('uvicorn', 'httpx', 'h11')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
