from astrollama.cli import main

raise SystemExit(main())
