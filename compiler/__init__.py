"""Compiler passes: each a function from IR to IR, run in the fixed order of :mod:`pipeline`."""
