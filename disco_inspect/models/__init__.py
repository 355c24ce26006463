"""disco_inspect.models"""
