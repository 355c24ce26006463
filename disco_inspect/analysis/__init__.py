"""disco_inspect.analysis"""
