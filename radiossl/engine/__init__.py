"""The training engine: one loop for every pretext method and downstream task."""
