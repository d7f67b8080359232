"""Every config and prompt file the project reads refuses an unknown key, and every prompt template
has its placeholders checked when the file is loaded (astrollama.config: read_mapping, check_keys,
check_template; docs/security.md).

One parametrised case per KIND of file: a training recipe, a merge recipe, a DeepSpeed JSON
config, a data-prep config, an evaluation config, the Q&A and summary prompt YAMLs, an MCQ
template. Each is refused with one line naming the file and the key, exit 2, before any model is
loaded, and nothing is written (a misspelt placeholder never becomes a per-paper failure).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from astrollama.data.manifest import Manifest
from astrollama.lmflow_data import write_text_only

REPO = Path(__file__).resolve().parents[2]
PID = "2401.00101"

RECIPE = """
name: strict
reproduces: "none: config test"
model:
  name_or_path: {model}
data:
  dataset_path: {data}
  block_size: 64
  packing: true
batch:
  global_batch_size: 8
  max_micro_batch_size: 4
launch:
  engine: local
trainer:
  learning_rate: 1.0e-4
  max_steps: 4
"""


def _model(t: Path) -> Path:
    m = t / "model"
    m.mkdir(exist_ok=True)
    arch = {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 512}
    (m / "config.json").write_text(
        json.dumps({**arch, "num_attention_heads": 4, "max_position_embeddings": 1024})
    )
    return m


def _recipe(t: Path, extra: str = "") -> Path:
    data = t / "data"
    write_text_only(data / "shard-00000.json", ["Quasars are active galactic nuclei."] * 4)
    r = t / "r.yaml"
    r.write_text(textwrap.dedent(RECIPE).format(model=_model(t), data=data).lstrip() + extra)
    return r


def _root(t: Path) -> Path:
    root = t / "root"
    Manifest(root).upsert_papers([{"id": PID, "title": "paper", "abstract": "Quasars are bright."}])
    return root


def _prompt(t: Path, name: str, body: str) -> Path:
    p = t / name
    p.write_text(body)
    return p


QA_OK = 'name: x\nsystem: s\nuser: "Write {n_questions} questions about {title}: {text}"\n'
SUMMARY_OK = (REPO / "data_prep" / "prompts" / "summarize_sections_small.yaml").read_text()


def _qa(t: Path, prompt: Path) -> list[str]:
    return ["data", "qa", "--root", str(_root(t)), "--prompt", str(prompt), "--model", str(t / "no-model")]


def _summarize(t: Path, prompt: Path) -> list[str]:
    return [
        "data",
        "summarize",
        "--root",
        str(_root(t)),
        "--prompt",
        str(prompt),
        "--model",
        str(t / "no-model"),
    ]


def _ds(t: Path, config: dict) -> list[str]:
    ds = t / "ds.json"
    ds.write_text(json.dumps(config))
    r = _recipe(t)
    r.write_text(r.read_text().replace("  engine: local\n", f"  engine: local\n  deepspeed: {ds}\n"))
    return ["train", "launch", str(r), "--dry-run"]


def _merge(t: Path, extra: str) -> list[str]:
    r = t / "m.yaml"
    text = (REPO / "recipes" / "demo-smollm2-135m-merge.yaml").read_text()
    r.write_text(text.replace("output_dir: work/demo/merged", f"output_dir: {t / 'merged'}") + extra)
    return ["merge", str(r), "--dry-run"]


def _recipe_edit(t: Path, old: str, new: str) -> list[str]:
    r = _recipe(t)
    r.write_text(r.read_text().replace(old, new, 1))
    return ["train", "launch", str(r), "--dry-run"]


def _config(t: Path, name: str, body: str) -> Path:
    p = t / name
    p.write_text(body)
    return p


# kind -> (argv(tmp), fragments of the one-line message)
UNKNOWN_KEY: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "training recipe": (lambda t: ["train", "launch", str(_recipe(t, "sytem: x\n")), "--dry-run"], ["r.yaml", "sytem"]),
    "training recipe section": (
        lambda t: _recipe_edit(t, "  packing: true", "  packing: true\n  packign: false"),
        ["r.yaml", "data.packign"],
    ),
    "merge recipe": (lambda t: _merge(t, "\nsytem: x\n"), ["m.yaml", "sytem"]),
    "DeepSpeed config": (lambda t: _ds(t, {"gradient_cliping": 1.0}), ["ds.json", "gradient_cliping"]),
    "DeepSpeed zero section": (
        lambda t: _ds(t, {"zero_optimization": {"stage": 2, "overlap_comms": True}}),
        ["ds.json", "zero_optimization.overlap_comms"],
    ),
    "data-prep config": (
        lambda t: ["data", "aic", "--config", str(_config(t, "d.yaml", f"root: {_root(t)}\naic:\n  sourse: auto\n"))],
        ["d.yaml", "aic.sourse"],
    ),
    "data-prep config section": (
        lambda t: ["data", "aic", "--config", str(_config(t, "d.yaml", f"root: {_root(t)}\naicc: {{}}\n"))],
        ["d.yaml", "aicc"],
    ),
    "evaluation config": (
        lambda t: ["eval", "report", "--config", str(_config(t, "e.yaml", "report:\n  outt: x\n")), "--results", "r", "--out", str(t / "o")],
        ["e.yaml", "report.outt"],
    ),
    "Q&A prompt": (lambda t: _qa(t, _prompt(t, "qa.yaml", QA_OK.replace("system:", "sytem:"))), ["qa.yaml", "sytem"]),
    "summary prompt": (
        lambda t: _summarize(t, _prompt(t, "sum.yaml", SUMMARY_OK + "\nfirst_previos: x\n")),
        ["sum.yaml", "first_previos"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(UNKNOWN_KEY))
def test_unknown_key_is_refused_naming_file_and_key(kind, tmp_path, refuse):
    make, expect = UNKNOWN_KEY[kind]
    argv = make(tmp_path)
    r = refuse(argv, tmp_path, expect=expect, allow=[tmp_path / "root"])
    assert "unknown" in r.message


# kind -> (argv(tmp), fragments): a misspelt, positional or unbalanced placeholder
BAD_PLACEHOLDER: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "Q&A prompt misspelt": (lambda t: _qa(t, _prompt(t, "qa.yaml", QA_OK.replace("{text}", "{txt}"))), ["qa.yaml", "user", "{txt}"]),
    "Q&A prompt missing": (lambda t: _qa(t, _prompt(t, "qa.yaml", QA_OK.replace("{text}", "TEXT"))), ["qa.yaml", "user", "{text}"]),
    "Q&A prompt stray brace": (lambda t: _qa(t, _prompt(t, "qa.yaml", QA_OK.replace("{text}", "{text} {"))), ["qa.yaml", "user", "brace"]),
    "Q&A prompt positional": (lambda t: _qa(t, _prompt(t, "qa.yaml", QA_OK.replace("{text}", "{text} {0}"))), ["qa.yaml", "user", "{0}"]),
    "summary prompt misspelt": (
        lambda t: _summarize(t, _prompt(t, "sum.yaml", SUMMARY_OK.replace("{chunk}", "{chunck}"))),
        ["sum.yaml", "user", "{chunck}"],
    ),
    "MCQ template misspelt": (
        lambda t: [
            "eval", "mcq", "--model", str(t / "no-model"), "--questions", str(REPO / "eval" / "data" / "astro_mcq_sample.jsonl"),
            "--template", str(_prompt(t, "t.txt", "$questoin\nA. $A\nB. $B\nC. $C\nD. $D\nAnswer:")), "--out", str(t / "o"),
        ],
        ["t.txt", "questoin"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(BAD_PLACEHOLDER))
def test_bad_placeholder_is_refused_when_the_file_is_loaded(kind, tmp_path, refuse):
    make, expect = BAD_PLACEHOLDER[kind]
    argv = make(tmp_path)
    refuse(argv, tmp_path, expect=expect, allow=[tmp_path / "root"])
    if (tmp_path / "root").exists():  # a per-paper stage: no paper was recorded as failed
        m = Manifest(tmp_path / "root")
        assert not m.failures("qa") and not m.failures("summary")


def test_shipped_prompts_and_configs_pass_the_same_checks():
    from astrollama.data.qa import QAPrompt
    from astrollama.data.summarize import Prompt

    assert QAPrompt.load().name
    for p in sorted((REPO / "data_prep" / "prompts").glob("summarize*.yaml")):
        assert Prompt.load(p).name
