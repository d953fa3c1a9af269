"""Cookie layout: owner, kind and generation, and the filters built from it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openflow_pipelines.cookies import (
    FAMA_COOKIE_OWNER,
    MAX_GENERATION,
    OWNER_MASK,
    CookieFields,
    FlowKind,
    decode_cookie,
    encode_cookie,
    kind_filter,
    other_generations_filters,
)


@pytest.mark.parametrize("kind", list(FlowKind))
@pytest.mark.parametrize("generation", [0, 1, 0xFFFF, MAX_GENERATION])
def test_cookies_round_trip(kind: FlowKind, generation: int) -> None:
    cookie = encode_cookie(kind, generation)
    assert cookie >> 48 == FAMA_COOKIE_OWNER
    assert decode_cookie(cookie) == CookieFields(kind, generation)


@pytest.mark.parametrize(
    "cookie",
    [0, 0xFFFF_FFFF_FFFF_FFFF, 0x1234_0100_0000_0001, encode_cookie(FlowKind.HOST, 1) | 1 << 32],
)
def test_foreign_cookies_decode_to_none(cookie: int) -> None:
    assert decode_cookie(cookie) is None


def test_unknown_kind_decodes_to_none() -> None:
    assert decode_cookie((FAMA_COOKIE_OWNER << 48) | (0x7F << 40)) is None


def test_kind_filter_selects_one_kind_of_any_generation() -> None:
    cookie, mask = kind_filter(FlowKind.BINDING)
    assert encode_cookie(FlowKind.BINDING, 12345) & mask == cookie & mask
    assert encode_cookie(FlowKind.HOST, 12345) & mask != cookie & mask


@pytest.mark.parametrize("generation", [-1, MAX_GENERATION + 1])
def test_generation_must_fit_32_bits(generation: int) -> None:
    with pytest.raises(ValueError):
        encode_cookie(FlowKind.PIPELINE, generation)
    with pytest.raises(ValueError):
        other_generations_filters(generation)


@given(
    generation=st.integers(min_value=0, max_value=MAX_GENERATION),
    other=st.integers(min_value=0, max_value=MAX_GENERATION),
    kind=st.sampled_from(list(FlowKind)),
)
def test_other_generations_filters_select_exactly_the_other_generations(
    generation: int, other: int, kind: FlowKind
) -> None:
    cookie = encode_cookie(kind, other)
    filters = other_generations_filters(generation)
    assert len(filters) == 32
    selected = [value for value, mask in filters if cookie & mask == value]
    assert len(selected) == (0 if other == generation else 1)  # disjoint, and complete


def test_other_generations_filters_never_select_other_owners() -> None:
    for value, mask in other_generations_filters(5):
        assert mask & OWNER_MASK == OWNER_MASK and value >> 48 == 0xFA4D
        assert (0x1234 << 48 | 4) & mask != value
