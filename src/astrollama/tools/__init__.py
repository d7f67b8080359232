"""Tools apart from the product: the GPU check (:mod:`.gpucheck`, ``scripts/gpu_check.sh``), the
throughput measurements (:mod:`.bench_corpus`, :mod:`.bench_mcq`) and the damaged PDFs the tests
feed the OCR stage (:mod:`.badpdfs`).

No product module imports a tool; only the roof (``astrollama.cli`` and the command groups'
registration lists, ``astrollama.demo``, ``astrollama.reproduce``), the scripts and the tests do.
"""
