"""Operators: generate/redo/cancel, backend housekeeping, settings helpers. Each module owns its ``classes``.
"""
