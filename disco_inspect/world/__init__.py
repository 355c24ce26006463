"""disco_inspect.world"""
