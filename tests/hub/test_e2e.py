"""Registration and discovery with real processes: ``bastion serve`` announces itself only
once it listens and withdraws on SIGTERM; a SIGKILLed one leaves a stale file that
Discovery never lists and removes; ``bastion register`` fronts a real fixture server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import msgspec
import pytest

from bastion.hub import Discovery, InstanceRecord, InstanceState, Transition
from tests.support import BASTION, fixture_http_server, free_port, stop_process

pytestmark = pytest.mark.e2e


def registry_of(data_home: Path) -> Path:
    return data_home / "bastion" / "instances"


def env_for(data_home: Path) -> dict[str, str]:
    return {**os.environ, "XDG_DATA_HOME": str(data_home)}


def wait_for_file(directory: Path, timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list(directory.glob("*.json")) if directory.is_dir() else []
        if files:
            return files[0]
        time.sleep(0.001)
    raise AssertionError(f"no registry file in {directory} after {timeout}s")


def port_accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def serve(data_home: Path, port: int, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [str(BASTION), "serve", "--port", str(port), *extra],
        env=env_for(data_home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        stop_process(proc, grace=15)


def test_serve_registers_only_once_listening_and_withdraws_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    with serve(tmp_path, port) as proc:
        path = wait_for_file(registry_of(tmp_path))
        # The file is written after the socket listens: whoever reads it can connect.
        assert port_accepts(port)
        record = msgspec.json.decode(path.read_bytes(), type=InstanceRecord)
        assert (record.port, record.pid) == (port, proc.pid)
        assert record.url == f"http://127.0.0.1:{port}/mcp"
        assert record.project == os.getcwd()
        assert "2026-07-28" in record.protocol_versions
        assert record.credential is None
        assert path.stat().st_mode & 0o777 == 0o600
        assert registry_of(tmp_path).stat().st_mode & 0o777 == 0o700
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert not path.exists()


def test_serve_no_register_writes_nothing(tmp_path: Path) -> None:
    port = free_port()
    with serve(tmp_path, port, "--no-register") as proc:
        deadline = time.monotonic() + 15
        while not port_accepts(port):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    assert list(registry_of(tmp_path).glob("*.json")) == []


async def discover(
    directory: Path, until: float, stop_when: InstanceState | None = None
) -> tuple[list[Transition], list[list[InstanceRecord]]]:
    """Run Discovery for at most ``until`` seconds (or until a transition to
    ``stop_when``); returns the transitions and every listing it published."""
    transitions: list[Transition] = []
    listings: list[list[InstanceRecord]] = []
    reached = anyio.Event()

    def on_transition(transition: Transition) -> None:
        transitions.append(transition)
        if transition.new is stop_when:
            reached.set()

    hubs: list[Discovery] = []

    def on_change() -> None:
        listings.append(hubs[0].instances())

    hub = Discovery(directory, on_transition=on_transition, on_change=on_change)
    hubs.append(hub)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        with anyio.move_on_after(until):
            await reached.wait()
        tg.cancel_scope.cancel()
    return transitions, listings


@pytest.mark.anyio
async def test_a_sigkilled_serve_leaves_a_stale_file_that_is_never_listed(tmp_path: Path) -> None:
    port = free_port()
    with serve(tmp_path, port) as proc:
        path = wait_for_file(registry_of(tmp_path))
        proc.kill()
        proc.wait(timeout=10)
    assert path.exists()  # nobody cleaned up: the process had no chance
    transitions, listings = await discover(registry_of(tmp_path), 10, InstanceState.DEAD)
    assert [t.new for t in transitions] == [InstanceState.DEAD]
    assert "is gone" in transitions[0].reason
    assert listings == []
    assert not path.exists()


@pytest.mark.anyio
async def test_discovery_lists_a_real_serve_quickly_and_drops_it_when_killed(
    tmp_path: Path,
) -> None:
    directory = registry_of(tmp_path)
    port = free_port()
    seen: dict[str, float] = {}
    hub = Discovery(directory)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        with serve(tmp_path, port) as proc:
            with anyio.fail_after(60):
                generation = await hub.wait_changed(0)
            seen["listed"] = time.monotonic()
            path = directory / f"{hub.instances()[0].id}.json"
            assert hub.instances()[0].port == port
            proc.kill()
            killed = time.monotonic()
            with anyio.fail_after(10):
                await hub.wait_changed(generation)
            seen["dropped"] = time.monotonic() - killed
        tg.cancel_scope.cancel()
    assert hub.instances() == []
    assert seen["dropped"] < 2.0  # a pidfd: no ping timeouts to wait for
    assert not path.exists()


def test_register_holds_an_entry_for_a_real_server_until_sigterm(tmp_path: Path) -> None:
    with fixture_http_server() as url:
        proc = subprocess.Popen(
            [str(BASTION), "register", "--url", url, "--name", "fixture", "--project", "/srv/x"],
            env=env_for(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            path = wait_for_file(registry_of(tmp_path))
            record = msgspec.json.decode(path.read_bytes(), type=InstanceRecord)
            assert (record.url, record.name, record.project, record.pid) == (
                url,
                "fixture",
                "/srv/x",
                proc.pid,
            )

            async def listed() -> list[InstanceRecord]:
                hub = Discovery(registry_of(tmp_path))
                async with anyio.create_task_group() as tg:
                    await tg.start(hub.run)
                    with anyio.fail_after(20):
                        await hub.wait_changed(0)
                    tg.cancel_scope.cancel()
                return hub.instances()

            assert [r.id for r in anyio.run(listed)] == [record.id]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert not path.exists()
        finally:
            stop_process(proc)


def test_register_refuses_a_remote_url(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BASTION), "register", "--url", "http://192.0.2.7:8080/mcp", "--name", "far"],
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 78
    assert "loopback" in done.stderr
    assert not registry_of(tmp_path).exists()
