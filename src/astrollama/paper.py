"""Every published number this project reproduces, with its citation. The one place for them.

Recipes, tests, the compute planner and the evaluation report read from here; nothing else in the
repository hard-codes a paper number. ``verified=True`` means the number was read in the public
source named; ``verified=False`` marks a number recalled from a paper body that could not be opened
(to confirm), as discussed in docs/astromlab.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    url: str


SOURCES: dict[str, Source] = {
    s.key: s
    for s in [
        Source(
            "astrollama1",
            "Nguyen et al. 2023, AstroLLaMA: Towards Specialized Foundation Models in Astronomy (arXiv:2309.06126)",
            "https://arxiv.org/abs/2309.06126",
        ),
        Source(
            "astromlab1",
            "Ting et al. 2024, AstroMLab 1: Who Wins Astronomy Jeopardy!? (arXiv:2407.11194)",
            "https://arxiv.org/abs/2407.11194",
        ),
        Source(
            "astromlab2",
            "Pan et al. 2024, AstroMLab 2: AstroLLaMA-2-70B Model and Benchmarking Specialised LLMs for Astronomy (arXiv:2409.19750)",
            "https://arxiv.org/abs/2409.19750",
        ),
        Source(
            "card-3-8b-summary",
            "Model card AstroMLab/astrollama-3-8b-base_summary (Hugging Face)",
            "https://huggingface.co/AstroMLab/astrollama-3-8b-base_summary",
        ),
        Source(
            "card-3-8b-aic",
            "Model card AstroMLab/astrollama-3-8b-base_aic (Hugging Face)",
            "https://huggingface.co/AstroMLab/astrollama-3-8b-base_aic",
        ),
        Source(
            "card-2-70b-aic",
            "Model card AstroMLab/astrollama-2-70b-base_aic (Hugging Face)",
            "https://huggingface.co/AstroMLab/astrollama-2-70b-base_aic",
        ),
        Source(
            "card-2-7b-aic",
            "Model card AstroMLab/astrollama-2-7b-base_aic (Hugging Face)",
            "https://huggingface.co/AstroMLab/astrollama-2-7b-base_aic",
        ),
        Source(
            "card-2-7b-abstract",
            "Model card AstroMLab/astrollama-2-7b-base_abstract (Hugging Face; = universeTBD/astrollama)",
            "https://huggingface.co/AstroMLab/astrollama-2-7b-base_abstract",
        ),
        Source(
            "astromlab3",
            "de Haan et al. 2024, AstroMLab 3: Achieving GPT-4o Level Performance in Astronomy with a Specialized 8B-Parameter LLM (arXiv:2411.09012)",
            "https://arxiv.org/abs/2411.09012",
        ),
        Source(
            "astromlab4",
            "de Haan et al. 2025, AstroMLab 4: Benchmark-Topping Performance in Astronomy Q&A with a 70B-Parameter Domain-Specialized Reasoning Model (arXiv:2505.17592)",
            "https://arxiv.org/abs/2505.17592",
        ),
        Source(
            "card-astrosage-8b",
            "Model card AstroMLab/AstroSage-8B (Hugging Face)",
            "https://huggingface.co/AstroMLab/AstroSage-8B",
        ),
        Source(
            "card-astrosage-70b",
            "Model card AstroMLab/AstroSage-70B (Hugging Face)",
            "https://huggingface.co/AstroMLab/AstroSage-70B",
        ),
        Source(
            "astrobench-public",
            "Dataset card AstroMLab/Astrobench_MCQ_v1_Public (Hugging Face)",
            "https://huggingface.co/datasets/AstroMLab/Astrobench_MCQ_v1_Public",
        ),
        Source(
            "a100",
            "NVIDIA A100 Tensor Core GPU datasheet (312 TFLOP/s dense BF16)",
            "https://www.nvidia.com/en-us/data-center/a100/",
        ),
        Source(
            "h100",
            "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM: 1,979 TFLOP/s BF16 with sparsity = 989 dense; 80 GB)",
            "https://www.nvidia.com/en-us/data-center/h100/",
        ),
        Source(
            "config-llama2-7b",
            "config.json of meta-llama/Llama-2-7b-hf (Hugging Face)",
            "https://huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json",
        ),
        Source(
            "config-llama2-70b",
            "config.json of meta-llama/Llama-2-70b-hf (Hugging Face)",
            "https://huggingface.co/meta-llama/Llama-2-70b-hf/blob/main/config.json",
        ),
        Source(
            "config-llama3-8b",
            "config.json of meta-llama/Meta-Llama-3-8B (Hugging Face)",
            "https://huggingface.co/meta-llama/Meta-Llama-3-8B/blob/main/config.json",
        ),
    ]
}


@dataclass(frozen=True)
class Published:
    value: Any
    source: str  # key into SOURCES
    verified: bool = True
    note: str = ""

    def cite(self) -> str:
        s = SOURCES[self.source]
        flag = "" if self.verified else " [to confirm]"
        return f"{s.title}{flag}"


# ---------------------------------------------------------------------------------------------
# Training recipes, per released model (HF id under AstroMLab/). Keys use the trainer's own
# argument names (transformers.TrainingArguments / LMFlow) where one exists.
# ---------------------------------------------------------------------------------------------
RECIPES: dict[str, dict[str, Published]] = {
    "astrollama-2-7b-base_abstract": {
        "base_model": Published("meta-llama/Llama-2-7b-hf", "astrollama1"),
        "corpus": Published(
            "abstracts", "astrollama1", note="326,238 astro-ph abstracts, Apr 1992 - Jul 2023"
        ),
        "n_papers": Published(326_238, "astrollama1"),
        "n_tokens": Published(95_000_000, "astrollama1", verified=False, note="~95M tokens"),
        "heldout_fraction": Published(0.2, "astrollama1", verified=False),
        "use_lora": Published(True, "card-2-7b-abstract"),
        "learning_rate": Published(3.0e-4, "astrollama1", verified=False),
        "warmup_ratio": Published(0.1, "astrollama1", verified=False),
        "lr_scheduler_type": Published("cosine", "astrollama1", verified=False),
        "global_batch_size": Published(32, "astrollama1", verified=False),
        "block_size": Published(512, "astrollama1", verified=False),
        "num_train_epochs": Published(3, "astrollama1", verified=False, note="~3 epochs"),
        "lora_alpha": Published(32, "astrollama1", verified=False),
        "lora_dropout": Published(0.05, "astrollama1", verified=False),
        "gpus": Published(4, "card-2-7b-abstract"),
    },
    "astrollama-2-7b-base_aic": {
        "base_model": Published("meta-llama/Llama-2-7b-hf", "card-2-7b-aic"),
        "corpus": Published(
            "aic-latex",
            "card-2-7b-aic",
            note="Abstract+Introduction+Conclusion regex-extracted from LaTeX, to Jul 2023",
        ),
        "use_lora": Published(True, "card-2-7b-aic"),
    },
    "astrollama-3-8b-base_aic": {
        "base_model": Published("meta-llama/Meta-Llama-3-8B", "card-3-8b-aic"),
        "corpus": Published(
            "aic-nougat", "card-3-8b-aic", note="AIC from Nougat OCR of arXiv PDFs, to Jan 2024"
        ),
        "use_lora": Published(False, "card-3-8b-aic"),
        "learning_rate": Published(2.0e-5, "card-3-8b-aic"),
        "global_batch_size": Published(96, "card-3-8b-aic"),
        "block_size": Published(512, "card-3-8b-aic"),
        "warmup_ratio": Published(0.03, "card-3-8b-aic"),
        "lr_scheduler_type": Published("cosine", "card-3-8b-aic"),
        "bf16": Published(True, "card-3-8b-aic"),
        "gradient_accumulation_steps": Published(1, "card-3-8b-aic"),
        "num_train_epochs": Published(1, "card-3-8b-aic"),
    },
    "astrollama-3-8b-base_summary": {
        "base_model": Published("meta-llama/Meta-Llama-3-8B", "card-3-8b-summary"),
        "corpus": Published(
            "summary",
            "card-3-8b-summary",
            note="Nougat OCR, then 1,000-4,000-token summaries by Qwen-2 and LLaMA-3.1-8B",
        ),
        "summary_tokens": Published((1000, 4000), "card-3-8b-summary"),
        "use_lora": Published(False, "card-3-8b-summary"),
        "learning_rate": Published(2.0e-5, "card-3-8b-summary"),
        "global_batch_size": Published(96, "card-3-8b-summary"),
        "block_size": Published(512, "card-3-8b-summary"),
        "warmup_ratio": Published(0.03, "card-3-8b-summary"),
        "lr_scheduler_type": Published("cosine", "card-3-8b-summary"),
        "bf16": Published(True, "card-3-8b-summary"),
        "gradient_accumulation_steps": Published(1, "card-3-8b-summary"),
        "num_train_epochs": Published(1, "card-3-8b-summary"),
        "a100_hours": Published(32, "card-3-8b-summary", note="~32 A100 GPU-hours"),
        "n_papers": Published(
            340_000,
            "astrollama1",
            verified=False,
            note="~340k astro-ph papers to Jan 2024: 326,238 abstracts to Jul 2023 (AstroLLaMA-1) plus "
            "about six months; our estimate (docs/astromlab.md), not a published count",
        ),
    },
    "astrollama-2-70b-base_aic": {
        "base_model": Published("meta-llama/Llama-2-70b-hf", "astromlab2"),
        "corpus": Published("aic-latex", "astromlab2", note="AIC from LaTeX source, to Jul 2023"),
        "use_lora": Published(False, "astromlab2"),
        "learning_rate": Published(2.0e-5, "card-2-70b-aic"),
        "global_batch_size": Published(160, "card-2-70b-aic"),
        "block_size": Published(2048, "card-2-70b-aic"),
        "warmup_ratio": Published(0.03, "card-2-70b-aic"),
        "lr_scheduler_type": Published("cosine", "card-2-70b-aic"),
        "num_train_epochs": Published(1, "card-2-70b-aic"),
        "a100_hours": Published(2000, "astromlab2", note="~2,000 A100 GPU-hours"),
    },
}

# Instruct (SFT) versions: the chat models were fine-tuned from their CPT model with LMFlow, with
# one set of hyper-parameters, on one data mix (AstroMLab 2 and the chat model cards).
CHAT_SFT = {
    "learning_rate": Published(3.0e-7, "astromlab2"),
    "global_batch_size": Published(48, "astromlab2"),
    "block_size": Published(2048, "astromlab2"),
    "num_train_epochs": Published(1, "astromlab2"),
}
CHAT_SFT_DATA = Published(
    "~10k GPT-4-written astronomy conversations + LIMA + 10k OpenOrca + 10k UltraChat",
    "astromlab2",
    note="sizes and sampling of the general sets beyond these counts are not published",
)

# SFT recipes (recipes/*.yaml, data.conversation_template set): what each starts from and the
# published hyper-parameters it must resolve to (tests/train/test_paper_recipes.py). Everything
# else in those recipes (template, packing, warmup, precision, DeepSpeed, allocation) is our choice,
# marked as such in each recipe's header and in docs/train-recipes.md.
SFT_RECIPES: dict[str, dict[str, Published]] = {
    "astrollama-2-7b-chat_aic": {
        "base_model": Published("AstroMLab/astrollama-2-7b-base_aic", "astromlab2"),
        **CHAT_SFT,
    },
    "astrollama-3-8b-chat_aic": {
        "base_model": Published("AstroMLab/astrollama-3-8b-base_aic", "astromlab2"),
        **CHAT_SFT,
    },
    "astrollama-3-8b-chat_summary": {
        "base_model": Published("AstroMLab/astrollama-3-8b-base_summary", "astromlab2"),
        **CHAT_SFT,
    },
    "astrollama-2-70b-chat_aic": {
        "base_model": Published("AstroMLab/astrollama-2-70b-base_aic", "astromlab2"),
        **CHAT_SFT,
    },
}

# AstroSage (AstroMLab 3/4): CPT -> SFT on Q&A pairs and instruction sets -> merge with the Meta
# instruct model. Only these facts are taken as published; no SFT hyper-parameter is. Their MCQ
# scores are rows of MCQ_SCORES (one place for every benchmark number).
ASTROSAGE = {
    "base_model": Published("meta-llama/Llama-3.1-8B", "card-astrosage-8b", note="Meta-Llama-3.1-8B"),
    "stages": Published(("cpt", "sft", "merge"), "card-astrosage-8b"),
    "sft_data": Published(
        "millions of synthetic astronomy question-answer pairs plus general instruction sets", "astromlab3"
    ),
    "merge": Published({"cpt+sft": 0.75, "meta-llama/Llama-3.1-8B-Instruct": 0.25}, "card-astrosage-8b"),
    "sft_block_size_70b": Published(
        8192, "card-astrosage-70b", note="AstroSage-70B fine-tuned on 8192-token sequences"
    ),
}

# The merge step (recipes/astrosage-8b-merge.yaml, docs/train-merge.md); its weights are
# ASTROSAGE["merge"]. DARE-TIES densities and the other mergekit settings are not published: our
# choices, stated in the recipe.
MERGE_METHOD = Published(
    "dare_ties",
    "astromlab3",
    verified=False,
    note="the paper body was not read here; DARE-TIES or linear are the candidates",
)

# ---------------------------------------------------------------------------------------------
# AstroMLab-1 benchmark (4,425 MCQs from 885 ARA&A reviews; public validated subset 3,846 rows).
# Scores in percent, token method for base models.
# ---------------------------------------------------------------------------------------------
BENCHMARK = {
    "n_questions": Published(4425, "astromlab1"),
    "n_public": Published(3846, "astrobench-public"),
    "n_reviews": Published(885, "astromlab1"),
}

MCQ_SCORES: dict[str, Published] = {
    "LLaMA-3.1-8B": Published(73.7, "astromlab1"),
    "LLaMA-3-8B": Published(72.9, "astromlab1", note="first reported as 72.0"),
    "AstroLLaMA-3-8B-Base_Summary": Published(72.3, "card-3-8b-summary"),
    "AstroLLaMA-3-8B-Base_AIC": Published(71.9, "astromlab2", note="the summary model card says 72.3"),
    "Gemma-2-9B": Published(71.5, "astromlab1"),
    "Qwen-2.5-7B": Published(70.4, "astromlab1"),
    "Yi-1.5-9B": Published(68.4, "astromlab1"),
    "InternLM-2.5-7B": Published(64.5, "astromlab1", note="first reported as 64.0"),
    "Mistral-7B-v0.3": Published(63.9, "astromlab1"),
    "ChatGLM3-6B": Published(50.4, "astromlab1"),
    "LLaMA-2-7B": Published(50.3, "astromlab2", verified=False),
    "AstroLLaMA-2-7B-AIC": Published(44.3, "astromlab2"),
    "LLaMA-2-70B": Published(70.7, "astromlab2", note="first reported as 73.9"),
    "AstroLLaMA-2-70B-Base_AIC": Published(76.0, "astromlab2"),
    "AstroLLaMA-2-70B-Chat_AIC": Published(64.7, "astromlab2", note="also the chat model card"),
    # CPT -> SFT -> merge (AstroSage); instruct models, scored from their answers
    "AstroSage-Llama-3.1-8B": Published(80.9, "astromlab3", note="abstract; also the model card"),
    "AstroSage-Llama-3.1-70B": Published(
        86.2,
        "astromlab4",
        verified=False,
        note="v1 (May 2025), read in a summary of v1, not in the paper; v2 (Feb 2026) reports 89.0 on the "
        "validated 3,846-question subset",
    ),
}

# Published scores of each stage of a CPT -> SFT -> merge chain (rows of MCQ_SCORES; None: no
# published score for that stage), shown beside a staged run (the demo's base -> CPT -> SFT -> merged).
STAGES = ("base", "cpt", "sft", "merged")
STAGE_CHAINS: dict[str, dict[str, str | None]] = {
    "AstroLLaMA-2-70B (AstroMLab 2)": {
        "base": "LLaMA-2-70B",
        "cpt": "AstroLLaMA-2-70B-Base_AIC",
        "sft": "AstroLLaMA-2-70B-Chat_AIC",
        "merged": None,
    },
    "AstroSage-8B (AstroMLab 3)": {
        "base": "LLaMA-3.1-8B",
        "cpt": None,
        "sft": None,
        "merged": "AstroSage-Llama-3.1-8B",
    },
    "AstroSage-70B (AstroMLab 4)": {
        "base": None,
        "cpt": None,
        "sft": None,
        "merged": "AstroSage-Llama-3.1-70B",
    },
}

# Which released model each recipe reproduces, and its base model's score, for the report table.
RECIPE_SCORES: dict[str, tuple[str, str]] = {
    # recipe name: (trained model row in MCQ_SCORES, base model row in MCQ_SCORES)
    "astrollama-2-7b-base_aic": ("AstroLLaMA-2-7B-AIC", "LLaMA-2-7B"),
    "astrollama-3-8b-base_aic": ("AstroLLaMA-3-8B-Base_AIC", "LLaMA-3-8B"),
    "astrollama-3-8b-base_summary": ("AstroLLaMA-3-8B-Base_Summary", "LLaMA-3-8B"),
    "astrollama-2-70b-base_aic": ("AstroLLaMA-2-70B-Base_AIC", "LLaMA-2-70B"),
}

# ---------------------------------------------------------------------------------------------
# AstroLLaMA-1 evaluations.
# ---------------------------------------------------------------------------------------------
ASTROLLAMA1 = {
    "perplexity_reduction": Published(
        0.30, "astrollama1", note="~30% lower perplexity than LLaMA-2-7B on held-out abstracts"
    ),
    "perplexity_base": Published(9.7, "astrollama1", verified=False),
    "perplexity_astrollama": Published(6.55, "astrollama1", verified=False),
    "mmlu_astronomy_astrollama": Published(0.3816, "card-2-7b-abstract"),
    "mmlu_astronomy_llama2_7b": Published(0.4211, "card-2-7b-abstract"),
}

# ---------------------------------------------------------------------------------------------
# Hardware constants used by the compute planner.
# ---------------------------------------------------------------------------------------------
HARDWARE = {
    "a100_bf16_peak_flops": Published(312e12, "a100"),
    "a100_80g_memory_gb": Published(80, "a100"),
    "a100_40g_memory_gb": Published(40, "a100"),
    "h100_bf16_peak_flops": Published(989e12, "h100", note="H100 SXM dense BF16 (half the sparsity figure)"),
    "h100_memory_gb": Published(80, "h100"),
}

# Architectures of the base models (their public config.json), for parameter counts and the
# planner's memory estimate. Parameter count formula: astrollama.train.planner.count_parameters
# (LLaMA-3-8B -> 8.03e9, LLaMA-2-7B -> 6.74e9, LLaMA-2-70B -> 6.90e10).
MODEL_CONFIGS: dict[str, Published] = {
    "meta-llama/Llama-2-7b-hf": Published(
        {
            "hidden_size": 4096,
            "num_hidden_layers": 32,
            "intermediate_size": 11008,
            "vocab_size": 32000,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "tie_word_embeddings": False,
        },
        "config-llama2-7b",
    ),
    "meta-llama/Llama-2-70b-hf": Published(
        {
            "hidden_size": 8192,
            "num_hidden_layers": 80,
            "intermediate_size": 28672,
            "vocab_size": 32000,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "tie_word_embeddings": False,
        },
        "config-llama2-70b",
    ),
    "meta-llama/Meta-Llama-3-8B": Published(
        {
            "hidden_size": 4096,
            "num_hidden_layers": 32,
            "intermediate_size": 14336,
            "vocab_size": 128256,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "tie_word_embeddings": False,
        },
        "config-llama3-8b",
    ),
}


# The SFT recipes start from checkpoints with their base model's architecture: the AstroMLab CPT
# models are continual pre-training of the model each card names (same config), and
# Llama-3.1-8B has LLaMA-3-8B's shape (its rope scaling does not change the planner's counts).
MODEL_CONFIGS |= {
    cpt: Published(MODEL_CONFIGS[base].value, card, note=f"architecture of {base}")
    for cpt, base, card in [
        ("AstroMLab/astrollama-2-7b-base_aic", "meta-llama/Llama-2-7b-hf", "card-2-7b-aic"),
        ("AstroMLab/astrollama-3-8b-base_aic", "meta-llama/Meta-Llama-3-8B", "card-3-8b-aic"),
        ("AstroMLab/astrollama-3-8b-base_summary", "meta-llama/Meta-Llama-3-8B", "card-3-8b-summary"),
        ("AstroMLab/astrollama-2-70b-base_aic", "meta-llama/Llama-2-70b-hf", "card-2-70b-aic"),
        ("meta-llama/Llama-3.1-8B", "meta-llama/Meta-Llama-3-8B", "card-astrosage-8b"),
    ]
}
