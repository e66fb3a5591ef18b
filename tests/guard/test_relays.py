"""What an upstream sends the client mid-call (``guard.relays``): an elicitation's form keeps
its fields, whatever they are called, while the text in it is still filtered (TC-4)."""

from __future__ import annotations

from bastion.guard.relays import clean_input_request
from bastion.guard.sanitise import Sanitiser

GITHUB_TOKEN = "ghp_" + "a1B2" * 9


def test_tc4_an_elicitation_form_keeps_fields_named_like_secrets() -> None:
    schema = {
        "type": "object",
        "properties": {
            "token": {"type": "string", "description": "Your deploy token"},
            "password": {"type": "string", "default": GITHUB_TOKEN},
        },
        "required": ["token"],
    }
    params = {"message": f"Sign in (we saw {GITHUB_TOKEN})", "requestedSchema": schema}
    cleaned = clean_input_request("elicitation/create", params, Sanitiser())
    assert isinstance(cleaned.value, dict)
    form = cleaned.value["requestedSchema"]
    assert form["properties"]["token"] == {"type": "string", "description": "Your deploy token"}
    assert form["properties"]["password"]["default"] == "[REDACTED]"  # a secret's shape
    assert GITHUB_TOKEN not in str(cleaned.value) and "[REDACTED]" in cleaned.value["message"]
    assert form["required"] == ["token"]
