"""Rule kinds (one module each), the zone and matching helpers they share, and the engine."""
