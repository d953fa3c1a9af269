"""Neutral, immutable OpenFlow 1.3 flow model.

The flow builders, the simulated switch and the wire encoder (``wire``) speak
this model; nothing here imports ryu.

Match fields carry OpenFlow 1.3 OXM names as Ryu's ``OFPMatch`` keyword
arguments spell them, with values in the textual form Ryu accepts: integers
for numeric fields, compressed IPv6 text, lower-case ``aa:bb:cc:dd:ee:ff``
MAC text, and ``(value, mask)`` pairs for masked fields.  A ``Match`` is a
read-only mapping (the tests write ``OFPMatch(**flow_mod.match)`` to compare
the wire encoding with Ryu's).

Values are normalised and checked when a ``Match``, an action or a
``FlowMod`` is built, including the OpenFlow prerequisites Open vSwitch
enforces (``ipv6_dst`` needs ``eth_type=0x86dd``, ``dec_nw_ttl`` needs an IP
``eth_type`` in the same flow's match, ...), so a mistake fails in a unit
test rather than as an OFPT_ERROR from the switch.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import ipaddress
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# OpenFlow 1.3 reserved port numbers (ofp_port_no) and other wire constants.
MAX_PHYSICAL_PORT = 0xFFFFFF00  # OFPP_MAX
IN_PORT = 0xFFFFFFF8  # OFPP_IN_PORT: the only way to send a packet back where it came from
CONTROLLER_PORT = 0xFFFFFFFD  # OFPP_CONTROLLER
LOCAL_PORT = 0xFFFFFFFE  # OFPP_LOCAL: the bridge's own internal port
NO_BUFFER = 0xFFFF  # OFPCML_NO_BUFFER: punt the whole packet, keep nothing buffered
MAX_TABLE_ID = 0xFE  # OFPTT_MAX
ALL_TABLES = 0xFF  # OFPTT_ALL, valid only in deletes
MAX_PRIORITY = 0xFFFF
MAX_TIMEOUT_S = 0xFFFF  # idle/hard timeouts are 16-bit seconds
MAX_COOKIE = (1 << 64) - 1
MAX_METER_ID = 0xFFFF0000  # OFPM_MAX; ids above it are virtual meters (slowpath, controller)
MAX_METER_RATE = 0xFFFFFFFF  # ofp_meter_band_header.rate is 32-bit

# Protocol numbers the DAR pipeline matches on.
ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_IPV6 = 0x86DD
IP_PROTO_GRE = 47
IP_PROTO_ICMPV6 = 58
IP_PROTO_MOBILITY_HEADER = 135  # RFC 6275 §6.1
ICMPV6_ROUTER_SOLICITATION = 133
ICMPV6_NEIGHBOR_SOLICITATION = 135
ICMPV6_NEIGHBOR_ADVERTISEMENT = 136

_IP_ETH_TYPES = frozenset({ETH_TYPE_IPV4, ETH_TYPE_IPV6})

ScalarValue = int | str
MaskedValue = tuple[str, str]
MatchValue = ScalarValue | MaskedValue


def ipv6_packed(text: str) -> bytes:
    """The 16 bytes of an IPv6 address in text form; ``ValueError`` if it is not one."""
    try:
        return socket.inet_pton(socket.AF_INET6, text)
    except (OSError, TypeError):
        raise ValueError(f"{text!r} is not an IPv6 address") from None


def ipv6_text(packed: bytes) -> str:
    """Canonical text of a 16-byte address, as ``ipaddress``'s ``compressed`` spells it.

    ``inet_ntop`` is an order of magnitude faster and agrees (RFC 5952)
    except for the dotted forms it gives IPv4-mapped and -compatible addresses.
    """
    text = socket.inet_ntop(socket.AF_INET6, packed)
    return ipaddress.IPv6Address(packed).compressed if "." in text else text


def canonical_ipv6(text: str) -> str:
    return ipv6_text(ipv6_packed(text))


class FieldKind(enum.Enum):
    UINT = "uint"
    IPV6 = "ipv6"
    MAC = "mac"


@dataclass(frozen=True)
class FieldSpec:
    """One OXM field: its value type, width, OpenFlow maskability and prerequisites.

    ``prerequisites`` lists ``(field, allowed values)`` pairs that a match
    (or, for set-field, the flow's match) must carry, as OpenFlow 1.3 §7.2.3.8
    and Open vSwitch require.
    """

    name: str
    kind: FieldKind
    bits: int
    maskable: bool
    settable: bool
    prerequisites: tuple[tuple[str, frozenset[int]], ...] = ()

    def normalise(self, value: object) -> ScalarValue:
        """Return ``value`` in canonical text/int form, or raise ``ValueError``."""
        if self.kind is FieldKind.UINT:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{self.name}: expected int, got {value!r}")
            if not 0 <= value < (1 << self.bits):
                raise ValueError(f"{self.name}: {value} does not fit {self.bits} bits")
            return value
        if not isinstance(value, str):
            raise ValueError(f"{self.name}: expected text, got {value!r}")
        if self.kind is FieldKind.IPV6:
            try:
                return canonical_ipv6(value)
            except ValueError as error:
                raise ValueError(f"{self.name}: {error}") from None
        if not _MAC_PATTERN.fullmatch(value):
            raise ValueError(f"{self.name}: {value!r} is not a MAC address aa:bb:cc:dd:ee:ff")
        return value.lower()

    def to_int(self, value: ScalarValue) -> int:
        """The integer a normalised value stands for (for masks and comparisons)."""
        if isinstance(value, int):
            return value
        if self.kind is FieldKind.IPV6:
            return int.from_bytes(ipv6_packed(value), "big")
        return int(value.replace(":", ""), 16)


_MAC_PATTERN = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_NEEDS_IPV6 = (("eth_type", frozenset({ETH_TYPE_IPV6})),)
_NEEDS_ICMPV6 = _NEEDS_IPV6 + (("ip_proto", frozenset({IP_PROTO_ICMPV6})),)

_UINT, _IPV6, _MAC = FieldKind.UINT, FieldKind.IPV6, FieldKind.MAC
_ND_TYPES = frozenset({ICMPV6_NEIGHBOR_SOLICITATION, ICMPV6_NEIGHBOR_ADVERTISEMENT})

# Settable as OpenFlow 1.3 set-field allows (header fields, not pipeline fields like in_port).
FIELDS: Mapping[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        FieldSpec("in_port", _UINT, 32, maskable=False, settable=False),
        FieldSpec("eth_type", _UINT, 16, maskable=False, settable=False),
        FieldSpec("eth_src", _MAC, 48, maskable=True, settable=True),
        FieldSpec("eth_dst", _MAC, 48, maskable=True, settable=True),
        FieldSpec("ip_proto", _UINT, 8, False, False, (("eth_type", _IP_ETH_TYPES),)),
        FieldSpec("ipv6_src", _IPV6, 128, maskable=True, settable=True, prerequisites=_NEEDS_IPV6),
        FieldSpec("ipv6_dst", _IPV6, 128, maskable=True, settable=True, prerequisites=_NEEDS_IPV6),
        FieldSpec("icmpv6_type", _UINT, 8, False, True, _NEEDS_ICMPV6),
        FieldSpec(
            "ipv6_nd_target", _IPV6, 128, False, True, (*_NEEDS_ICMPV6, ("icmpv6_type", _ND_TYPES))
        ),
        # Nicira extensions (NXM_NX_TUN_IPV6_SRC/DST): tunnel metadata of Open vSwitch.
        FieldSpec("tun_ipv6_src", _IPV6, 128, maskable=True, settable=True),
        FieldSpec("tun_ipv6_dst", _IPV6, 128, maskable=True, settable=True),
    )
}

_FIELD_ORDER = {name: position for position, name in enumerate(FIELDS)}


def field_spec(name: str) -> FieldSpec:
    try:
        return FIELDS[name]
    except KeyError:
        raise ValueError(f"unknown match field {name!r}; known: {sorted(FIELDS)}") from None


def ipv6_prefix(prefix: str) -> MaskedValue:
    """``"2001:db8:1::/64"`` -> ``("2001:db8:1::", "ffff:ffff:ffff:ffff::")`` for a masked match."""
    network = ipaddress.IPv6Network(prefix)  # strict: host bits must be zero
    return network.network_address.compressed, network.netmask.compressed


def _normalise_match_value(name: str, value: object) -> MatchValue:
    spec = field_spec(name)
    if not isinstance(value, tuple):
        return spec.normalise(value)
    if not spec.maskable:
        raise ValueError(f"{name} cannot be masked in OpenFlow 1.3")
    if len(value) != 2:
        raise ValueError(f"{name}: a masked value is a (value, mask) pair, got {value!r}")
    field_value, mask = (spec.normalise(part) for part in value)
    mask_bits = spec.to_int(mask)
    if mask_bits == 0:
        raise ValueError(f"{name}: an all-zero mask matches anything; leave the field out")
    if spec.to_int(field_value) & ~mask_bits:
        # OVS rejects value bits outside the mask (OFPBMC_BAD_WILDCARDS).
        raise ValueError(f"{name}: value {field_value} has bits outside mask {mask}")
    if mask_bits == (1 << spec.bits) - 1:
        return field_value  # a full mask is an exact match: one canonical form
    assert isinstance(field_value, str) and isinstance(mask, str)  # maskable fields are text
    return field_value, mask


def prerequisites_met(spec: FieldSpec, match: Mapping[str, MatchValue]) -> bool:
    return all(match.get(required) in allowed for required, allowed in spec.prerequisites)


class Match(Mapping[str, MatchValue]):
    """An immutable OpenFlow 1.3 match: ``Match(eth_type=0x86dd, ipv6_dst="2001:db8::1")``.

    An empty ``Match()`` matches every packet (table-miss flows, wide deletes).
    """

    __slots__ = ("_fields",)
    _fields: dict[str, MatchValue]

    def __init__(self, **fields: object) -> None:
        normalised = {name: _normalise_match_value(name, value) for name, value in fields.items()}
        for name in normalised:
            spec = FIELDS[name]
            if not prerequisites_met(spec, normalised):
                wanted = ", ".join(
                    f"{field} in {sorted(values)}" for field, values in spec.prerequisites
                )
                raise ValueError(f"match on {name} needs {wanted}")
        # Canonical order (prerequisites first) so equal matches print alike.
        ordered = sorted(normalised.items(), key=lambda item: _FIELD_ORDER[item[0]])
        object.__setattr__(self, "_fields", dict(ordered))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Match is immutable")

    def __getitem__(self, name: str) -> MatchValue:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __hash__(self) -> int:
        return hash(tuple(self._fields.items()))

    def __repr__(self) -> str:
        return f"Match({', '.join(f'{name}={value!r}' for name, value in self._fields.items())})"

    def is_masked(self, name: str) -> bool:
        return isinstance(self._fields.get(name), tuple)


@dataclass(frozen=True)
class Output:
    """Send the packet out of ``port``; ``max_len`` only for the controller port."""

    port: int
    max_len: int | None = None

    def __post_init__(self) -> None:
        reserved = {IN_PORT, CONTROLLER_PORT, LOCAL_PORT}
        if not (0 < self.port < MAX_PHYSICAL_PORT or self.port in reserved):
            raise ValueError(
                f"output port {self.port:#x} is neither physical nor a supported reserved port"
            )
        if self.port == CONTROLLER_PORT:
            if self.max_len is None or not 0 <= self.max_len <= NO_BUFFER:
                raise ValueError(
                    "output to the controller needs max_len (NO_BUFFER for the whole packet)"
                )
        elif self.max_len is not None:
            raise ValueError("max_len only applies to output to the controller")


OUTPUT_TO_CONTROLLER = Output(CONTROLLER_PORT, max_len=NO_BUFFER)


@dataclass(frozen=True)
class SetField:
    """Set one header field (OFPAT_SET_FIELD); the value is normalised like a match value."""

    field: str
    value: ScalarValue

    def __post_init__(self) -> None:
        spec = field_spec(self.field)
        if not spec.settable:
            raise ValueError(f"{self.field} cannot be set with set_field")
        object.__setattr__(self, "value", spec.normalise(self.value))


@dataclass(frozen=True)
class DecNwTtl:
    """Decrement the IPv6 hop limit (OFPAT_DEC_NW_TTL); a packet at 0 or 1 is dropped."""


Action = Output | SetField | DecNwTtl


class Command(enum.IntEnum):
    """ofp_flow_mod_command values (OpenFlow 1.3 §7.3.4.1)."""

    ADD = 0
    MODIFY_STRICT = 2
    DELETE = 3
    DELETE_STRICT = 4


class FlowModFlag(enum.IntFlag):
    """ofp_flow_mod_flags used by this project."""

    NONE = 0
    SEND_FLOW_REM = 1  # OFPFF_SEND_FLOW_REM: the switch reports the flow's removal


_DELETES = frozenset({Command.DELETE, Command.DELETE_STRICT})


@dataclass(frozen=True)
class FlowMod:
    """One OFPT_FLOW_MOD, independent of any OpenFlow library.

    Instructions are an optional meter (``meter_id``: the packet passes the
    meter's bands first and a dropping band ends its processing), then
    ``actions`` (one apply-actions instruction, omitted when empty), then an
    optional goto-table; no actions and no goto means drop.  ``cookie_mask``
    filters which flows a modify or delete touches.
    Deletes use ``out_port``/``out_group`` ANY (the shim's default).
    """

    table_id: int
    command: Command
    match: Match
    priority: int = 0
    actions: tuple[Action, ...] = ()
    goto_table: int | None = None
    cookie: int = 0
    cookie_mask: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: FlowModFlag = FlowModFlag.NONE
    meter_id: int | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.table_id <= MAX_TABLE_ID or self.table_id == ALL_TABLES):
            raise ValueError(f"table_id {self.table_id} out of range")
        if self.table_id == ALL_TABLES and self.command not in _DELETES:
            raise ValueError("ALL_TABLES is only valid in a delete")
        if not 0 <= self.priority <= MAX_PRIORITY:
            raise ValueError(f"priority {self.priority} out of range")
        for name, number in (("cookie", self.cookie), ("cookie_mask", self.cookie_mask)):
            if not 0 <= number <= MAX_COOKIE:
                raise ValueError(f"{name} {number:#x} does not fit 64 bits")
        for name, seconds in (
            ("idle_timeout", self.idle_timeout),
            ("hard_timeout", self.hard_timeout),
        ):
            if not 0 <= seconds <= MAX_TIMEOUT_S:
                raise ValueError(f"{name} {seconds} does not fit 16 bits")
        if self.command is Command.ADD and self.cookie_mask:
            raise ValueError(
                "cookie_mask is ignored by ADD; use it only to filter modifies/deletes"
            )
        if self.command in _DELETES:
            if self.actions or self.goto_table is not None:
                raise ValueError("a delete carries no instructions")
            if self.idle_timeout or self.hard_timeout or self.flags:
                raise ValueError("a delete carries no timeouts or flags")
            if self.meter_id is not None:
                raise ValueError("a delete carries no meter")
        if self.meter_id is not None and not 1 <= self.meter_id <= MAX_METER_ID:
            raise ValueError(f"meter_id {self.meter_id} out of range 1..{MAX_METER_ID:#x}")
        if self.goto_table is not None and not self.table_id < self.goto_table <= MAX_TABLE_ID:
            # OpenFlow 1.3 §5.1: goto may only move forward.
            raise ValueError(f"goto table {self.goto_table} must be after table {self.table_id}")
        for action in self.actions:
            self._check_action_prerequisites(action)

    def _check_action_prerequisites(self, action: Action) -> None:
        # Open vSwitch checks actions against the flow's own match (OFPBAC_MATCH_INCONSISTENT).
        if isinstance(action, DecNwTtl) and self.match.get("eth_type") not in _IP_ETH_TYPES:
            raise ValueError("dec_nw_ttl needs an IP eth_type in the match")
        if isinstance(action, SetField) and not prerequisites_met(FIELDS[action.field], self.match):
            raise ValueError(f"set_field {action.field} needs its prerequisites in the match")

    @property
    def is_table_miss(self) -> bool:
        return self.priority == 0 and not self.match


@dataclass(frozen=True)
class Barrier:
    """An ordering point: everything before it takes effect before anything after it.

    The shim sends an OFPT_BARRIER_REQUEST here; it need not wait for the
    reply to keep sending (the switch enforces the order), except where the
    caller needs the flows in place, e.g. before a Binding Acknowledgement (P12).
    """


class MeterFlag(enum.IntFlag):
    """ofp_meter_flags (OpenFlow 1.3 §7.3.4.4)."""

    KBPS = 1  # rates in kilobit per second
    PKTPS = 2  # rates in packets per second
    BURST = 4  # the bands' burst_size applies
    STATS = 8  # the switch keeps counters (ovs-ofctl meter-stats)


class MeterCommand(enum.IntEnum):
    """ofp_meter_mod_command values."""

    ADD = 0
    MODIFY = 1
    DELETE = 2


@dataclass(frozen=True)
class DropBand:
    """OFPMBT_DROP: traffic above ``rate`` (in the meter's unit) is dropped.

    ``burst_size`` (same unit, packets for a PKTPS meter) is how much may
    pass at once above the rate; it only applies with ``MeterFlag.BURST``.
    """

    rate: int
    burst_size: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.rate <= MAX_METER_RATE:
            raise ValueError(f"band rate {self.rate} out of range 1..{MAX_METER_RATE}")
        if not 0 <= self.burst_size <= MAX_METER_RATE:
            raise ValueError(f"band burst_size {self.burst_size} does not fit 32 bits")


@dataclass(frozen=True)
class MeterMod:
    """One OFPT_METER_MOD: add, change or remove a meter flows can point to.

    A flow with ``meter_id`` needs the meter in place first (Open vSwitch
    refuses it otherwise), so a builder puts a ``Barrier`` between the two.
    Deleting a meter also deletes every flow that uses it (OpenFlow 1.3
    §7.3.4.4, as Open vSwitch implements it).
    """

    command: MeterCommand
    meter_id: int
    flags: MeterFlag = MeterFlag(0)
    bands: tuple[DropBand, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.meter_id <= MAX_METER_ID:
            raise ValueError(f"meter_id {self.meter_id} out of range 1..{MAX_METER_ID:#x}")
        if self.command is MeterCommand.DELETE:
            if self.flags or self.bands:
                raise ValueError("a meter delete carries no flags or bands")
            return
        units = self.flags & (MeterFlag.KBPS | MeterFlag.PKTPS)
        if units not in (MeterFlag.KBPS, MeterFlag.PKTPS):
            raise ValueError("a meter counts in exactly one unit: KBPS or PKTPS")
        if not self.bands:
            raise ValueError("a meter needs at least one band")
        if not self.flags & MeterFlag.BURST and any(band.burst_size for band in self.bands):
            raise ValueError("burst_size only applies with MeterFlag.BURST")


FlowStep = FlowMod | MeterMod | Barrier


def with_addresses(flow: FlowMod, addresses: Mapping[bytes, bytes], hard_timeout: int) -> FlowMod:
    """A copy of a checked ``flow`` with IPv6 address values swapped, without checking again.

    For builders that check a flow once as a template and fill it per
    binding: ``addresses`` maps a 16-byte address of the template to the
    16-byte address replacing it, in match fields and set-field actions; it
    must not change afterwards.  Every IPv6 field takes any address and no
    check depends on the value, so whatever held for ``flow`` holds for the
    copy; ``hard_timeout`` must fit 16 bits like any timeout.  The copy
    reads its other fields from ``flow`` and builds its match and actions
    when first read: the controller sends such flows as bytes
    (``wire.FlowModTemplate``) and never reads them.
    """
    if not 0 <= hard_timeout <= MAX_TIMEOUT_S:
        raise ValueError(f"hard_timeout {hard_timeout} does not fit 16 bits")
    copy = object.__new__(_FilledFlowMod)
    fields = copy.__dict__  # item by item: the quickest way to fill it
    fields["_template"] = flow
    fields["_addresses"] = addresses
    fields["hard_timeout"] = hard_timeout
    return copy


class _FromTemplate:
    """A field a filled flow shares with its template.

    A non-data descriptor: a value set on the flow itself (as the dataclass
    ``__init__`` behind ``dataclasses.replace`` sets every field) wins.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, flow: Any, owner: type | None = None) -> Any:
        if flow is None:
            return self
        return getattr(flow._template, self.name)


_FLOW_MOD_FIELDS = tuple(field.name for field in dataclasses.fields(FlowMod))


class _FilledFlowMod(FlowMod):
    """A :class:`FlowMod` from :func:`with_addresses`; equal to the FlowMod it stands for."""

    _template: FlowMod
    _addresses: Mapping[bytes, bytes]

    @functools.cached_property
    def _text_addresses(self) -> dict[str, str]:
        return {ipv6_text(old): ipv6_text(new) for old, new in self._addresses.items()}

    @functools.cached_property
    def match(self) -> Match:
        swap = self._text_addresses
        match = object.__new__(Match)
        object.__setattr__(
            match,
            "_fields",
            {
                field: swap.get(value, value) if isinstance(value, str) else value
                for field, value in self._template.match.items()
            },
        )
        return match

    @functools.cached_property
    def actions(self) -> tuple[Action, ...]:
        actions = self._template.actions
        if not any(isinstance(action, SetField) for action in actions):
            return actions
        swap = self._text_addresses
        return tuple(
            _swapped(action, swap[action.value])
            if isinstance(action, SetField)
            and isinstance(action.value, str)
            and action.value in swap
            else action
            for action in actions
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FlowMod):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _FLOW_MOD_FIELDS)

    __hash__ = FlowMod.__hash__

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FLOW_MOD_FIELDS)
        return f"FlowMod({fields})"


def _share_unswapped_fields() -> None:
    # Every field a filled flow does not build is its template's, so a field
    # added to FlowMod is shared rather than left to its class default.
    for name in _FLOW_MOD_FIELDS:
        if name not in vars(_FilledFlowMod):
            setattr(_FilledFlowMod, name, _FromTemplate(name))


_share_unswapped_fields()


def _swapped(action: SetField, value: str) -> SetField:
    # Built like with_addresses' copies: the field was checked with the template.
    copy = object.__new__(SetField)
    copy.__dict__.update(field=action.field, value=value)
    return copy


_RESERVED_PORT_NAMES = {IN_PORT: "IN_PORT", CONTROLLER_PORT: "CONTROLLER", LOCAL_PORT: "LOCAL"}


def describe_match(match: Match) -> str:
    """``ovs-ofctl``-like text of a match, e.g. ``eth_type=0x86dd,ipv6_src=fe80::/ffc0::``."""
    parts = []
    for name, value in match.items():
        if isinstance(value, tuple):
            parts.append(f"{name}={value[0]}/{value[1]}")
        elif name == "eth_type":
            parts.append(f"{name}={value:#06x}")
        elif name == "in_port" and isinstance(value, int):
            parts.append(f"{name}={_RESERVED_PORT_NAMES.get(value, value)}")
        else:
            parts.append(f"{name}={value}")
    return ",".join(parts) or "any"


def describe_action(action: Action) -> str:
    if isinstance(action, DecNwTtl):
        return "dec_ttl"
    if isinstance(action, SetField):
        return f"set_field:{action.value}->{action.field}"
    port = _RESERVED_PORT_NAMES.get(action.port, str(action.port))
    return f"output:{port}" if action.max_len is None else f"output:{port}:max_len={action.max_len}"


def describe_flow_mod(flow_mod: FlowMod) -> str:
    """One line in ``ovs-ofctl dump-flows`` style, for humans (docs, dumps, failure messages)."""
    head = [f"table={flow_mod.table_id}", f"priority={flow_mod.priority}"]
    if flow_mod.command is not Command.ADD:
        head.insert(0, flow_mod.command.name.lower())
    head.append(f"cookie={flow_mod.cookie:#x}")
    if flow_mod.cookie_mask:
        head[-1] += f"/{flow_mod.cookie_mask:#x}"
    if flow_mod.hard_timeout:
        head.append(f"hard_timeout={flow_mod.hard_timeout}")
    if flow_mod.flags & FlowModFlag.SEND_FLOW_REM:
        head.append("send_flow_rem")
    text = f"{', '.join(head)} {describe_match(flow_mod.match)}"
    if flow_mod.command in _DELETES:
        return text
    actions = [describe_action(action) for action in flow_mod.actions]
    if flow_mod.meter_id is not None:
        actions.insert(0, f"meter:{flow_mod.meter_id}")
    if flow_mod.goto_table is not None:
        actions.append(f"goto_table:{flow_mod.goto_table}")
    return f"{text} actions={','.join(actions) or 'drop'}"


def describe_meter_mod(meter_mod: MeterMod) -> str:
    """One line in ``ovs-ofctl dump-meters`` style."""
    head = f"meter={meter_mod.meter_id}"
    if meter_mod.command is not MeterCommand.ADD:
        head = f"{meter_mod.command.name.lower()} {head}"
    if meter_mod.command is MeterCommand.DELETE:
        return head
    flags = [flag.name.lower() for flag in MeterFlag if flag.name and flag in meter_mod.flags]
    bands = " ".join(
        f"type=drop rate={band.rate}"
        + (f" burst_size={band.burst_size}" if meter_mod.flags & MeterFlag.BURST else "")
        for band in meter_mod.bands
    )
    return f"{head} {' '.join(flags)} bands={bands}"


def describe_step(step: FlowStep) -> str:
    """One line for any builder step: a flow-mod, a meter-mod or a barrier."""
    if isinstance(step, Barrier):
        return "barrier"
    if isinstance(step, MeterMod):
        return describe_meter_mod(step)
    return describe_flow_mod(step)
