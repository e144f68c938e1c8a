"""Metadata filters as vector stores write them (Chroma's and LangChain's structured-query
form), checked and matched by pure functions.

    {"topic": "baking"}                            equality; several keys must all match
    {"year": {"$gte": 2020, "$lt": 2024}}          $eq $ne $gt $gte $lt $lte $in $nin $exists
    {"$or": [{"topic": "baking"}, {"topic": "garden"}]}     $and, $or: lists of filters

A key missing from a document's metadata matches nothing but `$ne`, `$nin` and
`{"$exists": False}`; values of different kinds (a str against a number) do not match."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import EdgembedError

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
OPERATORS = ("$eq", "$ne", *_ORDER, "$in", "$nin", "$exists")
_MISSING = object()


def check_filter(spec: Any) -> None:
    """Raise EdgembedError naming the first malformed part, before anything is searched."""
    if not isinstance(spec, Mapping) or not spec:
        raise EdgembedError(f"a filter must be a non-empty dict, got {spec!r:.80}")
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise EdgembedError(f"{key} takes a non-empty list of filters")
            for part in value:
                check_filter(part)
        elif not isinstance(key, str) or key.startswith("$"):
            raise EdgembedError(f"unknown filter operator {key!r}; use $and, $or or a "
                                "metadata key")
        elif _is_condition(value):
            for op, operand in value.items():
                if op not in OPERATORS:
                    raise EdgembedError(f"unknown operator {op!r} for {key!r}; known: "
                                        f"{', '.join(OPERATORS)}")
                if op in ("$in", "$nin") and not isinstance(operand, (list, tuple)):
                    raise EdgembedError(f"{op} for {key!r} takes a list")
                if op == "$exists" and not isinstance(operand, bool):
                    raise EdgembedError(f"$exists for {key!r} takes true or false")


def matches(metadata: Mapping[str, Any] | None, spec: Mapping[str, Any]) -> bool:
    """Whether a document's metadata passes a (checked) filter."""
    metadata = metadata or {}
    for key, value in spec.items():
        if key == "$and":
            ok = all(matches(metadata, part) for part in value)
        elif key == "$or":
            ok = any(matches(metadata, part) for part in value)
        elif _is_condition(value):
            ok = all(_test(metadata.get(key, _MISSING), op, operand)
                     for op, operand in value.items())
        else:
            ok = _test(metadata.get(key, _MISSING), "$eq", value)
        if not ok:
            return False
    return True


def _is_condition(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(op, str) and op.startswith("$") for op in value)


def _test(actual: Any, op: str, operand: Any) -> bool:
    if op == "$exists":
        return (actual is not _MISSING) == operand
    if op == "$ne":
        return not _test(actual, "$eq", operand)
    if op == "$nin":
        return not _test(actual, "$in", operand)
    if actual is _MISSING:
        return False
    if op == "$eq":
        return _same_kind(actual, operand) and actual == operand
    if op == "$in":
        return any(_test(actual, "$eq", item) for item in operand)
    if not _same_kind(actual, operand):
        return False
    try:
        return bool(_ORDER[op](actual, operand))
    except TypeError:  # two dicts, two lists of mixed items, ...
        return False


def _same_kind(a: Any, b: Any) -> bool:
    """Numbers compare with numbers (not with bools), strings with strings, and so on."""
    def kind(value: Any) -> type:
        if isinstance(value, bool):
            return bool
        return float if isinstance(value, (int, float)) else type(value)

    return kind(a) is kind(b)
