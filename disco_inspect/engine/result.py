"""Deprecated name of :mod:`disco_inspect.engine.token_run` (TokenRun); kept for one release."""

from .._lazy import moved_module

moved_module(__name__, "disco_inspect.engine.token_run")
