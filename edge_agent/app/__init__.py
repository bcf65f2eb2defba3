"""The application layer: `wiring` (the one composition root that builds topics, detectors,
pipelines and delivery from a config for `run`, `replay` and the benchmarks), `config` (the
config loader, closed over the registered rule kinds), the daemon `agent` (one fault boundary
per camera), `replay`, camera `health` and its incidents, and systemd notifications.

App may import core, sources, pipeline and delivery; never `tools`.
"""
