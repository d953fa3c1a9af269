"""Hardening tests of protocol state, storage faults and clock steps.

They reuse the test-only mobile node of ``tests/unit/mn_factory.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
