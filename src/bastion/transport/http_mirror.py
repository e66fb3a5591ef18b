"""2026-07-28 request checks on the Streamable HTTP face, in the order the spec's error
codes require: ``_meta`` complete (-32602), ``MCP-Protocol-Version`` equal to it (-32020),
a version we speak (-32022), ``Mcp-Method``/``Mcp-Name`` mirroring the body (-32020).
Policy must read the validated body, never these headers (SECURITY.md TR-12)."""

from __future__ import annotations

from bastion.errors import HeaderMismatch
from bastion.protocol.jsonrpc import Request
from bastion.protocol.meta import read_request_meta, require_supported
from bastion.protocol.methods import CLIENT_METHODS
from bastion.transport._http_asgi import Headers

__all__ = ["validate_modern"]


def validate_modern(message: Request, headers: Headers, header_version: str | None) -> None:
    """2026-07-28 checks, in the order the spec's error codes require.

    Raises:
        InvalidParams: ``_meta`` lacks the version or the capabilities (-32602).
        HeaderMismatch: a mirror header disagrees with the body or is missing (-32020).
        UnsupportedVersion: the version is not one we speak (-32022).
    """
    meta = read_request_meta(message.params or None)
    if header_version != meta.protocol_version:
        raise HeaderMismatch(
            "protocol version header/body",
            message=("Header mismatch: MCP-Protocol-Version must match _meta protocolVersion"),
        )
    require_supported(meta.protocol_version)
    if headers.get("mcp-method") != message.method:
        raise HeaderMismatch(
            "method header/body",
            message=("Header mismatch: Mcp-Method must match the body's method"),
        )
    spec = CLIENT_METHODS.get(message.method)
    if spec is not None and spec.name_field is not None:
        target = (message.params or {}).get(spec.name_field)
        name = headers.get("mcp-name")
        if name is None or name.strip(" \t") != target:
            raise HeaderMismatch(
                "name header/body",
                message=("Header mismatch: Mcp-Name must match the body's target name"),
            )
