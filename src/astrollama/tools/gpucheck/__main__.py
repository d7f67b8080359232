"""``python -m astrollama.tools.gpucheck`` (what scripts/gpu_check.sh runs)."""

from astrollama.tools.gpucheck.driver import main

raise SystemExit(main())
