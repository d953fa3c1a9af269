"""Hardening tests reuse helpers of tests/unit (mobile node, packet builders) and the
REST app of tests/app/test_rest.py, offered here as the fixture ``rest_api``."""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "unit"), str(TESTS / "app")]

from test_rest import api as rest_api  # noqa: E402, F401
