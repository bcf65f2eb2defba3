"""The tools layer: what people run: the command line (`cli`), the installer's `doctor`,
`listen`, `snapshot`, the zones page and config editing, `models` (fetch and list model files),
model export and quantization, the one-line event rendering for terminals, and the town
console (`console/`, the platform side: every box's alerts in a database and a web page).

Tools may import every other layer; nothing imports tools.
"""
