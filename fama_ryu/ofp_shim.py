"""Translation of the neutral flow model into Ryu OpenFlow 1.3 messages.

One of the few modules that import ryu (with ``app`` and ``rest``): moving to
os-ken is a rename here.  Every message the controller sends to a switch is
built by these functions.
"""

from __future__ import annotations

from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from openflow_pipelines.model import Action, DecNwTtl, FlowMod, Output, SetField


def _action(action: Action) -> Any:
    if isinstance(action, Output):
        return parser.OFPActionOutput(action.port, action.max_len or 0)
    if isinstance(action, SetField):
        return parser.OFPActionSetField(**{action.field: action.value})
    if isinstance(action, DecNwTtl):
        return parser.OFPActionDecNwTtl()
    raise TypeError(f"unknown action {action!r}")


def flow_mod(datapath: Any, flow: FlowMod) -> Any:
    """An ``OFPFlowMod`` for ``flow`` (apply-actions, then goto; none means drop)."""
    instructions = []
    if flow.actions:
        instructions.append(
            parser.OFPInstructionActions(
                ofp.OFPIT_APPLY_ACTIONS, [_action(action) for action in flow.actions]
            )
        )
    if flow.goto_table is not None:
        instructions.append(parser.OFPInstructionGotoTable(flow.goto_table))
    return parser.OFPFlowMod(
        datapath=datapath,
        cookie=flow.cookie,
        cookie_mask=flow.cookie_mask,
        table_id=flow.table_id,
        command=int(flow.command),
        idle_timeout=flow.idle_timeout,
        hard_timeout=flow.hard_timeout,
        priority=flow.priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        flags=int(flow.flags),
        match=parser.OFPMatch(**dict(flow.match)),
        instructions=instructions,
    )


def packet_out(datapath: Any, port: int, frame: bytes) -> Any:
    """Send ``frame`` out ``port`` as the controller (no table lookup)."""
    return parser.OFPPacketOut(
        datapath=datapath,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=ofp.OFPP_CONTROLLER,
        actions=[parser.OFPActionOutput(port, 0)],
        data=frame,
    )


def barrier_request(datapath: Any) -> Any:
    return parser.OFPBarrierRequest(datapath)


def port_desc_request(datapath: Any) -> Any:
    return parser.OFPPortDescStatsRequest(datapath, 0)


def next_xid(datapath: Any) -> int:
    """A transaction id from the connection's sequence, as Ryu's own messages get."""
    datapath.xid = (datapath.xid + 1) & ofp.MAX_XID
    return int(datapath.xid)
