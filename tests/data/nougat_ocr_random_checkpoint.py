"""Build a tiny randomly initialised nougat-ocr checkpoint: RUN WITH THE nougat-ocr ENVIRONMENT'S python.

    /envs/ocr-nougat/bin/python tests/data/nougat_ocr_random_checkpoint.py OUT_DIR

Uses nougat-ocr's own ``NougatModel`` (timm Swin encoder + MBart decoder) with a BPE tokenizer
trained here, so the real ``nougat`` CLI runs offline: ``nougat PDF -o OUT -c OUT_DIR``. The
checkpoint directory has the five files ``nougat`` expects (fewer would trigger a download).
Random weights: the text is garbage; the special tokens' (tied) embeddings are zeroed so greedy
decoding emits ordinary tokens instead of looping on ``<s>``.
"""

import sys
from pathlib import Path

import torch
from nougat.model import NougatConfig, NougatModel
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    text = ["# Title\n\n## 1 Introduction\n\nThe galaxy rotation curve is flat. Dark matter halos [1].\n"] * 4
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(text, trainer)
    tk.save(str(out / "tokenizer.json"))
    torch.manual_seed(0)
    # Swin needs every stage's grid divisible by the window: 128x96 / patch 4 = 32x24, then 16x12.
    cfg = NougatConfig(
        input_size=[128, 96],
        window_size=4,
        encoder_layer=[1, 1],
        decoder_layer=1,
        max_length=40,
        max_position_embeddings=64,
        embed_dim=32,
        num_heads=[1, 2],
        hidden_dimension=64,
        name_or_path=str(out),
    )
    model = NougatModel(cfg)
    with torch.no_grad():
        model.decoder.model.model.decoder.embed_tokens.weight[:4] = 0
    model.save_pretrained(out, safe_serialization=False)  # .bin keeps the tied lm_head
    model.decoder.tokenizer.save_pretrained(out)
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
