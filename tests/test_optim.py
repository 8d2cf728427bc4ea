import pytest
import torch

from skillit_ray import config
from skillit_ray.train.optim import build_scheduler


def _lrs(schedule, warmup=2, total=10):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, warmup, total, schedule)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_linear_is_the_default_and_decays_to_zero_at_the_last_step():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert build_scheduler(opt, 2, 10).lr_lambdas[0](5) == _lrs("linear")[5]
    assert _lrs("linear") == pytest.approx(
        [0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8]
    )


def test_constant_holds_the_peak_after_warmup():
    assert _lrs("constant") == pytest.approx([0.5] + [1.0] * 9)


def test_cosine_decays_from_the_peak_to_zero():
    lrs = _lrs("cosine", total=10)
    assert lrs[:2] == pytest.approx([0.5, 1.0])
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:], strict=False))
    assert lrs[-1] == pytest.approx(0.5 * (1 - torch.cos(torch.tensor(torch.pi / 8)).item()))


def test_config_default_and_bad_schedule_named(tmp_path):
    assert config.TrainConfig().lr_schedule == "linear"
    path = tmp_path / "r.yaml"
    path.write_text("data: {generator: lego}\ntrain: {lr_schedule: step}\n")
    with pytest.raises(config.ConfigError, match="train.lr_schedule: unknown 'step'"):
        config.load(str(path), [])
