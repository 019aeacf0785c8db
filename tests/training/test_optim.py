"""build_adamw: decay only on matrices, the fused kernel, the same update as torch's loop AdamW."""

from __future__ import annotations

import torch
from torch import nn

from speechattn.training.optim import build_adamw


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Linear(8, 3))


def _loop_adamw(model: nn.Module, lr: float) -> torch.optim.AdamW:
    """torch's per-parameter loop AdamW with the same groups (the trainer's optimizer before)."""
    return torch.optim.AdamW(
        [{"params": [p for p in model.parameters() if p.dim() > 1], "weight_decay": 0.1},
         {"params": [p for p in model.parameters() if p.dim() <= 1], "weight_decay": 0.0}],
        lr=lr, foreach=False)


def test_weight_decay_only_on_matrices_and_frozen_parameters_left_out():
    model = _model(0)
    model[1].weight.requires_grad_(False)
    opt = build_adamw(model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.8, 0.98))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].bias), id(model[2].bias)}
    assert all(g["betas"] == (0.8, 0.98) for g in opt.param_groups)


def test_cpu_parameters_get_the_fused_kernel():
    opt = build_adamw(_model(0).parameters(), lr=1e-3, weight_decay=0.1)
    assert all(g["fused"] for g in opt.param_groups)


def test_fused_update_matches_the_loop_implementation():
    fused_model, loop_model = _model(1), _model(1)
    fused = build_adamw(fused_model.parameters(), lr=1e-2, weight_decay=0.1)
    loop = _loop_adamw(loop_model, 1e-2)
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        x, y = torch.randn(16, 6, generator=gen), torch.randint(0, 3, (16,), generator=gen)
        for model, opt in ((fused_model, fused), (loop_model, loop)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    moved = sum(float((a - b).detach().abs().sum()) for a, b in zip(fused_model.parameters(), _model(1).parameters()))
    assert moved > 0.1  # the models did train
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_state_of_a_loop_optimizer_resumes_in_the_fused_one():
    """A checkpoint written before the fused kernel (loop AdamW) still resumes."""
    old_model = _model(3)
    old = _loop_adamw(old_model, 1e-2)
    old_model(torch.randn(4, 6)).sum().backward()
    old.step()
    new_model = _model(3)
    new_model.load_state_dict(old_model.state_dict())
    new = build_adamw(new_model.parameters(), lr=1e-2, weight_decay=0.1)
    new.load_state_dict(old.state_dict())
    new_model(torch.randn(4, 6)).sum().backward()
    new.step()
    assert all(torch.isfinite(p).all() for p in new_model.parameters())
    assert int(new.state[new.param_groups[0]["params"][0]]["step"]) == 2
