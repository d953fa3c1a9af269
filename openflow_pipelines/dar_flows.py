"""Flow builders for the DAR pipeline; every flowmod is checked against ``DAR_PIPELINE``.

Each ``install_x`` / ``delete_x`` pair takes the flow's location (table,
priority band, match) from one ``_x_slots`` helper, so a delete always
matches exactly what was installed.  Builders return the flowmods (and
``Barrier`` ordering points) in the order the switch must apply them.

Binding changes, and why they are ordered as they are:

* ``install_binding``: decap rule first, barrier, then the encap rules, so
  the tunnel accepts the mobile node's uplink before its downlink arrives.
* ``replace_binding`` (new CoA for a bound HoA): ``install_binding`` for the
  new CoA, whose encap ADDs have the same match and priority as the old ones
  and so replace their actions atomically (downlink goes to exactly one CoA
  at every moment); barrier; then delete the old CoA's decap rule (uplink
  from the old CoA is accepted until the new one is).
* ``delete_binding``: encap and decap rules by strict delete.

The controller sends a barrier after a binding change and waits for its
reply before the Binding Acknowledgement leaves (P12).

At switch connection ``pipeline_setup`` replaces the punt meters (delete,
barrier, add, barrier: a delete also removes the flows using the meter,
and an add of an existing meter would fail) before ``base_flows``, whose
punts point to them.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass

from openflow_pipelines import wire
from openflow_pipelines.cookies import (
    FlowKind,
    encode_cookie,
    kind_filter,
    other_generations_filters,
)
from openflow_pipelines.dar_config import PUNT_BURST_FRACTION, DarPipelineConfig
from openflow_pipelines.dar_pipeline import (
    CLASSIFY,
    CLASSIFY_BY_INPUT_PORT,
    CLASSIFY_FORWARD,
    CLASSIFY_NOT_ROUTED,
    CLASSIFY_PUNT,
    CLASSIFY_PUNT_DOMAIN,
    CLASSIFY_TO_LOCAL,
    DAR_PIPELINE,
    DECAP,
    DECAP_BINDING,
    DOMAIN_MOBILITY_METER,
    ENCAP,
    ENCAP_BINDING,
    ENCAP_HAIRPIN,
    LINK_LOCAL_PREFIX,
    MOBILITY_METER,
    NEIGHBOR_DISCOVERY_METER,
    NOT_ROUTED_DESTINATIONS,
    RESOLVE_METER,
    ROUTE,
    ROUTE_DEFAULT,
    ROUTE_HOST,
    ROUTE_NOT_ROUTED,
    ROUTE_RESOLVE,
)
from openflow_pipelines.model import (
    ALL_TABLES,
    ETH_TYPE_IPV6,
    ICMPV6_NEIGHBOR_ADVERTISEMENT,
    ICMPV6_NEIGHBOR_SOLICITATION,
    ICMPV6_ROUTER_SOLICITATION,
    IN_PORT,
    IP_PROTO_GRE,
    IP_PROTO_ICMPV6,
    IP_PROTO_MOBILITY_HEADER,
    LOCAL_PORT,
    MAX_TIMEOUT_S,
    OUTPUT_TO_CONTROLLER,
    Action,
    Barrier,
    Command,
    DecNwTtl,
    DropBand,
    FlowMod,
    FlowModFlag,
    FlowStep,
    Match,
    MeterCommand,
    MeterFlag,
    MeterMod,
    Output,
    SetField,
    ipv6_packed,
    ipv6_prefix,
    ipv6_text,
)
from openflow_pipelines.pipeline import MeterSpec, PriorityBand, TableSpec

# The controller removes binding flows when the binding expires; the switch's
# hard timeout only catches a controller that failed to, so it runs later.
BINDING_HARD_TIMEOUT_MARGIN_S = 60


@dataclass(frozen=True)
class _FlowSlot:
    """Where one flow lives: an ADD and a DELETE_STRICT of the same slot address the same flow."""

    table: TableSpec
    band: PriorityBand
    match: Match


@dataclass(frozen=True)
class _BindingSlots:
    decap: _FlowSlot
    encap: _FlowSlot
    encap_hairpin: _FlowSlot


def _ipv6(**fields: object) -> Match:
    return Match(eth_type=ETH_TYPE_IPV6, **fields)


def _icmpv6(icmpv6_type: int, **fields: object) -> Match:
    return _ipv6(ip_proto=IP_PROTO_ICMPV6, icmpv6_type=icmpv6_type, **fields)


def _add(
    dar: DarPipelineConfig,
    slot: _FlowSlot,
    cookie: int,
    actions: tuple[Action, ...] = (),
    goto: TableSpec | None = None,
    hard_timeout: int = 0,
    flags: FlowModFlag = FlowModFlag.NONE,
    meter: MeterSpec | None = None,
) -> FlowMod:
    flow_mod = FlowMod(
        table_id=slot.table.table_id,
        command=Command.ADD,
        match=slot.match,
        priority=slot.band.priority,
        actions=actions,
        goto_table=None if goto is None else goto.table_id,
        cookie=cookie,
        hard_timeout=hard_timeout,
        flags=flags,
        meter_id=None if meter is None else meter.meter_id,
    )
    return DAR_PIPELINE.check(flow_mod, dar.port_role)


def _delete_strict(dar: DarPipelineConfig, slot: _FlowSlot, kind: FlowKind) -> FlowMod:
    # The cookie filter keeps a strict delete off flows other owners might hold at the same slot.
    cookie, cookie_mask = kind_filter(kind)
    flow_mod = FlowMod(
        table_id=slot.table.table_id,
        command=Command.DELETE_STRICT,
        match=slot.match,
        priority=slot.band.priority,
        cookie=cookie,
        cookie_mask=cookie_mask,
    )
    return DAR_PIPELINE.check(flow_mod, dar.port_role)


def _to_core_actions(dar: DarPipelineConfig) -> tuple[Action, ...]:
    return (
        SetField("eth_src", dar.router_mac),
        SetField("eth_dst", dar.core_next_hop_mac),
        Output(dar.core_port),
    )


def pipeline_setup(dar: DarPipelineConfig, generation: int) -> list[FlowStep]:
    """Everything a switch gets when it connects: the punt meters, then ``base_flows``."""
    return [*punt_meters(dar), *base_flows(dar, generation)]


def _punt_rate(dar: DarPipelineConfig, meter: MeterSpec) -> int:
    rates = dar.punt_rates
    by_meter = {
        DOMAIN_MOBILITY_METER: rates.domain_mobility_pps,
        MOBILITY_METER: rates.mobility_pps,
        NEIGHBOR_DISCOVERY_METER: rates.neighbor_discovery_pps,
        RESOLVE_METER: rates.resolve_pps,
    }
    return by_meter[meter]


def punt_meters(dar: DarPipelineConfig) -> list[FlowStep]:
    """Replace every punt meter of ``dar``: deletes, barrier, adds, barrier.

    A packet-per-second drop band each, with a tenth of a second's burst, and
    statistics on (``ovs-ofctl -O OpenFlow13 meter-stats``).  The flows of an
    older generation that used the meters go with the deletes; ``base_flows``
    puts them back right after.
    """
    flags = MeterFlag.PKTPS | MeterFlag.BURST | MeterFlag.STATS
    deletes: list[FlowStep] = [
        MeterMod(MeterCommand.DELETE, meter.meter_id) for meter in DAR_PIPELINE.meters
    ]
    adds: list[FlowStep] = []
    for meter in DAR_PIPELINE.meters:
        rate = _punt_rate(dar, meter)
        band = DropBand(rate, max(1, rate // PUNT_BURST_FRACTION))
        adds.append(MeterMod(MeterCommand.ADD, meter.meter_id, flags, (band,)))
    return [*deletes, Barrier(), *adds, Barrier()]


def base_flows(dar: DarPipelineConfig, generation: int) -> list[FlowMod]:
    """The pipeline skeleton: table-miss flows, dispatch, punts, filters and routes.

    Order does not matter; reinstalling with a new generation replaces each
    flow in place (same match and priority).  Punts go through the meters of
    :func:`punt_meters`, which must be in the switch first.
    """
    cookie = encode_cookie(FlowKind.PIPELINE, generation)
    flows = [
        DAR_PIPELINE.check(DAR_PIPELINE.table_miss_flow(table, cookie), dar.port_role)
        for table in DAR_PIPELINE.tables
    ]
    flows += [
        _add(dar, slot, cookie, actions, goto, meter=meter)
        for slot, actions, goto, meter in _classify_rules(dar)
    ]
    flows += [
        _add(dar, slot, cookie, actions, meter=meter) for slot, actions, meter in _route_rules(dar)
    ]
    return flows


_Rule = tuple[_FlowSlot, tuple[Action, ...], TableSpec | None, MeterSpec | None]


def _classify_rules(dar: DarPipelineConfig) -> list[_Rule]:
    def rule(
        band: PriorityBand,
        match: Match,
        actions: tuple[Action, ...] = (),
        goto: TableSpec | None = None,
        meter: MeterSpec | None = None,
    ) -> _Rule:
        return _FlowSlot(CLASSIFY, band, match), actions, goto, meter

    punt = (OUTPUT_TO_CONTROLLER,)
    nd = NEIGHBOR_DISCOVERY_METER
    to_local = (Output(LOCAL_PORT),)
    physical_ports = (*dar.access_ports, dar.core_port)
    rules = [
        rule(CLASSIFY_BY_INPUT_PORT, _ipv6(in_port=dar.gre_port), goto=DECAP),
        # After tnl_push the outer packet re-enters this bridge from LOCAL.
        rule(CLASSIFY_BY_INPUT_PORT, _ipv6(in_port=LOCAL_PORT), _to_core_actions(dar)),
        # OVS pops a tunnel only on output to the port holding local_ip (LOCAL)...
        rule(
            CLASSIFY_TO_LOCAL,
            _ipv6(in_port=dar.core_port, ip_proto=IP_PROTO_GRE, ipv6_dst=dar.anchor_address),
            to_local,
        ),
        # ...and learns tunnel next-hop MACs only from advertisements output there.
        rule(
            CLASSIFY_TO_LOCAL,
            _icmpv6(ICMPV6_NEIGHBOR_ADVERTISEMENT, in_port=dar.core_port),
            to_local,
        ),
    ]
    for port in dar.access_ports:
        solicitation = _icmpv6(ICMPV6_ROUTER_SOLICITATION, in_port=port)
        rules.append(rule(CLASSIFY_PUNT, solicitation, punt, meter=nd))
        # Neighbor Advertisements teach the controller mobile nodes' MACs.
        advertisement = _icmpv6(ICMPV6_NEIGHBOR_ADVERTISEMENT, in_port=port)
        rules.append(rule(CLASSIFY_PUNT, advertisement, punt, meter=nd))
    for port in physical_ports:
        for address in dar.own_addresses:
            ns_for_own = _icmpv6(ICMPV6_NEIGHBOR_SOLICITATION, in_port=port, ipv6_nd_target=address)
            rules.append(rule(CLASSIFY_PUNT, ns_for_own, punt, meter=nd))
        mobility_header = {
            "in_port": port,
            "ip_proto": IP_PROTO_MOBILITY_HEADER,
            "ipv6_dst": dar.anchor_address,
        }
        for prefix in dar.domain_prefixes:
            from_domain = _ipv6(**mobility_header, ipv6_src=ipv6_prefix(prefix))
            rules.append(rule(CLASSIFY_PUNT_DOMAIN, from_domain, punt, meter=DOMAIN_MOBILITY_METER))
        rules.append(rule(CLASSIFY_PUNT, _ipv6(**mobility_header), punt, meter=MOBILITY_METER))
    link_local_source = _ipv6(in_port=dar.core_port, ipv6_src=ipv6_prefix(LINK_LOCAL_PREFIX))
    rules.append(rule(CLASSIFY_NOT_ROUTED, link_local_source))
    for port in dar.access_ports:
        for prefix in dar.access_prefixes:
            rules.append(
                rule(
                    CLASSIFY_FORWARD, _ipv6(in_port=port, ipv6_src=ipv6_prefix(prefix)), goto=ENCAP
                )
            )
    rules.append(rule(CLASSIFY_FORWARD, _ipv6(in_port=dar.core_port), goto=ENCAP))
    return rules


_RouteRule = tuple[_FlowSlot, tuple[Action, ...], MeterSpec | None]


def _route_rules(dar: DarPipelineConfig) -> list[_RouteRule]:
    def rule(
        band: PriorityBand,
        match: Match,
        actions: tuple[Action, ...] = (),
        meter: MeterSpec | None = None,
    ) -> _RouteRule:
        return _FlowSlot(ROUTE, band, match), actions, meter

    not_routed = [ipaddress.IPv6Network(prefix) for prefix in NOT_ROUTED_DESTINATIONS]
    subnet_router_anycast = [
        ipaddress.IPv6Network(prefix).network_address.compressed for prefix in dar.access_prefixes
    ]
    # An own address inside a dropped prefix is already dropped; a second rule would overlap.
    own_hosts = {
        ipaddress.IPv6Address(address)
        for address in (*dar.own_addresses, *subnet_router_anycast)
        if not any(ipaddress.IPv6Address(address) in network for network in not_routed)
    }
    rules = [
        rule(ROUTE_NOT_ROUTED, _ipv6(ipv6_dst=ipv6_prefix(prefix)))
        for prefix in NOT_ROUTED_DESTINATIONS
    ]
    rules += [
        rule(ROUTE_NOT_ROUTED, _ipv6(ipv6_dst=address.compressed)) for address in sorted(own_hosts)
    ]
    rules += [
        rule(
            ROUTE_RESOLVE,
            _ipv6(ipv6_dst=ipv6_prefix(prefix)),
            (OUTPUT_TO_CONTROLLER,),
            RESOLVE_METER,
        )
        for prefix in dar.access_prefixes
    ]
    rules.append(rule(ROUTE_DEFAULT, _ipv6(), (DecNwTtl(), *_to_core_actions(dar))))
    return rules


def binding_hard_timeout(expires_in_s: float) -> int:
    """Hard timeout for a binding's flows: its remaining lifetime plus a margin.

    OVS counts a hard timeout from the flow's (re)installation, so every
    refresh reinstalls the flows with the new remaining lifetime.  A binding
    outliving the 16-bit field (about 18 h; CGA bindings may last 24 h, P12)
    gets no hard timeout rather than one that would cut it short.
    """
    if expires_in_s <= 0:
        raise ValueError(f"binding already expired (expires_in_s={expires_in_s})")
    seconds = math.ceil(expires_in_s) + BINDING_HARD_TIMEOUT_MARGIN_S
    return seconds if seconds <= MAX_TIMEOUT_S else 0


def _binding_addresses(dar: DarPipelineConfig, hoa: str, coa: str) -> tuple[str, str]:
    """Canonical ``hoa`` and ``coa``, checked for a binding on ``dar``."""
    hoa_packed, coa_packed = ipv6_packed(hoa), ipv6_packed(coa)
    _check_binding_packed(dar, hoa_packed, coa_packed)
    return ipv6_text(hoa_packed), ipv6_text(coa_packed)


def _check_binding_packed(dar: DarPipelineConfig, hoa: bytes, coa: bytes) -> None:
    """Refuse a binding of ``hoa`` to ``coa`` (16-byte addresses) that ``dar`` cannot carry."""
    _unicast_packed(hoa, "home address")
    _unicast_packed(coa, "care-of address")
    if dar.access_prefix_of_packed(hoa) is None:
        raise ValueError(
            f"home address {ipv6_text(hoa)} is not in an access prefix of this DAR (P7)"
        )
    if dar.is_own_packed(hoa):
        raise ValueError(f"home address {ipv6_text(hoa)} is an address of the DAR itself")
    if dar.access_prefix_of_packed(coa) is not None:
        # The tunnel would be routed back into this DAR's own access link.
        raise ValueError(f"care-of address {ipv6_text(coa)} is in this DAR's access prefixes")


def _binding_slots(dar: DarPipelineConfig, hoa: str, coa: str) -> _BindingSlots:
    hoa, coa = _binding_addresses(dar, hoa, coa)
    return _BindingSlots(
        decap=_FlowSlot(DECAP, DECAP_BINDING, _ipv6(tun_ipv6_src=coa, ipv6_src=hoa)),
        encap=_FlowSlot(ENCAP, ENCAP_BINDING, _ipv6(ipv6_dst=hoa)),
        encap_hairpin=_FlowSlot(ENCAP, ENCAP_HAIRPIN, _ipv6(in_port=dar.gre_port, ipv6_dst=hoa)),
    )


_LOOPBACK_OR_UNSPECIFIED = frozenset({bytes(15) + b"\x01", bytes(16)})


def _unicast(address: str, role: str) -> str:
    packed = ipv6_packed(address)
    _unicast_packed(packed, role)
    return ipv6_text(packed)


def _unicast_packed(packed: bytes, role: str) -> None:
    if len(packed) != 16:
        raise ValueError(f"{role} is {len(packed)} bytes, not 16")
    multicast = packed[0] == 0xFF
    link_local = packed[0] == 0xFE and packed[1] & 0xC0 == 0x80  # fe80::/10
    if multicast or link_local or packed in _LOOPBACK_OR_UNSPECIFIED:
        raise ValueError(f"{role} {ipv6_text(packed)} is not a routable unicast address")


# Binding flows are built and checked once per DAR and generation with these
# addresses, then filled per binding (wire.FlowModTemplate): a Binding Update
# needs its flows in microseconds, not the time a full check takes.
_TEMPLATE_CARE_OF_CANDIDATES = ("100::1", "100:0:0:1::1")  # discard-only prefix, RFC 6666


def _template_addresses(dar: DarPipelineConfig) -> tuple[str, str]:
    prefix = ipaddress.IPv6Network(dar.access_prefixes[0])
    hoa = ipv6_text((prefix.network_address + 0xFFFF_FFFF_FFFF_FFFE).packed)
    coa = next(c for c in _TEMPLATE_CARE_OF_CANDIDATES if dar.access_prefix_of(c) is None)
    return _binding_addresses(dar, hoa, coa)


@dataclass(frozen=True)
class _Template:
    """Checked flow steps for placeholder addresses, each flow-mod ready to be filled."""

    hoa: bytes
    coa: bytes
    parts: tuple[wire.FlowModTemplate | FlowStep, ...]

    @classmethod
    def of(cls, hoa: str, coa: str, steps: Iterable[FlowStep]) -> _Template:
        placeholders = (ipv6_packed(hoa), ipv6_packed(coa))
        parts = tuple(
            wire.FlowModTemplate(step, placeholders) if isinstance(step, FlowMod) else step
            for step in steps
        )
        return cls(*placeholders, parts)

    def filled(self, hoa: bytes, coa: bytes, hard_timeout: int) -> list[FlowStep]:
        addresses = {self.hoa: hoa, self.coa: coa}
        return [
            part.filled(addresses, hard_timeout) if isinstance(part, wire.FlowModTemplate) else part
            for part in self.parts
        ]

    def filled_flow_mods(self, hoa: bytes, coa: bytes) -> list[FlowMod]:
        """The flow-mods alone (for deletes: no hard timeout)."""
        addresses = {self.hoa: hoa, self.coa: coa}
        return [
            part.filled(addresses, 0)
            for part in self.parts
            if isinstance(part, wire.FlowModTemplate)
        ]


# Templates by (id of the DAR config, generation; None for deletes): hashing a
# config costs more than filling its flows.  An entry holds its config, so no
# other object can take that id while the entry is kept.
_TEMPLATES_KEPT = 64
_templates: dict[tuple[int, int | None], tuple[DarPipelineConfig, _Template]] = {}


def _keep_template(dar: DarPipelineConfig, generation: int | None, template: _Template) -> None:
    if len(_templates) >= _TEMPLATES_KEPT:
        del _templates[next(iter(_templates))]  # the oldest
    _templates[id(dar), generation] = (dar, template)


def _install_template(dar: DarPipelineConfig, generation: int) -> _Template:
    kept = _templates.get((id(dar), generation))
    if kept is not None:
        return kept[1]
    hoa, coa = _template_addresses(dar)
    template = _Template.of(hoa, coa, checked_install_binding(dar, hoa, coa, generation, 1))
    _keep_template(dar, generation, template)
    return template


def _delete_template(dar: DarPipelineConfig) -> _Template:
    kept = _templates.get((id(dar), None))
    if kept is not None:
        return kept[1]
    hoa, coa = _template_addresses(dar)
    template = _Template.of(hoa, coa, checked_delete_binding(dar, hoa, coa))
    _keep_template(dar, None, template)
    return template


def install_binding(
    dar: DarPipelineConfig, hoa: str, coa: str, generation: int, expires_in_s: float
) -> list[FlowStep]:
    """Tunnel ``hoa``'s traffic to and from ``coa`` (P14, P15); also refreshes a binding.

    Decap first, then encap, so uplink works before downlink arrives.  Reusing
    this for the same HoA and a new CoA leaves the old decap rule behind: use
    ``replace_binding`` for a CoA change.  Same flows as
    :func:`checked_install_binding`, filled from a checked template.
    """
    return install_binding_packed(dar, ipv6_packed(hoa), ipv6_packed(coa), generation, expires_in_s)


def install_binding_packed(
    dar: DarPipelineConfig, hoa: bytes, coa: bytes, generation: int, expires_in_s: float
) -> list[FlowStep]:
    """:func:`install_binding` for 16-byte addresses (the controller's hot path)."""
    _check_binding_packed(dar, hoa, coa)
    hard_timeout = binding_hard_timeout(expires_in_s)
    return _install_template(dar, generation).filled(hoa, coa, hard_timeout)


def checked_install_binding(
    dar: DarPipelineConfig, hoa: str, coa: str, generation: int, expires_in_s: float
) -> list[FlowStep]:
    """:func:`install_binding`, every flow built and checked against ``DAR_PIPELINE``."""
    slots = _binding_slots(dar, hoa, coa)
    cookie = encode_cookie(FlowKind.BINDING, generation)
    hard_timeout = binding_hard_timeout(expires_in_s)
    # SEND_FLOW_REM tells the controller if the switch's timeout ever beats its own expiry.
    flags = FlowModFlag.SEND_FLOW_REM
    tunnel = (DecNwTtl(), SetField("tun_ipv6_dst", coa))

    def add(
        slot: _FlowSlot, actions: tuple[Action, ...] = (), goto: TableSpec | None = None
    ) -> FlowMod:
        return _add(dar, slot, cookie, actions, goto, hard_timeout, flags)

    return [
        add(slots.decap, goto=ENCAP),
        Barrier(),
        add(slots.encap, (*tunnel, Output(dar.gre_port))),
        add(slots.encap_hairpin, (*tunnel, Output(IN_PORT))),
    ]


def replace_binding(
    dar: DarPipelineConfig,
    hoa: str,
    old_coa: str,
    new_coa: str,
    generation: int,
    expires_in_s: float,
) -> list[FlowStep]:
    """Move ``hoa`` from ``old_coa`` to ``new_coa`` with no moment tunnelling to both or none.

    The encap rules are replaced in place (same match and priority); the old
    CoA's decap rule goes only after the new CoA's is in.
    """
    return replace_binding_packed(
        dar, ipv6_packed(hoa), ipv6_packed(old_coa), ipv6_packed(new_coa), generation, expires_in_s
    )


def replace_binding_packed(
    dar: DarPipelineConfig,
    hoa: bytes,
    old_coa: bytes,
    new_coa: bytes,
    generation: int,
    expires_in_s: float,
) -> list[FlowStep]:
    """:func:`replace_binding` for 16-byte addresses (the controller's hot path)."""
    if old_coa == new_coa:
        raise ValueError("same care-of address: refresh with install_binding")
    old_decap = delete_binding_packed(dar, hoa, old_coa)[-1]
    return [
        *install_binding_packed(dar, hoa, new_coa, generation, expires_in_s),
        Barrier(),
        old_decap,
    ]


def delete_binding(dar: DarPipelineConfig, hoa: str, coa: str) -> list[FlowMod]:
    """Remove the binding of ``hoa`` to ``coa`` (P11), whatever generation installed it.

    The encap rules match on the HoA alone, so pass the binding's current CoA.
    The decap rule is the last.  Same flows as :func:`checked_delete_binding`.
    """
    return delete_binding_packed(dar, ipv6_packed(hoa), ipv6_packed(coa))


def delete_binding_packed(dar: DarPipelineConfig, hoa: bytes, coa: bytes) -> list[FlowMod]:
    """:func:`delete_binding` for 16-byte addresses (the controller's hot path)."""
    _check_binding_packed(dar, hoa, coa)
    return _delete_template(dar).filled_flow_mods(hoa, coa)


def checked_delete_binding(dar: DarPipelineConfig, hoa: str, coa: str) -> list[FlowMod]:
    """:func:`delete_binding`, every flow built and checked against ``DAR_PIPELINE``."""
    slots = _binding_slots(dar, hoa, coa)
    return [
        _delete_strict(dar, slot, FlowKind.BINDING)
        for slot in (slots.encap, slots.encap_hairpin, slots.decap)
    ]


def _host_slot(dar: DarPipelineConfig, address: str) -> _FlowSlot:
    address = _unicast(address, "host address")
    if dar.access_prefix_of(address) is None:
        raise ValueError(f"host {address} is not in an access prefix of this DAR")
    if dar.is_own_address(address):
        raise ValueError(f"host {address} is an address of the DAR itself")
    return _FlowSlot(ROUTE, ROUTE_HOST, _ipv6(ipv6_dst=address))


def install_host(
    dar: DarPipelineConfig, address: str, mac: str, port: int, generation: int
) -> list[FlowMod]:
    """Route ``address`` (a mobile node on access port ``port``) directly to ``mac``."""
    if port not in dar.access_ports:
        raise ValueError(f"port {port} is not an access port of this DAR")
    actions = (
        DecNwTtl(),
        SetField("eth_src", dar.router_mac),
        SetField("eth_dst", mac),
        Output(port),
    )
    return [_add(dar, _host_slot(dar, address), encode_cookie(FlowKind.HOST, generation), actions)]


def delete_host(dar: DarPipelineConfig, address: str) -> list[FlowMod]:
    return [_delete_strict(dar, _host_slot(dar, address), FlowKind.HOST)]


def delete_other_generations(dar: DarPipelineConfig, generation: int) -> list[FlowMod]:
    """Delete every FAMA flow not of ``generation``, in every table: after a reinstall.

    32 non-strict deletes (cookie-masked, see ``cookies``): each costs OVS
    time linear in its tables, so this runs once per connection, never per
    binding; no flow-stats round trip is needed to find old generations.
    """
    return [
        DAR_PIPELINE.check(
            FlowMod(
                table_id=ALL_TABLES,
                command=Command.DELETE,
                match=Match(),
                cookie=cookie,
                cookie_mask=cookie_mask,
            ),
            dar.port_role,
        )
        for cookie, cookie_mask in other_generations_filters(generation)
    ]
