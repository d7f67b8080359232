"""Throughput of the CPU corpus stages: ``python data_prep/bench_build.py --docs 20000 --workers 1,2``.

Thin entry point; the logic is ``astrollama.tools.bench_corpus`` (also ``astrollama data bench``).
"""

from astrollama.tools.bench_corpus import main

if __name__ == "__main__":
    raise SystemExit(main())
