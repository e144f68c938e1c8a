"""The model catalog: the recipes shipped in edgembed.models/recipes, read and checked.

A recipe (TOML) says how to build one package: the source weights pinned by Hub id,
revision (a commit) and sha256, what the model is (licence, dimensions, languages, maximum
length, pooling), and the export options (`[export]`, checked by the exporter's
ExportOptions). A weights sha256 that nobody could check is written as `weights_sha256 =
""` with `verified = false`, never guessed; a build from such a recipe says so. `[built]`
records a build that was actually run and measured (its quality card); a recipe without it
has never been built.

This module needs no export dependencies: `edgembed models` lists the catalog with the
slim runtime, and shows which recipes' weights are on this machine (an installed weights
package, or the Hugging Face cache at the pinned revision), without any network.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ExportError

REQUIRED = ("name", "source_model", "model", "source", "export")
POOLINGS = ("cls", "mean", "max")
_COMMIT = re.compile("[0-9a-f]{40}")
_SHA256 = re.compile("[0-9a-f]{64}")


class RecipeError(ExportError):
    """A recipe file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Recipe:
    """One checked recipe. `data` is the whole TOML document (the exporter reads `export`)."""

    path: Path
    data: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def model(self) -> Mapping[str, Any]:
        return self.data["model"]

    @property
    def source(self) -> Mapping[str, Any]:
        return self.data["source"]

    @property
    def built(self) -> Mapping[str, Any] | None:
        return self.data.get("built")

    @property
    def verified(self) -> bool:
        """Whether the recipe pins a weights sha256 that was checked against real weights."""
        return bool(self.source.get("verified")) and bool(self.source.get("weights_sha256"))

    def weights_here(self) -> str | None:
        """Where this machine has the weights, without any network: "python package" (its
        weights package is installed), "hub cache" (the Hugging Face cache holds the pinned
        revision's weights file), or None."""
        module = self.source.get("module")
        if module and importlib.util.find_spec(module) is not None:
            return "python package"
        if self.source.get("hub_id") and self.source.get("revision"):
            cached = hub_cache() / ("models--" + self.source["hub_id"].replace("/", "--")) \
                / "snapshots" / self.source["revision"] / self.source["weights_file"]
            if cached.is_file():
                return "hub cache"
        return None


def hub_cache() -> Path:
    """The Hugging Face Hub cache folder, as huggingface_hub finds it (HF_HUB_CACHE, else
    HF_HOME/hub, else ~/.cache/huggingface/hub), read here without importing it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def recipes_dir() -> Path:
    return Path(str(resources.files("edgembed.models"))) / "recipes"


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise RecipeError("reading recipes needs Python 3.11 or newer (tomllib)") from None
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc}") from None


def _check(data: dict[str, Any], where: str) -> None:
    """The recipe's own fields (not [export]: the exporter checks those), each refused by
    name. Pinned values must look like what they pin."""
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise RecipeError(f"recipe {where} lacks {', '.join(missing)}")
    for table in ("model", "source", "export"):
        if not isinstance(data[table], dict):
            raise RecipeError(f"recipe {where}: {table} must be a table ([{table}])")
    model, source = data["model"], data["source"]
    checks = [
        (isinstance(data["name"], str) and re.fullmatch(r"[a-z0-9][a-z0-9.-]*", data["name"]),
         "name must be lower-case letters, digits, dots and dashes"),
        (isinstance(model.get("license"), str) and model["license"], "[model] license"),
        (_positive(model.get("dim")), "[model] dim must be a positive integer"),
        (_positive(model.get("max_seq_length")),
         "[model] max_seq_length must be a positive integer"),
        (model.get("pooling") in POOLINGS, f"[model] pooling must be one of {POOLINGS}"),
        (isinstance(model.get("languages"), list) and model["languages"]
         and all(isinstance(x, str) for x in model["languages"]),
         "[model] languages must be a non-empty list of language codes"),
        (isinstance(source.get("weights_file"), str) and source["weights_file"],
         "[source] weights_file"),
        (isinstance(source.get("verified"), bool), "[source] verified must be true or false"),
        ("hub_id" in source or "module" in source,
         "[source] needs hub_id (and revision) or a python_package and module"),
    ]
    if "hub_id" in source:
        checks.append((isinstance(source.get("revision"), str)
                       and _COMMIT.fullmatch(source["revision"]),
                       "[source] revision must be a 40-hex-digit commit (a branch moves)"))
    sha = source.get("weights_sha256")
    checks.append((sha == "" and source.get("verified") is False if not sha
                   else isinstance(sha, str) and _SHA256.fullmatch(sha),
                   "[source] weights_sha256 must be 64 hex digits, or \"\" with verified = "
                   "false when nobody could check it"))
    for ok, what in checks:
        if not ok:
            raise RecipeError(f"recipe {where}: {what}")
    built = data.get("built")
    if built is not None and not (isinstance(built, dict) and source.get("verified")
                                  and {"mean_cosine", "cpu", "command"} <= set(built)):
        raise RecipeError(f"recipe {where}: [built] records a build from verified weights: "
                          "mean_cosine, cpu and command")


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def load_recipe_file(path: str | Path) -> Recipe:
    """A recipe file, read and checked (RecipeError naming the file and field otherwise)."""
    path = Path(path)
    data = _load_toml(path)
    _check(data, str(path))
    return Recipe(path, data)


def catalog() -> list[Recipe]:
    """Every shipped recipe, by name."""
    return sorted((load_recipe_file(path) for path in recipes_dir().glob("*.toml")),
                  key=lambda recipe: recipe.name)


def find_recipe(name_or_path: str | Path) -> Recipe:
    """A recipe by catalog name, or a recipe file's path."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise RecipeError(f"recipe file {path} not found")
        return load_recipe_file(path)
    shipped = recipes_dir() / f"{name_or_path}.toml"
    if not shipped.is_file():
        names = ", ".join(recipe.name for recipe in catalog())
        raise RecipeError(f"no recipe named {str(name_or_path)!r}; the catalog has: {names} "
                          "(or give a recipe file)")
    return load_recipe_file(shipped)
