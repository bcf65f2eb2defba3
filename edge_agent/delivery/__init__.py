"""The delivery layer: where events go after the pipeline. The durable outbox (SQLite WAL),
the sinks (outbox, JSONL), `mqtt` (the one place a paho client is set up: credentials, TLS,
Last Will; the publisher and the one-shot clients of doctor and listen), the topic tree and
the JSON Schemas of every payload.

Delivery imports `edge_agent.core` and itself; never `pipeline`, `sources`, `app` or `tools`.
"""
