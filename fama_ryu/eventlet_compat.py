"""Eventlet compatibility shim for Ryu 4.34 on Python 3.11.

Why this module exists
----------------------
Ryu 4.34 (the last Ryu release) predates Python 3.10+ and current eventlet:

* eventlet <= 0.30.2 does not import on Python 3.10+, so the venv must use a
  newer eventlet (see requirements.txt);
* eventlet >= 0.30.3 removed ``eventlet.wsgi.ALREADY_HANDLED``, but
  ``ryu.app.wsgi`` does ``from eventlet.wsgi import ALREADY_HANDLED`` at class
  definition time, and ``ryu.cmd.manager`` imports ``ryu.app.wsgi`` for every
  application.  Without the shim ``ryu-manager`` dies with ``ImportError``
  before loading any app.

Ryu only uses the value as an opaque sentinel returned from a WSGI callable
after a websocket took over the connection, so any unique object will do.
Setting it before Ryu is imported makes ``ryu-manager`` (and the REST API via
``ryu.app.wsgi``) work with eventlet 0.33.x-0.41.x.

Rules
-----
* This is the ONE place the shim lives.  Import this module before anything
  imports ``ryu`` (the ``fama-controller`` launcher in ``fama_ryu.launcher``
  does so first thing; tests and tools that import Ryu should too).
* Importing it is idempotent and has no other side effect than importing
  ``eventlet.wsgi`` (it does not monkey-patch anything).
"""

from __future__ import annotations

import eventlet.wsgi

__all__ = ["ALREADY_HANDLED", "apply"]


def apply() -> object:
    """Ensure ``eventlet.wsgi.ALREADY_HANDLED`` exists; return its value.

    Safe to call any number of times; an existing attribute (old eventlet,
    or a previous call) is left untouched.
    """
    if not hasattr(eventlet.wsgi, "ALREADY_HANDLED"):
        eventlet.wsgi.ALREADY_HANDLED = object()
    sentinel: object = eventlet.wsgi.ALREADY_HANDLED
    return sentinel


ALREADY_HANDLED: object = apply()
