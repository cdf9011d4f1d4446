from labs.cli import main

raise SystemExit(main())
