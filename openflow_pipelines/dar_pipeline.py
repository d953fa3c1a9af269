"""The one declaration of a Distributed Anchor Router's OpenFlow tables (P14, P15).

Packets walk ``classify -> [decap ->] encap -> route``:

* ``classify`` sorts by input port and packet kind: tunnel packets to
  ``decap``, the DAR's own control traffic to the controller, tunnel
  termination and neighbour replies to the bridge's LOCAL port (where Open
  vSwitch pops tunnels and learns tunnel next hops), packets the DAR
  encapsulated itself (they re-enter from LOCAL) to the core, and everything
  routable to ``encap``.
* ``decap`` lets a decapsulated packet through only if its inner source is
  the home address bound to the care-of address it came from (P15).
* ``encap`` sends packets for a bound home address into the GRE tunnel to
  the care-of address (P14), decrementing the inner hop limit once.
* ``route`` delivers to attached mobile nodes, asks the controller to
  resolve unknown hosts of the access prefixes, drops what must not be
  routed, and sends the rest to the core next hop.

Every forwarded packet has its hop limit decremented exactly once, in
``encap`` or ``route``; a decapsulated packet is forwarded with its inner
hop limit (the outer header's is never copied in).  Nothing reaches the
controller except Router Solicitations, Neighbor Advertisements from access
links, Neighbor Solicitations for the DAR's own addresses, Mobility Headers
to the anchor address, and packets for access-prefix hosts with no route.

Every punt passes an OpenFlow meter first, so a flood costs the controller
no more than the meter's rate.  Four meters keep the kinds apart: an ND
flood cannot starve Binding Updates, nor a flood of Binding Updates from
outside the domain those of mobile nodes whose care-of address is in one of
the domain's access prefixes (the DARs' ingress filtering, ``classify``'s
``forward`` band, keeps other sources out of those prefixes).
"""

from __future__ import annotations

from openflow_pipelines.pipeline import (
    TABLE_MISS,
    MeterSpec,
    Miss,
    PipelineSpec,
    PortRole,
    PriorityBand,
    TableSpec,
)

CLASSIFY_BY_INPUT_PORT = PriorityBand(
    "by_input_port",
    4000,
    "from the GRE port: goto decap; from LOCAL (packets this bridge encapsulated): "
    "MACs of the core next hop, out the core port",
)
CLASSIFY_TO_LOCAL = PriorityBand(
    "to_local",
    3500,
    "from the core port: GRE to the anchor address and Neighbor Advertisements go to LOCAL, "
    "where Open vSwitch terminates its tunnels and snoops tunnel next hops",
)
DOMAIN_MOBILITY_METER = MeterSpec(
    "domain_mobility",
    1,
    "Mobility Headers to the anchor address from sources in the domain's access prefixes "
    "(mobile nodes of the domain, behind the DARs' ingress filtering)",
)
MOBILITY_METER = MeterSpec(
    "mobility", 2, "Mobility Headers to the anchor address from any other source"
)
NEIGHBOR_DISCOVERY_METER = MeterSpec(
    "neighbor_discovery",
    3,
    "Router Solicitations, Neighbor Advertisements, Neighbor Solicitations for an own address",
)
RESOLVE_METER = MeterSpec(
    "resolve", 4, "packets for access-prefix hosts with no route yet (the controller resolves)"
)

CLASSIFY_PUNT_DOMAIN = PriorityBand(
    "punt_domain",
    3100,
    "to the controller through the domain_mobility meter: Mobility Headers to the anchor "
    "address whose source is in an access prefix of the domain",
)
CLASSIFY_PUNT = PriorityBand(
    "punt",
    3000,
    "to the controller, whole packet: Router Solicitations and Neighbor Advertisements from "
    "access ports; Neighbor Solicitations for an own address (neighbor_discovery meter) and "
    "other Mobility Headers to the anchor address (mobility meter) from access and core ports",
)
CLASSIFY_NOT_ROUTED = PriorityBand(
    "not_routed",
    2000,
    "from the core port: link-local sources are never routed (RFC 4291 §2.5.6): drop",
)
CLASSIFY_FORWARD = PriorityBand(
    "forward",
    1000,
    "from an access port, sources in an access prefix (ingress filtering); from the core "
    "port, any IPv6: goto encap",
)

DECAP_BINDING = PriorityBand(
    "binding",
    1000,
    "tun_ipv6_src = CoA and ipv6_src = HoA of one binding: goto encap; anything else "
    "from the tunnel is dropped (P15)",
)

ENCAP_HAIRPIN = PriorityBand(
    "binding_hairpin",
    2000,
    "from the GRE port, ipv6_dst = a bound HoA: back into the tunnel via IN_PORT "
    "(OpenFlow never outputs to the input port otherwise)",
)
ENCAP_BINDING = PriorityBand(
    "binding",
    1000,
    "ipv6_dst = a bound HoA: dec_nw_ttl, tun_ipv6_dst = CoA, out the GRE port (P15)",
)

ROUTE_NOT_ROUTED = PriorityBand(
    "not_routed",
    4000,
    "multicast, link-local, loopback and unspecified destinations, the DAR's own addresses "
    "and the subnet-router anycast address of each access prefix: drop",
)
ROUTE_HOST = PriorityBand(
    "host",
    3000,
    "ipv6_dst = an attached mobile node: dec_nw_ttl, router MAC -> node MAC, out its access port",
)
ROUTE_RESOLVE = PriorityBand(
    "resolve",
    2000,
    "ipv6_dst in an access prefix with no host entry: to the controller (resolve meter), "
    "which resolves it",
)
ROUTE_DEFAULT = PriorityBand(
    "default",
    1000,
    "::/0: dec_nw_ttl, router MAC -> core next-hop MAC, out the core port",
)

CLASSIFY = TableSpec(
    name="classify",
    table_id=0,
    purpose="Sort packets by input port and kind; non-IPv6 and unknown ports are dropped.",
    match_fields=frozenset(
        {"in_port", "eth_type", "ip_proto", "icmpv6_type", "ipv6_nd_target", "ipv6_src", "ipv6_dst"}
    ),
    maskable_fields=frozenset({"ipv6_src"}),
    next_tables=("decap", "encap"),
    miss=Miss.drop(),
    priority_bands=(
        CLASSIFY_BY_INPUT_PORT,
        CLASSIFY_TO_LOCAL,
        CLASSIFY_PUNT_DOMAIN,
        CLASSIFY_PUNT,
        CLASSIFY_NOT_ROUTED,
        CLASSIFY_FORWARD,
        TABLE_MISS,
    ),
    set_fields=frozenset({"eth_src", "eth_dst"}),
    output_roles=frozenset({PortRole.CORE, PortRole.LOCAL, PortRole.CONTROLLER}),
    meters=frozenset(
        {DOMAIN_MOBILITY_METER.name, MOBILITY_METER.name, NEIGHBOR_DISCOVERY_METER.name}
    ),
)

DECAP = TableSpec(
    name="decap",
    table_id=1,
    purpose="Anti-spoofing for packets out of the GRE tunnel: only bound (CoA, HoA) pass (P15).",
    match_fields=frozenset({"tun_ipv6_src", "eth_type", "ipv6_src"}),
    maskable_fields=frozenset(),
    next_tables=("encap",),
    miss=Miss.drop(),
    priority_bands=(DECAP_BINDING, TABLE_MISS),
)

ENCAP = TableSpec(
    name="encap",
    table_id=2,
    purpose="Tunnel packets for bound home addresses to their care-of address (P14, P15).",
    match_fields=frozenset({"in_port", "eth_type", "ipv6_dst"}),
    maskable_fields=frozenset(),
    next_tables=("route",),
    miss=Miss.goto("route"),
    priority_bands=(ENCAP_HAIRPIN, ENCAP_BINDING, TABLE_MISS),
    set_fields=frozenset({"tun_ipv6_dst"}),
    dec_nw_ttl=True,
    output_roles=frozenset({PortRole.GRE, PortRole.IN_PORT}),
)

ROUTE = TableSpec(
    name="route",
    table_id=3,
    purpose="Longest-prefix routing by priority: host /128, access prefix /64, default ::/0.",
    match_fields=frozenset({"eth_type", "ipv6_dst"}),
    maskable_fields=frozenset({"ipv6_dst"}),
    next_tables=(),
    miss=Miss.drop(),
    priority_bands=(ROUTE_NOT_ROUTED, ROUTE_HOST, ROUTE_RESOLVE, ROUTE_DEFAULT, TABLE_MISS),
    set_fields=frozenset({"eth_src", "eth_dst"}),
    dec_nw_ttl=True,
    output_roles=frozenset({PortRole.ACCESS, PortRole.CORE, PortRole.CONTROLLER}),
    meters=frozenset({RESOLVE_METER.name}),
)

DAR_PIPELINE = PipelineSpec(
    (CLASSIFY, DECAP, ENCAP, ROUTE),
    (DOMAIN_MOBILITY_METER, MOBILITY_METER, NEIGHBOR_DISCOVERY_METER, RESOLVE_METER),
)

# Destinations a router never forwards (RFC 4291 §2.5.2, §2.5.3, §2.5.6, §2.7).
NOT_ROUTED_DESTINATIONS: tuple[str, ...] = ("ff00::/8", "fe80::/10", "::1/128", "::/128")
LINK_LOCAL_PREFIX = "fe80::/10"
