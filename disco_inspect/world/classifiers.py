"""Deprecated name of :mod:`disco_inspect.world.scene_classifiers` (the world's scene classifiers); kept for one release."""

from .._lazy import moved_module

moved_module(__name__, "disco_inspect.world.scene_classifiers")
