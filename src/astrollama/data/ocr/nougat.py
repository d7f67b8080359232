"""Nougat through transformers' port, plus the nougat-ocr behaviour the port lacks.

transformers ships Nougat as ``VisionEncoderDecoderModel`` (Donut-Swin encoder, MBart decoder) and
``NougatProcessor`` (image processor + tokenizer with ``post_process_generation``). The original
``nougat-ocr`` CLI adds two things on top of plain ``generate``, re-created here from their
described behaviour:

* **Repetition early stop.** Nougat sometimes loops (~1.5% of pages): it keeps emitting the same
  few tokens until ``max_length``. In a loop the *max logit* of each step follows a periodic
  pattern, so its spread over a short window stops changing. :class:`RepetitionGuard` watches,
  per sequence, ``d_t = var(max logit over the last SHORT steps) / SHORT`` and stops the sequence
  when ``var(d over the last WINDOW steps) < THRESHOLD``; the loop is taken to start where that
  window starts. Defaults ``SHORT=15``, ``WINDOW=200``, ``THRESHOLD=0.015`` (nougat-ocr's values).
  It is a ``LogitsProcessor`` (observes every step's scores, changes nothing) plus a
  ``StoppingCriteria`` (ends only the looping rows; the others keep generating).
* **Missing-page markers** in the ``.mmd``, as nougat-ocr writes them:
  ``[MISSING_PAGE_FAIL:n]`` page n looped after some real output (the page is dropped, as
  nougat-ocr drops it) or its generation raised; ``[MISSING_PAGE_EMPTY:n]`` page n produced
  nothing (empty output, or a loop from the very start, e.g. a blank or cover page);
  ``[MISSING_PAGE_POST]`` post-processing cut a repeated/hallucinated tail (reference lists) from
  a page, which is kept.

Pages are processed in fixed-size batches of a deterministic plan over the whole shard (see
:func:`plan_batches`), so a resumed run feeds every page through exactly the same batch as an
uninterrupted run and produces identical output.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: nougat-ocr's failure-detection constants (short window, long window, threshold).
SHORT_WINDOW = 15
WINDOW = 200
THRESHOLD = 0.015
#: A loop that starts within this many tokens means the page produced nothing usable.
MIN_CONTENT_TOKENS = 30
#: nougat-ocr renders pages at 96 dpi.
DEFAULT_DPI = 96


def marker_fail(page: int) -> str:
    return f"[MISSING_PAGE_FAIL:{page}]"


def marker_empty(page: int) -> str:
    return f"[MISSING_PAGE_EMPTY:{page}]"


MARKER_POST = "[MISSING_PAGE_POST]"


@dataclasses.dataclass(frozen=True)
class RepetitionConfig:
    """Parameters of the repetition early stop (``enabled=False`` is nougat's ``--no-skipping``)."""

    enabled: bool = True
    short_window: int = SHORT_WINDOW
    window: int = WINDOW
    threshold: float = THRESHOLD
    min_content_tokens: int = MIN_CONTENT_TOKENS

    def __post_init__(self) -> None:
        if self.short_window < 2 or self.window < 2 or self.threshold <= 0:
            raise ValueError(f"bad repetition config {self}: windows >= 2, threshold > 0")


class RepetitionGuard:
    """Per-sequence loop detector for ``generate`` (see the module docstring for the rule).

    Use :attr:`processor` in ``logits_processor`` and :attr:`criterion` in ``stopping_criteria``
    of the same ``generate`` call; afterwards :meth:`onsets` gives, per row, the generated-token
    index where the loop started (``None`` for rows that did not loop). Everything stays on the
    scores' device (no host sync per step).
    """

    def __init__(
        self, config: RepetitionConfig = RepetitionConfig(), *, finished_ids: Sequence[int] = ()
    ) -> None:
        """``finished_ids``: tokens (EOS, pad) after which a row is finished and never flagged."""
        from transformers import LogitsProcessor, StoppingCriteria

        self.config = config
        self.finished_ids = list(finished_ids)
        self.step = 0
        self._maxes: Any = None  # (B, short_window) recent max logits
        self._disp: Any = None  # (B, window) recent local dispersions
        self._flag_step: Any = None  # (B,) step at which the row was flagged, -1 if never
        guard = self

        class _Observe(LogitsProcessor):
            def __call__(self, input_ids, scores):
                guard.observe(scores, input_ids)
                return scores

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return guard.flagged(input_ids.device)

        self.processor = _Observe()
        self.criterion = _Stop()

    def observe(self, scores: Any, input_ids: Any = None) -> None:
        """Record one generation step's scores (B, vocab); ``input_ids`` (B, t) tells finished rows."""
        import torch

        cfg = self.config
        m = scores.detach().max(dim=-1).values.float()
        b = m.shape[0]
        if self._maxes is None:
            self._maxes = m.new_zeros((b, 0))
            self._disp = m.new_zeros((b, 0))
            self._flag_step = torch.full((b,), -1, dtype=torch.long, device=m.device)
        self.step += 1
        self._maxes = torch.cat([self._maxes, m[:, None]], dim=1)[:, -cfg.short_window :]
        if self._maxes.shape[1] < cfg.short_window:
            return
        d = self._maxes.var(dim=1) / cfg.short_window
        self._disp = torch.cat([self._disp, d[:, None]], dim=1)[:, -cfg.window :]
        if self._disp.shape[1] < cfg.window:
            return
        looping = self._disp.var(dim=1) < cfg.threshold
        if input_ids is not None and self.finished_ids:
            last = input_ids[:, -1]
            for tok in self.finished_ids:
                looping &= last != tok
        newly = looping & (self._flag_step < 0)
        self._flag_step = torch.where(newly, torch.full_like(self._flag_step, self.step), self._flag_step)

    def flagged(self, device: Any = None) -> Any:
        """(B,) bool: rows flagged as looping so far."""
        import torch

        if self._flag_step is None:
            return torch.zeros((1,), dtype=torch.bool, device=device)
        return self._flag_step >= 0

    def onsets(self) -> list[int | None]:
        """Per row: where the loop began (start of the flagged window: a lower bound, since a window
        already passes the threshold when most of it, not all, is inside the loop), or None."""
        if self._flag_step is None:
            return []
        span = self.config.window + self.config.short_window - 1
        return [None if s < 0 else max(0, s - span) for s in self._flag_step.tolist()]


@dataclasses.dataclass
class PageOutput:
    """One page's generation: decoded text and what stopped it."""

    text: str
    n_tokens: int
    eos: bool
    loop_onset: int | None = None
    error: str | None = None


@dataclasses.dataclass
class PageMarkdown:
    """One page as it goes into the ``.mmd``: text (or a marker) and a status."""

    page: int
    text: str
    status: str  # ok | post | max-length | empty | repetition | fail


def page_markdown(
    out: PageOutput, page: int, config: RepetitionConfig, postprocess: Any = None
) -> PageMarkdown:
    """Turn one page's generation into markdown or a missing-page marker (nougat-ocr's rules)."""
    if out.error is not None:
        return PageMarkdown(page, marker_fail(page), "fail")
    if config.enabled and out.loop_onset is not None:
        if out.loop_onset < config.min_content_tokens:
            return PageMarkdown(page, marker_empty(page), "empty")
        return PageMarkdown(page, marker_fail(page), "repetition")
    text = postprocess(out.text) if postprocess is not None else out.text
    text = text.strip()
    if not text or text == MARKER_POST:
        return PageMarkdown(page, marker_empty(page), "empty")
    if MARKER_POST in text:
        return PageMarkdown(page, text, "post")
    return PageMarkdown(page, text, "ok" if out.eos else "max-length")


def join_pages(pages: Sequence[PageMarkdown]) -> str:
    """The document: pages in order, separated by a blank line, no runs of blank lines."""
    text = "\n\n".join(p.text for p in pages).strip()
    return re.sub(r"\n{3,}", "\n\n", text) + "\n"


def plan_batches(page_counts: Sequence[int], batch_size: int) -> list[list[tuple[int, int]]]:
    """Fixed batches of ``(document index, page index)`` over all documents of a shard, in order.

    The plan depends only on the page counts, so a rerun after a kill processes each remaining
    page in the same batch (same padding, same numerics) as the uninterrupted run.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    flat = [(d, p) for d, n in enumerate(page_counts) for p in range(n)]
    return [flat[i : i + batch_size] for i in range(0, len(flat), batch_size)]


class NougatTransformers:
    """A Nougat checkpoint (``facebook/nougat-small``/``-base`` layout) loaded with transformers.

    ``device``: ``cpu``, ``cuda``, ``cuda:1``... (default: cuda when available). ``dtype``:
    ``bfloat16`` on CUDA by default (as nougat-ocr), ``float32`` on CPU.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str],
        *,
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int | None = None,
        repetition: RepetitionConfig = RepetitionConfig(),
        postprocess: bool = True,
    ) -> None:
        import torch
        from transformers import (
            AutoImageProcessor,
            NougatProcessor,
            NougatTokenizer,
            VisionEncoderDecoderModel,
        )

        path: str | Path = Path(checkpoint)
        if Path(checkpoint).exists():
            if not (Path(checkpoint) / "config.json").is_file():
                raise FileNotFoundError(f"{checkpoint}: not a Nougat checkpoint directory (no config.json)")
        elif re.fullmatch(r"[\w.-]+/[\w.-]+", str(checkpoint)):
            path = str(checkpoint)  # a hub id (facebook/nougat-small): needs the hub or its cache
        else:
            raise FileNotFoundError(f"{checkpoint}: no such Nougat checkpoint directory")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or ("bfloat16" if self.device.type == "cuda" else "float32")
        self.dtype = getattr(torch, dtype)
        # explicit classes: some transformers 5.x releases resolve a vision-encoder-decoder
        # checkpoint's tokenizer to a generic one without Nougat's post-processing
        self.tokenizer = NougatTokenizer.from_pretrained(path)
        try:
            images = AutoImageProcessor.from_pretrained(path)
        except ImportError:  # releases whose auto class insists on torchvision: the PIL one needs none
            from transformers.models.nougat.image_processing_pil_nougat import NougatImageProcessorPil

            images = NougatImageProcessorPil.from_pretrained(path)
        self.processor = NougatProcessor(image_processor=images, tokenizer=self.tokenizer)
        self.model = VisionEncoderDecoderModel.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        dec = self.model.config.decoder
        limit = int(getattr(dec, "max_position_embeddings", 4096))
        self.max_new_tokens = min(max_new_tokens or limit, limit - 1)  # the start token takes a position
        self.repetition = repetition
        self._postprocess = self._make_postprocess() if postprocess else None
        log.info(
            "Nougat (transformers) %s on %s/%s: max_new_tokens=%d, repetition stop %s",
            path,
            self.device,
            dtype,
            self.max_new_tokens,
            f"window={repetition.window} short={repetition.short_window} threshold={repetition.threshold}"
            if repetition.enabled
            else "off",
        )

    def _make_postprocess(self) -> Any:
        """``post_process_generation`` (needs nltk + Levenshtein); skipped with a warning without them."""
        tok = self.tokenizer
        try:
            tok.post_process_generation("check")
        except ImportError as exc:
            log.warning("Nougat post-processing disabled: %s (pip install nltk levenshtein)", exc)
            return None

        def run(text: str) -> str:
            return tok.post_process_generation(text, fix_markdown=True)  # nougat-ocr default (--markdown)

        return run

    def generate(self, images: Sequence[Any]) -> list[PageOutput]:
        """Generate one batch of page images (PIL). Deterministic (greedy)."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        pixels = self.processor(images=list(images), return_tensors="pt").pixel_values
        pixels = pixels.to(self.device, self.dtype)
        tok = self.tokenizer
        guard = (
            RepetitionGuard(self.repetition, finished_ids=[tok.eos_token_id, tok.pad_token_id])
            if self.repetition.enabled
            else None
        )
        with torch.inference_mode():
            out = self.model.generate(
                pixel_values=pixels,
                min_length=1,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                use_cache=True,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
                decoder_start_token_id=self.model.config.decoder_start_token_id,
                bad_words_ids=[[tok.unk_token_id]],
                logits_processor=LogitsProcessorList([guard.processor]) if guard else None,
                stopping_criteria=StoppingCriteriaList([guard.criterion]) if guard else None,
            )
        seqs = out.cpu()
        onsets = guard.onsets() if guard else [None] * len(images)
        results = []
        for row, onset in zip(seqs.tolist(), onsets, strict=True):
            gen = row[1:]  # drop the decoder start token
            end = gen.index(tok.eos_token_id) if tok.eos_token_id in gen else None
            # MBart's forced_eos_token_id puts EOS at the length limit: that is a cut, not an end
            eos = end is not None and end < self.max_new_tokens - 1
            if end is not None:
                gen = gen[:end]
            gen = [t for t in gen if t != tok.pad_token_id]
            results.append(PageOutput(tok.decode(gen, skip_special_tokens=True), len(gen), eos, onset))
        return results

    def generate_safe(self, images: Sequence[Any]) -> list[PageOutput]:
        """:meth:`generate`, retrying page by page if the batch raises; failing pages get an error."""
        try:
            return self.generate(images)
        except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the shard
            if len(images) == 1:
                return [PageOutput("", 0, False, error=f"{type(exc).__name__}: {exc}")]
            log.warning("batch of %d pages failed (%s); retrying one by one", len(images), exc)
            return [r for img in images for r in self.generate_safe([img])]

    def page_markdown(self, out: PageOutput, page: int) -> PageMarkdown:
        return page_markdown(out, page, self.repetition, self._postprocess)


# ============================================================================ random checkpoints

#: Architectures for randomly initialised checkpoints. ``small``/``base`` follow nougat-ocr's
#: published architecture (Swin encoder depths 2-2-14-2, embed 128, window 7, 896x672 input;
#: MBart decoder d_model 1024, 4 or 10 layers, 50k vocabulary) so that a random checkpoint costs
#: what the real one costs: for throughput checks on machines that cannot download the weights.
#: ``tiny`` is for tests (seconds on a CPU).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        image_size=[64, 48],
        embed_dim=32,
        depths=[1, 1],
        num_heads=[1, 2],
        window_size=4,
        d_model=64,
        decoder_layers=1,
        heads=2,
        ffn=128,
        max_positions=256,
        vocab=400,
    ),
    "small": dict(
        image_size=[896, 672],
        embed_dim=128,
        depths=[2, 2, 14, 2],
        num_heads=[4, 8, 16, 32],
        window_size=7,
        d_model=1024,
        decoder_layers=4,
        heads=16,
        ffn=4096,
        max_positions=3584,
        vocab=50000,
    ),
    "base": dict(
        image_size=[896, 672],
        embed_dim=128,
        depths=[2, 2, 14, 2],
        num_heads=[4, 8, 16, 32],
        window_size=7,
        d_model=1024,
        decoder_layers=10,
        heads=16,
        ffn=4096,
        max_positions=4096,
        vocab=50000,
    ),
}

_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "[START_REF]", "[END_REF]", "[IMAGE]"]
_TOKENIZER_TEXT = (
    "# Title\n\n###### Abstract\n\nWe measure the rotation curve of the galaxy and find $v \\propto r^{0.5}$.\n\n"
    "## 1 Introduction\n\nDark matter halos, supernovae and quasars [1]. \\begin{table}\\begin{tabular}{l l}"
    " a & b \\\\ \\end{tabular}\\end{table}\n\n## 5 Conclusions\n\n* [1] Author A. 2020, ApJ, 900, 1\n"
)


def random_nougat(
    dest: str | os.PathLike[str], preset: str = "tiny", *, seed: int = 0, texts: Sequence[str] | None = None
) -> Path:
    """Save a randomly initialised Nougat checkpoint (model + NougatProcessor) to ``dest``.

    The tokenizer is a BPE trained here with Nougat's pre-tokenizer on ``texts``, padded with
    filler tokens up to the preset's vocabulary size. The output embeddings are untied so that a
    random model emits varied tokens (a tied random decoder just repeats its input token).
    Random weights emit garbage: use it for structure and throughput, never for text.
    """
    import torch
    from tokenizers import pre_tokenizers, trainers
    from transformers import (
        DonutSwinConfig,
        MBartConfig,
        NougatProcessor,
        NougatTokenizer,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
    )

    try:  # transformers >= 5.2x: PIL backend (needs no torchvision); older: the only processor
        from transformers.models.nougat.image_processing_pil_nougat import (
            NougatImageProcessorPil as ImageProcessor,
        )
    except ImportError:
        from transformers import NougatImageProcessor as ImageProcessor

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; one of {', '.join(PRESETS)}")
    cfg = PRESETS[preset]
    out = Path(dest)
    tok = NougatTokenizer()
    backend = tok._tokenizer
    backend.no_padding()
    backend.no_truncation()
    trainer = trainers.BpeTrainer(
        vocab_size=min(cfg["vocab"], 2000),
        special_tokens=_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(texts or [_TOKENIZER_TEXT] * 4), trainer)
    filler = cfg["vocab"] - backend.get_vocab_size()
    if filler > 0:  # regular (non-special) tokens so that decoding them yields text
        backend.add_tokens([f"tok{i}" for i in range(filler)])
    tok.save_pretrained(out)
    tok = NougatTokenizer.from_pretrained(out)
    torch.manual_seed(seed)
    h, w = cfg["image_size"]
    enc = DonutSwinConfig(
        image_size=[h, w],
        patch_size=4,
        embed_dim=cfg["embed_dim"],
        depths=cfg["depths"],
        num_heads=cfg["num_heads"],
        window_size=cfg["window_size"],
    )
    dec = MBartConfig(
        # encoder_layers is unused by the decoder-only MBart, but transformers sizes the KV cache
        # from it (MBartConfig maps num_hidden_layers to encoder_layers): keep it >= decoder_layers
        vocab_size=len(tok),
        d_model=cfg["d_model"],
        decoder_layers=cfg["decoder_layers"],
        encoder_layers=cfg["decoder_layers"],
        decoder_attention_heads=cfg["heads"],
        decoder_ffn_dim=cfg["ffn"],
        max_position_embeddings=cfg["max_positions"],
        is_decoder=True,
        add_cross_attention=True,
        scale_embedding=True,
        add_final_layer_norm=True,
        tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    config.decoder_start_token_id = tok.bos_token_id
    config.pad_token_id = tok.pad_token_id
    config.eos_token_id = tok.eos_token_id
    config.tie_word_embeddings = False
    model = VisionEncoderDecoderModel(config)
    model.save_pretrained(out)
    NougatProcessor(
        image_processor=ImageProcessor(size={"height": h, "width": w}), tokenizer=tok
    ).save_pretrained(out)
    log.info(
        "random Nougat (%s, %.1fM parameters) -> %s",
        preset,
        sum(p.numel() for p in model.parameters()) / 1e6,
        out,
    )
    return out
