"""Test helpers for busrpc users and transport authors (no pytest import)."""

from ..bus.memory import MemoryBus

__all__ = ["MemoryBus"]
