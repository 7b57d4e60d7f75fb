"""Pose priors: VPoser v2 layout and official-checkpoint loading, training, hand PCA, identity, persistence."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralannot_cli.nets.prior import (
    IdentityPosePrior,
    PCAPosePrior,
    PosePrior,
    VPoserPrior,
    load_prior,
    load_vposer_checkpoint,
    save_prior,
    train_vposer,
    vposer_state_dict_shapes,
)
from neuralannot_cli.rotation import rotmat_geodesic_distance, rotmat_to_rot6d, rotvec_to_rotmat

# The VPoser v2 state_dict (human_body_prior src/human_body_prior/models/vposer_model.py, V02_05: 21 joints,
# latentD 32, num_neurons 512), written out by hand from the module tree so a change of ours shows up here.
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
VPOSER_V2_KEYS = (
    [f"encoder_net.1.{n}" for n in _BN]
    + ["encoder_net.2.weight", "encoder_net.2.bias"]
    + [f"encoder_net.4.{n}" for n in _BN]
    + ["encoder_net.6.weight", "encoder_net.6.bias", "encoder_net.7.weight", "encoder_net.7.bias"]
    + ["encoder_net.8.mu.weight", "encoder_net.8.mu.bias", "encoder_net.8.logvar.weight", "encoder_net.8.logvar.bias"]
    + ["decoder_net.0.weight", "decoder_net.0.bias", "decoder_net.3.weight", "decoder_net.3.bias"]
    + ["decoder_net.5.weight", "decoder_net.5.bias"]
)
VPOSER_V2_SHAPES = {
    "encoder_net.2.weight": (512, 63),
    "encoder_net.6.weight": (512, 512),
    "encoder_net.7.weight": (512, 512),
    "encoder_net.8.mu.weight": (32, 512),
    "encoder_net.8.logvar.weight": (32, 512),
    "decoder_net.0.weight": (512, 32),
    "decoder_net.3.weight": (512, 512),
    "decoder_net.5.weight": (126, 512),
    "decoder_net.5.bias": (126,),
    "encoder_net.1.running_var": (63,),
    "encoder_net.4.running_var": (512,),
}


def _geodesic_deg(a_rotvecs: torch.Tensor, b_rotvecs: torch.Tensor) -> float:
    d = rotmat_geodesic_distance(rotvec_to_rotmat(a_rotvecs.double()), rotvec_to_rotmat(b_rotvecs.double()))
    return float(torch.rad2deg(d).mean())


# ------------------------------------------------------------------------------------ VPoser layout


def test_vposer_state_dict_keys_are_vposer_v2():
    sd = VPoserPrior().state_dict()
    assert list(sd) == VPOSER_V2_KEYS
    shapes = vposer_state_dict_shapes()
    assert {k: tuple(v.shape) for k, v in sd.items()} == shapes
    for key, shape in VPOSER_V2_SHAPES.items():
        assert shapes[key] == shape


def _random_vposer_state(seed: int, num_joints=21, latent=32, hidden=512) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in vposer_state_dict_shapes(num_joints, latent, hidden).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1234, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("weight") and len(shape) == 2:
            state[key] = torch.randn(shape, generator=g) / np.sqrt(shape[1])
        else:
            state[key] = 0.3 * torch.randn(shape, generator=g)
    return state


def _np(state, key):
    return state[key].double().numpy()


def _reference_decode_rotmats(state, z: np.ndarray) -> np.ndarray:
    """VPoser v2 decoder written from the source with numpy float64: (B, Z) -> (B, K, 3, 3)."""

    def leaky(x):
        return np.where(x > 0, x, 0.01 * x)

    h = leaky(z @ _np(state, "decoder_net.0.weight").T + _np(state, "decoder_net.0.bias"))
    h = leaky(h @ _np(state, "decoder_net.3.weight").T + _np(state, "decoder_net.3.bias"))
    out = h @ _np(state, "decoder_net.5.weight").T + _np(state, "decoder_net.5.bias")
    pairs = out.reshape(-1, 3, 2)  # ContinousRotReprDecoder: view(-1, 3, 2), columns a1 = [:, :, 0], a2 = [:, :, 1]
    a1, a2 = pairs[:, :, 0], pairs[:, :, 1]
    b1 = a1 / np.linalg.norm(a1, axis=1, keepdims=True)
    b2 = a2 - np.sum(b1 * a2, axis=1, keepdims=True) * b1
    b2 = b2 / np.linalg.norm(b2, axis=1, keepdims=True)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1).reshape(z.shape[0], -1, 3, 3)


def _reference_encode_mean(state, pose_rotvecs: np.ndarray) -> np.ndarray:
    """VPoser v2 encoder (eval mode) with numpy float64: (B, K, 3) -> mu (B, Z)."""

    def bn(x, i):
        p = f"encoder_net.{i}."
        xn = (x - _np(state, p + "running_mean")) / np.sqrt(_np(state, p + "running_var") + 1e-5)
        return xn * _np(state, p + "weight") + _np(state, p + "bias")

    x = bn(pose_rotvecs.reshape(len(pose_rotvecs), -1), 1)
    x = x @ _np(state, "encoder_net.2.weight").T + _np(state, "encoder_net.2.bias")
    x = bn(np.where(x > 0, x, 0.01 * x), 4)
    x = x @ _np(state, "encoder_net.6.weight").T + _np(state, "encoder_net.6.bias")
    x = x @ _np(state, "encoder_net.7.weight").T + _np(state, "encoder_net.7.bias")
    return x @ _np(state, "encoder_net.8.mu.weight").T + _np(state, "encoder_net.8.mu.bias")


_MARKER: list[str] = []


def _side_effect(path: str) -> None:  # what a malicious checkpoint would make pickle call
    Path(path).write_text("ran")


class _ForeignHyperParams:
    """Stands for the OmegaConf / Lightning objects a real .ckpt pickles next to its state_dict."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_side_effect, (str(self.marker),))


class _AttrDict(dict):
    """Like Lightning's AttributeDict (a dict subclass, pickled with SETITEMS)."""


def test_load_lightning_ckpt_matches_reference_decode(tmp_path):
    state = _random_vposer_state(0)
    marker = tmp_path / "side_effect_ran"
    ckpt = {
        "epoch": 12,
        "global_step": 3456,
        "state_dict": {
            **{f"vp_model.{k}": v for k, v in state.items()},
            "bm_train.v_template": torch.zeros(4, 3),  # the trainer's body-model buffers, ignored
        },
        "hyper_parameters": _AttrDict(cfg=_ForeignHyperParams(marker), lr=1e-3),
        "callbacks": {_ForeignHyperParams: {"best_model_score": torch.tensor(0.03)}},  # Lightning 1.x: type keys
    }
    path = tmp_path / "V02_05_epoch=13_val_loss=0.03.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(pickle.UnpicklingError):  # like the real .ckpt (OmegaConf hyper-parameters) ...
        torch.load(path, weights_only=True)
    prior = load_vposer_checkpoint(path)  # ... which still loads, tensors only
    assert not marker.exists(), "loading a checkpoint must not run code from it"
    assert isinstance(prior, PosePrior) and not prior.training
    assert all(not p.requires_grad for p in prior.parameters())
    assert (prior.latent_dim, prior.num_joints, prior.code_dim) == (32, 21, 32)

    z = np.random.default_rng(1).normal(size=(5, 32))
    ref = _reference_decode_rotmats(state, z)
    with torch.no_grad():
        rotmats = prior.decode_rotmats(torch.from_numpy(z).float()).double().numpy()
        rotvecs = prior.decode(torch.from_numpy(z).float())
    np.testing.assert_allclose(rotmats, ref, atol=2e-5)
    np.testing.assert_allclose(rotvec_to_rotmat(rotvecs.double()).numpy(), ref, atol=2e-5)

    poses = 0.4 * np.random.default_rng(2).normal(size=(6, 21, 3))
    with torch.no_grad():
        mu = prior.encode_mean(torch.from_numpy(poses).float()).double().numpy()
    np.testing.assert_allclose(mu, _reference_encode_mean(state, poses), rtol=1e-4, atol=1e-4)


def test_load_plain_state_dict_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    state = _random_vposer_state(3, latent=8, hidden=64)
    torch.save(state, tmp_path / "vposer.pt")
    save_file(state, str(tmp_path / "vposer.safetensors"))
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    ref = _reference_decode_rotmats(state, z.double().numpy())
    for name in ("vposer.pt", "vposer.safetensors"):
        prior = load_vposer_checkpoint(tmp_path / name)
        assert (prior.latent_dim, prior.hidden) == (8, 64)
        with torch.no_grad():
            np.testing.assert_allclose(prior.decode_rotmats(z).double().numpy(), ref, atol=2e-5)


def test_vposer_6d_layout_is_interleaved_columns():
    """A decoder whose last bias is VPoser's interleaved 6D of known rotations decodes to exactly those."""
    prior = VPoserPrior(num_joints=3, latent_dim=4, hidden=8)
    rotmats = rotvec_to_rotmat(torch.tensor([[0.3, -1.2, 0.5], [2.0, 0.1, -0.4], [0.0, 0.0, 3.0]]))
    interleaved = rotmats[:, :, :2].reshape(3, 6)  # [R00, R01, R10, R11, R20, R21]
    with torch.no_grad():
        prior.decoder_net[5].weight.zero_()
        prior.decoder_net[5].bias.copy_(interleaved.flatten())
        out = prior.decode_rotmats(torch.randn(2, 4))
        ours = prior.decode_rot6d(torch.randn(1, 4))
    torch.testing.assert_close(out, rotmats.expand(2, 3, 3, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(ours[0], rotmat_to_rot6d(rotmats), atol=1e-6, rtol=0)  # our column-major 6D


def test_load_vposer_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_vposer_checkpoint(tmp_path / "nope.ckpt")
    state = _random_vposer_state(0, latent=8, hidden=16)
    del state["encoder_net.6.bias"]
    torch.save({"state_dict": {f"vp_model.{k}": v for k, v in state.items()}}, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match=r"bad\.ckpt.*encoder_net\.6\.bias"):
        load_vposer_checkpoint(tmp_path / "bad.ckpt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt"):
        load_vposer_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"\(batch, 21, 3\), got \(2, 63\)"):
        VPoserPrior().encode_mean(torch.zeros(2, 63))
    with pytest.raises(ValueError, match=r"\(batch, 32\), got \(2, 31\)"):
        VPoserPrior().decode(torch.zeros(2, 31))


# ----------------------------------------------------------------------------------- VPoser training


def _mixture_poses(n: int, seed: int) -> torch.Tensor:
    """Poses on a 3-dim manifold: convex mixes of 4 fixed base poses (rotvecs of ~0.5 rad per axis)."""
    bases = 0.5 * torch.randn(4, 21, 3, generator=torch.Generator().manual_seed(123))
    g = torch.Generator().manual_seed(seed)
    w = -torch.log(torch.rand(n, 4, generator=g))  # Dirichlet(1, 1, 1, 1)
    w = w / w.sum(1, keepdim=True)
    return torch.einsum("nb,bjc->njc", w, bases)


@pytest.fixture
def single_thread():
    """Tiny MLPs train faster on one thread (and are not starved when the CI box is loaded)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_train_vposer_learns_the_pose_manifold(single_thread):
    train, test = _mixture_poses(2000, 0), _mixture_poses(400, 1)
    mean = train.mean(0, keepdim=True)
    err_mean = _geodesic_deg(test, mean.expand_as(test))
    prior = train_vposer(train, latent_dim=32, hidden=128, epochs=15, batch_size=64, lr=2e-3, kl_weight=2e-2, seed=0)
    assert not prior.training and all(not p.requires_grad for p in prior.parameters())
    with torch.no_grad():
        err_rec = _geodesic_deg(test, prior.decode(prior.encode_mean(test)))
        err_zero = _geodesic_deg(prior.decode(torch.zeros(1, 32)), mean)
    assert err_mean > 12.0  # the data really spreads
    assert err_rec < 0.25 * err_mean, (err_rec, err_mean)
    assert err_zero < 0.5 * err_mean, (err_zero, err_mean)


def test_train_vposer_is_deterministic(single_thread):
    poses = _mixture_poses(200, 5)
    kw = dict(latent_dim=4, hidden=16, epochs=2, batch_size=32)
    a, b = train_vposer(poses, seed=7, **kw), train_vposer(poses, seed=7, **kw)
    c = train_vposer(poses, seed=8, **kw)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, b.state_dict()[key], atol=0, rtol=0)
    assert not torch.equal(a.state_dict()["decoder_net.5.weight"], c.state_dict()["decoder_net.5.weight"])
    losses = []
    train_vposer(poses, seed=7, progress=lambda epoch, loss: losses.append((epoch, loss)), **kw)
    assert [e for e, _ in losses] == [0, 1] and all(np.isfinite(v) for _, v in losses)


def test_train_vposer_input_checks():
    with pytest.raises(ValueError, match=r"\(N, K, 3\), got \(10, 63\)"):
        train_vposer(torch.zeros(10, 63))
    with pytest.raises(ValueError, match="at least 2"):
        train_vposer(torch.zeros(1, 21, 3))


# ---------------------------------------------------------------------------------------------- PCA


def _low_rank_poses(n: int, rank: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, 45))
    return (rng.normal(size=(45,)) * 0.2 + rng.normal(size=(n, rank)) @ basis * 0.1).reshape(n, 15, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fit_pca_exact_on_known_rank(dtype):
    poses = _low_rank_poses(300, 6, 0)
    prior = PCAPosePrior.fit_pca(torch.from_numpy(poses).to(dtype), 6)
    assert (prior.code_dim, prior.num_joints) == (6, 15)
    comps = prior.components.double().numpy()
    np.testing.assert_allclose(comps @ comps.T, np.eye(6), atol=1e-6)
    x = torch.from_numpy(poses).to(dtype)
    recon = prior.decode(prior.encode_mean(x))
    np.testing.assert_allclose(recon.double().numpy(), poses, atol=1e-5)

    # independent reference: numpy float64 SVD of the centred data (same subspace, same mean, signs free)
    flat = poses.reshape(300, 45)
    _, svals, vh = np.linalg.svd(flat - flat.mean(0), full_matrices=False)
    np.testing.assert_allclose(prior.mean.double().numpy(), flat.mean(0), atol=1e-6)
    np.testing.assert_allclose(np.abs(comps @ vh[:6].T), np.eye(6), atol=1e-5)
    assert svals[6] < 1e-9 * svals[0]  # the data really has rank 6

    # fewer components: the best rank-3 approximation, as numpy's
    prior3 = PCAPosePrior.fit_pca(x, 3)
    proj = (flat - flat.mean(0)) @ vh[:3].T @ vh[:3] + flat.mean(0)
    np.testing.assert_allclose(prior3.decode(prior3.encode_mean(x)).double().numpy().reshape(300, 45), proj, atol=1e-5)


def test_pca_least_squares_with_non_orthonormal_components():
    rng = np.random.default_rng(3)
    comps, mean = rng.normal(size=(4, 45)), rng.normal(size=(45,))
    prior = PCAPosePrior(comps, mean)
    code = torch.from_numpy(rng.normal(size=(7, 4))).float()
    np.testing.assert_allclose(
        prior.decode(code).double().numpy().reshape(7, 45), mean + code.double().numpy() @ comps, atol=1e-5
    )
    torch.testing.assert_close(prior.encode_mean(prior.decode(code)), code, atol=1e-4, rtol=0)


def test_pca_input_checks():
    with pytest.raises(ValueError, match=r"\(Z, 3K\), got \(4, 44\)"):
        PCAPosePrior(np.zeros((4, 44)), np.zeros(44))
    with pytest.raises(ValueError, match=r"num_comps must be in .* = \[1, 45\], got 46"):
        PCAPosePrior.fit_pca(np.zeros((100, 15, 3)), 46)
    with pytest.raises(ValueError, match=r"\(batch, 15, 3\), got \(2, 16, 3\)"):
        PCAPosePrior(np.eye(45)[:6], np.zeros(45)).encode_mean(torch.zeros(2, 16, 3))


@pytest.mark.parametrize("flat_hand_mean", [False, True])
def test_from_mano_matches_smplx_mano_pca(standin_dir, flat_hand_mean):
    """decode(code) through our BodyModel == smplx.MANO(use_pca=True, flat_hand_mean=False)(hand_pose=code)."""
    import smplx

    from neuralannot_cli.body import load_body_model

    body = load_body_model("mano", model_dir=standin_dir, flat_hand_mean=flat_hand_mean)
    prior = PCAPosePrior.from_mano(body, 12)
    assert (prior.code_dim, prior.num_joints) == (12, 15)
    ref_model = smplx.MANO(str(body.layer_path), ext="npz", use_pca=True, num_pca_comps=12, flat_hand_mean=False,
                           is_rhand=True)  # fmt: skip
    code = 0.8 * torch.randn(3, 12, generator=torch.Generator().manual_seed(0))
    root = 0.3 * torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = body(root_rotvec=root, hand_pose_rotvecs=prior.decode(code)).vertices
        ref = ref_model(global_orient=root, hand_pose=code, betas=torch.zeros(3, 10)).vertices
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    expected_mean = 0.0 if not flat_hand_mean else np.load(body.layer_path)["hands_mean"]
    np.testing.assert_allclose(prior.mean.numpy(), np.broadcast_to(expected_mean, (45,)), atol=1e-6)


def test_from_mano_smplx_uses_right_hand(standin_dir):
    from neuralannot_cli.body import load_body_model

    body = load_body_model("smplx", model_dir=standin_dir)
    prior = PCAPosePrior.from_mano(body, 6)
    npz = np.load(body.layer_path)
    np.testing.assert_allclose(prior.components.numpy(), npz["hands_componentsr"][:6], atol=1e-6)
    np.testing.assert_allclose(prior.mean.numpy(), 0.0, atol=1e-6)  # BodyModel adds hands_meanr itself


# ------------------------------------------------------------------------------------------ identity


def test_identity_prior_is_column_major_6d():
    prior = IdentityPosePrior(15)
    assert prior.code_dim == 90
    pose = 0.9 * torch.randn(4, 15, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    code = prior.encode_mean(pose)
    rotmats = rotvec_to_rotmat(pose)
    expected = torch.cat([rotmats[..., :, 0], rotmats[..., :, 1]], dim=-1).flatten(1)  # [col 0, col 1] per joint
    torch.testing.assert_close(code, expected)
    torch.testing.assert_close(rotvec_to_rotmat(prior.decode(code)), rotmats)
    scaled = prior.decode(code * 3.0)  # any scale decodes (Gram-Schmidt)
    torch.testing.assert_close(rotvec_to_rotmat(scaled), rotmats)


# --------------------------------------------------------------------------------------- persistence


def _priors():
    torch.manual_seed(0)
    vp = VPoserPrior(num_joints=21, latent_dim=8, hidden=32)
    with torch.no_grad():
        for p in vp.parameters():
            p.add_(0.1 * torch.randn_like(p))
        vp.encoder_net[1].running_mean.normal_()
    pca = PCAPosePrior.fit_pca(_low_rank_poses(50, 5, 1), 5)
    return [vp.eval(), pca, IdentityPosePrior(15)]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_save_load_round_trip(tmp_path, index):
    prior = _priors()[index]
    cfg_path = save_prior(prior, tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["prior.json", "prior.safetensors"]
    config = json.loads(cfg_path.read_text())
    assert config["kind"] == type(prior).kind and config["format"] == "neuralannot.pose_prior"
    loaded = load_prior(tmp_path / "ckpt", device="cpu")
    assert type(loaded) is type(prior) and loaded.code_dim == prior.code_dim
    assert not loaded.training and all(not p.requires_grad for p in loaded.parameters())
    code = torch.randn(3, prior.code_dim, generator=torch.Generator().manual_seed(2))
    pose = 0.3 * torch.randn(3, prior.num_joints, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        # (same weights; BLAS may pick another kernel for differently aligned buffers, hence not atol=0)
        torch.testing.assert_close(loaded.decode(code), prior.decode(code), atol=1e-6, rtol=0)
        torch.testing.assert_close(loaded.encode_mean(pose), prior.encode_mean(pose), atol=1e-6, rtol=0)
    for key, value in prior.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_load_prior_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="prior.json"):
        load_prior(tmp_path)
    save_prior(IdentityPosePrior(21), tmp_path)
    cfg = json.loads((tmp_path / "prior.json").read_text())
    (tmp_path / "prior.json").write_text(json.dumps({**cfg, "kind": "gmm"}))
    with pytest.raises(ValueError, match=r"prior\.json: field 'kind'"):
        load_prior(tmp_path)
    (tmp_path / "prior.json").write_text(json.dumps({**cfg, "params": {}}))
    with pytest.raises(ValueError, match=r"prior\.json: field 'params\.num_joints'"):
        load_prior(tmp_path)
    save_prior(_priors()[0], tmp_path)  # VPoser weights ...
    cfg = json.loads((tmp_path / "prior.json").read_text())
    (tmp_path / "prior.json").write_text(json.dumps({**cfg, "params": {**cfg["params"], "hidden": 64}}))
    with pytest.raises(ValueError, match=r"prior\.safetensors: weights do not fit"):  # ... with a wrong config
        load_prior(tmp_path)


def test_load_vposer_experiment_folder(tmp_path):
    """The VPoser download unpacks to V02_05/{V02_05.yaml, snapshots/*.ckpt}; human_body_prior's loader takes the
    folder and uses the newest snapshot. So do we."""
    folder = tmp_path / "V02_05"
    (folder / "snapshots").mkdir(parents=True)
    (folder / "V02_05.yaml").write_text("model_params:\n  num_neurons: 64\n  latentD: 8\n")
    older, newer = _random_vposer_state(5, latent=8, hidden=64), _random_vposer_state(6, latent=8, hidden=64)
    for name, state, mtime in (("V02_05_epoch=08_val_loss=0.03.ckpt", older, 1_000_000),
                               ("V02_05_epoch=13_val_loss=0.03.ckpt", newer, 2_000_000)):  # fmt: skip
        path = folder / "snapshots" / name
        torch.save({"state_dict": {f"vp_model.{k}": v for k, v in state.items()}}, path)
        os.utime(path, (mtime, mtime))
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        decoded = load_vposer_checkpoint(folder).decode_rotmats(z).double().numpy()
    np.testing.assert_allclose(decoded, _reference_decode_rotmats(newer, z.double().numpy()), atol=2e-5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"snapshots/\*\.ckpt"):
        load_vposer_checkpoint(tmp_path / "empty")
    # `neuralannot train --prior V02_05/` takes the folder too; a path that does not exist is refused
    from neuralannot_cli.train.config import TrainConfig

    base = {"part": "body", "aux": (("h36m", "/d"),), "target": (("coco_wholebody", "/c"),), "out_dir": "/o"}
    assert TrainConfig(prior=str(folder), **base).prior == str(folder)
    with pytest.raises(ValueError, match="VPoser folder"):
        TrainConfig(prior=str(tmp_path / "missing"), **base)
