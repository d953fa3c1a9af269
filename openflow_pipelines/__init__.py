"""The OpenFlow pipeline of a Distributed Anchor Router, declared once.

Tables, their match fields, allowed next tables and miss behaviour, and
the flow builders checked against that declaration, live here so the Ryu
shim and the tests share one definition.  Nothing in this package imports
ryu: builders return neutral ``FlowMod``s (``model``) that the shim
translates to OpenFlow messages.

Modules: ``model`` (flow model), ``pipeline`` (declaring and checking a
pipeline), ``dar_pipeline`` (the DAR tables), ``dar_config`` (what the
builders need to know about a bridge), ``dar_flows`` (builders),
``cookies`` (cookie layout), ``fake_table`` (a simulated switch for tests),
``docs`` (generates ``docs/pipeline.md``).
"""

from openflow_pipelines.cookies import CookieFields, FlowKind, decode_cookie, encode_cookie
from openflow_pipelines.dar_config import DarPipelineConfig
from openflow_pipelines.dar_flows import (
    base_flows,
    binding_hard_timeout,
    delete_binding,
    delete_host,
    delete_other_generations,
    install_binding,
    install_host,
    replace_binding,
)
from openflow_pipelines.dar_pipeline import DAR_PIPELINE
from openflow_pipelines.model import (
    ALL_TABLES,
    CONTROLLER_PORT,
    IN_PORT,
    LOCAL_PORT,
    NO_BUFFER,
    Barrier,
    Command,
    DecNwTtl,
    FlowMod,
    FlowModFlag,
    FlowStep,
    Match,
    Output,
    SetField,
)
from openflow_pipelines.pipeline import PipelineViolation

__all__ = [
    "ALL_TABLES",
    "CONTROLLER_PORT",
    "DAR_PIPELINE",
    "IN_PORT",
    "LOCAL_PORT",
    "NO_BUFFER",
    "Barrier",
    "Command",
    "CookieFields",
    "DarPipelineConfig",
    "DecNwTtl",
    "FlowKind",
    "FlowMod",
    "FlowModFlag",
    "FlowStep",
    "Match",
    "Output",
    "PipelineViolation",
    "SetField",
    "base_flows",
    "binding_hard_timeout",
    "decode_cookie",
    "delete_binding",
    "delete_other_generations",
    "delete_host",
    "encode_cookie",
    "install_binding",
    "install_host",
    "replace_binding",
]
