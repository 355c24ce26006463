"""disco_inspect.report"""
