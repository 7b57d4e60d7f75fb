"""DDP with the gloo backend: 2 CPU processes, one training step each on different data, identical weights
afterwards, equal to the single-process step on the union of the data (the averaged gradient)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch

from neuralannot_cli.train.distributed import DistContext, setup_distributed


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _data(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(4, 6, generator=g), torch.randn(4, 3, generator=g)


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from neuralannot_cli.train.algorithm import _optimizer_step
    from neuralannot_cli.train.distributed import cleanup_distributed, unwrap, wrap_ddp

    torch.set_num_threads(1)  # 2 ranks on a 2-core box
    import faulthandler

    # a rank that hangs prints where (stderr, shown in the test's failure report) before the parent's 180-s kill
    faulthandler.dump_traceback_later(150, exit=False)
    ctx = setup_distributed("cpu")
    model = wrap_ddp(_tiny_model(), ctx)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = _data(rank)
    loss = ((model(x) - y) ** 2).mean()
    stepped = _optimizer_step(loss, model, opt, ctx)
    flat = torch.cat([p.detach().flatten() for p in unwrap(model).parameters()])
    torch.save({"flat": flat, "stepped": stepped, "enabled": ctx.enabled, "rank": ctx.rank}, Path(out_dir) / f"rank{rank}.pt")
    # release the DDP wrapper before the process group, as train() does (its DDP models are locals of the stages):
    # destroyed after destroy_process_group, at this function's exit, a rank hung in the destructor (stack dump
    # of 2026-11-27: inside _worker's teardown, rank files already written)
    del model, opt, loss
    cleanup_distributed(ctx)


def test_single_process_without_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = setup_distributed("cpu")
    assert ctx == DistContext(0, 1, 0, torch.device("cpu"), False)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        setup_distributed("cpu")


@pytest.mark.skipif(sys.platform == "win32", reason="gloo spawn test on POSIX")
def test_two_gloo_ranks_hold_identical_weights_after_a_step(tmp_path):
    import torch.multiprocessing as mp

    import time

    procs = mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False)
    deadline = time.monotonic() + 180.0  # a rank that dies must fail the test, never hang the suite
    while not procs.join(timeout=2.0):
        if time.monotonic() > deadline:
            for p in procs.processes:
                p.kill()
            pytest.fail("DDP ranks did not finish within 180 s (a rank hung in a collective)")
    r0 = torch.load(tmp_path / "rank0.pt")
    r1 = torch.load(tmp_path / "rank1.pt")
    assert r0["enabled"] and r1["enabled"] and r0["stepped"] and r1["stepped"]
    torch.testing.assert_close(r0["flat"], r1["flat"], rtol=0, atol=0)
    # reference: one process, the union of both ranks' data (mean loss over equal halves = averaged gradient)
    model = _tiny_model()
    before = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    (x0, y0), (x1, y1) = _data(0), _data(1)
    loss = ((model(torch.cat([x0, x1])) - torch.cat([y0, y1])) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    ref = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (ref - before).abs().max() > 1e-3  # the step did something
    torch.testing.assert_close(r0["flat"], ref, rtol=1e-5, atol=1e-6)
