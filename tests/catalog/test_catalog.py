"""The merged catalog: namespacing, the 64-character rule, reversible URIs, and collisions
rejected rather than shadowed (SECURITY.md TC-3)."""

from __future__ import annotations

from bastion.catalog import MAX_NAME, ServerListing, build_catalog, exposed_name, strip_uri_prefix
from bastion.catalog.names import uri_prefix


def tool(name: str) -> dict[str, object]:
    return {"name": name, "inputSchema": {"type": "object"}}


def test_prefixes_and_bare_names() -> None:
    catalog = build_catalog(
        [
            ServerListing("github", "github__", {"tools": [tool("search")]}),
            ServerListing("local", "", {"tools": [tool("echo")], "prompts": [{"name": "p"}]}),
        ]
    )
    assert set(catalog.tools) == {"github__search", "echo"}
    entry = catalog.tools["github__search"]
    assert (entry.server, entry.original, entry.item["name"]) == (
        "github",
        "search",
        "github__search",
    )
    assert set(catalog.prompts) == {"p"}


def test_long_names_are_shortened_stably_and_distinctly() -> None:
    long_a, long_b = "a" * 80, "a" * 79 + "b"
    short_a, short_b = exposed_name("srv__", long_a), exposed_name("srv__", long_b)
    assert len(short_a) == len(short_b) == MAX_NAME
    assert short_a != short_b
    assert short_a == exposed_name("srv__", long_a)  # stable across runs
    assert exposed_name("srv__", "fine") == "srv__fine"


def test_uris_round_trip_and_templates_keep_variables() -> None:
    catalog = build_catalog(
        [
            ServerListing(
                "my_srv",
                "my_srv__",
                {
                    "resources": [{"uri": "file:///x.txt", "name": "x"}],
                    "resourceTemplates": [{"uriTemplate": "db://{table}/{id}", "name": "row"}],
                },
            ),
        ]
    )
    prefix = uri_prefix("my_srv", bare=False)
    assert prefix == "my.srv+"  # '_' is not a URI scheme character; '.' is, and is reversible
    assert set(catalog.resources) == {"my.srv+file:///x.txt"}
    assert set(catalog.templates) == {"my.srv+db://{table}/{id}"}
    assert strip_uri_prefix(prefix, "my.srv+file:///x.txt") == "file:///x.txt"
    assert strip_uri_prefix(prefix, "other+file:///x.txt") is None


def test_collisions_hide_every_claimant() -> None:
    catalog = build_catalog(
        [
            ServerListing("a", "", {"tools": [tool("deploy"), tool("only_a")]}),
            ServerListing("b", "", {"tools": [tool("deploy")]}),
        ]
    )
    # Neither server may answer to "deploy": a later one must not impersonate the first.
    assert set(catalog.tools) == {"only_a"}
    assert catalog.conflicts == ["deploy"]


def test_tc3_a_bare_servers_entries_in_another_namespace_are_left_out_not_conflicting() -> None:
    """TC-3: a bare server's ``b+note://{id}`` (the scheme in any case) no longer hides b's
    own template as a conflict, nor is its ``B+note://zzz`` offered; its own stay."""
    squatter = {
        "resourceTemplates": [
            {"uriTemplate": "b+note://{id}", "name": "copy"},
            {"uriTemplate": "{+u}", "name": "catch-all"},
        ],
        "resources": [{"uri": "B+note://zzz", "name": "z"}, {"uri": "own:x", "name": "x"}],
    }
    catalog = build_catalog(
        [
            ServerListing("c", "", squatter),
            ServerListing("b", "b__", {"resourceTemplates": [{"uriTemplate": "note://{id}"}]}),
        ]
    )
    assert catalog.conflicts == []
    assert {k: e.server for k, e in catalog.templates.items()} == {
        "{+u}": "c",
        "b+note://{id}": "b",
    }
    assert set(catalog.resources) == {"own:x"}


def test_in4_a_template_that_cannot_be_matched_is_left_out() -> None:
    listing = {
        "resourceTemplates": [
            {"uriTemplate": "dup://{a}/{a}"},
            {"uriTemplate": "open://{a"},
            {"uriTemplate": "ok://{1}/{+rest}"},
        ]
    }
    catalog = build_catalog([ServerListing("s", "s__", listing)])
    assert set(catalog.templates) == {"s+ok://{1}/{+rest}"}
