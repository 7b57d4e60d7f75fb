"""Tests for the crop geometry, the cropped-sample dataset, the mixed batch sampler and its collate."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neuralannot_cli.data.pipeline import (
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    CroppedSampleDataset,
    crop_affine,
    crop_image,
    default_intrinsics,
    denormalize_image,
    expand_box_to_aspect,
    invert_affine,
    transform_points,
)
from neuralannot_cli.data.record import Sample
from neuralannot_cli.data.sampler import MixedBatchSampler, MixedDataset, collate_mixed

# --------------------------------------------------------------------------------------------------------
# Independent float64 references
# --------------------------------------------------------------------------------------------------------


def _ref_process_bbox(box, aspect, scale):
    """Hand4Whole's ``process_bbox`` aspect padding, without its sanitising step (scalar float64 code)."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2.0, y + h / 2.0
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    w, h = w * scale, h * scale
    return np.array([cx - w / 2.0, cy - h / 2.0, w, h])


def _ref_affine(box, out_hw, rot_deg, flip, img_w):
    """Hand4Whole's recipe (flip the image, 3 point pairs, getAffineTransform) shifted by -0.5 crop px.

    Hand4Whole maps the box edges to crop coordinates 0 and W_out; ours maps them to -0.5 and W_out - 0.5.
    """
    x, y, w, h = (float(v) for v in box)
    out_h, out_w = out_hw
    c = np.array([x + 0.5 * w, y + 0.5 * h])
    if flip:
        c[0] = img_w - 1 - c[0]
    a = math.radians(rot_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    src = np.stack([c, c + rot @ [0.0, 0.5 * h], c + rot @ [0.5 * w, 0.0]])
    dst = np.array([[0.5 * out_w, 0.5 * out_h], [0.5 * out_w, out_h], [out_w, 0.5 * out_h]]) - 0.5
    # solve the 6 unknowns in float64 (cv2.getAffineTransform works in float32)
    m = np.zeros((6, 6))
    rhs = np.zeros(6)
    for k in range(3):
        m[2 * k, 0:2], m[2 * k, 2] = src[k], 1.0
        m[2 * k + 1, 3:5], m[2 * k + 1, 5] = src[k], 1.0
        rhs[2 * k], rhs[2 * k + 1] = dst[k]
    aff = np.linalg.solve(m, rhs).reshape(2, 3)
    if flip:  # compose with the image flip u -> img_w - 1 - u
        flip_m = np.array([[-1.0, 0.0, img_w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        aff = aff @ flip_m
    return aff


# --------------------------------------------------------------------------------------------------------
# Crop geometry
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("aspect", [1.0, 0.75, 1.5])
def test_expand_box_to_aspect_matches_reference(aspect):
    rng = np.random.default_rng(0)
    boxes = np.concatenate([rng.uniform(-50, 300, (20, 2)), rng.uniform(5, 200, (20, 2))], axis=1)
    got = expand_box_to_aspect(boxes, aspect, 1.25)
    ref = np.stack([_ref_process_bbox(b, aspect, 1.25) for b in boxes])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got[:, 2] / got[:, 3], aspect, rtol=1e-12)
    # centre is preserved, box only grows
    np.testing.assert_allclose(got[:, :2] + got[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2, atol=1e-9)
    assert np.all(got[:, 2:] >= boxes[:, 2:] * 1.25 - 1e-9)
    got_t = expand_box_to_aspect(torch.from_numpy(boxes), aspect, 1.25)
    assert got_t.dtype == torch.float64
    np.testing.assert_allclose(got_t.numpy(), ref, atol=1e-9)


def test_expand_box_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\).*\(3,\)"):
        expand_box_to_aspect(np.zeros(3))
    with pytest.raises(ValueError, match="width and height"):
        expand_box_to_aspect(np.array([0.0, 0.0, 0.0, 5.0]))


@pytest.mark.parametrize("out_hw", [(256, 256), (256, 192), (33, 47)])
def test_crop_affine_box_edges_map_to_crop_edges(out_hw):
    box = np.array([12.3, -7.5, 81.2, 64.9])
    aff = crop_affine(box, out_hw)
    assert aff.shape == (2, 3) and aff.dtype == np.float64
    x, y, w, h = box
    out_h, out_w = out_hw
    pts = np.array([[x, y], [x + w, y + h], [x + w / 2, y + h / 2], [x, y + h]])
    want = np.array([[-0.5, -0.5], [out_w - 0.5, out_h - 0.5], [(out_w - 1) / 2, (out_h - 1) / 2], [-0.5, out_h - 0.5]])
    np.testing.assert_allclose(transform_points(pts, aff), want, atol=1e-12)


def test_crop_affine_of_whole_image_is_identity_and_crop_equals_image():
    img = np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    aff = crop_affine([-0.5, -0.5, 40, 24], (24, 40))
    np.testing.assert_allclose(aff, np.eye(2, 3), atol=1e-12)
    np.testing.assert_array_equal(crop_image(img, aff, (24, 40)), img)


@pytest.mark.parametrize("rot", [0.0, 30.0, -75.0, 180.0])
@pytest.mark.parametrize("flip", [False, True])
def test_crop_affine_matches_hand4whole_recipe_shifted_half_pixel(rot, flip):
    box = np.array([40.0, 25.0, 90.0, 120.0])
    img_w = 320
    got = crop_affine(box, (256, 192), rotation_deg=rot, flip=flip)
    np.testing.assert_allclose(got, _ref_affine(box, (256, 192), rot, flip, img_w), atol=1e-9)


def test_rotation_direction_is_pinned():
    box = np.array([0.0, 0.0, 100.0, 100.0])  # centre (50, 50), crop 100 -> scale 1
    aff = crop_affine(box, 100, rotation_deg=90.0)
    # a point right of the centre ends up above the crop centre: content turns counter-clockwise on screen
    np.testing.assert_allclose(transform_points(np.array([[60.0, 50.0]]), aff), [[49.5, 39.5]], atol=1e-12)
    aff_f = crop_affine(box, 100, flip=True)
    np.testing.assert_allclose(transform_points(np.array([[60.0, 50.0]]), aff_f), [[39.5, 49.5]], atol=1e-12)


@pytest.mark.parametrize("rot", [0.0, 17.0, -123.0])
@pytest.mark.parametrize("flip", [False, True])
def test_crop_uncrop_round_trip(rot, flip):
    rng = np.random.default_rng(2)
    pts = rng.uniform(-100, 1000, (5, 30, 2))
    box = expand_box_to_aspect(np.array([123.4, 56.7, 210.0, 430.0]))
    aff = crop_affine(box, 256, rotation_deg=rot, flip=flip)
    inv = invert_affine(aff)
    back = transform_points(transform_points(pts, aff), inv)
    np.testing.assert_allclose(back, pts, atol=1e-4)
    assert np.max(np.abs(back - pts)) < 1e-9  # float64 is far better than the 1e-4 px requirement
    # 3x3 reference inverse
    full = np.vstack([aff, [0, 0, 1]])
    np.testing.assert_allclose(inv, np.linalg.inv(full)[:2], atol=1e-12)
    # torch paths: float64 exact, float32 close
    pts_t = torch.from_numpy(pts)
    aff_t = torch.from_numpy(aff)
    back_t = transform_points(transform_points(pts_t, aff_t), invert_affine(aff_t))
    np.testing.assert_allclose(back_t.numpy(), pts, atol=1e-9)
    crop32 = transform_points(pts_t.float(), aff_t.float())
    np.testing.assert_allclose(crop32.numpy(), transform_points(pts, aff), atol=1e-3)


def test_transform_points_broadcasts_batched_affines():
    rng = np.random.default_rng(3)
    affs = np.stack([crop_affine([10 * i, 5, 50 + i, 50 + i], 64, rotation_deg=10 * i) for i in range(4)])
    pts = rng.uniform(0, 100, (4, 7, 2))
    got = transform_points(pts, affs)
    for i in range(4):
        np.testing.assert_allclose(got[i], pts[i] @ affs[i, :, :2].T + affs[i, :, 2], atol=1e-12)
    with pytest.raises(ValueError, match=r"\(7, 3\)"):
        transform_points(np.zeros((7, 3)), affs[0])
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        transform_points(pts, np.eye(3))


@pytest.mark.parametrize("rot,flip", [(0.0, False), (35.0, False), (-60.0, True), (0.0, True)])
def test_crop_image_moves_bright_dot_to_transformed_location(rot, flip):
    img = np.zeros((120, 160, 3), np.uint8)
    dot = np.array([97.0, 41.0])  # (u, v)
    img[int(dot[1]), int(dot[0])] = 255
    box = np.array([70.0, 20.0, 48.0, 48.0])  # upsampling 48 -> 96: the dot becomes a symmetric tent
    aff = crop_affine(box, 96, rotation_deg=rot, flip=flip)
    crop = crop_image(img, aff, 96).astype(np.float64)[..., 0]
    assert crop.shape == (96, 96)
    vv, uu = np.mgrid[0:96, 0:96]
    centroid = np.array([(crop * uu).sum(), (crop * vv).sum()]) / crop.sum()
    want = transform_points(dot[None], aff)[0]
    assert np.all(np.abs(centroid - want) <= 0.5), (centroid, want)
    peak = np.array(np.unravel_index(np.argmax(crop), crop.shape))[::-1]
    assert np.all(np.abs(peak - want) <= 1.0)


# --------------------------------------------------------------------------------------------------------
# Dataset fixtures
# --------------------------------------------------------------------------------------------------------

IMG_H, IMG_W = 64, 80
FOCAL = (100.0, 100.0)
PRINCPT = (41.0, 30.5)


def _project(joints_mm, focal, princpt):
    return joints_mm[:, :2] / joints_mm[:, 2:] * np.asarray(focal) + np.asarray(princpt)


def _make_samples(root: Path, n: int, *, num_joints: int, joint_set: str, with_3d: bool, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        xy = rng.uniform([-300, -250], [300, 250], (num_joints, 2))
        joints = np.concatenate([xy, rng.uniform(1800, 2200, (num_joints, 1))], axis=1)
        kp = _project(joints, FOCAL, PRINCPT)
        img = rng.integers(0, 60, (IMG_H, IMG_W, 3), dtype=np.uint8)
        for u, v in np.round(kp).astype(int):
            img[max(v - 1, 0) : v + 2, max(u - 1, 0) : u + 2] = (255, 255, 255)  # 3x3 white dot
        path = root / f"{joint_set}_{i:03d}.png"
        cv2.imwrite(str(path), img)
        lo, hi = kp.min(0), kp.max(0)
        samples.append(
            Sample(
                dataset="h36m" if with_3d else "coco_wholebody",
                image_path=path,
                image_hw=(IMG_H, IMG_W),
                bbox_xywh_px=np.array([*(lo - 3), *(hi - lo + 6)], np.float32),
                keypoints_2d_px=kp.astype(np.float32),
                keypoints_conf=rng.uniform(0.2, 1.0, num_joints).astype(np.float32),
                joint_set=joint_set,
                joints_3d_cam_mm=joints.astype(np.float32) if with_3d else None,
                focal_px=FOCAL if with_3d else None,
                princpt_px=PRINCPT if with_3d else None,
                ids={"i": i},
            )
        )
    return samples


@pytest.fixture()
def aux_samples(tmp_path):
    return _make_samples(tmp_path / "aux", 10, num_joints=5, joint_set="aux5", with_3d=True, seed=10)


@pytest.fixture()
def target_samples(tmp_path):
    return _make_samples(tmp_path / "target", 6, num_joints=3, joint_set="tgt3", with_3d=False, seed=11)


# --------------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------------


def test_dataset_item_without_augmentation(aux_samples):
    ds = CroppedSampleDataset(aux_samples, input_size=48)
    item = ds[3]
    s = aux_samples[3]
    assert item["image"].shape == (3, 48, 48) and item["image"].dtype == torch.float32
    box = expand_box_to_aspect(s.bbox_xywh_px.astype(np.float64), 1.0, 1.25)
    aff = crop_affine(box, 48)
    np.testing.assert_allclose(item["crop_affine"].numpy(), aff, atol=1e-5)
    np.testing.assert_allclose(item["bbox_xywh_px"].numpy(), box, atol=1e-4)
    kp_crop = transform_points(s.keypoints_2d_px.astype(np.float64), aff)
    np.testing.assert_allclose(item["keypoints_2d_crop_px"].numpy(), kp_crop, atol=1e-4)
    # mapping predictions back with the returned inverse recovers the original keypoints
    back = transform_points(item["keypoints_2d_crop_px"].double(), item["crop_affine_inv"].double())
    np.testing.assert_allclose(back.numpy(), s.keypoints_2d_px, atol=1e-3)
    np.testing.assert_allclose(item["keypoints_conf"].numpy(), s.keypoints_conf)
    np.testing.assert_allclose(item["joints_3d_cam_mm"].numpy(), s.joints_3d_cam_mm)
    assert bool(item["has_3d"]) and bool(item["has_intrinsics"])
    np.testing.assert_allclose(item["focal_px"].numpy(), FOCAL)
    np.testing.assert_allclose(item["princpt_px"].numpy(), PRINCPT)
    assert int(item["index"]) == 3 and item["joint_set"] == "aux5"
    assert item["image_hw"].tolist() == [IMG_H, IMG_W]
    # the drawn keypoint dots are bright in the crop (the crop is RGB; dots are white)
    rgb = denormalize_image(item["image"]).numpy()
    for u, v in np.round(kp_crop).astype(int):
        if 0 <= u < 48 and 0 <= v < 48:
            assert rgb[:, v, u].min() > 0.6  # background is < 60/255


def test_dataset_normalisation_and_rgb_order(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    img[:] = (10, 20, 200)  # BGR on disk
    path = tmp_path / "flat.png"
    cv2.imwrite(str(path), img)
    s = Sample(
        dataset="coco_wholebody",
        image_path=path,
        image_hw=(20, 30),
        bbox_xywh_px=np.array([5, 5, 10, 10], np.float32),
        keypoints_2d_px=np.zeros((2, 2), np.float32),
        keypoints_conf=np.ones(2, np.float32),
        joint_set="x",
    )
    item = CroppedSampleDataset([s], input_size=8)[0]
    want = (np.array([200, 20, 10]) / 255.0 - np.array(IMAGENET_MEAN_RGB)) / np.array(IMAGENET_STD_RGB)
    np.testing.assert_allclose(item["image"][:, 4, 4].numpy(), want, atol=1e-5)
    # fallbacks: no 3D, CLIFF focal, image-centre principal point
    assert not bool(item["has_3d"]) and not bool(item["has_intrinsics"])
    assert torch.count_nonzero(item["joints_3d_cam_mm"]) == 0 and item["joints_3d_cam_mm"].shape == (2, 3)
    f = math.sqrt(20**2 + 30**2)
    np.testing.assert_allclose(item["focal_px"].numpy(), [f, f], rtol=1e-6)
    np.testing.assert_allclose(item["princpt_px"].numpy(), [14.5, 9.5])
    assert default_intrinsics((20, 30)) == ((f, f), (14.5, 9.5))


def test_augmentation_flip_swaps_joints_and_keeps_camera_consistent(aux_samples):
    pairs = {"aux5": [(1, 2), (3, 4)]}
    ds = CroppedSampleDataset(aux_samples, input_size=64, augment=True, rng_seed=5, flip_pairs=pairs)
    perm = np.array([0, 2, 1, 4, 3])
    seen_flip = seen_rot = 0
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            p = ds.augment_params(i)
            item = ds[i]
            s = aux_samples[i]
            aff = item["crop_affine"].double().numpy()
            kp = transform_points(s.keypoints_2d_px.astype(np.float64), aff)
            conf = s.keypoints_conf
            if p.flip:
                seen_flip += 1
                kp, conf = kp[perm], conf[perm]
            seen_rot += p.rotation_deg != 0.0
            np.testing.assert_allclose(item["keypoints_2d_crop_px"].numpy(), kp, atol=1e-3)
            np.testing.assert_allclose(item["keypoints_conf"].numpy(), conf)
            # augmented 3D joints projected with the virtual crop camera land on the crop keypoints
            proj = _project(
                item["joints_3d_cam_mm"].double().numpy(),
                item["focal_crop_px"].double().numpy(),
                item["princpt_crop_px"].double().numpy(),
            )
            np.testing.assert_allclose(proj, item["keypoints_2d_crop_px"].numpy(), atol=2e-3)
            # the rotation/flip is rigid: bone lengths are unchanged
            j = item["joints_3d_cam_mm"].double().numpy()
            ref = np.linalg.norm(s.joints_3d_cam_mm - s.joints_3d_cam_mm[0], axis=1)
            np.testing.assert_allclose(np.linalg.norm(j - j[0], axis=1), ref[perm] if p.flip else ref, rtol=1e-5)
            # cam_aug_rotmat maps the original camera to the augmented one (flip excluded): R_z(-rotation)
            a = np.deg2rad(-p.rotation_deg)
            rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
            np.testing.assert_allclose(item["cam_aug_rotmat"].double().numpy(), rz, atol=1e-6)
            if not p.flip:
                np.testing.assert_allclose(j, s.joints_3d_cam_mm @ item["cam_aug_rotmat"].double().numpy().T,
                                           atol=1e-2)
    assert seen_flip > 0 and seen_rot > 0


def test_augmentation_is_deterministic_per_seed_and_epoch(aux_samples):
    a = CroppedSampleDataset(aux_samples, input_size=32, augment=True, rng_seed=1, flip_pairs={"aux5": [(1, 2)]})
    b = CroppedSampleDataset(aux_samples, input_size=32, augment=True, rng_seed=1, flip_pairs={"aux5": [(1, 2)]})
    torch.testing.assert_close(a[2]["image"], b[2]["image"])
    torch.testing.assert_close(a[2]["crop_affine"], b[2]["crop_affine"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["crop_affine"], b[2]["crop_affine"])
    # without flip pairs no flip is ever drawn
    c = CroppedSampleDataset(aux_samples, input_size=32, augment=True, rng_seed=1, flip_pairs={})
    assert not any(c.augment_params(i).flip for i in range(len(c)))
    # flip_pairs=None looks the joint set up lazily; an unknown set (or a missing module) disables flipping
    d = CroppedSampleDataset(aux_samples, input_size=32, augment=True, rng_seed=1)
    assert d.flip_pairs is None and not any(d.augment_params(i).flip for i in range(len(d)))


def test_persistent_workers_follow_set_epoch(aux_samples):
    # DataLoader workers kept alive across epochs draw the augmentation of the epoch set in the parent
    ds = CroppedSampleDataset(aux_samples, input_size=32, augment=True, rng_seed=1, flip_pairs={"aux5": [(1, 2)]})
    loader = DataLoader(ds, batch_size=len(ds), shuffle=False, num_workers=2, persistent_workers=True)
    seen = []
    for epoch in (0, 1, 2):
        ds.set_epoch(epoch)
        batch = next(iter(loader))
        expected = torch.stack([ds[i]["crop_affine"] for i in range(len(ds))])  # drawn here, in this process
        torch.testing.assert_close(batch["crop_affine"], expected, rtol=0, atol=0)
        seen.append(batch["crop_affine"])
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])


def test_missing_image_raise_and_skip(aux_samples, tmp_path):
    bad = Sample(**{**aux_samples[0].__dict__, "image_path": tmp_path / "nope.jpg"})
    ds = CroppedSampleDataset([bad, *aux_samples[1:3]], input_size=16)
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        ds[0]
    corrupt_path = tmp_path / "corrupt.png"
    corrupt_path.write_bytes(b"not a png")
    corrupt = Sample(**{**aux_samples[0].__dict__, "image_path": corrupt_path})
    with pytest.raises(FileNotFoundError, match="corrupt.png: image_path: unreadable"):
        CroppedSampleDataset([corrupt], input_size=16)[0]
    skip = CroppedSampleDataset([bad, *aux_samples[1:3]], input_size=16, on_bad_image="skip")
    with pytest.warns(UserWarning, match="nope.jpg"):
        item = skip[0]
    assert int(item["index"]) == 1


def test_dataset_rejects_mixed_joint_sets(aux_samples, target_samples):
    with pytest.raises(ValueError, match=r"samples\[10\].*one joint set"):
        CroppedSampleDataset([*aux_samples, target_samples[0]])
    bad_3d = Sample(**{**aux_samples[0].__dict__, "joints_3d_cam_mm": np.zeros((4, 3), np.float32)})
    with pytest.raises(ValueError, match=r"aux5_000.png: joints_3d_cam_mm: expected \(5, 3\), got \(4, 3\)"):
        CroppedSampleDataset([bad_3d])
    wrong_hw = Sample(**{**aux_samples[0].__dict__, "image_hw": (10, 10)})
    with pytest.raises(ValueError, match="image_hw"):
        CroppedSampleDataset([wrong_hw])[0]


# --------------------------------------------------------------------------------------------------------
# Sampler and collate
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("aux_len,target_len", [(37, 10), (10, 37), (16, 16)])
def test_mixed_batches_are_half_half_and_in_range(aux_len, target_len):
    sampler = MixedBatchSampler(aux_len, target_len, 8, seed=3)
    batches = list(sampler)
    larger = max(aux_len, target_len)
    assert len(batches) == len(sampler) == larger // 4
    for b in batches:
        assert len(b) == 8
        assert all(0 <= i < aux_len for i in b[:4])
        assert all(aux_len <= i < aux_len + target_len for i in b[4:])
    aux = np.array([b[:4] for b in batches]).ravel()
    tgt = np.array([b[4:] for b in batches]).ravel() - aux_len
    big, small, small_len = (aux, tgt, target_len) if aux_len >= target_len else (tgt, aux, aux_len)
    assert len(np.unique(big)) == len(big)  # larger set: each index at most once per epoch
    # smaller set cycles: every complete cycle is a permutation, and cycles are reshuffled
    cycles = [small[k : k + small_len] for k in range(0, len(small) - small_len + 1, small_len)]
    for c in cycles:
        assert sorted(c.tolist()) == list(range(small_len))
    if aux_len != target_len:
        assert len(cycles) >= 2 and not np.array_equal(cycles[0], cycles[1])


def test_sampler_deterministic_and_epoch_dependent():
    a = MixedBatchSampler(30, 12, 6, seed=7)
    b = MixedBatchSampler(30, 12, 6, seed=7)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    a.set_epoch(1)
    assert list(a) == list(b)
    assert list(MixedBatchSampler(30, 12, 6, seed=8)) != list(MixedBatchSampler(30, 12, 6, seed=7))


def test_sampler_drop_last_false_covers_larger_set():
    s = MixedBatchSampler(5, 23, 4, seed=0, drop_last=False)
    batches = list(s)
    assert len(batches) == math.ceil(23 / 2)
    tgt = {i - 5 for b in batches for i in b[2:]}
    assert tgt == set(range(23))
    assert all(len(b) == 4 and max(b[:2]) < 5 and min(b[2:]) >= 5 for b in batches)


@pytest.mark.parametrize("drop_last", [True, False])
def test_two_ranks_disjoint_and_covering(drop_last):
    kw = dict(seed=11, drop_last=drop_last)
    ranks = [MixedBatchSampler(50, 20, 4, rank=r, world_size=2, **kw) for r in range(2)]
    for r in ranks:
        r.set_epoch(3)
    per_rank = [list(r) for r in ranks]
    assert len(per_rank[0]) == len(per_rank[1]) == len(ranks[0])
    glob = ranks[0].global_batches()
    assert len(glob) == ranks[0].num_global_batches == 2 * len(per_rank[0])
    interleaved = [b for pair in zip(*per_rank) for b in pair]
    assert interleaved == glob  # covering: the two ranks together give the whole global list
    aux0 = {i for b in per_rank[0] for i in b[:2]}
    aux1 = {i for b in per_rank[1] for i in b[:2]}
    if drop_last:
        assert not aux0 & aux1  # disjoint: the larger set is split between ranks
        assert len(aux0 | aux1) == 48  # 25 batches rounded down to 24 for two ranks
    else:
        assert aux0 | aux1 == set(range(50))
    # single-process run with the same seed/epoch gives the same global batches up to DDP rounding
    single = MixedBatchSampler(50, 20, 4, **kw)
    single.set_epoch(3)
    assert list(single)[: len(glob)] == glob[: len(single)]


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="even"):
        MixedBatchSampler(10, 10, 5, seed=0)
    with pytest.raises(ValueError, match="rank"):
        MixedBatchSampler(10, 10, 4, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="> 0"):
        MixedBatchSampler(0, 10, 4, seed=0)
    with pytest.raises(ValueError, match="not enough"):
        MixedBatchSampler(3, 3, 8, seed=0)


def test_collate_requires_source():
    with pytest.raises(ValueError, match="MixedDataset"):
        collate_mixed([{"x": torch.zeros(1)}])


def test_dataloader_with_workers_over_mixed_fixture(aux_samples, target_samples):
    aux = CroppedSampleDataset(aux_samples, input_size=32)
    tgt = CroppedSampleDataset(target_samples, input_size=32)
    mixed = MixedDataset(aux, tgt)
    sampler = MixedBatchSampler(mixed.aux_len, mixed.target_len, 4, seed=0)
    loader = DataLoader(mixed, batch_sampler=sampler, collate_fn=collate_mixed, num_workers=2)
    batches = list(loader)
    assert len(batches) == len(sampler) == 5
    for idx, batch in zip(sampler, batches):
        a, t = batch["aux"], batch["target"]
        assert a["image"].shape == (2, 3, 32, 32) and t["image"].shape == (2, 3, 32, 32)
        assert a["keypoints_2d_crop_px"].shape == (2, 5, 2) and t["keypoints_2d_crop_px"].shape == (2, 3, 2)
        assert a["joints_3d_cam_mm"].shape == (2, 5, 3) and bool(a["has_3d"].all())
        assert not bool(t["has_3d"].any()) and t["joints_3d_cam_mm"].abs().sum() == 0
        assert a["joint_set"] == ["aux5", "aux5"] and t["joint_set"] == ["tgt3", "tgt3"]
        assert a["index"].tolist() == idx[:2]
        assert t["index"].tolist() == [i - 10 for i in idx[2:]]
        # worker output equals the in-process item
        ref = aux[idx[0]]
        torch.testing.assert_close(a["image"][0], ref["image"])
        torch.testing.assert_close(a["keypoints_2d_crop_px"][0], ref["keypoints_2d_crop_px"])
