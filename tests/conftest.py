"""Session-wide test set-up.

The compiled kernels must be the ones under test unless ``ENGINE_NO_EXTENSIONS`` says otherwise, so a
broken build can never pass by silently running the pure-Python twin.
"""

from __future__ import annotations

import os

from engine import kernels


def pytest_report_header(config):
    return f"engine kernels: {kernels.IMPLEMENTATION}"


def pytest_sessionstart(session):
    wants_twin = kernels._flag("ENGINE_NO_EXTENSIONS")
    if not wants_twin:
        assert kernels.USING_EXTENSIONS and kernels.IMPLEMENTATION == "engine._core", (
            "compiled kernels are not loaded; build them (pip install -e .) or set ENGINE_NO_EXTENSIONS=1"
        )
        import engine._core

        assert engine._core.__file__.endswith((".so", ".pyd")), engine._core.__file__
