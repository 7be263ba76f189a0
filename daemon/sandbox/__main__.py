from deneva.sandbox.server import main

raise SystemExit(main())
