"""The town console: every village box's events stored in SQLite or PostgreSQL, the duty
officer's web application and a JSON API.

An application of its own, installed with the `console` extra: it imports only `contract` and
`core`, and nothing of the box imports it (`edge_agent.main` hands it its command line).
`edge-agent console --config CONSOLE.yaml`. See docs/console.md for its modules.
"""
