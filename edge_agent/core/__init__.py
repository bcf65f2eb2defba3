"""The core layer: the data that crosses stages (`types`: Frame, Detections, EventObject, Event),
pure geometry, frame pacing, privacy masks, the config file's models and loader, the sink
protocol and the retry backoff.

Core imports nothing of the project beyond `edge_agent.core`; every other layer may import it.
"""
