"""Declaring an OpenFlow pipeline as data, and checking every flowmod against it.

A ``PipelineSpec`` lists its tables; each ``TableSpec`` says which match
fields its flows may use (and which of those may be masked), which tables a
flow may go to next, what a table miss does, the named priority bands its
flows live in, which fields its actions may set, whether they may decrement
the hop limit, which kinds of port they may output to, and which meters
its flows may pass through.  A table that declares meters sends nothing to
the controller except through one of them.
``PipelineSpec.check`` rejects any flowmod that steps outside that, so a
builder bug fails when the flowmod is built, not in the switch.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from openflow_pipelines.model import (
    ALL_TABLES,
    CONTROLLER_PORT,
    FIELDS,
    IN_PORT,
    LOCAL_PORT,
    MAX_METER_ID,
    NO_BUFFER,
    OUTPUT_TO_CONTROLLER,
    Action,
    Command,
    DecNwTtl,
    FlowMod,
    Match,
    Output,
    SetField,
)


class PipelineViolation(ValueError):
    """A flowmod that the pipeline declaration does not allow."""


class PortRole(enum.Enum):
    """What a port is to the pipeline; outputs are declared per role, not per number."""

    ACCESS = "access"
    CORE = "core"
    GRE = "gre"
    LOCAL = "local"
    IN_PORT = "in_port"
    CONTROLLER = "controller"


PortRoleOf = Callable[[int], PortRole | None]


class MissKind(enum.Enum):
    DROP = "drop"
    GOTO = "goto"
    CONTROLLER = "controller"


@dataclass(frozen=True)
class Miss:
    """What a table does with a packet no other flow matches."""

    kind: MissKind
    next_table: str | None = None

    @classmethod
    def drop(cls) -> Miss:
        return cls(MissKind.DROP)

    @classmethod
    def goto(cls, next_table: str) -> Miss:
        return cls(MissKind.GOTO, next_table)

    @classmethod
    def controller(cls) -> Miss:
        return cls(MissKind.CONTROLLER)

    def __post_init__(self) -> None:
        if (self.kind is MissKind.GOTO) != (self.next_table is not None):
            raise ValueError("a next table is given exactly for a goto miss")

    def describe(self) -> str:
        if self.kind is MissKind.GOTO:
            return f"goto {self.next_table}"
        if self.kind is MissKind.CONTROLLER:
            return "controller (whole packet)"
        return "drop"


@dataclass(frozen=True)
class PriorityBand:
    """A named priority: every flow of a kind in a table uses its band's value."""

    name: str
    priority: int
    meaning: str


@dataclass(frozen=True)
class MeterSpec:
    """A meter the pipeline's flows may point to: its switch-wide id and what it limits."""

    name: str
    meter_id: int
    meaning: str


TABLE_MISS = PriorityBand("table_miss", 0, "empty match: the table's declared miss behaviour")


@dataclass(frozen=True)
class TableSpec:
    """One table: what its flows may match, do and lead to.

    ``maskable_fields`` is the subset of ``match_fields`` that may carry a
    mask; ``priority_bands`` lists every priority its flows may use;
    ``output_roles`` the kinds of port its actions may output to;
    ``meters`` the names of the pipeline meters its flows may use (when not
    empty, every output to the controller must go through one of them).
    """

    name: str
    table_id: int
    purpose: str
    match_fields: frozenset[str]
    maskable_fields: frozenset[str]
    next_tables: tuple[str, ...]
    miss: Miss
    priority_bands: tuple[PriorityBand, ...]
    set_fields: frozenset[str] = frozenset()
    dec_nw_ttl: bool = False
    output_roles: frozenset[PortRole] = frozenset()
    meters: frozenset[str] = frozenset()


class PipelineSpec:
    """An ordered set of tables and meters, validated for internal consistency when built."""

    def __init__(self, tables: Sequence[TableSpec], meters: Sequence[MeterSpec] = ()) -> None:
        self.tables: tuple[TableSpec, ...] = tuple(sorted(tables, key=lambda table: table.table_id))
        self.meters: tuple[MeterSpec, ...] = tuple(sorted(meters, key=lambda meter: meter.meter_id))
        self._by_name = {table.name: table for table in self.tables}
        self._by_id = {table.table_id: table for table in self.tables}
        self._meters_by_name = {meter.name: meter for meter in self.meters}
        if len(self._by_name) != len(self.tables) or len(self._by_id) != len(self.tables):
            raise ValueError("table names and ids must be unique")
        meter_ids = {meter.meter_id for meter in self.meters}
        if len(self._meters_by_name) != len(self.meters) or len(meter_ids) != len(self.meters):
            raise ValueError("meter names and ids must be unique")
        if not all(1 <= meter_id <= MAX_METER_ID for meter_id in meter_ids):
            raise ValueError(f"meter ids must be in 1..{MAX_METER_ID:#x}")
        for table in self.tables:
            self._validate(table)

    def _validate(self, table: TableSpec) -> None:
        unknown = table.match_fields - FIELDS.keys()
        if unknown:
            raise ValueError(f"{table.name}: unknown match fields {sorted(unknown)}")
        if not table.maskable_fields <= table.match_fields:
            raise ValueError(f"{table.name}: maskable fields must be match fields")
        not_maskable = {name for name in table.maskable_fields if not FIELDS[name].maskable}
        if not_maskable:
            raise ValueError(f"{table.name}: OpenFlow cannot mask {sorted(not_maskable)}")
        not_settable = {
            name for name in table.set_fields if name not in FIELDS or not FIELDS[name].settable
        }
        if not_settable:
            raise ValueError(f"{table.name}: cannot set {sorted(not_settable)}")
        for next_name in table.next_tables:
            following = self._by_name.get(next_name)
            if following is None or following.table_id <= table.table_id:
                raise ValueError(f"{table.name}: next table {next_name!r} missing or not later")
        if table.miss.next_table is not None and table.miss.next_table not in table.next_tables:
            raise ValueError(f"{table.name}: miss goes to an undeclared next table")
        if table.miss.kind is MissKind.CONTROLLER and PortRole.CONTROLLER not in table.output_roles:
            raise ValueError(f"{table.name}: a controller miss needs the controller output role")
        undeclared = table.meters - self._meters_by_name.keys()
        if undeclared:
            raise ValueError(f"{table.name}: undeclared meters {sorted(undeclared)}")
        if table.meters and table.miss.kind is MissKind.CONTROLLER:
            raise ValueError(
                f"{table.name}: a table with metered punts cannot miss to the controller"
            )
        priorities = [band.priority for band in table.priority_bands]
        if len(set(priorities)) != len(priorities) or TABLE_MISS not in table.priority_bands:
            raise ValueError(
                f"{table.name}: bands need distinct priorities and the table-miss band"
            )

    def table(self, name: str) -> TableSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no table named {name!r}") from None

    def meter(self, name: str) -> MeterSpec:
        try:
            return self._meters_by_name[name]
        except KeyError:
            raise KeyError(f"no meter named {name!r}") from None

    def table_miss_flow(self, table: TableSpec, cookie: int) -> FlowMod:
        """The priority-0 flow implementing ``table``'s declared miss behaviour."""
        actions: tuple[Action, ...] = ()
        goto_table = None
        if table.miss.kind is MissKind.CONTROLLER:
            actions = (OUTPUT_TO_CONTROLLER,)
        elif table.miss.next_table is not None:
            goto_table = self.table(table.miss.next_table).table_id
        return FlowMod(
            table_id=table.table_id,
            command=Command.ADD,
            match=Match(),
            priority=TABLE_MISS.priority,
            actions=actions,
            goto_table=goto_table,
            cookie=cookie,
        )

    def check(self, flow_mod: FlowMod, port_role: PortRoleOf) -> FlowMod:
        """Return ``flow_mod`` if the declaration allows it, else raise ``PipelineViolation``.

        ``port_role`` names the role of a physical port number (``None`` if unknown).
        """
        if flow_mod.table_id == ALL_TABLES:
            if flow_mod.match:
                raise PipelineViolation("a delete across all tables must not match on fields")
            return flow_mod
        table = self._by_id.get(flow_mod.table_id)
        if table is None:
            raise PipelineViolation(f"table {flow_mod.table_id} is not declared")
        self._check_match(table, flow_mod)
        if flow_mod.command is not Command.DELETE:  # only the non-strict delete ignores priority
            self._check_priority(table, flow_mod)
        if flow_mod.goto_table is not None:
            allowed = {self.table(name).table_id for name in table.next_tables}
            if flow_mod.goto_table not in allowed:
                next_tables = list(table.next_tables)
                raise PipelineViolation(
                    f"{table.name}: goto {flow_mod.goto_table} not in {next_tables}"
                )
        for action in flow_mod.actions:
            self._check_action(table, action, port_role)
        if flow_mod.is_table_miss and flow_mod.command in (Command.ADD, Command.MODIFY_STRICT):
            declared = self.table_miss_flow(table, flow_mod.cookie)
            if (flow_mod.actions, flow_mod.goto_table) != (declared.actions, declared.goto_table):
                raise PipelineViolation(
                    f"{table.name}: table-miss flow must {table.miss.describe()}"
                )
        self._check_meter(table, flow_mod)
        return flow_mod

    def _check_meter(self, table: TableSpec, flow_mod: FlowMod) -> None:
        allowed = {self._meters_by_name[name].meter_id for name in table.meters}
        if flow_mod.meter_id is not None and flow_mod.meter_id not in allowed:
            raise PipelineViolation(
                f"{table.name}: meter {flow_mod.meter_id} is not one of {sorted(allowed)}"
            )
        punts = any(
            isinstance(action, Output) and action.port == CONTROLLER_PORT
            for action in flow_mod.actions
        )
        if punts and table.meters and flow_mod.meter_id is None:
            raise PipelineViolation(f"{table.name}: punts go through one of its meters")

    @staticmethod
    def _check_match(table: TableSpec, flow_mod: FlowMod) -> None:
        for name in flow_mod.match:
            if name not in table.match_fields:
                raise PipelineViolation(f"{table.name}: match field {name} is not declared")
            if flow_mod.match.is_masked(name) and name not in table.maskable_fields:
                raise PipelineViolation(f"{table.name}: match field {name} may not be masked")

    @staticmethod
    def _check_priority(table: TableSpec, flow_mod: FlowMod) -> None:
        if flow_mod.priority not in {band.priority for band in table.priority_bands}:
            raise PipelineViolation(
                f"{table.name}: priority {flow_mod.priority} is in no declared band"
            )
        if flow_mod.priority == TABLE_MISS.priority and flow_mod.match:
            raise PipelineViolation(f"{table.name}: priority 0 is reserved for the table-miss flow")

    @staticmethod
    def _check_action(table: TableSpec, action: Action, port_role: PortRoleOf) -> None:
        if isinstance(action, SetField) and action.field not in table.set_fields:
            raise PipelineViolation(f"{table.name}: may not set {action.field}")
        if isinstance(action, DecNwTtl) and not table.dec_nw_ttl:
            raise PipelineViolation(f"{table.name}: may not decrement the hop limit")
        if isinstance(action, Output):
            role = _reserved_port_roles.get(action.port) or port_role(action.port)
            if role is None or role not in table.output_roles:
                raise PipelineViolation(
                    f"{table.name}: may not output to port {action.port:#x} ({role})"
                )
            if role is PortRole.CONTROLLER and action.max_len != NO_BUFFER:
                raise PipelineViolation(
                    f"{table.name}: punts carry the whole packet (max_len NO_BUFFER)"
                )


_reserved_port_roles = {
    IN_PORT: PortRole.IN_PORT,
    CONTROLLER_PORT: PortRole.CONTROLLER,
    LOCAL_PORT: PortRole.LOCAL,
}
