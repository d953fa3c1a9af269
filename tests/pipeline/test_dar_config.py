"""DarPipelineConfig: validation, normalisation, port roles (P1)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pipeline_fixtures import DAR

from openflow_pipelines.dar_flows import base_flows
from openflow_pipelines.pipeline import PortRole


def test_spelling_does_not_change_the_flows() -> None:
    shouted = replace(
        DAR,
        router_mac=DAR.router_mac.upper(),
        anchor_address="2001:DB8:1:0:0:0:0:1",
        own_addresses=("FE80:0::1", "2001:db8:1:0::1"),
        access_prefixes=("2001:0db8:0001::/64", "2001:db8:11:0::/64"),
    )
    assert shouted == DAR
    assert base_flows(shouted, 1) == base_flows(DAR, 1)


@pytest.mark.parametrize(
    "changes",
    [
        {"access_ports": ()},
        {"access_ports": (1, 1)},
        {"core_port": DAR.gre_port},
        {"gre_port": 0xFFFFFFFE},  # LOCAL is not a port the config may name
        {"router_mac": "01:00:5e:00:00:01"},  # multicast
        {"core_next_hop_mac": "not-a-mac"},
        {"access_prefixes": ("2001:db8:1::/48",)},
        {"access_prefixes": ()},
        {"anchor_address": "2001:db8:11::1", "own_addresses": ("2001:db8:11::1",)},  # P1
        {"own_addresses": ("fe80::1",)},  # must include the anchor address
        {"dpid": -1},
    ],
)
def test_impossible_configs_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        replace(DAR, **changes)  # type: ignore[arg-type]


def test_port_roles() -> None:
    assert DAR.port_role(DAR.access_ports[0]) is PortRole.ACCESS
    assert DAR.port_role(DAR.core_port) is PortRole.CORE
    assert DAR.port_role(DAR.gre_port) is PortRole.GRE
    assert DAR.port_role(4242) is None


def test_own_addresses_include_subnet_router_anycast() -> None:
    assert DAR.is_own_address("2001:DB8:1::1") and DAR.is_own_address("2001:db8:11::")
    assert not DAR.is_own_address("2001:db8:1::2")
    assert DAR.access_prefix_of("2001:db8:11::5") == "2001:db8:11::/64"
    assert DAR.access_prefix_of("2001:db8:12::5") is None
