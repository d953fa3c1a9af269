"""Flow cookies: who owns a flow, what kind it is, and which controller generation wrote it.

Layout of the 64-bit cookie (most significant bit first)::

    63..48  owner       FAMA_COOKIE_OWNER (0xfa4d), so other apps' flows are never touched
    47..40  kind        FlowKind: pipeline skeleton, binding, or attached-host route
    39..32  reserved    zero
    31..0   generation  bumped on every controller (re)start

After a restart the controller reinstalls everything it wants with
generation G+1 (an ADD with an identical match and priority replaces the
old flow, cookie included), then deletes what is left of every other
generation with 32 cookie-masked deletes (:func:`other_generations_filters`),
without asking the switch which generations it holds: traffic keeps
flowing throughout.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

FAMA_COOKIE_OWNER = 0xFA4D
_OWNER_SHIFT = 48
_KIND_SHIFT = 40
OWNER_MASK = 0xFFFF << _OWNER_SHIFT
KIND_MASK = 0xFF << _KIND_SHIFT
GENERATION_MASK = 0xFFFF_FFFF
_RESERVED_MASK = 0xFF << 32
MAX_GENERATION = GENERATION_MASK


class FlowKind(enum.IntEnum):
    PIPELINE = 1  # table-miss flows, dispatch, punts, filters, default route
    BINDING = 2  # per-binding encapsulation and decapsulation
    HOST = 3  # route entries of mobile nodes attached to an access port


@dataclass(frozen=True)
class CookieFields:
    kind: FlowKind
    generation: int


def encode_cookie(kind: FlowKind, generation: int) -> int:
    _check_generation(generation)
    return (FAMA_COOKIE_OWNER << _OWNER_SHIFT) | (int(kind) << _KIND_SHIFT) | generation


def decode_cookie(cookie: int) -> CookieFields | None:
    """The fields of a FAMA cookie, or ``None`` for a cookie this project did not write."""
    if cookie >> _OWNER_SHIFT != FAMA_COOKIE_OWNER or cookie & (0xFF << 32):
        return None
    try:
        kind = FlowKind((cookie & KIND_MASK) >> _KIND_SHIFT)
    except ValueError:
        return None
    return CookieFields(kind, cookie & GENERATION_MASK)


def kind_filter(kind: FlowKind) -> tuple[int, int]:
    """``(cookie, cookie_mask)`` selecting FAMA flows of ``kind``, any generation."""
    return encode_cookie(kind, 0), OWNER_MASK | KIND_MASK


def other_generations_filters(generation: int) -> list[tuple[int, int]]:
    """``(cookie, cookie_mask)`` pairs that together select every FAMA flow of any kind
    and any generation but ``generation``.

    Cookie masks test equality under a mask, never inequality; the other
    generations are the 32 sets that agree with ``generation`` above bit *i*
    and differ at bit *i*, one masked prefix each.
    """
    _check_generation(generation)
    owner = (FAMA_COOKIE_OWNER << _OWNER_SHIFT, OWNER_MASK | _RESERVED_MASK)
    filters = []
    for bit in range(32):
        prefix_mask = GENERATION_MASK & ~((1 << bit) - 1)
        value = (generation ^ (1 << bit)) & prefix_mask
        filters.append((owner[0] | value, owner[1] | prefix_mask))
    return filters


def _check_generation(generation: int) -> None:
    if not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"generation {generation} does not fit 32 bits")
