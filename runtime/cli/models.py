"""`edgembed models`: the catalog of recipes, and which of them this machine can build."""

from __future__ import annotations

import argparse
import json

from ..catalog import Recipe, catalog


def _row(recipe: Recipe) -> dict[str, object]:
    model, source, built = recipe.model, recipe.source, recipe.built
    languages = model["languages"]
    return {
        "name": recipe.name,
        "source": source.get("hub_id") or recipe.data["source_model"],
        "revision": source.get("revision"),
        "dim": model["dim"],
        "max_seq_length": model["max_seq_length"],
        "pooling": model["pooling"],
        "languages": languages,
        "license": model["license"],
        "weights_sha256": source.get("weights_sha256") or None,
        "verified": recipe.verified,
        "weights_here": recipe.weights_here(),
        "built": dict(built) if built else None,
        "recipe": str(recipe.path),
    }


def _status(row: dict[str, object]) -> str:
    """What has been done with the recipe: built and measured, or how far it got."""
    built = row["built"]
    if built:
        return f"built, cosine {built['mean_cosine']} to torch ({built['cpu']})"
    if row["verified"]:
        return "weights sha256 checked; never built"
    return "not built; weights sha256 unverified"


def cmd_models(args: argparse.Namespace) -> int:
    rows = [_row(recipe) for recipe in catalog()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [("name", "dim", "max len", "pooling", "languages", "license", "weights here",
              "status")]
    for row in rows:
        languages = row["languages"]
        table.append((row["name"], str(row["dim"]), str(row["max_seq_length"]),
                      str(row["pooling"]),
                      languages[0] if len(languages) == 1 else f"{len(languages)} languages",
                      str(row["license"]), str(row["weights_here"] or "no"), _status(row)))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
              .rstrip())
    print("build one: edgembed export --recipe NAME -o OUT (downloads the pinned revision "
          "unless its weights are here)")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="list the catalog of model recipes")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)
