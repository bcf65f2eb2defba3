"""The pipeline layer: one camera's stages after the source, the same in replay and live:
the gate (fps pacing, motion gate), `detect/` (ONNX session, decoders, model
manifests), `track/`, `rules/` (one module per rule kind, the kind registry, the engine),
`events` (the one event builder) and `evidence` (snapshots), and `camera` (the `CameraPipeline`
that drives them in turn).

The pipeline imports `edge_agent.core` and itself; never `delivery`, `sources`, `app` or `tools`.
"""
