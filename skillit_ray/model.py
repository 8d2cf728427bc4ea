"""Build a transformers causal LM from a named preset plus config overrides, or a local folder.

Nothing is downloaded: presets are configs, and a folder is loaded with local_files_only.
"""

from __future__ import annotations

import logging

from skillit_ray.config import ModelConfig
from skillit_ray.errors import ConfigError

PRESETS: dict[str, tuple[str, dict]] = {
    "gpt2-tiny": ("gpt2", {"n_embd": 64, "n_layer": 2, "n_head": 2}),
    "gpt2-small-cpu": ("gpt2", {"n_embd": 128, "n_layer": 4, "n_head": 4}),
    "llama-tiny": (
        "llama",
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
        },
    ),
}


def build_config(cfg: ModelConfig, vocab_size: int, max_len: int):
    """The transformers config for a preset, sized to the data's vocabulary and length."""
    from transformers import AutoConfig

    if cfg.preset not in PRESETS:
        raise ConfigError(f"model.preset: unknown '{cfg.preset}'; available: {sorted(PRESETS)}")
    model_type, fields = PRESETS[cfg.preset]
    values = dict(fields)
    # Special ids must lie inside a small vocabulary; 0 is our pad symbol.
    values.update(vocab_size=vocab_size, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    values["n_positions" if model_type == "gpt2" else "max_position_embeddings"] = max(max_len, 8)
    values.update(cfg.overrides)
    conf = AutoConfig.for_model(model_type)
    for key, value in values.items():
        if not hasattr(conf, key) and key not in fields:
            raise ConfigError(f"model.overrides: '{model_type}' config has no field '{key}'")
        setattr(conf, key, value)
    if conf.vocab_size < vocab_size:
        raise ConfigError(
            f"model.overrides.vocab_size={conf.vocab_size} is smaller than the data's "
            f"vocabulary ({vocab_size})"
        )
    return conf


PADDING_NOTICE = "We strongly recommend passing in an `attention_mask`"


class _RightPaddingIsSafe(logging.Filter):
    """Drops transformers' "pass an attention_mask" warning. Our rows are padded on the right
    only (data/cache.py) and the models are causal, so no real token attends to a pad, and the
    loss masks the pads out: the warning (printed once per process for data whose rows end in
    the pad id, e.g. the sources corpus) is noise on the user's console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(PADDING_NOTICE)


def _quiet_padding_notice() -> None:
    log = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _RightPaddingIsSafe) for f in log.filters):
        log.addFilter(_RightPaddingIsSafe())


def build_model(cfg: ModelConfig, vocab_size: int, max_len: int):
    from transformers import AutoModelForCausalLM

    _quiet_padding_notice()

    if cfg.path:
        try:
            model = AutoModelForCausalLM.from_pretrained(cfg.path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"model.path '{cfg.path}': cannot load a local model: {exc}"
            ) from None
        if model.config.vocab_size < vocab_size:
            raise ConfigError(
                f"model.path '{cfg.path}': vocab_size {model.config.vocab_size} is smaller "
                f"than the data's vocabulary ({vocab_size})"
            )
    else:
        model = AutoModelForCausalLM.from_config(build_config(cfg, vocab_size, max_len))
    model.loss_type = "ForCausalLM"  # silences transformers' loss_type=None notice
    return model
