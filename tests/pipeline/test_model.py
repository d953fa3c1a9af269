"""The neutral flow model: canonical values, OpenFlow prerequisites, and what Ryu makes of it."""

from __future__ import annotations

import dataclasses

import pytest
from pipeline_fixtures import ACCESS_PORT_1, DAR, GENERATION, HOA

from openflow_pipelines.dar_flows import base_flows, install_binding, install_host
from openflow_pipelines.model import (
    CONTROLLER_PORT,
    IN_PORT,
    MAX_TIMEOUT_S,
    NO_BUFFER,
    Command,
    DecNwTtl,
    FlowMod,
    FlowModFlag,
    Match,
    Output,
    SetField,
    describe_flow_mod,
    ipv6_packed,
    ipv6_prefix,
    with_addresses,
)


def test_match_values_take_one_canonical_form() -> None:
    match = Match(
        eth_type=0x86DD,
        ipv6_dst="2001:DB8:0:0::0001",
        eth_src="02:AB:CD:00:00:01",
        ipv6_src=("2001:db8:1::", "FFFF:FFFF:FFFF:FFFF:0:0:0:0"),
    )
    assert match["ipv6_dst"] == "2001:db8::1"
    assert match["eth_src"] == "02:ab:cd:00:00:01"
    assert match["ipv6_src"] == ("2001:db8:1::", "ffff:ffff:ffff:ffff::")
    assert match == Match(
        ipv6_src=ipv6_prefix("2001:db8:1::/64"),
        eth_src="02:ab:cd:00:00:01",
        ipv6_dst="2001:db8::1",
        eth_type=0x86DD,
    )
    assert hash(match) == hash(Match(**dict(match)))


def test_a_full_mask_is_an_exact_match() -> None:
    exact = Match(eth_type=0x86DD, ipv6_dst="2001:db8::1")
    assert Match(eth_type=0x86DD, ipv6_dst=("2001:db8::1", "ffff:" * 7 + "ffff")) == exact
    assert not exact.is_masked("ipv6_dst")


@pytest.mark.parametrize(
    "fields",
    [
        {"ipv6_dst": "2001:db8::1"},  # needs eth_type=0x86dd
        {"eth_type": 0x0800, "ipv6_dst": "2001:db8::1"},
        {"eth_type": 0x86DD, "icmpv6_type": 135},  # needs ip_proto=58
        {"eth_type": 0x86DD, "ip_proto": 58, "ipv6_nd_target": "2001:db8::1"},
        {"eth_type": 0x86DD, "ip_proto": 58, "icmpv6_type": 133, "ipv6_nd_target": "::1"},
        {"eth_type": 0x86DD, "ipv6_dst": ("2001:db8::1", "ffff::")},  # bits outside the mask
        {"eth_type": 0x86DD, "ipv6_dst": ("::", "::")},  # all-zero mask
        {"in_port": (1, 1)},  # not maskable
        {"eth_type": 0x1_0000},
        {"eth_type": True},
        {"ipv6_dst": 5},
        {"eth_src": "02:00:00:00:00"},
        {"vlan_vid": 1},
    ],
)
def test_invalid_matches_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Match(**fields)


def test_match_is_immutable() -> None:
    match = Match(in_port=1)
    with pytest.raises(AttributeError):
        match._fields = {}
    with pytest.raises(TypeError):
        match["in_port"] = 2  # type: ignore[index]


def test_actions_validate_and_normalise() -> None:
    assert SetField("tun_ipv6_dst", "2001:DB8::A").value == "2001:db8::a"
    with pytest.raises(ValueError):
        SetField("in_port", 1)
    with pytest.raises(ValueError):
        Output(CONTROLLER_PORT)  # a punt must say how much of the packet it carries
    with pytest.raises(ValueError):
        Output(1, max_len=NO_BUFFER)
    with pytest.raises(ValueError):
        Output(0)
    assert Output(IN_PORT).port == IN_PORT


@pytest.mark.parametrize(
    "fields",
    [
        {"table_id": 0, "match": Match(in_port=1), "actions": (DecNwTtl(),)},  # no IP eth_type
        {"table_id": 2, "match": Match(), "goto_table": 1},  # goto backwards
        {"table_id": 2, "match": Match(), "goto_table": 2},
        {"table_id": 0, "match": Match(), "cookie_mask": 1},  # ADD ignores cookie masks
        {"table_id": 0, "match": Match(), "command": Command.DELETE, "actions": (DecNwTtl(),)},
        {"table_id": 0, "match": Match(), "command": Command.DELETE, "hard_timeout": 5},
        {"table_id": 0xFF, "match": Match()},  # ALL_TABLES only in deletes
        {"table_id": 0, "match": Match(), "priority": 0x1_0000},
        {"table_id": 0, "match": Match(), "hard_timeout": 0x1_0000},
        {"table_id": 0, "match": Match(), "cookie": 1 << 64},
    ],
)
def test_invalid_flowmods_are_refused(fields: dict[str, object]) -> None:
    fields.setdefault("command", Command.ADD)
    with pytest.raises(ValueError):
        FlowMod(**fields)  # type: ignore[arg-type]


def _binding_like_flow(hoa: str, coa: str, hard_timeout: int) -> FlowMod:
    prefix = ipv6_prefix("2001:db8:1::/64")
    match = Match(eth_type=0x86DD, ipv6_src=hoa, ipv6_dst=prefix, tun_ipv6_src=coa)
    actions = (
        DecNwTtl(),
        SetField("tun_ipv6_dst", coa),
        SetField("ipv6_dst", "2001:db8:5::5"),
        SetField("eth_src", "02:00:00:00:01:01"),
        Output(20),
    )
    return FlowMod(
        2,
        Command.ADD,
        match,
        1000,
        actions,
        cookie=0xFA4D020000000001,
        hard_timeout=hard_timeout,
        flags=FlowModFlag.SEND_FLOW_REM,
    )


def test_a_flow_with_addresses_swapped_equals_one_built_with_them() -> None:
    template = _binding_like_flow("2001:db8:1::a", "2001:db8:2::a", 30)
    # The IPv4-mapped CoA is spelt differently by inet_ntop and by ipaddress.
    hoa, coa = "2001:db8:1::b", "::ffff:1.2.3.4"
    addresses = {
        ipv6_packed("2001:db8:1::a"): ipv6_packed(hoa),
        ipv6_packed("2001:db8:2::a"): ipv6_packed(coa),
        ipv6_packed("2001:db8:9::9"): ipv6_packed("2001:db8:9::1"),  # not in the flow
    }
    filled = with_addresses(template, addresses, 99)
    # Built when first read, and then kept.
    assert "match" not in vars(filled) and "actions" not in vars(filled)
    assert filled.match is filled.match and filled.actions is filled.actions
    built = _binding_like_flow(hoa, coa, 99)
    assert filled == built and built == filled
    assert dict(filled.match) == dict(built.match)
    assert filled.actions == built.actions
    assert hash(filled) == hash(built) and repr(filled) == repr(built)
    assert filled != template
    # A flow without set-field keeps its template's actions; nothing swapped, nothing changes.
    plain = dataclasses.replace(template, actions=(DecNwTtl(), Output(20)))
    assert with_addresses(plain, addresses, 30).actions is plain.actions
    assert with_addresses(template, {}, 30) == template


def test_a_copy_of_a_filled_flow_takes_its_own_fields() -> None:
    filled = with_addresses(_binding_like_flow("2001:db8:1::a", "2001:db8:2::a", 30), {}, 40)
    changed = dataclasses.replace(filled, priority=7, hard_timeout=8)
    assert (changed.priority, changed.hard_timeout) == (7, 8)
    assert changed == dataclasses.replace(
        _binding_like_flow("2001:db8:1::a", "2001:db8:2::a", 8), priority=7
    )
    assert (filled.priority, filled.hard_timeout) == (1000, 40)


@pytest.mark.parametrize("hard_timeout", [-1, MAX_TIMEOUT_S + 1])
def test_with_addresses_refuses_a_hard_timeout_out_of_range(hard_timeout: int) -> None:
    template = _binding_like_flow("2001:db8:1::a", "2001:db8:2::a", 30)
    with pytest.raises(ValueError, match="hard_timeout"):
        with_addresses(template, {}, hard_timeout)


def test_describe_reads_like_ovs_ofctl() -> None:
    flow_mod = FlowMod(
        2,
        Command.ADD,
        Match(eth_type=0x86DD, ipv6_dst="2001:db8:1::a"),
        1000,
        (DecNwTtl(), SetField("tun_ipv6_dst", "2001:db8:2::a"), Output(20)),
        cookie=0xFA4D020000000001,
    )
    assert describe_flow_mod(flow_mod) == (
        "table=2, priority=1000, cookie=0xfa4d020000000001 eth_type=0x86dd,ipv6_dst=2001:db8:1::a "
        "actions=dec_ttl,set_field:2001:db8:2::a->tun_ipv6_dst,output:20"
    )


def all_built_flow_mods() -> list[FlowMod]:
    steps = [
        *base_flows(DAR, GENERATION),
        *install_binding(DAR, HOA, "2001:db8:2::a", GENERATION, 60),
        *install_host(DAR, "2001:db8:1::100", "02:00:00:00:aa:01", ACCESS_PORT_1, GENERATION),
    ]
    return [step for step in steps if isinstance(step, FlowMod)]


def test_ryu_accepts_every_match_and_set_field_in_our_textual_form() -> None:
    """Ryu parses back exactly the values we wrote: the shim can pass them straight through."""
    parser = pytest.importorskip("ryu.ofproto.ofproto_v1_3_parser")
    for flow_mod in all_built_flow_mods():
        buffer = bytearray()
        parser.OFPMatch(**flow_mod.match).serialize(buffer, 0)
        parsed = parser.OFPMatch.parser(bytes(buffer), 0)
        assert {name: parsed[name] for name in flow_mod.match} == dict(flow_mod.match)
        for action in flow_mod.actions:
            if isinstance(action, SetField):
                buffer = bytearray()
                parser.OFPActionSetField(**{action.field: action.value}).serialize(buffer, 0)
                decoded = parser.OFPActionSetField.parser(bytes(buffer), 0)
                assert (decoded.key, decoded.value) == (action.field, action.value)
