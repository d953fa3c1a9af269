"""fama-ryu: Distributed Anchor Routers for FAMA (draft-bernardos-dmm-cmip-06) on Open vSwitch.

The pure protocol core (``mh``, ``cga``, ``auth``, ``binding_cache``,
``home_agent``, ``mobile_node``) imports neither ryu nor scapy; ryu is
confined to shim modules so a later move to os-ken is a rename.
"""

__version__ = "0.1.0"
