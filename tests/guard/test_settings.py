"""The ``guard:`` section: secure defaults, unknown fields refused, bad values named."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from bastion.guard import GuardSettings, default_pin_db


def test_defaults_turn_every_protection_on() -> None:
    s = GuardSettings()
    assert s.schemas.enabled and s.schemas.reject_unknown_fields and s.schemas.validate_output
    assert s.sanitise.enabled and s.sanitise.mask_secrets and s.sanitise.strip_invisible
    assert s.sanitise.max_result_chars == 1024 * 1024 and s.sanitise.injection_action == "annotate"
    assert s.pins.enabled and s.pins.trust_on_first_use and s.pins.hold_poisoned
    assert s.pins.db_path is None and s.uris.file_roots == ()


def test_the_section_decodes_from_yaml_shaped_data() -> None:
    raw = {
        "schemas": {"reject_unknown_fields": False},
        "sanitise": {"pii_patterns": [r"\d{3}-\d{2}-\d{4}"], "injection_action": "block"},
        "pins": {"trust_on_first_use": False, "db_path": "/var/lib/bastion/pins.db"},
        "uris": {"schemes": ["file", "note"], "file_roots": ["/srv/data"]},
    }
    s = msgspec.convert(raw, GuardSettings)
    assert not s.schemas.reject_unknown_fields and s.sanitise.injection_action == "block"
    assert s.uris.schemes == ("file", "note")


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"schemas": {"rejectUnknown": True}}, "$.schemas"),
        ({"sanitise": {"pii_patterns": ["(unclosed"]}}, "pii pattern"),
        ({"sanitise": {"injection_action": "ignore"}}, "$.sanitise.injection_action"),
        ({"sanitise": {"max_result_chars": 10}}, "$.sanitise.max_result_chars"),
        ({"uris": {"schemes": ["https"]}}, "fetch"),
        ({"uris": {"file_roots": ["relative"]}}, "absolute"),
    ],
)
def test_bad_settings_are_refused_with_their_path(raw: dict[str, object], where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=__import__("re").escape(where)):
        msgspec.convert(raw, GuardSettings)


def test_default_pin_db_follows_xdg(tmp_path: Path) -> None:
    assert default_pin_db({"XDG_STATE_HOME": "/s"}) == Path("/s/bastion/pins.db")
    home = tmp_path
    assert default_pin_db({}, home=home) == home / ".local/state/bastion/pins.db"
    assert (
        default_pin_db({"XDG_STATE_HOME": "rel"}, home=home)
        == home / ".local/state/bastion/pins.db"
    )


def test_image_settings_default_to_removing_data_images_and_are_checked_TC4() -> None:
    assert GuardSettings().sanitise.remote_images == "remove-with-data"
    raw = {"sanitise": {"remote_images": "remove", "image_hosts": ["cdn.example.com", "*.x.org"]}}
    s = msgspec.convert(raw, GuardSettings)
    assert s.sanitise.image_hosts == ("cdn.example.com", "*.x.org")
    for bad, where in [
        ({"remote_images": "strip"}, "$.sanitise.remote_images"),
        ({"image_hosts": ["https://cdn.example.com/"]}, "image_hosts"),
        ({"image_hosts": ["*"]}, "image_hosts"),
        ({"image_hosts": ["cdn.*.com"]}, "image_hosts"),
    ]:
        with pytest.raises(msgspec.ValidationError, match=__import__("re").escape(where)):
            msgspec.convert({"sanitise": bad}, GuardSettings)
