"""The embedded AWS: moto in-process, the real state machines, the real handlers, modeled time."""

from sandbox.core import Sandbox

__all__ = ["Sandbox"]
