"""The OpenAPI document describes exactly the router's routes, and the live API keeps to it:
schemathesis generates requests from the document and checks every answer against it,
as an admin and as an anonymous caller (no 5xx, documented statuses, headers and schemas)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jsonschema
import msgspec
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi import checks as oa

from bastion.admin import OPENAPI, ROUTES
from bastion.auth.keys import KeyStore, KeyStoreError
from tests.admin.support import ADMIN, Admin, serve_in_thread
from tests.admin.test_keys_approvals import PROMPT, RUG_PULL, SEARCH

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    oa.status_code_conformance,
    oa.content_type_conformance,
    oa.response_headers_conformance,
    oa.response_schema_conformance,
]
MAX_EXAMPLES = 50


def test_every_route_is_documented_and_nothing_else() -> None:
    documented = {
        (method.upper(), path, op["operationId"])
        for path, item in OPENAPI["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }
    routed = {(r.method, r.path, r.operation) for r in ROUTES}
    assert documented == routed


NAMES = ["a", "a b", "ci-bot", "bot@example.com", "team:ci", "_x", "-x", "x" * 64, "x" * 65,
         "é", "a/b", "a.b_c-d"]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_a_key_name_or_role_is_valid_to_the_document_as_to_the_store_AU5(
    name: str, tmp_path: Path
) -> None:
    """The document's KeyCreate said a name may hold spaces and 128 characters while the
    store takes 64 without spaces: a client keeping to the schema was refused (400)."""
    create = OPENAPI["components"]["schemas"]["KeyCreate"]["properties"]
    documented = [create["name"], create["roles"]["items"]]
    store = KeyStore(tmp_path / "keys.db")
    try:
        store.create(name, ["dev"])
        store.create("role-probe", [name])
        taken = True
    except KeyStoreError:
        taken = False
    finally:
        store.close()
    for schema in documented:
        assert _valid(schema, name) is taken


def _valid(schema: dict[str, object], value: str) -> bool:
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


def test_only_the_document_itself_is_public() -> None:
    public = {
        op["operationId"]
        for item in OPENAPI["paths"].values()
        for op in item.values()
        if op.get("security") == []
    }
    assert public == {r.operation for r in ROUTES if r.access == "public"} == {"openapi"}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    """With a held tool and a held prompt, so the listed approvals are not all empty."""
    with Admin(tmp_path_factory.mktemp("fuzz")) as admin:
        admin.hold_changed_tool("github", SEARCH, RUG_PULL)
        admin.hold_definition("ev", "prompts", PROMPT)
        yield admin


@pytest.fixture(scope="module")
def live(fuzzed: Admin) -> Iterator[str]:
    with serve_in_thread(fuzzed.app()) as url:
        yield url


@pytest.fixture(scope="module")
def schema(live: str) -> schemathesis.BaseSchema:
    loaded = schemathesis.openapi.from_url(f"{live}/api/v1/openapi.json")
    loaded.config.update(base_url=live)
    return loaded


OPERATIONS = sorted(f"{r.method} {r.path}" for r in ROUTES)


def _fuzz(
    schema: schemathesis.BaseSchema,
    live: str,
    label: str,
    headers: dict[str, str],
    mode: schemathesis.GenerationMode = schemathesis.GenerationMode.POSITIVE,
) -> None:
    method, path = label.split(" ")
    operation = schema[path][method]
    session = requests.Session()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
        case.call_and_validate(base_url=live, session=session, headers=headers, checks=CHECKS)

    run()


def _still_admin(live: str, fuzzed: Admin) -> None:
    """The admin's key is a real one in the fuzzed key store: had the fuzzer revoked or
    rotated it (by its name), the rest would be an anonymous fuzz."""
    keys = requests.get(f"{live}/api/v1/keys", headers=fuzzed.auth(ADMIN), timeout=10)
    assert keys.status_code == 200


@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzz_as_admin(
    schema: schemathesis.BaseSchema, live: str, fuzzed: Admin, label: str
) -> None:
    _fuzz(schema, live, label, fuzzed.auth(ADMIN))
    _still_admin(live, fuzzed)


# Invalid data (wrong types, out-of-range numbers, malformed ids and bodies) from an admin:
# always a documented 4xx, never a 5xx. Operations without inputs have no invalid form.
WITH_INPUT = sorted(f"{r.method} {r.path}" for r in ROUTES if "{" in r.path or r.body != "none")


@pytest.mark.parametrize("label", [*WITH_INPUT, "GET /api/v1/audit"])
def test_fuzz_invalid_data_as_admin(
    schema: schemathesis.BaseSchema, live: str, fuzzed: Admin, label: str
) -> None:
    _fuzz(schema, live, label, fuzzed.auth(ADMIN), schemathesis.GenerationMode.NEGATIVE)
    _still_admin(live, fuzzed)


@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzz_as_anonymous(schema: schemathesis.BaseSchema, live: str, label: str) -> None:
    _fuzz(schema, live, label, {})


def test_every_kind_of_approval_keeps_to_the_document(live: str, fuzzed: Admin) -> None:
    """A held tool and a held prompt (TC-1) are listed as the Approval schema says."""
    listed = requests.get(f"{live}/api/v1/approvals", headers=fuzzed.auth(ADMIN), timeout=10)
    approvals = listed.json()["approvals"]
    assert {a["kind"] for a in approvals} >= {"tool", "prompt"}
    schema = {**OPENAPI["components"]["schemas"]["Approval"], "components": OPENAPI["components"]}
    for approval in approvals:
        jsonschema.validate(approval, schema)


def test_served_document_is_the_module_data(live: str) -> None:
    served = requests.get(f"{live}/api/v1/openapi.json", timeout=10)
    assert served.headers["content-type"] == "application/json"
    assert msgspec.json.decode(served.content) == OPENAPI
