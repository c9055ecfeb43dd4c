"""`python -m balto` is the `balto` command."""

from balto.app.cli import main

main()
