"""The executor's backends on the tiny CI grid: a local Ray cluster (127.0.0.1) gives the local backend's
metrics, and a worker killed mid-cell, on Ray or local, costs nothing but the rerun of that cell."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from zeroflow_core.pipeline import stages
from zeroflow_core.pipeline.params import load_params

ROOT = Path(__file__).parents[1]
RAY = Path(sys.executable).with_name("ray")
# `make test` runs each file in one test process (--dist loadfile): one process owns the cluster


def tiny_grid() -> dict:
    params = load_params(ROOT / "tests" / "ci-params.yaml")
    params["train"].update(backbone_weights="", threads=1)  # random init: no pretrained file needed
    return params


def run_grid(params: dict, where: Path, monkeypatch, stage_names=None) -> dict:
    """Run the grid's train stages in `where`; the metrics of every cell by name."""
    monkeypatch.chdir(where)
    grid = params["grid"]
    results = {}
    for method in [grid["baseline"], *grid["methods"]]:
        for dataset in grid["datasets"]:
            if stage_names and f"{method}-{dataset}" not in stage_names:
                continue
            folder, _ = stages.train(params, method, dataset, log=lambda *_: None)
            for cell in sorted(folder.iterdir()):
                results[cell.name] = json.loads((cell / "metrics.json").read_text())
    return results


def same_metrics(a: dict, b: dict) -> bool:
    keys = ("acc_matrix", "loss_curves", "avg_acc", "forgetting", "forward_passes")
    return a.keys() == b.keys() and all(a[n][k] == b[n][k] for n in a for k in keys)


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray head on 127.0.0.1 with 2 CPUs, as `ray start --head` makes one: (address, its temp dir)."""
    import ray

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = Path(f"/tmp/zf-ray-{os.getpid()}")  # Ray's socket paths must stay short
    # a throw-away cluster on loopback: no token (Ray's default makes one per machine, README "Scale out")
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--num-gpus=0", "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                   check=True, capture_output=True, env=env)
    try:
        yield f"127.0.0.1:{port}", str(temp)
    finally:
        ray.shutdown()
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, env=env)
        shutil.rmtree(temp, ignore_errors=True)
        os.environ.pop("RAY_AUTH_MODE") if saved is None else os.environ.update(RAY_AUTH_MODE=saved)


@pytest.fixture(scope="module")
def local_results(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    try:
        params = tiny_grid()
        params["execution"] = {"backend": "local", "workers": 1}
        yield run_grid(params, tmp_path_factory.mktemp("local"), monkeypatch)
    finally:
        monkeypatch.undo()


def on_ray(address: str) -> dict:
    params = tiny_grid()
    params["execution"] = {"backend": "ray", "ray_address": address, "cpus_per_cell": 1, "gpus_per_cell": 0}
    return params


def test_the_ray_backend_gives_the_local_backends_metrics(ray_cluster, local_results, tmp_path, monkeypatch):
    assert len(local_results) == 14  # 2 baseline cells + 2 methods × (2 optimizers + the zero-step control) × 2 seeds
    assert same_metrics(run_grid(on_ray(ray_cluster[0]), tmp_path, monkeypatch), local_results)


def test_a_ray_worker_killed_mid_cell_is_rerun_and_the_grid_ends_the_same(ray_cluster, local_results, tmp_path,
                                                                          monkeypatch):
    address, temp = ray_cluster
    killed = []

    def busy_worker_of_this_cluster(process, command):
        # Ray titles a worker running a task `ray::<function>`; its parent, the raylet, names the cluster's temp dir
        return "ray::_run_on_ray" in command and temp in " ".join(process.parent().cmdline())

    killer = threading.Thread(target=kill_first, args=(busy_worker_of_this_cluster, killed))
    killer.start()
    results = run_grid(on_ray(address), tmp_path, monkeypatch, stage_names={"ease-hues"})
    killer.join()
    assert killed, "no Ray worker was seen running a cell"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    # ease-hues: fo-sgd, zo-sgd and the zero-step control, two seeds each
    assert same_metrics(results, {name: local_results[name] for name in results}) and len(results) == 6


def kill_first(wanted, killed: list, own_children: bool = False, timeout: float = 120) -> None:
    """SIGKILL the first process for which `wanted(process, command line)` holds (polled every 20 ms); with
    `own_children`, only among this test process's descendants (not another test's workers)."""
    deadline = time.monotonic() + timeout
    while not killed and time.monotonic() < deadline:
        processes = psutil.Process().children(recursive=True) if own_children else psutil.process_iter()
        for process in processes:
            try:
                command = " ".join(process.cmdline())
                match = wanted(process, command)
            except psutil.Error:
                continue
            if match:
                os.kill(process.pid, signal.SIGKILL)
                killed.append(process.pid)
                return
        time.sleep(0.02)


def test_a_local_worker_killed_mid_cell_is_replaced_and_the_grid_ends_the_same(local_results, tmp_path, monkeypatch):
    params = tiny_grid()
    params["execution"] = {"backend": "local", "workers": 2}
    killed, logged = [], []
    killer = threading.Thread(target=kill_first, args=(lambda _, command: "spawn_main(tracker_fd=" in command, killed,
                                                      True))
    killer.start()
    monkeypatch.chdir(tmp_path)
    folder, _ = stages.train(params, "ease", "hues", log=logged.append)
    killer.join()
    assert killed and any("a local worker died" in line for line in logged), logged
    results = {cell.name: json.loads((cell / "metrics.json").read_text()) for cell in sorted(folder.iterdir())}
    # ease-hues: fo-sgd, zo-sgd and the zero-step control, two seeds each
    assert same_metrics(results, {name: local_results[name] for name in results}) and len(results) == 6
