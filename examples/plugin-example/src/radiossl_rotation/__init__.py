"""Example radiossl plugin: 3D rotation prediction."""
