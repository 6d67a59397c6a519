from edgex.cli import main

raise SystemExit(main())
