"""TFLite's prebuilt `benchmark_model` for a phone's ABI: fetched once from TensorFlow's nightly location, cached.

    getprop ro.product.cpu.abi -> arm64-v8a -> <NIGHTLY_URL>/android_aarch64_benchmark_model
                                            -> $MNAS_CACHE/benchmark_model/arm64-v8a/benchmark_model

A cached binary is used without the network, so a phone can be set up offline once it has been fetched (or
once a local build was put at the cached path). `MNAS_BENCHMARK_MODEL_URL` replaces the nightly base URL (a
mirror; the tests serve a stand-in over loopback). Whether the binary runs is checked on the phone
(`AndroidDevice.setup` runs `--help`), not here: the host cannot execute an ARM binary.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from mnas.errors import UserError

NIGHTLY_URL = "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest"
# The Android ABIs TensorFlow publishes a prebuilt native benchmark_model for (tensorflow/lite/tools/benchmark).
NIGHTLY_NAME_OF_ABI = {"arm64-v8a": "android_aarch64_benchmark_model", "armeabi-v7a": "android_arm_benchmark_model"}
BAZEL_CONFIG_OF_ABI = {"arm64-v8a": "android_arm64", "armeabi-v7a": "android_arm"}
URL_ENV = "MNAS_BENCHMARK_MODEL_URL"
ELF_MAGIC = b"\x7fELF"


def cache_path(abi: str) -> Path:
    """Where the binary for `abi` is cached (and where a local build can be put by hand)."""
    root = Path(os.environ.get("MNAS_CACHE") or Path.home() / ".cache" / "mnas")
    return root / "benchmark_model" / abi / "benchmark_model"


def binary_url(abi: str) -> str:
    base = os.environ.get(URL_ENV) or NIGHTLY_URL
    return f"{base.rstrip('/')}/{NIGHTLY_NAME_OF_ABI[abi]}"


def _local_build_hint(abi: str) -> str:
    config = BAZEL_CONFIG_OF_ABI.get(abi, "android_<abi>")
    return (f"put a local build (bazel build -c opt --config={config} "
            f"//tensorflow/lite/tools/benchmark:benchmark_model) at {cache_path(abi)}, "
            "or pass --benchmark-binary PATH")


def fetch_benchmark_binary(abi: str, *, timeout_s: float = 60.0, refresh: bool = False) -> tuple[Path, str]:
    """(path, "cached" | "downloaded") of the benchmark_model for `abi`; UserError (one line) when it can be
    neither found in the cache nor fetched."""
    abi = abi.strip()
    if not abi:
        raise UserError("the phone reports no ABI (getprop ro.product.cpu.abi); pass --benchmark-binary PATH")
    path = cache_path(abi)
    if path.is_file() and path.stat().st_size > 0 and not refresh:
        return path, "cached"
    if abi not in NIGHTLY_NAME_OF_ABI:
        raise UserError(f"TensorFlow publishes no prebuilt benchmark_model for ABI {abi}; {_local_build_hint(abi)}")
    url = binary_url(abi)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            content = response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise UserError(f"cannot fetch benchmark_model for ABI {abi} from {url} ({reason}); "
                        f"{_local_build_hint(abi)}") from None
    if not content.startswith(ELF_MAGIC):
        raise UserError(f"{url} did not return an executable (no ELF header, {len(content)} bytes); "
                        f"{_local_build_hint(abi)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(content)
    partial.chmod(0o755)
    partial.replace(path)  # atomic: a killed download never leaves a truncated binary in the cache
    return path, "downloaded"


def forget(abi: str) -> None:
    """Drop the cached binary (it did not run on the phone): the next setup fetches it again."""
    cache_path(abi).unlink(missing_ok=True)
