"""Resource URIs a policy decides on (AZ-3, IN-4, ``policy.uri_form``): one normal form, or
refused as ``invalid-name`` before any rule; a deny holds with the query and fragment too."""

from __future__ import annotations

import pytest

from bastion.policy import DEFAULT_DENY, INVALID_NAME
from tests.policy.helpers import policy, request

EVERYTHING = {"id": "all", "effect": "allow", "principals": ["*"], "resources": ["**"]}


@pytest.mark.parametrize(
    "uri",
    [
        "files+file://localhost/srv/docs/.env",  # the same file as files+file:///srv/docs/.env
        "files+file://LOCALHOST/srv/docs/.env",
        "files+file://Localhost/srv/docs/readme.txt",
        "FILES+file:///srv/docs/.env",  # scheme case
        "files+FILE:///srv/docs/.env",
        "files+File:///srv/docs/.env",
        "files+note://Hello",  # host case
        "files+https://EXAMPLE.com/x",
        "files+https://user@example.com/x",  # user info
        "files+https://user:pw@example.com/x",
        "files+https://@example.com/x",
        "files+https://example.com:443/x",  # default port
        "files+http://example.com:80/x",
        "files+wss://example.com:443/x",
        "files+https://example.com:/x",  # empty port
        "files+https://example.com:0443/x",  # leading zero
        "files+https://example.com./x",  # trailing dot
    ],
)
def test_az3_in4_a_uri_in_another_spelling_is_refused_before_any_rule(uri: str) -> None:
    """AZ-3, IN-4: ``file://localhost/x``, ``FILE:///x``, ``https://u@h:443/x`` name what
    the normal spelling names to an upstream, past a deny written in that spelling; such a
    URI is refused as ``invalid-name``, whatever the rules allow."""
    decision = policy([EVERYTHING]).decide(request("resources/read", kind="resource", name=uri))
    assert decision.rule_id == INVALID_NAME, uri
    assert not decision.allowed


@pytest.mark.parametrize(
    "uri",
    [
        "files+file:///srv/docs/readme.txt",
        "files+note://hello",
        "files+https://example.com:8443/x",
        "files+http://example.com:443/x",  # not http's default port
        "files+https://[::1]:8443/x",
        "note://a:b/lure?x=1",  # an authority that is not host:port is left alone
        "fx+test://template/{id}/data",
        "ws+x://{Host}/a",  # a template expression in the authority
        "fk+mailto:A@example.com",  # no authority: no host to lower
        "files+note://hello?Q=A#Frag",  # query and fragment are case-sensitive
        "bastion-hub://instances/abc",
    ],
)
def test_az3_a_uri_in_normal_form_is_decided_by_the_rules(uri: str) -> None:
    decision = policy([EVERYTHING]).decide(request("resources/read", kind="resource", name=uri))
    assert decision.rule_id == "all", decision.explanation


SECRETS = [
    {"id": "read-files", "effect": "allow", "roles": ["viewer"], "resources": ["file:///**"]},
    {
        "id": "no-secrets",
        "effect": "deny",
        "principals": ["*"],
        "resources": ["file:///**/.env", "file:///**/.ssh/**"],
    },
]


@pytest.mark.parametrize(
    "uri",
    [
        "file:///srv/app/.env?x",
        "file:///srv/app/.env?",
        "file:///srv/app/.env#",
        "file:///srv/app/.env#x",
        "file:///srv/app/.env?a=1#b",
        "file:///home/u/.ssh/id_rsa?raw",
    ],
)
def test_az3_in4_a_deny_holds_for_the_uri_with_a_query_or_fragment(uri: str) -> None:
    """AZ-3, IN-4: an upstream that reads ``file:///srv/app/.env?x`` reads ``.env``; a deny
    glob matches the URI as sent or without its query and fragment, in ``decide``,
    ``explain`` and list filtering alike."""
    engine = policy(SECRETS)
    asked = request("resources/read", roles=("viewer",), kind="resource", name=uri)
    assert engine.decide(asked).rule_id == "no-secrets"
    decision, traces = engine.explain(asked)
    assert decision.rule_id == "no-secrets"
    assert [t.rule_id for t in traces if t.applies] == ["read-files", "no-secrets"]
    listed = engine.filter_list(asked, "resource", [uri, "file:///srv/app/a.txt?x"], str)
    assert listed == ["file:///srv/app/a.txt?x"]


def test_az3_an_allow_must_match_the_whole_uri() -> None:
    """Stripping the query widens denies only: an allow on ``*.txt`` does not allow
    ``a.txt?x`` (the query is part of what the upstream is asked)."""
    allow = {"id": "txt", "effect": "allow", "roles": ["viewer"], "resources": ["file:///d/*.txt"]}
    engine = policy([allow])
    for uri, rule_id in (("file:///d/a.txt", "txt"), ("file:///d/a.txt?x", DEFAULT_DENY)):
        asked = request("resources/read", roles=("viewer",), kind="resource", name=uri)
        assert engine.decide(asked).rule_id == rule_id
