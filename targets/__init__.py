"""Targets: one folder each, holding its description (target.toml) and its backend."""
from snnhw.targets.description import TargetDescription, available, load

__all__ = ["TargetDescription", "available", "load"]
