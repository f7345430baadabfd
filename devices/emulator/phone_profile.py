"""The emulated phone's identity and hardware state: what `getprop`, `/proc` and `/sys` show.

A profile is a plain dict/JSON (see docs/emulator.md). Every profile is marked as emulated
(`ro.mnas.emulated=1`, model "mnas-emulated-phone" unless overridden, with "emulated" kept in the
model name), so its numbers can never pass for a real phone's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mnas.errors import UserError

EMULATED_MARK = "emulated"


@dataclass(frozen=True)
class ThermalZone:
    type: str
    temp_c: float


@dataclass(frozen=True)
class PhoneProfile:
    model: str = "mnas-emulated-phone"
    name: str = "mnas_emulated"
    device: str = "mnas_emu"
    manufacturer: str = "mnas"
    board: str = "emu8150"
    soc: str = "Emulated big.LITTLE (LiteRT on host CPU)"
    abi: str = "arm64-v8a"
    android_version: str = "13"
    sdk: int = 33
    serial: str = "EMU0001"
    # big.LITTLE: 4 little, 3 big, 1 prime core (Snapdragon 855-like frequencies, kHz).
    cpu_max_khz: tuple[int, ...] = (1785600, 1785600, 1785600, 1785600, 2419200, 2419200, 2419200, 2841600)
    cpu_min_khz: int = 300000
    governor: str = "schedutil"
    thermal_zones: tuple[ThermalZone, ...] = (
        ThermalZone("cpu-0-0-usr", 36.5), ThermalZone("cpu-1-0-usr", 38.2), ThermalZone("battery", 31.0))
    battery: dict = field(default_factory=lambda: {"capacity": 87, "status": "Charging", "temp_c": 30.5,
                                                   "health": "Good"})
    extra_props: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if EMULATED_MARK not in self.model.lower():
            # Never let an emulated phone pass for a real one.
            object.__setattr__(self, "model", f"{self.model} (emulated)")
        if not self.cpu_max_khz or any(int(f) <= 0 for f in self.cpu_max_khz):
            raise UserError("phone profile: cpu_max_khz must be a non-empty list of positive kHz values")

    @property
    def cores(self) -> int:
        return len(self.cpu_max_khz)

    @classmethod
    def from_dict(cls, data: dict) -> "PhoneProfile":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"phone profile: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(data)
        if "cpu_max_khz" in values:
            values["cpu_max_khz"] = tuple(int(f) for f in values["cpu_max_khz"])
        if "thermal_zones" in values:
            try:
                values["thermal_zones"] = tuple(ThermalZone(str(z["type"]), float(z["temp_c"]))
                                                for z in values["thermal_zones"])
            except (KeyError, TypeError, ValueError):
                raise UserError("phone profile: thermal_zones must be a list of {type, temp_c}") from None
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> "PhoneProfile":
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UserError(f"phone profile not found: {path}") from None
        except json.JSONDecodeError as err:
            raise UserError(f"phone profile {path} is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise UserError(f"phone profile {path} must be a JSON object")
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["cpu_max_khz"] = list(self.cpu_max_khz)
        out["thermal_zones"] = [asdict(z) for z in self.thermal_zones]
        return out

    # --- what the device shows -----------------------------------------------------------------------

    def properties(self) -> dict[str, str]:
        props = {
            "ro.product.model": self.model, "ro.product.name": self.name, "ro.product.device": self.device,
            "ro.product.manufacturer": self.manufacturer, "ro.product.brand": self.manufacturer,
            "ro.product.board": self.board, "ro.board.platform": self.board, "ro.hardware": self.board,
            "ro.soc.model": self.soc, "ro.soc.manufacturer": self.manufacturer,
            "ro.product.cpu.abi": self.abi, "ro.product.cpu.abilist": self.abi,
            "ro.build.version.release": self.android_version, "ro.build.version.sdk": str(self.sdk),
            "ro.build.fingerprint": f"{self.manufacturer}/{self.name}/{self.device}:{self.android_version}/"
                                    f"MNAS.EMU/1:userdebug/test-keys",
            "ro.serialno": self.serial, "ro.boot.serialno": self.serial,
            "ro.mnas.emulated": "1", "ro.mnas.emulated.backend": "LiteRT on host CPU",
            "sys.boot_completed": "1",
        }
        props.update({str(k): str(v) for k, v in self.extra_props.items()})
        props["ro.mnas.emulated"] = "1"  # not overridable
        return dict(sorted(props.items()))

    def banner(self, features: list[str]) -> bytes:
        return (f"device::ro.product.name={self.name};ro.product.model={self.model};"
                f"ro.product.device={self.device};features={','.join(features)}").encode()

    def virtual_files(self) -> dict[str, str]:
        """Device path -> content of the emulated /proc and /sys files."""
        files: dict[str, str] = {}
        n = self.cores
        span = f"0-{n - 1}" if n > 1 else "0"
        for name in ("possible", "present", "online"):
            files[f"/sys/devices/system/cpu/{name}"] = span + "\n"
        ranks = sorted(set(self.cpu_max_khz))
        parts = ["0xd05", "0xd0d", "0xd41", "0xd44"]  # Cortex-A55, A77, A78, X1 part numbers
        cpuinfo = []
        for cpu, max_khz in enumerate(self.cpu_max_khz):
            base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
            files[f"{base}/cpuinfo_max_freq"] = f"{max_khz}\n"
            files[f"{base}/cpuinfo_min_freq"] = f"{self.cpu_min_khz}\n"
            files[f"{base}/scaling_max_freq"] = f"{max_khz}\n"
            files[f"{base}/scaling_min_freq"] = f"{self.cpu_min_khz}\n"
            files[f"{base}/scaling_cur_freq"] = f"{max_khz}\n"
            files[f"{base}/scaling_governor"] = f"{self.governor}\n"
            files[f"{base}/scaling_available_governors"] = "performance powersave schedutil\n"
            files[f"/sys/devices/system/cpu/cpu{cpu}/online"] = "1\n"
            part = parts[min(ranks.index(max_khz), len(parts) - 1)]
            cpuinfo.append(f"processor\t: {cpu}\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd evtstrm aes pmull sha1 "
                           f"sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"
                           f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\n"
                           f"CPU part\t: {part}\nCPU revision\t: 0\n")
        files["/proc/cpuinfo"] = "\n".join(cpuinfo) + f"\nHardware\t: {self.soc} (mnas emulated phone)\n"
        for i, zone in enumerate(self.thermal_zones):
            files[f"/sys/class/thermal/thermal_zone{i}/type"] = f"{zone.type}\n"
            files[f"/sys/class/thermal/thermal_zone{i}/temp"] = f"{round(zone.temp_c * 1000)}\n"
        battery = self.battery or {}
        base = "/sys/class/power_supply/battery"
        for key in ("capacity", "status", "health"):
            if key in battery:
                files[f"{base}/{key}"] = f"{battery[key]}\n"
        if "temp_c" in battery:
            files[f"{base}/temp"] = f"{round(float(battery['temp_c']) * 10)}\n"  # tenths of a degree
        files[f"{base}/present"] = "1\n"
        files["/proc/version"] = "Linux version 5.10.0-mnas-emulated (LiteRT on host CPU)\n"
        return files
