"""`mnas devices setup` without --benchmark-binary: the prebuilt benchmark_model for the phone's ABI, fetched over
real HTTP (a stand-in served on loopback in place of TensorFlow's nightly location), cached by ABI, and used from
the cache when the network is gone. The phone is the emulated one (devices/emulator), over real ADB sockets."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from devices.adb_keys import ensure_key
from devices.benchmark_binary import NIGHTLY_NAME_OF_ABI, NIGHTLY_URL, binary_url, cache_path
from devices.emulator.daemon import EmulatedPhone
from mnas.cli import main

STAND_IN = b"\x7fELF stand-in for android_aarch64_benchmark_model; the emulated phone runs LiteRT\n" * 16


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.hits.append(self.path)
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body if body is not None else b"<html>not found</html>")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Files.files, _Files.hits = {}, []
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("MNAS_ADB_KEY", str(ensure_key(tmp_path / "adbkey")))
    monkeypatch.setenv("MNAS_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _url(httpd) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/nightly"


def test_the_official_location_and_names():
    assert binary_url("arm64-v8a") == f"{NIGHTLY_URL}/android_aarch64_benchmark_model"
    assert NIGHTLY_NAME_OF_ABI["armeabi-v7a"] == "android_arm_benchmark_model"
    assert NIGHTLY_URL.startswith("https://storage.googleapis.com/tensorflow-nightly-public/")


def test_setup_fetches_by_abi_caches_and_works_offline(server, env, monkeypatch, capsys):
    import json

    _Files.files = {"/nightly/android_aarch64_benchmark_model": STAND_IN}
    monkeypatch.setenv("MNAS_BENCHMARK_MODEL_URL", _url(server))
    with EmulatedPhone(port=0) as phone:
        device_id = f"127.0.0.1:{phone.port}"
        assert main(["devices", "setup", "--device", device_id, "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        assert first["source"] == "downloaded" and first["abi"] == "arm64-v8a" == phone.profile.abi
        assert _Files.hits == ["/nightly/android_aarch64_benchmark_model"]
        assert first["sha256"] == hashlib.sha256(STAND_IN).hexdigest()
        cached = cache_path("arm64-v8a")
        assert Path(first["local"]) == cached and cached.read_bytes() == STAND_IN
        assert str(cached).startswith(str(env / "cache"))
        server.shutdown()  # offline from here: the cached binary is used
        assert main(["devices", "setup", "--device", device_id]) == 0
        out = capsys.readouterr().out
        assert "benchmark_model ready" in out and "cached for arm64-v8a" in out
        assert main(["profile", "--device", device_id, "--model", str(_tiny_model(env)), "--runs", "4",
                     "--rounds", "1", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["device"]["binary_sha256"] == hashlib.sha256(STAND_IN).hexdigest()


def test_setup_offline_without_cache_says_where_to_put_a_build(env, monkeypatch, capsys):
    with socket.socket() as probe:  # a port nobody listens on: the network "is down"
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MNAS_BENCHMARK_MODEL_URL", f"http://127.0.0.1:{port}/nightly")
    with EmulatedPhone(port=0) as phone:
        assert main(["devices", "setup", "--device", f"127.0.0.1:{phone.port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot fetch benchmark_model for ABI arm64-v8a") and err.count("\n") == 1
    assert str(cache_path("arm64-v8a")) in err and "--config=android_arm64" in err
    assert not cache_path("arm64-v8a").exists()


def test_a_page_that_is_no_binary_is_refused(server, env, monkeypatch, capsys):
    monkeypatch.setenv("MNAS_BENCHMARK_MODEL_URL", _url(server) + "/missing")  # 404 page
    with EmulatedPhone(port=0) as phone:
        assert main(["devices", "setup", "--device", f"127.0.0.1:{phone.port}"]) == 2
    err = capsys.readouterr().err
    assert "HTTP Error 404" in err or "Not Found" in err
    _Files.files = {"/nightly/android_aarch64_benchmark_model": b"<html>a captive portal</html>"}
    monkeypatch.setenv("MNAS_BENCHMARK_MODEL_URL", _url(server))
    with EmulatedPhone(port=0) as phone:
        assert main(["devices", "setup", "--device", f"127.0.0.1:{phone.port}"]) == 2
    err = capsys.readouterr().err
    assert "did not return an executable" in err and err.count("\n") == 1
    assert not cache_path("arm64-v8a").exists()


def _tiny_model(root: Path) -> Path:
    from devices.emulator.sample_model import tiny_cnn_tflite

    path = root / "tiny.tflite"
    path.write_bytes(tiny_cnn_tflite(resolution=16, channels=4, classes=4))
    return path
