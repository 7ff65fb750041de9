"""The background writer stores pages in order, and never hides or reorders a failure."""

from __future__ import annotations

import threading

import pytest

from pqwatch.store.writer import BackgroundWriter


def test_batches_are_stored_in_order_on_another_thread() -> None:
    stored: list[int] = []
    threads: set[str] = set()

    def store(n: int) -> int:
        threads.add(threading.current_thread().name)
        stored.append(n)
        return n * 10

    results: list[int] = []
    with BackgroundWriter(store, results.append, depth=2) as writer:
        for n in range(50):
            writer.submit(n)
        writer.drain()
        assert stored == list(range(50))
    assert results == [n * 10 for n in range(50)]
    assert threads == {"pqwatch-writer"}


def test_the_first_error_stops_storing_and_reaches_the_caller() -> None:
    stored: list[int] = []

    def store(n: int) -> None:
        if n == 3:
            raise RuntimeError("disk full")
        stored.append(n)

    writer: BackgroundWriter[int, None] = BackgroundWriter(store, depth=1)
    with pytest.raises(RuntimeError, match="disk full"):
        for n in range(10):
            writer.submit(n)
        writer.drain()
    writer.close()  # the error was raised once; closing afterwards is quiet
    assert stored == [0, 1, 2]  # nothing after the failed batch, nothing out of order


def test_what_was_handed_over_is_stored_when_the_caller_fails() -> None:
    release = threading.Event()
    stored: list[int] = []

    def store(n: int) -> None:
        release.wait(5)
        stored.append(n)

    with pytest.raises(ValueError, match="API down"):
        with BackgroundWriter(store, depth=4) as writer:
            for n in range(3):
                writer.submit(n)
            release.set()
            raise ValueError("API down")
    assert stored == [0, 1, 2]


def test_a_storing_error_is_not_hidden_behind_the_callers() -> None:
    def store(n: int) -> None:
        raise OSError("database is locked")

    with pytest.raises(OSError, match="database is locked") as info:
        with BackgroundWriter(store) as writer:
            writer.submit(1)
            raise ValueError("API down")
    assert isinstance(info.value.__context__, ValueError)


def test_batches_waiting_behind_a_slow_store_are_merged_in_order() -> None:
    gate = threading.Event()
    calls: list[list[int]] = []

    def store(batch: list[int]) -> int:
        gate.wait(5)
        calls.append(batch)
        return len(batch)

    def merge(batches: list[list[int]]) -> list[int]:
        return [n for b in batches for n in b]

    sizes: list[int] = []
    with BackgroundWriter(store, sizes.append, depth=8, merge=merge) as writer:
        writer.submit([0])  # taken at once; the store waits at the gate
        for n in range(1, 9):
            writer.submit([n])  # these wait in the queue meanwhile
        gate.set()
    assert [n for batch in calls for n in batch] == list(range(9))
    assert len(calls) < 9  # some were stored together
    assert sum(sizes) == 9
