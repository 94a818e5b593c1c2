"""Conditions are data compiled into predicates; evaluation never raises."""

from typing import Any

import pytest

from engine.conditions import compile_condition
from engine.errors import ConditionError

ORDER = {
    "category": "coffee",
    "amount": 4.5,
    "size": "L",
    "tags": ["oat", "hot"],
    "store": {"city": "Paris"},
    "member": True,
    "count": 1,
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"category": "coffee"}, True),
        ({"category": "tea"}, False),
        ({"amount": {"eq": 4.5}}, True),
        ({"amount": {"ne": 4.5}}, False),
        ({"amount": {"gt": 4}}, True),
        ({"amount": {"gte": 4.5, "lt": 5}}, True),
        ({"amount": {"lte": 4}}, False),
        ({"size": {"in": ["M", "L"]}}, True),
        ({"size": {"not_in": ["M", "L"]}}, False),
        ({"size": {"exists": True}}, True),
        ({"tags": {"contains": "oat"}}, True),
        ({"category": {"contains": "off"}}, True),
        ({"store.city": "Paris"}, True),
        ({"store.city": {"in": ["Lyon"]}}, False),
        ({"all": [{"category": "coffee"}, {"amount": {"gte": 4}}]}, True),
        ({"any": [{"category": "tea"}, {"size": "L"}]}, True),
        ({"not": {"category": "coffee"}}, False),
        ({}, True),
    ],
)
def test_each_operator_and_combinator(condition: dict[str, Any], expected: bool) -> None:
    assert compile_condition(condition)(ORDER) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"missing": "x"}, False),
        ({"missing": {"gt": 1}}, False),
        ({"missing": {"ne": 1}}, True),
        ({"missing": {"not_in": [1]}}, True),
        ({"missing": {"exists": False}}, True),
        ({"store.missing.deeper": {"exists": False}}, True),
        ({"category.nested": "x"}, False),
    ],
)
def test_a_missing_property_is_false_except_for_negations(
    condition: dict[str, Any], expected: bool
) -> None:
    assert compile_condition(condition)(ORDER) is expected


def test_type_mismatches_are_false_not_errors() -> None:
    assert compile_condition({"category": {"gt": 3}})(ORDER) is False
    assert compile_condition({"amount": {"lt": "z"}})(ORDER) is False
    assert compile_condition({"tags": {"gte": 1}})(ORDER) is False


def test_booleans_are_not_numbers() -> None:
    assert compile_condition({"member": 1})(ORDER) is False
    assert compile_condition({"count": True})(ORDER) is False
    assert compile_condition({"member": {"gt": 0}})(ORDER) is False
    assert compile_condition({"member": {"in": [1]}})(ORDER) is False
    assert compile_condition({"member": True})(ORDER) is True


@pytest.mark.parametrize(
    ("condition", "path", "message"),
    [
        ({"amount": {"gtee": 3}}, "where.amount.gtee", "did you mean 'gte'"),
        ({"amount": {"in": 3}}, "where.amount.in", "needs a list"),
        ({"amount": {"exists": "yes"}}, "where.amount.exists", "true or false"),
        ({"amount": {"gt": [1]}}, "where.amount.gt", "number or a string"),
        ({"any": []}, "where.any", "non-empty list"),
        ({"any": [{"a": 1}, {"b": {"zz": 1}}]}, "where.any[1].b.zz", "unknown operator"),
        ({"not": 3}, "where.not", "must be a mapping"),
        ({"amount": {}}, "where.amount", "at least one operator"),
        ("coffee", "where", "must be a mapping"),
    ],
)
def test_compile_errors_name_the_exact_path(condition: Any, path: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message) as raised:
        compile_condition(condition)
    assert raised.value.path == path
