"""Generate ``docs/pipeline.md`` from the pipeline declaration.

    python -m openflow_pipelines.docs > docs/pipeline.md

A test checks that the committed file equals this output, so the document
cannot drift from the tables the controller installs.
"""

from __future__ import annotations

import inspect

from openflow_pipelines import cookies, dar_flows, dar_pipeline
from openflow_pipelines.dar_config import PUNT_BURST_FRACTION, DarPipelineConfig
from openflow_pipelines.model import FlowStep, describe_step
from openflow_pipelines.pipeline import PipelineSpec, TableSpec

EXAMPLE_DAR = DarPipelineConfig(
    dpid=0x1,
    access_ports=(1,),
    core_port=2,
    gre_port=3,
    router_mac="02:00:00:00:01:01",
    core_next_hop_mac="02:00:00:00:00:fe",
    anchor_address="2001:db8:1::1",
    own_addresses=("fe80::1", "2001:db8:1::1"),
    access_prefixes=("2001:db8:1::/64",),
)
EXAMPLE_HOA = "2001:db8:1::a"
EXAMPLE_COA = "2001:db8:2::a"
EXAMPLE_NEW_COA = "2001:db8:3::a"


def _code(names: frozenset[str] | tuple[str, ...]) -> str:
    return ", ".join(f"`{name}`" for name in sorted(names)) or "none"


def _table_section(pipeline: PipelineSpec, table: TableSpec) -> list[str]:
    masked = _code(table.maskable_fields)
    roles = _code(tuple(role.value for role in table.output_roles))
    lines = [
        f"## Table {table.table_id}: `{table.name}`",
        "",
        table.purpose,
        "",
        f"- Match fields: {_code(table.match_fields)}; maskable: {masked}",
        f"- Next tables: {_code(table.next_tables)}",
        f"- Table miss: {table.miss.describe()}",
        f"- Actions may set: {_code(table.set_fields)}",
        f"- Hop limit decrement: {'yes' if table.dec_nw_ttl else 'no'}",
        f"- Outputs to: {roles}",
        f"- Punt meters: {_code(table.meters)}",
        "",
        "| priority | band | flows |",
        "| ---: | --- | --- |",
    ]
    lines += [
        f"| {band.priority} | `{band.name}` | {band.meaning} |" for band in table.priority_bands
    ]
    return [*lines, ""]


def _meter_section(pipeline: PipelineSpec) -> list[str]:
    lines = [
        "## Punt meters",
        "",
        "Every flow that outputs to the controller first passes one of these meters "
        "(OFPIT_METER, before apply-actions): a packet-per-second drop band with a "
        f"burst of 1/{PUNT_BURST_FRACTION} s of its rate, statistics on.  Rates come from "
        "the DAR's `punt_pps` settings in the domain file, one key per meter name.",
        "",
        "| id | meter | limits |",
        "| ---: | --- | --- |",
    ]
    lines += [
        f"| {meter.meter_id} | `{meter.name}` | {meter.meaning} |" for meter in pipeline.meters
    ]
    return [*lines, ""]


def _cookie_section() -> list[str]:
    kinds = [f"| {int(kind)} | `{kind.name}` |" for kind in cookies.FlowKind]
    return [
        "## Flow cookies",
        "",
        # The module docstring's first line is its title; the layout follows it.
        inspect.cleandoc(cookies.__doc__ or "").split("\n", 2)[2],
        "",
        "| kind | meaning |",
        "| ---: | --- |",
        *kinds,
        "",
    ]


SHIM_NOTES = """\
## Notes for the OpenFlow shim

- Translate each `FlowMod` one to one: `OFPMatch(**flow_mod.match)`; an
  `OFPInstructionActions(OFPIT_APPLY_ACTIONS, ...)` only when `actions` is not
  empty, then `OFPInstructionGotoTable` when `goto_table` is set (no
  instructions at all means drop); `Output(port, max_len)` ->
  `OFPActionOutput(port, max_len)` (the controller port always carries
  `max_len=NO_BUFFER`), `SetField(field, value)` ->
  `OFPActionSetField(**{field: value})`, `DecNwTtl()` -> `OFPActionDecNwTtl()`;
  `buffer_id=OFP_NO_BUFFER`, `out_port=OFPP_ANY`, `out_group=OFPG_ANY`;
  `command`, `flags`, `cookie`, `cookie_mask`, timeouts as given.
- Send the steps a builder returns in order.  At a `Barrier` send an
  OFPT_BARRIER_REQUEST; there is no need to wait for its reply to keep
  sending, except after a binding change, whose reply must arrive before the
  Binding Acknowledgement leaves (P12).
- Binding flows carry `SEND_FLOW_REM`: a flow-removed message with reason
  HARD_TIMEOUT means the switch expired a binding the controller still
  holds (reinstall it, and count it); reason DELETE is the controller's own
  doing.
- `MeterMod` -> `OFPMeterMod(command, flags, meter_id, [OFPMeterBandDrop(rate,
  burst_size)])`; a `FlowMod` with `meter_id` gets `OFPInstructionMeter(meter_id)`
  before its other instructions.
- At every switch connection with generation G: `pipeline_setup(dar, G)`,
  every stored binding (decap rules, a barrier, encap rules) and host with
  G, a barrier, then `delete_other_generations(dar, G)`: 32 cookie-masked
  deletes that remove whatever an earlier generation left, with no
  flow-stats round trip.
- Packet-outs (RA, NA, BA, NS) name their output port; the pipeline has no
  flow for packets from the controller port, so `OFPP_TABLE` drops them.
- Leave `OFPC_INVALID_TTL_TO_CONTROLLER` off: packets whose hop limit runs out
  are dropped without reaching the controller.
- Open vSwitch: the bridge's own MAC must be `router_mac`
  (`other-config:hwaddr`), since it only pops tunnels addressed to that MAC,
  and `fail_mode=secure`, so nothing is forwarded before the flows are in.
"""


def _steps_block(steps: list[FlowStep]) -> list[str]:
    lines = ["```"]
    lines += [describe_step(step) for step in steps]
    return [*lines, "```", ""]


def _example_section() -> list[str]:
    dar = EXAMPLE_DAR
    hoa, coa, new_coa = EXAMPLE_HOA, EXAMPLE_COA, EXAMPLE_NEW_COA
    return [
        "## Example",
        "",
        f"A DAR with access port {dar.access_ports[0]}, core port {dar.core_port}, GRE port "
        f"{dar.gre_port}, access prefix `{dar.access_prefixes[0]}`, anchor address "
        f"`{dar.anchor_address}`, generation 1.",
        "",
        "`pipeline_setup(dar, generation=1)` (`punt_meters`, then `base_flows`):",
        "",
        *_steps_block(dar_flows.pipeline_setup(dar, 1)),
        f"`install_binding(dar, '{hoa}', '{coa}', generation=1, expires_in_s=3600)`:",
        "",
        *_steps_block(dar_flows.install_binding(dar, hoa, coa, 1, 3600)),
        f"`replace_binding(dar, '{hoa}', '{coa}', '{new_coa}', generation=1, expires_in_s=3600)`:",
        "",
        *_steps_block(dar_flows.replace_binding(dar, hoa, coa, new_coa, 1, 3600)),
        f"`delete_binding(dar, '{hoa}', '{new_coa}')`:",
        "",
        *_steps_block(list(dar_flows.delete_binding(dar, hoa, new_coa))),
        "`delete_other_generations(dar, 6)` (the first three of 32):",
        "",
        *_steps_block(list(dar_flows.delete_other_generations(dar, 6))[:3]),
    ]


def render_pipeline_markdown() -> str:
    pipeline = dar_pipeline.DAR_PIPELINE
    lines = [
        "# DAR OpenFlow pipeline",
        "",
        "<!-- Generated from openflow_pipelines/dar_pipeline.py by "
        "`python -m openflow_pipelines.docs > docs/pipeline.md`; do not edit by hand. -->",
        "",
        inspect.cleandoc(dar_pipeline.__doc__ or ""),
        "",
        "| id | table | table miss | next tables |",
        "| ---: | --- | --- | --- |",
    ]
    for table in pipeline.tables:
        miss, next_tables = table.miss.describe(), _code(table.next_tables)
        lines.append(f"| {table.table_id} | `{table.name}` | {miss} | {next_tables} |")
    lines.append("")
    for table in pipeline.tables:
        lines += _table_section(pipeline, table)
    lines += _meter_section(pipeline)
    lines += [
        "## Binding changes",
        "",
        inspect.cleandoc(dar_flows.__doc__ or "").split("\n", 2)[2],
        "",
    ]
    lines += _cookie_section()
    lines.append(SHIM_NOTES)
    lines += _example_section()
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render_pipeline_markdown(), end="")
