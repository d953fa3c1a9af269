"""Durable binding store: what each DAR has acknowledged survives a restart.

The controller persists every :class:`BindingChange` here *before* it
applies the change to the cache and the switch and sends the Binding
Acknowledgement, so nothing acknowledged is ever lost and a replayed old
Binding Update is still answered 135 after a restart (tombstones keep the
last accepted sequence number).

One SQLite database holds the bindings and tombstones of every DAR, in
WAL mode with ``synchronous=FULL``: a commit returns only once it is on
stable storage, and :meth:`SqliteBindingStore.commit` writes a whole batch
of changes in one transaction (one fsync).  The database holds PHKTs, so
it and its side files are readable by their owner only.  Opening fails
loudly (:class:`StoreError`) rather than starting empty on a damaged
file, which would let the controller accept any sequence number.  Time is
passed in; nothing here reads the clock.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

from fama_ryu.binding_cache import (
    DEFAULT_TOMBSTONE_TTL_S,
    Binding,
    BindingChange,
    ChangeKind,
    Tombstone,
)

SCHEMA_VERSION = 1
DEFAULT_BUSY_TIMEOUT_S = 1.0
OWNER_ONLY = 0o600

StoreErrorReason = Literal[
    "read_only", "disk_full", "corrupt", "io_error", "locked", "unsupported_schema", "other"
]

# The schema is created once, atomically (see _create), so an existing file
# without it is damaged, never "a new store".  Rowid tables keep a separate
# primary-key index, which lets integrity_check catch a corrupted HoA.
_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE bindings (
    dar TEXT NOT NULL CHECK (typeof(dar) = 'text' AND length(dar) > 0),
    hoa BLOB NOT NULL CHECK (typeof(hoa) = 'blob' AND length(hoa) = 16),
    coa BLOB NOT NULL CHECK (typeof(coa) = 'blob' AND length(coa) = 16),
    sequence INTEGER NOT NULL CHECK (sequence BETWEEN 0 AND 65535),
    lifetime_s INTEGER NOT NULL CHECK (lifetime_s >= 0),
    registered_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    key_hash BLOB NOT NULL CHECK (typeof(key_hash) = 'blob'),
    phkt BLOB NOT NULL CHECK (typeof(phkt) = 'blob'),
    PRIMARY KEY (dar, hoa)
);
CREATE TABLE tombstones (
    dar TEXT NOT NULL CHECK (typeof(dar) = 'text' AND length(dar) > 0),
    hoa BLOB NOT NULL CHECK (typeof(hoa) = 'blob' AND length(hoa) = 16),
    sequence INTEGER NOT NULL CHECK (sequence BETWEEN 0 AND 65535),
    key_hash BLOB NOT NULL CHECK (typeof(key_hash) = 'blob'),
    removed_at REAL NOT NULL,
    forget_at REAL NOT NULL,
    cause TEXT NOT NULL CHECK (cause IN ('deregistered', 'expired', 'revoked')),
    PRIMARY KEY (dar, hoa)
);
INSERT INTO meta (key, value) VALUES ('schema_version', {SCHEMA_VERSION}), ('generation', 0);
COMMIT;
"""
_TABLES = frozenset({"meta", "bindings", "tombstones"})

_UPSERT_BINDING = """
INSERT OR REPLACE INTO bindings
    (dar, hoa, coa, sequence, lifetime_s, registered_at, expires_at, key_hash, phkt)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_UPSERT_TOMBSTONE = """
INSERT OR REPLACE INTO tombstones
    (dar, hoa, sequence, key_hash, removed_at, forget_at, cause)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_DELETE_BINDING = "DELETE FROM bindings WHERE dar = ? AND hoa = ?"
_DELETE_TOMBSTONE = "DELETE FROM tombstones WHERE dar = ? AND hoa = ?"
# The binding really ended at expires_at, but the controller was not there
# to see replays: the full tombstone lifetime counts from now.
_EXPIRE_BINDINGS = """
INSERT OR REPLACE INTO tombstones
    (dar, hoa, sequence, key_hash, removed_at, forget_at, cause)
SELECT dar, hoa, sequence, key_hash, expires_at, :forget_at, 'expired'
FROM bindings WHERE expires_at <= :now
"""
_DELETE_EXPIRED_BINDINGS = "DELETE FROM bindings WHERE expires_at <= :now"
_PURGE_TOMBSTONES = "DELETE FROM tombstones WHERE forget_at <= ?"
_SELECT_BINDINGS = """
SELECT dar, hoa, coa, sequence, lifetime_s, registered_at, expires_at, key_hash, phkt
FROM bindings ORDER BY dar, hoa
"""
_SELECT_TOMBSTONES = """
SELECT dar, hoa, sequence, key_hash, removed_at, forget_at
FROM tombstones ORDER BY dar, hoa
"""
_NEXT_GENERATION = "UPDATE meta SET value = value + 1 WHERE key = 'generation' RETURNING value"

_REASON_BY_SQLITE_CODE: dict[int, StoreErrorReason] = {
    sqlite3.SQLITE_READONLY: "read_only",
    sqlite3.SQLITE_FULL: "disk_full",
    sqlite3.SQLITE_CORRUPT: "corrupt",
    sqlite3.SQLITE_NOTADB: "corrupt",
    sqlite3.SQLITE_IOERR: "io_error",
    sqlite3.SQLITE_CANTOPEN: "io_error",
    sqlite3.SQLITE_BUSY: "locked",
    sqlite3.SQLITE_LOCKED: "locked",
}
_REASON_BY_ERRNO: dict[int, StoreErrorReason] = {
    errno.EROFS: "read_only",
    errno.EACCES: "read_only",
    errno.EPERM: "read_only",
    errno.ENOSPC: "disk_full",
    errno.EDQUOT: "disk_full",
}

Statement = tuple[str, tuple[object, ...]]
DarState = tuple[list[Binding], list[Tombstone]]
_Result = TypeVar("_Result")
# Runs a blocking call (the COMMIT) somewhere else and returns when it is done.
RunBlocking = Callable[[Callable[[], object]], object]


class StoreError(Exception):
    """The store could not be opened or could not persist a change.

    ``reason`` is a stable short label for metrics and for the controller's
    decision (e.g. stop accepting Binding Updates); the message says more.
    """

    def __init__(self, reason: StoreErrorReason, message: str) -> None:
        super().__init__(f"{message} [{reason}]")
        self.reason: StoreErrorReason = reason


class SqliteBindingStore:
    """Bindings, tombstones and the flow-cookie generation of every DAR."""

    def __init__(
        self,
        path: Path,
        *,
        tombstone_ttl_s: float = DEFAULT_TOMBSTONE_TTL_S,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        if tombstone_ttl_s <= 0:
            raise ValueError("tombstone TTL must be positive")
        self.path = path
        self.tombstone_ttl_s = tombstone_ttl_s
        self._side_files_restricted = False
        try:
            if not path.exists():
                _create(path)
            _remove_group_and_other_access(path)
            # Side files left by a read-only session inherit its mode: make
            # them usable (and private) again before SQLite opens them.
            _restrict_side_files(path)
            self._connection = _open(path, busy_timeout_s)
        except sqlite3.Error as error:
            raise _from_sqlite_error(error, f"cannot open binding store {path}") from error
        except OSError as error:
            raise _from_os_error(error, f"cannot open binding store {path}") from error

    def __enter__(self) -> SqliteBindingStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def commit(
        self,
        changes: Sequence[tuple[str, BindingChange]],
        run_blocking: RunBlocking | None = None,
    ) -> None:
        """Persist ``(dar name, change)`` pairs, all or none, with one fsync.

        ``run_blocking(call)``, if given, runs the COMMIT (the write to the
        log and its fsync) elsewhere, e.g. in a worker thread: one call that
        releases the GIL throughout, while the statements before it run here
        (a thread running them would wait for the GIL after every one).
        """
        statements = [
            statement for dar, change in changes for statement in _statements(dar, change)
        ]
        if not statements:
            return

        def write(connection: sqlite3.Connection) -> None:
            for sql, parameters in statements:
                connection.execute(sql, parameters)

        self._write_transaction("commit binding changes", write, run_blocking)

    def checkpoint(self) -> None:
        """Copy committed WAL frames into the database without waiting for readers.

        SQLite would do this itself inside the commit that crosses 1000
        pages; a caller that checkpoints when idle keeps that cost out of
        the Binding Updates' commits.  Failure is harmless: the frames stay
        in the WAL, durable.
        """
        try:
            self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as error:
            raise _from_sqlite_error(error, f"cannot checkpoint {self.path}") from error

    def load(self, now: float) -> dict[str, DarState]:
        """Every DAR's live bindings and tombstones, for BindingCache.restore().

        Bindings that expired while the controller was down become
        tombstones (cause ``expired``) and tombstones past their
        ``forget_at`` are deleted, both persisted before returning.
        """

        def read(connection: sqlite3.Connection) -> dict[str, DarState]:
            times = {"now": now, "forget_at": now + self.tombstone_ttl_s}
            connection.execute(_EXPIRE_BINDINGS, times)
            connection.execute(_DELETE_EXPIRED_BINDINGS, times)
            connection.execute(_PURGE_TOMBSTONES, (now,))
            state: dict[str, DarState] = {}
            for dar, *binding_fields in connection.execute(_SELECT_BINDINGS):
                state.setdefault(dar, ([], []))[0].append(_binding(*binding_fields))
            for dar, *tombstone_fields in connection.execute(_SELECT_TOMBSTONES):
                state.setdefault(dar, ([], []))[1].append(_tombstone(*tombstone_fields))
            return state

        return self._write_transaction("load bindings", read)

    def next_generation(self) -> int:
        """Increment and return the persisted flow-cookie generation (first is 1)."""

        def increment(connection: sqlite3.Connection) -> int:
            # fetchall: a RETURNING statement must finish before COMMIT
            rows = connection.execute(_NEXT_GENERATION).fetchall()
            if len(rows) != 1 or not isinstance(rows[0][0], int):
                raise StoreError("corrupt", f"{self.path}: no valid generation counter")
            generation: int = rows[0][0]
            return generation

        return self._write_transaction("increment generation", increment)

    def purge_tombstones(self, now: float) -> int:
        """Delete tombstones whose ``forget_at`` has passed; return how many."""
        return self._write_transaction(
            "purge tombstones",
            lambda connection: connection.execute(_PURGE_TOMBSTONES, (now,)).rowcount,
        )

    def _write_transaction(
        self,
        action: str,
        work: Callable[[sqlite3.Connection], _Result],
        run_blocking: RunBlocking | None = None,
    ) -> _Result:
        """Run ``work`` in one write transaction; on any failure roll it all back.

        The COMMIT goes through ``run_blocking`` when one is given.
        """
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            result = work(connection)
            if not self._side_files_restricted:
                # SQLite creates them with the database's mode; enforce 0600
                # (they hold the same secrets) before COMMIT, so that a
                # failure here still rolls the transaction back.
                self._side_files_restricted = _restrict_side_files(self.path)
            if run_blocking is None:
                connection.execute("COMMIT")
            else:
                run_blocking(functools.partial(connection.execute, "COMMIT"))
        except BaseException as error:
            # A failed ROLLBACK leaves only uncommitted WAL frames, which no
            # reader and no recovery ever uses; the original error matters.
            with contextlib.suppress(sqlite3.Error):
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            context = f"cannot {action} in {self.path}"
            if isinstance(error, sqlite3.Error):
                raise _from_sqlite_error(error, context) from error
            if isinstance(error, OSError):
                raise _from_os_error(error, context) from error
            raise
        return result


def _create(path: Path) -> None:
    """Create an initialised store at ``path`` atomically, mode 0600.

    The schema is written into a private temporary file that is linked into
    place only once committed, so a crash never leaves a half-made store
    that a later start would mistake for an empty one.
    """
    wal = _side_file(path, "-wal")
    if wal.exists():
        # Its frames would be replayed into the new database.
        raise StoreError("corrupt", f"{wal} exists without {path}: refusing to create a store")
    # mkstemp creates the file with os.open(..., O_EXCL, 0o600) before SQLite
    # sees it, so the PHKTs are never readable by others, whatever the umask.
    descriptor, temporary_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(descriptor)
    temporary = Path(temporary_name)
    try:
        connection = sqlite3.connect(temporary, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=FULL")
            connection.executescript(_SCHEMA)
        finally:
            connection.close()
        with contextlib.suppress(FileExistsError):  # another process created it first
            os.link(temporary, path)
        _fsync_directory(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def _open(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Connect, enforce WAL and synchronous=FULL, and check the file is sound."""
    # One connection, used by one thread at a time (the controller commits
    # from a worker thread, under its own lock), so the module's same-thread
    # check is off.
    connection = sqlite3.connect(
        path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    try:
        (journal_mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        if journal_mode != "wal":
            raise StoreError("other", f"{path}: journal_mode is {journal_mode!r}, not 'wal'")
        connection.execute("PRAGMA synchronous=FULL")
        (synchronous,) = connection.execute("PRAGMA synchronous").fetchone()
        if synchronous != 2:
            raise StoreError("other", f"{path}: synchronous is {synchronous}, not 2 (FULL)")
        problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise StoreError("corrupt", f"{path}: integrity check failed: {problems[:3]}")
        _check_schema(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


def _check_schema(connection: sqlite3.Connection, path: Path) -> None:
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    missing = _TABLES - tables
    if missing:
        raise StoreError("corrupt", f"{path} is not a binding store (missing {sorted(missing)})")
    row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = row[0] if row is not None else None
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise StoreError(
            "unsupported_schema",
            f"{path} has schema version {version}, newer than version {SCHEMA_VERSION} that "
            "this fama-ryu understands: run the newer fama-ryu (do not delete the store)",
        )
    if version != SCHEMA_VERSION:
        raise StoreError("corrupt", f"{path}: invalid schema version {version!r}")


def _statements(dar: str, change: BindingChange) -> list[Statement]:
    """The SQL that makes ``change`` durable for ``dar``."""
    hoa = change.hoa
    if change.kind is ChangeKind.DELETE:
        stone, cause = change.tombstone, change.cause
        if stone is None or cause is None:
            # Without its tombstone a deregistration could be replayed.
            raise ValueError("a DELETE change must carry its tombstone and cause")
        return [
            (_DELETE_BINDING, (dar, hoa)),
            (
                _UPSERT_TOMBSTONE,
                (
                    dar,
                    hoa,
                    stone.sequence,
                    stone.key_hash,
                    stone.removed_at,
                    stone.forget_at,
                    cause.value,
                ),
            ),
        ]
    binding = change.binding
    if binding is None:
        raise ValueError(f"a {change.kind.value.upper()} change must carry its binding")
    return [
        (
            _UPSERT_BINDING,
            (
                dar,
                hoa,
                binding.coa,
                binding.sequence,
                binding.lifetime_s,
                binding.registered_at,
                binding.expires_at,
                binding.key_hash,
                binding.phkt,
            ),
        ),
        (_DELETE_TOMBSTONE, (dar, hoa)),
    ]


def _binding(
    hoa: bytes,
    coa: bytes,
    sequence: int,
    lifetime_s: int,
    registered_at: float,
    expires_at: float,
    key_hash: bytes,
    phkt: bytes,
) -> Binding:
    return Binding(
        hoa=hoa,
        coa=coa,
        sequence=sequence,
        lifetime_s=lifetime_s,
        registered_at=registered_at,
        expires_at=expires_at,
        key_hash=key_hash,
        phkt=phkt,
    )


def _tombstone(
    hoa: bytes, sequence: int, key_hash: bytes, removed_at: float, forget_at: float
) -> Tombstone:
    return Tombstone(
        hoa=hoa, sequence=sequence, key_hash=key_hash, removed_at=removed_at, forget_at=forget_at
    )


def _from_sqlite_error(error: sqlite3.Error, context: str) -> StoreError:
    # Extended codes (e.g. SQLITE_IOERR_FSYNC) carry the primary code in the low byte;
    # errors raised by the sqlite3 module itself have no code.
    code = getattr(error, "sqlite_errorcode", None)
    reason = _REASON_BY_SQLITE_CODE.get(code & 0xFF, "other") if code is not None else "other"
    return StoreError(reason, f"{context}: {error}")


def _from_os_error(error: OSError, context: str) -> StoreError:
    reason = _REASON_BY_ERRNO.get(error.errno or 0, "io_error")
    return StoreError(reason, f"{context}: {error}")


def _side_file(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _restrict_side_files(path: Path) -> bool:
    """Make the -wal and -shm files that exist mode 0600; True if both do."""
    side_files = [_side_file(path, "-wal"), _side_file(path, "-shm")]
    existing = [side_file for side_file in side_files if side_file.exists()]
    for side_file in existing:
        os.chmod(side_file, OWNER_ONLY)
    return len(existing) == len(side_files)


def _remove_group_and_other_access(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, mode & 0o700)


def _fsync_directory(directory: Path) -> None:
    """Make a new directory entry durable (the file's data already is)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
