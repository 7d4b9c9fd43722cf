"""``python -m radiossl`` runs the CLI."""

from radiossl.cli import main

main()
