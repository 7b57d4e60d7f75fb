"""Training skips non-finite losses and gradients: weights and optimizer state stay exactly as they were."""

from __future__ import annotations

import copy

import torch

from neuralannot_cli.train.algorithm import _optimizer_step
from neuralannot_cli.train.distributed import DistContext

CTX = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), enabled=False)


def _model_and_opt():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(8, 4)
    assert _optimizer_step(model(x).square().mean(), model, opt, CTX)  # one good step: Adam state exists
    return model, opt, x


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_nan_loss_is_skipped_and_weights_untouched():
    model, opt, x = _model_and_opt()
    before, opt_before = copy.deepcopy(model), copy.deepcopy(opt.state_dict())
    loss = model(x).square().mean() * torch.tensor(float("nan"))
    assert not _optimizer_step(loss, model, opt, CTX)
    assert _same(model, before)
    assert opt.state_dict()["state"][0]["step"] == opt_before["state"][0]["step"]
    # a finite loss afterwards trains as usual
    assert _optimizer_step(model(x).square().mean(), model, opt, CTX)
    assert not _same(model, before)


def test_infinite_gradient_with_finite_loss_is_skipped():
    model, opt, x = _model_and_opt()
    before = copy.deepcopy(model)
    w = model.weight
    # sqrt at 0 has an infinite derivative while the loss value itself is finite
    loss = torch.sqrt((w - w.detach()).abs().sum()) + model(x).mean()
    assert torch.isfinite(loss)
    assert not _optimizer_step(loss, model, opt, CTX)
    assert _same(model, before)
    assert all(p.grad is None for p in model.parameters())
