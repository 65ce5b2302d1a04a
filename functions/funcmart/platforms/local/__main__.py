"""`python -m funcmart.platforms.local`: the local platform's command line."""

from funcmart.platforms.local.cli import main

raise SystemExit(main())
