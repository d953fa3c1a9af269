"""``fama-controller``: run ``ryu-manager`` with the eventlet shim applied.

``fama-controller ARGS...`` is exactly ``ryu-manager ARGS...`` (same options,
same argv handling, same exit status), except that
:mod:`fama_ryu.eventlet_compat` is imported before any Ryu module, e.g.::

    fama-controller fama_ryu.app --config-file etc/fama.conf

Plain ``ryu-manager`` imports ``ryu.app.wsgi`` (which needs
``eventlet.wsgi.ALREADY_HANDLED``) before it loads any application, so no
app module can apply the shim in time.  ``make venv`` therefore also writes
a one-line ``fama_ryu_manager_shim.pth`` into the venv that imports
:mod:`fama_ryu.eventlet_compat` in ``ryu-manager`` processes only; with it,
``ryu-manager fama_ryu.app --config-file etc/fama.conf`` works too.  This
launcher needs no such hook.

Also runnable as ``python -m fama_ryu.launcher ARGS...``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int | None:
    """Apply the eventlet shim, then hand over to ``ryu.cmd.manager.main``.

    ``argv`` defaults to ``sys.argv[1:]`` (as for ``ryu-manager``); the
    program name shown in ``--help``/``--version`` stays ``sys.argv[0]``'s.
    """
    from fama_ryu import eventlet_compat

    eventlet_compat.apply()  # idempotent; must happen before any ryu import

    from ryu.cmd import manager  # imported late on purpose: after the shim

    result: int | None = manager.main(args=argv)
    return result


if __name__ == "__main__":
    sys.exit(main())
