from lame_tools.cli import main

raise SystemExit(main())
