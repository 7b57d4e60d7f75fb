"""CUDA-graph training steps equal eager ones (needs a GPU; skipped elsewhere).

Two copies of a network from the same initialisation take the same optimiser steps on the same batches, one
eagerly and one through :class:`~neuralannot_cli.train.cuda_graphs.LossRunner` (forward and backward
replayed from a captured graph); losses and weights must agree up to the GPU's float noise. The bookkeeping
(one capture per signature, buffers restored, fallback) is tested on the CPU in ``tests/test_train_steps.py``.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from neuralannot_cli.losses import LossWeights  # noqa: E402
from neuralannot_cli.train.cuda_graphs import LossRunner  # noqa: E402
from neuralannot_cli.train.steps import Stage1Loss, Stage2Loss, stage1_inputs, stage2_inputs  # noqa: E402
from tests.test_train_steps import S, _stage2_batch  # noqa: E402

B, STEPS = 8, 6


@pytest.fixture(scope="module")
def body_model(standin_dir):
    from neuralannot_cli.body import load_body_model

    bm = load_body_model("smplx", model_dir=standin_dir, device="cuda")
    for p in bm.parameters():
        p.requires_grad_(False)
    return bm


def _train(net, make_loss, batches, runner):
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, foreach=True)
    losses = []
    for key, inputs in batches:
        opt.zero_grad(set_to_none=True)
        total, parts = runner(key, lambda k=key: make_loss(net, k), inputs)
        total.backward()
        opt.step()
        losses.append(float(total))
    return losses


def _compare(net, make_loss, batches):
    eager_net, graph_net = net, copy.deepcopy(net)
    eager = LossRunner(False)
    graphed = LossRunner(True)
    eager_losses = _train(eager_net, make_loss, batches, eager)
    graph_losses = _train(graph_net, make_loss, batches, graphed)
    assert not graphed.failed and len(graphed.graphs) == 1
    assert graphed.graph_calls == STEPS and eager.eager_calls == STEPS
    torch.testing.assert_close(torch.tensor(graph_losses), torch.tensor(eager_losses), rtol=1e-4, atol=1e-6)
    assert eager_losses[-1] != eager_losses[0]  # the steps did something
    for (name, a), b in zip(eager_net.state_dict().items(), graph_net.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5, msg=name)
        else:
            assert torch.equal(a, b), name  # BatchNorm's num_batches_tracked: one update per step


def test_stage2_graph_steps_equal_eager_steps(body_model):
    from neuralannot_cli.nets.heads import Stage2Net

    torch.manual_seed(0)
    net = Stage2Net("body", 18, None).cuda()
    weights = LossWeights.for_part("body")
    gen = torch.Generator().manual_seed(0)
    batches = [stage2_inputs(_stage2_batch(gen, False, b=B), torch.device("cuda"), with_root=False)
               for _ in range(STEPS)]

    def make_loss(n, groups):
        return Stage2Loss(n, None, body_model, "body", S, weights, groups, with_root=False)

    _compare(net, make_loss, batches)


def test_stage1_graph_steps_equal_eager_steps(body_model):
    from neuralannot_cli.nets.heads import Stage1Net

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    rest = torch.randn(5, 3, generator=gen)
    net = Stage1Net("body", 18, 17, root_frame=((0, 1, 4, 7, 8), rest), canonical_joints=True).cuda()
    weights = LossWeights.for_part("body")
    batches = [("h36m_17", stage1_inputs({"image": torch.randn(B, 3, S, S, generator=gen),
                                          "joints_3d_cam_mm": torch.randn(B, 17, 3, generator=gen) * 300
                                          + torch.tensor([0.0, 0.0, 4000.0]),
                                          "has_3d": torch.rand(B, generator=gen) > 0.2},
                                         torch.device("cuda"), net=net, joint_set="h36m_17"))
               for _ in range(STEPS)]
    assert len(batches[0][1]) == 4  # the root frame is an input, computed outside the graph

    def make_loss(n, joint_set):
        return Stage1Loss(n, body_model, "body", joint_set, weights)

    _compare(net, make_loss, batches)
