import pytest
import torch

from skillit_ray.config import ModelConfig
from skillit_ray.errors import ConfigError
from skillit_ray.model import build_model


@pytest.mark.parametrize("preset", ["gpt2-tiny", "llama-tiny"])
def test_presets_sized_to_the_data(preset):
    m = build_model(ModelConfig(preset=preset), vocab_size=40, max_len=24)
    assert m.config.vocab_size == 40
    out = m(input_ids=torch.randint(0, 40, (2, 24)))
    assert out.logits.shape == (2, 24, 40)


def test_overrides_and_unknown_field():
    m = build_model(ModelConfig(preset="gpt2-tiny", overrides={"n_layer": 3}), 16, 8)
    assert m.config.n_layer == 3
    with pytest.raises(ConfigError, match="no field 'n_layerz'"):
        build_model(ModelConfig(preset="gpt2-tiny", overrides={"n_layerz": 3}), 16, 8)


def test_local_directory_round_trip(tmp_path):
    torch.manual_seed(0)
    m = build_model(ModelConfig(preset="gpt2-tiny"), 30, 16)
    m.save_pretrained(tmp_path / "m")
    loaded = build_model(ModelConfig(preset=None, path=str(tmp_path / "m")), 30, 16)
    m.eval(), loaded.eval()  # from_config builds in train mode (dropout on)
    x = torch.randint(0, 30, (1, 16))
    assert torch.allclose(m(input_ids=x).logits, loaded(input_ids=x).logits)
    with pytest.raises(ConfigError, match="smaller than the data's vocabulary"):
        build_model(ModelConfig(preset=None, path=str(tmp_path / "m")), 99, 16)


def test_padding_notice_is_dropped_other_warnings_kept():
    """Rows padded on the right (our only padding) under a causal model need no attention mask:
    transformers' notice about it is filtered out of the console, its other warnings are not."""
    import logging

    from transformers.utils import logging as hf_logging

    from skillit_ray.model import PADDING_NOTICE

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    log = logging.getLogger("transformers.modeling_utils")
    handler = Keep()
    log.addHandler(handler)
    try:
        hf_logging.warning_once.cache_clear()  # emitted once per process: make it emit again
        model = build_model(ModelConfig(preset="gpt2-tiny"), vocab_size=16, max_len=8)
        ids = torch.tensor([[3, 4, 5, 0], [3, 4, 0, 0]])  # right padding with pad id 0
        model(input_ids=ids)
        log.warning("another warning")
    finally:
        log.removeHandler(handler)
    assert not any(m.startswith(PADDING_NOTICE) for m in seen)
    assert "another warning" in seen
