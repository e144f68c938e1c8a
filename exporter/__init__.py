"""edgembed.export: turn a Hugging Face / sentence-transformers encoder folder into an
edgembed model package. Needs the `export` extra (torch, optimum-onnx, onnx)."""

from .compress import Compression
from .options import ExportOptions
from .pipeline import export_model
from .recipe import build_from_recipe, load_recipe

__all__ = ["Compression", "ExportOptions", "build_from_recipe", "export_model", "load_recipe"]
