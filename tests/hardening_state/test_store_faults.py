"""Storage faults: a full disk, a read-only or a corrupted store.

The reaction required: no new binding (every BU that needed the store is
answered 130), existing bindings and their flows untouched, the fault
counted (``fama_store_errors``) and, once the fault is gone, business as
usual; a store that cannot be trusted at start-up stops the start rather
than letting the controller begin empty and accept any sequence number.
Disk full is real: a size-limited tmpfs mounted (and unmounted) by the
test, which needs root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mn_factory import COA_1, COA_2, COA_3, MobileNode
from state_rig import T0, StoreRig, text

from fama_ryu import metrics
from fama_ryu.binding_cache import Binding, BindingCache
from fama_ryu.store import SqliteBindingStore, StoreError

TMPFS_SIZE = "512k"


@contextlib.contextmanager
def small_tmpfs() -> Iterator[Path]:
    """A private tmpfs of TMPFS_SIZE, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = Path(tempfile.mkdtemp(prefix="fama-store-fault-"))
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
        mount_point.rmdir()


def fill(directory: Path) -> Path:
    """Take every free byte of the file system holding ``directory``."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(descriptor, bytes(65536))
    except OSError as error:
        assert error.errno == 28  # ENOSPC
    try:
        while True:  # the last partial block
            os.write(descriptor, bytes(512))
    except OSError:
        pass
    finally:
        os.close(descriptor)
    return filler


def store_errors(rig: StoreRig) -> float:
    for family in metrics.DarCollector(lambda: [rig.dar]).collect():
        if family.name == "fama_store_errors":
            return sum(sample.value for sample in family.samples)
    raise AssertionError("no fama_store_errors metric")


def register(rig: StoreRig, node: MobileNode, sequence: int, coa: bytes) -> None:
    sent = rig.bu(node.first_bu(sequence, coa))
    assert sent.status() == 0
    node.learn_phkt(sent.frames[0].frame[14:], coa)


def test_disk_full_refuses_new_and_changed_bindings_with_130() -> None:
    with small_tmpfs() as mount_point:
        rig = StoreRig(mount_point / "bindings.sqlite")
        try:
            bound, newcomer = MobileNode.create(seed=1), MobileNode.create(seed=2)
            register(rig, bound, 1, COA_1)
            before = rig.store.load(rig.now)
            filler = fill(mount_point)
            refused = [
                rig.bu(newcomer.first_bu(1, COA_2)),  # a new binding
                rig.bu(bound.phkt_bu(2, COA_3)),  # a move
                rig.bu(bound.deregistration(3, COA_1)),  # a deregistration
            ]
            for sent in refused:
                assert sent.store_error == "disk_full"
                assert sent.status() == 130 and sent.flow_steps == 0
                assert sent.bas()[0].options.permanent_home_keygen_token is None
            assert rig.dar.counters["store_error:disk_full"] == 3
            assert store_errors(rig) == 3
            # Forwarding and the binding are as before the fault.
            assert rig.tunnelled_to(bound.hoa) == text(COA_1)
            assert rig.tunnelled_to(newcomer.hoa) is None
            assert [b.coa for b in rig.dar.bindings()] == [COA_1]
            # A refused deregistration did not advance the sequence number either.
            filler.unlink()
            assert rig.store.load(rig.now) == before
            assert rig.bu(bound.phkt_bu(2, COA_3)).status() == 0
            assert rig.bu(newcomer.first_bu(2, COA_2)).status() == 0
            assert rig.tunnelled_to(bound.hoa) == text(COA_3)
        finally:
            rig.close()


def test_disk_full_during_expiry_keeps_the_binding_until_it_can_be_stored() -> None:
    with small_tmpfs() as mount_point:
        rig = StoreRig(mount_point / "bindings.sqlite")
        try:
            node = MobileNode.create(seed=1)
            assert rig.bu(node.first_bu(1, COA_1, 25)).status() == 0  # 100 s
            filler = fill(mount_point)
            sent = rig.tick(T0 + 101)
            assert sent.store_error == "disk_full"
            assert [b.hoa for b in rig.dar.bindings()] == [node.hoa]  # cache follows the store
            filler.unlink()
            rig.tick(T0 + 102)
            assert rig.dar.bindings() == [] and rig.tunnelled_to(node.hoa) is None
            rig.restart(T0 + 103)
            assert rig.bu(node.first_bu(1, COA_1)).status() == 135  # the tombstone was stored
        finally:
            rig.close()


def corrupt_in_the_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(4096 + 100, min(len(data), 3 * 4096), 7):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def truncate_to_one_page(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(4096)


def zero_the_header(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.write(bytes(100))


@pytest.mark.parametrize("damage", [corrupt_in_the_middle, truncate_to_one_page, zero_the_header])
def test_a_damaged_store_refuses_to_start_and_is_left_as_it_is(
    tmp_path: Path, damage: object
) -> None:
    """Never start empty: a controller that did would accept any sequence number."""
    path = tmp_path / "bindings.sqlite"
    rig = StoreRig(path)
    for seed in range(1, 30):
        rig.bu(MobileNode.create(seed=seed).first_bu(1, COA_1 if seed % 2 else COA_2))
    rig.store.close()
    assert callable(damage)
    damage(path)
    damaged = path.read_bytes()
    with pytest.raises(StoreError) as raised:
        SqliteBindingStore(path)
    assert raised.value.reason == "corrupt"
    assert path.read_bytes() == damaged  # evidence kept, nothing recreated


def test_read_only_directory_never_starts_empty(tmp_path: Path) -> None:
    """With its directory immutable the store either refuses to open or serves
    what it holds and refuses writes: never an empty store."""
    directory = tmp_path / "store"
    directory.mkdir()
    path = directory / "bindings.sqlite"
    with SqliteBindingStore(path) as store:
        cache = BindingCache()
        binding = Binding(
            hoa=bytes(15) + b"\x01",
            coa=COA_1,
            sequence=9,
            lifetime_s=400,
            registered_at=T0,
            expires_at=T0 + 400,
            key_hash=bytes(16),
            phkt=bytes(8),
        )
        store.commit([("dara", cache.registration(binding))])
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(directory)]).returncode != 0:
        pytest.skip("cannot make the directory immutable here")
    try:
        try:
            store = SqliteBindingStore(path)
        except StoreError as error:
            assert error.reason in ("read_only", "io_error")
            return
        with store:
            with pytest.raises(StoreError) as raised:
                store.load(T0)
            assert raised.value.reason in ("read_only", "io_error")
    finally:
        subprocess.run([chattr, "-i", str(directory)], check=True)
    with SqliteBindingStore(path) as store:
        assert store.load(T0)["dara"][0][0].sequence == 9
