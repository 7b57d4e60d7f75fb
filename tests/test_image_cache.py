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
