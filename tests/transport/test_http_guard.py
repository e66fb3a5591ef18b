"""The request guards' defaults (``http_guard``): TR-1 asks for an exact list of
``scheme://host[:port]`` origins; by default only the loopback names of our own port."""

from __future__ import annotations

import pytest

from bastion.transport.http_guard import default_allowed_origins, origin_allowed

PORT = 8931


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "[::1]"])
def test_tr1_default_origins_are_the_loopback_names_of_our_port(scheme: str, name: str) -> None:
    allowed = default_allowed_origins(PORT)
    assert origin_allowed(f"{scheme}://{name}:{PORT}", allowed)
    assert origin_allowed(f"{scheme.upper()}://{name.upper()}:{PORT}", allowed)


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "[::1]"])
def test_tr1_a_page_on_another_local_port_is_not_allowed(scheme: str, name: str) -> None:
    """A page served on port 80 or 443 of this machine (no port in its origin) is another
    origin than the gateway's: it may not drive it by default."""
    allowed = default_allowed_origins(PORT)
    for port in ("", ":80", ":443", f":{PORT + 1}"):
        assert not origin_allowed(f"{scheme}://{name}{port}", allowed), port


def test_tr1_configured_origins_are_added_exactly() -> None:
    allowed = default_allowed_origins(PORT, ("https://App.Example.com/",))
    assert origin_allowed("https://app.example.com", allowed)
    assert not origin_allowed("https://app.example.com:8443", allowed)
    assert not origin_allowed("http://app.example.com", allowed)
    assert origin_allowed(f"http://localhost:{PORT}", allowed)  # the defaults stay
    assert origin_allowed(None, allowed)  # no Origin: not a browser, nothing to rebind


def test_tr1_on_a_default_port_the_origin_without_port_is_ours() -> None:
    """Browsers leave the scheme's default port out of ``Origin``: on port 80, the page
    ``http://localhost`` is the gateway's own origin (and ``https://localhost`` is not)."""
    assert origin_allowed("http://localhost", default_allowed_origins(80))
    assert not origin_allowed("https://localhost", default_allowed_origins(80))
    assert origin_allowed("https://127.0.0.1", default_allowed_origins(443))
    assert not origin_allowed("http://127.0.0.1", default_allowed_origins(443))
