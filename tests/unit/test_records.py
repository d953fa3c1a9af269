"""frozen_record (fama_ryu/records.py) builds the same value as the constructor.

For every frozen dataclass the Binding Update path builds with it, a record
made from the same fields is equal, hashes alike, has the same ``repr`` and
``__dict__``, stays frozen, and survives ``replace``, ``copy`` and pickling.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest

from fama_ryu import mh
from fama_ryu.binding_cache import Binding, BindingChange, ChangeKind
from fama_ryu.home_agent import Decision, Reply, Verdict
from fama_ryu.records import frozen_record

HOA = bytes.fromhex("20010db8000100000000000000000100")
COA = bytes.fromhex("20010db8000200000000000000000100")
ANCHOR = bytes.fromhex("20010db8000100000000000000000001")
OPTIONS = mh.MobilityOptions(authenticator=bytes(range(12)))
BU = mh.BindingUpdate(7, 100, options=OPTIONS)
HEADER = mh.MobilityHeader(mh.MHType.BINDING_UPDATE, BU, bytes(32), None, 20)
ACK = mh.BindingAck(mh.BAStatus.ACCEPTED, 7, 100)
REPLY = Reply(ACK, ANCHOR, COA, HOA, b"\x60" + bytes(95))
BINDING = Binding(HOA, COA, 7, 400, 10.0, 410.0, bytes(16), bytes(8))
CHANGE = BindingChange(ChangeKind.UPDATE, HOA, binding=BINDING, previous=BINDING)

RECORDS: list[Any] = [
    OPTIONS,
    mh.NO_OPTIONS,
    BU,
    HEADER,
    mh.MobilityPacket(COA, ANCHOR, 64, HEADER, HOA, None),
    ACK,
    REPLY,
    CHANGE,
    Decision(Verdict.ACCEPTED, "accepted", mh.BAStatus.ACCEPTED, REPLY, CHANGE),
]


def fields_of(record: Any) -> dict[str, object]:
    return {field.name: getattr(record, field.name) for field in dataclasses.fields(record)}


@pytest.mark.parametrize("constructed", RECORDS, ids=lambda record: type(record).__name__)
def test_record_equals_the_constructed_one(constructed: Any) -> None:
    cls = type(constructed)
    built = frozen_record(cls, fields_of(constructed))
    assert type(built) is cls
    assert built == constructed and constructed == built
    assert hash(built) == hash(constructed)
    assert repr(built) == repr(constructed)
    assert vars(built) == vars(constructed)
    assert copy.copy(built) == constructed
    assert pickle.loads(pickle.dumps(built)) == constructed
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, first, None)
    changed = dataclasses.replace(built, **{first: getattr(constructed, first)})
    assert changed == constructed


def test_a_record_missing_a_field_without_default_fails_loudly() -> None:
    """A use that forgot a field is caught by any comparison, not silently wrong."""
    partial = frozen_record(mh.BindingAck, {"status": 0, "sequence": 7})
    with pytest.raises(AttributeError):
        _ = partial == ACK
