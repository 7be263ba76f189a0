from deneva.cli import main

raise SystemExit(main())
