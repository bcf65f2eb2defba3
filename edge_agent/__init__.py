"""Eagle Eye edge agent: camera feeds → ONNX detector → tracker → zone rules → events."""

__version__ = "0.1.0"
