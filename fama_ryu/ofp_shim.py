"""The Ryu OpenFlow 1.3 pieces the app still uses as objects.

One of the few modules that import ryu (with ``app`` and ``rest``): moving to
os-ken is a rename here.  Flow-mods, meter-mods, barriers and packet-outs are
encoded by ``openflow_pipelines.wire`` and written as bytes; what is left
here is the port-description request and the connection's transaction ids.
"""

from __future__ import annotations

from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser


def port_desc_request(datapath: Any) -> Any:
    return parser.OFPPortDescStatsRequest(datapath, 0)


def next_xid(datapath: Any) -> int:
    """A transaction id from the connection's sequence, as Ryu's own messages get."""
    datapath.xid = (datapath.xid + 1) & ofp.MAX_XID
    return int(datapath.xid)
