"""The local engine's data semantics against hand computations with real tokenizers (LMFlow's rules).

LMFlow (docs/lmflow.md): the tokenizer adds BOS per document and no EOS is appended;
``disable_group_texts=True`` cuts each document to block_size and pads it (labels -100 on padding);
``False`` concatenates documents in groups of ``group_texts_batch_size`` and cuts consecutive
block_size chunks, dropping each group's remainder, with labels == input_ids.
"""

from __future__ import annotations

import shutil

import pytest
from transformers import AutoTokenizer

from astrollama.lmflow_data import write_text_only
from astrollama.train.engine import IGNORE_INDEX, DataArguments, build_blocks, parse_args, tokenize_and_group

DOCS = [
    "The galaxy rotation curve stays flat at large radii.",
    "Pulsars are neutron stars.",
    "Type Ia supernovae are standard candles used to measure the expansion of the Universe.",
]


@pytest.fixture(scope="module")
def tok(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


def by_hand(tok, doc: str) -> list[int]:
    """BOS + the document's tokens, no EOS: what LMFlow feeds for one text_only instance."""
    return [tok.bos_token_id, *tok(doc, add_special_tokens=False)["input_ids"]]


def test_bos_per_document_and_no_eos(tok):
    out = tokenize_and_group(DOCS, tok, block_size=4096, disable_group_texts=True)
    for doc, ids, mask in zip(DOCS, out["input_ids"], out["attention_mask"], strict=True):
        n = sum(mask)
        assert ids[:n] == by_hand(tok, doc)
        assert ids[0] == tok.bos_token_id and tok.eos_token_id not in ids[:n]


def test_packing_concatenates_and_drops_the_remainder(tok):
    lens = [len(by_hand(tok, d)) for d in DOCS]
    block = 7
    stream = [t for d in DOCS for t in by_hand(tok, d)]
    n_blocks = sum(lens) // block
    assert sum(lens) % block, "pick a block size that leaves a remainder, so dropping it is tested"
    out = tokenize_and_group(DOCS, tok, block_size=block, disable_group_texts=False)
    assert out["input_ids"] == [stream[i * block : (i + 1) * block] for i in range(n_blocks)]
    assert out["labels"] == out["input_ids"]  # no masking at document boundaries
    assert all(m == [1] * block for m in out["attention_mask"])
    # the second document's BOS sits mid-block: documents share blocks, no cross-document mask
    pos = lens[0]
    assert out["input_ids"][pos // block][pos % block] == tok.bos_token_id
    # the remainder (last sum(lens) % block tokens) is in no block
    assert sum(len(b) for b in out["input_ids"]) == sum(lens) - sum(lens) % block


def test_packing_groups_are_cut_separately(tok):
    """Groups of group_texts_batch_size documents: each group's remainder is dropped on its own."""
    lens = [len(by_hand(tok, d)) for d in DOCS]
    block = 5
    out = tokenize_and_group(DOCS, tok, block_size=block, disable_group_texts=False, group_texts_batch_size=2)
    first = (lens[0] + lens[1]) // block
    second = lens[2] // block
    assert len(out["input_ids"]) == first + second
    # the first block of group 2 starts at document 3's BOS, not with group 1's leftover tokens
    assert out["input_ids"][first] == by_hand(tok, DOCS[2])[:block]


def test_no_packing_cuts_and_pads_each_document(tok):
    lens = sorted(len(by_hand(tok, d)) for d in DOCS)
    block = (lens[0] + lens[-1]) // 2  # some documents longer, some shorter than a block
    out = tokenize_and_group(DOCS, tok, block_size=block, disable_group_texts=True)
    assert len(out["input_ids"]) == len(DOCS)  # one block per document, whatever its length
    for doc, ids, mask, labels in zip(
        DOCS, out["input_ids"], out["attention_mask"], out["labels"], strict=True
    ):
        full = by_hand(tok, doc)
        assert len(ids) == len(mask) == len(labels) == block
        if len(full) >= block:  # cut: everything past the first block of the document is lost
            assert ids == full[:block] and labels == full[:block] and mask == [1] * block
        else:  # padded on the right with the pad token, attention 0, label -100
            n = block - len(full)
            assert ids == full + [tok.pad_token_id] * n
            assert mask == [1] * len(full) + [0] * n
            assert labels == full + [IGNORE_INDEX] * n
    assert any(len(by_hand(tok, d)) > block for d in DOCS) and any(len(by_hand(tok, d)) < block for d in DOCS)


def test_no_packing_follows_the_tokenizer_padding_side(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model, padding_side="left")
    full = by_hand(tok, DOCS[1])
    out = tokenize_and_group([DOCS[1]], tok, block_size=len(full) + 3, disable_group_texts=True)
    assert out["input_ids"][0] == [tok.pad_token_id] * 3 + full
    assert out["labels"][0] == [IGNORE_INDEX] * 3 + full


def test_smollm2_tokenizer_adds_no_bos_so_documents_join_directly(smollm2):
    """SmolLM2's tokenizer adds no BOS: LMFlow (and so the engine) joins its documents with nothing between."""
    tok = AutoTokenizer.from_pretrained(smollm2)
    ids = [tok(d, add_special_tokens=False)["input_ids"] for d in DOCS]
    stream = [t for x in ids for t in x]
    block = 16
    out = tokenize_and_group(DOCS, tok, block_size=block, disable_group_texts=False)
    assert out["input_ids"] == [stream[i : i + block] for i in range(0, len(stream) - block + 1, block)]


def test_build_blocks_reads_an_lmflow_directory(tok, tmp_path):
    d = tmp_path / "ds"
    write_text_only(d / "a.json", DOCS[:2])
    write_text_only(d / "b.json", DOCS[2:])
    ds = build_blocks(str(d), tok, DataArguments(dataset_path=str(d), disable_group_texts=False), 6)
    expected = tokenize_and_group(DOCS, tok, block_size=6, disable_group_texts=False)
    assert [ds[i]["input_ids"] for i in range(len(ds))] == expected["input_ids"]


def test_unknown_flag_is_an_error(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="--no_such_flag"):
        parse_args(
            [
                "--model_name_or_path",
                str(tiny_model),
                "--dataset_path",
                str(tmp_path),
                "--output_dir",
                str(tmp_path / "o"),
                "--no_such_flag",
                "1",
            ]
        )


def test_engine_parses_every_flag_the_recipe_translation_emits(repo_root, tmp_path):
    """The same flags go to LMFlow's finetune.py and to the engine: every one must parse here."""
    from astrollama.train.batch import plan_batch
    from astrollama.train.lmflow import finetune_args
    from astrollama.train.recipe import load_recipe

    data = tmp_path / "train"
    write_text_only(data / "a.json", DOCS)
    for name in (
        "demo-smollm2-135m.yaml",
        "astrollama-2-7b-base_abstract.yaml",
        "astrollama-3-8b-base_summary.yaml",
    ):
        r = load_recipe(
            repo_root / "recipes" / name,
            [
                f"data.dataset_path={data}",
                "data.eval_dataset_path=null",
                "launch.deepspeed=null",
                "model.name_or_path=/models/m",
            ],
        )
        plan = plan_batch(r.batch.global_batch_size, 1, r.batch.max_micro_batch_size)
        flags = finetune_args(r, plan, output_dir=tmp_path / "out")
        model_args, data_args, training_args = parse_args(flags)
        assert data_args.block_size == r.data.block_size
        assert data_args.disable_group_texts is (not r.data.packing)
        assert model_args.use_lora is (r.model.lora is not None)
        assert training_args.per_device_train_batch_size == plan.per_device_train_batch_size
        assert training_args.average_tokens_across_devices is False


def test_lora_truncates_each_document_at_model_max_length_before_packing(tiny_model, tmp_path):
    """LMFlow tokenises with truncation=True under LoRA (and without packing): every document is cut
    at the tokenizer's model_max_length BEFORE the documents are concatenated; padding is right."""
    from astrollama.train.engine import ModelArguments, load_model, truncation_length

    tok = AutoTokenizer.from_pretrained(tiny_model, model_max_length=6)
    cut = [by_hand(tok, d)[:6] for d in DOCS]
    assert all(len(by_hand(tok, d)) > 6 for d in DOCS)
    out = tokenize_and_group(DOCS, tok, block_size=4, disable_group_texts=False, truncate_at=6)
    stream = [t for c in cut for t in c]
    assert out["input_ids"] == [stream[i : i + 4] for i in range(0, len(stream) // 4 * 4, 4)]
    packed = DataArguments(dataset_path="d", disable_group_texts=False)
    assert truncation_length(packed, ModelArguments(model_name_or_path="m", use_lora=True), tok) == 6
    assert truncation_length(packed, ModelArguments(model_name_or_path="m"), tok) is None  # full CPT: no cut
    unpacked = DataArguments(dataset_path="d", disable_group_texts=True)
    assert truncation_length(unpacked, ModelArguments(model_name_or_path="m"), tok) == 6
    left = tmp_path / "left-padded"  # a checkpoint whose tokenizer asks for left padding
    shutil.copytree(tiny_model, left)
    AutoTokenizer.from_pretrained(tiny_model, padding_side="left").save_pretrained(left)
    assert AutoTokenizer.from_pretrained(left).padding_side == "left"
    _, loaded = load_model(ModelArguments(model_name_or_path=str(left)))
    assert loaded.padding_side == "right"  # LMFlow's ModelArguments.padding_side default wins
