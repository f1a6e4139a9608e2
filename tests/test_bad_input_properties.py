"""Property-based: plans and events generated around the valid ones.

A plan with one field replaced, removed or added, or YAML text with a few characters changed, is accepted or
refused with :class:`PlanError` (one ``field.path: message`` line per problem), never another exception. A
handler's event with a parameter dropped, added or of another JSON type is refused with a named error before
the step acts.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import typing
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas import errors
from lambdas.common import Registry, _signature
from tests.conftest import REFERENCE, ROOT
from workflows.plan import Plan, PlanError, parse_plan, read_yaml

SETTINGS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
VALID = [yaml.safe_load(path.read_text()) for path in EXAMPLES]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


@st.composite
def mutated_plans(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(draw(st.sampled_from(VALID)))
    path = draw(st.sampled_from(_paths(data)))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    how = draw(st.sampled_from(["replace", "remove", "add"]))
    if how == "replace":
        parent[path[-1]] = draw(json_values)
    elif how == "remove":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    else:
        parent.append(draw(json_values))
    return data


def _refused_cleanly(exc: PlanError) -> None:
    assert exc.problems and all(isinstance(p, str) and ": " in p for p in exc.problems)


@SETTINGS
@given(mutated_plans())
def test_a_mutated_plan_is_accepted_or_refused_with_its_problems(data):
    try:
        assert isinstance(parse_plan(data, "plan.yaml"), Plan)
    except PlanError as exc:
        _refused_cleanly(exc)


@SETTINGS
@given(st.data())
def test_mutated_yaml_text_is_accepted_or_refused_with_its_problems(data):
    text = REFERENCE.read_text()
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 4))
        text = text[:at] + data.draw(st.text(alphabet=" \t\n:-[]{}#&*!|>'\"~?,%@`0aZ", max_size=4)) + text[at + cut:]
    try:
        parse_plan(read_yaml(text, "plan.yaml"), "plan.yaml")
    except PlanError as exc:
        _refused_cleanly(exc)


def test_every_example_is_valid_under_strict_types():
    for path, data in zip(EXAMPLES, VALID, strict=True):
        assert isinstance(parse_plan(data, str(path)), Plan), path


# -- events -------------------------------------------------------------------------------------------------


def _registries() -> list[tuple[str, Registry]]:
    out = []
    for path in sorted((ROOT / "lambdas").glob("*.py")):
        module = importlib.import_module(f"lambdas.{path.stem}")
        registry = getattr(module, "registry", None)
        if isinstance(registry, Registry) and getattr(module, "handler", None) == registry.handler:
            out.append((path.stem, registry))
    return out


REGISTRIES = _registries()
ACTIONS = [(module, registry, name) for module, registry in REGISTRIES for name in sorted(registry.actions)]
_SAMPLES = {str: "x", int: 1, float: 1.0, bool: True, list: [], dict: {}}
_OTHER = {str: 7, int: "7", float: "7", bool: "true", list: {"a": 1}, dict: ["a"]}


def _checkable(annotation: Any) -> type | None:
    """The one JSON type a parameter takes (None for unions, Any and classes, which the check lets through)."""
    base = typing.get_origin(annotation) or annotation
    return base if base in _SAMPLES else None


def _valid_event(registry: Registry, name: str) -> tuple[dict[str, Any], dict[str, type]]:
    signature, hints = _signature(registry.actions[name].func)
    event: dict[str, Any] = {"action": name}
    typed: dict[str, type] = {}
    for param, spec in signature.parameters.items():
        kind = _checkable(hints.get(param, Any))
        if kind is not None:
            typed[param] = kind
        if spec.default is inspect.Parameter.empty:
            event[param] = _SAMPLES.get(kind, "x") if kind is not None else "x"
    return event, typed


def test_every_handler_dispatches_through_the_checked_registry():
    assert {m for m, _ in REGISTRIES} >= {"ami", "aurora", "autoscaling", "beanstalk", "dns", "drill", "dynamodb",
                                          "guard", "rds", "readiness", "s3", "verify"}


@SETTINGS
@given(st.sampled_from(ACTIONS), st.data())
def test_a_mutated_event_is_refused_with_a_named_error_before_the_step_acts(action, data):
    _, registry, name = action
    event, typed = _valid_event(registry, name)
    required = [k for k in event if k != "action"]
    choices = ["unknown"] + (["drop"] if required else []) + (["retype"] if typed else [])
    how = data.draw(st.sampled_from(choices))
    if how == "drop":
        missing = data.draw(st.sampled_from(required))
        del event[missing]
        fragment = f"missing {missing}"
    elif how == "retype":
        param = data.draw(st.sampled_from(sorted(typed)))
        event[param] = _OTHER[typed[param]]
        fragment = f"{param} must be"
    else:
        extra = "x_" + data.draw(st.text(alphabet="abcdefghij_", min_size=1, max_size=8))
        event[extra] = data.draw(json_values)
        fragment = f"unknown {extra}"
    with pytest.raises(errors.InvalidInput) as raised:
        registry.handler(event)
    assert fragment in str(raised.value) and f"{registry.service}.{name}" in str(raised.value)


@SETTINGS
@given(json_values)
def test_an_event_of_any_shape_without_a_known_action_is_invalid_input(event):
    for _, registry in REGISTRIES:
        with pytest.raises(errors.InvalidInput):
            registry.handler(event)
