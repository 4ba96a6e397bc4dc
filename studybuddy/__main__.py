"""`python -m studybuddy` runs the CLI."""

from studybuddy.cli.main import main

main()
