"""Deprecated name of :mod:`disco_inspect.engine.records` (per-image classifier records); kept for one release."""

from .._lazy import moved_module

moved_module(__name__, "disco_inspect.engine.records")
