"""ImageCache: same pixels as cv2.imread, each file decoded once, and identical dataset items."""

import cv2
import numpy as np
import torch

from neuralannot_cli.data.record import Sample
from neuralannot_cli.train.datasets import ImageCache, make_dataset


def _sample(path, i):
    kp = np.array([[20.0 + i, 30.0], [40.0, 50.0 - i], [30.0, 40.0]], np.float32)
    return Sample(dataset="coco_wholebody", image_path=path, image_hw=(64, 80), bbox_xywh_px=np.array([10, 10, 40, 50], np.float32),
                  keypoints_2d_px=kp, keypoints_conf=np.ones(3, np.float32), joint_set="toy_3")


def test_image_cache_decodes_once_and_matches_imread(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
        paths.append(str(p))
    calls = []
    real = cv2.imread
    monkeypatch.setattr(cv2, "imread", lambda path, *a: calls.append(path) or real(path, *a))
    cache = ImageCache()
    for _ in range(3):
        for p in paths:
            np.testing.assert_array_equal(cache(p), real(p))
    assert sorted(calls) == sorted(paths) and len(cache) == 3
    assert cache(str(tmp_path / "missing.png")) is None
    assert not cache(paths[0]).flags.writeable

    samples = [_sample(tmp_path / f"{i}.png", i) for i in range(3)]
    plain = make_dataset(samples, [False, True, False], 32, augment=True, seed=3)
    used = ImageCache()
    cached = make_dataset(samples, [False, True, False], 32, augment=True, seed=3, image_loader=used)
    for ds in (plain, cached):
        ds.set_epoch(2)
    for i in range(3):
        a, b = plain[i], cached[i]
        for k, v in a.items():
            if isinstance(v, torch.Tensor):
                torch.testing.assert_close(v, b[k], rtol=0, atol=0)
    # the dataset reads through the cache (an empty cache is falsy: it must not fall back to cv2.imread)
    assert len(used) == 3
    calls.clear()
    for i in range(3):
        cached[i]
    assert calls == []


def test_image_cache_preload(tmp_path, monkeypatch):
    paths = []
    for i in range(2):
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), np.full((8, 8, 3), i, np.uint8))
        paths.append(p)
    cache = ImageCache()
    cache.preload([paths[0], str(paths[1]), paths[0], tmp_path / "missing.png"])
    assert len(cache) == 3
    monkeypatch.setattr(cv2, "imread", lambda *a: (_ for _ in ()).throw(AssertionError("decoded again")))
    np.testing.assert_array_equal(cache(str(paths[1])), np.full((8, 8, 3), 1, np.uint8))


def test_crop_store_items_equal_fresh_ones_and_are_computed_once(tmp_path):
    """MemoizedCrops (augmentation off): the same items as a plain dataset, each computed once, shared by every
    dataset over the same store (also a prefix of the samples), unaffected by what callers add to an item."""
    import pytest

    from neuralannot_cli.train.datasets import CropStore, MemoizedCrops

    rng = np.random.default_rng(1)
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    samples = [_sample(str(tmp_path / f"{i}.png"), i) for i in range(4)]
    mirrored = [False, True, False, True]
    reads = []

    def loader(path):
        reads.append(path)
        return cv2.imread(path)

    plain = make_dataset(samples, mirrored, 32, augment=False, seed=0)
    store = CropStore(len(samples))
    memo = make_dataset(samples, mirrored, 32, augment=False, seed=5, image_loader=loader, crop_store=store)
    assert isinstance(memo, MemoizedCrops) and store.num_filled == 0
    for epoch in range(3):
        memo.set_epoch(epoch)
        for i in range(4):
            a, b = plain[i], memo[i]
            assert a.keys() == b.keys()
            for k, v in a.items():
                if isinstance(v, torch.Tensor):
                    torch.testing.assert_close(b[k], v, rtol=0, atol=0)
    assert sorted(reads) == sorted(s.image_path for s in samples)  # each image read once over 3 epochs
    item = memo[1]
    item["extra"] = 1
    assert "extra" not in memo[1]
    prefix = make_dataset(samples[:2], mirrored[:2], 32, augment=False, seed=0, image_loader=loader, crop_store=store)
    reads.clear()
    torch.testing.assert_close(prefix[-1]["image"], plain[1]["image"], rtol=0, atol=0)
    assert reads == [] and len(prefix) == 2
    with pytest.raises(IndexError):
        prefix[2]

    fresh = CropStore(4)
    pre = make_dataset(samples, mirrored, 32, augment=False, seed=0, crop_store=fresh)
    pre.preload()
    assert fresh.num_filled == 4
    with pytest.raises(ValueError, match="augment=False"):
        make_dataset(samples, mirrored, 32, augment=True, seed=0, crop_store=CropStore(4))
    with pytest.raises(ValueError, match="holds 2 items"):
        make_dataset(samples, mirrored, 32, augment=False, seed=0, crop_store=CropStore(2))
