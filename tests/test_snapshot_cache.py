"""SnapshotCache: single flight for concurrent scrapes, reuse within min_interval, errors not cached."""

from __future__ import annotations

import threading
import time

import pytest

from igcore.metrics import snapshots
from igcore.metrics.snapshots import SnapshotCache


def run_concurrently(target, n: int) -> list:
    """Start n threads that pass a barrier together, then call target(); their results (or errors)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


@pytest.fixture
def followers(monkeypatch):
    """Counts callers that joined a snapshot in flight; `followers.wait(n)` blocks until n did.

    take() waits on it, so every caller is known to have arrived while the snapshot ran (with
    min_interval 0, none could be served from a finished one): single flight, not luck of timing."""
    joined = threading.Semaphore(0)
    result = snapshots._Flight.result

    def counted(flight):
        joined.release()
        return result(flight)

    monkeypatch.setattr(snapshots._Flight, "result", counted)

    class Followers:
        def wait(self, n: int) -> None:
            for _ in range(n):
                assert joined.acquire(timeout=10), "the other callers never joined the snapshot in flight"
    return Followers()


def test_ten_concurrent_callers_share_one_snapshot(followers):
    calls, now = [], [0.0]

    def take():
        calls.append(threading.current_thread().name)
        followers.wait(9)
        now[0] += 0.3
        return [{"n": len(calls)}]

    cache = SnapshotCache(take, min_interval=0, clock=lambda: now[0])
    results = run_concurrently(cache.rows, 10)
    assert len(calls) == 1 and cache.snapshots_taken == 1
    assert all(r is results[0] for r in results) and results[0] == [{"n": 1}]
    assert cache.last_duration_seconds == 0.3 and cache.errors == 0


def test_concurrent_callers_share_the_error_counted_once_and_the_next_call_retries(followers):
    outcomes = [RuntimeError("snapshot failed"), [{"ok": 1}]]

    def take():
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            followers.wait(9)
            raise out
        return out

    cache = SnapshotCache(take, min_interval=0)
    results = run_concurrently(cache.rows, 10)
    assert all(isinstance(r, RuntimeError) and str(r) == "snapshot failed" for r in results)
    assert cache.errors == 1 and cache.snapshots_taken == 0
    assert cache.rows() == [{"ok": 1}]
    assert cache.errors == 1 and cache.snapshots_taken == 1


def test_reuse_within_min_interval_with_a_fake_clock():
    now = [100.0]
    taken = []

    def take():
        taken.append(now[0])
        now[0] += 0.25  # the snapshot itself takes 0.25 s of fake time
        return [{"at": taken[-1]}]

    cache = SnapshotCache(take, min_interval=1.0, clock=lambda: now[0])
    first = cache.rows()
    assert first == [{"at": 100.0}] and cache.last_duration_seconds == 0.25
    now[0] += 0.99  # age measured from the end of the snapshot (100.25)
    assert cache.rows() is first
    now[0] += 0.01
    assert cache.rows() == [{"at": 101.25}]
    assert taken == [100.0, 101.25] and cache.snapshots_taken == 2


def test_error_propagates_and_is_not_cached():
    now = [0.0]
    outcomes = [[{"a": 1}], ValueError("gone"), [{"a": 2}]]

    def take():
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out

    cache = SnapshotCache(take, min_interval=1.0, clock=lambda: now[0])
    assert cache.rows() == [{"a": 1}]
    now[0] += 2
    with pytest.raises(ValueError, match="gone"):
        cache.rows()
    assert cache.errors == 1
    assert cache.rows() == [{"a": 2}]  # retried at once, and no stale rows handed out meanwhile
    assert cache.snapshots_taken == 2


# --- the time limit ---------------------------------------------------------------------------------


def hung_take(release: threading.Event, calls: list):
    def take():
        calls.append(1)
        release.wait(30)
        return [{"late": True}]
    return take


def test_a_hung_snapshot_costs_one_time_limit_is_counted_once_and_never_runs_twice():
    from igcore.metrics.snapshots import SnapshotTimeout

    release, calls = threading.Event(), []
    cache = SnapshotCache(hung_take(release, calls), min_interval=0, timeout=0.3, name="snapshot demo")
    try:
        started = time.monotonic()
        results = run_concurrently(cache.rows, 5)  # all five wait for the same flight, until its limit
        assert all(isinstance(r, SnapshotTimeout) for r in results)
        assert 0.3 <= time.monotonic() - started < 5
        started = time.monotonic()
        with pytest.raises(SnapshotTimeout):  # still hung: fails at once, no second snapshot
            cache.rows()
        assert time.monotonic() - started < 0.2
        assert calls == [1] and cache.errors_by_reason == {"timeout": 1} and cache.errors == 1
    finally:
        release.set()


def test_a_late_snapshot_is_thrown_away_and_the_next_call_takes_a_new_one():
    from igcore.metrics.snapshots import SnapshotTimeout

    release, calls = threading.Event(), []
    take = hung_take(release, calls)
    cache = SnapshotCache(take, min_interval=60, timeout=0.2)
    with pytest.raises(SnapshotTimeout):
        cache.rows()
    release.set()  # it returns now, after its limit
    deadline = time.monotonic() + 10
    while cache._flight is not None and time.monotonic() < deadline:  # the late flight ends
        time.sleep(0.01)
    assert cache._flight is None and cache.snapshots_taken == 0
    assert cache.rows() == [{"late": True}] and calls == [1, 1]  # a new one, in time this time
    assert cache.snapshots_taken == 1 and cache.errors_by_reason == {"timeout": 1}


def test_prefetch_begins_the_snapshot_without_waiting():
    release, calls = threading.Event(), []
    cache = SnapshotCache(hung_take(release, calls), min_interval=60, timeout=5)
    started = time.monotonic()
    cache.prefetch()
    assert time.monotonic() - started < 0.2
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [1]
    release.set()
    assert cache.rows() == [{"late": True}] and calls == [1]  # the prefetched one, not a second
