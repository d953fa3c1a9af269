"""Unit tests for fama_ryu.store: durable bindings, tombstones and generation (P12).

Every test uses a real SQLite file under tmp_path; durability tests run the
writer in a separate process, one of them killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import ipaddress
import os
import shutil
import signal
import sqlite3
import stat
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fama_ryu.binding_cache import (
    Binding,
    BindingCache,
    BindingChange,
    ChangeKind,
    RemovalCause,
    Tombstone,
    sequence_is_newer,
)
from fama_ryu.store import SCHEMA_VERSION, SqliteBindingStore, StoreError

REPO_ROOT = Path(__file__).resolve().parents[2]
TTL_S = 3600.0
COA_1 = ipaddress.IPv6Address("2001:db8:b::100").packed
COA_2 = ipaddress.IPv6Address("2001:db8:b::200").packed
KEY_HASH = bytes(range(16))
PHKT = bytes.fromhex("00ff0123456789abcdef00")  # NULs and high bytes must survive


def home_address(index: int) -> bytes:
    return (ipaddress.IPv6Address("2001:db8:a::") + index).packed


def binding(
    index: int = 1,
    coa: bytes = COA_1,
    *,
    sequence: int = 7,
    now: float = 100.25,
    lifetime_s: int = 400,
) -> Binding:
    return Binding(
        hoa=home_address(index),
        coa=coa,
        sequence=sequence,
        lifetime_s=lifetime_s,
        registered_at=now,
        expires_at=now + lifetime_s,
        key_hash=KEY_HASH,
        phkt=PHKT,
    )


def registered(cache: BindingCache, new: Binding) -> BindingChange:
    change = cache.registration(new)
    cache.apply(change)
    return change


def open_store(path: Path, **options: float) -> SqliteBindingStore:
    return SqliteBindingStore(path, tombstone_ttl_s=TTL_S, **options)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bindings.db"


def side_file(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


# A separate process: registers one binding (given as a repr'd tuple of fields)
# for "dar1", prints "committed", then closes or waits to be killed.
COMMIT_IN_CHILD = """
import ast, sys, time
from pathlib import Path
from fama_ryu.binding_cache import Binding, BindingCache
from fama_ryu.store import SqliteBindingStore

store = SqliteBindingStore(Path(sys.argv[1]))
binding = Binding(*ast.literal_eval(sys.argv[2]))
store.commit([("dar1", BindingCache().registration(binding))])
print("committed", flush=True)
if sys.argv[3] == "wait-to-be-killed":
    time.sleep(60)
store.close()
"""


# --- round trips --------------------------------------------------------------------


def test_bindings_and_tombstones_round_trip_exactly(db_path: Path) -> None:
    cache_1, cache_2 = BindingCache(TTL_S), BindingCache(TTL_S)
    kept = binding(1, sequence=65535, lifetime_s=86400)
    other_dar = binding(2, COA_2, sequence=0, now=123.456789)
    removed = binding(3, sequence=40)
    changes = [
        ("dar1", registered(cache_1, kept)),
        ("dar2", registered(cache_2, other_dar)),
        ("dar1", registered(cache_1, removed)),
    ]
    removal = cache_1.removal(removed.hoa, 200.5, RemovalCause.DEREGISTERED, sequence=41)
    changes.append(("dar1", removal))
    with open_store(db_path) as store:
        store.commit(changes)
    with open_store(db_path) as store:
        state = store.load(now=150.0)
    assert removal.tombstone == Tombstone(removed.hoa, 41, KEY_HASH, 200.5, 200.5 + TTL_S)
    assert state == {"dar1": ([kept], [removal.tombstone]), "dar2": ([other_dar], [])}
    loaded = state["dar1"][0][0]
    assert all(type(value) is bytes for value in (loaded.hoa, loaded.coa, loaded.phkt))


def test_update_replaces_care_of_address_and_sequence(db_path: Path) -> None:
    cache = BindingCache(TTL_S)
    with open_store(db_path) as store:
        store.commit([("dar1", registered(cache, binding(1, COA_1, sequence=7)))])
        update = registered(cache, binding(1, COA_2, sequence=8, now=300.0))
        assert update.kind is ChangeKind.UPDATE
        store.commit([("dar1", update)])
        assert store.load(now=301.0) == {"dar1": ([update.binding], [])}


def test_delete_leaves_tombstone_with_the_deregistrations_sequence(db_path: Path) -> None:
    cache = BindingCache(TTL_S)
    with open_store(db_path) as store:
        store.commit([("dar1", registered(cache, binding(1, sequence=7)))])
        removal = cache.removal(home_address(1), 200.0, RemovalCause.DEREGISTERED, sequence=9)
        store.commit([("dar1", removal)])
    with open_store(db_path) as store:
        ([], [stone]) = store.load(now=201.0)["dar1"]
    assert stone.sequence == 9
    assert (stone.removed_at, stone.forget_at) == (200.0, 200.0 + TTL_S)
    # After a restart the replayed deregistration (or anything older) is still refused.
    restored = BindingCache(TTL_S)
    restored.restore([], [stone])
    last = restored.last_sequence(home_address(1), 202.0)
    assert last == 9
    assert not sequence_is_newer(9, last)


def test_registration_after_deregistration_clears_the_tombstone(db_path: Path) -> None:
    cache = BindingCache(TTL_S)
    with open_store(db_path) as store:
        store.commit([("dar1", registered(cache, binding(1, sequence=7)))])
        removal = cache.removal(home_address(1), 200.0, RemovalCause.DEREGISTERED, sequence=8)
        cache.apply(removal)
        again = registered(cache, binding(1, sequence=9, now=210.0))
        store.commit([("dar1", removal), ("dar1", again)])  # in order, one transaction
        assert store.load(now=211.0) == {"dar1": ([again.binding], [])}


@pytest.mark.parametrize("cause", list(RemovalCause))
def test_every_removal_cause_is_accepted_by_the_schema(db_path: Path, cause: RemovalCause) -> None:
    cache = BindingCache(TTL_S)
    with open_store(db_path) as store:
        store.commit([("dar1", registered(cache, binding(1)))])
        store.commit([("dar1", cache.removal(home_address(1), 200.0, cause))])
        assert len(store.load(now=201.0)["dar1"][1]) == 1


def test_delete_without_tombstone_is_refused_before_writing(db_path: Path) -> None:
    cache = BindingCache(TTL_S)
    with open_store(db_path) as store:
        store.commit([("dar1", registered(cache, binding(1)))])
        bare_delete = BindingChange(ChangeKind.DELETE, home_address(1))
        with pytest.raises(ValueError, match="tombstone"):
            store.commit([("dar1", registered(cache, binding(2))), ("dar1", bare_delete)])
        assert store.load(now=101.0) == {"dar1": ([binding(1)], [])}


def test_an_empty_batch_is_a_no_op(db_path: Path) -> None:
    with open_store(db_path) as store:
        store.commit([])
        assert store.load(now=0.0) == {}


# --- atomicity ----------------------------------------------------------------------


def test_a_failing_change_in_a_batch_leaves_none_of_the_batch(db_path: Path) -> None:
    cache = BindingCache(TTL_S)
    with open_store(db_path) as store:
        store.commit([("dar1", registered(cache, binding(1, sequence=7)))])
        before = store.load(now=101.0)
        short_hoa = dataclasses.replace(binding(9), hoa=bytes(15))  # violates CHECK
        batch = [
            ("dar1", BindingChange(ChangeKind.UPDATE, home_address(1), binding(1, sequence=8))),
            ("dar1", BindingChange(ChangeKind.ADD, short_hoa.hoa, short_hoa)),
            ("dar2", BindingChange(ChangeKind.ADD, home_address(3), binding(3))),
        ]
        with pytest.raises(StoreError) as raised:
            store.commit(batch)
        assert raised.value.reason == "other"
        assert "CHECK constraint" in str(raised.value)
        assert store.load(now=101.0) == before
        # The store is still usable after the rollback.
        store.commit(batch[2:])
        assert set(store.load(now=101.0)) == {"dar1", "dar2"}


def test_the_commit_alone_runs_through_run_blocking_in_another_thread(db_path: Path) -> None:
    import threading

    seen: list[str] = []

    def in_a_thread(call: Callable[[], object]) -> object:
        seen.append("run_blocking")
        results: list[object] = []
        worker = threading.Thread(target=lambda: results.append(call()))
        worker.start()
        worker.join()
        return results[0]

    with open_store(db_path) as store:
        store.commit([("dar1", BindingCache().registration(binding(1)))], in_a_thread)
        assert seen == ["run_blocking"]  # one COMMIT, not a call per statement
    with open_store(db_path) as store:
        assert store.load(now=101.0) == {"dar1": ([binding(1)], [])}


def test_a_commit_failing_in_run_blocking_is_rolled_back(db_path: Path) -> None:
    def disk_full(call: Callable[[], object]) -> object:
        raise OSError(errno.ENOSPC, "No space left on device")

    with open_store(db_path) as store:
        with pytest.raises(StoreError) as raised:
            store.commit([("dar1", BindingCache().registration(binding(1)))], disk_full)
        assert raised.value.reason == "disk_full"
        assert store.load(now=101.0) == {}
        store.commit([("dar1", BindingCache().registration(binding(2)))], lambda call: call())
        assert store.load(now=101.0) == {"dar1": ([binding(2)], [])}


def test_busy_database_is_locked_and_rolled_back(db_path: Path) -> None:
    with open_store(db_path, busy_timeout_s=0.05) as store:
        blocker = sqlite3.connect(db_path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError) as raised:
                store.commit([("dar1", BindingCache().registration(binding(1)))])
            assert raised.value.reason == "locked"
        finally:
            blocker.close()
        assert store.load(now=101.0) == {}
        store.commit([("dar1", BindingCache().registration(binding(1)))])
        assert store.load(now=101.0) == {"dar1": ([binding(1)], [])}


# --- expiry and tombstone lifetime --------------------------------------------------


def test_load_turns_expired_bindings_into_persisted_tombstones(db_path: Path) -> None:
    cache = BindingCache(TTL_S)
    expiring = binding(1, sequence=30, now=100.0, lifetime_s=400)  # expires at 500
    live = binding(2, sequence=31, now=100.0, lifetime_s=800)
    with open_store(db_path) as store:
        store.commit([("dar1", registered(cache, expiring)), ("dar1", registered(cache, live))])
    with open_store(db_path) as store:
        state = store.load(now=500.0)
    expected = Tombstone(expiring.hoa, 30, KEY_HASH, removed_at=500.0, forget_at=500.0 + TTL_S)
    assert state == {"dar1": ([live], [expected])}
    with contextlib.closing(sqlite3.connect(db_path)) as raw:
        assert raw.execute("SELECT cause FROM tombstones").fetchall() == [("expired",)]
        assert raw.execute("SELECT count(*) FROM bindings").fetchone() == (1,)
    with open_store(db_path) as store:  # persisted as it was, not recomputed
        assert store.load(now=600.0) == {"dar1": ([live], [expected])}


def test_expiry_on_load_counts_the_tombstone_lifetime_from_now(db_path: Path) -> None:
    cache = BindingCache(TTL_S)
    with open_store(db_path) as store:
        store.commit([("dar1", registered(cache, binding(1, now=100.0, lifetime_s=400)))])
        ([], [stone]) = store.load(now=50_000.0)["dar1"]
    assert (stone.removed_at, stone.forget_at) == (500.0, 50_000.0 + TTL_S)


def test_tombstones_past_forget_at_are_purged(db_path: Path) -> None:
    cache = BindingCache(TTL_S)
    with open_store(db_path) as store:
        for index, removed_at in ((1, 100.0), (2, 200.0), (3, 300.0)):
            store.commit([("dar1", registered(cache, binding(index)))])
            removal = cache.removal(home_address(index), removed_at, RemovalCause.REVOKED)
            cache.apply(removal)
            store.commit([("dar1", removal)])
        state = store.load(now=200.0 + TTL_S)  # forget_at <= now is forgotten
        assert [stone.hoa for stone in state["dar1"][1]] == [home_address(3)]
        assert store.purge_tombstones(now=300.0 + TTL_S - 1) == 0
        assert store.purge_tombstones(now=300.0 + TTL_S) == 1
        assert store.load(now=300.0 + TTL_S) == {}


# --- open-time guarantees -----------------------------------------------------------


def test_wal_and_synchronous_full_are_in_effect(db_path: Path) -> None:
    with open_store(db_path) as store:
        # synchronous is per connection: read it back from the store's own.
        connection = store._connection
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA synchronous").fetchone() == (2,)
    with contextlib.closing(sqlite3.connect(db_path)) as raw:  # WAL is persistent
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("permissive_umask")
def test_database_and_side_files_are_owner_only(db_path: Path) -> None:
    with open_store(db_path) as store:
        store.commit([("dar1", BindingCache().registration(binding(1)))])
        for path in (db_path, side_file(db_path, "-wal"), side_file(db_path, "-shm")):
            assert file_mode(path) == 0o600, path
    assert not list(db_path.parent.glob(".bindings.db.*"))  # no creation leftovers


@pytest.mark.usefixtures("permissive_umask")
def test_opening_tightens_a_readable_database_and_side_files(db_path: Path) -> None:
    open_store(db_path).close()
    db_path.chmod(0o644)
    with open_store(db_path) as store:
        assert file_mode(db_path) == 0o600
        wal = side_file(db_path, "-wal")
        wal.chmod(0o644)
        store.next_generation()  # the first write transaction restricts side files
        assert file_mode(wal) == 0o600


def test_generation_counter_starts_at_one_and_persists(db_path: Path) -> None:
    with open_store(db_path) as store:
        assert [store.next_generation(), store.next_generation()] == [1, 2]
    with open_store(db_path) as store:
        assert store.next_generation() == 3


def test_newer_schema_version_is_refused_clearly(db_path: Path) -> None:
    open_store(db_path).close()
    with contextlib.closing(sqlite3.connect(db_path)) as raw, raw:
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError) as raised:
        open_store(db_path)
    assert raised.value.reason == "unsupported_schema"
    message = str(raised.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert "newer" in message


def test_corrupted_database_is_refused(db_path: Path) -> None:
    cache = BindingCache(TTL_S)
    with open_store(db_path) as store:
        store.commit([("dar1", registered(cache, binding(index))) for index in range(1, 400)])
    size = db_path.stat().st_size
    assert size >= 8 * 4096, "need pages in the middle to damage"
    with db_path.open("r+b") as database:
        database.seek(size // 2 + 100)
        database.write(b"not a b-tree page" * 40)
    with pytest.raises(StoreError) as raised:
        open_store(db_path)
    assert raised.value.reason == "corrupt"


def test_file_that_is_not_a_database_is_refused(db_path: Path) -> None:
    db_path.write_bytes(b"bindings: none, honest\n" * 200)
    with pytest.raises(StoreError) as raised:
        open_store(db_path)
    assert raised.value.reason == "corrupt"


def test_empty_file_is_not_taken_for_a_new_store(db_path: Path) -> None:
    db_path.touch()  # e.g. truncated: starting empty would accept any sequence number
    with pytest.raises(StoreError) as raised:
        open_store(db_path)
    assert raised.value.reason == "corrupt"


def test_stale_wal_without_database_is_refused(db_path: Path) -> None:
    side_file(db_path, "-wal").write_bytes(b"frames of a deleted database")
    with pytest.raises(StoreError) as raised:
        open_store(db_path)
    assert raised.value.reason == "corrupt"
    assert not db_path.exists()


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make ``path`` read-only, also for root (who ignores permission bits)."""
    if os.geteuid() != 0:
        path.chmod(0o400)
        try:
            yield
        finally:
            path.chmod(0o600)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)]).returncode != 0:
        pytest.skip("root cannot make the file immutable here")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_read_only_database_fails_the_commit_and_keeps_the_data(db_path: Path) -> None:
    cache = BindingCache(TTL_S)
    with open_store(db_path) as store:
        store.commit([("dar1", registered(cache, binding(1)))])
        before = store.load(now=101.0)
    with unwritable(db_path), open_store(db_path) as store:
        with pytest.raises(StoreError) as raised:
            store.commit([("dar1", registered(cache, binding(2)))])
        assert raised.value.reason == "read_only"
        with pytest.raises(StoreError) as raised:
            store.next_generation()  # what the controller does first at start-up
        assert raised.value.reason == "read_only"
    with open_store(db_path) as store:
        assert store.load(now=101.0) == before


# --- durability across processes ----------------------------------------------------


def test_commit_in_another_process_is_there_after_reopen(db_path: Path) -> None:
    expected = binding(5, sequence=1234)
    child = run_python(COMMIT_IN_CHILD, str(db_path), repr(dataclasses.astuple(expected)), "close")
    assert child.stdout == "committed\n"
    with open_store(db_path) as store:
        assert store.load(now=101.0) == {"dar1": ([expected], [])}


def test_commit_survives_kill_9(db_path: Path) -> None:
    expected = binding(6, sequence=4321)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            COMMIT_IN_CHILD,
            str(db_path),
            repr(dataclasses.astuple(expected)),
            "wait-to-be-killed",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "committed\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert side_file(db_path, "-wal").exists()  # recovered from the WAL, not checkpointed
    with open_store(db_path) as store:
        assert store.load(now=101.0) == {"dar1": ([expected], [])}


# --- cost (printed with -s, not asserted) -------------------------------------------


def test_report_commit_cost_of_batches(db_path: Path) -> None:
    cache = BindingCache(TTL_S)
    next_index = iter(range(1, 1_000_000))
    repetitions = 30
    with open_store(db_path) as store:
        for batch_size in (1, 100):
            seconds = []
            for _ in range(repetitions):
                batch = [
                    ("dar1", cache.registration(binding(next(next_index))))
                    for _ in range(batch_size)
                ]
                started = time.perf_counter()
                store.commit(batch)
                seconds.append(time.perf_counter() - started)
            median_ms = statistics.median(seconds) * 1e3
            print(
                f"\ncommit() batch of {batch_size:>3}: median {median_ms:.2f} ms, "
                f"min {min(seconds) * 1e3:.2f} ms, max {max(seconds) * 1e3:.2f} ms, "
                f"{median_ms * 1e3 / batch_size:.0f} us per change ({repetitions} runs)"
            )
        store.commit(
            [("dar2", cache.registration(binding(next(next_index)))) for _ in range(10_000)]
        )
    started = time.perf_counter()
    with open_store(db_path) as store:
        opened = time.perf_counter()
        state = store.load(now=101.0)
        loaded = time.perf_counter()
    count = sum(len(bindings) for bindings, _ in state.values())
    print(
        f"open (integrity_check) with {count} bindings: {(opened - started) * 1e3:.1f} ms, "
        f"load(): {(loaded - opened) * 1e3:.1f} ms"
    )
