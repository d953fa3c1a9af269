"""The ``fama`` command line: CGA tools, Mobility Header decoding, the demo.

Other tools and scripts rely on these exact forms:

    fama cga keygen --bits N --out KEY.pem
    fama cga address --key KEY.pem --prefix PREFIX/64 --sec S [--json]
    fama cga verify --address ADDR --params HEX
    fama mh decode (HEX | --pcap FILE)
    fama demo --pcap FILE --keys-out DIR
    fama check-config FILE
    fama bindings [--url URL] [--hoa ADDR] [--coa ADDR] [--dpid DPID]

Exit codes: 0 success, 1 a negative answer (e.g. a CGA that does not
verify), 2 unusable input.  This is the one place that reads the OS random
source and the clock for the pure core.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from fama_ryu import cga, keyfile, mh_describe, pcap

EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Input the command cannot use; reported on stderr with exit code 2."""


def _parse_prefix(text: str) -> bytes:
    try:
        network = ipaddress.IPv6Network(text, strict=True)
    except ValueError as error:
        raise UsageError(f"bad prefix {text!r}: {error}") from None
    if network.prefixlen != 64:
        raise UsageError(f"prefix {text!r} must be a /64 (RFC 3972 §4)")
    return network.network_address.packed[:8]


def _parse_address(text: str) -> bytes:
    try:
        return ipaddress.IPv6Address(text).packed
    except ValueError as error:
        raise UsageError(f"bad IPv6 address {text!r}: {error}") from None


def _parse_hex(text: str, what: str) -> bytes:
    cleaned = "".join(text.split()).removeprefix("0x").replace(":", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise UsageError(f"{what} is not hexadecimal") from None


def _read_key(path: str) -> cga.rsa.RSAPrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read key {path}: {error.strerror}") from None
    try:
        return cga.load_private_key_pem(data)
    except (ValueError, TypeError) as error:
        raise UsageError(f"{path} is not an RSA private key: {error}") from None


def cmd_cga_keygen(args: argparse.Namespace) -> int:
    if not cga.MIN_KEY_BITS <= args.bits <= cga.MAX_KEY_BITS:
        raise UsageError(f"--bits must be {cga.MIN_KEY_BITS}..{cga.MAX_KEY_BITS} (P8)")
    try:
        keyfile.write_private_key(Path(args.out), cga.generate_rsa_key(args.bits))
    except OSError as error:
        raise UsageError(f"cannot write {args.out}: {error.strerror}") from None
    print(args.out)
    return EXIT_OK


def cmd_cga_address(args: argparse.Namespace) -> int:
    if not 0 <= args.sec <= 2:
        raise UsageError("--sec must be 0, 1 or 2")
    prefix = _parse_prefix(args.prefix)
    key = _read_key(args.key)
    try:
        cga.load_public_key(cga.public_key_der(key))
    except cga.CgaKeyError as error:
        raise UsageError(f"{args.key}: {error} (P8)") from None
    address, params = cga.generate_cga(cga.public_key_der(key), prefix, args.sec, os.urandom)
    address_text = str(ipaddress.IPv6Address(address))
    if args.json:
        print(
            json.dumps(
                {
                    "address": address_text,
                    "params_hex": params.encode().hex(),
                    "sec": args.sec,
                    "collision_count": params.collision_count,
                }
            )
        )
    else:
        print(address_text)
        print(params.encode().hex())
    return EXIT_OK


def cmd_cga_verify(args: argparse.Namespace) -> int:
    address = _parse_address(args.address)
    try:
        params = cga.CgaParameters.decode(_parse_hex(args.params, "--params"))
    except cga.CgaDecodeError as error:
        raise UsageError(f"CGA Parameters do not decode: {error}") from None
    result = cga.verify_cga(
        address, params, min_key_bits=args.min_key_bits, max_key_bits=cga.MAX_KEY_BITS
    )
    if result.ok:
        print(f"valid CGA, Sec {result.sec}")
        return EXIT_OK
    assert result.failed_step is not None
    print(f"invalid CGA: step {result.failed_step.name}: {result.reason}", file=sys.stderr)
    return EXIT_NEGATIVE


def cmd_mh_decode(args: argparse.Namespace) -> int:
    if (args.hex is None) == (args.pcap is None):
        raise UsageError("give either HEX or --pcap FILE")
    if args.hex is not None:
        print(json.dumps(mh_describe.decode_bytes(_parse_hex(args.hex, "HEX")), indent=2))
        return EXIT_OK
    try:
        with open(args.pcap, "rb") as stream:
            for number, captured in enumerate(pcap.read_capture(stream), start=1):
                if captured.linktype not in (pcap.LINKTYPE_ETHERNET, pcap.LINKTYPE_RAW):
                    raise UsageError(f"unsupported link type {captured.linktype}")
                described = {"packet": number, "timestamp": captured.timestamp}
                described.update(mh_describe.decode_bytes(captured.data))
                print(json.dumps(described))
    except OSError as error:
        raise UsageError(f"cannot read {args.pcap}: {error.strerror}") from None
    except pcap.CaptureFormatError as error:
        raise UsageError(f"{args.pcap}: {error}") from None
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from fama_ryu import demo  # imported on use: the other commands do not need it

    pcap_path, keys_dir = Path(args.pcap), Path(args.keys_out)
    if pcap_path.is_dir():
        raise UsageError(f"--pcap {pcap_path} is a directory")
    if keys_dir.exists() and not keys_dir.is_dir():
        raise UsageError(f"--keys-out {keys_dir} is not a directory")
    try:
        return demo.run(pcap_path=pcap_path, keys_dir=keys_dir, out=sys.stdout)
    except OSError as error:
        raise UsageError(f"{error.filename}: {error.strerror}") from None


def cmd_check_config(args: argparse.Namespace) -> int:
    from fama_ryu import config  # imported on use: PyYAML and oslo.config load slowly

    try:
        domain = config.load_domain(Path(args.file))
    except config.UnreadableConfigError as error:
        raise UsageError(str(error)) from None
    except config.ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_NEGATIVE
    print(f"{args.file}: valid, {len(domain.dars)} DAR(s)")
    for dar in domain.dars:
        prefixes = ", ".join(str(prefix) for prefix in dar.access_prefixes)
        mode = "return-routability" if dar.return_routability else "basic"
        if dar.name == domain.legacy_home_agent:
            mode += ", legacy home agent for every prefix of the domain"
        print(
            f"{dar.name}: dpid {dar.dpid_text}, prefixes {prefixes}, "
            f"anchor {dar.anchor_address}, mode {mode}"
        )
    return EXIT_OK


def cmd_bindings(args: argparse.Namespace) -> int:
    """Print the controller's bindings (GET /fama/v1/bindings) as a table."""
    query = {name: value for name in ("hoa", "coa", "dpid") if (value := getattr(args, name))}
    url = args.url.rstrip("/") + "/fama/v1/bindings"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            rows = json.load(response)
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace").strip()
        raise UsageError(f"{url}: HTTP {error.code}: {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise UsageError(f"cannot read {url}: {error}") from None
    headers = ("HOA", "COA", "DAR", "SEQ", "LIFETIME_S", "REMAINING_S")
    try:
        table = [headers] + [
            (
                str(row["hoa"]),
                str(row["coa"]),
                str(row["dar"]),
                str(row["sequence"]),
                str(row["lifetime_s"]),
                f"{float(row['remaining_s']):.0f}",
            )
            for row in rows
        ]
    except (TypeError, KeyError, ValueError) as error:
        raise UsageError(f"{url}: not a list of bindings ({error!r})") from None
    widths = [max(len(line[column]) for line in table) for column in range(len(headers))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fama", description="FAMA distributed mobility tools (draft-bernardos-dmm-cmip-06)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    cga_parser = commands.add_parser("cga", help="Cryptographically Generated Addresses")
    cga_commands = cga_parser.add_subparsers(dest="cga_command", required=True)
    keygen = cga_commands.add_parser("keygen", help="generate an RSA key (exponent 65537)")
    keygen.add_argument("--bits", type=int, default=1024)
    keygen.add_argument("--out", required=True, metavar="KEY.pem")
    keygen.set_defaults(handler=cmd_cga_keygen)
    address = cga_commands.add_parser("address", help="generate a CGA in a /64 prefix")
    address.add_argument("--key", required=True, metavar="KEY.pem")
    address.add_argument("--prefix", required=True, metavar="PREFIX/64")
    address.add_argument("--sec", type=int, default=1)
    address.add_argument("--json", action="store_true")
    address.set_defaults(handler=cmd_cga_address)
    verify = cga_commands.add_parser("verify", help="verify an address against CGA Parameters")
    verify.add_argument("--address", required=True)
    verify.add_argument("--params", required=True, metavar="HEX")
    verify.add_argument("--min-key-bits", type=int, default=cga.MIN_KEY_BITS)
    verify.set_defaults(handler=cmd_cga_verify)

    mh_parser = commands.add_parser("mh", help="Mobility Header tools")
    mh_commands = mh_parser.add_subparsers(dest="mh_command", required=True)
    decode = mh_commands.add_parser("decode", help="decode packets as JSON")
    decode.add_argument("hex", nargs="?", metavar="HEX", help="Ethernet frame or IPv6 packet")
    decode.add_argument("--pcap", metavar="FILE", help="pcap or pcapng capture")
    decode.set_defaults(handler=cmd_mh_decode)

    demo = commands.add_parser("demo", help="in-process FAMA exchange between an MN and a DAR")
    demo.add_argument("--pcap", required=True, metavar="FILE")
    demo.add_argument("--keys-out", required=True, metavar="DIR")
    demo.set_defaults(handler=cmd_demo)

    check_config = commands.add_parser("check-config", help="validate a FAMA domain file")
    check_config.add_argument("file", metavar="FILE", help="domain file (YAML)")
    check_config.set_defaults(handler=cmd_check_config)
    bindings = commands.add_parser("bindings", help="the controller's bindings, as a table")
    bindings.add_argument("--url", default="http://127.0.0.1:8080", help="REST base URL")
    bindings.add_argument("--hoa")
    bindings.add_argument("--coa")
    bindings.add_argument("--dpid")
    bindings.add_argument("--timeout", type=float, default=5.0)
    bindings.set_defaults(handler=cmd_bindings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except UsageError as error:
        print(f"fama: {error}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
