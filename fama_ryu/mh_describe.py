"""JSON-ready descriptions of Mobility Header packets and of codec rejections.

Used by ``fama mh decode`` and the demo to print what is on the wire.
Secret-bearing options are shown by length only where they are secrets in
clear (none are: the PHKT travels encrypted, P12), so everything decoded is
printed, binary fields as hex.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fama_ryu import mh


def address_text(address: bytes | None) -> str | None:
    return None if address is None else str(ipaddress.IPv6Address(address))


def _status_name(status: int, names: type[mh.BAStatus] | type[mh.BEStatus]) -> str:
    try:
        return names(status).name
    except ValueError:
        return f"UNKNOWN_{status}"


def describe_options(options: mh.MobilityOptions) -> dict[str, Any]:
    described: dict[str, Any] = {}
    if options.binding_refresh_interval_units is not None:
        described["binding_refresh_interval_s"] = options.binding_refresh_interval_units * 4
    if options.alternate_coa is not None:
        described["alternate_coa"] = address_text(options.alternate_coa)
    if options.nonce_indices is not None:
        described["nonce_indices"] = {
            "home": options.nonce_indices[0],
            "care_of": options.nonce_indices[1],
        }
    if options.cga_parameters_request:
        described["cga_parameters_request"] = True
    if options.cga_parameters is not None:
        described["cga_parameters"] = {
            "length": len(options.cga_parameters),
            "hex": options.cga_parameters.hex(),
        }
    if options.signature is not None:
        described["signature"] = {"length": len(options.signature), "hex": options.signature.hex()}
    if options.permanent_home_keygen_token is not None:
        described["permanent_home_keygen_token"] = {
            "encrypted_length": len(options.permanent_home_keygen_token),
            "hex": options.permanent_home_keygen_token.hex(),
        }
    if options.care_of_test_init:
        described["care_of_test_init"] = True
    if options.care_of_keygen_token is not None:
        described["care_of_keygen_token"] = options.care_of_keygen_token.hex()
    if options.authenticator is not None:
        described["binding_authorization_data"] = options.authenticator.hex()
    if options.skipped_types:
        described["skipped_option_types"] = list(options.skipped_types)
    return described


def describe_message(message: mh.MobilityMessage) -> dict[str, Any]:
    described: dict[str, Any] = {"type": mh.message_type(message).name}
    if isinstance(message, mh.BindingUpdate):
        flags = [
            name
            for name, present in (
                ("A", message.ack),
                ("H", message.home_registration),
                ("L", message.link_local_compat),
                ("K", message.key_management),
            )
            if present
        ]
        described.update(
            sequence=message.sequence, flags="".join(flags), lifetime_s=message.lifetime_s
        )
    elif isinstance(message, mh.BindingAck):
        described.update(
            status=message.status,
            status_name=_status_name(message.status, mh.BAStatus),
            sequence=message.sequence,
            lifetime_s=message.lifetime_s,
        )
    elif isinstance(message, mh.BindingError):
        described.update(
            status=message.status,
            status_name=_status_name(message.status, mh.BEStatus),
            home_address=address_text(message.home_address),
        )
    elif isinstance(message, mh.CareOfTestInit):
        described["cookie"] = message.cookie.hex()
    else:
        described.update(
            nonce_index=message.nonce_index,
            cookie=message.cookie.hex(),
            keygen_token=message.keygen_token.hex(),
        )
    options = describe_options(message.options)
    if options:
        described["options"] = options
    return described


def describe_packet(packet: mh.MobilityPacket) -> dict[str, Any]:
    described: dict[str, Any] = {
        "valid": True,
        "source": address_text(packet.source),
        "destination": address_text(packet.destination),
    }
    if packet.home_address is not None:
        described["home_address_option"] = address_text(packet.home_address)
    if packet.routing_address is not None:
        described["type2_routing_header"] = address_text(packet.routing_address)
    described["mobility_header"] = describe_message(packet.message)
    return described


def describe_rejection(error: mh.MobilityParseError) -> dict[str, Any]:
    described: dict[str, Any] = {
        "valid": False,
        "reason": error.reason.value,
        "reaction": error.reason.reaction.value,
        "detail": error.detail,
    }
    if error.pointer is not None:
        described["pointer"] = error.pointer
    return described


def decode_bytes(data: bytes) -> dict[str, Any]:
    """Decode an Ethernet frame or a bare IPv6 packet and describe it."""
    try:
        if _looks_like_ipv6_packet(data):
            packet = mh.parse_ipv6_packet(data)
        else:
            packet = mh.parse_ethernet_frame(data)
    except mh.MobilityParseError as error:
        return describe_rejection(error)
    return describe_packet(packet)


def _looks_like_ipv6_packet(data: bytes) -> bool:
    """A bare IPv6 packet: version 6 and a payload length that fits the data.

    An Ethernet frame whose destination MAC starts with 0x6_ would pass the
    version test alone; the length test tells them apart.
    """
    if len(data) < 40 or data[0] >> 4 != 6:
        return False
    return 40 + int.from_bytes(data[4:6], "big") <= len(data)
