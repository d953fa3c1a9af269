"""Hardening tests reuse the test-only mobile node and packet helpers of tests/unit."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
