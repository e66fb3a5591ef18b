"""Principal globs that can match no principal id (AZ-1, ``policy.principal_ids``): a policy
naming ``bob`` where the gateway says ``apikey:bob`` loads, with a warning for each."""

from __future__ import annotations

import logging

import pytest

from bastion.policy import parse_policy
from bastion.policy.principal_ids import can_match_an_id, unmatchable, warn_unmatchable

NEVER = """\
roles: {admin: {}}
principals:
  - {principal: alice, roles: [admin]}
  - {principal: "apikey:ci-*", roles: [admin]}
  - {principal: "ci-*", roles: [admin]}
rules:
  - {id: a, effect: deny, principals: [bob, "*"], tools: [x]}
  - {id: b, effect: allow, principals: ["jwt:https://idp.example#*", "mtls:svc"], tools: [x]}
"""


@pytest.mark.parametrize(
    ("glob", "matches"),
    [
        ("apikey:bob", True),
        ("jwt:https://idp.example/realms/eng#alice", True),
        ("mtls:ci-*", True),
        ("local:*", True),
        ("*", True),
        ("*:bob", True),
        ("?pikey:bob", True),
        ("api*", True),
        ("bob", False),
        ("alice", False),
        ("ci-*", False),
        ("apikey", False),
        ("key:*", False),
    ],
)
def test_az1_a_glob_matches_an_id_only_through_a_known_prefix(glob: str, matches: bool) -> None:
    assert can_match_an_id(glob) is matches


def test_az1_each_principal_glob_that_matches_no_id_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = parse_policy(NEVER, source="policy.yaml")
    expected = [
        "principals[0].principal 'alice'",
        "principals[2].principal 'ci-*'",
        "rules[0].principals[0] 'bob'",
    ]
    assert unmatchable(source) == expected
    with caplog.at_level(logging.WARNING, logger="bastion.policy.principal_ids"):
        assert warn_unmatchable(source, "policy.yaml") == expected
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 3
    assert warned[2].startswith("policy.yaml: rules[0].principals[0] 'bob' can never match")
    assert "apikey:<key name>" in warned[2]
