"""Operators: submit on the worker, wait in a trigger (or on the worker when not deferrable)."""
