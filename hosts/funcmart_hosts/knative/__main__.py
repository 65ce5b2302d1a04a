from funcmart_hosts.knative.host import main

raise SystemExit(main())
