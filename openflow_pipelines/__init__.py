"""The OpenFlow pipeline of a Distributed Anchor Router, declared once.

Tables, their match fields, allowed next tables and miss behaviour, and
the flow builders checked against that declaration, live here so the Ryu
shim and the tests share one definition.
"""
