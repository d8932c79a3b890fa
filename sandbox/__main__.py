"""``python -m sandbox``: serve the fake provider until Ctrl-C (``--help`` lists the options)."""

from sandbox.server import main

raise SystemExit(main())
