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
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import ConditionError

Predicate = Callable[[Mapping[str, Any]], bool]

_MISSING: Any = object()
_COMBINATORS = ("all", "any", "not")


def compile_condition(spec: Any, path: str = "where") -> Predicate:
    """Compile a condition, raising ConditionError with the path of the fault."""
    if not isinstance(spec, Mapping):
        raise ConditionError(f"a condition must be a mapping, got {_kind(spec)}", path)
    tests = [_compile_entry(str(key), value, f"{path}.{key}") for key, value in spec.items()]
    if len(tests) == 1:
        return tests[0]
    return lambda properties: all(test(properties) for test in tests)


def _compile_entry(key: str, value: Any, path: str) -> Predicate:
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise ConditionError(f"`{key}` needs a non-empty list of conditions", path)
        parts = [compile_condition(item, f"{path}[{n}]") for n, item in enumerate(value)]
        combine = all if key == "all" else any
        return lambda properties: combine(part(properties) for part in parts)
    if key == "not":
        inner = compile_condition(value, path)
        return lambda properties: not inner(properties)
    get = _getter(key)
    if isinstance(value, Mapping):
        checks = [_operator(name, operand, f"{path}.{name}") for name, operand in value.items()]
        if not checks:
            raise ConditionError("an operator map needs at least one operator", path)
        return lambda properties: all(check(get(properties)) for check in checks)
    equals = _operator("eq", value, path)
    return lambda properties: equals(get(properties))


def _getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    parts = path.split(".")
    if len(parts) == 1:
        return lambda properties: properties.get(path, _MISSING)

    def get(properties: Mapping[str, Any]) -> Any:
        current: Any = properties
        for part in parts:
            if not isinstance(current, Mapping):
                return _MISSING
            current = current.get(part, _MISSING)
            if current is _MISSING:
                return _MISSING
        return current

    return get


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equality that does not let True equal 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _comparable(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
OPERATORS = ("eq", "ne", *_ORDERINGS, "in", "not_in", "exists", "contains")


def _operator(name: str, operand: Any, path: str) -> Callable[[Any], bool]:
    if name == "eq":
        return lambda value: value is not _MISSING and _same(value, operand)
    if name == "ne":
        return lambda value: value is _MISSING or not _same(value, operand)
    if name in _ORDERINGS:
        if not (_is_number(operand) or isinstance(operand, str)):
            raise ConditionError(
                f"`{name}` compares with a number or a string, got {_kind(operand)}", path
            )
        order = _ORDERINGS[name]
        return lambda value: _comparable(value, operand) and order(value, operand)
    if name in ("in", "not_in"):
        if not isinstance(operand, list):
            raise ConditionError(f"`{name}` needs a list, got {_kind(operand)}", path)
        options = list(operand)
        inside: Callable[[Any], bool] = lambda value: any(_same(value, o) for o in options)  # noqa: E731
        if name == "in":
            return lambda value: value is not _MISSING and inside(value)
        return lambda value: value is _MISSING or not inside(value)
    if name == "exists":
        if not isinstance(operand, bool):
            raise ConditionError(f"`exists` needs true or false, got {_kind(operand)}", path)
        return lambda value: (value is not _MISSING) == operand
    if name == "contains":
        return lambda value: _contains(value, operand)
    if name in _COMBINATORS:
        raise ConditionError(f"`{name}` combines conditions; it cannot be used on a property", path)
    hint = difflib.get_close_matches(name, OPERATORS, n=1)
    suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; use one of {', '.join(OPERATORS)}"
    raise ConditionError(f"unknown operator '{name}'{suggestion}", path)


def _contains(value: Any, operand: Any) -> bool:
    if isinstance(value, str):
        return isinstance(operand, str) and operand in value
    if isinstance(value, list):
        return any(_same(item, operand) for item in value)
    return False


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
