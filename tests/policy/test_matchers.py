"""Globs and conditions, one matcher at a time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.policy.glob import GlobSet, _Matcher, compile_glob, literal_prefix
from bastion.policy.spellings import allow_spellings, deny_spellings
from tests.policy.helpers import MONDAY_NOON, policy, request


@pytest.mark.parametrize(
    ("glob", "text", "matches"),
    [
        ("github__*", "github__get_issue", True),
        ("github__*", "GitHub__get_issue", False),
        ("github__*", "github_get", False),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("file:///srv/*", "file:///srv/a", True),
        ("file:///srv/*", "file:///srv/a/b", False),
        ("file:///srv/**", "file:///srv/a/b", True),
        ("file:///**/.env", "file:///.env", True),
        ("file:///**/.env", "file:///a/b/.env", True),
        ("file:///**/.env", "file:///a/b/x.env", False),
        ("a.b", "aXb", False),  # '.' is literal, not a regex dot
        ("a[b]", "a[b]", True),  # no character classes
        ("a[b]", "ab", False),
        ("tools/*", "tools/call", True),
        ("tools/*", "tools/call/x", False),
        ("x", "x\n", False),
    ],
)
def test_glob(glob: str, text: str, matches: bool) -> None:
    assert compile_glob(glob).fullmatch(text) is matches
    assert (text in GlobSet([glob])) is matches


def test_globset_mixes_literals_and_wildcards_and_refuses_non_strings() -> None:
    globs = GlobSet(["a", "b*"])
    assert "a" in globs and "bc" in globs and "c" not in globs
    assert 1 not in globs and None not in globs


def test_literal_prefix() -> None:
    assert literal_prefix("github__get_*") == "github__get_"
    assert literal_prefix("exact") == "exact"
    assert literal_prefix("*x") == ""


def _when(args: dict[str, object]) -> list[dict[str, object]]:
    return [
        {
            "id": "r",
            "effect": "allow",
            "roles": ["developer"],
            "tools": ["srv__tool"],
            "when": {"args": args},
        }
    ]


@pytest.mark.parametrize(
    ("test", "value", "holds"),
    [
        ({"glob": "/ws/**"}, "/ws/a/b", True),
        ({"glob": "/ws/**"}, "/etc/passwd", False),
        ({"glob": "/ws/**"}, 5, False),
        ({"equals": "r"}, "r", True),
        ({"equals": "r"}, "R", False),
        ({"equals": 1}, True, False),  # True is not 1
        ({"equals": True}, 1, False),
        ({"equals": 1}, 1.0, True),
        ({"equals": None}, None, True),
        ({"equals": None}, "", False),
        ({"in": ["a", "b"]}, "b", True),
        ({"in": ["a", "b"]}, "c", False),
        ({"in": [1, 2]}, True, False),
        ({"le": 10}, 10, True),
        ({"le": 10}, 10.5, False),
        ({"lt": 10}, 10, False),
        ({"ge": 1, "le": 3}, 2, True),
        ({"ge": 1, "le": 3}, 4, False),
        ({"gt": 0}, 0, False),
        ({"le": 10}, "5", False),  # strings are not numbers
        ({"le": 10}, True, False),  # nor are booleans
        ({"glob": "a*", "in": ["ab", "ac"]}, "ab", True),  # every test must hold
        ({"glob": "a*", "in": ["ab", "ac"]}, "ad", False),
    ],
)
def test_argument_condition(test: dict[str, object], value: object, holds: bool) -> None:
    engine = policy(_when({"x": test}))
    assert engine.decide(request(arguments={"x": value})).allowed is holds


def test_missing_argument_fails_and_dotted_paths_reach_nested_values() -> None:
    engine = policy(_when({"opts.mode": {"equals": "ro"}}))
    assert engine.decide(request(arguments={"opts": {"mode": "ro"}})).allowed
    assert not engine.decide(request(arguments={"opts": {}})).allowed
    assert not engine.decide(request(arguments={"opts": "ro"})).allowed
    _, traces = engine.explain(request(arguments={}))
    assert traces[0].reason == "args.opts.mode is missing"


def _time_rule(time: dict[str, object]) -> list[dict[str, object]]:
    return [
        {
            "id": "t",
            "effect": "allow",
            "roles": ["developer"],
            "tools": ["*"],
            "when": {"time": time},
        }
    ]


@pytest.mark.parametrize(
    ("time", "day_offset", "hour", "holds"),
    [
        ({"weekdays": ["mon", "tue"]}, 0, 12, True),  # Monday
        ({"weekdays": ["mon", "tue"]}, 5, 12, False),  # Saturday
        ({"hours": [9, 17]}, 0, 9, True),
        ({"hours": [9, 17]}, 0, 17, False),  # the end hour is excluded
        ({"hours": [22, 6]}, 0, 23, True),  # wraps past midnight
        ({"hours": [22, 6]}, 0, 3, True),
        ({"hours": [22, 6]}, 0, 12, False),
        ({"hours": [0, 24]}, 0, 23, True),
        ({"weekdays": ["sat"], "hours": [9, 17]}, 5, 8, False),
    ],
)
def test_time_condition(time: dict[str, object], day_offset: int, hour: int, holds: bool) -> None:
    at = MONDAY_NOON.replace(day=MONDAY_NOON.day + day_offset, hour=hour)
    assert policy(_time_rule(time)).decide(request(at=at)).allowed is holds


def test_time_failure_is_explained() -> None:
    at = MONDAY_NOON.replace(hour=20)
    _, traces = policy(_time_rule({"hours": [9, 17]})).explain(request(at=at))
    assert traces[0].reason == "time: 20:00 UTC is outside hours [9, 17)"


def _deny_secret(test: dict[str, object]) -> list[dict[str, object]]:
    allow = {"id": "all", "effect": "allow", "roles": ["developer"], "tools": ["srv__tool"]}
    deny = {
        "id": "no",
        "effect": "deny",
        "roles": ["developer"],
        "tools": ["srv__tool"],
        "when": {"args": {"path": test}},
    }
    return [allow, deny]


@pytest.mark.parametrize(
    "path",
    [
        "./secret/key",
        "secret//key",
        "secret/./key",
        "pub/../secret/key",
        "secret/key/",
        "secret\\key",
        ".\\secret\\key",
    ],
)
@pytest.mark.parametrize(
    "test", [{"glob": "secret/*"}, {"equals": "secret/key"}, {"in": ["secret/key"]}]
)
def test_az1_a_deny_holds_for_every_spelling_of_a_path(path: str, test: dict[str, object]) -> None:
    """AZ-1, IN-4: an upstream may read ``./secret/key`` as ``secret/key``; a deny on the
    plain spelling denies the others too."""
    engine = policy(_deny_secret(test))
    decision = engine.decide(request(arguments={"path": path}))
    assert (decision.effect, decision.rule_id) == ("deny", "no")
    assert engine.decide(request(arguments={"path": "pub/key"})).allowed


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("pub/a", True),
        ("pub/./a", True),  # every spelling is under pub/
        ("pub//a", True),
        ("pub/../secret/key", False),  # as sent it is under pub/, as read it is not
        ("pub/a/../../secret", False),
        ("pub\\..\\..\\secret", False),  # a backslash server reads ../secret
        ("./pub/a", False),  # as sent it is not under pub/ (allows are strict)
    ],
)
def test_az1_an_allow_holds_only_when_every_spelling_passes(value: str, allowed: bool) -> None:
    engine = policy(_when({"path": {"glob": "pub/**"}}))
    assert engine.decide(request(arguments={"path": value})).allowed is allowed


def test_urls_keep_their_scheme_and_authority_and_only_their_path_is_normalised() -> None:
    engine = policy(_when({"url": {"glob": "https://example.com/pub/**"}}))
    for url, allowed in (
        ("https://example.com/pub/a", True),
        ("https://example.com/pub/a?next=../x", True),  # the query is not a path
        ("https://example.com/pub/../admin", False),
    ):
        assert engine.decide(request(arguments={"url": url})).allowed is allowed, url


def test_plain_values_have_one_spelling() -> None:
    for plain in ("release", "v1", "a b"):
        assert allow_spellings(plain) == deny_spellings(plain) == (plain,)
    assert allow_spellings("./a//b/../c/") == ("./a//b/../c/", "a/c/")
    assert deny_spellings("./a//b/../c/") == ("./a//b/../c/", "a/c/", "a/c")
    assert allow_spellings("/a/../../b") == ("/a/../../b", "/b")


@pytest.mark.parametrize(
    "value",
    [
        "x://y/../../secret/key.txt",  # a file server reads a URL-looking path as a path
        "s3://b/../../secret/key.txt",
        "../root/secret/key.txt",  # out of the server's root and back in
        "../../a/root/secret/key.txt",
        "secret/%6Bey.txt",  # an escape a server may decode
        "pub/%2e%2e/secret/key.txt",
    ],
)
def test_az1_a_deny_reads_what_a_file_server_may_read(value: str) -> None:
    """Red-team R1: a server that resolves ``BASE/value`` reads these as ``secret/...``."""
    assert any(compile_glob("secret/**").fullmatch(v) for v in deny_spellings(value)), value


@pytest.mark.parametrize(
    "url",
    [
        "https://INTERNAL.example/admin/x",
        "HTTPS://internal.example/admin/x",
        "https://internal.example./admin/x",
        "https://internal.example:443/admin/x",
        "https://u@internal.example/admin/x",
        "https://u:p@internal.example/admin/x",
        "https://internal.example/pub/%2e%2e/admin/x",
        "https://internal.example/%61dmin/x",
        "https://internal.example/pub/../admin/x",
        "https://internal.example/admin/x/",
    ],
)
def test_az1_a_deny_on_a_url_holds_for_its_other_spellings(url: str) -> None:
    """Red-team R1: a URL parser reads every one of these as internal.example /admin/x."""
    rules = [
        {"id": "all", "effect": "allow", "roles": ["developer"], "tools": ["srv__tool"]},
        {
            "id": "no",
            "effect": "deny",
            "roles": ["developer"],
            "tools": ["srv__tool"],
            "when": {"args": {"url": {"glob": "https://internal.example/admin/**"}}},
        },
    ]
    engine = policy(rules)
    decision = engine.decide(request(arguments={"url": url}))
    assert (decision.effect, decision.rule_id) == ("deny", "no"), url
    assert engine.decide(request(arguments={"url": "https://internal.example/pub/x"})).allowed


def test_an_allow_on_an_exact_value_keeps_its_trailing_slash_and_escapes() -> None:
    """An allow must pass every reading, so readings must not invent differences: a
    trailing slash is kept, and a URL's query escapes are not decoded."""
    for value in ("https://api.example.com/v1/items/", "https://x.example/s?q=a%20b", "dir/"):
        engine = policy(_when({"x": {"equals": value}}))
        assert engine.decide(request(arguments={"x": value})).allowed, value


@pytest.mark.timeout(20)
def test_ds4_a_glob_matches_in_linear_time_whatever_the_text() -> None:
    """DS-4 (red-team H2): on a backtracking engine a plausible deny glob made one call cost
    quadratic time in its argument (``"secret/" * 30000``: 15 s with the event loop
    stopped) and a name glob with many ``*`` exponential time. Each of these now answers
    at once (the timeout only stops the test if that ever regresses)."""
    deny = [
        {"id": "all", "effect": "allow", "roles": ["developer"], "tools": ["srv__*"]},
        {
            "id": "no-keys",
            "effect": "deny",
            "roles": ["developer"],
            "tools": ["srv__*"],
            "when": {"args": {"text": {"glob": "**/secret/**/*.pem"}}},
        },
    ]
    engine = policy(deny)
    for text, denied in (("secret/" * 200_000, False), ("a/secret/b/" * 50_000 + "x.pem", True)):
        decision = engine.decide(request(name="srv__tool", arguments={"text": text}))
        assert decision.allowed is not denied
    many = compile_glob("*_*_*_*_*_*_*_*_*_*_x")
    assert many.fullmatch("a_" * 63 + "b") is False
    assert many.fullmatch("a_" * 10 + "x") is True
    names = GlobSet(["*_*_*_*_*_*_*_*_*_*_x", "other"])
    assert "a_" * 63 + "b" not in names


@settings(max_examples=300, deadline=None)
@given(
    glob=st.text(alphabet="ab/.*?-", max_size=12),
    text=st.text(alphabet="ab/.-\n\u00e9", max_size=24),
)
def test_short_and_long_texts_are_matched_alike(glob: str, text: str) -> None:
    """A text is matched by ``re`` or by RE2 depending on its length (``MAX_BACKTRACK``);
    both must give the same answer for every glob and text."""
    matcher = _Matcher([glob])
    by_re = matcher._re.fullmatch(text) is not None
    by_re2 = matcher.fullmatch_linear(text)
    assert by_re is by_re2


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab/.\\%2eE:?#@A", max_size=30))
def test_readings_start_with_the_value_and_a_deny_reads_more_than_an_allow(value: str) -> None:
    """Whatever the text: the value as sent is its first reading, an allow's readings are
    among a deny's (so a value an allow accepts in every reading is one a deny on the same
    test also catches), and reading never fails."""
    allow, deny = allow_spellings(value), deny_spellings(value)
    assert allow[0] == deny[0] == value
    assert set(allow) <= set(deny)
