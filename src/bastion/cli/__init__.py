"""The ``bastion`` command: parse arguments, build what was asked for, run it.

This is the only place that reads the process environment, configures logging and turns
exceptions into exit codes. Subcommands import their dependencies lazily, so
``bastion fixture --stdio`` starts without loading the HTTP stack.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_CONFIG = 78  # EX_CONFIG


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bastion", description="A secure MCP gateway.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve MCP over Streamable HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    serve.add_argument("--port", type=int, default=8080, help="TCP port (default: 8080)")

    fixture = sub.add_parser("fixture", help="the conformance fixture server")
    face = fixture.add_mutually_exclusive_group(required=True)
    face.add_argument("--stdio", action="store_true", help="serve over stdin/stdout")
    face.add_argument("--port", type=int, help="serve Streamable HTTP on 127.0.0.1:PORT/mcp")
    fixture.add_argument("--host", default="127.0.0.1", help="bind address for --port")
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.verbose)
    from bastion.errors import ConfigError

    try:
        if args.command == "fixture":
            from bastion.cli.fixture import run_fixture

            return run_fixture(stdio=args.stdio, host=args.host, port=args.port)
        if args.command == "serve":
            from bastion.cli.fixture import run_fixture

            return run_fixture(stdio=False, host=args.host, port=args.port)
    except ConfigError as exc:
        print(f"bastion: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE
