"""An upstream's result loses its era's envelope and its server identity at the gateway."""

from __future__ import annotations

from bastion.protocol.versions import META_SERVER_INFO
from bastion.upstream.results import strip_era_fields


def test_the_envelope_fields_and_the_server_identity_stay_behind() -> None:
    result = {
        "content": [{"type": "text", "text": "hi"}],
        "resultType": "complete",
        "ttlMs": 1000,
        "cacheScope": "public",
        "_meta": {META_SERVER_INFO: {"name": "upstream", "version": "1"}, "trace": "t-1"},
    }
    assert strip_era_fields(result) == {
        "content": [{"type": "text", "text": "hi"}],
        "_meta": {"trace": "t-1"},
    }


def test_a_meta_holding_only_the_identity_goes_whole() -> None:
    result = {"tools": [], "_meta": {META_SERVER_INFO: {"name": "upstream", "version": "1"}}}
    assert strip_era_fields(result) == {"tools": []}


def test_a_result_without_them_is_unchanged() -> None:
    result = {"content": [], "_meta": {"progressToken": 3}}
    assert strip_era_fields(dict(result)) == result
