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
        ({"amount": {"gte": 4, "lt": 4.5}}, False),
        (
            {"all": [{"not": {"any": [{"size": "S"}, {"store.city": "Lyon"}]}}, {"member": True}]},
            True,
        ),
        ({"store": {"eq": {"city": "Paris"}}}, True),
        ({"tags": ["oat", "hot"]}, True),
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
        ({"missing": {"eq": None}}, False),
        ({"missing": {"in": [None]}}, False),
        ({"missing": {"contains": "x"}}, False),
        ({"missing": {"lt": 1}}, False),
        ({"missing": {"exists": True}}, False),
        ({"not": {"missing": "x"}}, True),
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
    assert compile_condition({"amount": {"contains": 4}})(ORDER) is False
    assert compile_condition({"category": {"contains": 4}})(ORDER) is False
    assert compile_condition({"store.city.name": "Paris"})(ORDER) is False


def test_strings_compare_with_strings() -> None:
    assert compile_condition({"size": {"gt": "A", "lte": "L"}})(ORDER) is True


def test_booleans_are_not_numbers() -> None:
    assert compile_condition({"member": 1})(ORDER) is False
    assert compile_condition({"count": True})(ORDER) is False
    assert compile_condition({"member": {"gt": 0}})(ORDER) is False
    assert compile_condition({"member": {"in": [1]}})(ORDER) is False
    assert compile_condition({"member": {"ne": 1}})(ORDER) is True
    assert compile_condition({"member": {"not_in": [1]}})(ORDER) is True
    assert compile_condition({"count": {"in": [True]}})(ORDER) is False
    assert compile_condition({"flags": {"contains": 1}})({"flags": [True]}) is False
    assert compile_condition({"member": True})(ORDER) is True
    assert compile_condition({"count": 1.0})(ORDER) is True


@pytest.mark.parametrize(
    ("condition", "path", "message"),
    [
        ({"amount": {"gtee": 3}}, "where.amount.gtee", "did you mean 'gte'"),
        ({"amount": {"in": 3}}, "where.amount.in", "needs a list"),
        ({"amount": {"exists": "yes"}}, "where.amount.exists", "true or false"),
        ({"amount": {"gt": [1]}}, "where.amount.gt", "number or a string"),
        ({"any": []}, "where.any", "non-empty list"),
        ({"any": [{"a": 1}, {"b": {"zz": 1}}]}, "where.any[1].b.zz", "unknown operator"),
        ({"all": [{"not": {"a": {"nin": [1]}}}]}, "where.all[0].not.a.nin", "did you mean"),
        ({"not": 3}, "where.not", "must be a mapping, got a number"),
        ({"all": {"a": 1}}, "where.all", "non-empty list"),
        ({"all": ["a"]}, "where.all[0]", "must be a mapping, got a string"),
        ({"amount": {"all": [{"a": 1}]}}, "where.amount.all", "combines conditions"),
        ({"amount": {}}, "where.amount", "at least one operator"),
        ({"store": {"city": "Paris"}}, "where.store.city", "'store.city' for a nested property"),
        ({"amount": {1: 2}}, "where.amount.1", "unknown operator '1'"),
        ({"store..city": "Paris"}, "where.store..city", "empty part"),
        ("coffee", "where", "must be a mapping"),
    ],
)
def test_compile_errors_name_the_exact_path(condition: Any, path: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message) as raised:
        compile_condition(condition)
    assert raised.value.path == path


def test_the_path_prefix_is_the_callers() -> None:
    with pytest.raises(ConditionError) as raised:
        compile_condition({"amount": {"gtee": 1}}, "challenges.coffee.where")
    assert raised.value.path == "challenges.coffee.where.amount.gtee"
    assert str(raised.value) == (
        "challenges.coffee.where.amount.gtee: unknown operator 'gtee'; did you mean 'gte'?"
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"tags": {"in": ["oat", "hot"]}}, False),
        ({"tags": {"not_in": ["oat", "hot"]}}, True),
        ({"tags": {"in": [["oat", "hot"], "x"]}}, True),
        ({"store": {"in": [{"city": "Paris"}]}}, True),
        ({"count": {"in": [1.0, "one"]}}, True),
        ({"member": {"in": [True, ["x"]]}}, True),
        ({"member": {"in": [1, ["x"]]}}, False),
    ],
)
def test_membership_works_for_lists_and_mappings_on_either_side(
    condition: dict[str, Any], expected: bool
) -> None:
    assert compile_condition(condition)(ORDER) is expected
