"""Share models beyond the project: bioimage.io packages, ONNX and TorchScript exports (with their lineage)."""

from .export import EXPORT_FORMATS, ExportError, ExportResult, export_model

__all__ = ["EXPORT_FORMATS", "ExportError", "ExportResult", "export_model"]
