"""``python -m fleetwire.bench``: the report's shape (tiny runs; no figure is asserted)."""

import json
import subprocess
import sys
import time

import pytest

from fleetwire import bench

ROW_KEYS = {"name", "unit", "ours", "baseline", "ratio"}


def run_bench(tmp_path, *args):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "fleetwire.bench", "--rounds", "1", "--duration", "0.05", "--sizes", "64", "--json", str(out)]
    done = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout, json.loads(out.read_text())


def test_json_has_runs_and_a_summary_against_every_baseline(tmp_path):
    table, report = run_bench(tmp_path, "--security", "plain", "--modes", "oneway", "--impls", "ours,asyncio,uvloop")
    assert set(report) >= {"throughput", "ping", "native", "skipped", "summary"}
    assert [(g["mode"], g["size"], g["tls"]) for g in report["throughput"]] == [("oneway", 64, False)]
    names = [r["name"] for r in report["summary"]]
    assert names == [
        "py oneway 64B plaintext in msg/s vs asyncio",
        "py oneway 64B plaintext in msg/s vs uvloop",
        "py oneway 64B plaintext py-cpu vs asyncio",
        "py oneway 64B plaintext py-cpu vs uvloop",
    ]
    for row in report["summary"]:
        assert ROW_KEYS <= set(row)
    uvloop_rows = [r for r in report["summary"] if r["name"].endswith("vs uvloop")]
    if bench.available("uvloop"):
        assert "uvloop" not in report["skipped"]
        assert all("skipped" not in r for r in uvloop_rows)
    else:
        assert report["skipped"]["uvloop"] == "uvloop not installed"
        assert all(r["skipped"] == "uvloop not installed" and r["baseline"] is None for r in uvloop_rows)
        assert "uvloop    skipped: uvloop not installed" in table


def test_ping_and_native_rows(tmp_path):
    _, report = run_bench(tmp_path, "--security", "plain", "--modes", "ping,native", "--impls", "ours,asyncio")
    names = [r["name"] for r in report["summary"]]
    assert names == [
        "py ping GIL-tick p50 ms vs asyncio",
        "py ping GIL-tick p99 ms vs asyncio",
        "py ping no-tick p99 (control)",
        "py ping GIL-tick p99 vs system slice",
        "py native count 64B, Python idle",
        "py native echo 64B, Python idle",
    ]
    assert set(report["ping"]) == {"ours", "asyncio", "ours-idle", "ours-system-slice"}
    controls = {r["name"]: r for r in report["summary"][2:]}
    assert all(r["baseline"] is None and r["ratio"] is None for n, r in controls.items() if "system slice" not in n)
    # ours against ours with the system's slice, from the same rounds
    sliced = controls["py ping GIL-tick p99 vs system slice"]
    assert sliced["ours"] == bench.median(report["ping"]["ours"], "p99_ms")
    assert sliced["baseline"] == bench.median(report["ping"]["ours-system-slice"], "p99_ms")


def test_hold_tick_keeps_the_gil_without_cpu(monkeypatch):
    monkeypatch.setattr(bench, "TICK", "hold")
    c0, t0 = time.thread_time(), time.perf_counter()
    bench.spin(0.02)
    assert time.perf_counter() - t0 >= 0.02
    assert time.thread_time() - c0 < 0.015


def test_a_missing_baseline_is_reported_not_measured(monkeypatch):
    monkeypatch.setitem(bench.OPTIONAL, "zmq", ("no_such_module_fw", "pyzmq"))
    assert bench.missing("zmq") == "pyzmq not installed"
    assert bench.missing("asyncio") is None
    rows = {"ours": [{"in_per_s": 10.0, "thread_cpu_us_per_msg": 1.0}], "asyncio": [{"in_per_s": 4.0, "thread_cpu_us_per_msg": 4.0}]}
    out = bench.against_baselines("p", bench.FIGURES, rows, ["asyncio", "zmq"], {"zmq": "pyzmq not installed"})
    by_name = {r["name"]: r for r in out}
    assert by_name["p in msg/s vs asyncio"]["ratio"] == 2.5
    assert by_name["p py-cpu vs asyncio"]["ratio"] == 4.0
    assert by_name["p in msg/s vs zmq"] == {
        "name": "p in msg/s vs zmq", "unit": "msg/s", "ours": 10.0, "baseline": None, "ratio": None, "skipped": "pyzmq not installed"
    }


def test_unknown_impls_are_refused():
    done = subprocess.run([sys.executable, "-m", "fleetwire.bench", "--impls", "ours,nope"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "unknown nope" in done.stderr


@pytest.mark.parametrize("ours,baseline,higher,ratio", [(4.0, 2.0, True, 2.0), (1.0, 5.0, False, 5.0), (None, 2.0, True, None), (3.0, None, True, None)])
def test_summary_ratio_direction(ours, baseline, higher, ratio):
    assert bench.summary("x", "u", ours, baseline, higher)["ratio"] == ratio
