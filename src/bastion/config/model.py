"""The configuration tree: frozen msgspec Structs that refuse unknown fields.

Types, ranges and name patterns live in the annotations (checked when msgspec converts);
``ServerConfig.__post_init__`` checks what spans fields (and header names and values), on every
construction. Build a
``Config`` with ``load_config``/``parse_config``, which add paths to the messages.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Final, Literal, TypeAlias, get_args
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from bastion._types import JSONValue
from bastion.auth.settings import AuthSettings
from bastion.client.listing import ListingLimits
from bastion.guard.settings import GuardSettings
from bastion.limits.settings import LimitSettings
from bastion.transport.settings import HttpLimits, SessionSettings

__all__ = [
    "DOMAIN_PATTERN",
    "MAX_REPLICAS",
    "MAX_TIMEOUT",
    "PREFIX_PATTERN",
    "SEPARATOR_PATTERN",
    "SERVER_NAME_PATTERN",
    "TRANSPORT_TYPES",
    "AuditSettings",
    "Config",
    "FieldProblem",
    "GatewaySettings",
    "HttpLimits",
    "ListingLimits",
    "PolicySettings",
    "ServerConfig",
    "SessionSettings",
    "TlsSettings",
    "TransportType",
    "UpstreamSandbox",
]

SERVER_NAME_PATTERN: Final = "^[A-Za-z0-9_-]{1,64}$"
PREFIX_PATTERN: Final = "^[A-Za-z0-9_.-]{0,64}$"
# Tool names are "<prefix><name>"; the characters are the ones MCP allows in a tool name.
SEPARATOR_PATTERN: Final = "^[A-Za-z0-9_.-]{1,16}$"
# A host name or a "*." suffix pattern, optionally with a port (the sandbox's egress list).
DOMAIN_PATTERN: Final = r"^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?$"
MAX_REPLICAS: Final = 16
# One hour bounds every configured wait: a longer one is a mistake, not a slow server.
MAX_TIMEOUT: Final = 3600.0

TransportType: TypeAlias = Literal["stdio", "http", "streamable-http"]
TRANSPORT_TYPES: Final[tuple[str, ...]] = get_args(TransportType)

# RFC 9110: a field name is a token; a value may hold no control character but a tab.
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

_Seconds: TypeAlias = Annotated[float, Meta(gt=0.0, le=MAX_TIMEOUT)]


class FieldProblem(ValueError):
    """A problem that spans fields; ``field`` is the one to blame, or ``""`` for the server.

    A ``ValueError``, so msgspec reports it as a ``ValidationError`` (keeping it as the
    ``__cause__``), and ``load.py`` names the server's path in the message.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


class UpstreamSandbox(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A stdio server run inside the sandbox: its limit profile, the domains it may reach
    (none by default) and the host paths it may read (nothing else of the host's files)."""

    profile: Annotated[str, Meta(min_length=1, max_length=64)] = "upstream"
    network: list[Annotated[str, Meta(pattern=DOMAIN_PATTERN)]] = []
    paths: list[Annotated[str, Meta(pattern=r"^/")]] = []


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One upstream MCP server: a local command (stdio) or a remote URL (Streamable HTTP).

    ``type`` is accepted because desktop client configs carry it; it must agree with
    ``command``/``url``. ``prefix=None`` means ``"<server name><separator>"``; ``""``
    exposes the server's names bare.
    """

    command: Annotated[str, Meta(min_length=1)] | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    type: TransportType | None = None
    prefix: Annotated[str, Meta(pattern=PREFIX_PATTERN)] | None = None
    replicas: Annotated[int, Meta(ge=1, le=MAX_REPLICAS)] = 1
    enabled: bool = True
    # npx/uvx download the package on a first start, which can take most of a minute.
    startup_timeout: _Seconds = 60.0
    request_timeout: _Seconds = 300.0
    sandbox: UpstreamSandbox | None = None
    # Send the caller's principal id in each request's _meta (io.bastion/principal); off by
    # default, since a principal's name can be personal data a third party has no use for.
    pass_principal: bool = False
    # How much of its lists is kept (items per kind, bytes in all) and how often it is
    # re-listed after it announces changes (UP-4, DS-4).
    listing: ListingLimits = ListingLimits()

    def __post_init__(self) -> None:
        if self.command is not None and self.url is not None:
            raise FieldProblem("", "give either command or url, not both")
        if self.url is not None:
            if not _is_http_url(self.url):
                problem = f"expected an http:// or https:// URL, got {_describe(self.url)}"
                raise FieldProblem("url", problem)
            if "@" in urlsplit(self.url).netloc:
                problem = "user info (user:password@) is never sent; give credentials in headers"
                raise FieldProblem("url", problem)
            stdio_only = (
                ("args", self.args),
                ("env", self.env),
                ("cwd", self.cwd is not None),
                ("sandbox", self.sandbox is not None),
            )
            for field, given in stdio_only:
                if given:
                    raise FieldProblem(field, "only a command server takes this, not a url one")
            if self.type == "stdio":
                raise FieldProblem("type", '"stdio" needs a command, but this server has a url')
            _check_headers(self.headers)
        elif self.command is not None:
            if self.headers:
                raise FieldProblem("headers", "only a url server takes this, not a command one")
            if self.sandbox is not None and self.cwd is not None:
                raise FieldProblem("cwd", "a sandboxed server runs in its own /workspace")
            if self.type not in (None, "stdio"):
                raise FieldProblem(
                    "type", f'"{self.type}" needs a url, but this server has a command'
                )
        else:
            raise FieldProblem("", "give either command (a local server) or url (a remote one)")

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """``"stdio"`` for a command server, ``"http"`` (Streamable HTTP) for a URL."""
        return "stdio" if self.command is not None else "http"


class TlsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """HTTPS for the gateway's face; with ``client_ca``, mTLS client certificates (which
    ``auth.mtls`` maps to service accounts); with ``client_crl`` (PEM CRLs of those CAs,
    re-read when the file changes), revoked certificates are refused."""

    cert_file: Annotated[str, Meta(min_length=1)]
    key_file: Annotated[str, Meta(min_length=1)]
    client_ca: Annotated[str, Meta(min_length=1)] | None = None
    client_cert: Literal["optional", "required"] = "optional"
    client_crl: Annotated[str, Meta(min_length=1)] | None = None

    def __post_init__(self) -> None:
        if self.client_crl is not None and self.client_ca is None:
            raise ValueError("client_crl needs client_ca (the CAs whose revocations it lists)")


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The gateway's own face: loopback by default; Host/Origin allow-lists beyond it."""

    host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 8080
    separator: Annotated[str, Meta(pattern=SEPARATOR_PATTERN)] = "__"
    allowed_hosts: list[str] = []
    allowed_origins: list[str] = []
    tls: TlsSettings | None = None
    sessions: SessionSettings = SessionSettings()
    http: HttpLimits = HttpLimits()


class PolicySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The authorization policy file (see ``examples/policy.yaml``), re-read when it changes.
    Without one, the built-in policy allows the local user everything and nobody else anything.
    """

    file: Annotated[str, Meta(min_length=1)] | None = None
    reload_interval: _Seconds = 2.0


class AuditSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The audit log (AD-1): on by default, at ``$XDG_STATE_HOME/bastion/audit.db``."""

    enabled: bool = True
    db: Annotated[str, Meta(min_length=1)] | None = None
    redact_fields: list[Annotated[str, Meta(min_length=1, max_length=128)]] = []
    # Group commit: a record waits at most this long for others to share its commit (fsync).
    commit_interval: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.05


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration: servers by name (``SERVER_NAME_PATTERN``), the gateway's own
    face, and the security pipeline (authentication, policy, limits, guard, audit). Without
    ``auth``, the HTTP face serves the local user and may listen on loopback only (TR-3)."""

    servers: dict[str, ServerConfig] = {}
    gateway: GatewaySettings = GatewaySettings()
    auth: AuthSettings | None = None
    policy: PolicySettings = PolicySettings()
    limits: LimitSettings = LimitSettings()
    guard: GuardSettings = GuardSettings()
    audit: AuditSettings = AuditSettings()

    def prefix_for(self, name: str) -> str:
        """The prefix of the tool, prompt and resource names served by server ``name``.

        Raises:
            KeyError: no server has that name.
        """
        prefix = self.servers[name].prefix
        return f"{name}{self.gateway.separator}" if prefix is None else prefix


def _check_headers(headers: dict[str, str]) -> None:
    """Refuse what would break the request line by line: a CR or LF in a value starts another
    header to the upstream (header injection); a name must be an HTTP token."""
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise FieldProblem("headers", f"invalid header name {_describe(name)}")
        if _HEADER_CONTROL.search(value):
            problem = "a value may not hold a line break or other control character"
            raise FieldProblem("headers", f"header {name}: {problem}")


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed "[" around an IPv6 host
        return False


def _describe(value: JSONValue) -> str:
    """A value as an error message shows it: ``5``, ``"abc"``, ``null``, ``a list``."""
    if isinstance(value, str) and len(value) > 64:
        value = value[:61] + "..."
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value)
    if isinstance(value, list):
        return "a list"
    return "a mapping" if isinstance(value, dict) else f"a {type(value).__name__}"
