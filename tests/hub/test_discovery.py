"""Discovery's state machine with scripted liveness checks and a fake clock (no wall time
for backoff), then the parts that need the real thing: sockets that do not answer MCP."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.abc
import pytest

from bastion.hub import Discovery, InstanceRecord, InstanceState, McpPinger, Transition
from bastion.hub import write_record as _write_record
from bastion.hub.tracker import MISSED_PINGS, backoff

S = InstanceState


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


class Script:
    """Answers of the port check and of the MCP ping, in order; then the last answer."""

    def __init__(self, listening: list[bool], pings: list[bool]) -> None:
        self._listening = iter(listening)
        self._pings = iter(pings)
        self.last_listening = listening[-1]

    async def listening(self, record: InstanceRecord) -> bool:
        return next(self._listening, self.last_listening)

    async def ping(self, record: InstanceRecord) -> bool:
        return next(self._pings, False)


async def never_exits(pid: int) -> None:
    await anyio.sleep_forever()


def new_record(port: int = 4321, pid: int | None = None) -> InstanceRecord:
    return InstanceRecord.create(
        name="demo", url=f"http://127.0.0.1:{port}/mcp", project="/src/demo", pid=pid
    )


class Recorder:
    def __init__(self) -> None:
        self.transitions: list[Transition] = []
        self.changes = 0
        self.dead = anyio.Event()

    def on_transition(self, transition: Transition) -> None:
        self.transitions.append(transition)
        if transition.new is S.DEAD:
            self.dead.set()

    def on_change(self) -> None:
        self.changes += 1

    def states(self) -> list[InstanceState]:
        return [t.new for t in self.transitions]


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return tmp_path / "bastion" / "instances"


def discovery(registry: Path, recorder: Recorder, **kwargs: object) -> Discovery:
    options: dict[str, object] = {
        "watch": "poll",
        "poll_interval": 0.01,
        "on_change": recorder.on_change,
        "on_transition": recorder.on_transition,
        "wait_exit": never_exits,
        "listener_owned": lambda record: True,  # scripted ports have no real listener
        **kwargs,
    }
    return Discovery(registry, **options)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_the_state_machine_in_order_with_backoff_on_a_fake_clock(registry: Path) -> None:
    time, recorder = FakeTime(), Recorder()
    # Not listening at first; then active; 3 missed pings; back; 3 missed; never again.
    script = Script([False, True], [True, False, False, False, True, False, False, False])
    record = new_record()
    path = _write_record(registry, record)
    hub = discovery(
        registry,
        recorder,
        listening=script.listening,
        pinger=script.ping,
        pid_alive=lambda pid: True,
        clock=time.clock,
        sleep=time.sleep,
        ping_interval=2.0,
        max_attempts=4,
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            await recorder.dead.wait()
            tg.cancel_scope.cancel()
    assert recorder.states() == [
        S.STARTING,
        S.LISTENING,
        S.ACTIVE,
        S.RETRYING,
        S.ACTIVE,
        S.RETRYING,
        S.DEAD,
    ]
    pings = [2.0] * MISSED_PINGS
    retries = [backoff(1), backoff(2), backoff(3)]
    assert time.sleeps == [backoff(1), *pings, backoff(1), *pings, *retries]
    assert [backoff(n) for n in (1, 2, 3)] == [0.05, 0.1, 0.2]
    assert [t.at for t in recorder.transitions][2:5] == [0.05, 6.05, 6.1]
    assert recorder.transitions[-1].reason == "no answer after 4 attempts"
    assert recorder.changes == 4  # listed, unlisted, listed, unlisted
    assert hub.instances() == []
    assert not path.exists()  # a dead instance's file is cleaned up


@pytest.mark.anyio
async def test_an_active_instance_is_listed_and_leaves_when_its_file_goes(registry: Path) -> None:
    recorder = Recorder()
    script = Script([True], [True] * 100)
    hub = discovery(registry, recorder, listening=script.listening, pinger=script.ping)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            assert hub.instances() == []
            record = new_record(pid=os.getpid())
            path = _write_record(registry, record)
            await hub.wait_changed(0)
            assert hub.instances() == [record]
            assert hub.get(record.id) == record
            generation = hub.generation
            path.unlink()
            await hub.wait_changed(generation)
            assert hub.instances() == []
            assert hub.generation == generation + 1
            assert hub.state(record.id) is None
            tg.cancel_scope.cancel()
    assert recorder.states() == [S.STARTING, S.LISTENING, S.ACTIVE, S.DEAD]
    assert recorder.transitions[-1].reason == "file removed"


@pytest.mark.anyio
async def test_a_file_whose_process_is_gone_is_never_listed_and_is_removed(
    registry: Path,
) -> None:
    recorder = Recorder()
    script = Script([True], [True] * 100)
    path = _write_record(registry, new_record(pid=4_000_000))  # above pid_max: never alive
    hub = discovery(registry, recorder, listening=script.listening, pinger=script.ping)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            tg.cancel_scope.cancel()
    assert recorder.states() == [S.DEAD]
    assert recorder.changes == 0
    assert not path.exists()


@pytest.mark.anyio
async def test_an_exiting_process_takes_its_instance_away(registry: Path) -> None:
    recorder = Recorder()
    script = Script([True], [True] * 100)
    exited = anyio.Event()

    async def wait_exit(pid: int) -> None:
        await exited.wait()

    hub = discovery(
        registry, recorder, listening=script.listening, pinger=script.ping, wait_exit=wait_exit
    )
    path = _write_record(registry, new_record(pid=os.getpid()))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            await hub.wait_changed(0)
            exited.set()
            await recorder.dead.wait()
            tg.cancel_scope.cancel()
    assert recorder.states() == [S.STARTING, S.LISTENING, S.ACTIVE, S.DEAD]
    assert "exited" in recorder.transitions[-1].reason
    assert not path.exists()


@pytest.mark.anyio
async def test_a_bad_file_is_logged_once_and_never_tracked(
    registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    registry.mkdir(parents=True, mode=0o700)
    (registry / "junk.json").write_bytes(b"\x00garbage")
    (registry / ".writer.tmp").write_bytes(b"{}")  # a writer's temporary: not even read
    hub = discovery(registry, recorder, listening=Script([True], []).listening)
    with caplog.at_level(logging.WARNING), anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            await anyio.sleep(0.1)  # ten polls: the file is seen again and again
            tg.cancel_scope.cancel()
    assert caplog.text.count("junk.json") == 1
    assert ".writer.tmp" not in caplog.text
    assert recorder.transitions == []


@pytest.mark.anyio
@pytest.mark.parametrize("watch", ["auto", "poll"])
async def test_starts_cleanly_without_a_registry_directory(registry: Path, watch: str) -> None:
    assert not registry.parent.exists()
    hub = discovery(registry, Recorder(), watch=watch)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            assert hub.instances() == []
            tg.cancel_scope.cancel()
    assert registry.is_dir()


@pytest.mark.anyio
async def test_an_unusable_registry_path_falls_back_to_polling_without_crashing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")
    hub = discovery(tmp_path / "file" / "instances", Recorder(), watch="auto")
    with caplog.at_level(logging.WARNING), anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            await anyio.sleep(0.05)
            assert hub.instances() == []
            tg.cancel_scope.cancel()
    assert "polling" in caplog.text


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A real listening socket that accepts connections and never says a word."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.mark.anyio
async def test_a_listening_port_that_does_not_answer_mcp_is_never_listed(
    registry: Path, silent_port: int
) -> None:
    recorder = Recorder()
    path = _write_record(registry, new_record(port=silent_port, pid=os.getpid()))
    hub = discovery(registry, recorder, pinger=McpPinger(timeout=0.2), max_attempts=3)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            await recorder.dead.wait()
            tg.cancel_scope.cancel()
    assert recorder.states() == [S.STARTING, S.LISTENING, S.DEAD]
    assert recorder.changes == 0
    assert not path.exists()


@pytest.mark.anyio
async def test_a_closed_port_never_gets_past_starting(registry: Path, silent_port: int) -> None:
    from tests.support import free_port

    recorder = Recorder()
    _write_record(registry, new_record(port=free_port(), pid=os.getpid()))
    hub = discovery(registry, recorder, max_attempts=2)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            await recorder.dead.wait()
            tg.cancel_scope.cancel()
    assert recorder.states() == [S.STARTING, S.DEAD]


@pytest.mark.anyio
async def test_hub_a_port_listened_on_by_another_user_is_never_reached(
    registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The registered instance stopped and another local user bound its port: the hub
    neither pings it (nor sends it the instance's credential) nor lists it; it says why."""
    recorder, pinged = Recorder(), []
    script = Script([True], [True] * 100)

    async def ping(record: InstanceRecord) -> bool:
        pinged.append(record.id)
        return await script.ping(record)

    hub = discovery(
        registry,
        recorder,
        listening=script.listening,
        pinger=ping,
        pid_alive=lambda pid: True,
        listener_owned=lambda record: False,
        max_attempts=3,
        sleep=FakeTime().sleep,
    )
    record = new_record()
    _write_record(registry, record)
    with caplog.at_level(logging.WARNING, "bastion.hub.discovery"), anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            await recorder.dead.wait()
            tg.cancel_scope.cancel()
    assert pinged == [] and hub.instances() == []
    assert S.ACTIVE not in recorder.states()
    assert "port 4321 is not listened on by this user; skipped" in caplog.text


@pytest.mark.anyio
async def test_hub_an_active_instance_whose_port_changes_hands_leaves_at_once(
    registry: Path,
) -> None:
    """ACTIVE, then the port's listener is another user's: unlisted before the next ping."""
    recorder, pinged, ours = Recorder(), [], [True]
    script = Script([True], [True] * 100)

    async def ping(record: InstanceRecord) -> bool:
        pinged.append(record.id)
        return await script.ping(record)

    time = FakeTime()
    hub = discovery(
        registry,
        recorder,
        listening=script.listening,
        pinger=ping,
        pid_alive=lambda pid: True,
        listener_owned=lambda record: ours[0],
        max_attempts=2,
        sleep=time.sleep,
        clock=time.clock,
    )
    _write_record(registry, new_record())
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            await hub.wait_changed(0)
            generation = hub.generation
            ours[0] = False
            await hub.wait_changed(generation)
            assert hub.instances() == []
            tg.cancel_scope.cancel()
    assert len(pinged) == 1  # the ping that listed it; none once the port changed hands
    assert recorder.states()[2:4] == [S.ACTIVE, S.RETRYING]
    assert recorder.transitions[3].reason == "port listener is not ours"
