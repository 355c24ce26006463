"""Deprecated name of :mod:`disco_inspect.world.vocabulary` (the world's shapes, factors and values); kept for one
release."""

from .._lazy import moved_module

moved_module(__name__, "disco_inspect.world.vocabulary")
