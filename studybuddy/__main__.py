"""`python -m studybuddy` runs the CLI."""

from .cli import main

main()
