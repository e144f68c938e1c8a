"""Metadata filters: pure functions, no framework needed."""

from __future__ import annotations

import pytest

from edgembed import EdgembedError
from edgembed.integrations.filters import check_filter, matches

META = {"topic": "baking", "year": 2021, "score": 0.5, "draft": False, "tags": ["a", "b"]}


@pytest.mark.parametrize(("spec", "expected"), [
    ({"topic": "baking"}, True),
    ({"topic": "baking", "year": 2020}, False),
    ({"year": 2021.0}, True),  # numbers compare as numbers
    ({"draft": 0}, False),  # a bool is not a number
    ({"draft": False}, True),
    ({"year": "2021"}, False),  # nor a string
    ({"year": {"$gt": 2020, "$lte": 2021}}, True),
    ({"year": {"$lt": "2030"}}, False),  # different kinds never match, never raise
    ({"score": {"$gte": 0.5}}, True),
    ({"topic": {"$in": ["baking", "garden"]}}, True),
    ({"topic": {"$nin": ["baking"]}}, False),
    ({"missing": {"$ne": 1}}, True),
    ({"missing": {"$nin": [1]}}, True),
    ({"missing": 1}, False),
    ({"missing": {"$gt": 0}}, False),
    ({"missing": {"$exists": False}}, True),
    ({"topic": {"$exists": True}}, True),
    ({"tags": ["a", "b"]}, True),
    ({"tags": {"$gt": 1}}, False),
    ({"$or": [{"year": 1999}, {"topic": "baking"}]}, True),
    ({"$and": [{"year": 2021}, {"topic": {"$ne": "baking"}}]}, False),
])
def test_matches(spec, expected):
    check_filter(spec)
    assert matches(META, spec) is expected


def test_no_metadata_matches_only_absence():
    assert matches(None, {"topic": {"$exists": False}})
    assert not matches(None, {"topic": "baking"})


@pytest.mark.parametrize(("spec", "message"), [
    ({}, "non-empty dict"),
    ([("topic", "baking")], "non-empty dict"),
    ({"$not": {"topic": "baking"}}, "unknown filter operator"),
    ({"topic": {"$regex": "b.*"}}, "unknown operator '\\$regex'"),
    ({"$and": []}, "non-empty list"),
    ({"$or": [{}]}, "non-empty dict"),
    ({"topic": {"$in": "baking"}}, "takes a list"),
    ({"topic": {"$exists": 1}}, "true or false"),
])
def test_bad_filters(spec, message):
    with pytest.raises(EdgembedError, match=message):
        check_filter(spec)
