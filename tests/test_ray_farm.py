"""The phone farm and parallel children on a real local Ray cluster, with emulated phones on loopback ports.

Everything is real: Ray actors in their own processes open the phones with adb-shell over TCP, the phones run
LiteRT, the table goes to SQLite. One Ray cluster for the module (`ray.cluster_utils.Cluster`: a head node with
2 CPUs that the driver joins), shut down at the end; the node-loss test adds a second node and kills it.
"""

import importlib.util
import os
import signal
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
# The farm sees a killed node's actors fail at once, whatever this says; Ray's own health check then takes
# about 12 s more (defaults) to mark the node dead, which the node-loss test waits for. Checked every second
# here: a killed raylet refuses at once, so 3 misses (about 3 s) find it, while a live but busy one would have
# to stall 3 checks of 5 s in a row to be taken for dead.
HEALTH_CHECK = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 1000,
                "health_check_timeout_ms": 5000, "health_check_failure_threshold": 3}


def _phone(key, binary, profile: PhoneProfile | None = None) -> EmulatedPhone:
    """An emulated phone on a loopback port, trusting `key`, with a stand-in `benchmark_model` set up."""
    phone = EmulatedPhone(port=0, **({"profile": profile} if profile else {})).start()
    with AndroidDevice(phone.serial, key_path=key, backoff_s=0.01) as device:
        device.setup(binary)
    return phone


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Five emulated phones (A, B, C, the killable K: one model; O: another model) and a local Ray cluster
    whose head node declares each phone's `device:<id>` resource, as `ray start --resources` would."""
    from ray.cluster_utils import Cluster

    root = tmp_path_factory.mktemp("farm")
    key = ensure_key(root / "adbkey")
    binary = root / "benchmark_model"
    binary.write_bytes(b"\x7fELF stand-in build for the emulated phone\n" * 4)
    phones = {name: _phone(key, binary) for name in "ABCK"}
    phones["O"] = _phone(key, binary, PhoneProfile(model="other-phone"))
    options = {"key_path": str(key), "backoff_s": 0.05, "retries": 2, "timeout_s": 10.0, "auth_timeout_s": 5.0}
    model = root / "tiny.tflite"
    model.write_bytes(tiny_cnn_tflite(resolution=16, channels=4, classes=4))
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "include_dashboard": False, "_system_config": HEALTH_CHECK,
            "resources": {device_resource(p.serial): 1 for p in phones.values()}})
        ray.init(address=cluster.address, log_to_driver=False)
        yield {"phones": phones, "ids": {n: p.serial for n, p in phones.items()}, "options": options,
               "executor": get_executor("ray"), "model": model, "root": root, "cluster": cluster,
               "key": key, "binary": binary}
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        for phone in phones.values():
            phone.close()


@pytest.fixture
def second_node(lab):
    """A second Ray node on this machine, joined to the head with two phones of its own (N1, N2), as
    `ray start --address HEAD --resources '{"device:N1": 1, "device:N2": 1}'` on a second host would."""
    phones = {name: _phone(lab["key"], lab["binary"]) for name in ("N1", "N2")}
    cluster = lab["cluster"]
    node = cluster.add_node(num_cpus=0, resources={device_resource(p.serial): 1 for p in phones.values()})
    cluster.wait_for_nodes()
    try:
        yield {"cluster": cluster, "node": node, "ids": {n: p.serial for n, p in phones.items()}}
    finally:
        if node in cluster.worker_nodes:
            cluster.remove_node(node, allow_graceful=False)
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


def _alive(node_id: str) -> bool:
    return any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes())


def _eventually(condition, timeout_s: float) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_table_build_completes_when_a_ray_node_is_killed_mid_build(lab, second_node):
    """A farm over two Ray nodes (head: phone A; node 2: phones N1 and N2) builds a table of 30 real ops of the
    mobilenetv3 space; every process of node 2 is SIGKILLed while both its phones have a job out."""
    from collections import Counter

    from latency.store import TableStore
    from latency.table_builder import ops_of_space
    from mnas import spaces
    from mnas.executors.table import build_table_on_farm

    head, n1, n2 = lab["ids"]["A"], second_node["ids"]["N1"], second_node["ids"]["N2"]
    ops = dict(list(ops_of_space(spaces.get("mobilenetv3"), 32).items())[:30])
    stored: list[tuple[str, str]] = []  # (op key, device id) of every committed row, in order
    killed_at: list[int] = []

    def kill_node_two(op_key, device_id, profile):
        stored.append((op_key, device_id))
        if not killed_at and device_id == head and {n1, n2} <= {d for _, d in stored}:
            # The row just stored is A's, so N1 and N2 each have a job out on node 2 right now. A host that
            # loses power loses its phones' actors with its raylet; with the raylet alone killed they may go
            # on answering until they notice (8 more jobs in one run here, none in another).
            for pid in actor_pids:
                os.kill(pid, signal.SIGKILL)
            second_node["cluster"].remove_node(second_node["node"], allow_graceful=False)
            killed_at.append(len(stored))

    with Farm([head, n1, n2], lab["executor"], lab["options"]) as farm, \
            TableStore.open(lab["root"] / "two-nodes.db", create=True) as store:
        where = {d: lab["executor"].result(lab["executor"].call(farm.workers[d], "where")) for d in (head, n1, n2)}
        actor_pids = [where[n1]["pid"], where[n2]["pid"]]
        assert len({w["pid"] for w in where.values()} | {os.getpid()}) == 4  # each phone's actor: its own process
        report = build_table_on_farm(farm, store, ops, op_options=FAST, progress=False, on_op=kill_node_two)
        rows = store.entries(report.fingerprint_key)
        (counted,) = store.counts().values()
    assert killed_at, "node 2 was never killed"
    assert _eventually(lambda: not _alive(second_node["node"].node_id), 30)  # Ray's health check saw node 2 go
    assert set(report.lost) == {n1, n2} and report.requeued == 2  # each lost phone's job out went back once
    assert all(why.startswith("device worker died") for why in report.lost.values())
    assert Counter(k for k, _ in stored) == Counter(set(ops) | {"overhead"})  # each op committed exactly once
    assert counted == len(rows) == len(ops) + 1 == report.measured  # and one row each in the table file
    assert {k: e.extra["device_id"] for k, e in rows.items()} == dict(stored)
    after = [d for _, d in stored[killed_at[0]:]]
    assert sum(d != head for d in after) <= 2  # node 2 answered nothing after the kill but what it had finished
    assert report.by_device == Counter(d for _, d in stored) and min(report.by_device.values()) >= 1


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
