"""The town console: every village box's events stored in SQLite or PostgreSQL, a web page and a JSON API.

`edge-agent console --config CONSOLE.yaml`. The modules, one concern each:
`config` (the YAML file), `db` (engines and connections), `migrations` (the numbered
SQL files), `records` (MQTT message -> rows, pure), `store` (writes), `queries`
(reads), `ingest` (MQTT subscriber with acks after commit), `auth`, `web` and `api`
(the page and the JSON API), `app` (wiring and the command line).
"""
