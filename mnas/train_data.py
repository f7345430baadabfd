"""Data for `mnas train`: in-memory arrays (the shipped proxy, `mnist-clutter`, a `.npz`) or a folder of class
folders streamed with tf.data, behind one interface that yields batches of standardised float32 NHWC images.

Folders are never loaded whole: files are listed once (one sub-folder per class; `train/` and `val/` under the
root when the split is given, else a seeded stratified split as `mnas.data` does), then each epoch reads,
decodes, resizes and standardises them in parallel tf.data map calls, batched and prefetched. Pixels are
standardised with one mean/std estimated on up to `STATS_IMAGES` training images (the in-memory sources use
the whole training split, in `mnas.data`).

Batch order is a numpy permutation seeded by (seed, epoch) and augmentation is stateless (seeded by seed, epoch,
batch), so an epoch is the same batches whether it runs in the first process or after a resume.
TensorFlow is imported inside functions: `mnas.training` (and `mnas search`) stay cheap to import.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from mnas.data import BUILTIN_SOURCES, ProxyData, _stratified_split, load_proxy_data
from mnas.errors import UserError

# What tf.io.decode_image reads; other files in a class folder are ignored (a folder with none is an error).
STREAM_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
STATS_IMAGES = 512
DEFAULT_PROXY_RESOLUTION = 32


@dataclass
class ArrayData:
    """A `ProxyData` split held in memory (batches are gathered from one constant tensor)."""

    proxy: ProxyData
    flip_default: bool
    kind: str = "in-memory"
    _tensors: tuple = field(default=(), repr=False)

    source = property(lambda self: self.proxy.source)
    class_names = property(lambda self: self.proxy.class_names)
    num_classes = property(lambda self: self.proxy.num_classes)
    resolution = property(lambda self: self.proxy.resolution)
    train_count = property(lambda self: len(self.proxy.y_train))
    val_count = property(lambda self: len(self.proxy.y_val))

    def fingerprint(self) -> str:
        return self.proxy.fingerprint()

    def describe(self) -> dict:
        return {"standardisation": "pixels - mean / std of the training split (mnas.data)"}

    def train_batches(self, order: np.ndarray):
        """(steps, batch) indices -> dataset of (x, y) batches."""
        import tensorflow as tf

        if not self._tensors:
            self._tensors = (tf.constant(self.proxy.x_train), tf.constant(self.proxy.y_train))
        x, y = self._tensors
        return tf.data.Dataset.from_tensor_slices(order).map(lambda idx: (tf.gather(x, idx), tf.gather(y, idx)))

    def val_batches(self, batch_size: int):
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices((self.proxy.x_val, self.proxy.y_val)).batch(batch_size)

    def train_images(self, indices: np.ndarray) -> np.ndarray:
        return self.proxy.x_train[indices]

    def files_of(self, order: np.ndarray | None) -> None:
        return None  # in memory: nothing to read, nothing to name


@dataclass
class FolderData:
    """Class folders streamed from disk: file lists in memory, images decoded per batch."""

    root: Path
    class_names: tuple[str, ...]
    train_files: np.ndarray
    train_labels: np.ndarray
    val_files: np.ndarray
    val_labels: np.ndarray
    resolution: int
    split: str
    mean: float = 0.0
    std: float = 1.0
    flip_default: bool = True
    kind: str = "streamed"

    source = property(lambda self: str(self.root))
    num_classes = property(lambda self: len(self.class_names))
    train_count = property(lambda self: len(self.train_labels))
    val_count = property(lambda self: len(self.val_labels))

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{self.resolution}".encode())
        for files in (self.train_files, self.val_files):
            for f in files:
                path = Path(f)
                digest.update(f"{path.relative_to(self.root)}:{path.stat().st_size}\n".encode())
        return digest.hexdigest()[:16]

    def describe(self) -> dict:
        return {"standardisation": f"(pixel - {self.mean:.4f}) / {self.std:.4f}, pixels 0..255 after a bilinear "
                                   f"resize to {self.resolution} px (antialiased)", "split": self.split}

    def _decode(self, path):
        import tensorflow as tf

        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [self.resolution, self.resolution], antialias=True)
        return (image - self.mean) / self.std

    def _dataset(self, files: np.ndarray, labels: np.ndarray, batch_size: int, drop_remainder: bool):
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((files, labels))
        ds = ds.map(lambda f, y: (self._decode(f), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(batch_size, drop_remainder=drop_remainder)

    def train_batches(self, order: np.ndarray):
        flat = order.reshape(-1)
        return self._dataset(self.train_files[flat], self.train_labels[flat], order.shape[1], True)

    def val_batches(self, batch_size: int):
        return self._dataset(self.val_files, self.val_labels, batch_size, False)

    def train_images(self, indices: np.ndarray) -> np.ndarray:
        return np.stack([self._decode(f).numpy() for f in self.train_files[indices]])

    def files_of(self, order: np.ndarray | None) -> np.ndarray:
        """The files in the order the batches of `order` (None: the validation batches) read them."""
        return self.val_files if order is None else self.train_files[order.reshape(-1)]


def check_decodable(path: str) -> None:
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.UnknownError) as err:
        reason = (err.message or type(err).__name__).strip().splitlines()[0]
        raise UserError(f"cannot read image {path!r}: {reason}") from None


def iterate(dataset, files: np.ndarray | None = None, batch_size: int = 1) -> Iterator:
    """Batches of `dataset`, which reads `files` in this order; a read error becomes one UserError line naming
    the unreadable file (a decode failure inside tf.data does not name it: it is found from the failing batch on)."""
    import tensorflow as tf

    iterator = iter(dataset)
    step = 0
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError:
            if files is None:
                raise
            start = step * batch_size
            for candidate in list(files[start:]) + list(files[:start]):
                check_decodable(candidate)
            raise
        yield batch
        step += 1


# -- opening ---------------------------------------------------------------------------------------
def open_train_data(source: str | None, resolution: int | None, val_fraction: float = 0.2, seed: int = 0,
                    train_size: int | None = None, val_size: int | None = None, spec_resolution: int = 224):
    """`source`: None (shipped proxy), a builtin name, a `.npz` or a folder. `resolution` None: the data's own
    (32 for the builtin proxies, the `.npz` image size, `spec_resolution` for a folder)."""
    path = Path(source) if source and str(source) not in BUILTIN_SOURCES else None
    if path is not None and path.is_dir():
        data = open_folder(path, resolution or spec_resolution, val_fraction, seed)
        return _subset_folder(data, train_size, val_size)
    if path is not None and path.suffix == ".npz" and resolution is None and path.exists():
        resolution = _npz_side(path)
    proxy = load_proxy_data(source, resolution=resolution or DEFAULT_PROXY_RESOLUTION, val_fraction=val_fraction,
                            seed=seed)
    if train_size or val_size:
        proxy = proxy.subset(train_size, val_size)
    # Digits are not mirror-symmetric: flipping would teach the proxy a different task.
    return ArrayData(proxy, flip_default=path is not None)


def _npz_side(path: Path) -> int:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            shape = arrays["x"].shape if "x" in arrays else ()
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {str(path)!r} as .npz: {err}") from None
    return max(int(shape[1]), 32) if len(shape) >= 3 else DEFAULT_PROXY_RESOLUTION


def _class_files(root: Path, known: tuple[str, ...] | None = None) -> tuple[list[str], list[list[str]]]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise UserError(f"data folder {str(root)!r} has no class sub-folders (expected one folder per class)")
    names, files = [], []
    for d in dirs:
        if known is not None and d.name not in known:
            raise UserError(f"class folder {str(d)!r} has no counterpart in the training classes ({', '.join(known)})")
        found = sorted(str(f) for f in d.iterdir() if f.is_file() and f.suffix.lower() in STREAM_SUFFIXES)
        if not found:
            raise UserError(f"empty class folder {str(d)!r}: no {', '.join(STREAM_SUFFIXES)} images")
        names.append(d.name)
        files.append(found)
    return names, files


def open_folder(root: Path, resolution: int, val_fraction: float, seed: int) -> FolderData:
    train_root = root / "train" if (root / "train").is_dir() else root
    names, per_class = _class_files(train_root)
    files = np.array([f for group in per_class for f in group])
    labels = np.array([i for i, group in enumerate(per_class) for _ in group], dtype=np.int64)
    if train_root != root and (root / "val").is_dir():
        val_names, val_per_class = _class_files(root / "val", tuple(names))
        val_files = np.array([f for group in val_per_class for f in group])
        val_labels = np.array([names.index(n) for n, group in zip(val_names, val_per_class) for _ in group],
                              dtype=np.int64)
        order = np.random.default_rng(seed).permutation(len(files))
        files, labels, split = files[order], labels[order], "train/ and val/ folders"
    else:
        if min(len(g) for g in per_class) < 2:
            raise UserError(f"data {str(root)!r}: every class needs at least 2 images (one to train, one to "
                            "validate) when there is no val/ folder")
        train_idx, val_idx = _stratified_split(labels, val_fraction, seed)
        val_files, val_labels = files[val_idx], labels[val_idx]
        files, labels = files[train_idx], labels[train_idx]
        split = f"stratified {1 - val_fraction:.0%}/{val_fraction:.0%} split, seed {seed}"
    data = FolderData(root, tuple(names), files, labels, val_files, val_labels, resolution, split)
    data.mean, data.std = _pixel_stats(data, seed)
    return data


def _pixel_stats(data: FolderData, seed: int) -> tuple[float, float]:
    pick = np.random.default_rng(seed).permutation(data.train_count)[:STATS_IMAGES]
    total, total_sq, count = 0.0, 0.0, 0
    dataset = data._dataset(data.train_files[pick], data.train_labels[pick], 64, False)
    for x, _ in iterate(dataset, data.train_files[pick], 64):
        x = x.numpy().astype(np.float64)
        total, total_sq, count = total + x.sum(), total_sq + np.square(x).sum(), count + x.size
    mean = total / count
    return float(mean), float(np.sqrt(max(total_sq / count - mean * mean, 0.0))) or 1.0


def _subset_folder(data: FolderData, train: int | None, val: int | None) -> FolderData:
    if train:
        data.train_files, data.train_labels = data.train_files[:train], data.train_labels[:train]
    if val:
        data.val_files, data.val_labels = data.val_files[:val], data.val_labels[:val]
    return data


# -- augmentation ----------------------------------------------------------------------------------
def augment_batch(x, seed, pad: int, flip: bool):
    """Random translation (reflect-pad by `pad`, crop back at a random offset per image) and, when `flip`,
    random horizontal flips; stateless ops seeded by `seed` (int32 [2]), so a resumed epoch is identical."""
    import tensorflow as tf

    size = x.shape[1]
    batch = tf.shape(x)[0]
    if pad:
        padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        offsets = tf.random.stateless_uniform([batch, 2], seed=seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
        rows = offsets[:, :1] + tf.range(size)[None]
        cols = offsets[:, 1:] + tf.range(size)[None]
        x = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    if flip:
        coin = tf.random.stateless_uniform([batch, 1, 1, 1], seed=seed + tf.constant([0, 7919], seed.dtype)) < 0.5
        x = tf.where(coin, tf.reverse(x, axis=[2]), x)
    return x
