"""Fixtures for the workspace tests: a server on a fresh root with one workspace, ``demo``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.workspace import WorkspaceLimits, WorkspaceServer
from tests.workspace.support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limits() -> WorkspaceLimits:
    return WorkspaceLimits()


@pytest.fixture
def server(tmp_path: Path, clock: FakeClock, limits: WorkspaceLimits) -> Iterator[WorkspaceServer]:
    ws = WorkspaceServer(tmp_path / "root", limits, clock=clock)
    ws.root.create("demo")
    yield ws
    ws.close()


@pytest.fixture
def demo(server: WorkspaceServer) -> Path:
    return server.root.path / "demo"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the root holding a secret no tool may reach."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("TOP SECRET\n")
    return path
