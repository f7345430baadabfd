"""The emulated phone: an ADB daemon on 127.0.0.1 whose `benchmark_model` runs LiteRT on the host.

It stands in for a real phone in tests and demos; its properties say it is emulated
(`ro.mnas.emulated=1`), so its numbers are never taken for a phone's. See docs/emulator.md.
"""

from devices.emulator.daemon import EmulatedPhone, FaultKnobs
from devices.emulator.phone_profile import PhoneProfile, ThermalZone

__all__ = ["EmulatedPhone", "FaultKnobs", "PhoneProfile", "ThermalZone"]
