"""The ``bastion`` command: parse arguments, build what was asked for, run it.

This is the only place that reads the process environment, configures logging and turns
exceptions into exit codes. Subcommands import their dependencies lazily, so
``bastion fixture --stdio`` starts without loading the HTTP stack.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_CONFIG = 78  # EX_CONFIG


def _parser() -> argparse.ArgumentParser:
    import argparse

    from bastion.cli.arg_types import http_url, port, positive_seconds

    parser = argparse.ArgumentParser(prog="bastion", description="A secure MCP gateway.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="the gateway over Streamable HTTP")
    serve.add_argument("-c", "--config", help="bastion.yaml (default: the built-in fixture)")
    serve.add_argument("--host", help="bind address (default: 127.0.0.1, or the config's)")
    serve.add_argument("--port", type=port, help="TCP port (default: 8080, or the config's)")
    serve.add_argument(
        "--no-register", action="store_true", help="do not announce this gateway to `bastion hub`"
    )

    stdio = sub.add_parser("stdio", help="the gateway over stdio, for desktop clients")
    stdio.add_argument("-c", "--config", help="bastion.yaml (default: the built-in fixture)")

    servers = sub.add_parser("servers", help="upstream servers of a running gateway")
    servers_sub = servers.add_subparsers(dest="servers_command", required=True)
    # No abbreviations: ``--key KEY`` must be refused, not taken for ``--key-file``.
    listing = servers_sub.add_parser(
        "list", help="each upstream's state, pid, restarts, error", allow_abbrev=False
    )
    listing.add_argument(
        "--url",
        type=http_url,
        default="http://127.0.0.1:8080",
        help="the running `bastion serve` (default: http://127.0.0.1:8080)",
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument(
        "--key-file",
        metavar="PATH",
        help="a file holding an admin API key (mode 600; - reads standard input), needed "
        "when the gateway authenticates callers (default: $BASTION_ADMIN_KEY); sent only "
        "over https or to loopback",
    )

    fixture = sub.add_parser("fixture", help="the conformance fixture server")
    face = fixture.add_mutually_exclusive_group(required=True)
    face.add_argument("--stdio", action="store_true", help="serve over stdin/stdout")
    face.add_argument("--port", type=port, help="serve Streamable HTTP on 127.0.0.1:PORT/mcp")
    fixture.add_argument("--host", default="127.0.0.1", help="bind address for --port")
    fixture.add_argument(
        "--legacy-only",
        action="store_true",
        help="speak 2025-11-25 only, like an older server (for tests)",
    )

    _add_workspace(sub)

    sandbox = sub.add_parser("sandbox", help="run commands in the sandbox")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    sandbox_exec = sandbox_sub.add_parser(
        "exec", help="run one command in the sandbox, exactly as the workspace would"
    )
    sandbox_exec.add_argument("--workspace", required=True, help="the one writable directory")
    sandbox_exec.add_argument("--profile", default="default", help="limit set (default: default)")
    sandbox_exec.add_argument(
        "--timeout", type=positive_seconds, default=30.0, help="wall-clock seconds (default: 30)"
    )
    sandbox_exec.add_argument(
        "--backend",
        default="bubblewrap",
        choices=("bubblewrap", "gvisor", "docker", "none"),
        help="isolation (default: bubblewrap; none runs UNSANDBOXED)",
    )
    sandbox_exec.add_argument(
        "--allow-domain",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="HTTPS egress to this domain through the filtering proxy (repeatable)",
    )
    sandbox_exec.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="set a variable in the command (NAME alone: pass ours); nothing else is passed",
    )
    sandbox_exec.add_argument("--cwd", default=".", help="directory inside the workspace")
    sandbox_exec.add_argument(
        "argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the command to run"
    )

    _add_audit_parser(sub)
    _add_keys_parser(sub)
    _add_policy_parser(sub)
    _add_hub_parsers(sub)

    imp = sub.add_parser("import", help="convert a Claude/Cursor/VS Code MCP config to YAML")
    imp.add_argument("file", help="mcp.json, claude_desktop_config.json, .claude.json, ...")
    imp.add_argument("-o", "--output", help="write this new file instead of stdout")
    imp.add_argument("--force", action="store_true", help="replace --output if it exists")
    return parser


def _add_workspace(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bastion.cli.arg_types import port

    workspace = sub.add_parser("workspace", help="the workspace server (files, collaboration)")
    workspace.add_argument("--root", required=True, help="directory that holds the workspaces")
    workspace_face = workspace.add_mutually_exclusive_group(required=True)
    workspace_face.add_argument("--stdio", action="store_true", help="serve over stdin/stdout")
    workspace_face.add_argument(
        "--port", type=port, help="serve Streamable HTTP on 127.0.0.1:PORT/mcp"
    )
    workspace.add_argument("--host", default="127.0.0.1", help="bind address for --port")
    workspace.add_argument(
        "--sandbox",
        choices=("bubblewrap", "none"),
        default="bubblewrap",
        help="where run_command runs; 'none' runs commands UNSANDBOXED (warned at start)",
    )
    workspace.add_argument("--policy", help="command policy file (YAML or JSON); see README")
    workspace.add_argument(
        "--disk-quota",
        default="none",
        metavar="SIZE",
        help="give each new workspace its own filesystem of SIZE (e.g. 1G; needs root and a "
        "loop device per workspace); default none",
    )
    workspace.add_argument(
        "--trust-gateway-principal",
        action="store_true",
        help="(--stdio under bastion serve, with pass_principal: true) act as the principal "
        "the gateway names in each request",
    )


def _add_hub_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hub = sub.add_parser(
        "hub", help="one stdio MCP server for every running instance on this machine"
    )
    hub.add_argument(
        "--connect",
        action="append",
        default=[],
        metavar="INSTANCE",
        help="connect to this instance (id or name) at start, so the first tools/list shows "
        "its tools (for one-shot clients); repeatable",
    )
    register = sub.add_parser("register", help="announce a local MCP HTTP server to the hub")
    register.add_argument(
        "--url", required=True, help="its endpoint, e.g. http://127.0.0.1:3000/mcp"
    )
    register.add_argument("--name", required=True, help="how the hub lists it")
    register.add_argument("--project", help="its project directory (default: the current one)")


def _add_audit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="read and verify the tamper-evident audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    db_help = "audit database (default: $XDG_STATE_HOME/bastion/audit.db)"
    audit_tail = audit_sub.add_parser("tail", help="the last records")
    audit_tail.add_argument("--db", help=db_help)
    audit_tail.add_argument("-n", type=int, default=20, help="how many (default: 20)")
    audit_tail.add_argument("--follow", "-f", action="store_true", help="keep printing new ones")
    audit_tail.add_argument("--json", action="store_true", help="print JSON lines")
    audit_verify = audit_sub.add_parser("verify", help="check the hash chain and checkpoints")
    audit_verify.add_argument("--db", help=db_help)
    audit_verify.add_argument("--public-key", help="pinned public key (default: beside the db)")
    audit_verify.add_argument(
        "--checkpoint", help="a checkpoint kept from `audit checkpoint`: the log must still hold it"
    )
    audit_export = audit_sub.add_parser("export", help="every record as JSON lines")
    audit_export.add_argument("--db", help=db_help)
    audit_export.add_argument("-o", "--output", help="write this new file instead of stdout")
    audit_checkpoint = audit_sub.add_parser(
        "checkpoint", help="the latest signed checkpoint, to keep elsewhere for verify"
    )
    audit_checkpoint.add_argument("--db", help=db_help)
    audit_checkpoint.add_argument("-o", "--output", help="write this new file instead of stdout")


def _add_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="create, list, rotate and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    db_help = "key database (default: $XDG_STATE_HOME/bastion/keys.db)"
    audit_help = (
        "the gateway's audit log, which records the change; run as its owner "
        "(default: $XDG_STATE_HOME/bastion/audit.db)"
    )
    create = keys_sub.add_parser("create", help="a new key, printed once as the last line")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument(
        "--role", action="append", default=[], required=True, help="a role (repeatable)"
    )
    create.add_argument("--expires", metavar="DURATION", help="lifetime, e.g. 30d, 12h, 15m")
    create.add_argument(
        "--break-glass",
        action="store_true",
        help="an emergency key (needs --expires <= 1h; works only if auth.break_glass.enabled)",
    )
    create.add_argument("--db", help=db_help)
    create.add_argument("--audit-db", metavar="PATH", help=audit_help)
    listing = keys_sub.add_parser("list", help="every key's id, name, state, roles (no secrets)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--db", help=db_help)
    rotate = keys_sub.add_parser("rotate", help="a successor key; the old one works a while")
    rotate.add_argument("key", metavar="ID|NAME", help="key id, or name of the current key")
    rotate.add_argument(
        "--overlap", metavar="DURATION", help="how long the old key stays valid (default: 1h)"
    )
    rotate.add_argument("--db", help=db_help)
    rotate.add_argument("--audit-db", metavar="PATH", help=audit_help)
    revoke = keys_sub.add_parser("revoke", help="end a key now (by name: all its keys)")
    revoke.add_argument("key", metavar="ID|NAME", help="key id, or key name")
    revoke.add_argument("--db", help=db_help)
    revoke.add_argument("--audit-db", metavar="PATH", help=audit_help)


def _add_policy_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = sub.add_parser("policy", help="test a policy file against one request")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    for name, text in (("test", "allow or deny, and the rule"), ("explain", "every rule, and why")):
        cmd = policy_sub.add_parser(name, help=text)
        cmd.add_argument("--policy", required=True, help="policy file (YAML)")
        who = cmd.add_mutually_exclusive_group(required=True)
        who.add_argument("--principal", help="principal id as given (e.g. jwt:ISSUER#SUBJECT)")
        who.add_argument("--key", metavar="NAME", help="API key NAME (principal apikey:NAME)")
        cmd.add_argument("--role", action="append", default=[], help="a role (repeatable)")
        cmd.add_argument("--claim", action="append", default=[], metavar="KEY=VALUE")
        cmd.add_argument("--method", required=True, help="JSON-RPC method, e.g. tools/call")
        what = cmd.add_mutually_exclusive_group()
        what.add_argument("--tool", help="namespaced tool name")
        what.add_argument("--resource", help="resource URI")
        what.add_argument("--prompt", help="prompt name")
        cmd.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
        cmd.add_argument("--at", help="ISO 8601 time (default: now; no zone means UTC)")


def _refuse_unauthenticated_bind(command: str, host: str) -> None:
    """TR-3: ``bastion fixture`` and ``bastion workspace`` authenticate nobody, so they
    listen on loopback only (anyone who reaches the workspace runs commands in it).

    Raises:
        ConfigError: ``host`` is not a loopback name or address.
    """
    from bastion._net import is_loopback_host
    from bastion.errors import ConfigError

    if not is_loopback_host(host):
        raise ConfigError(
            f"refusing to listen on {host!r}: `bastion {command}` authenticates nobody, so it "
            "listens on loopback only; put it behind `bastion serve` (as a stdio server) "
            "for remote callers"
        )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    early = None
    fast = arguments[:1] in (["stdio"], ["hub"])
    if fast and not {"-h", "--help"} & set(arguments) and argv is None:
        # Answer initialize before the imports below: desktop clients are waiting.
        from bastion.cli.fast_start import answer_initialize_early

        early = answer_initialize_early()
    args = _parser().parse_args(arguments)
    from bastion.cli.log_setup import configure_logging
    from bastion.errors import ConfigError

    configure_logging(args.verbose)
    try:
        if args.command in ("fixture", "workspace") and not args.stdio:
            _refuse_unauthenticated_bind(args.command, args.host)
        if args.command == "fixture":
            from bastion.cli.fixture import run_fixture

            return run_fixture(
                stdio=args.stdio, host=args.host, port=args.port, legacy_only=args.legacy_only
            )
        if args.command == "workspace":
            from bastion.cli.workspace import run_workspace

            return run_workspace(
                root=args.root,
                stdio=args.stdio,
                host=args.host,
                port=args.port,
                sandbox=args.sandbox,
                policy=args.policy,
                trust_principal=args.trust_gateway_principal,
                disk_quota=args.disk_quota,
            )
        if args.command == "serve":
            from bastion.cli.gateway import run_serve

            return run_serve(args.config, args.host, args.port, register=not args.no_register)
        if args.command == "stdio":
            from bastion.cli.gateway import run_stdio

            return run_stdio(args.config, early)
        if args.command == "servers":
            from bastion.cli.servers import run_servers_list

            return run_servers_list(
                args.url, as_json=args.json, key_file=args.key_file, environ=os.environ
            )
        if args.command == "sandbox":
            from bastion.cli.sandbox import run_sandbox_exec

            return run_sandbox_exec(
                args.workspace,
                args.argv,
                profile=args.profile,
                timeout=args.timeout,
                backend=args.backend,
                network=args.allow_domain,
                env=args.env,
                cwd=args.cwd,
            )
        if args.command == "audit":
            from bastion.cli import audit as audit_cli

            if args.audit_command == "tail":
                return audit_cli.run_audit_tail(
                    args.db, args.n, follow=args.follow, as_json=args.json
                )
            if args.audit_command == "verify":
                return audit_cli.run_audit_verify(args.db, args.public_key, args.checkpoint)
            if args.audit_command == "checkpoint":
                return audit_cli.run_audit_checkpoint(args.db, args.output)
            return audit_cli.run_audit_export(args.db, args.output)
        if args.command == "keys":
            from bastion.cli.keys import run_keys

            return run_keys(args)
        if args.command == "policy":
            from bastion.cli.policy import run_policy

            return run_policy(args)
        if args.command == "hub":
            from bastion.cli.hub import run_hub

            return run_hub(early, connect=args.connect)
        if args.command == "register":
            from bastion.cli.hub_registry import run_register

            return run_register(args.url, args.name, args.project)
        if args.command == "import":
            from bastion.cli.importing import run_import

            return run_import(args.file, args.output, force=args.force)
    except ConfigError as exc:
        print(f"bastion: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BaseExceptionGroup as group:  # a task of `serve`, `fixture`, ... refused to start
        refused, rest = group.split(ConfigError)
        if refused is None or rest is not None:
            raise
        print(f"bastion: {_first_leaf(refused)}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


def _first_leaf(group: BaseException) -> BaseException:
    """The first exception in ``group``, however deeply nested in groups."""
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group
