"""CLI commands, one module per command group. Each module exposes ``register(app)``.

These modules are imported when the CLI starts, so they import nothing heavy at module level:
torch, nibabel, SimpleITK and faiss are imported inside the command functions.
"""
