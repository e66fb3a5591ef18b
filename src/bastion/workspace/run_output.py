"""What the caller of ``run_command`` sees of a command's output, while it runs and after.

While it runs, ``stream_output`` sends its output as ``notifications/message`` lines and
``notifications/progress``: at most one pair every ``FLUSH_SECONDS``, at most
``STREAM_BYTES`` per stream each and ``STREAM_TOTAL`` per execution; what does not fit is
counted, not sent. At the end, ``reply`` gives the exit code, the first ``CAPTURE_BYTES`` of
each stream and the limit that ended it (its schema: ``RUN_OUTPUT``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import anyio

from bastion._types import JSONObject
from bastion.sandbox import ExecResult, Execution
from bastion.workspace.toolkit import BOOLEAN, STRING, Reply, object_schema

if TYPE_CHECKING:
    from bastion.workspace.invocation import Invocation
    from bastion.workspace.runs import Run

__all__ = [
    "CAPTURE_BYTES",
    "FLUSH_SECONDS",
    "RUN_OUTPUT",
    "STREAM_BYTES",
    "STREAM_TOTAL",
    "reply",
    "stream_output",
]

# Bytes of each stream kept for the final result (the rest is streamed, then counted).
CAPTURE_BYTES: Final = 256 * 1024
# Streaming: one notification pair at most every FLUSH_SECONDS, at most STREAM_BYTES
# each, at most STREAM_TOTAL per execution; what does not fit is said, not sent.
FLUSH_SECONDS: Final = 0.2
STREAM_BYTES: Final = 16 * 1024
STREAM_TOTAL: Final = 1024 * 1024


async def stream_output(inv: Invocation, execution: Execution) -> None:
    """Forward output to the caller while it runs; bounded (module constants)."""
    pending: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
    dropped = {"stdout": 0, "stderr": 0}
    sent = 0
    total = 0
    ticks = 0
    done = anyio.Event()

    async def flush() -> None:
        nonlocal sent, ticks
        for stream, buffer in pending.items():
            if not buffer and not dropped[stream]:
                continue
            data = bytes(buffer[:STREAM_BYTES])
            lost = dropped[stream] + len(buffer) - len(data)
            buffer.clear()
            dropped[stream] = 0
            if sent >= STREAM_TOTAL:
                continue
            sent += len(data)
            line: JSONObject = {
                "execution_id": execution.id,
                "stream": stream,
                "text": data.decode("utf-8", "replace"),
            }
            if lost:
                line["not_streamed_bytes"] = lost
            if sent >= STREAM_TOTAL:
                line["note"] = "streaming stopped here; the result keeps the captured output"
            await inv.ctx.log("info", line, "run_command")
        ticks += 1
        await inv.ctx.progress(
            ticks,
            message=f"{execution.id}: running {execution.elapsed:.1f} s, {total} bytes of output",
        )

    async def ticker() -> None:
        while not done.is_set():
            with anyio.move_on_after(FLUSH_SECONDS):
                await done.wait()
            await flush()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        async for chunk in execution.chunks():
            total += len(chunk.data)
            buffer = pending[chunk.stream]
            room = max(0, STREAM_BYTES - len(buffer))
            buffer += chunk.data[:room]
            dropped[chunk.stream] += len(chunk.data) - min(room, len(chunk.data))
        done.set()


def reply(run: Run, result: ExecResult, rule: str) -> Reply:
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace")
    if result.limit == "none":
        how = (
            f"exit code {result.exit_code}"
            if result.signal is None
            else f"killed by signal {result.signal}"
        )
    else:
        how = f"stopped by the {result.limit} limit"
    parts = [f"{' '.join(run.argv)}: {how} after {result.duration:.2f} s (execution {run.id})"]
    for name, text, cut in (
        ("stdout", stdout, result.stdout_truncated),
        ("stderr", stderr, result.stderr_truncated),
    ):
        if text:
            parts.append(f"--- {name}{' (truncated)' if cut else ''} ---\n{text.rstrip()}")
    return Reply(
        "\n".join(parts),
        {
            "execution_id": run.id,
            "argv": list(run.argv),
            "cwd": run.cwd,
            "profile": run.profile,
            "exit_code": result.exit_code,
            "signal": result.signal,
            "limit": result.limit,
            "stdout": stdout,
            "stderr": stderr,
            "stdout_truncated": result.stdout_truncated,
            "stderr_truncated": result.stderr_truncated,
            "output_bytes": result.output_bytes,
            "duration_seconds": round(result.duration, 3),
            "backend": result.backend,
            "policy": rule,
        },
    )


_INT_OR_NULL: Final = {"type": ["integer", "null"]}
RUN_OUTPUT: Final = object_schema(
    {
        "execution_id": STRING,
        "argv": {"type": "array", "items": STRING},
        "cwd": STRING,
        "profile": STRING,
        "exit_code": _INT_OR_NULL,
        "signal": _INT_OR_NULL,
        "limit": {
            "type": "string",
            "enum": ["none", "timeout", "cpu", "memory", "output", "disk", "cancelled"],
        },
        "stdout": STRING,
        "stderr": STRING,
        "stdout_truncated": BOOLEAN,
        "stderr_truncated": BOOLEAN,
        "output_bytes": {"type": "integer"},
        "duration_seconds": {"type": "number"},
        "backend": STRING,
        "policy": STRING,
    },
    [
        "execution_id",
        "argv",
        "exit_code",
        "signal",
        "limit",
        "stdout",
        "stderr",
        "stdout_truncated",
        "stderr_truncated",
        "duration_seconds",
    ],
)
