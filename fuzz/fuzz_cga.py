"""Fuzz target: CGA Parameters decoding, CGA verification and the BU signature check.

The first byte picks a mode (modulo 3):

0. ``address (16 bytes) | CGA Parameters``: decode, then ``verify_cga``
   with the key policy (hashes and a DER parse only);
1. ``CGA Parameters``: decode, ``load_public_key`` (the key policy, P8);
2. ``length (2 bytes) | CGA Parameters | signature``: decode, load the key,
   then ``auth.verify_binding_update_signature`` over a fixed message: the
   only mode that may cost an RSA operation.

Findings: any exception other than the documented ``CgaDecodeError`` and
``CgaKeyError``; any RSA operation outside the signature check (CGA
verification must stay hash-only so a forged BU is rejected cheaply).
"""

from __future__ import annotations

import atheris
import harness

with atheris.instrument_imports(include=["fama_ryu"]):
    from fama_ryu import auth, cga

SIGNED_COA = bytes.fromhex("20010db8000c000000000000000000b0")
SIGNED_HDAR = bytes.fromhex("20010db8000a00000000000000000001")
SIGNED_MH_DATA = b"fuzzed mobility header data"


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    rsa_before = auth.RSA_OPERATIONS.total()
    if mode == 0:
        if len(rest) < cga.ADDRESS_LEN:
            return
        params = cga.CgaParameters.decode(rest[cga.ADDRESS_LEN :])
        result = cga.verify_cga(rest[: cga.ADDRESS_LEN], params)
        assert result.ok == (result.failed_step is None), result
        assert params.encode() == rest[cga.ADDRESS_LEN :]
    elif mode == 1:
        cga.load_public_key(cga.CgaParameters.decode(rest).public_key_der)
    else:
        length = int.from_bytes(rest[:2], "big")
        params = cga.CgaParameters.decode(rest[2 : 2 + length])
        key = cga.load_public_key(params.public_key_der)
        assert auth.RSA_OPERATIONS.total() == rsa_before, "RSA work before the signature check"
        auth.verify_binding_update_signature(
            key, rest[2 + length :], SIGNED_COA, SIGNED_HDAR, SIGNED_MH_DATA
        )
        return
    assert auth.RSA_OPERATIONS.total() == rsa_before, "CGA checks made an RSA operation"


if __name__ == "__main__":
    harness.fuzz(one_input, expected=(cga.CgaDecodeError, cga.CgaKeyError))
