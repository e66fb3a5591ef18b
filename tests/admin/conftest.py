from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.admin.support import Admin, serve_in_thread


@pytest.fixture
def admin(tmp_path: Path) -> Admin:
    return Admin(tmp_path)


@pytest.fixture
def client(admin: Admin) -> Iterator[httpx.Client]:
    with serve_in_thread(admin.app()) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One server for a module's tests that change nothing (refusals, reads)."""
    app = Admin(tmp_path_factory.mktemp("admin")).app()
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client
