"""Device jobs (`mnas devices setup`, `mnas profile`): one device opened, used and closed; results as dicts."""

from __future__ import annotations

from pathlib import Path

from devices.base import ProfileOptions
from mnas.errors import UserError


def resolve_model(ref: str) -> Path:
    """A `.tflite` path as given, or NAME|ARCH_FILE exported to a (cached) `.tflite`."""
    if ref.lower().endswith(".tflite"):
        path = Path(ref)
        if not path.is_file():
            raise UserError(f"model file not found: {ref}")
        return path
    from mnas.archfile import resolve_arch
    from mnas.export import export_tflite

    return export_tflite(resolve_arch(ref))


def setup_device(device_id: str, benchmark_binary: Path | None = None) -> dict:
    """Push benchmark_model to a phone and check that it runs. Without a binary: TensorFlow's prebuilt one for the
    phone's ABI, from the cache or fetched (`devices.benchmark_binary`)."""
    from devices.registry import open_device

    device = open_device(device_id)
    try:
        if not hasattr(device, "setup"):
            raise UserError(f"device {device_id} needs no setup (it runs LiteRT in this process)")
        if benchmark_binary is not None:
            return device.setup(benchmark_binary) | {"source": str(benchmark_binary)}
        return _setup_prebuilt(device)
    finally:
        device.close()


def _setup_prebuilt(device) -> dict:
    from devices import benchmark_binary as prebuilt

    abi = device.properties().get("ro.product.cpu.abi", "")
    path, how = prebuilt.fetch_benchmark_binary(abi)
    try:
        result = device.setup(path)
    except UserError:
        if how == "downloaded":
            prebuilt.forget(abi)  # a fetched binary that does not run there is not kept
        raise
    return result | {"source": how, "abi": abi, "local": str(path)}


def profile_model(device_id: str, model_ref: str, options: ProfileOptions) -> dict:
    """The model (a .tflite, or NAME|ARCH_FILE exported first) profiled on the device: `Profile.to_dict()`
    plus the file timed."""
    from devices.registry import open_device

    if not 0 < options.target_rel_ci < 1:
        raise UserError(f"--target-ci must be between 0 and 1, got {options.target_rel_ci}")
    device = open_device(device_id)
    try:
        model = resolve_model(model_ref)
        profile = device.profile(model, options)
    finally:
        device.close()
    return profile.to_dict() | {"model": str(model)}
