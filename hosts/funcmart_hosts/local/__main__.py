"""`python -m funcmart_hosts.local`: the local platform's command line."""

from funcmart_hosts.local.cli import main

raise SystemExit(main())
