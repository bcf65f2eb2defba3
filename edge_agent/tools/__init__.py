"""The tools layer: what people run: the command line (`cli`), the installer's `doctor`,
`listen`, `snapshot`, the zones page and config editing, `models` (fetch and list model files),
model export and quantization, and
the one-line event rendering for terminals.

Tools may import every other layer; nothing imports tools.
"""
