"""IN-1: a YAML scalar that PyYAML reads as a value Python cannot hold (a date that does not
exist, an integer past Python's 4300-digit conversion limit, a time zone a day away) is a
configuration error at its line, like any other: before, the constructor's plain
``ValueError`` escaped the loader, and every caller (config, policy file, policy API) died
with a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import load_config, parse_config
from bastion.config.yaml_text import parse_yaml_text
from bastion.errors import ConfigError

BIG = "9" * 5000


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("a: 2024-02-30\n", "f.yaml:1:4", "'2024-02-30' is not a valid timestamp (day is out"),
        ("a:\n  - 0000-01-01\n", "f.yaml:2:5", "'0000-01-01' is not a valid timestamp (year 0"),
        ("a: 2024-01-01 10:00:00 +25:00\n", "f.yaml:1:4", "is not a valid timestamp"),
        (f"a: [0, {BIG}]\n", "f.yaml:1:8", "'99999999999999999999...' is not a valid int (too"),
        (f"{{? {BIG} : 1}}\n", "f.yaml:1:4", "is not a valid int (too many digits)"),
    ],
)
def test_in1_an_unrepresentable_scalar_is_a_config_error_at_its_line(
    text: str, where: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml_text(text, "f.yaml")
    message = str(caught.value)
    assert message.startswith(f"{where}: "), message
    assert problem in message
    assert "quote it if it is text" in message
    assert "set_int_max_str_digits" not in message  # Python's hint is not the user's fix


def test_in1_valid_dates_and_numbers_still_load() -> None:
    data = parse_yaml_text("a: 2024-02-29\nb: 12345678901234567890\nc: 1.0e+999\n", "f.yaml")
    assert isinstance(data, dict)
    assert str(data["a"]) == "2024-02-29"
    assert data["b"] == 12345678901234567890
    assert data["c"] == float("inf")


def test_in1_a_config_with_a_bad_date_in_server_args_names_the_file_and_line(
    tmp_path: Path,
) -> None:
    """Red-team u (``bastion serve -c``): ``args: [2024-02-30]`` was a traceback."""
    config = tmp_path / "bastion.yaml"
    config.write_text("servers:\n  x:\n    command: echo\n    args: [2024-02-30]\n")
    with pytest.raises(ConfigError, match=rf"^{config}:4:12: '2024-02-30' is not a valid"):
        load_config(config, {})
    with pytest.raises(ConfigError, match=r"^<string>:1:18: '99999"):
        parse_config(f"gateway: {{port: [{BIG}]}}\n", {})
