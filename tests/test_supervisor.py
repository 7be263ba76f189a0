"""The supervisor: start order, restart with backoff, crash accounting, drain."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from deneva.backoff import Backoff
from deneva.supervisor import Supervisor


class Flaky:
    """Starts, then crashes `crashes` times (after it has first started), then serves."""

    name = "flaky"

    def __init__(self, crashes: int) -> None:
        self.crashes_left = crashes
        self.starts: list[float] = []
        self.serving = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        self.starts.append(trio.current_time())
        task_status.started("up")
        if self.crashes_left > 0:
            self.crashes_left -= 1
            raise RuntimeError("boom")
        self.serving.set()
        await trio.sleep_forever()


async def test_start_returns_what_the_actor_reported(autojump_clock: trio.testing.MockClock) -> None:
    supervisor = Supervisor(trio.Event())
    async with trio.open_nursery() as nursery:
        assert await supervisor.start(nursery, Flaky(0)) == "up"
        assert supervisor.problems() == []
        nursery.cancel_scope.cancel()


async def test_crashed_actor_restarts_with_growing_backoff(autojump_clock: trio.testing.MockClock) -> None:
    supervisor = Supervisor(trio.Event(), Backoff(base_s=1.0, max_s=4.0, jitter=0))
    actor = Flaky(4)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, actor)
        await actor.serving.wait()
        await trio.testing.wait_all_tasks_blocked()
        gaps = [round(b - a, 3) for a, b in zip(actor.starts, actor.starts[1:], strict=False)]
        assert gaps == [1.0, 2.0, 4.0, 4.0]
        state = supervisor.actors["flaky"]
        assert state.restarts == 4 and state.running
        assert "crashed 4 times" in supervisor.problems()[0]
        # Crashes age out of the window: the actor is healthy again.
        await trio.sleep(301)
        assert supervisor.problems() == []
        nursery.cancel_scope.cancel()


async def test_first_start_failure_fails_the_start(autojump_clock: trio.testing.MockClock) -> None:
    class Broken:
        name = "broken"

        async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
            raise ValueError("cannot start: bad config")

    supervisor = Supervisor(trio.Event())
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="bad config"), flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await supervisor.start(nursery, Broken())


async def test_not_running_actor_is_a_problem(autojump_clock: trio.testing.MockClock) -> None:
    supervisor = Supervisor(trio.Event(), Backoff(base_s=10.0, jitter=0))
    actor = Flaky(1)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, actor)
        await trio.sleep(5)  # inside the 10 s backoff after the crash
        assert supervisor.problems() == ["actor flaky is not running (RuntimeError: boom)"]
        await actor.serving.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert supervisor.problems() == []
        nursery.cancel_scope.cancel()


async def test_drain_waits_for_drainable_actors_only(autojump_clock: trio.testing.MockClock) -> None:
    drain = trio.Event()

    class Server:
        name = "server"
        drains = True
        finished_at: float | None = None

        async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            await drain.wait()
            await trio.sleep(3)  # finishing in-flight work
            Server.finished_at = trio.current_time()

    supervisor = Supervisor(drain)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, Server())
        await supervisor.start(nursery, Flaky(0))
        start = trio.current_time()
        drain.set()
        await supervisor.wait_drained()
        assert Server.finished_at == start + 3
        assert supervisor.actors["server"].running is False
        nursery.cancel_scope.cancel()
