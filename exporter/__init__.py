"""edgembed.export: turn a Hugging Face / sentence-transformers encoder folder into an
edgembed model package. Needs the `export` extra (torch, optimum-onnx, onnx)."""

from .pipeline import export_model
from .recipe import build_from_recipe, load_recipe

__all__ = ["build_from_recipe", "export_model", "load_recipe"]
