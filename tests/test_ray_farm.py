"""The phone farm and parallel children on a real local Ray cluster, with emulated phones on loopback ports.

Everything is real: Ray actors in their own processes open the phones with adb-shell over TCP, the phones run
LiteRT, the table goes to SQLite. One Ray cluster for the module (`ray.init(num_cpus=2)`), shut down at the end.
"""

import importlib.util
import os
import socket

import pytest

from tests.conftest import require

require(importlib.util.find_spec("ray") is not None, "ray (pip install 'ray==2.60.0')")

import ray  # noqa: E402

from devices.adb_keys import ensure_key  # noqa: E402
from devices.android import AndroidDevice  # noqa: E402
from devices.base import ProfileOptions  # noqa: E402
from devices.emulator.daemon import EmulatedPhone  # noqa: E402
from devices.emulator.phone_profile import PhoneProfile  # noqa: E402
from devices.emulator.sample_model import tiny_cnn_tflite  # noqa: E402
from mnas.errors import UserError  # noqa: E402
from mnas.executors import device_resource, get_executor  # noqa: E402
from mnas.executors.farm import Farm, FarmDevice, Job  # noqa: E402

FAST = ProfileOptions(threads=1, warmup_runs=1, runs=5, max_rounds=1, target_rel_ci=0.5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Five emulated phones (A, B, C, the killable K: one model; O: another model) and a local Ray cluster
    whose node declares each phone's `device:<id>` resource, as `ray start --resources` would."""
    root = tmp_path_factory.mktemp("farm")
    key = ensure_key(root / "adbkey")
    binary = root / "benchmark_model"
    binary.write_bytes(b"\x7fELF stand-in build for the emulated phone\n" * 4)
    phones = {name: EmulatedPhone(port=0).start() for name in "ABCK"}
    phones["O"] = EmulatedPhone(port=0, profile=PhoneProfile(model="other-phone")).start()
    for phone in phones.values():
        with AndroidDevice(phone.serial, key_path=key, backoff_s=0.01) as device:
            device.setup(binary)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             resources={device_resource(p.serial): 1 for p in phones.values()})
    options = {"key_path": str(key), "backoff_s": 0.05, "retries": 2, "timeout_s": 10.0, "auth_timeout_s": 5.0}
    model = root / "tiny.tflite"
    model.write_bytes(tiny_cnn_tflite(resolution=16, channels=4, classes=4))
    try:
        yield {"phones": phones, "ids": {n: p.serial for n, p in phones.items()}, "options": options,
               "executor": get_executor("ray"), "model": model, "root": root}
    finally:
        ray.shutdown()
        for phone in phones.values():
            phone.close()


def test_profile_many_uses_every_phone_once_per_job(lab):
    ids = lab["ids"]
    with Farm([ids["A"], ids["B"], ids["C"]], lab["executor"], lab["options"]) as farm:
        assert len(farm.groups) == 1 and farm.fingerprint_key().startswith("emulated:")
        jobs = [Job(f"job{i}", lab["model"]) for i in range(9)]
        results = list(farm.profile_many(jobs, options=FAST))
        described = farm.describe()
    assert sorted(r.key for r in results) == sorted(j.key for j in jobs)  # each job exactly once
    assert all(r.profile.runs == 5 and r.profile.median_ms > 0 for r in results)
    assert {r.device_id for r in results} == {ids["A"], ids["B"], ids["C"]}  # the queue kept all three busy
    assert {d["state"] for d in described} == {"ready"}


def test_table_build_completes_when_a_phone_dies_mid_build(lab):
    from latency.store import TableStore
    from latency.table_builder import ops_of_specs
    from mnas import zoo
    from mnas.executors.table import build_table_on_farm

    ids = lab["ids"]
    ops = ops_of_specs([zoo.get("mnasnet-small", resolution=32, num_classes=10)])
    killed = []

    def kill_k_after_two(op_key, device_id, profile):
        if len(killed) == 0 and op_key:
            killed.append(op_key)
        elif len(killed) == 1:
            lab["phones"]["K"].close()  # the phone's server stops: its connections drop, new ones are refused
            killed.append(op_key)

    with Farm([ids["A"], ids["K"], ids["B"]], lab["executor"], lab["options"]) as farm, \
            TableStore.open(lab["root"] / "table.db", create=True) as store:
        report = build_table_on_farm(farm, store, ops, op_options=FAST, progress=False, on_op=kill_k_after_two)
        rows = store.entries(report.fingerprint_key)
        again = build_table_on_farm(farm, store, ops, op_options=FAST, progress=False)  # resumed: nothing left
    assert len(killed) >= 2, "the phone was never killed"
    assert ids["K"] in report.lost and report.requeued >= 1  # K left the rotation; its job went to another
    assert report.measured == len(ops) + 1 == len(rows)  # every op (and the overhead model) stored exactly once
    assert set(rows) == set(ops) | {"overhead"}
    by_k = [e for e in rows.values() if e.extra["device_id"] == ids["K"]]
    assert len(by_k) <= 3  # at most the two rows before the kill and one job K finished just before it stopped
    assert {e.extra["device_id"] for e in rows.values()} <= {ids["A"], ids["B"], ids["K"]}
    assert again.measured == 0 and again.skipped == len(ops)


def test_a_bad_job_is_reported_and_the_phone_stays_in_rotation(lab):
    ids = lab["ids"]
    with Farm([ids["C"]], lab["executor"], lab["options"]) as farm:
        with pytest.raises(UserError, match=rf"job junk failed on {ids['C']}: .*not a TFLite model"):
            list(farm.profile_many([Job("junk", b"\x00" * 64)], options=FAST))
        assert farm.lost == {} and farm.requeued == 0  # the phone answered: the job was bad, not the phone
        (result,) = farm.profile_many([Job("good", lab["model"])], options=FAST)
    assert result.device_id == ids["C"] and result.profile.runs == 5

def test_mixed_fingerprints_are_refused_for_a_table(lab):
    from latency.store import TableStore
    from mnas.executors.table import build_table_on_farm

    ids = lab["ids"]
    with Farm([ids["A"], ids["O"]], lab["executor"], lab["options"]) as farm:
        assert len(farm.groups) == 2
        with pytest.raises(UserError, match=r"mixes 2 device fingerprints"):
            farm.fingerprint_key()
        with TableStore.open(lab["root"] / "mixed.db", create=True) as store:
            with pytest.raises(UserError, match=r"mixes 2 device fingerprints"):
                build_table_on_farm(farm, store, {}, progress=False)
            assert store.counts() == {}
        # One fingerprint of a mixed farm can still be named explicitly (a search targets one device kind).
        other = farm.fingerprints[ids["O"]].key
        (result,) = farm.profile_many([Job("x", lab["model"].read_bytes())], other, FAST)
        assert result.device_id == ids["O"]
        assert FarmDevice(farm, other).profile(lab["model"], FAST).fingerprint.model.startswith("other-phone")


def test_farm_latency_measures_a_batch_on_every_phone_then_hits_the_cache(lab):
    from mnas import zoo
    from mnas.executors.latency import FarmLatency

    ids = lab["ids"]
    specs = [zoo.get(n, resolution=32, num_classes=10) for n in ("mnasnet-small", "mobilenetv3-small",
                                                                  "mnasnet-small", "mixnet-s")]
    with Farm([ids["A"], ids["B"]], lab["executor"], lab["options"]) as farm:
        source = FarmLatency(farm, options=FAST)
        first = source.latency_ms(specs)
        entries = list(source.cache._data.values())
        again = source.latency_ms(specs)
    assert len(entries) == 3  # the duplicate spec was measured once
    assert {e["device_id"] for e in entries} == {ids["A"], ids["B"]}  # the batch went to both phones
    assert first == again and first[0] == first[2] and all(v > 0 for v in first)
    assert source.settings()["fingerprint"] == farm.fingerprint_key() and source.parallel

def test_unknown_device_id_is_refused(lab):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match=rf"device 127.0.0.1:{port} is on no node of the Ray cluster"):
        Farm([lab["ids"]["A"], f"127.0.0.1:{port}"], lab["executor"], lab["options"])


def test_unreachable_ray_address_fails_fast(lab):
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    start = time.monotonic()
    with pytest.raises(UserError, match=rf"Ray cluster at 127.0.0.1:{port} is unreachable"):
        get_executor("ray", address=f"127.0.0.1:{port}")
    assert time.monotonic() - start < 10
    with pytest.raises(UserError, match="--ray-address must be"):
        get_executor("ray", address="not an address")


class MacsEvaluator:
    """A real, cheap evaluator for the plumbing: 'accuracy' from the analytic MAC count; records its pid."""

    name = "macs"

    def settings(self) -> dict:
        return {"evaluator": self.name}

    def evaluate(self, specs):
        from mnas.costs import count_macs
        from mnas.evaluators.base import EvalResult

        return [EvalResult(1.0 / (1.0 + count_macs(s) / 1e9), 0.0, False, {"pid": os.getpid(),
                                                                                    "name": s.name})
                for s in specs]


def test_evaluate_parallel_returns_results_in_order_from_ray_tasks(lab):
    from mnas import zoo
    from mnas.executors.children import ParallelEvaluator, evaluate_parallel

    specs = [zoo.get(n, resolution=64, num_classes=10) for n in ("mnasnet-small", "mnasnet-a1", "mobilenetv3-small",
                                                                  "mixnet-s")]
    expected = MacsEvaluator().evaluate(specs)
    results = evaluate_parallel(MacsEvaluator, specs, lab["executor"], num_cpus=1)
    assert [r.detail["name"] for r in results] == [s.name for s in specs]
    assert [r.accuracy for r in results] == [e.accuracy for e in expected]
    assert os.getpid() not in {r.detail["pid"] for r in results}  # they ran in Ray worker processes
    wrapped = ParallelEvaluator(MacsEvaluator(), MacsEvaluator, lab["executor"])
    assert wrapped.settings() == MacsEvaluator().settings() and wrapped.parallel
    assert [r.accuracy for r in wrapped.evaluate(specs)] == [e.accuracy for e in expected]


def test_local_executor_runs_the_same_farm_in_threads(lab):
    ids = lab["ids"]
    local = get_executor("local")
    with Farm([ids["A"], ids["B"]], local, lab["options"]) as farm:
        results = list(farm.profile_many([Job(f"j{i}", lab["model"]) for i in range(4)], options=FAST))
    assert sorted(r.key for r in results) == ["j0", "j1", "j2", "j3"]
    assert [x for x, _ in local.map_unordered(str, [1, 2])] == [1, 2]
    with pytest.raises(UserError, match="--ray-address needs --executor ray"):
        get_executor("local", address="127.0.0.1:6379")
    with pytest.raises(UserError, match="unknown executor"):
        get_executor("dask")


def _cli(monkeypatch, lab):
    from mnas import cli

    assert "farm" in cli.COMMAND_MODULES
    monkeypatch.setenv("MNAS_ADB_KEY", lab["options"]["key_path"])
    return cli.main


def test_cli_farm_list_and_bad_input_exit_2(lab, monkeypatch, capsys, tmp_path):
    import json

    main = _cli(monkeypatch, lab)
    ids = lab["ids"]
    assert main(["farm", "list", "--device", ids["A"], "--device", ids["O"], "--executor", "ray", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["executor"] == "ray" and len(listed["groups"]) == 2
    assert {d["id"] for d in listed["devices"]} == {ids["A"], ids["O"]}

    out = tmp_path / "t.db"
    assert main(["farm", "build", "--device", ids["A"], "--device", ids["O"], "--space", "mobilenetv3",
                 "--resolution", "32", "--out", str(out), "--executor", "ray"]) == 2
    assert "mixes 2 device fingerprints" in capsys.readouterr().err and not out.exists()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["farm", "list", "--device", ids["A"], "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Ray cluster at") and err.count("\n") == 1
    assert main(["farm", "list", "--device", f"127.0.0.1:{port}", "--executor", "ray"]) == 2
    assert "is on no node of the Ray cluster" in capsys.readouterr().err
    assert main(["farm", "list", "--device", f"127.0.0.1:{port}"]) == 2  # local executor: the phone is not there
    assert "not found: connection refused" in capsys.readouterr().err


def test_table_build_validate_and_devices_commands_take_the_farm(lab, monkeypatch, capsys, tmp_path):
    import json

    main = _cli(monkeypatch, lab)
    ids = lab["ids"]
    table = tmp_path / "farm.db"
    assert main(["table", "build", "--device", ids["A"], "--device", ids["B"], "--space", "mobilenetv3",
                 "--resolution", "32", "--out", str(table), "--calibrate", "0", "--no-progress", "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["executor"] == "local" and set(built["by_device"]) <= {ids["A"], ids["B"]}
    assert built["measured"] == built["total_ops"] + 1  # every op once, plus the overhead model
    assert main(["table", "validate", "--device", ids["C"], "--table", str(table), "--samples", "2",
                 "--executor", "ray", "--no-progress", "--json"]) == 0
    validated = json.loads(capsys.readouterr().out)
    assert validated["n"] == 2 and validated["rmspe"] >= 0
    assert main(["devices", "--connect", ids["A"], "--connect", ids["O"], "--executor", "ray", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["executor"] == "ray" and len(listed["groups"]) == 2


def test_scale_search_trains_candidates_as_ray_tasks_and_resumes(lab, monkeypatch, capsys, tmp_path):
    import json

    main = _cli(monkeypatch, lab)
    argv = ["scale", "search", "--arch", "mnasnet-small", "--num-classes", "10", "--max-candidates", "1",
            "--train-examples", "128", "--val-examples", "64", "--batch-size", "32", "--out", str(tmp_path),
            "--json", "--executor", "ray"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["candidates"]) == 2 and all(0 <= c["accuracy"] <= 1 for c in first["candidates"])
    assert main(argv[:-2]) == 0  # resumed locally: every candidate is stored, nothing is trained again
    again = json.loads(capsys.readouterr().out)
    assert [c["accuracy"] for c in again["candidates"]] == [c["accuracy"] for c in first["candidates"]]
