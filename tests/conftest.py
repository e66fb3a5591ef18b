"""Test configuration shared by every test: anyio on asyncio, the backend Bastion runs on."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
