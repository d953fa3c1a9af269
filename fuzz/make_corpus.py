"""Write the seed corpus of the fuzz targets: valid and known-bad inputs, built with the codec.

Run from the repository root: ``python fuzz/make_corpus.py``.  The files
land in ``fuzz/corpus/<target>/`` named after what they hold; RSA keys
are fresh on every run (cryptography draws them from the OS), so a
regenerated corpus differs in bytes but not in kind.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

FUZZ_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(FUZZ_DIR))

import fuzz_cga  # noqa: E402
import fuzz_domain  # noqa: E402
import fuzz_rest  # noqa: E402

from fama_ryu import auth, cga, icmpv6, mh  # noqa: E402

CORPUS = FUZZ_DIR / "corpus"
REPO = FUZZ_DIR.parent

ANCHOR = fuzz_domain.packed(fuzz_domain.ANCHOR)
HOME_PREFIX = fuzz_domain.packed("2001:db8:a::")[:8]
COA = fuzz_domain.packed("2001:db8:c::100")
BOUND_HOA = fuzz_domain.packed(fuzz_domain.BOUND_HOA)
BOUND_COA = fuzz_domain.packed(fuzz_domain.BOUND_COA)
ROUTER_MAC = bytes.fromhex(fuzz_domain.ROUTER_MAC.replace(":", ""))
CORE_MAC = bytes.fromhex(fuzz_domain.CORE_MAC.replace(":", ""))
MN_MAC = bytes.fromhex("02000000aa01")


def _control(port: int, reseal: bool = True) -> bytes:
    return bytes([fuzz_domain.PORTS.index(port) | (fuzz_domain.RESEAL if reseal else 0)])


def _frame(packet: bytes, port: int = fuzz_domain.CORE, reseal: bool = True) -> bytes:
    source_mac = CORE_MAC if port == fuzz_domain.CORE else MN_MAC
    return _control(port, reseal) + mh.build_ethernet_frame(source_mac, ROUTER_MAC, packet)


def _cga_bu(key_bits: int, sequence: int = 1) -> tuple[bytes, bytes, cga.CgaParameters, bytes]:
    """A first CGA BU (P6) from COA; returns (packet, hoa, params, signature key DER)."""
    key = cga.generate_rsa_key(key_bits)
    der = cga.public_key_der(key)
    hoa, params = cga.generate_cga(der, HOME_PREFIX, 0, os.urandom)
    bu = mh.BindingUpdate(sequence, 100, options=mh.MobilityOptions(cga_parameters=params.encode()))
    packet = mh.build_packet(
        bu,
        source=COA,
        destination=ANCHOR,
        home_address=hoa,
        signer=lambda data: auth.sign_binding_update(key, COA, ANCHOR, data),
        signature_len=(key.key_size + 7) // 8,
    )
    signature = auth.sign_binding_update(
        key, fuzz_cga.SIGNED_COA, fuzz_cga.SIGNED_HDAR, fuzz_cga.SIGNED_MH_DATA
    )
    return packet, hoa, params, signature


def _phkt_bu(
    sequence: int,
    coa: bytes,
    lifetime_units: int = 100,
    options: mh.MobilityOptions = mh.NO_OPTIONS,
) -> bytes:
    """A BU for the target's bound HoA, authenticated with its PHKT (P9)."""
    kbm = auth.binding_management_key(fuzz_domain.BOUND_PHKT, None)
    care_of = options.alternate_coa or coa
    first = BOUND_HOA if lifetime_units == 0 else care_of
    bu = mh.BindingUpdate(sequence, lifetime_units, options=options)
    return mh.build_packet(
        bu,
        source=coa,
        destination=ANCHOR,
        home_address=BOUND_HOA,
        authenticator=lambda data: auth.binding_authenticator(kbm, first, ANCHOR, data),
    )


def _raw_mh(mh_type: int, body: bytes, *, proto: int = 59, header_len: int | None = None) -> bytes:
    """A hand-made Mobility Header (checksum zero: the RESEAL bit fixes it)."""
    raw = bytes([proto, 0, mh_type, 0, 0, 0]) + body
    raw += bytes((-len(raw)) % 8)
    length = len(raw) // 8 - 1 if header_len is None else header_len
    return raw[:1] + bytes([length]) + raw[2:]


def _with_hao(mh_bytes: bytes, extra_header: bytes = b"") -> bytes:
    packet = mh.build_ipv6_packet(COA, ANCHOR, mh_bytes, home_address=BOUND_HOA)
    if not extra_header:
        return packet
    # Splice an extension header (ending in next header 135) after the HAO header.
    hao_header = bytearray(packet[40:64])
    hao_header[0] = extra_header[0]
    chain = bytes(hao_header) + bytes([mh.IPPROTO_MH]) + extra_header[1:] + mh_bytes
    return packet[:4] + struct.pack("!H", len(chain)) + packet[6:40] + chain


def _icmpv6(icmp_type: int, body: bytes, source: bytes, destination: bytes) -> bytes:
    message = bytearray(struct.pack("!BBH", icmp_type, 0, 0)) + body
    frame = icmpv6.icmpv6_frame(MN_MAC, ROUTER_MAC, source, destination, message)
    return _control(fuzz_domain.ACCESS_1, reseal=False) + frame


def mobility_seeds() -> dict[str, bytes]:
    bu_1024, _, _, _ = _cga_bu(1024)
    bu_2040, _, _, _ = _cga_bu(2040)
    option = bytes  # readability: option(type, len) + data
    bu_fixed = struct.pack("!HHH", 11, 0xC000, 100)
    link_local = fuzz_domain.packed("fe80::aa:1")
    access_host = fuzz_domain.packed("2001:db8:a::55")
    udp = struct.pack("!HHHH", 1000, 2000, 8, 0)
    to_host = struct.pack("!IHBB", 6 << 28, 8, 17, 64) + COA + access_host + udp
    seeds = {
        "first_cga_bu_1024": _frame(bu_1024),
        "first_cga_bu_2040_two_fragments": _frame(bu_2040),
        "phkt_refresh": _frame(_phkt_bu(11, BOUND_COA)),
        "phkt_move": _frame(_phkt_bu(12, COA)),
        "phkt_deregistration": _frame(_phkt_bu(13, BOUND_COA, 0)),
        "phkt_alternate_coa": _frame(
            _phkt_bu(14, BOUND_COA, options=mh.MobilityOptions(alternate_coa=COA))
        ),
        "phkt_nonce_indices": _frame(
            _phkt_bu(15, COA, options=mh.MobilityOptions(nonce_indices=(0, 1)))
        ),
        "care_of_test_init": _frame(
            mh.build_packet(mh.CareOfTestInit(b"cookie!!"), source=COA, destination=ANCHOR)
        ),
        "router_solicitation": _icmpv6(
            133, bytes(4) + option([1, 1]) + MN_MAC, link_local, fuzz_domain.packed("ff02::2")
        ),
        "neighbor_solicitation_anchor": _icmpv6(
            135, bytes(4) + ANCHOR + option([1, 1]) + MN_MAC, link_local, ANCHOR
        ),
        "neighbor_advertisement": _icmpv6(
            136, b"\x60" + bytes(3) + access_host + option([2, 1]) + MN_MAC, access_host, ANCHOR
        ),
        "udp_to_unresolved_host": _frame(to_host),
        "udp_from_tunnel_dummy_ethernet": _control(fuzz_domain.GRE)
        + bytes(12)
        + b"\x86\xdd"
        + to_host,
        # Known-bad: one per RFC 6275 §9.2 reaction, and option errors.
        "bad_payload_proto_6": _frame(_with_hao(_raw_mh(5, bu_fixed, proto=6))),
        "bad_header_len_0": _frame(_with_hao(_raw_mh(5, bytes(2), header_len=0))),
        "bad_unknown_mh_type_42": _frame(_with_hao(_raw_mh(42, bytes(10)))),
        "bad_checksum": _frame(_phkt_bu(16, BOUND_COA)[:-1] + b"\x01", reseal=False),
        "bad_fragment_header": _frame(
            _with_hao(_raw_mh(5, bu_fixed), bytes([44, 0, 0, 1, 0, 0, 0, 42]))
        ),
        "bad_padn_not_zero": _frame(_with_hao(_raw_mh(5, bu_fixed + b"\x01\x02\x00\x07"))),
        "bad_duplicate_nonce_indices": _frame(
            _with_hao(_raw_mh(5, bu_fixed + option([4, 4, 0, 0, 0, 1]) * 2))
        ),
        "bad_cga_fragment_200": _frame(
            _with_hao(_raw_mh(5, bu_fixed + option([12, 200]) + bytes(200) + option([12, 2, 1, 2])))
        ),
        "bad_authorization_data_not_last": _frame(
            _with_hao(
                _raw_mh(5, bu_fixed + option([1, 4]) + bytes(4) + option([5, 12]) + bytes(20))
            )
        ),
        "bad_header_len_past_end": _frame(_with_hao(_raw_mh(5, bu_fixed, header_len=9))),
        "bad_truncated": _frame(bu_1024[:70]),
    }
    return seeds


def cga_seeds() -> dict[str, bytes]:
    seeds: dict[str, bytes] = {}
    for bits in (1024, 2040):
        _, hoa, params, signature = _cga_bu(bits)
        encoded = params.encode()
        seeds[f"verify_{bits}"] = b"\x00" + hoa + encoded
        seeds[f"key_policy_{bits}"] = b"\x01" + encoded
        seeds[f"signature_{bits}"] = b"\x02" + struct.pack("!H", len(encoded)) + encoded + signature
        collided = encoded[:24] + b"\x03" + encoded[25:]
        seeds[f"collision_count_3_{bits}"] = b"\x00" + hoa + collided
    example = json.loads((REPO / "tests/fixtures/rfc3972_appendix_a.json").read_text())
    address = ipaddress.IPv6Address(example["address"]).packed
    seeds["rfc3972_example_512_bit_key"] = (
        b"\x00" + address + bytes.fromhex(example["cga_parameters"])
    )
    with_extension = bytes.fromhex(example["cga_parameters"]) + cga.encode_extension_fields(
        [(1, b"ext")]
    )
    seeds["extension_fields"] = b"\x01" + with_extension
    seeds["bad_der_indefinite_length"] = b"\x01" + bytes(25) + b"\x30\x80\x00\x00"
    seeds["bad_truncated"] = b"\x00" + address + bytes(20)
    return seeds


def config_seeds() -> dict[str, bytes]:
    yaml_mode, json_mode = b"\x00", b"\x01"
    seeds = {
        "domain_yaml": yaml_mode + yaml.safe_dump(fuzz_domain.DOMAIN).encode(),
        "domain_json": json_mode + json.dumps(fuzz_domain.DOMAIN).encode(),
        "bad_duplicate_key": yaml_mode + b"dars: []\ndars: []\n",
        "bad_octal_and_tab": yaml_mode + b"dars:\n\t- dpid: 010\n",
        "bad_not_utf8": yaml_mode + b"dars: [\xff]\n",
        "bad_deep_nesting": yaml_mode + b"[" * 200 + b"]" * 200,
        "bad_aliases": yaml_mode + b"a: &a [1, 2]\nb: &b [*a, *a]\ndars: [*b, *b]\n",
        "bad_huge_integer": yaml_mode + b"dars: [{dpid: " + b"9" * 60 + b"}]\n",
        "bad_wrong_types": json_mode + b'{"dars": [{"name": 1, "dpid": "x", "access_ports": {}}]}',
        "bad_empty": yaml_mode,
    }
    for name in ("fama-domain.yaml", "fama-domain-legacy.yaml"):
        data = yaml.safe_load((REPO / "etc" / name).read_text())
        stem = name.removesuffix(".yaml").replace("-", "_")
        seeds[stem + "_json"] = json_mode + json.dumps(data).encode()
    return seeds


def rest_seeds() -> dict[str, bytes]:
    get, delete, post = b"\x00", b"\x03", b"\x04"
    prefixed, bare = bytes([fuzz_rest.PREFIX_FLAG]), b"\x00"
    hoa = fuzz_domain.BOUND_HOA.encode()
    paths = {
        "dars": get + prefixed + b"dars",
        "dar_a": get + prefixed + b"dars/000000000000000a",
        "bindings": get + prefixed + b"bindings",
        "bindings_filtered": get + prefixed + b"bindings?hoa=" + hoa + b"&dpid=a&coa=::1",
        "binding_of_hoa": get + prefixed + b"bindings/" + hoa,
        "revoke_hoa": delete + prefixed + b"bindings/" + hoa,
        "stats": get + prefixed + b"stats",
        "openapi": get + prefixed + b"openapi.json",
        "bad_post": post + prefixed + b"dars",
        "bad_dpid": get + prefixed + b"dars/0x1",
        "bad_query_not_utf8": get + prefixed + b"bindings?hoa=%ff",
        "bad_path_not_utf8": get + prefixed + b"bindings/%ff%fe",
        "bad_unknown_parameter": get + prefixed + b"stats?verbose=1",
        "bad_duplicate_parameter": get + prefixed + b"bindings?dpid=a&dpid=b",
        "bad_unicode_address": get + prefixed + "bindings/２００１:db8::1".encode(),
        "bad_newline": get + prefixed + b"x%0Ay",
        "outside_the_prefix": get + bare + b"/other",
    }
    return paths


TARGETS: dict[str, Callable[[], dict[str, bytes]]] = {
    "mh_frame": mobility_seeds,
    "cga": cga_seeds,
    "config": config_seeds,
    "rest": rest_seeds,
}


def main() -> None:
    for target, make in TARGETS.items():
        directory = CORPUS / target
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        seeds = make()
        for name, data in seeds.items():
            (directory / name).write_bytes(data)
        print(f"{target}: {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes")


if __name__ == "__main__":
    main()
