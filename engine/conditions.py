"""`where` and audience conditions: data compiled once into predicates.

A condition is a mapping. `all`, `any` (lists of conditions) and `not` (one
condition) combine; every other key is a property path (`store.city` digs
into nested objects) mapped to a plain value (equality) or to an operator
map such as `{gte: 5, lt: 10}` (every operator must hold).

Evaluation never raises: a missing property makes every operator false
except `ne`, `not_in` and `exists: false`; comparing values of different
types is false; booleans are not numbers. Nothing is ever `eval`-ed.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from engine.errors import ConditionError

Predicate = Callable[[Mapping[str, Any]], bool]

#: Stands for an absent property: it equals nothing and has no type that an
#: operator accepts, so it fails every test and only negations turn it true.
MISSING: Any = object()
_T = TypeVar("_T")
_COMBINATORS = ("all", "any", "not")


def compile_condition(spec: Any, path: str = "where") -> Predicate:
    """Compile a condition, raising ConditionError with the path of the fault."""
    if not isinstance(spec, Mapping):
        raise ConditionError(f"a condition must be a mapping, got {_kind(spec)}", path)
    return _every([_compile_entry(str(key), value, f"{path}.{key}") for key, value in spec.items()])


def _compile_entry(key: str, value: Any, path: str) -> Predicate:
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise ConditionError(f"`{key}` needs a non-empty list of conditions", path)
        parts = [compile_condition(item, f"{path}[{n}]") for n, item in enumerate(value)]
        if key == "all":
            return _every(parts)
        return lambda properties: any(part(properties) for part in parts)
    if key == "not":
        inner = compile_condition(value, path)
        return lambda properties: not inner(properties)
    get = _getter(key, path)
    if isinstance(value, Mapping):
        checks = [
            _operator(str(name), operand, f"{path}.{name}", key) for name, operand in value.items()
        ]
        if not checks:
            raise ConditionError("an operator map needs at least one operator", path)
        check = _every(checks)
        return lambda properties: check(get(properties))
    equals = _operator("eq", value, path, key)
    return lambda properties: equals(get(properties))


def _every(tests: list[Callable[[_T], bool]]) -> Callable[[_T], bool]:
    """All tests must pass; a single test is returned as it is, without a wrapper."""
    if len(tests) == 1:
        return tests[0]
    return lambda subject: all(test(subject) for test in tests)


def _getter(key: str, path: str) -> Callable[[Mapping[str, Any]], Any]:
    parts = key.split(".")
    if not all(parts):
        raise ConditionError(
            f"property name {key!r} has an empty part; write nested properties as 'store.city'",
            path,
        )
    if len(parts) == 1:
        return lambda properties: properties.get(key, MISSING)
    return lambda properties: lookup(properties, key)


def lookup(properties: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted property path ("store.city"), or MISSING."""
    current: Any = properties
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return MISSING
        current = current[part]
    return current


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equality that does not let True equal 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _membership(options: list[Any]) -> Callable[[Any], bool]:
    """`value in options` with True kept apart from 1, hashed when the options allow it."""
    try:
        flags = frozenset(option for option in options if isinstance(option, bool))
        others = frozenset(option for option in options if not isinstance(option, bool))
    except TypeError:  # a list or mapping among the options: compare one by one
        return lambda value: any(_same(value, option) for option in options)

    def member(value: Any) -> bool:
        if isinstance(value, bool):
            return value in flags
        try:
            return value in others
        except TypeError:  # a list or mapping value equals none of these hashable options
            return False

    return member


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
OPERATORS = ("eq", "ne", *_ORDERINGS, "in", "not_in", "exists", "contains")


def _operator(name: str, operand: Any, path: str, key: str) -> Callable[[Any], bool]:
    if name == "eq":
        return lambda value: _same(value, operand)
    if name == "ne":
        return lambda value: not _same(value, operand)
    if name in _ORDERINGS:
        if not (_is_number(operand) or isinstance(operand, str)):
            raise ConditionError(
                f"`{name}` compares with a number or a string, got {_kind(operand)}", path
            )
        order = _ORDERINGS[name]
        if isinstance(operand, str):
            return lambda value: isinstance(value, str) and order(value, operand)
        return lambda value: _is_number(value) and order(value, operand)
    if name in ("in", "not_in"):
        if not isinstance(operand, list):
            raise ConditionError(f"`{name}` needs a list, got {_kind(operand)}", path)
        member = _membership(list(operand))
        return member if name == "in" else lambda value: not member(value)
    if name == "exists":
        if not isinstance(operand, bool):
            raise ConditionError(f"`exists` needs true or false, got {_kind(operand)}", path)
        return lambda value: (value is not MISSING) == operand
    if name == "contains":
        return lambda value: _contains(value, operand)
    if name in _COMBINATORS:
        raise ConditionError(f"`{name}` combines conditions; it cannot be used on a property", path)
    hint = difflib.get_close_matches(name, OPERATORS, n=1)
    suggestion = (
        f"; did you mean '{hint[0]}'?"
        if hint
        else f"; use one of {', '.join(OPERATORS)}, or '{key}.{name}' for a nested property"
    )
    raise ConditionError(f"unknown operator '{name}'{suggestion}", path)


def _contains(value: Any, operand: Any) -> bool:
    if isinstance(value, str):
        return isinstance(operand, str) and operand in value
    if isinstance(value, list):
        return any(_same(item, operand) for item in value)
    return False


_KINDS: dict[type, str] = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _kind(value: Any) -> str:
    """How a designer would name a YAML value's type, for error messages."""
    return _KINDS.get(type(value), type(value).__name__)
