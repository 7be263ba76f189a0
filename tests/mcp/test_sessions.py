from __future__ import annotations

import pytest

from deneva.mcp.sessions import SessionLimitReached, SessionStore, is_valid_session_id, new_session_id


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def test_ids_random_visible_ascii() -> None:
    ids = {new_session_id() for _ in range(200)}
    assert len(ids) == 200
    for sid in ids:
        assert is_valid_session_id(sid)
        assert len(sid) >= 40
    assert not is_valid_session_id("")
    assert not is_valid_session_id("a b")
    assert not is_valid_session_id("é")
    assert not is_valid_session_id("x" * 500)


def test_create_lookup_delete() -> None:
    clock = FakeClock()
    store = SessionStore(clock)
    s = store.create("t1")
    assert (s.tenant_id, s.created_at, s.last_seen, s.initialized, s.protocol_version) == (
        "t1",
        1000.0,
        1000.0,
        False,
        None,
    )
    assert store.lookup(s.id, "t1") == s
    assert store.lookup("nope", "t1") is None
    assert store.delete(s.id, "t1")
    assert store.lookup(s.id, "t1") is None
    assert not store.delete(s.id, "t1")
    assert len(store) == 0


def test_tenant_binding() -> None:
    store = SessionStore(FakeClock())
    s = store.create("t1")
    assert store.lookup(s.id, "t2") is None
    assert store.touch(s.id, "t2") is None
    assert store.mark_initialized(s.id, "t2", "2025-06-18") is None
    assert not store.delete(s.id, "t2")
    assert store.lookup(s.id, "t1") is not None


def test_idle_expiry_and_touch() -> None:
    clock = FakeClock()
    store = SessionStore(clock, idle_timeout_s=60)
    s = store.create("t")
    clock.t += 59
    touched = store.touch(s.id, "t")
    assert touched is not None and touched.last_seen == clock.t
    clock.t += 59
    assert store.lookup(s.id, "t") is not None  # touch pushed expiry back
    clock.t += 1
    assert store.lookup(s.id, "t") is None
    assert len(store) == 0


def test_expire_sweep() -> None:
    clock = FakeClock()
    store = SessionStore(clock, idle_timeout_s=10)
    store.create("a")
    clock.t += 5
    keep = store.create("b")
    clock.t += 6
    assert store.expire() == 1
    assert len(store) == 1
    assert store.lookup(keep.id, "b") is not None


def test_max_sessions_and_room_after_expiry() -> None:
    clock = FakeClock()
    store = SessionStore(clock, max_sessions=2, idle_timeout_s=10)
    store.create("a")
    store.create("b")
    with pytest.raises(SessionLimitReached):
        store.create("c")
    clock.t += 10
    store.create("c")  # idle ones were swept to make room
    assert len(store) == 1


def test_max_per_tenant() -> None:
    store = SessionStore(FakeClock(), max_sessions=10, max_per_tenant=1)
    s = store.create("a")
    with pytest.raises(SessionLimitReached):
        store.create("a")
    store.create("b")
    store.delete(s.id, "a")
    store.create("a")


def test_a_session_its_transport_ends_counts_toward_the_limits_but_never_expires() -> None:
    clock = FakeClock()
    store = SessionStore(clock, max_sessions=10, max_per_tenant=2, idle_timeout_s=10)
    socket = store.create("a", expires=False)
    store.create("a")
    with pytest.raises(SessionLimitReached):
        store.create("a")
    clock.t += 11
    assert store.expire() == 1  # the expiring one only
    assert store.lookup(socket.id, "a") == socket
    store.create("a")
    with pytest.raises(SessionLimitReached):
        store.create("a")
    assert store.delete(socket.id, "a")
    store.create("a")


def test_mark_initialized() -> None:
    clock = FakeClock()
    store = SessionStore(clock)
    s = store.create("t")
    clock.t += 3
    s2 = store.mark_initialized(s.id, "t", "2025-06-18")
    assert s2 is not None
    assert (s2.initialized, s2.protocol_version, s2.last_seen) == (True, "2025-06-18", clock.t)
    assert store.lookup(s.id, "t") == s2


@pytest.mark.parametrize(
    "kwargs", [{"max_sessions": 0}, {"max_per_tenant": 0}, {"idle_timeout_s": 0}, {"idle_timeout_s": -1}]
)
def test_bad_limits(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SessionStore(FakeClock(), **kwargs)  # type: ignore[arg-type]
