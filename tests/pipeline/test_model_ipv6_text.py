"""The fast IPv6 text helpers of ``model`` agree with ``ipaddress`` on every address."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openflow_pipelines.model import canonical_ipv6, ipv6_packed, ipv6_text

# Runs of zero groups decide the compression; draw addresses rich in them.
GROUPS = st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xDB8, 0xFE80]), min_size=8, max_size=8)


@given(st.binary(min_size=16, max_size=16))
def test_text_of_any_address_is_ipaddress_compressed(packed: bytes) -> None:
    assert ipv6_text(packed) == ipaddress.IPv6Address(packed).compressed


@given(GROUPS)
def test_text_of_zero_rich_addresses_is_ipaddress_compressed(groups: list[int]) -> None:
    packed = b"".join(group.to_bytes(2, "big") for group in groups)
    assert ipv6_text(packed) == ipaddress.IPv6Address(packed).compressed


@pytest.mark.parametrize(
    "text", ["::ffff:1.2.3.4", "::1.2.3.4", "2001:DB8::1", "2001:db8:0:0:0:0:0:1", "::", "::1"]
)
def test_canonical_text_matches_ipaddress_including_dotted_forms(text: str) -> None:
    assert canonical_ipv6(text) == ipaddress.IPv6Address(text).compressed


@pytest.mark.parametrize("text", ["", "1.2.3.4", "2001:db8::1::2", "fe80::1%eth0", "g::1"])
def test_non_addresses_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError):
        ipv6_packed(text)
