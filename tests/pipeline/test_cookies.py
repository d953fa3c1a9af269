"""Cookie layout: owner, kind and generation, and the filters built from it."""

from __future__ import annotations

import pytest

from openflow_pipelines.cookies import (
    FAMA_COOKIE_OWNER,
    MAX_GENERATION,
    CookieFields,
    FlowKind,
    decode_cookie,
    encode_cookie,
    generation_filter,
    kind_filter,
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


def test_generation_filter_selects_one_generation_of_any_kind() -> None:
    cookie, mask = generation_filter(7)
    for kind in FlowKind:
        assert encode_cookie(kind, 7) & mask == cookie & mask
        assert encode_cookie(kind, 8) & mask != cookie & mask


def test_kind_filter_selects_one_kind_of_any_generation() -> None:
    cookie, mask = kind_filter(FlowKind.BINDING)
    assert encode_cookie(FlowKind.BINDING, 12345) & mask == cookie & mask
    assert encode_cookie(FlowKind.HOST, 12345) & mask != cookie & mask


@pytest.mark.parametrize("generation", [-1, MAX_GENERATION + 1])
def test_generation_must_fit_32_bits(generation: int) -> None:
    with pytest.raises(ValueError):
        encode_cookie(FlowKind.PIPELINE, generation)
    with pytest.raises(ValueError):
        generation_filter(generation)
