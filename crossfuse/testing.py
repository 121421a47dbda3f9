"""Helpers for plugin authors' tests: tiny backbones on disk and a short end-to-end fit.

>>> from crossfuse.testing import smoke_fit
>>> result = smoke_fit("finance-sentiment", tmp_path / "run")      # doctest: +SKIP
>>> result.report["splits"]["validation"]["macro_f1"]              # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence


def write_tiny_text_backbone(directory: str | Path, texts: Iterable[str] = (), hidden: int = 32) -> Path:
    """Save a random-init 2-layer BERT and a WordPiece tokenizer in Hugging Face layout.

    The vocabulary holds the special tokens, ASCII characters and every character of
    ``texts`` (so Chinese or any other script tokenizes without ``[UNK]``). The folder loads
    with ``--backbone DIR`` exactly like a downloaded model.
    """
    from transformers import BertConfig, BertModel

    from .backbones.text import tiny_vocab, wordpiece_tokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    extra = sorted({ch for text in texts for ch in text.lower() if not ch.isspace()} - set(vocab))
    vocab += extra + ["##" + ch for ch in extra]
    wordpiece_tokenizer(vocab).save_pretrained(str(directory))
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=hidden * 2, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(directory))
    return directory


def smoke_fit(task: str, output: str | Path, *, backbone: str = "tiny-bert", epochs: int = 1,
              overrides: Sequence[str] = (), **options: Any):
    """Run ``task`` briefly on a tiny backbone without progress bars; return the RunResult."""
    from .api import run

    return run(task, output=str(output), backbone=backbone, epochs=epochs, overrides=list(overrides),
               progress=False, **options)
