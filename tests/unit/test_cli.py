"""Tests of the ``fama`` command line (fama_ryu/cli.py) and the in-process demo.

Most commands run in-process through ``cli.main([...])`` (stdout/stderr via
capsys); a few run the installed console script next to ``sys.executable``
to prove the entry point works.  The contract under test (cli.py docstring):

    fama cga keygen --bits N --out KEY.pem
    fama cga address --key KEY.pem --prefix PREFIX/64 --sec S [--json]
    fama cga verify --address ADDR --params HEX
    fama mh decode (HEX | --pcap FILE)
    fama demo --pcap FILE --keys-out DIR

Exit codes: 0 success, 1 negative answer, 2 unusable input.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import json
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fama_ryu import auth, cga, cli, mh, pcap

FAMA = Path(sys.executable).with_name("fama")
PREFIX = "2001:db8:1::/64"
PREFIX_BYTES = ipaddress.IPv6Network(PREFIX).network_address.packed[:8]
EXIT_OK, EXIT_NEGATIVE, EXIT_USAGE = 0, 1, 2


def addr(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``fama argv`` in-process; return (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_quietly(*argv: str) -> tuple[int, str]:
    """For module-scoped fixtures (no capsys): return (exit code, stdout)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(list(argv))
    assert code == EXIT_OK, stderr.getvalue()
    return code, stdout.getvalue()


def assert_usage_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == EXIT_USAGE
    assert out == ""
    assert err.startswith("fama: ")
    for fragment in fragments:
        assert fragment in err


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def key_path(tmp_path_factory) -> Path:
    """A 1024-bit key written by ``fama cga keygen`` (once per module)."""
    path = tmp_path_factory.mktemp("key") / "mn.pem"
    run_quietly("cga", "keygen", "--bits", "1024", "--out", str(path))
    return path


@pytest.fixture(scope="module")
def private_key(key_path):
    return cga.load_private_key_pem(key_path.read_bytes())


def _address_json(key_path: Path, sec: int) -> dict:
    _, out = run_quietly(
        "cga", "address", "--key", str(key_path), "--prefix", PREFIX, "--sec", str(sec), "--json"
    )
    return json.loads(out)


@pytest.fixture(scope="module")
def sec1_cga(key_path) -> dict:
    return _address_json(key_path, 1)


@pytest.fixture(scope="module")
def sec0_cga(key_path) -> dict:
    """A Sec 0 CGA whose Hash2 does not start with 16 zero bits (so Sec 1 fails)."""
    while True:
        described = _address_json(key_path, 0)
        params = cga.CgaParameters.decode(bytes.fromhex(described["params_hex"]))
        hash2_input = params.modifier + bytes(9) + params.public_key_der + params.extension_fields
        if hashlib.sha1(hash2_input).digest()[:2] != b"\x00\x00":  # 1 - 2**-16 of the time
            return described


# ---------------------------------------------------------------- cga keygen


@pytest.mark.parametrize("bits", [1024, 2040])
def test_keygen_writes_owner_only_pem_key_of_requested_size(capsys, tmp_path, bits):
    out_path = tmp_path / "sub" / "key.pem"
    code, out, err = run(capsys, "cga", "keygen", "--bits", str(bits), "--out", str(out_path))
    assert (code, err) == (EXIT_OK, "")
    assert out.strip() == str(out_path)
    assert mode(out_path) == 0o600
    key = cga.load_private_key_pem(out_path.read_bytes())
    assert key.key_size == bits
    assert key.public_key().public_numbers().e == 65537


def test_keygen_defaults_to_1024_bits(capsys, tmp_path):
    out_path = tmp_path / "key.pem"
    code, _, _ = run(capsys, "cga", "keygen", "--out", str(out_path))
    assert code == EXIT_OK
    assert cga.load_private_key_pem(out_path.read_bytes()).key_size == 1024


def test_keygen_tightens_mode_of_an_existing_world_readable_file(capsys, tmp_path):
    out_path = tmp_path / "key.pem"
    out_path.write_text("old")
    out_path.chmod(0o644)
    code, _, _ = run(capsys, "cga", "keygen", "--bits", "1024", "--out", str(out_path))
    assert code == EXIT_OK
    assert mode(out_path) == 0o600
    assert out_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


@pytest.mark.parametrize("bits", [512, 1023, 2041, 2048, 4096])
def test_keygen_rejects_sizes_outside_1024_to_2040(capsys, tmp_path, bits):
    out_path = tmp_path / "key.pem"
    code, out, err = run(capsys, "cga", "keygen", "--bits", str(bits), "--out", str(out_path))
    assert_usage_error(code, out, err, "--bits", "1024..2040")
    assert not out_path.exists()


def test_keygen_non_integer_bits_is_an_argparse_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        cli.main(["cga", "keygen", "--bits", "many", "--out", str(tmp_path / "k.pem")])
    assert exited.value.code == EXIT_USAGE
    assert "invalid int value" in capsys.readouterr().err


def test_keygen_into_a_directory_is_a_usage_error(capsys, tmp_path):
    code, out, err = run(capsys, "cga", "keygen", "--bits", "1024", "--out", str(tmp_path))
    assert_usage_error(code, out, err, str(tmp_path))


# ---------------------------------------------------------------- cga address


def test_address_json_has_exactly_the_contract_keys_and_a_verifiable_cga(sec1_cga, private_key):
    assert set(sec1_cga) == {"address", "params_hex", "sec", "collision_count"}
    assert sec1_cga["sec"] == 1
    assert sec1_cga["collision_count"] == 0
    address = ipaddress.IPv6Address(sec1_cga["address"])
    assert address in ipaddress.IPv6Network(PREFIX)
    params = cga.CgaParameters.decode(bytes.fromhex(sec1_cga["params_hex"]))
    assert params.public_key_der == cga.public_key_der(private_key)
    assert params.subnet_prefix == PREFIX_BYTES
    result = cga.verify_cga(address.packed, params)
    assert result.ok, result.reason
    assert result.sec == 1


def test_address_plain_form_prints_address_then_params_hex(capsys, key_path):
    code, out, err = run(
        capsys, "cga", "address", "--key", str(key_path), "--prefix", PREFIX, "--sec", "0"
    )
    assert (code, err) == (EXIT_OK, "")
    lines = out.splitlines()
    assert len(lines) == 2
    address = ipaddress.IPv6Address(lines[0])
    assert address in ipaddress.IPv6Network(PREFIX)
    params = cga.CgaParameters.decode(bytes.fromhex(lines[1]))
    result = cga.verify_cga(address.packed, params)
    assert result.ok, result.reason
    assert result.sec == 0


def test_address_gives_a_fresh_modifier_each_time(sec0_cga, key_path):
    again = _address_json(key_path, 0)
    assert again["params_hex"] != sec0_cga["params_hex"]
    assert again["address"] != sec0_cga["address"]


@pytest.fixture
def not_a_key(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a PEM key\n")
    return path


@pytest.fixture
def ec_key(tmp_path) -> Path:
    path = tmp_path / "ec.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.mark.parametrize(
    ("prefix", "sec", "key", "fragment"),
    [
        ("2001:db8:1::/48", "1", "good", "/64"),
        ("2001:db8:1::/80", "1", "good", "/64"),
        ("not-a-prefix", "1", "good", "bad prefix"),
        ("2001:db8:1::1/64", "1", "good", "bad prefix"),  # host bits set
        (PREFIX, "3", "good", "--sec"),
        (PREFIX, "-1", "good", "--sec"),
        (PREFIX, "1", "missing", "cannot read key"),
        (PREFIX, "1", "text", "not an RSA private key"),
        (PREFIX, "1", "ec", "not an RSA private key"),
    ],
)
def test_address_rejects_unusable_input_with_exit_2(
    capsys, tmp_path, key_path, not_a_key, ec_key, prefix, sec, key, fragment
):
    key_file = {
        "good": key_path,
        "missing": tmp_path / "absent.pem",
        "text": not_a_key,
        "ec": ec_key,
    }[key]
    code, out, err = run(
        capsys, "cga", "address", "--key", str(key_file), "--prefix", prefix, "--sec", sec
    )
    assert_usage_error(code, out, err, fragment)


def test_address_refuses_a_key_outside_the_key_policy(capsys, tmp_path):
    big = tmp_path / "big.pem"
    big.write_bytes(cga.private_key_pem(cga.generate_rsa_key(2048)))
    code, out, err = run(
        capsys, "cga", "address", "--key", str(big), "--prefix", PREFIX, "--sec", "0", "--json"
    )
    if code == EXIT_OK:  # show that the emitted CGA is useless
        produced = json.loads(out)
        params = cga.CgaParameters.decode(bytes.fromhex(produced["params_hex"]))
        verdict = cga.verify_cga(addr(produced["address"]), params)
        assert verdict.ok, f"emitted CGA does not verify: {verdict.failed_step}"
    assert_usage_error(code, out, err, "2048")


# ---------------------------------------------------------------- cga verify


def _verify(capsys, address: str, params_hex: str, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "cga", "verify", "--address", address, "--params", params_hex, *extra)


def test_verify_accepts_the_generated_sec_1_cga(capsys, sec1_cga):
    code, out, err = _verify(capsys, sec1_cga["address"], sec1_cga["params_hex"])
    assert (code, err) == (EXIT_OK, "")
    assert out.strip() == "valid CGA, Sec 1"


def test_verify_accepts_params_in_tshark_colon_hex_form(capsys, sec0_cga):
    params = bytes.fromhex(sec0_cga["params_hex"])
    code, out, _ = _verify(capsys, sec0_cga["address"], params.hex(":"))
    assert code == EXIT_OK
    assert out.strip() == "valid CGA, Sec 0"


def _failing_step(err: str) -> str:
    assert err.startswith("invalid CGA: step ")
    return err.removeprefix("invalid CGA: step ").split(":")[0]


def test_verify_wrong_interface_identifier_fails_at_hash1(capsys, sec1_cga):
    address = bytearray(addr(sec1_cga["address"]))
    address[15] ^= 0x01
    code, out, err = _verify(capsys, text(bytes(address)), sec1_cga["params_hex"])
    assert (code, out) == (EXIT_NEGATIVE, "")
    assert _failing_step(err) == "HASH1"


def test_verify_address_in_another_prefix_fails_at_subnet_prefix(capsys, sec1_cga):
    address = addr("2001:db8:2::")[:8] + addr(sec1_cga["address"])[8:]
    code, out, err = _verify(capsys, text(address), sec1_cga["params_hex"])
    assert (code, out) == (EXIT_NEGATIVE, "")
    assert _failing_step(err) == "SUBNET_PREFIX"


def test_verify_collision_count_3_fails_at_collision_count(capsys, sec1_cga):
    params = bytearray.fromhex(sec1_cga["params_hex"])
    assert params[24] == 0  # modifier(16) | prefix(8) | collision count
    params[24] = 3
    code, out, err = _verify(capsys, sec1_cga["address"], params.hex())
    assert (code, out) == (EXIT_NEGATIVE, "")
    assert _failing_step(err) == "COLLISION_COUNT"


def test_verify_sec_0_address_with_sec_bits_set_to_1_fails_at_hash2(capsys, sec0_cga):
    address = bytearray(addr(sec0_cga["address"]))
    assert address[8] >> 5 == 0
    address[8] |= 1 << 5  # Sec is the 3 leftmost bits of the interface identifier
    code, out, err = _verify(capsys, text(bytes(address)), sec0_cga["params_hex"])
    assert (code, out) == (EXIT_NEGATIVE, "")
    assert _failing_step(err) == "HASH2"


def test_verify_key_below_min_key_bits_fails_at_public_key(capsys, sec1_cga):
    code, out, err = _verify(
        capsys, sec1_cga["address"], sec1_cga["params_hex"], "--min-key-bits", "2040"
    )
    assert (code, out) == (EXIT_NEGATIVE, "")
    assert _failing_step(err) == "PUBLIC_KEY"


@pytest.mark.parametrize(
    ("address", "params", "fragment"),
    [
        ("valid", "zz", "not hexadecimal"),
        ("valid", "abc", "not hexadecimal"),  # odd number of digits
        ("valid", "truncated", "do not decode"),
        ("valid", "", "do not decode"),
        ("valid", "key-not-der", "do not decode"),
        ("2001:db8::g", "valid", "bad IPv6 address"),
        ("2001:db8:1::/64", "valid", "bad IPv6 address"),
        ("192.0.2.1", "valid", "bad IPv6 address"),
    ],
)
def test_verify_rejects_unusable_input_with_exit_2(capsys, sec1_cga, address, params, fragment):
    good = bytes.fromhex(sec1_cga["params_hex"])
    params_hex = {
        "valid": good.hex(),
        "truncated": good[:40].hex(),
        "key-not-der": (good[:25] + b"\x04" + good[26:]).hex(),
    }.get(params, params)
    address_text = sec1_cga["address"] if address == "valid" else address
    code, out, err = _verify(capsys, address_text, params_hex)
    assert_usage_error(code, out, err, fragment)


# ---------------------------------------------------------------- mh decode

MN_MAC, DAR_MAC = bytes.fromhex("020000000001"), bytes.fromhex("02000000d001")
HOA, COA, ANCHOR = addr("2001:db8:1::100"), addr("2001:db8:2::100"), addr("2001:db8:1::1")


def _bu_packet() -> bytes:
    bu = mh.BindingUpdate(
        sequence=4242,
        lifetime_units=150,
        options=mh.MobilityOptions(
            alternate_coa=COA, nonce_indices=(7, 9), authenticator=bytes(range(12))
        ),
    )
    return mh.build_packet(bu, source=COA, destination=ANCHOR, home_address=HOA)


def _ba_packet() -> bytes:
    ba = mh.BindingAck(
        status=0,
        sequence=4242,
        lifetime_units=150,
        options=mh.MobilityOptions(binding_refresh_interval_units=60),
    )
    return mh.build_packet(ba, source=ANCHOR, destination=COA, routing_address=HOA)


def _decode_hex(capsys, data: bytes) -> dict:
    code, out, err = run(capsys, "mh", "decode", data.hex())
    assert (code, err) == (EXIT_OK, "")
    return json.loads(out)


def test_decode_ipv6_packet_hex_describes_binding_update(capsys):
    described = _decode_hex(capsys, _bu_packet())
    assert described["valid"] is True
    assert described["source"] == text(COA)
    assert described["destination"] == text(ANCHOR)
    assert described["home_address_option"] == text(HOA)
    assert "type2_routing_header" not in described
    assert described["mobility_header"] == {
        "type": "BINDING_UPDATE",
        "sequence": 4242,
        "flags": "AH",
        "lifetime_s": 600,
        "options": {
            "alternate_coa": text(COA),
            "nonce_indices": {"home": 7, "care_of": 9},
            "binding_authorization_data": bytes(range(12)).hex(),
        },
    }


def test_decode_ethernet_frame_hex_describes_binding_ack(capsys):
    frame = mh.build_ethernet_frame(DAR_MAC, MN_MAC, _ba_packet())
    described = _decode_hex(capsys, frame)
    assert described["valid"] is True
    assert (described["source"], described["destination"]) == (text(ANCHOR), text(COA))
    assert described["type2_routing_header"] == text(HOA)
    assert "home_address_option" not in described
    header = described["mobility_header"]
    assert header["type"] == "BINDING_ACK"
    assert (header["status"], header["status_name"]) == (0, "ACCEPTED")
    assert (header["sequence"], header["lifetime_s"]) == (4242, 600)
    assert header["options"] == {"binding_refresh_interval_s": 240}


def test_decode_accepts_hex_with_0x_prefix_colons_and_whitespace(capsys):
    packet = _bu_packet()
    spaced = "0x" + packet[:20].hex(":") + " \n " + packet[20:].hex()
    code, out, _ = run(capsys, "mh", "decode", spaced)
    assert code == EXIT_OK
    assert json.loads(out) == _decode_hex(capsys, packet)


def test_decode_bad_checksum_is_invalid_silent_drop(capsys):
    packet = bytearray(_bu_packet())
    mh_offset = 40 + 24  # IPv6 header + destination options with the HAO
    assert packet[6] == mh.IPPROTO_DSTOPTS and packet[40] == mh.IPPROTO_MH
    packet[mh_offset + 4] ^= 0xFF
    code, out, err = run(capsys, "mh", "decode", bytes(packet).hex())
    assert code != EXIT_USAGE and err == ""
    described = json.loads(out)
    assert described["valid"] is False
    assert described["reason"] == "bad_checksum"
    assert described["reaction"] == "silent_drop"
    assert described["pointer"] == mh_offset + 4


def test_decode_payload_proto_not_59_is_parameter_problem_with_pointer(capsys):
    mh_bytes = bytearray(
        mh.encode_mobility_header(
            mh.BindingUpdate(sequence=1, lifetime_units=1),
            pseudo_source=COA,
            pseudo_destination=ANCHOR,
        )
    )
    mh_bytes[0] = 6  # Payload Proto: TCP instead of No Next Header
    mh_bytes[4:6] = b"\x00\x00"
    mh_bytes[4:6] = struct.pack("!H", mh.mobility_checksum(COA, ANCHOR, bytes(mh_bytes)))
    packet = mh.build_ipv6_packet(COA, ANCHOR, bytes(mh_bytes))
    frame = mh.build_ethernet_frame(MN_MAC, DAR_MAC, packet)
    described = _decode_hex(capsys, frame)
    assert described["valid"] is False
    assert described["reason"] == "payload_proto_not_none"
    assert described["reaction"] == "icmpv6_parameter_problem"
    assert described["pointer"] == 40  # the Payload Proto field, from the IPv6 header


def test_decode_bare_ipv6_packet_whose_source_looks_like_an_ethertype(capsys):
    source = addr("2001:db8:86dd:6000::1")
    packet = mh.build_packet(
        mh.BindingUpdate(sequence=1, lifetime_units=1), source=source, destination=ANCHOR
    )
    described = _decode_hex(capsys, packet)
    assert described["valid"] is True, described
    assert described["source"] == text(source)


def _write_frames(path: Path, frames: list[bytes]) -> None:
    with open(path, "wb") as stream:
        pcap.write_pcap(stream, [(1_700_000_000 + n / 4, f) for n, f in enumerate(frames)])


def test_decode_pcap_prints_one_numbered_json_line_per_packet(capsys, tmp_path):
    broken = bytearray(mh.build_ethernet_frame(MN_MAC, DAR_MAC, _bu_packet()))
    broken[-1] ^= 0x01  # corrupts the authenticator: the checksum no longer verifies
    capture = tmp_path / "three.pcap"
    _write_frames(
        capture,
        [
            mh.build_ethernet_frame(MN_MAC, DAR_MAC, _bu_packet()),
            mh.build_ethernet_frame(DAR_MAC, MN_MAC, _ba_packet()),
            bytes(broken),
        ],
    )
    code, out, err = run(capsys, "mh", "decode", "--pcap", str(capture))
    assert (code, err) == (EXIT_OK, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["packet"] for line in lines] == [1, 2, 3]
    assert [line["timestamp"] for line in lines] == pytest.approx(
        [1_700_000_000, 1_700_000_000.25, 1_700_000_000.5]
    )
    assert [line["valid"] for line in lines] == [True, True, False]
    assert lines[0]["mobility_header"]["type"] == "BINDING_UPDATE"
    assert lines[1]["mobility_header"]["type"] == "BINDING_ACK"
    assert lines[2]["reason"] == "bad_checksum"


def _raw_ipv6_pcapng(packets: list[bytes]) -> bytes:
    """A pcapng with one LINKTYPE_RAW interface, built per the pcapng spec."""

    def block(block_type: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        return (
            struct.pack("<II", block_type, 12 + len(body))
            + body
            + struct.pack("<I", 12 + len(body))
        )

    data = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    data += block(1, struct.pack("<HHI", pcap.LINKTYPE_RAW, 0, 65535))
    for n, packet in enumerate(packets):
        ticks = (1_700_000_000 + n) * 1_000_000
        data += block(
            6,
            struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(packet), len(packet))
            + packet,
        )
    return data


def test_decode_pcapng_with_raw_ipv6_link_type(capsys, tmp_path):
    capture = tmp_path / "raw.pcapng"
    capture.write_bytes(_raw_ipv6_pcapng([_bu_packet(), _ba_packet()]))
    code, out, _ = run(capsys, "mh", "decode", "--pcap", str(capture))
    assert code == EXIT_OK
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["packet"], line["valid"]) for line in lines] == [(1, True), (2, True)]
    assert lines[0]["home_address_option"] == text(HOA)
    assert lines[1]["type2_routing_header"] == text(HOA)


def test_decode_needs_exactly_one_of_hex_and_pcap(capsys, tmp_path):
    capture = tmp_path / "one.pcap"
    _write_frames(capture, [mh.build_ethernet_frame(MN_MAC, DAR_MAC, _bu_packet())])
    assert_usage_error(*run(capsys, "mh", "decode"), "either HEX or --pcap")
    assert_usage_error(
        *run(capsys, "mh", "decode", _bu_packet().hex(), "--pcap", str(capture)),
        "either HEX or --pcap",
    )


def test_decode_non_hex_argument_is_usage_error(capsys):
    assert_usage_error(*run(capsys, "mh", "decode", "not-hex"), "HEX is not hexadecimal")


def _classic_pcap(linktype: int, records: list[bytes]) -> bytes:
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for record in records:
        data += struct.pack("<IIII", 1, 0, len(record), len(record)) + record
    return data


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read"),  # file does not exist
        ("directory", "cannot read"),
        (b"", "too short"),
        (b"this is not a capture file at all", "unknown capture magic"),
        ("truncated", "truncated"),
        ("linktype-113", "unsupported link type 113"),
    ],
)
def test_decode_unreadable_or_garbage_pcap_is_usage_error(capsys, tmp_path, content, fragment):
    capture = tmp_path / "capture.pcap"
    frame = mh.build_ethernet_frame(MN_MAC, DAR_MAC, _bu_packet())
    if content == "directory":
        capture.mkdir()
    elif content == "truncated":
        capture.write_bytes(_classic_pcap(pcap.LINKTYPE_ETHERNET, [frame])[:-5])
    elif content == "linktype-113":
        capture.write_bytes(_classic_pcap(113, [frame]))
    elif content is not None:
        capture.write_bytes(content)
    code, out, err = run(capsys, "mh", "decode", "--pcap", str(capture))
    assert code == EXIT_USAGE
    assert out == ""
    assert err.startswith("fama: ") and fragment in err


# ---------------------------------------------------------------- demo


class DemoRun:
    def __init__(self, code: int, text: str, capture: Path, keys: Path) -> None:
        self.code, self.text, self.capture, self.keys = code, text, capture, keys
        with open(capture, "rb") as stream:
            self.captured = list(pcap.read_capture(stream))
        self.packets = [mh.parse_ethernet_frame(c.data) for c in self.captured]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> DemoRun:
    base = tmp_path_factory.mktemp("demo")
    capture, keys = base / "out" / "demo.pcap", base / "keys"
    code, out = run_quietly("demo", "--pcap", str(capture), "--keys-out", str(keys))
    return DemoRun(code, out, capture, keys)


def test_demo_exits_0_and_writes_ten_frames_and_an_owner_only_key(demo_run):
    assert demo_run.code == EXIT_OK
    assert len(demo_run.captured) == 10
    assert all(c.linktype == pcap.LINKTYPE_ETHERNET for c in demo_run.captured)
    key_file = demo_run.keys / "mn-key.pem"
    assert mode(key_file) == 0o600
    assert cga.load_private_key_pem(key_file.read_bytes()).key_size == 1024
    assert f"wrote 10 frames to {demo_run.capture}" in demo_run.text


def test_demo_prints_the_four_scenario_steps_in_order(demo_run):
    positions = [demo_run.text.find(f"== {step}. ") for step in (1, 2, 3, 4)]
    assert -1 not in positions, demo_run.text[:500]
    assert positions == sorted(positions)
    assert "attach to DAR1" in demo_run.text
    assert "move to DAR2" in demo_run.text
    assert "move to DAR3" in demo_run.text
    assert "return to DAR1" in demo_run.text
    assert "demo: the exchange did not end in the expected state" not in demo_run.text


def test_demo_capture_decodes_as_all_valid_with_fama_mh_decode(capsys, demo_run):
    code, out, err = run(capsys, "mh", "decode", "--pcap", str(demo_run.capture))
    assert (code, err) == (EXIT_OK, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["packet"] for line in lines] == list(range(1, 11))
    assert all(line["valid"] is True for line in lines), [
        line for line in lines if not line["valid"]
    ]


def test_demo_alternates_binding_updates_and_their_accepting_acks(demo_run):
    for bu_packet, ba_packet in zip(demo_run.packets[::2], demo_run.packets[1::2], strict=True):
        bu, ba = bu_packet.message, ba_packet.message
        assert isinstance(bu, mh.BindingUpdate)
        assert isinstance(ba, mh.BindingAck)
        assert ba.sequence == bu.sequence
        assert ba.status == mh.BAStatus.ACCEPTED
        assert (ba_packet.source, ba_packet.destination) == (
            bu_packet.destination,
            bu_packet.source,
        )
        # the BA's type 2 Routing Header carries the HoA the BU registered
        assert ba_packet.routing_address == bu_packet.home_address


def test_demo_first_bu_is_cga_signed_and_signature_verifies(demo_run):
    first = demo_run.packets[0]
    options = first.message.options
    assert isinstance(first.message, mh.BindingUpdate)
    assert options.cga_parameters is not None and options.signature is not None
    assert options.authenticator is None
    params = cga.CgaParameters.decode(options.cga_parameters)
    hoa = first.home_address
    assert hoa is not None and cga.verify_cga(hoa, params).ok
    public_key = cga.load_public_key(params.public_key_der)
    assert auth.verify_binding_update_signature(
        public_key, options.signature, first.source, first.destination, first.mh.signed_data()
    )


def test_demo_first_ba_carries_phkt_and_authorization_data(demo_run):
    ba = demo_run.packets[1].message
    assert isinstance(ba, mh.BindingAck)
    assert ba.status == 0
    assert ba.options.permanent_home_keygen_token is not None
    assert len(ba.options.permanent_home_keygen_token) == 128  # 1024-bit key (P12)
    assert ba.options.authenticator is not None


def test_demo_second_bu_to_dar1_is_phkt_authenticated_not_signed(demo_run):
    third = demo_run.packets[2]
    options = third.message.options
    assert isinstance(third.message, mh.BindingUpdate)
    assert options.authenticator is not None
    assert options.signature is None
    assert options.cga_parameters is None
    assert third.home_address == demo_run.packets[0].home_address  # HoA1 again
    assert third.destination == demo_run.packets[0].destination  # DAR1 again


def _kbm_from_demo_phkt(demo_run) -> bytes:
    """Kbm = SHA1(PHKT), the PHKT of BA 2 decrypted with the key the demo wrote."""
    key = cga.load_private_key_pem((demo_run.keys / "mn-key.pem").read_bytes())
    token = demo_run.packets[1].message.options.permanent_home_keygen_token
    phkt = auth.decrypt_phkt(key, token)
    assert phkt is not None and len(phkt) == 8, "the written key does not decrypt the PHKT"
    kbm = hashlib.sha1(phkt).digest()
    assert kbm == auth.binding_management_key(phkt, None)
    return kbm


def test_demo_authenticators_verify_with_kbm_from_the_decrypted_phkt(demo_run):
    kbm = _kbm_from_demo_phkt(demo_run)
    ba, bu = demo_run.packets[1], demo_run.packets[2]
    # BU 3: First(96, HMAC_SHA1(Kbm, CoA | A_HDAR | MH data)), CoA = source, A_HDAR = destination
    expected_bu = auth.binding_authenticator(
        kbm, bu.source, bu.destination, bu.mh.authorized_data()
    )
    assert expected_bu == bu.message.options.authenticator
    # BA 2 (sent with the PHKT): keyed the same way, CoA = its destination
    expected_ba = auth.binding_authenticator(
        kbm, ba.destination, ba.source, ba.mh.authorized_data()
    )
    assert expected_ba == ba.message.options.authenticator
    # and another key would not do: the check is not vacuous
    wrong = auth.binding_authenticator(
        hashlib.sha1(b"\x00" * 8).digest(), bu.source, bu.destination, bu.mh.authorized_data()
    )
    assert wrong != bu.message.options.authenticator


def test_demo_deregistration_is_accepted_with_lifetime_0(demo_run):
    packets = demo_run.packets
    deregistrations = [
        n
        for n, p in enumerate(packets)
        if isinstance(p.message, mh.BindingUpdate)
        and (p.message.lifetime_units == 0 or p.home_address in (None, p.source))
    ]
    assert len(deregistrations) == 1
    n = deregistrations[0]
    dereg, answer = packets[n], packets[n + 1]
    hoa1, anchor1 = packets[0].home_address, packets[0].destination
    # CoA == HoA: sent from HoA1 to DAR1 without a Home Address option, lifetime 0 (P11)
    assert (dereg.source, dereg.destination, dereg.home_address) == (hoa1, anchor1, None)
    assert dereg.message.lifetime_units == 0
    assert dereg.message.options.authenticator is not None
    assert dereg.message.options.signature is None
    assert isinstance(answer.message, mh.BindingAck)
    assert answer.message.sequence == dereg.message.sequence
    assert (answer.message.status, answer.message.lifetime_units) == (0, 0)
    assert answer.destination == hoa1
    # the deregistration is authenticated with DAR1's PHKT, the HoA as first address
    kbm = _kbm_from_demo_phkt(demo_run)
    expected = auth.binding_authenticator(kbm, hoa1, anchor1, dereg.mh.authorized_data())
    assert expected == dereg.message.options.authenticator


def test_demo_capture_timestamps_increase(demo_run):
    stamps = [c.timestamp for c in demo_run.captured]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_demo_keys_out_that_is_a_file_is_a_usage_error(capsys, tmp_path):
    blocker = tmp_path / "keys"
    blocker.write_text("a file, not a directory")
    code, out, err = run(
        capsys, "demo", "--pcap", str(tmp_path / "d.pcap"), "--keys-out", str(blocker)
    )
    assert code == EXIT_USAGE
    assert "fama: " in err


# ---------------------------------------------------------------- console script


def _console(*argv: str) -> subprocess.CompletedProcess[str]:
    assert FAMA.exists(), f"console script {FAMA} missing: run `make venv` (pip install -e .)"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [str(FAMA), *argv], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_console_script_decodes_the_demo_capture(demo_run):
    result = _console("mh", "decode", "--pcap", str(demo_run.capture))
    assert result.returncode == EXIT_OK, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 10
    assert all(line["valid"] for line in lines)
    assert lines[0]["mobility_header"]["options"]["signature"]["length"] == 128


def test_console_script_verifies_a_cga_and_reports_usage_errors(sec1_cga):
    ok = _console(
        "cga", "verify", "--address", sec1_cga["address"], "--params", sec1_cga["params_hex"]
    )
    assert (ok.returncode, ok.stdout.strip()) == (EXIT_OK, "valid CGA, Sec 1")
    bad = _console("mh", "decode")
    assert bad.returncode == EXIT_USAGE
    assert bad.stderr.strip() == "fama: give either HEX or --pcap FILE"
    assert bad.stdout == ""
