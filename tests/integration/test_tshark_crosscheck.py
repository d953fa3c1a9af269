"""Cross-check of the Mobility Header codec and the demo capture with tshark.

tshark (Wireshark's dissector, an independent implementation) reads

* the capture ``fama demo`` writes (run as the installed console script), and
* codec-built packets of every message type the codec handles (Binding Error,
  Care-of Test Init, Care-of Test, Binding Updates with Alternate CoA, Nonce
  Indices, Care-of Test Init option, two-fragment CGA Parameters from a
  2040-bit key with a 255-byte signature, Binding Acks with PHKT, Care-of
  Test, Binding Refresh Advice, CGA Parameters Request), written with
  ``fama_ryu.pcap.write_pcap``.

For each packet: tshark dissects it as MIPv6 with no ``_ws.malformed`` and no
expert info of severity warning or error, and the MH type, Header Len,
checksum, sequence, lifetime, status, flags, message fields, the exact
sequence of mobility options (type, length, bytes, PadN/Pad1 included) and
the Home Address option / type 2 Routing Header addresses equal what our
decoder (``fama mh decode --pcap``) reports.

Wireshark 4.0 quirks handled here: the data fields of the variable-length
options (``mip6.cgar.cga_par``, ``mip6.sign.sign``, ``mip6.phkt.phkt``,
``mip6.mocot.co_keygen_tok``) stop 2 bytes short, so option bytes are taken
from the whole-option fields (``mip6.options.*``: type | length | data); the
Care-of Test keygen token is shown as ``mip6.hot.token``; tshark does not
verify the MH checksum, so only its value is compared.

Needs tshark only (no root).  A missing tshark FAILS: run `make system-deps`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fama_ryu import auth, cga, mh, pcap

pytestmark = pytest.mark.integration

FAMA = Path(sys.executable).with_name("fama")
PI_WARN = 0x00600000  # expert severities: chat 0x200000, note 0x400000, warn, error 0x800000

# tshark's name of each mobility option -> option type (RFC 6275 §6.2, RFC 4866 §5)
OPTION_TYPES = {
    "pad1": 0,
    "padn": 1,
    "bra": 2,
    "acoa": 3,
    "ni": 4,
    "bad_auth": 5,
    "cgapr": 11,
    "cgar": 12,
    "sign": 13,
    "phkt": 14,
    "coti": 15,
    "cot": 16,
}
# our decoder's option key (mh_describe) -> tshark's option name
DESCRIBED_OPTIONS = {
    "binding_refresh_interval_s": "bra",
    "alternate_coa": "acoa",
    "nonce_indices": "ni",
    "binding_authorization_data": "bad_auth",
    "cga_parameters_request": "cgapr",
    "cga_parameters": "cgar",
    "signature": "sign",
    "permanent_home_keygen_token": "phkt",
    "care_of_test_init": "coti",
    "care_of_keygen_token": "cot",
}
MESSAGE_SUBTREES = {
    mh.MHType.CARE_OF_TEST_INIT: "Care-of Test Init",
    mh.MHType.CARE_OF_TEST: "Care-of Test",
    mh.MHType.BINDING_UPDATE: "Binding Update",
    mh.MHType.BINDING_ACK: "Binding Acknowledgement",
    mh.MHType.BINDING_ERROR: "Binding Error",
}
# Where mobility options start in each message (RFC 6275 §6.1), independent of mh.py.
OPTIONS_OFFSET = {
    mh.MHType.CARE_OF_TEST_INIT: 16,
    mh.MHType.CARE_OF_TEST: 24,
    mh.MHType.BINDING_UPDATE: 12,
    mh.MHType.BINDING_ACK: 12,
    mh.MHType.BINDING_ERROR: 24,
}


def addr(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def text(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))


def colon_hex(value: str) -> bytes:
    return bytes.fromhex(value.replace(":", ""))


# ---------------------------------------------------------------- tshark JSON


class Node(list):
    """A JSON object as an ordered list of (key, value): tshark repeats keys."""


def walk(node: Node):
    for key, value in node:
        yield key, value
        if isinstance(value, Node):
            yield from walk(value)


def values(node: Node, key: str) -> list:
    return [v for k, v in walk(node) if k == key]


def one(node: Node, key: str):
    found = values(node, key)
    assert len(found) == 1, f"{key}: {found!r}"
    return found[0]


def child(node: Node, key: str) -> Node | None:
    found = [v for k, v in node if k == key]
    assert len(found) <= 1, key
    return found[0] if found else None


def require_tshark() -> str:
    """tshark's path; a missing tshark fails the test (pytest.fail), never skips."""
    path = shutil.which("tshark")
    if path is None:
        pytest.fail(
            "tshark is not installed: run `make system-deps` (CI installs it; "
            "this cross-check must not be skipped)",
            pytrace=False,
        )
    return path


def dissect(tshark: str, capture: Path) -> list[Node]:
    """The ``layers`` of every packet, as tshark -T json shows them."""
    result = subprocess.run(
        [tshark, "-n", "-r", str(capture), "-T", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    packets = json.loads(result.stdout, object_pairs_hook=Node)
    return [child(child(packet, "_source"), "layers") for packet in packets]


@dataclass
class TsharkOption:
    name: str
    raw: bytes  # type | length | data
    tree: Node | None


@dataclass
class TsharkPacket:
    layers: Node

    @property
    def protocols(self) -> list[str]:
        return one(self.layers, "frame.protocols").split(":")

    @property
    def malformed(self) -> bool:
        return any(key.startswith("_ws.malformed") for key, _ in walk(self.layers))

    @property
    def serious_expert_info(self) -> list[tuple[int, str]]:
        found = []
        for expert in values(self.layers, "_ws.expert"):
            severity = int(child(expert, "_ws.expert.severity"))
            if severity >= PI_WARN:
                found.append((severity, child(expert, "_ws.expert.message")))
        return found

    @property
    def mipv6(self) -> Node:
        return one(self.layers, "mipv6")

    def field(self, key: str) -> str:
        return one(self.mipv6, key)

    def message(self, mh_type: mh.MHType) -> Node:
        subtree = child(self.mipv6, MESSAGE_SUBTREES[mh_type])
        assert subtree is not None, f"no {MESSAGE_SUBTREES[mh_type]} subtree"
        return subtree

    @property
    def options(self) -> list[TsharkOption]:
        subtree = child(self.mipv6, "Mobility Options")
        if subtree is None:
            return []
        trees = {}
        options = []
        for key, value in subtree:
            assert key.startswith("mip6.options."), key
            name = key.removeprefix("mip6.options.")
            if name.endswith("_tree"):
                trees[len(options) - 1] = value
            else:
                options.append(TsharkOption(name, colon_hex(value), None))
        for index, tree in trees.items():
            options[index].tree = tree
        return options


# ---------------------------------------------------------------- our side


@dataclass
class OurPacket:
    parsed: mh.MobilityPacket
    described: dict  # one line of `fama mh decode --pcap`

    @property
    def raw_options(self) -> list[bytes]:
        """The options as type | length | data, walked from the decoder's MH bytes."""
        raw = self.parsed.mh.raw
        position, found = OPTIONS_OFFSET[self.parsed.mh.mh_type], []
        while position < len(raw):
            if raw[position] == 0:
                found.append(raw[position : position + 1])
                position += 1
            else:
                end = position + 2 + raw[position + 1]
                found.append(raw[position:end])
                position = end
        return found


def decode_with_fama(capture: Path) -> list[OurPacket]:
    assert FAMA.exists(), f"console script {FAMA} missing: run `make venv`"
    result = subprocess.run(
        [str(FAMA), "mh", "decode", "--pcap", str(capture)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    described = [json.loads(line) for line in result.stdout.splitlines()]
    with open(capture, "rb") as stream:
        frames = [c.data for c in pcap.read_capture(stream)]
    assert len(described) == len(frames)
    assert all(d["valid"] for d in described), [d for d in described if not d["valid"]]
    return [
        OurPacket(mh.parse_ethernet_frame(f), d) for f, d in zip(frames, described, strict=True)
    ]


# ---------------------------------------------------------------- the comparison


def assert_same_packet(theirs: TsharkPacket, ours: OurPacket, label: str) -> None:
    """Every check of the module docstring for one packet."""
    assert theirs.protocols[-1] == "mipv6", f"{label}: {theirs.protocols}"
    assert not theirs.malformed, f"{label}: tshark reports a malformed packet"
    assert theirs.serious_expert_info == [], f"{label}: tshark expert info"

    parsed, described = ours.parsed, ours.described
    header = described["mobility_header"]
    mh_type = parsed.mh.mh_type
    raw = parsed.mh.raw
    assert int(theirs.field("mip6.mhtype")) == mh_type == mh.MHType[header["type"]], label
    assert int(theirs.field("mip6.proto")) == raw[0] == mh.IPPROTO_NONE, label
    assert int(theirs.field("mip6.hlen")) == raw[1] == len(raw) // 8 - 1, label
    assert int(theirs.field("mip6.csum"), 16) == int.from_bytes(raw[4:6], "big"), label

    assert one(theirs.layers, "ipv6.src") == described["source"], label
    assert one(theirs.layers, "ipv6.dst") == described["destination"], label
    hao = values(theirs.layers, "ipv6.opt.mipv6.home_address")
    rh2 = values(theirs.layers, "ipv6.routing.mipv6.home_address")
    assert hao == [v for v in [described.get("home_address_option")] if v], label
    assert rh2 == [v for v in [described.get("type2_routing_header")] if v], label

    _assert_same_message(theirs.message(mh_type), mh_type, parsed.message, header, label)
    _assert_same_options(theirs.options, ours, header.get("options", {}), label)


def _flag(subtree: Node, key: str) -> bool:
    return one(subtree, key) == "1"


def _assert_same_message(subtree, mh_type, message, header, label) -> None:
    if mh_type is mh.MHType.BINDING_UPDATE:
        assert int(one(subtree, "mip6.bu.seqnr")) == header["sequence"], label
        assert int(one(subtree, "mip6.bu.lifetime")) * 4 == header["lifetime_s"], label
        flags = "".join(
            letter for letter in "AHLK" if _flag(subtree, f"mip6.bu.{letter.lower()}_flag")
        )
        assert flags == header["flags"], label
    elif mh_type is mh.MHType.BINDING_ACK:
        assert int(one(subtree, "mip6.ba.status")) == header["status"], label
        assert int(one(subtree, "mip6.ba.seqnr")) == header["sequence"], label
        assert int(one(subtree, "mip6.ba.lifetime")) * 4 == header["lifetime_s"], label
        assert _flag(subtree, "mip6.ba.k_flag") == message.key_management, label
    elif mh_type is mh.MHType.BINDING_ERROR:
        assert int(one(subtree, "mip6.be.status")) == header["status"], label
        assert one(subtree, "mip6.be.haddr") == header["home_address"], label
    elif mh_type is mh.MHType.CARE_OF_TEST_INIT:
        assert int(one(subtree, "mip6.coti.cookie"), 16) == int(header["cookie"], 16), label
    else:
        assert int(one(subtree, "mip6.cot.nindex")) == header["nonce_index"], label
        assert int(one(subtree, "mip6.cot.cookie"), 16) == int(header["cookie"], 16), label
        tokens = [v for k, v in subtree if k.endswith(".token")]  # shown as mip6.hot.token
        assert [int(t, 16) for t in tokens] == [int(header["keygen_token"], 16)], label


def _assert_same_options(options: list[TsharkOption], ours: OurPacket, described, label) -> None:
    # 1. the same options, in the same order, byte for byte (padding included)
    assert [o.raw for o in options] == ours.raw_options, label
    for option in options:
        assert option.name in OPTION_TYPES, f"{label}: unexpected tshark option {option.name}"
        assert option.raw[0] == OPTION_TYPES[option.name], label
        if option.name == "pad1":
            continue
        assert int(one(option.tree, "mip6.mobility_opt.len")) == option.raw[1], label
        if option.name == "padn":
            assert not any(option.raw[2:]), f"{label}: PadN not zero"

    # 2. the options tshark names are the ones our decoder describes
    named = {o.name for o in options} - {"pad1", "padn"}
    assert named == {DESCRIBED_OPTIONS[key] for key in described}, label

    def data(name: str) -> bytes:
        return b"".join(o.raw[2:] for o in options if o.name == name)

    def tree_value(name: str, key: str) -> str:
        (option,) = [o for o in options if o.name == name]
        return one(option.tree, key)

    # 3. and their values agree
    if "cga_parameters" in described:
        assert data("cgar") == bytes.fromhex(described["cga_parameters"]["hex"]), label
        assert len(data("cgar")) == described["cga_parameters"]["length"], label
    if "signature" in described:
        assert data("sign") == bytes.fromhex(described["signature"]["hex"]), label
        assert len(data("sign")) == described["signature"]["length"], label
    if "permanent_home_keygen_token" in described:
        token = described["permanent_home_keygen_token"]
        assert data("phkt") == bytes.fromhex(token["hex"]), label
        assert len(data("phkt")) == token["encrypted_length"], label
    if "binding_authorization_data" in described:
        expected = bytes.fromhex(described["binding_authorization_data"])
        assert data("bad_auth") == expected, label
        assert colon_hex(tree_value("bad_auth", "mip6.bad.auth")) == expected, label
    if "alternate_coa" in described:
        assert tree_value("acoa", "mip6.acoa.acoa") == described["alternate_coa"], label
    if "nonce_indices" in described:
        indices = described["nonce_indices"]
        assert int(tree_value("ni", "mip6.ni.hni")) == indices["home"], label
        assert int(tree_value("ni", "mip6.ni.cni")) == indices["care_of"], label
    if "binding_refresh_interval_s" in described:
        interval = int(tree_value("bra", "mip6.bra.interval"))
        assert interval * 4 == described["binding_refresh_interval_s"], label
    if "care_of_keygen_token" in described:
        assert data("cot") == bytes.fromhex(described["care_of_keygen_token"]), label


def crosscheck(tshark: str, capture: Path) -> list[tuple[TsharkPacket, OurPacket]]:
    theirs = [TsharkPacket(layers) for layers in dissect(tshark, capture)]
    ours = decode_with_fama(capture)
    assert len(theirs) == len(ours)
    for number, (their_packet, our_packet) in enumerate(zip(theirs, ours, strict=True), start=1):
        assert_same_packet(their_packet, our_packet, f"packet {number}")
    return list(zip(theirs, ours, strict=True))


# ---------------------------------------------------------------- the demo capture


@pytest.fixture(scope="module")
def demo_capture(tmp_path_factory) -> Path:
    assert FAMA.exists(), f"console script {FAMA} missing: run `make venv`"
    base = tmp_path_factory.mktemp("demo")
    capture = base / "demo.pcap"
    result = subprocess.run(
        [str(FAMA), "demo", "--pcap", str(capture), "--keys-out", str(base / "keys")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    return capture


def test_tshark_agrees_with_our_decoder_on_every_demo_packet(demo_capture):
    tshark = require_tshark()
    pairs = crosscheck(tshark, demo_capture)
    assert len(pairs) == 10
    names = [[o.name for o in theirs.options] for theirs, _ in pairs]
    # the scenario's security options are all there, as tshark sees them
    assert {"cgar", "sign"} <= set(names[0])
    assert {"phkt", "bad_auth"} <= set(names[1])
    assert "bad_auth" in names[2] and "sign" not in names[2]
    types = [int(theirs.field("mip6.mhtype")) for theirs, _ in pairs]
    assert types == [mh.MHType.BINDING_UPDATE, mh.MHType.BINDING_ACK] * 5


# ---------------------------------------------------------------- codec-built packets

MN_MAC, DAR_MAC = bytes.fromhex("020000000001"), bytes.fromhex("02000000d001")
ANCHOR = addr("2001:db8:1::1")
COA = addr("2001:db8:2::100")
ALT_COA = addr("2001:db8:3::100")
KBM = bytes(range(20))


@pytest.fixture(scope="module")
def big_key():
    """A 2040-bit key (P8 maximum): 318-byte CGA Parameters, 255-byte signature."""
    return cga.generate_rsa_key(cga.MAX_KEY_BITS)


def _codec_packets(key) -> list[tuple[str, bytes]]:
    hoa, params = cga.generate_cga(cga.public_key_der(key), ANCHOR[:8], 0, os.urandom)
    params_bytes = params.encode()
    assert len(params_bytes) > mh.CGA_PARAMETERS_FRAGMENT_LEN, "needs two CGA options"
    options = mh.MobilityOptions

    def bad(first: bytes, hdar: bytes):
        return lambda data: auth.binding_authenticator(KBM, first, hdar, data)

    def from_mn(message, **kwargs) -> bytes:
        kwargs.setdefault("home_address", hoa)
        return mh.build_packet(message, source=COA, destination=ANCHOR, **kwargs)

    def from_dar(message, **kwargs) -> bytes:
        kwargs.setdefault("routing_address", hoa)
        return mh.build_packet(message, source=ANCHOR, destination=COA, **kwargs)

    signer = lambda data: auth.sign_binding_update(key, COA, ANCHOR, data)  # noqa: E731
    phkt = auth.encrypt_phkt(key.public_key(), bytes(8))
    return [
        ("BE unknown binding", from_dar(mh.BindingError(1, hoa), routing_address=None)),
        ("BE unrecognized MH type", from_dar(mh.BindingError(2, hoa), routing_address=None)),
        ("CoTI", from_mn(mh.CareOfTestInit(b"cookie01"), home_address=None)),
        ("CoT", from_dar(mh.CareOfTest(0x1234, b"cookie01", b"keygen01"), routing_address=None)),
        (
            "BU alternate CoA + nonce indices + BAD",
            from_mn(
                mh.BindingUpdate(
                    7, 100, options=options(alternate_coa=ALT_COA, nonce_indices=(3, 4))
                ),
                authenticator=bad(ALT_COA, ANCHOR),
            ),
        ),
        (
            "BU two-fragment CGA Parameters + 255-byte Signature + nonce indices + BAD",
            from_mn(
                mh.BindingUpdate(
                    8, 150, options=options(cga_parameters=params_bytes, nonce_indices=(5, 6))
                ),
                signer=signer,
                signature_len=255,
                authenticator=bad(COA, ANCHOR),
            ),
        ),
        (
            "BU Care-of Test Init option, flags L K, no A",
            from_mn(
                mh.BindingUpdate(
                    9,
                    1,
                    ack=False,
                    link_local_compat=True,
                    key_management=True,
                    options=options(care_of_test_init=True),
                ),
            ),
        ),
        (
            "BU deregistration from the HoA",
            mh.build_packet(
                mh.BindingUpdate(10, 0),
                source=hoa,
                destination=ANCHOR,
                authenticator=bad(hoa, ANCHOR),
            ),
        ),
        (
            "BA Care-of Test option + 255-byte PHKT + BAD",
            from_dar(
                mh.BindingAck(
                    0,
                    8,
                    150,
                    options=options(
                        care_of_keygen_token=b"keygen02", permanent_home_keygen_token=phkt
                    ),
                ),
                authenticator=bad(COA, ANCHOR),
            ),
        ),
        (
            "BA refresh advice + CGA Parameters Request, K flag",
            from_dar(
                mh.BindingAck(
                    0,
                    9,
                    1,
                    key_management=True,
                    options=options(binding_refresh_interval_units=75, cga_parameters_request=True),
                ),
            ),
        ),
        ("BA status 148", from_dar(mh.BindingAck(148, 11, 0))),
        ("BA status 135", from_dar(mh.BindingAck(135, 12, 0), routing_address=None)),
    ]


@pytest.fixture(scope="module")
def codec_capture(tmp_path_factory, big_key) -> tuple[Path, list[str]]:
    built = _codec_packets(big_key)
    capture = tmp_path_factory.mktemp("codec") / "codec.pcap"
    frames = []
    for n, (_, packet) in enumerate(built):
        sender_is_mn = mh.parse_ipv6_packet(packet).source != ANCHOR
        src, dst = (MN_MAC, DAR_MAC) if sender_is_mn else (DAR_MAC, MN_MAC)
        frames.append((1_700_000_000 + n / 100, mh.build_ethernet_frame(src, dst, packet)))
    with open(capture, "wb") as stream:
        assert pcap.write_pcap(stream, frames) == len(frames)
    return capture, [label for label, _ in built]


def test_tshark_agrees_with_our_decoder_on_codec_built_packets(codec_capture):
    tshark = require_tshark()
    capture, labels = codec_capture
    theirs = [TsharkPacket(layers) for layers in dissect(tshark, capture)]
    ours = decode_with_fama(capture)
    assert len(theirs) == len(ours) == len(labels)
    for label, their_packet, our_packet in zip(labels, theirs, ours, strict=True):
        assert_same_packet(their_packet, our_packet, label)
    # every decoded message type is covered, and the CGA BU really has 2 fragments
    assert {p.parsed.mh.mh_type for p in ours} == set(mh.DECODED_TYPES)
    (cga_bu,) = [t for label, t in zip(labels, theirs, strict=True) if "two-fragment" in label]
    fragments = [o for o in cga_bu.options if o.name == "cgar"]
    assert len(fragments) == 2
    assert fragments[0].raw[1] == mh.CGA_PARAMETERS_FRAGMENT_LEN == 255
    assert [o.raw[1] for o in cga_bu.options if o.name == "sign"] == [255]
    assert "pad1" in [o.name for o in cga_bu.options], "expected a Pad1 before Nonce Indices"


def test_cga_bu_signature_and_cga_verify_after_the_tshark_round_trip(codec_capture, big_key):
    capture, labels = codec_capture
    ours = decode_with_fama(capture)
    (packet,) = [p.parsed for label, p in zip(labels, ours, strict=True) if "two-fragment" in label]
    params = cga.CgaParameters.decode(packet.message.options.cga_parameters)
    assert cga.verify_cga(packet.home_address, params).ok
    assert auth.verify_binding_update_signature(
        big_key.public_key(),
        packet.message.options.signature,
        packet.source,
        packet.destination,
        packet.mh.signed_data(),
    )


# ---------------------------------------------------------------- the checks are live


def test_malformed_and_warning_detection_is_live(tmp_path):
    """The checker must see tshark's complaints (guards against JSON format drift)."""
    tshark = require_tshark()
    packet = mh.build_packet(mh.BindingUpdate(1, 1), source=COA, destination=ANCHOR)
    header_len_past_end = bytearray(packet)
    header_len_past_end[40 + 1] = 9  # MH Header Len: 80 bytes, 16 present
    payload_past_end = bytearray(packet)
    payload_past_end[4:6] = (100).to_bytes(2, "big")  # IPv6 payload length past the frame
    capture = tmp_path / "broken.pcap"
    with open(capture, "wb") as stream:
        pcap.write_pcap(
            stream,
            [
                (1.0, mh.build_ethernet_frame(MN_MAC, DAR_MAC, bytes(p)))
                for p in (packet, header_len_past_end, payload_past_end)
            ],
        )
    good, malformed, warned = (TsharkPacket(layers) for layers in dissect(tshark, capture))
    assert not good.malformed and good.serious_expert_info == []
    assert malformed.malformed
    assert warned.serious_expert_info, "tshark's warning was not found"
