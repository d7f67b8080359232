"""astrollama-recipes: reproduce the AstroLLaMA family end to end.

Sub-packages:
  astrollama.train       recipe YAML -> LMFlow / local continual pre-training, Slurm launch
  astrollama.data        arXiv astro-ph -> OCR -> corpus variants -> LMFlow JSON
  astrollama.evaluation  AstroMLab-1 MCQ, perplexity, embeddings, reports

Shared modules:
  astrollama.io          atomic file writes
  astrollama.lmflow_data the LMFlow ``text_only`` JSON format (one reader, one writer)
  astrollama.models      real small models offline (SmolLM2-135M from PyPI, tiny random LLaMA)
  astrollama.paper       every published number, with its citation
"""

__version__ = "0.1.0"
