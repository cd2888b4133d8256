"""`python -m remediator` is the `remediator` command."""

from remediator.cli.commands import main

raise SystemExit(main())
