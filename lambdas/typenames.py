"""How an error message names a value's type and the type a field wants, for the two documents users write.

An event or execution input is JSON (:func:`lambdas.common.check_arguments` checks an action's arguments); a plan
file is YAML (:mod:`workflows.plan`). Both name scalars alike (``a string``, ``a whole number``, ``true or
false``, ``null``); each names containers in its own words (:data:`JSON`: an array, an object; :data:`YAML`: a
list, a mapping). Imports nothing from the project, so both sides can use it.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Words:
    """A document language's words for what is not a scalar."""

    array: str  # a list or a tuple (and any other type in ``arrays``)
    mapping: str  # a dict
    arrays: tuple[type, ...]
    other: str  # a value of a type the language has no word for; ``{}`` is its class name


JSON = Words("an array", "an object", (list, tuple), "{}")
# YAML's safe loader reads ``!!set`` as a set, and timestamps as dates ("a date", "a datetime").
YAML = Words("a list", "a mapping", (list, tuple, set), "a {}")


def kind(value: Any, words: Words) -> str:
    """A value's type as the document shows it: ``null``, ``a boolean``, ``a number``, ``a string``, an array..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, words.arrays):
        return words.array
    if isinstance(value, dict):
        return words.mapping
    return words.other.format(type(value).__name__)


def wanted(annotation: Any, words: Words) -> str:
    """What a value of the type ``annotation`` names is called: ``a whole number``, ``a string or null``, ..."""
    names = {str: "a string", int: "a whole number", float: "a number", bool: "true or false", list: words.array,
             dict: words.mapping, type(None): "null"}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(wanted(a, words) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(annotation))
    base = typing.get_origin(annotation) or annotation
    return names.get(base, getattr(base, "__name__", str(base)))
