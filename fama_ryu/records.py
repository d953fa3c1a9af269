"""Cheap construction of frozen dataclass records on the Binding Update path.

A frozen dataclass's generated ``__init__`` stores each field through
``object.__setattr__`` (the class's own ``__setattr__`` refuses), about
0.1-0.2 µs a field; decoding and deciding one Binding Update builds a dozen
such records.  :func:`frozen_record` fills the new instance's ``__dict__``
in one step instead.  The result is the same value: the same class and
fields, so equality, hashing, ``repr``, ``replace`` and pickling agree with
an instance from the constructor.

The caller names every field, as the constructor would require; there is
no ``__post_init__`` to run (none of the records built this way has one).
Each instance gets a dict of its own (a few hundred bytes), where the
constructor keeps the values inline: use it for records that live as long
as one packet, not for what a cache holds.  Tests compare each record type
built this way with the constructor.
"""

from __future__ import annotations

from typing import TypeVar

Record = TypeVar("Record")

_new = object.__new__


def frozen_record(cls: type[Record], fields: dict[str, object]) -> Record:
    """An instance of the frozen dataclass ``cls`` holding ``fields`` (every one)."""
    record = _new(cls)
    record.__dict__.update(fields)
    return record
