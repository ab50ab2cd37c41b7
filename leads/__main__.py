from __future__ import annotations

from leads.cli import main

raise SystemExit(main())
