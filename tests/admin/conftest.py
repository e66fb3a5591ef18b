from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.admin.support import Admin, serve_in_thread


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Admin]:
    with Admin(tmp_path) as admin:
        yield admin


@pytest.fixture
def client(admin: Admin) -> Iterator[httpx.Client]:
    with serve_in_thread(admin.app()) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def shared_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    """The Admin behind ``shared_client`` (its keys: ``shared_admin.auth(ADMIN)``)."""
    with Admin(tmp_path_factory.mktemp("admin")) as admin:
        yield admin


@pytest.fixture(scope="module")
def shared_client(shared_admin: Admin) -> Iterator[httpx.Client]:
    """One server for a module's tests that change nothing (refusals, reads)."""
    with (
        serve_in_thread(shared_admin.app()) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client
