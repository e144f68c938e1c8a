"""The shape of bench.json, checked before it is written (and by the tests), so a
report or a plot never has to guess whether a field exists."""

from __future__ import annotations

VERSION = 1

TOP = {"schema": int, "command": str, "quick": bool, "started_utc": str, "wall_s": float,
       "machine": dict, "settings": dict, "encoders": dict, "sizes": dict, "quality": dict,
       "profile": dict, "search": dict, "skipped": list}
MACHINE = {"cpu": dict, "libraries": dict, "peak": dict}
CPU = {"model": str, "cores": int, "flags": list}
PEAK = {"int8_macs_per_s": float, "fp32_macs_per_s": float, "how": str}
ENCODER = {"kind": str, "graph": str, "rounds": int, "short_per_s": float,
           "latency_p50_ms": float, "latency_p95_ms": float, "cold_start_s": float,
           "peak_rss_mb": float, "per_round": list}
SIZE = {"model_mb": float, "dependencies_mb": float}
PROFILE = {"texts": int, "tokens": int, "stages_s": dict, "op_share": dict,
           "macs_per_token": int}
SEARCH = {"real": dict, "synthetic": list, "synthetic_how": str}
SCALE = {"n": int, "exact": dict, "hnsw": dict}


def _need(section: dict, fields: dict, where: str) -> None:
    if not isinstance(section, dict):
        raise ValueError(f"{where} is {type(section).__name__}, expected an object")
    for key, kind in fields.items():
        if key not in section:
            raise ValueError(f"{where} lacks {key!r}")
        value = section[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
            if kind is float else isinstance(value, kind)
        if not ok:
            raise ValueError(f"{where}.{key} is {type(value).__name__}, expected {kind.__name__}")


def check(result: dict) -> None:
    """Raise ValueError naming the first field that is missing or of the wrong type."""
    _need(result, TOP, "bench")
    if result["schema"] != VERSION:
        raise ValueError(f"bench.schema is {result['schema']}, expected {VERSION}")
    _need(result["machine"], MACHINE, "machine")
    _need(result["machine"]["cpu"], CPU, "machine.cpu")
    _need(result["machine"]["peak"], PEAK, "machine.peak")
    if not result["encoders"]:
        raise ValueError("bench.encoders is empty")
    for name, row in result["encoders"].items():
        _need(row, ENCODER, f"encoders[{name!r}]")
        _need(result["sizes"].get(name), SIZE, f"sizes[{name!r}]")
    for part, section in result["profile"].items():
        _need(section, PROFILE, f"profile.{part}")
    if "error" not in result["search"]:
        _need(result["search"], SEARCH, "search")
        for scale in result["search"]["synthetic"]:
            _need(scale, SCALE, "search.synthetic[]")
