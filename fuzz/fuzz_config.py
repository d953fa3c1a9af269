"""Fuzz target: the domain file loader and validator (``config.load_domain``, ``parse_domain``).

The first byte picks a mode.  In one input of sixteen the rest is written to
a file and loaded as a domain file (YAML reading, UTF-8, duplicate keys,
integer forms).  Otherwise it is decoded as JSON, a subset of YAML that
Python decodes in C, and validated with ``parse_domain``: pure-Python
YAML parsing costs milliseconds per document and would leave the
validation code, the part this project wrote, a small share of the runs.

The only documented failure is ``ConfigError`` (its subclass included);
anything else, and any ConfigError without a message, is a finding.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import atheris
import harness

with atheris.instrument_imports(include=["fama_ryu"]):
    from fama_ryu import config

# Under TMPDIR, which fuzz/run.py points at a memory file system when there is
# one (opening a file on disk costs more than parsing it) and removes afterwards.
DOMAIN_FILE = Path(tempfile.mkdtemp(prefix="fama-fuzz-config-")) / "domain.yaml"


def one_input(data: bytes) -> None:
    if not data:
        return
    try:
        if data[0] % 16 == 0:
            DOMAIN_FILE.write_bytes(data[1:])
            domain = config.load_domain(DOMAIN_FILE)
        else:
            try:
                document = json.loads(data[1:])
            except (ValueError, RecursionError):
                return  # not JSON: the harness's own decoding, not the code under test
            domain = config.parse_domain(document, "fuzz")
    except config.ConfigError as error:
        assert str(error).strip(), "a ConfigError without a message"
        return
    assert domain.dars, "a domain without DARs was accepted"


if __name__ == "__main__":
    harness.fuzz(one_input)
