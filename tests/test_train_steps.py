"""The stage-1 / stage-2 loss modules (``neuralannot_cli.train.steps``) and the CUDA-graph runner's bookkeeping.

A CUDA graph replays kernels; it cannot replay a host synchronisation (``.item()``, ``nonzero``, boolean-mask
indexing: output sizes that depend on values) nor re-upload host data (an index given as a Python list, a
``torch.tensor(...)`` built in the forward). ``_CaptureCheck`` flags both on the CPU, on the SECOND call of a
module (the first one may fill per-device caches, as the warm-up iterations of ``make_graphed_callables`` do
before its capture). The capture itself needs a GPU: ``tests/test_cuda_graphs.py``.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from neuralannot_cli.losses import LossWeights
from neuralannot_cli.train.cuda_graphs import LossRunner, input_signature
from neuralannot_cli.train.steps import (STAGE1_PARTS, STAGE2_PARTS, Stage1Loss, Stage2Loss, stage1_inputs,
                                         stage2_inputs)

aten = torch.ops.aten
_SYNC_OPS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default,
             aten.is_nonzero.default, aten.equal.default, aten.allclose.default, aten.unique_dim.default,
             aten._unique2.default, aten.unique_consecutive.default, aten.repeat_interleave.Tensor}
# linear algebra beyond norms and products may synchronise on a GPU (error checks, MAGMA, cuSOLVER workspaces)
_LINALG_OK = {"linalg_vector_norm", "linalg_matrix_norm", "linalg_cross", "linalg_vecdot"}


def _where() -> str:
    """``file:line`` of the innermost neuralannot_cli frame (what to fix)."""
    import traceback

    frames = [f for f in traceback.extract_stack() if "neuralannot_cli" in f.filename]
    return f" at {frames[-1].filename.rsplit('neuralannot_cli', 1)[-1]}:{frames[-1].lineno}" if frames else ""


class _CaptureCheck(TorchDispatchMode):
    """Records ops a CUDA graph cannot capture: host syncs, boolean-mask indexing, host data in the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.name().split("::")[-1].split(".")[0]
        if func in _SYNC_OPS or ("linalg" in name and name not in _LINALG_OK):
            self.problems.append(str(func) + _where())
        if func in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default):
            idx = args[1] if len(args) > 1 else []
            if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in idx):
                self.problems.append(f"{func} with a boolean mask{_where()}")
        return func(*args, **kwargs)

    @contextlib.contextmanager
    def host_data(self):
        """Also flag Python-list / numpy indices and tensors built from host data."""
        originals = {}

        def flag_index(name):
            orig = getattr(torch.Tensor, name)
            originals[(torch.Tensor, name)] = orig

            def wrapped(t, index, *rest):
                items = index if isinstance(index, tuple) else (index,)
                if any(isinstance(i, (list, np.ndarray)) for i in items):
                    self.problems.append(f"Tensor.{name} with a host index {type(index).__name__}{_where()}")
                return orig(t, index, *rest)

            setattr(torch.Tensor, name, wrapped)

        def flag_factory(owner, name):
            orig = getattr(owner, name)
            originals[(owner, name)] = orig

            def wrapped(*a, **k):
                if name != "as_tensor" or not isinstance(a[0] if a else k.get("data"), torch.Tensor):
                    self.problems.append(f"{name} from host data{_where()}")
                return orig(*a, **k)

            setattr(owner, name, wrapped)

        def flag_readback(name):
            orig = getattr(torch.Tensor, name)
            originals[(torch.Tensor, name)] = orig

            def wrapped(t, *a, **k):
                self.problems.append(f"Tensor.{name} (a device-to-host copy){_where()}")
                return orig(t, *a, **k)

            setattr(torch.Tensor, name, wrapped)

        flag_index("__getitem__")
        flag_index("__setitem__")
        for owner, name in ((torch, "tensor"), (torch, "as_tensor"), (torch, "from_numpy"),
                            (torch.Tensor, "new_tensor")):
            flag_factory(owner, name)
        for name in ("cpu", "numpy", "tolist"):
            flag_readback(name)
        try:
            yield self
        finally:
            for (owner, name), orig in originals.items():
                setattr(owner, name, orig)


def _check_capture_safe(module, inputs) -> list[str]:
    """Problems found on the second forward + backward of ``module(*inputs)``."""
    total, _ = module(*inputs)
    total.backward()  # first call: fills lazy caches
    check = _CaptureCheck()
    with check, check.host_data():
        total, parts = module(*inputs)
        total.backward()
    return check.problems


# ----------------------------------------------------------------------------------------------- fixtures


B, S = 4, 32


@pytest.fixture(scope="module")
def body_model(standin_dir):
    from neuralannot_cli.body import load_body_model

    bm = load_body_model("smplx", model_dir=standin_dir)
    for p in bm.parameters():
        p.requires_grad_(False)
    return bm


def _gt_mm(gen, b=B, j=17):
    return torch.randn(b, j, 3, generator=gen) * 300 + torch.tensor([0.0, 0.0, 4000.0])


def _stage1(body_model):
    from neuralannot_cli.nets.heads import Stage1Net

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    rest = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    net = Stage1Net("body", 18, 17, root_frame=((0, 1, 4, 7, 8), rest), canonical_joints=True)
    loss = Stage1Loss(net, body_model, "body", "h36m_17", LossWeights.for_part("body"))
    has = torch.ones(B)
    has[1] = 0  # a sample without 3D
    batch = {"image": torch.randn(B, 3, S, S, generator=gen), "joints_3d_cam_mm": _gt_mm(gen), "has_3d": has}
    return loss, stage1_inputs(batch, torch.device("cpu"), net=net, joint_set="h36m_17")


def _stage2_batch(gen, with_root: bool, b: int = B):
    """A collated stage-2 batch of random values: ``b`` aux (``h36m_17``, sample 2 of 4 without 3D) + ``b`` target."""
    def group(jset, j, is_target):
        g = {"image": torch.randn(b, 3, S, S, generator=gen), "focal_crop_px": torch.full((b, 2), 40.0),
             "princpt_crop_px": torch.full((b, 2), 16.0),
             "keypoints_2d_crop_px": torch.rand(b, j, 2, generator=gen) * S,
             "keypoints_conf": (torch.rand(b, j, generator=gen) > 0.2).float(), "joint_set": [jset] * b}
        if not is_target:
            g.update({"joints_3d_cam_mm": _gt_mm(gen, b=b, j=j), "has_3d": torch.arange(b) % 4 != 2,
                      "pose_rotvecs_star": 0.2 * torch.randn(b, 21, 3, generator=gen)})
            if with_root:
                g.update({"cam_aug_rotmat": torch.eye(3).expand(b, 3, 3).clone(),
                          "root_rotvec_star": torch.randn(b, 3, generator=gen)})
        return g

    return {"aux": [group("h36m_17", 17, False)], "target": group("coco_wholebody_133", 23, True)}


def _stage2(body_model, *, with_root: bool, prior=None):
    from neuralannot_cli.nets.heads import Stage2Net

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    net = Stage2Net("body", 18, None if prior is None else prior.code_dim)
    weights = LossWeights.for_part("body", w_root=1.0 if with_root else 0.0)
    groups, inputs = stage2_inputs(_stage2_batch(gen, with_root), torch.device("cpu"), with_root=with_root)
    return Stage2Loss(net, prior, body_model, "body", S, weights, groups, with_root=with_root), inputs


# -------------------------------------------------------------------------------------------------- tests


def test_capture_check_flags_syncs_masks_host_data_and_linalg():
    """The checker itself: each capture hazard is reported (so a clean report means something)."""

    class Bad(torch.nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.kind = kind
            self.w = torch.nn.Parameter(torch.ones(3))

        def forward(self, x):
            y = x * self.w
            if self.kind == "item":
                y = y * float(y.sum())
            elif self.kind == "mask":
                y = y[y > 0].sum() * torch.ones(3)
            elif self.kind == "list":
                y = y[:, [0, 2, 1]]
            elif self.kind == "tensor":
                y = y * torch.tensor([1.0, 2.0, 3.0])
            elif self.kind == "tolist":
                y = y * len(y.detach().tolist())
            elif self.kind == "linalg":
                y = y * torch.linalg.det(torch.eye(3) + y.detach()[:1].T @ y.detach()[:1])
            return y.sum(), y.detach()

    x = torch.randn(2, 3)
    assert _check_capture_safe(Bad("none"), (x,)) == []
    for kind in ("item", "mask", "list", "tensor", "tolist", "linalg"):
        assert _check_capture_safe(Bad(kind), (x,)), kind


def test_stage1_loss_is_capture_safe(body_model):
    loss, inputs = _stage1(body_model)
    assert len(inputs) == 4  # the root frame, computed outside the loss module
    assert _check_capture_safe(loss, inputs) == []
    # computed inside (no 4th input), its 3x3 solve is flagged: that is why stage1_inputs computes it
    assert any("linalg" in p for p in _check_capture_safe(loss, inputs[:3]))


def test_stage1_precomputed_root_frame_changes_nothing(body_model):
    """Stage1Net with the frame given (stage1_inputs) = with the frame computed in its forward, values and
    gradients, bit for bit."""
    loss, inputs = _stage1(body_model)
    results = []
    for args in (inputs, inputs[:3]):
        loss.zero_grad(set_to_none=True)
        total, parts = loss(*args)
        total.backward()
        results.append((total.detach(), parts, [p.grad.clone() for p in loss.model.parameters() if p.grad is not None]))
    (t1, p1, g1), (t2, p2, g2) = results
    assert torch.equal(t1, t2) and torch.equal(p1, p2) and len(g1) == len(g2) > 0
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))
    torch.testing.assert_close(inputs[3] @ inputs[3].transpose(1, 2), torch.eye(3).expand(B, 3, 3))


@pytest.mark.parametrize("with_root", [False, True])
def test_stage2_loss_is_capture_safe(body_model, with_root):
    loss, inputs = _stage2(body_model, with_root=with_root)
    assert _check_capture_safe(loss, inputs) == []


def test_stage2_loss_with_a_learned_prior_is_capture_safe(body_model):
    from neuralannot_cli.nets.prior import train_vposer

    torch.manual_seed(0)
    prior = train_vposer(0.3 * torch.randn(64, 21, 3), latent_dim=8, epochs=1, batch_size=32, device="cpu", seed=0)
    for p in prior.parameters():
        p.requires_grad_(False)
    loss, inputs = _stage2(body_model, with_root=False, prior=prior)
    assert _check_capture_safe(loss, inputs) == []


def test_loss_totals_are_the_weighted_sums_of_their_parts(body_model):
    """``total = Σ w · part`` with the documented weights (float64 recombination of the returned parts)."""
    loss, inputs = _stage1(body_model)
    total, parts = loss(*inputs)
    w = LossWeights.for_part("body")
    p = dict(zip(STAGE1_PARTS, parts.double()))
    assert float(total) == pytest.approx(float(w.w_3d * p["kp3d"] + w.lambda_ax * p["pose_reg"]), rel=1e-5)
    assert p["kp3d"] > 0 and p["pose_reg"] > 0

    loss, inputs = _stage2(body_model, with_root=True)
    total, parts = loss(*inputs)
    w = loss.weights
    p = dict(zip(STAGE2_PARTS, parts.double()))
    ref = (w.w_2d * p["kp2d"] + w.lambda_tg * p["pose_reg"] + w.w_3d * p["kp3d"] + w.w_param * p["param"]
           + w.w_root * p["root"] + w.w_shape * p["shape_reg"])
    assert float(total) == pytest.approx(float(ref), rel=1e-5)
    assert all(float(p[k]) > 0 for k in ("kp2d", "pose_reg", "kp3d", "param", "root", "shape_reg"))


def test_stage2_inputs_layout_and_errors():
    gen = torch.Generator().manual_seed(0)
    batch = _stage2_batch(gen, with_root=False)
    groups, inputs = stage2_inputs(batch, torch.device("cpu"), with_root=False)
    assert groups == (("h36m_17", False), ("coco_wholebody_133", True))
    assert len(inputs) == 8 + 5 and inputs[0] is batch["aux"][0]["image"] and inputs[8] is batch["target"]["image"]
    assert len(stage2_inputs(_stage2_batch(gen, True), torch.device("cpu"), with_root=True)[1]) == 10 + 5
    with pytest.raises(ValueError, match="no target sub-batch"):
        stage2_inputs({"aux": batch["aux"], "target": None}, torch.device("cpu"), with_root=False)
    with pytest.raises(KeyError):
        stage2_inputs(batch, torch.device("cpu"), with_root=True)  # aux lacks the root targets
    img = stage1_inputs({"image": torch.zeros(2, 3, S, S), "joints_3d_cam_mm": torch.zeros(2, 17, 3),
                         "has_3d": torch.ones(2)}, torch.device("cpu"))
    assert [t.shape[0] for t in img] == [2, 2, 2]  # no net with a root frame: three tensors


# ------------------------------------------------------------------------------------ LossRunner bookkeeping


class _FakeCapture:
    """Stands in for make_graphed_callables: runs the module like the real warm-up would (train mode, updating
    BatchNorm statistics) and returns a callable that counts its calls and runs the module."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.captures = 0
        self.replays = 0

    def __call__(self, module, sample):
        for _ in range(4):  # 3 warm-ups + the capture
            module(*sample)
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing\nmore detail")
        self.captures += 1

        def replay(*inputs):
            self.replays += 1
            return module(*inputs)

        return replay


class _BNLoss(torch.nn.Module):
    def __init__(self, bn):
        super().__init__()
        self.bn = bn

    def forward(self, x):
        y = self.bn(x)
        return y.square().mean(), y.detach().mean(0)


def test_loss_runner_captures_once_per_signature_and_restores_buffers():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm1d(3)
    fake = _FakeCapture()
    runner = LossRunner(True, max_graphs=2, capture=fake, device_type="cpu")
    x = torch.randn(8, 3) + 5.0
    eager_bn = torch.nn.BatchNorm1d(3)
    eager_total, _ = _BNLoss(eager_bn)(x)

    total, _ = runner("k", lambda: _BNLoss(bn), (x,))
    assert fake.captures == 1 and fake.replays == 1 and runner.graph_calls == 1
    # the capture's 4 passes were undone: the statistics saw exactly one batch, as in the eager step
    torch.testing.assert_close(bn.running_mean, eager_bn.running_mean)
    assert int(bn.num_batches_tracked) == 1
    torch.testing.assert_close(total, eager_total)

    runner("k", lambda: _BNLoss(bn), (torch.randn(8, 3),))  # same signature: replay, no capture
    assert fake.captures == 1 and fake.replays == 2
    runner("k", lambda: _BNLoss(bn), (torch.randn(6, 3),))  # new shape: second graph
    runner("other", lambda: _BNLoss(bn), (torch.randn(8, 3),))  # new key, over max_graphs: eager
    assert fake.captures == 2 and len(runner.graphs) == 2 and runner.eager_calls == 1
    with torch.no_grad():  # no autograd: never captured
        runner("third", lambda: _BNLoss(bn), (torch.randn(5, 3),))
    assert fake.captures == 2 and runner.eager_calls == 2
    assert input_signature("k", (x,)) != input_signature("k", (x.double(),))


def test_loss_runner_disabled_or_other_device_runs_eagerly():
    fake = _FakeCapture()
    bn = torch.nn.BatchNorm1d(3)
    for runner in (LossRunner(False, capture=fake, device_type="cpu"), LossRunner(True, capture=fake)):
        runner("k", lambda: _BNLoss(bn), (torch.randn(8, 3),))
        assert runner.eager_calls == 1 and runner.graph_calls == 0
    assert fake.captures == 0


def test_loss_runner_capture_failure_warns_once_and_falls_back():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm1d(3)
    ref_bn = torch.nn.BatchNorm1d(3)
    runner = LossRunner(True, capture=_FakeCapture(fail=True), device_type="cpu")
    x = torch.randn(8, 3)
    with pytest.warns(UserWarning, match="CUDA graph capture failed .*operation not permitted.*eagerly"):
        total, _ = runner("k", lambda: _BNLoss(bn), (x,))
    torch.testing.assert_close(total, _BNLoss(ref_bn)(x)[0])
    torch.testing.assert_close(bn.running_mean, ref_bn.running_mean)  # failed capture's passes undone too
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runner("k2", lambda: _BNLoss(bn), (x,))  # no second capture attempt, no second warning
    assert runner.failed and runner.eager_calls == 2


def test_train_config_rejects_cuda_graphs_without_cuda(tmp_path):
    from neuralannot_cli.train.config import TrainConfig

    with pytest.raises(ValueError, match="cuda_graphs: needs a CUDA device"):
        TrainConfig(part="body", aux=(("h36m", str(tmp_path)),), target=(("coco_wholebody", str(tmp_path)),),
                    out_dir=str(tmp_path / "run"), cuda_graphs=True)


def test_invalid_gt_3d_joints_enter_neither_stage(body_model):
    """A GT 3D joint marked invalid (``keypoints_conf`` 0: the loaders' validity, InterHand2.6M ``joint_valid``)
    changes neither the stage-1 loss (nor the pose feature it feeds) nor the stage-2 3D term, whatever its
    coordinates; a valid joint does; a sample whose root is invalid drops out entirely."""
    from neuralannot_cli.nets.heads import Stage1Net, Stage2Net

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(5)
    net = Stage1Net("body", 18, 17)
    loss1 = Stage1Loss(net, body_model, "body", "h36m_17", LossWeights.for_part("body"))
    conf = torch.ones(B, 17)
    conf[0, 5] = 0.0  # one invalid joint
    conf[2, 0] = 0.0  # an invalid root (h36m_17 root = pelvis, 0)
    base = {"image": torch.randn(B, 3, S, S, generator=gen), "joints_3d_cam_mm": _gt_mm(gen),
            "has_3d": torch.ones(B, dtype=torch.bool), "keypoints_conf": conf}

    def total1(edit=None):
        b = {k: v.clone() for k, v in base.items()}
        if edit is not None:
            b["joints_3d_cam_mm"][edit] += 5000.0
        with torch.no_grad():
            return float(loss1(*stage1_inputs(b, torch.device("cpu"), net=net, joint_set="h36m_17"))[0])

    ref = total1()
    assert total1((0, 5)) == pytest.approx(ref, rel=1e-6)  # invalid joint: no effect
    assert total1((2, 9)) == pytest.approx(ref, rel=1e-6)  # any joint of a sample with an invalid root
    assert abs(total1((0, 6)) - ref) > 1e-3 * abs(ref)  # a valid joint does count

    gen2 = torch.Generator().manual_seed(6)
    batch = _stage2_batch(gen2, with_root=False)
    aux = batch["aux"][0]
    aux["has_3d"] = torch.ones(B, dtype=torch.bool)
    aux["keypoints_conf"] = conf.clone()
    net2 = Stage2Net("body", 18, None)
    weights = LossWeights.for_part("body", w_root=0.0)

    def kp3d(edit=None):
        a = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in aux.items()}
        if edit is not None:
            a["joints_3d_cam_mm"][edit] += 5000.0
        groups, inputs = stage2_inputs({"aux": [a], "target": batch["target"]}, torch.device("cpu"), with_root=False)
        with torch.no_grad():
            _, parts = Stage2Loss(net2, None, body_model, "body", S, weights, groups, with_root=False)(*inputs)
        return float(parts[STAGE2_PARTS.index("kp3d")])

    ref2 = kp3d()
    assert kp3d((0, 5)) == pytest.approx(ref2, rel=1e-6) and kp3d((2, 9)) == pytest.approx(ref2, rel=1e-6)
    assert abs(kp3d((0, 6)) - ref2) > 1e-3 * abs(ref2)
