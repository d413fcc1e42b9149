from api.ops.cli import main

raise SystemExit(main())
