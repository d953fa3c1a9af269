"""Fuzz target: Ethernet frames punted to a configured DAR (``Dar.packet_in``).

Input layout: the first byte picks the OpenFlow in_port (low three bits)
and whether the Mobility Header checksum is recomputed (``RESEAL`` bit);
the rest is the frame.  Each frame also goes through
``mh.parse_ethernet_frame`` on its own.  Findings: any exception from
``Dar.packet_in``, any exception other than ``MobilityParseError`` from
the codec, a Parameter Problem pointer outside the invoking packet, a
reply frame to a port the DAR does not have.  Decided changes are
never committed, so every input meets the same bindings.
"""

from __future__ import annotations

import atheris
import harness

with atheris.instrument_imports(include=["fama_ryu", "openflow_pipelines"]):
    import fuzz_domain

    from fama_ryu import mh
    from fama_ryu.dar import Work

DAR = fuzz_domain.make_dars()[0xA]
OWN_PORTS = frozenset(fuzz_domain.PORTS) - {fuzz_domain.UNKNOWN_PORT}
_clock = [fuzz_domain.T0]


def one_input(data: bytes) -> None:
    if not data:
        return
    control, frame = data[0], data[1:]
    if control & fuzz_domain.RESEAL:
        frame = fuzz_domain.reseal(frame)
    try:
        mh.parse_ethernet_frame(frame)
    except mh.MobilityParseError as error:
        if error.reason.reaction is mh.Reaction.PARAMETER_PROBLEM:
            assert error.pointer is not None and 0 <= error.pointer < len(frame) - 14, error
    _clock[0] += 0.001  # time moves on, so the reply rate limiters refill
    work = DAR.packet_in(fuzz_domain.PORTS[control & 7], frame, _clock[0])
    assert isinstance(work, Work)
    if work.changes:
        # Refused as by a failing store: the binding cache stays as it was for
        # the next input, and the BA 130 path is exercised.
        DAR.store_failed(work, "fuzz")
    for out in work.packet_outs + work.after_flows:
        assert out.port in OWN_PORTS and len(out.frame) >= 14 + 40, out


if __name__ == "__main__":
    harness.fuzz(one_input)
