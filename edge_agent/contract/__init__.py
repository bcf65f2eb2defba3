"""What the box and the town's platform share: MQTT topics, payload schemas, the paho set-up.

Both applications import this package; it imports only `core`.
"""
