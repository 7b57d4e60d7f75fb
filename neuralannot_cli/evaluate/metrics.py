"""Error metrics of 3D human / hand mesh recovery, as the field computes them (pure tensor math).

All functions take batched ``torch`` tensors (numpy arrays are accepted and converted) and return
tensors; units are whatever the inputs use (the evaluation code passes millimetres and pixels).
Alignments are computed in float64 and returned in the input dtype.

Definitions
-----------
- **MPJPE** (mean per-joint position error): both skeletons are translated so that their root is at
  the origin (root = one joint, e.g. the pelvis of Human3.6M, or the mean of several, e.g. the two
  hips of COCO), then the Euclidean distance is averaged over (valid) joints.
- **PA-MPJPE**: the prediction is first aligned to the GT by the similarity transform (scale ``s``,
  rotation ``R``, translation ``t``) minimising ``sum_j w_j |s R x_j + t - y_j|^2`` (Umeyama 1991, the
  "compute_similarity_transform" of HMR / SPIN / I2L-MeshNet); reflections are excluded (``det R = +1``
  via the sign correction of the smallest singular value). FreiHAND's ``eval.py`` ``align_w_scale`` uses
  scipy's ``orthogonal_procrustes``, which allows a reflection: the two agree unless the best orthogonal fit of
  a sample is a mirror image (then FreiHAND's error is the smaller one).
- **MPVPE / PA-MPVPE**: the same over mesh vertices; MPVPE translates each mesh by a given root
  (the evaluation passes each mesh's own pelvis / wrist joint), PA-MPVPE aligns the vertices.
- **2D error**: per-sample mean pixel distance over keypoints, weighted by visibility / confidence;
  NaN for a sample without any weight.
- **PCK curve and AUC (FreiHAND protocol)**: ``freihand/utils/eval_util.py`` ``EvalUtil.get_measures``:
  thresholds ``linspace(lo, hi, steps)`` (FreiHAND: 0-50 mm, 100 steps); at each threshold the PCK of
  each joint is the fraction of its (valid) errors ``<= threshold``; the curve is the mean over joints
  of these per-joint PCKs; AUC = trapezoidal integral of the curve over the thresholds divided by
  ``hi - lo`` (so AUC is in [0, 1]; 1 = every error is 0). FreiHAND evaluates it on the Procrustes
  aligned keypoints (and meshes).
- **3DPCK and AUC (MPI-INF-3DHP protocol)**: ``mpii_compute_3d_pck.m`` of the MPI-INF-3DHP test-set
  utilities: per-joint errors after root alignment at the pelvis (no Procrustes), a joint is correct when
  its error is strictly ``< t``; 3DPCK = percentage of correct joints at ``t = 150`` mm, pooled over all
  joints of all frames (the script's joint groups cover all 17 joints, weighted by their sizes); AUC =
  ``100 * mean`` of the PCK curve over ``t = 0:5:150`` mm (31 thresholds; a plain mean, not a trapezoid).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "joint_errors",
    "root_center",
    "mpjpe",
    "similarity_procrustes",
    "procrustes_align",
    "pa_mpjpe",
    "mpvpe",
    "pa_mpvpe",
    "per_joint_mean",
    "masked_mean",
    "keypoint_error_2d",
    "pck_curve",
    "pck_auc",
    "f_score",
    "pck_3d",
    "FREIHAND_PCK_MM",
    "MPI3DHP_PCK_MM",
    "FREIHAND_F_SCORE_MM",
]

FREIHAND_F_SCORE_MM: tuple[float, float] = (5.0, 15.0)
"""Distance thresholds (mm) of FreiHAND's mesh F-scores (``F@5mm``, ``F@15mm``; lmb-freiburg/freihand ``eval.py``)."""
FREIHAND_PCK_MM: tuple[float, float, int] = (0.0, 50.0, 100)
"""``(lo, hi, steps)`` of the FreiHAND PCK curve in millimetres (``np.linspace(0, 0.05, 100)`` metres)."""
MPI3DHP_PCK_MM: tuple[float, float, float] = (0.0, 150.0, 5.0)
"""``(lo, hi, step)`` of the MPI-INF-3DHP PCK curve in millimetres (``thresh = 0:5:150``); 3DPCK is read at ``hi``."""


def _t(x, name: str, fn: str, last: int | None = None, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"{fn}: {name} must be numeric, got {type(x).__name__}") from None
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{fn}: {name} must have {ndim} dims, got shape {tuple(x.shape)}")
    if last is not None and (x.ndim == 0 or x.shape[-1] != last):
        raise ValueError(f"{fn}: {name} must have last dim {last}, got shape {tuple(x.shape)}")
    return x


def _pair(pred, gt, fn: str, dim: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    pred = _t(pred, "pred", fn, last=dim, ndim=3)
    gt = _t(gt, "gt", fn, last=dim, ndim=3)
    if pred.shape != gt.shape:
        raise ValueError(f"{fn}: pred and gt must have the same shape (batch, points, {dim}), got "
                         f"{tuple(pred.shape)} and {tuple(gt.shape)}")
    dtype = torch.promote_types(pred.dtype, gt.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64
    return pred.to(dtype), gt.to(device=pred.device, dtype=dtype)  # numpy / CPU ground truth vs a GPU prediction


def _weights(valid, like: torch.Tensor, fn: str) -> torch.Tensor:
    """``valid (batch, points)`` bool/float -> float weights (ones when None)."""
    b, n = like.shape[:2]
    if valid is None:
        return torch.ones((b, n), dtype=like.dtype, device=like.device)
    w = _t(valid, "valid", fn).to(like.device)
    if w.shape != (b, n):
        raise ValueError(f"{fn}: valid must have shape (batch={b}, points={n}), got {tuple(w.shape)}")
    return w.to(like.dtype)


def _weighted_mean(err: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    den = w.sum(-1)
    out = (err * w).sum(-1) / den.clamp_min(torch.finfo(err.dtype).tiny)
    return torch.where(den > 0, out, torch.full_like(out, float("nan")))


def joint_errors(pred, gt) -> torch.Tensor:
    """Euclidean distances ``(batch, points)`` between ``pred`` and ``gt`` ``(batch, points, D)``."""
    pred = _t(pred, "pred", "joint_errors")
    gt = _t(gt, "gt", "joint_errors")
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"joint_errors: pred and gt must both be (batch, points, D), got {tuple(pred.shape)} "
                         f"and {tuple(gt.shape)}")
    return torch.linalg.vector_norm(pred - gt.to(device=pred.device, dtype=pred.dtype), dim=-1)


def root_center(points, root_index: int | Sequence[int]) -> torch.Tensor:
    """``points (batch, joints, 3)`` minus their root (one joint, or the mean of several joints)."""
    points = _t(points, "points", "root_center", last=3, ndim=3)
    idx = [root_index] if isinstance(root_index, int) else list(root_index)
    if not idx or any(not (-points.shape[1] <= i < points.shape[1]) for i in idx):
        raise ValueError(f"root_center: root_index {root_index} out of range for {points.shape[1]} joints")
    return points - points[:, idx].mean(1, keepdim=True)


def mpjpe(pred, gt, root_index: int | Sequence[int] = 0, valid=None, *, per_joint: bool = False) -> torch.Tensor:
    """Root-aligned MPJPE per sample ``(batch,)`` (or per joint ``(batch, joints)`` with ``per_joint``).

    Args:
        pred, gt: ``(batch, joints, 3)`` in the same unit (e.g. mm).
        root_index: the root joint, or joints whose mean is the root (e.g. the two hips).
        valid: optional ``(batch, joints)`` weights/mask; the mean is over valid joints (NaN if none).
    """
    pred, gt = _pair(pred, gt, "mpjpe")
    err = joint_errors(root_center(pred, root_index), root_center(gt, root_index))
    if per_joint:
        return err
    return _weighted_mean(err, _weights(valid, err, "mpjpe"))


def similarity_procrustes(src, dst, valid=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Similarity transform ``dst ~ s R src + t`` minimising the (weighted) squared distance.

    Args:
        src, dst: ``(batch, points, 3)``.
        valid: optional ``(batch, points)`` non-negative weights (a mask works); points with weight 0 are
            ignored. At least 3 non-collinear weighted points are needed for a unique rotation.

    Returns:
        ``scale (batch,)``, ``rotmat (batch, 3, 3)`` with ``det = +1``, ``transl (batch, 3)``, float64.

    Umeyama's closed form: with weighted centroids ``mu_x, mu_y`` and centred points, the covariance
    ``Sigma = sum_j w_j y_j x_j^T / W = U D V^T``; ``S = diag(1, 1, sign(det U det V))``;
    ``R = U S V^T``; ``s = tr(D S) / (sum_j w_j |x_j|^2 / W)``; ``t = mu_y - s R mu_x``.
    """
    src, dst = _pair(src, dst, "similarity_procrustes")
    x = src.to(torch.float64)
    y = dst.to(torch.float64)
    w = _weights(valid, x, "similarity_procrustes").to(torch.float64)
    if (w < 0).any():
        raise ValueError("similarity_procrustes: valid weights must be non-negative")
    wsum = w.sum(1, keepdim=True).clamp_min(1e-300)  # (B, 1)
    wn = (w / wsum)[..., None]  # (B, N, 1)
    mu_x = (wn * x).sum(1)
    mu_y = (wn * y).sum(1)
    xc = x - mu_x[:, None]
    yc = y - mu_y[:, None]
    sigma = torch.einsum("bn,bni,bnj->bij", wn[..., 0], yc, xc)  # (B, 3, 3) = E[y x^T]
    u, d, vh = torch.linalg.svd(sigma)
    sign = torch.sign(torch.det(u) * torch.det(vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    s_diag = torch.ones_like(d)
    s_diag[:, 2] = sign
    rot = u @ torch.diag_embed(s_diag) @ vh
    var_x = (wn[..., 0] * (xc * xc).sum(-1)).sum(1)
    scale = (d * s_diag).sum(-1) / var_x.clamp_min(1e-300)
    transl = mu_y - scale[:, None] * torch.einsum("bij,bj->bi", rot, mu_x)
    return scale, rot, transl


def procrustes_align(pred, gt, valid=None) -> torch.Tensor:
    """``pred (batch, points, 3)`` mapped onto ``gt`` by :func:`similarity_procrustes` (input dtype)."""
    pred, gt = _pair(pred, gt, "procrustes_align")
    s, r, t = similarity_procrustes(pred, gt, valid)
    out = s[:, None, None] * torch.einsum("bij,bnj->bni", r, pred.to(torch.float64)) + t[:, None]
    return out.to(pred.dtype)


def pa_mpjpe(pred, gt, valid=None, *, per_joint: bool = False) -> torch.Tensor:
    """Procrustes-aligned MPJPE ``(batch,)`` (or ``(batch, joints)``); alignment uses the valid joints only."""
    pred, gt = _pair(pred, gt, "pa_mpjpe")
    err = joint_errors(procrustes_align(pred, gt, valid), gt)
    if per_joint:
        return err
    return _weighted_mean(err, _weights(valid, err, "pa_mpjpe"))


def mpvpe(pred_verts, gt_verts, pred_root=None, gt_root=None) -> torch.Tensor:
    """Mean per-vertex error ``(batch,)`` after translating each mesh by its root.

    Args:
        pred_verts, gt_verts: ``(batch, verts, 3)``.
        pred_root, gt_root: ``(batch, 3)`` root positions subtracted from each mesh (e.g. the pelvis
            joint of each body); ``None`` = no translation (absolute error).
    """
    pred, gt = _pair(pred_verts, gt_verts, "mpvpe")
    if pred_root is not None:
        pred = pred - _t(pred_root, "pred_root", "mpvpe", last=3, ndim=2).to(pred.device, pred.dtype)[:, None]
    if gt_root is not None:
        gt = gt - _t(gt_root, "gt_root", "mpvpe", last=3, ndim=2).to(gt.device, gt.dtype)[:, None]
    return joint_errors(pred, gt).mean(-1)


def pa_mpvpe(pred_verts, gt_verts) -> torch.Tensor:
    """Procrustes-aligned mean per-vertex error ``(batch,)``."""
    pred, gt = _pair(pred_verts, gt_verts, "pa_mpvpe")
    return joint_errors(procrustes_align(pred, gt), gt).mean(-1)


def per_joint_mean(errors, valid=None) -> torch.Tensor:
    """Mean over samples of per-joint errors ``(batch, joints)`` -> ``(joints,)`` (NaN for a joint never valid)."""
    err = _t(errors, "errors", "per_joint_mean", ndim=2)
    w = _weights(valid, err, "per_joint_mean")
    return _weighted_mean(err.T, w.T)


def masked_mean(values, valid=None) -> torch.Tensor:
    """Per-sample weighted mean of ``values (batch, points)`` -> ``(batch,)`` (NaN for a sample without weight).

    The per-sample mean over (valid) joints that MPJPE / PA-MPJPE then average over samples.
    """
    v = _t(values, "values", "masked_mean", ndim=2)
    return _weighted_mean(v, _weights(valid, v, "masked_mean"))


def keypoint_error_2d(pred_px, gt_px, weights=None) -> torch.Tensor:
    """Visibility-weighted mean 2D distance per sample ``(batch,)`` (px); NaN where all weights are 0.

    Args:
        pred_px, gt_px: ``(batch, joints, 2)``.
        weights: ``(batch, joints)`` confidences / visibility (0 = missing); None = all ones.
    """
    pred, gt = _pair(pred_px, gt_px, "keypoint_error_2d", dim=2)
    err = joint_errors(pred, gt)
    return _weighted_mean(err, _weights(weights, err, "keypoint_error_2d"))


def pck_curve(errors, thresholds, valid=None) -> torch.Tensor:
    """FreiHAND PCK curve ``(thresholds,)``: mean over joints of the per-joint fraction of errors ``<= t``.

    Args:
        errors: ``(samples, joints)`` per-joint errors (e.g. mm); a 1D ``(samples,)`` tensor is one joint.
        thresholds: ``(T,)``.
        valid: optional ``(samples, joints)`` mask; a joint without any valid error is left out of the mean.
    """
    err = _t(errors, "errors", "pck_curve")
    if err.ndim == 1:
        err = err[:, None]
    if err.ndim != 2:
        raise ValueError(f"pck_curve: errors must be (samples, joints), got shape {tuple(err.shape)}")
    err = err.to(torch.float64)
    thr = _t(thresholds, "thresholds", "pck_curve", ndim=1).to(device=err.device, dtype=torch.float64)
    mask = (_weights(valid, err, "pck_curve") > 0).to(torch.float64)
    hits = (err[None] <= thr[:, None, None]).to(torch.float64) * mask[None]  # (T, S, J)
    count = mask.sum(0)  # (J,)
    per_joint = hits.sum(1) / count.clamp_min(1.0)  # (T, J)
    keep = count > 0
    if not keep.any():
        return torch.full_like(thr, float("nan"))
    return per_joint[:, keep].mean(-1)


def pck_auc(errors, lo: float = FREIHAND_PCK_MM[0], hi: float = FREIHAND_PCK_MM[1],
            steps: int = FREIHAND_PCK_MM[2], valid=None) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Area under the PCK curve over ``[lo, hi]``, normalised to [0, 1] (FreiHAND protocol).

    Returns:
        ``(auc, thresholds (steps,), pck (steps,))``; the area is the trapezoidal rule over
        ``linspace(lo, hi, steps)`` divided by ``hi - lo``.
    """
    if not hi > lo or steps < 2:
        raise ValueError(f"pck_auc: need hi > lo and steps >= 2, got lo={lo}, hi={hi}, steps={steps}")
    thr = torch.linspace(lo, hi, steps, dtype=torch.float64)
    curve = pck_curve(errors, thr, valid)
    auc = torch.trapezoid(curve, thr.to(curve.device)) / (hi - lo)
    return float(auc), thr, curve


def f_score(pred_points, gt_points, threshold: float) -> torch.Tensor:
    """Per-sample F-score of two point sets at ``threshold`` (same unit), ``(batch,)`` float64.

    As FreiHAND's evaluation (on Procrustes-aligned meshes): precision = fraction of predicted points whose
    nearest GT point is closer than ``threshold``, recall = fraction of GT points whose nearest predicted point
    is, ``F = 2 P R / (P + R)`` (0 when both are 0). Strict ``<`` as there.

    Args:
        pred_points: ``(batch, N, 3)``; gt_points: ``(batch, M, 3)`` (the point counts may differ).
    """
    pred = _t(pred_points, "pred_points", "f_score", last=3, ndim=3).to(torch.float64)
    gt = _t(gt_points, "gt_points", "f_score", last=3, ndim=3).to(device=pred.device, dtype=torch.float64)
    if pred.shape[0] != gt.shape[0]:
        raise ValueError(f"f_score: batch sizes differ: {pred.shape[0]} vs {gt.shape[0]}")
    if not threshold > 0:
        raise ValueError(f"f_score: threshold must be > 0, got {threshold}")
    d = torch.cdist(pred, gt)  # (batch, N, M)
    precision = (d.min(dim=2).values < threshold).to(torch.float64).mean(-1)
    recall = (d.min(dim=1).values < threshold).to(torch.float64).mean(-1)
    denom = precision + recall
    return torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), torch.zeros_like(denom))


def pck_3d(errors, valid=None, *, lo: float = MPI3DHP_PCK_MM[0], hi: float = MPI3DHP_PCK_MM[1],
           step: float = MPI3DHP_PCK_MM[2]) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """MPI-INF-3DHP 3DPCK and AUC (percent) of root-aligned per-joint errors (``mpii_compute_3d_pck.m``).

    Args:
        errors: ``(samples, joints)`` root-aligned per-joint errors in mm (:func:`mpjpe` with
            ``per_joint=True``, root = pelvis); a 1D ``(samples,)`` tensor is one joint.
        valid: optional ``(samples, joints)`` mask; invalid entries count neither as correct nor in the total.
        lo, hi, step: the thresholds ``lo:step:hi`` (inclusive of ``hi``), mm.

    Returns:
        ``(pck_at_hi, auc, thresholds (T,), pck (T,))``: ``pck_at_hi`` = 100 x the fraction of valid joint
        errors strictly below ``hi``; the curve is that fraction at each threshold (pooled over joints and
        samples, in [0, 1]); ``auc`` = 100 x its mean. NaN (and a NaN curve) without any valid entry.
    """
    if not hi > lo or not step > 0:
        raise ValueError(f"pck_3d: need hi > lo and step > 0, got lo={lo}, hi={hi}, step={step}")
    err = _t(errors, "errors", "pck_3d")
    if err.ndim == 1:
        err = err[:, None]
    if err.ndim != 2:
        raise ValueError(f"pck_3d: errors must be (samples, joints), got shape {tuple(err.shape)}")
    err = err.to(torch.float64)
    count = int(round((hi - lo) / step))
    if abs(lo + count * step - hi) > 1e-9 * max(1.0, abs(hi)):
        raise ValueError(f"pck_3d: (hi - lo) must be a multiple of step, got lo={lo}, hi={hi}, step={step}")
    thr = lo + step * torch.arange(count + 1, dtype=torch.float64, device=err.device)
    mask = (_weights(valid, err, "pck_3d") > 0).to(torch.float64)
    total = mask.sum()
    if total <= 0:
        nan = torch.full_like(thr, float("nan"))
        return float("nan"), float("nan"), thr, nan
    curve = ((err[None] < thr[:, None, None]).to(torch.float64) * mask[None]).sum((1, 2)) / total  # (T,)
    return float(100.0 * curve[-1]), float(100.0 * curve.mean()), thr, curve
