"""Deliberate crashes at named points of the controller, for the kill -9 hardening runs.

Off unless the environment names points: with
``FAMA_CRASH_POINTS=before_commit:0.05,before_ba:0.02`` the process sends
itself SIGKILL at each passage of a named point with that probability
(``FAMA_CRASH_SEED`` seeds the draw).  A crash at a chosen point of the
BU pipeline exercises windows an external ``kill -9`` seldom hits:

* ``before_commit``: a BU decided, nothing persisted;
* ``after_commit``: persisted, no flow sent, no BA;
* ``before_ba``: flows acknowledged by the switch's barrier, BA not sent;
* ``during_reconcile``: a reconnected switch was sent the new flow
  generation and the deletes of the older ones; nothing else happened yet
  (no Router Advertisement, no expiry).

(The Binding Ack never precedes its flows, P12, so there is no "after BA,
before flow-mods" window.)
"""

from __future__ import annotations

import os
import random
import signal

POINTS = frozenset({"before_commit", "after_commit", "before_ba", "during_reconcile"})


def parse(spec: str) -> dict[str, float]:
    """``"name:probability,..."`` -> {name: probability}; ValueError names the bad part."""
    probabilities = {}
    for part in filter(None, (item.strip() for item in spec.split(","))):
        name, _, value = part.partition(":")
        if name not in POINTS:
            raise ValueError(f"unknown crash point {name!r}; known: {sorted(POINTS)}")
        probability = float(value or "1")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"crash probability of {name} must be in [0, 1], got {value}")
        probabilities[name] = probability
    return probabilities


_PROBABILITIES = parse(os.environ.get("FAMA_CRASH_POINTS", ""))
_DRAW = random.Random(os.environ.get("FAMA_CRASH_SEED")).random


def reached(name: str) -> None:
    """Crash here with the configured probability (no cost when no point is armed)."""
    if _PROBABILITIES and _DRAW() < _PROBABILITIES.get(name, 0.0):
        os.kill(os.getpid(), signal.SIGKILL)
