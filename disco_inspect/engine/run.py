"""Deprecated name of :mod:`disco_inspect.engine.run_folder` (the run folder); kept for one release."""

from .._lazy import moved_module

moved_module(__name__, "disco_inspect.engine.run_folder")
