"""Export the transformer body to ONNX with optimum-onnx (dynamic batch and sequence axes)."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import onnx

from edgembed.errors import ExportError

from .source import SourceModel


def export_onnx(source: SourceModel, opset: int = 18) -> onnx.ModelProto:
    """Run optimum's exporter on the source folder and return the graph, whose output is
    `last_hidden_state` [batch, sequence, hidden]. Nothing is fetched from a hub."""
    from optimum.exporters.onnx import main_export

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="edgembed-export-") as workdir:
        logging.getLogger("optimum").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                main_export(str(source.path), output=workdir, task="feature-extraction",
                            library_name="transformers", opset=opset, do_validation=False,
                            local_files_only=True)
            except Exception as exc:
                raise ExportError(f"optimum-onnx could not export {source.path}: {exc}") from exc
        model_path = Path(workdir) / "model.onnx"
        if not model_path.is_file():
            raise ExportError(f"optimum-onnx wrote no model.onnx for {source.path}")
        return onnx.load(str(model_path))
