"""A client connected over the in-memory transport to a server app behind the pipeline."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from bastion._types import JSONObject
from bastion.audit.read import iter_rows, open_readonly
from bastion.audit.record import AuditRecord
from bastion.auth.principal import Principal
from bastion.client import ClientHandlers, ClientSession
from bastion.errors import BastionError
from bastion.pipeline import Pipeline, Stage
from bastion.policy import Policy, parse_policy
from bastion.protocol import types as t
from bastion.protocol.request_state import RequestStateSealer
from bastion.protocol.versions import Era
from bastion.server.connection import ServerConnection
from bastion.server.context import ToolContext
from bastion.server.registry import ServerApp
from bastion.transport.base import serve_stream
from bastion.transport.memory import create_memory_pair
from tests.server.raw import RawClient

WAIT = 10


def run_on_stdio(app: ServerApp) -> int:
    """Serve ``app`` on this process's stdin and stdout until the client leaves: the
    ``main`` of the test upstreams run as ``python -m tests.pipeline.<name>``."""
    from bastion.transport.stdio import StdioServerStream

    async def serve() -> None:
        stream = await StdioServerStream.open()
        sealer = RequestStateSealer([secrets.token_bytes(32)])
        await serve_stream(stream, ServerConnection(app, sealer))

    anyio.run(serve)
    return 0


def policy(text: str) -> Policy:
    return Policy(parse_policy(text))


def principal(
    name: str, *roles: str, method: str = "api-key", authenticated_at: float | None = None
) -> Principal:
    return Principal(
        id=name,
        credential_id=f"key:{name}",
        method=method,  # type: ignore[arg-type]
        roles=roles,
        authenticated_at=authenticated_at,
    )


def app_with_tools(*names: str, calls: list[str] | None = None) -> ServerApp:
    """An app whose tools echo their name; each call is appended to ``calls``."""
    app = ServerApp("upstream", "1.0")
    for name in names:

        async def run(
            ctx: ToolContext, args: dict[str, object], name: str = name
        ) -> t.CallToolResult:
            if calls is not None:
                calls.append(name)
            return t.CallToolResult(content=[t.TextContent(text=f"{name} ran")])

        app.add_tool(t.Tool(name=name, inputSchema={"type": "object"}), run)
    return app


def add_asking_tool(
    app: ServerApp, name: str, method: str, params: JSONObject, refusals: list[BastionError]
) -> None:
    """A tool that asks the client one ``method`` request mid-call, as an upstream does; it
    answers "answered", or "refused" (noting the error in ``refusals``) when refused."""

    async def run(ctx: ToolContext, args: dict[str, object]) -> t.CallToolResult:
        try:
            await ctx.ask({"q": t.InputRequest(method=method, params=params)})
        except BastionError as exc:
            refusals.append(exc)
            return t.CallToolResult(content=[t.TextContent(text="refused")])
        return t.CallToolResult(content=[t.TextContent(text="answered")])

    app.add_tool(t.Tool(name=name, inputSchema={"type": "object"}), run)


@asynccontextmanager
async def guarded(
    app: ServerApp,
    stages: Sequence[Stage],
    who: Principal,
    era: Era | None = Era.LEGACY,
    handlers: ClientHandlers | None = None,
    *,
    connect: bool = True,
) -> AsyncIterator[ClientSession]:
    client_end, server_end = create_memory_pair()
    pipeline = Pipeline(stages)
    inner = ServerConnection(app, RequestStateSealer([secrets.token_bytes(32)]))
    with anyio.fail_after(WAIT):
        async with client_end, server_end, anyio.create_task_group() as tg:
            tg.start_soon(serve_stream, server_end, pipeline.guard(inner, who, "session-1"))
            async with ClientSession(client_end, era=era, handlers=handlers) as session:
                if connect:
                    await session.connect()
                yield session
            tg.cancel_scope.cancel()


@asynccontextmanager
async def raw_guarded(
    app: ServerApp,
    stages: Sequence[Stage],
    who: Principal,
    sealer: RequestStateSealer | None = None,
) -> AsyncIterator[RawClient]:
    """A raw JSON-RPC client (exact messages, either era) of ``app`` behind ``stages``."""
    client_end, server_end = create_memory_pair(buffer=16)
    inner = ServerConnection(app, sealer or RequestStateSealer([secrets.token_bytes(32)]))
    with anyio.fail_after(WAIT):
        async with client_end, server_end, anyio.create_task_group() as tg:
            tg.start_soon(serve_stream, server_end, Pipeline(stages).guard(inner, who))
            yield RawClient(client_end)
            tg.cancel_scope.cancel()


class MemorySink:
    """An audit sink that keeps the records in a list."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    async def record(self, record: AuditRecord) -> None:
        self.records.append(record)

    def record_nowait(self, record: AuditRecord) -> bool:
        self.records.append(record)
        return True

    async def refused(self, key: tuple[str, str], record: AuditRecord) -> None:
        self.records.append(record)


def audit_records(db: Path) -> list[AuditRecord]:
    from bastion.audit.record import decode_record

    conn = open_readonly(db)
    try:
        return [decode_record(row.record) for row in iter_rows(conn)]
    finally:
        conn.close()


Fixed = Callable[[], Policy]
