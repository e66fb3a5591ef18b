"""What a request is about, read from its params (AZ-1, ``pipeline.targets``): a
``completion/complete`` ref is of exactly one of the two spec types with its uri or name, or
the request is refused -32602 before any policy; every other method names a target, and one
whose name or URI is missing or not a string is refused -32602 too (IN-1)."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.errors import InvalidParams
from bastion.pipeline.targets import target_of
from bastion.policy import INVALID_NAME, Target
from tests.policy.helpers import policy, request

TEMPLATE = "fx+test://template/{id}/data"
ARGUMENT = {"name": "id", "value": "1"}


@pytest.mark.parametrize(
    "ref",
    [
        {"type": "ref/Resource", "uri": TEMPLATE},  # a resource ref spelled another way
        {"uri": TEMPLATE},  # no type: the router used to take it for a resource
        {"type": "ref/prompt ", "name": "x", "uri": TEMPLATE},
        {"type": "ref/resources", "uri": TEMPLATE},
        {"type": None, "uri": TEMPLATE},
        {"type": 1, "uri": TEMPLATE},
        {"type": "ref/resource"},  # no uri
        {"type": "ref/resource", "uri": 5},
        {"type": "ref/resource", "name": TEMPLATE},
        {"type": "ref/prompt"},  # no name
        {"type": "ref/prompt", "name": ["fx__p"]},
        {"type": "ref/prompt", "uri": TEMPLATE},
        "ref/resource",
        None,
    ],
)
def test_az1_a_completion_ref_not_exactly_of_the_spec_is_refused(ref: Any) -> None:
    """AZ-1: the policy target and the router read the ref the same way; a ref whose type is
    not exactly ``ref/resource`` or ``ref/prompt``, or that lacks its uri/name, is refused
    -32602 rather than left without a target (which a method-wide allow let through to the
    upstream past a deny on the resource)."""
    with pytest.raises(InvalidParams) as refused:
        target_of("completion/complete", {"ref": ref, "argument": ARGUMENT})
    assert refused.value.code == -32602


def test_az1_a_completion_ref_of_the_spec_names_its_target() -> None:
    resource = {"ref": {"type": "ref/resource", "uri": TEMPLATE}, "argument": ARGUMENT}
    prompt = {"ref": {"type": "ref/prompt", "name": "fx__p", "title": "P"}, "argument": ARGUMENT}
    assert target_of("completion/complete", resource) == Target("resource", TEMPLATE)
    assert target_of("completion/complete", prompt) == Target("prompt", "fx__p")
    no_ref: dict[str, Any] = {"argument": ARGUMENT}
    with pytest.raises(InvalidParams):
        target_of("completion/complete", no_ref)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/call", {"arguments": {}}),
        ("tools/call", {"name": 5}),
        ("prompts/get", {}),
        ("prompts/get", {"name": None}),
        ("resources/read", {"uri": {"uri": "x://a"}}),
        ("resources/subscribe", {"uri": 1}),
        ("resources/unsubscribe", {}),
    ],
)
def test_in1_a_target_name_missing_or_not_a_string_is_refused_as_invalid_params(
    method: str, params: dict[str, Any]
) -> None:
    """IN-1, AZ-1: the other methods never go without a target (the gap a completion ref
    had): a name or URI missing or of another JSON type is refused -32602 before any policy
    (it was decided as the empty name and answered -32003 Denied by policy, as if the
    request were well formed)."""
    with pytest.raises(InvalidParams) as refused:
        target_of(method, params)
    assert refused.value.code == -32602


@pytest.mark.parametrize("method", ["tools/call", "prompts/get", "resources/read"])
def test_az1_an_empty_name_is_an_invalid_name_whatever_a_method_wide_allow_says(
    method: str,
) -> None:
    field = "uri" if method == "resources/read" else "name"
    target = target_of(method, {field: ""})
    assert target is not None and target.name == ""
    everything = policy([{"id": "all", "effect": "allow", "principals": ["*"], "methods": ["**"]}])
    assert everything.decide(request(method, kind=target.kind, name="")).rule_id == INVALID_NAME
