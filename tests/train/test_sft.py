"""SFT: conversation datasets, templates, assistant-only labels, the recipe schema and its checks.

The token-for-token comparison with the real LMFlow tokenisation (``conversation_tokenize_function``
with LMFlow's own template objects) runs in the LMFlow environment; the end-to-end training
comparison is in test_lmflow_e2e.py, the Slurm requeue in test_slurm_requeue.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from astrollama.lmflow_data import (
    LMFlowDataError,
    ShardWriter,
    read_conversation_dir,
    summarize_dataset,
    write_conversations,
    write_text_only,
)
from astrollama.train.batch import plan_batch
from astrollama.train.chat import IGNORE_INDEX, LMFLOW_TEMPLATES, LOCAL_TEMPLATES, encode_conversation
from astrollama.train.engine import conversation_blocks, parse_args
from astrollama.train.launch import build_launch
from astrollama.train.lmflow import finetune_args
from astrollama.train.recipe import RecipeError, load_recipe

from .conftest import REPO, make_conversations

CONV = {
    "system": "Answer in one sentence.",
    "messages": [
        {"role": "user", "content": "What powers a main-sequence star?"},
        {"role": "assistant", "content": "Hydrogen fusion in its core."},
        {"role": "user", "content": "And a white dwarf?"},
        {"role": "assistant", "content": "Nothing: it cools down slowly."},
    ],
}


def test_chatml_on_smollm2_masks_everything_but_the_assistant_turns(smollm2):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2)
    ids, labels = encode_conversation(CONV, tok, "chatml")
    assert tok.decode(ids) == (
        "<|im_start|>system\nAnswer in one sentence.<|im_end|>\n"
        "<|im_start|>user\nWhat powers a main-sequence star?<|im_end|>\n"
        "<|im_start|>assistant\nHydrogen fusion in its core.<|im_end|>\n"
        "<|im_start|>user\nAnd a white dwarf?<|im_end|>\n"
        "<|im_start|>assistant\nNothing: it cools down slowly.<|im_end|>\n"
    )
    # the trained tokens are exactly the two assistant turns, header and end marker included (LMFlow)
    runs, cur = [], []
    for i, lab in zip(ids, labels, strict=True):
        if lab == IGNORE_INDEX:
            if cur:
                runs.append(cur)
            cur = []
        else:
            assert lab == i
            cur.append(i)
    runs.append(cur)
    assert [tok.decode(r) for r in runs] == [
        "<|im_start|>assistant\nHydrogen fusion in its core.<|im_end|>\n",
        "<|im_start|>assistant\nNothing: it cools down slowly.<|im_end|>\n",
    ]
    ids2, labels2 = encode_conversation(CONV, tok, "chatml", train_on_prompt=True)
    assert ids2 == ids and labels2 == ids


def test_llama_templates_place_bos_eos_and_system(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ids, labels = encode_conversation(CONV, tok, "llama2")
    assert ids.count(tok.bos_token_id) == 2 and ids.count(tok.eos_token_id) == 2  # one pair each
    assert labels[ids.index(tok.eos_token_id)] == tok.eos_token_id  # EOS is trained
    assert "<<SYS>>" in tok.decode(ids[: ids.index(tok.eos_token_id)])
    ids3, _ = encode_conversation(CONV, tok, "llama3")
    assert ids3[0] == tok.bos_token_id and ids3.count(tok.bos_token_id) == 1
    no_sys = encode_conversation(CONV | {"system": ""}, tok, "llama3")[0]
    assert len(no_sys) < len(ids3) and "system" not in tok.decode(no_sys)
    with pytest.raises(ValueError, match="local engine implements"):
        encode_conversation(CONV, tok, "gemma")


def test_blocks_keep_the_mask_when_padding_and_when_packing(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model, padding_side="right")
    convs = make_conversations(12, seed=3)
    seqs = [encode_conversation(c, tok, "chatml") for c in convs]
    padded = conversation_blocks(convs, tok, template="chatml", block_size=512, disable_group_texts=True)
    for (ids, lab), x, y, m in zip(
        seqs, padded["input_ids"], padded["labels"], padded["attention_mask"], strict=True
    ):
        assert x[: len(ids)] == ids and y[: len(ids)] == lab and sum(m) == len(ids)
        assert set(y[len(ids) :]) <= {IGNORE_INDEX}
    packed = conversation_blocks(convs, tok, template="chatml", block_size=64, disable_group_texts=False)
    flat_ids = [t for ids, _ in seqs for t in ids]
    flat_lab = [t for _, lab in seqs for t in lab]
    n = len(flat_ids) // 64
    assert len(packed["input_ids"]) == n
    assert [t for b in packed["input_ids"] for t in b] == flat_ids[: 64 * n]
    assert [t for b in packed["labels"] for t in b] == flat_lab[: 64 * n]
    with pytest.raises(ValueError, match="conversation_template"):
        conversation_blocks(convs, tok, template=None, block_size=64, disable_group_texts=True)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["messages"].pop(), "user/assistant pairs"),
        (lambda c: c["messages"].reverse(), "must be 'user'"),
        (lambda c: c["messages"][1].update(content="  "), "non-blank"),
        (lambda c: c["messages"][0].update(role="system"), "must be 'user'"),
        (lambda c: c["messages"][0].update(name="x"), "'role', 'content'"),
        (lambda c: c.update(tools=["calc"]), "keys must be"),
        (lambda c: c.update(system=3), "system: must be a string"),
        (lambda c: c.update(system=" \n"), "blank but not empty"),
        (lambda c: c.update(messages=[]), "non-empty list"),
    ],
)
def test_conversation_writer_and_reader_refuse_what_lmflow_would_misread(tmp_path, mutate, message):
    bad = json.loads(json.dumps(CONV))
    mutate(bad)
    with pytest.raises(LMFlowDataError, match=message):
        write_conversations(tmp_path / "w" / "a.json", [CONV, bad])
    d = tmp_path / "r"
    d.mkdir()
    (d / "a.json").write_text(json.dumps({"type": "conversation", "instances": [CONV, bad]}))
    with pytest.raises(LMFlowDataError, match=message) as e:
        summarize_dataset(d)
    assert str(e.value).startswith(f"{d / 'a.json'}: instances[1]")


def test_conversation_directory_rules(tmp_path):
    d = tmp_path / "chat"
    write_conversations(d / "a.json", [CONV])
    write_conversations(d / "b.json", [CONV | {"conversation_id": "x1"}])
    with pytest.raises(LMFlowDataError, match="differ from"):  # LMFlow's json loader needs one column set
        read_conversation_dir(d)
    (d / "b.json").unlink()
    write_text_only(d / "b.json", ["a document"])
    with pytest.raises(LMFlowDataError, match="expected 'conversation'"):
        summarize_dataset(d)
    (d / "b.json").unlink()
    write_conversations(d / "b.json", [CONV | {"messages": CONV["messages"][:2]}])
    s = summarize_dataset(d)
    assert (s.kind, s.files, s.documents) == ("conversation", 2, 2)
    raw = (d / "a.json").read_text()
    assert raw.startswith('{"type": "conversation", "instances": ') and raw.isascii()


SFT_RECIPE = """
reproduces: test
model:
  name_or_path: {model}
data:
  dataset_path: {data}
  conversation_template: {template}
  block_size: 64
  packing: false
batch:
  global_batch_size: 8
  max_micro_batch_size: 4
launch:
  engine: {engine}
trainer:
  learning_rate: 1.0e-4
"""


def test_recipe_schema_for_sft(write_recipe, conversation_corpus, tiny_model):
    def recipe(**kw):
        args = {
            "model": tiny_model,
            "data": conversation_corpus,
            "template": "chatml",
            "engine": "local",
        } | kw
        return write_recipe(SFT_RECIPE.format(**args))

    r = load_recipe(recipe())
    assert r.data.conversation_template == "chatml"
    flags = finetune_args(r, plan_batch(8, 2, 4), output_dir="/tmp/out")
    i = flags.index("--conversation_template")
    assert flags[i + 1] == "chatml" and flags[flags.index("--train_on_prompt") + 1] == "False"
    model_args, data_args, _ = parse_args(flags)  # the local engine takes the same flags
    assert (data_args.conversation_template, data_args.train_on_prompt) == ("chatml", False)

    with pytest.raises(RecipeError, match=r"conversation_template: 'vicuna' is not an LMFlow template"):
        load_recipe(recipe(template="vicuna"))
    with pytest.raises(RecipeError, match=r"conversation_template: 'gemma': the local engine implements"):
        load_recipe(recipe(template="gemma"))
    assert load_recipe(recipe(template="gemma", engine="lmflow")).data.conversation_template == "gemma"
    with pytest.raises(RecipeError, match=r"trainer.conversation_template: .*use data.conversation_template"):
        load_recipe(recipe(), ["trainer.conversation_template=chatml"])
    assert load_recipe(recipe(), ["data.conversation_template=null"]).data.conversation_template is None
    with pytest.raises(RecipeError, match=r"trainer.train_on_prompt: not settable .* assistant turns only"):
        load_recipe(recipe(), ["trainer.train_on_prompt=true"])


def test_launch_checks_that_the_data_matches_the_recipe(
    write_recipe, conversation_corpus, text_only_dir, tiny_model
):
    r = load_recipe(
        write_recipe(
            SFT_RECIPE.format(model=tiny_model, data=conversation_corpus, template="llama3", engine="local")
        )
    )
    plan = build_launch(r, nodes=["localhost"], gpus_per_node=1)
    assert "--conversation_template" in plan.commands[0]
    with pytest.raises(RecipeError, match=r"data.conversation_template: .* holds conversations"):
        build_launch(
            load_recipe(r.path, ["data.conversation_template=null"]), nodes=["localhost"], gpus_per_node=1
        )
    with pytest.raises(RecipeError, match=r"data.dataset_path: is a text_only corpus"):
        build_launch(
            load_recipe(r.path, [f"data.dataset_path={text_only_dir}"]), nodes=["localhost"], gpus_per_node=1
        )
    # engine auto resolved to local here (no LMFlow in this interpreter or not): a template it lacks
    auto = load_recipe(r.path, ["launch.engine=auto", "data.conversation_template=qwen2"])
    from astrollama.train.launch import find_lmflow_script

    if find_lmflow_script(auto) is None:
        with pytest.raises(RecipeError, match="local engine implements"):
            build_launch(auto, nodes=["localhost"], gpus_per_node=1)


def test_plan_counts_conversation_tokens_with_the_template(write_recipe, conversation_corpus, tiny_model):
    from astrollama.train.planner import _dataset_lengths

    r = write_recipe(
        SFT_RECIPE.format(model=tiny_model, data=conversation_corpus, template="chatml", engine="local")
    )
    p = subprocess.run(
        [sys.executable, "-m", "astrollama.cli", "train", "plan", str(r)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    convs = read_conversation_dir(conversation_corpus)
    lengths = [len(encode_conversation(c, tok, "chatml")[0]) for c in convs]
    assert _dataset_lengths(conversation_corpus, str(tiny_model), "chatml") == lengths
    assert f"{sum(lengths):,}" in p.stdout or str(sum(lengths)) in p.stdout, p.stdout


def test_shard_writer_writes_conversation_shards(tmp_path):
    convs = make_conversations(30, seed=5)
    with ShardWriter(tmp_path / "c", kind="conversation", max_docs=12) as w:
        for c in convs:
            w.add(c)
    assert [p.name for p in w.written] == [f"shard-{i:05d}.json" for i in range(3)]
    assert read_conversation_dir(tmp_path / "c") == convs


LMFLOW_CHECK = textwrap.dedent("""
    import json, sys
    from transformers import AutoTokenizer
    from lmflow.args import DatasetArguments
    from lmflow.tokenization.hf_decoder_model import conversation_tokenize_function
    from lmflow.utils.conversation_template import PRESET_TEMPLATES
    convs, models, templates = json.loads(sys.stdin.read())
    out = {"templates": sorted(PRESET_TEMPLATES)}
    for m in models:
        tok = AutoTokenizer.from_pretrained(m, padding_side="right")
        for t in templates:
            args = DatasetArguments(dataset_path=None, disable_group_texts=False, block_size=4096)
            batch = {"messages": [c["messages"] for c in convs], "system": [c["system"] for c in convs]}
            enc = conversation_tokenize_function(batch, args, tok, ["messages", "system"], PRESET_TEMPLATES[t])
            out[m + "|" + t] = [enc["input_ids"], enc["labels"]]
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.lmflow
def test_local_templates_equal_lmflow_token_for_token(lmflow_python, lmflow_env, tiny_chat_model, smollm2):
    """Our encoder vs LMFlow's own template objects and tokenize function, on two tokenizers (the
    tiny one with chatml markers added, SmolLM2's with its own), every locally implemented template;
    and our list of LMFlow template names is LMFlow's."""
    from transformers import AutoTokenizer

    convs = [CONV, CONV | {"system": ""}, *make_conversations(10, seed=9)]
    models = [str(tiny_chat_model), str(smollm2)]
    p = subprocess.run(
        [str(lmflow_python), "-c", LMFLOW_CHECK],
        input=json.dumps([convs, models, sorted(LOCAL_TEMPLATES)]),
        env=lmflow_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.split("RESULT", 1)[1])
    assert set(got.pop("templates")) == LMFLOW_TEMPLATES
    assert len(got) == 2 * len(LOCAL_TEMPLATES)
    for key, (ids, labels) in got.items():
        model, template = key.rsplit("|", 1)
        tok = AutoTokenizer.from_pretrained(model, padding_side="right")
        mine = [encode_conversation(c, tok, template) for c in convs]
        assert [m[0] for m in mine] == ids, key
        assert [m[1] for m in mine] == labels, key
        assert all(IGNORE_INDEX in lab and any(t != IGNORE_INDEX for t in lab) for lab in labels)


def test_demo_sft_recipe_points_at_the_demo_cpt_output():
    r = load_recipe(REPO / "recipes" / "demo-smollm2-135m-sft.yaml")
    cpt = load_recipe(REPO / "recipes" / "demo-smollm2-135m.yaml")
    assert Path(r.model.name_or_path) == Path(
        "work/demo/run/checkpoints"
    )  # demo.py's CPT run_dir + /checkpoints
    assert (
        r.data.conversation_template == "chatml"
        and r.launch.engine == "local"
        and cpt.launch.engine == "local"
    )


@pytest.mark.parametrize(
    "name",
    [
        "astrollama-2-7b-chat_aic",
        "astrollama-3-8b-chat_aic",
        "astrollama-3-8b-chat_summary",
        "astrollama-2-70b-chat_aic",
        "astrosage-8b-sft",
    ],
)
def test_sft_recipes_plan_and_dry_run(name, in_repo):
    """Every paper-scale SFT recipe plans (known architecture, memory fits its allocation) and
    dry-runs with the template flags on its own allocation."""
    from astrollama.train.planner import plan

    r = load_recipe(REPO / "recipes" / f"{name}.yaml")
    report = plan(r, tokens=3.0e7)
    assert report.batch.global_batch_size == r.batch.global_batch_size
    assert "fits" in report.render()
    nodes = [f"node{i:03d}" for i in range(r.launch.nodes)]
    launch = build_launch(
        r, nodes=nodes, gpus_per_node=r.launch.gpus_per_node, dry_run=True, check_data=False
    )
    argv = launch.commands[0]
    assert argv[argv.index("--conversation_template") + 1] == r.data.conversation_template
    assert argv[argv.index("--learning_rate") + 1] == repr(r.trainer["learning_rate"])
