"""What an upstream sends the client mid-call (``guard.relays``): an elicitation's form keeps
its fields, whatever they are called, while the text in it is still filtered (TC-4)."""

from __future__ import annotations

from bastion.guard.relays import clean_input_request, clean_input_requests
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


SAMPLING = {
    "messages": [{"role": "user", "content": {"type": "text", "text": "Summarise"}}],
    "maxTokens": 10,
}


def test_tc4_a_sampling_request_never_asks_for_the_clients_context() -> None:
    """To the client the gateway is one server: an upstream's ``includeContext`` of
    ``thisServer`` or ``allServers`` would ask for the other upstreams' context (MCP10
    over-sharing). It reaches the client as ``"none"``, recorded as a finding."""
    for asked in ("allServers", "thisServer"):
        cleaned = clean_input_request(
            "sampling/createMessage", {**SAMPLING, "includeContext": asked}, Sanitiser()
        )
        assert isinstance(cleaned.value, dict)
        assert cleaned.value["includeContext"] == "none"
        assert cleaned.value["messages"] == SAMPLING["messages"]
        assert [(f.kind, f.excerpt) for f in cleaned.findings] == [("context-request", asked)]
    plain = clean_input_request("sampling/createMessage", dict(SAMPLING), Sanitiser())
    assert plain.value == SAMPLING and not plain.findings


def test_tc4_a_2026_input_request_for_sampling_never_asks_for_the_clients_context() -> None:
    requests = {
        "s": {
            "method": "sampling/createMessage",
            "params": {**SAMPLING, "includeContext": "allServers"},
        }
    }
    cleaned = clean_input_requests(requests, Sanitiser())
    assert cleaned.changed and isinstance(cleaned.value, dict)
    assert cleaned.value["s"]["params"]["includeContext"] == "none"
    assert [f.kind for f in cleaned.findings] == ["context-request"]
