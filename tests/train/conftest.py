"""Fixtures for the training tests: recipe files written on the spot, small LMFlow datasets,
training runs, Slurm jobs of slurm/cpt.sh."""

from __future__ import annotations

import os
import random
import re
import shlex
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from astrollama.lmflow_data import write_text_only
from astrollama.models import DEFAULT_TINY_TEXT
from astrollama.train.checkpoints import CHECKPOINT_RE


@pytest.fixture
def text_only_dir(tmp_path) -> Path:
    """A small real LMFlow text_only dataset directory (two shards)."""
    d = tmp_path / "data" / "train"
    write_text_only(d / "shard-00000.json", ["The Sun is a G-type main-sequence star."] * 3)
    write_text_only(d / "shard-00001.json", ["Pulsars are rotating neutron stars."] * 2)
    return d


@pytest.fixture
def write_recipe(tmp_path) -> Callable[..., Path]:
    """write_recipe(text, name="r.yaml") -> path of a recipe file in tmp_path/recipes (dedented)."""

    def write(text: str, name: str = "r.yaml") -> Path:
        p = tmp_path / "recipes" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip())
        return p

    return write


MINIMAL = """
reproduces: test
model:
  name_or_path: some/model
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
"""


@pytest.fixture
def minimal_recipe(write_recipe, text_only_dir) -> Path:
    """A valid recipe on the text_only_dir dataset (engine local, global batch 8, max micro 4)."""
    return write_recipe(MINIMAL.format(data=text_only_dir))


# ----------------------------------------------------------------------------------------------
# Runtime fixtures (engine, resume, Slurm): a tiny real model + corpus, recipes that train it.
# ----------------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """60 short pseudo-astronomy documents (20-120 words) in 3 LMFlow text_only shards."""
    from astrollama.lmflow_data import write_text_only_shards

    words = DEFAULT_TINY_TEXT.split()
    rng = random.Random(0)
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(20, 120))) for _ in range(60)]
    d = tmp_path_factory.mktemp("corpus") / "train"
    write_text_only_shards(docs, d, max_docs=25)
    return d


TRAIN_RECIPE = """
name: tiny-runtime
reproduces: "none: runtime test"
model:
  name_or_path: {model}
  torch_dtype: float32
data:
  dataset_path: {data}
  block_size: 64
  packing: {packing}
  preprocessing_num_workers: 1
batch:
  global_batch_size: {global_batch}
  max_micro_batch_size: {micro}
launch:
  engine: local
  nodes: 1
  gpus_per_node: {procs}
  run_dir: {run_dir}
  rdzv_port: {port}
trainer:
  use_cpu: true  # CPU on purpose (a GPU recipe is refused on a node without GPUs)
  learning_rate: 1.0e-3
  max_steps: {max_steps}
  save_steps: {save_steps}
  logging_steps: 1
  report_to: none
  seed: 7
  ddp_find_unused_parameters: false
"""


@pytest.fixture(scope="session")
def train_recipe(tmp_path_factory, tiny_model, tiny_corpus) -> Callable[..., Path]:
    """train_recipe(run_dir, max_steps=.., save_steps=.., procs=1, ...) -> a recipe training tiny_model."""

    def write(
        run_dir: Path,
        *,
        max_steps: int = 20,
        save_steps: int = 4,
        procs: int = 1,
        global_batch: int = 4,
        micro: int = 4,
        packing: bool = True,
    ) -> Path:
        p = tmp_path_factory.mktemp("recipes") / "tiny.yaml"
        p.write_text(
            TRAIN_RECIPE.format(
                model=tiny_model,
                data=tiny_corpus,
                run_dir=run_dir,
                port=free_port(),
                procs=procs,
                max_steps=max_steps,
                save_steps=save_steps,
                global_batch=global_batch,
                micro=micro,
                packing=str(packing).lower(),
            )
        )
        return p

    return write


@pytest.fixture(scope="session")
def train_env() -> dict[str, str]:
    """Environment for subprocess training runs: offline, one thread per process."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def in_repo(monkeypatch) -> Path:
    """Run from the repository root: recipes' relative paths (ds_configs/...) resolve against the cwd."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    return root


# ----------------------------------------------------------------------------------------------
# LMFlow: the real one, where an environment with it exists.
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def lmflow_python() -> Path:
    """A Python that imports the real LMFlow (+ this package): the test interpreter where
    ``import lmflow`` works, else ``$ASTROLLAMA_LMFLOW_PYTHON`` (scripts/test.sh exports the one of
    the environment scripts/setup_train_env.sh builds). Skips otherwise, except under CI=true with
    ``$ASTROLLAMA_LMFLOW_SRC`` set (an LMFlow checkout was provided): then the environment failed to
    build, which is a failure."""
    import importlib.util
    import sys

    from astrollama.train.lmflow import LMFLOW_COMMIT

    if importlib.util.find_spec("lmflow") is not None:
        return Path(sys.executable)
    env = os.environ.get("ASTROLLAMA_LMFLOW_PYTHON")
    if env:
        if not Path(env).is_file():
            pytest.fail(f"ASTROLLAMA_LMFLOW_PYTHON={env} does not exist")
        return Path(env)
    src = os.environ.get("ASTROLLAMA_LMFLOW_SRC")
    if src and os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f"ASTROLLAMA_LMFLOW_SRC={src} is set but no LMFlow environment was built from it "
            "(scripts/setup_train_env.sh failed: see the start of the scripts/test.sh log)"
        )
    pytest.skip(
        f"LMFlow ({LMFLOW_COMMIT[:12]}) is not importable here and $ASTROLLAMA_LMFLOW_PYTHON is not set "
        "(bash scripts/setup_train_env.sh LMFLOW_CHECKOUT builds an environment with it)"
    )


@pytest.fixture(scope="session")
def lmflow_env(train_env, lmflow_python, tmp_path_factory) -> dict[str, str]:
    """``train_env`` for ``bash slurm/cpt.sh`` runs inside the LMFlow environment: its ``bin`` is put
    first on PATH by ASTROLLAMA_ENV_SETUP (slurm/_env.sh then keeps it), this checkout's ``src``
    first on PYTHONPATH (the cached environment may point at another clone), a fresh datasets cache."""
    bin_dir = shlex.quote(str(lmflow_python.parent))
    env = {k: v for k, v in train_env.items() if k not in ("ASTROLLAMA_VENV", "VIRTUAL_ENV")}
    return env | {
        "ASTROLLAMA_ENV_SETUP": f'export PATH={bin_dir}:"$PATH"',
        "PYTHONPATH": str(REPO / "src"),
        "HF_DATASETS_CACHE": str(tmp_path_factory.mktemp("hf-datasets")),
    }


# ----------------------------------------------------------------------------------------------
# Slurm jobs of slurm/cpt.sh on the test clusters (tests/slurm_cluster*.sh)
# ----------------------------------------------------------------------------------------------
class CptJob:
    """A submitted ``slurm/cpt.sh`` job: its state through scontrol, its log split per attempt."""

    ATTEMPT_RE = re.compile(r"^\[cpt\.sh\] job (\d+) restart (\d+)", re.M)
    STEP_RE = re.compile(r"optimizer step (\d+)/(\d+) done")

    def __init__(self, job_id: str, log: Path, env: dict[str, str]) -> None:
        self.id, self.log, self.env = job_id, log, env

    def state(self) -> tuple[str, int]:
        """(JobState, Restarts) as scontrol shows them; ("UNKNOWN", 0) once Slurm forgot the job."""
        out = subprocess.run(
            ["scontrol", "show", "job", self.id], env=self.env, capture_output=True, text=True
        ).stdout
        state, restarts = re.search(r"JobState=(\S+)", out), re.search(r"Restarts=(\d+)", out)
        return (state.group(1) if state else "UNKNOWN"), int(restarts.group(1)) if restarts else 0

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                tail = self.log.read_text()[-4000:] if self.log.exists() else "(no log)"
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; job log tail:\n{tail}")
            time.sleep(0.2)

    def attempts(self) -> list[str]:
        """The log (``--open-mode=append``: all attempts) cut at cpt.sh's ``job <id> restart <n>`` lines."""
        text = self.log.read_text()
        starts = [m.start() for m in self.ATTEMPT_RE.finditer(text)] + [len(text)]
        return [text[a:b] for a, b in zip(starts, starts[1:], strict=False)]

    @classmethod
    def steps(cls, text: str) -> list[int]:
        """The optimizer steps an attempt logged (rank 0's ``optimizer step N/M done`` lines)."""
        return [int(m.group(1)) for m in cls.STEP_RE.finditer(text)]

    @staticmethod
    def newest_checkpoint(ckpts: Path) -> int:
        """The highest N of the ``checkpoint-N`` directories in ``ckpts`` (0 if none)."""
        steps = [int(m.group(1)) for p in ckpts.glob("checkpoint-*") if (m := CHECKPOINT_RE.match(p.name))]
        return max(steps, default=0)

    def cancel(self) -> None:
        if self.state()[0] not in ("COMPLETED", "FAILED", "CANCELLED", "UNKNOWN"):
            subprocess.run(["scancel", self.id], env=self.env, capture_output=True)


@pytest.fixture
def submit_cpt(tmp_path) -> Callable[..., CptJob]:
    """submit_cpt(sbatch_options, cpt_args, env) -> CptJob: ``sbatch slurm/cpt.sh`` from the repository
    root, log in tmp_path/job.out; the job is cancelled at teardown if it is still alive."""
    jobs: list[CptJob] = []

    def submit(options: list[str], args: list[str], env: dict[str, str]) -> CptJob:
        log = tmp_path / "job.out"
        r = subprocess.run(
            # CPU recipes on a cluster without GPUs: no GPU request (slurm/cpt.sh asks for 8 by default)
            ["sbatch", "--parsable", f"--output={log}", "--gpus-per-node=0", *options, "slurm/cpt.sh", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        jobs.append(CptJob(r.stdout.strip().split(";")[0], log, env))
        return jobs[-1]

    yield submit
    for job in jobs:
        job.cancel()


# ----------------------------------------------------------------------------------------------
# SFT: conversation datasets and a tiny LLaMA whose tokenizer knows chatml's markers
# ----------------------------------------------------------------------------------------------
QUESTIONS = [
    "What sets the {0} of a {1}?",
    "Why does the {0} change near a {1}?",
    "How is the {0} of a {1} measured?",
    "Explain the {0} and the {1}.",
]
SYSTEMS = ["", "You answer questions about astronomy briefly.", "You are a patient astrophysics tutor."]


def make_conversations(n: int, seed: int = 0) -> list[dict]:
    """n original conversations (1-3 user/assistant pairs, some with a system prompt), every one
    with the same keys, as LMFlow's json loader needs."""
    words = DEFAULT_TINY_TEXT.replace(".", "").split()
    rng = random.Random(seed)
    convs = []
    for _ in range(n):
        msgs = []
        for _ in range(rng.randint(1, 3)):
            q = rng.choice(QUESTIONS).format(rng.choice(words), rng.choice(words))
            a = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40))).capitalize() + "."
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        convs.append({"system": rng.choice(SYSTEMS), "messages": msgs})
    return convs


@pytest.fixture(scope="session")
def conversation_corpus(tmp_path_factory) -> Path:
    """48 conversations in 3 LMFlow conversation shards."""
    from astrollama.lmflow_data import write_conversations

    d = tmp_path_factory.mktemp("sft") / "train"
    convs = make_conversations(48)
    for i in range(3):
        write_conversations(d / f"chat-{i:05d}.json", convs[16 * i : 16 * (i + 1)])
    return d


@pytest.fixture(scope="session")
def tiny_chat_model(tiny_model, tmp_path_factory) -> Path:
    """tiny_model with <|im_start|> and <|im_end|> added as special tokens (embeddings resized)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = tmp_path_factory.mktemp("models") / "tiny-chat"
    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d
