"""The configurations the README shows are valid: a reader who copies one gets a gateway
configuration that loads, not an error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bastion.config import parse_config

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.DOTALL)
CONFIGS = [block for block in BLOCKS if re.search(r"^(servers|gateway|auth):", block, re.M)]


def test_the_readme_shows_configurations() -> None:
    assert len(CONFIGS) >= 2


@pytest.mark.parametrize("block", CONFIGS)
def test_each_readme_configuration_loads(block: str) -> None:
    environ = {name: "x" for name in re.findall(r"\$\{([A-Z_]+)", block)}
    config = parse_config(block, environ, source="README")
    assert config.servers or config.auth is not None
