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
