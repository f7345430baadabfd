"""Proxy data: the bundled MNIST default, image folders, .npz files, and the bad inputs that must be one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mnas.data import load_proxy_data
from mnas.errors import UserError


def _folder(root, classes: dict[str, int], size: int = 20):
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_default_is_bundled_mnist_padded_to_32_rgb_with_a_stratified_seeded_split():
    data = load_proxy_data()
    assert data.x_train.shape == (4000, 32, 32, 3) and data.x_val.shape == (1000, 32, 32, 3)
    assert data.num_classes == 10 and data.chance == pytest.approx(0.1)
    assert np.bincount(data.y_val).tolist() == [100] * 10  # 500 per class, 20% held out per class
    assert abs(float(data.x_train.mean())) < 1e-3 and float(data.x_train.std()) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_array_equal(data.x_train[..., 0], data.x_train[..., 2])  # gray replicated
    again, other = load_proxy_data(seed=0), load_proxy_data(seed=1)
    assert again.fingerprint() == data.fingerprint() != other.fingerprint()


def test_other_proxy_resolution_resizes():
    assert load_proxy_data(resolution=40).x_val.shape[1:] == (40, 40, 3)


def test_mnist_clutter_is_a_deterministic_builtin_with_ten_classes():
    data = load_proxy_data("mnist-clutter", resolution=48)
    assert data.source == "mnist-clutter" and data.num_classes == 10
    assert data.x_train.shape == (4000, 48, 48, 3) and data.x_val.shape == (1000, 48, 48, 3)
    assert np.bincount(data.y_val).tolist() == [100] * 10
    assert load_proxy_data("mnist-clutter", resolution=48).fingerprint() == data.fingerprint()  # seeded
    plain = load_proxy_data(resolution=48)
    assert data.fingerprint() != plain.fingerprint()  # not the plain digits

    def centroid_spread(x):  # std over images of the ink's mean column
        ink = x[:500, ..., 0] > x[:500, ..., 0].min()
        return ((ink.sum(1) * np.arange(48)).sum(1) / ink.sum((1, 2))).std()

    assert centroid_spread(data.x_train) > 2 * centroid_spread(plain.x_train)  # digits (and clutter) move
    assert load_proxy_data("mnist-clutter", resolution=32).x_val.shape[1:] == (32, 32, 3)


def test_image_folder_one_subfolder_per_class(tmp_path):
    root = _folder(tmp_path / "imgs", {"cat": 5, "dog": 4, "empty": 0})
    data = load_proxy_data(root, resolution=32)
    assert data.class_names == ("cat", "dog")  # a folder without images is not a class
    assert len(data.y_train) + len(data.y_val) == 9 and data.x_train.shape[1:] == (32, 32, 3)
    assert set(data.y_val.tolist()) == {0, 1}  # every class on both sides


def test_npz_with_gray_images_and_string_labels(tmp_path):
    x = np.random.default_rng(0).random((30, 16, 16)).astype(np.float32)
    y = np.array(["a", "b", "c"] * 10)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_proxy_data(tmp_path / "d.npz", resolution=24)
    assert data.class_names == ("a", "b", "c") and data.x_train.shape[1:] == (24, 24, 3)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no class sub-folders"),
    (lambda p: _folder(p / "one", {"only": 6}), "1 class(es)"),
    (lambda p: _folder(p / "noimg", {"a": 0, "b": 0}), "contains no images"),
    (lambda p: _folder(p / "tiny", {"a": 3, "b": 1}), "fewer than 2 images"),
    (lambda p: (np.savez(p / "bad.npz", x=np.zeros((4, 8, 8))), p / "bad.npz")[1], "must hold arrays 'x' and 'y'"),
    (lambda p: ((p / "f.txt").write_text("x"), p / "f.txt")[1], "neither a folder"),
])
def test_bad_data_is_one_user_error(tmp_path, make, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_proxy_data(make(tmp_path))
