import shutil
from pathlib import Path

import pytest
import yaml

from zeroflow_core.io import load_yaml
from zeroflow_core.pipeline.cells import grid_cells, run_config
from zeroflow_core.pipeline.params import check_params, load_params
from zeroflow_core.run.config import ConfigError

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("name", ["params.yaml", "tests/ci-params.yaml", "params-paper.yaml"])
def test_shipped_params_are_valid(name):
    params = load_params(ROOT / name)
    assert len(list(grid_cells(params))) >= 4


@pytest.mark.parametrize("name", ["params.yaml", "tests/ci-params.yaml", "params-paper.yaml"])
def test_the_optimizer_values_spelled_out_are_the_profiles(name):
    """params.yaml restates each optimizer's lr and q so that `dvc exp run -S optimizers.zo-sgd.lr=...`
    finds the key; restated, they change nothing."""
    from zeroflow_core.optim.registry import resolve_hyper
    from zeroflow_core.run.config import resolve_config

    params = load_params(ROOT / name)
    for optimizer, spelled in params["optimizers"].items():
        assert "lr" in spelled or params["profile"] == "paper" and optimizer == "fo-sgd", optimizer
        for method in params["grid"]["methods"]:
            for dataset in params["grid"]["datasets"]:
                profile = resolve_config({"profile": params["profile"], "method": method, "optimizer": optimizer,
                                          "dataset": dataset})
                own = resolve_hyper(optimizer, **profile["optimizer_hyper"])
                assert {key: own[key] for key in spelled} == spelled, (optimizer, method, dataset)


def test_the_smoke_rates_are_the_searchs_choices_and_its_page_shows_them():
    """profiles.yaml's smoke rates (rules with `source: zeroflow search-lr`) are what the search chose per optimizer
    (book/learning-rates.csv, the rate with the largest training-loss drop), and its book page is the command's
    rendering of that table."""
    import pandas as pd

    from zeroflow_core.optim import OPTIMIZERS
    from zeroflow_core.pipeline.lr_search import chosen_learning_rates, search_page
    from zeroflow_core.run.config import resolve_config

    table = pd.read_csv(ROOT / "book" / "learning-rates.csv")
    chosen = chosen_learning_rates(table)
    assert set(chosen) == set(OPTIMIZERS) and table.chosen.sum() == len(OPTIMIZERS)
    assert {o: float(lr) for o, lr in table[table.chosen].set_index("optimizer").lr.items()} == chosen
    for optimizer, lr in chosen.items():
        profile = resolve_config({"profile": "smoke", "method": "ease", "optimizer": optimizer, "dataset": "hues"})
        assert profile["optimizer_hyper"]["lr"] == lr, optimizer
    page = search_page(table, "ease", "hues", 0, "zeroflow search-lr")
    assert page == (ROOT / "book" / "learning-rates.md").read_text()


def test_the_paper_switch_reaches_every_stage(tmp_path):
    """README's one command, `cp params-paper.yaml params.yaml`: grid, sweeps and Table 2 all at the paper's scale."""
    from zeroflow_core.pipeline.cells import sweep_cells, train_cells
    from zeroflow_core.run.bench import efficiency_pairs

    shutil.copy(ROOT / "params-paper.yaml", tmp_path / "params.yaml")
    params = load_params(tmp_path / "params.yaml")
    assert "cp params-paper.yaml params.yaml && dvc repro" in (ROOT / "README.md").read_text()
    cub = {cell.name: cell.config for cell in train_cells(params, "ease", "cub")}
    # the official code's one seed first, with its seeding
    assert params["grid"]["seeds"][0] == params["ablations"]["seeds"][0] == 1993
    fo, zo = cub["ease-fo-sgd-cub-1993"], cub["ease-zo-sgd-cub-1993"]
    assert fo["seed"] == zo["seed"] == 1993 and fo["class_order_seed"] == cub["ease-zo-sgd-cub-1995"]["class_order_seed"] == 1993
    assert fo["optimizer_hyper"]["lr"] == 0.008 and fo["method_config"]["alpha"] == 0.05 and fo["epochs"] == 20
    assert zo["optimizer_hyper"]["lr"] == 1e-4 and zo["epochs"] == 100 and zo["batch_size"] == 32
    # INFTY's α (zeroflow.yaml) under ZO, the release config's under backprop; the cosine floor of PILOT's configs
    assert zo["method_config"]["alpha"] == 0.9 and fo["min_lr"] == 0.0
    assert zo["backbone"] == "vit-b16" and zo["max_steps_per_epoch"] == 0 and zo["heldout_every"] > 0
    q = [c for c in sweep_cells(params, "query_budget") if c.config["optimizer"] != "none"]
    assert {c.config["optimizer_hyper"]["q"] for c in q} == {1, 2, 4, 8, 16, 32}
    assert all(c.config["epochs"] == 100 and c.config["max_steps_per_epoch"] == 0 and c.config["dataset"] == "imagenet_a"
               for c in q)
    assert len(sweep_cells(params, "sparsity")) == 10 * 3 + 3  # and the zero-step control per seed
    # the α switch: both sides at the sweep's cells, the official one INFTY's 0.9
    alphas = {c.config["ease_alpha_under_zo"]: c.config["method_config"]["alpha"]
              for c in sweep_cells(params, "ease_alpha_under_zo") if c.config["optimizer"] != "none"}
    assert alphas == {"release": 0.1, "official": 0.9}
    pairs, settings = efficiency_pairs(params["efficiency"], "vit-b16")
    assert {name for name, _ in pairs} == set(params["grid"]["optimizers"]) and ("zo-sgd", 4) in pairs
    assert settings["batch_size"] == 48 and list(params["efficiency"]["models"]) == ["vit-b16"]


def _params():
    return load_yaml((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("edit,message", [
    (lambda p: p.update(trian={}), "unknown section 'trian' \\(did you mean 'train'\\?\\)"),
    (lambda p: p.update(optimizer={"zo-sgd": {"lr": 0.002}}), "unknown section 'optimizer' \\(did you mean 'optimizers'"),
    (lambda p: p["train"].update(epochz=3), "'train.epochz'"),
    (lambda p: p["train"].update(epochs="3"), "'train.epochs' must be int"),
    (lambda p: p["grid"].update(methods=["ease", "eaze"]), "eaze"),
    (lambda p: p["grid"].update(optimizers=[]), "'grid.optimizers' must be a non-empty list"),
    (lambda p: p["optimizers"]["zo-sgd"].update(q="four"), "'optimizers.zo-sgd'.*'q' must be int"),
    (lambda p: p["optimizers"].update({"zo-sdg": {}}), "zo-sdg"),
    (lambda p: p["methods"]["ease"].update(alhpa=1), "'methods.ease.alhpa'"),
    (lambda p: p["datasets"]["digits"].update(n_task=3), "'datasets.digits.n_task'"),
    (lambda p: p["pretrain"].update(epochs=1.5), "'pretrain.epochs' must be int"),
    (lambda p: p.update(profile="huge"), "huge"),
])
def test_a_wrong_key_or_type_is_named(edit, message):
    params = _params()
    edit(params)
    with pytest.raises(ConfigError, match=message):
        check_params(params)


def test_any_edit_of_params_yaml_reruns_the_check():
    """Each stage tracks its own sections; only the check tracks the whole file, so a new misspelled
    section (which no stage tracks) still stops `dvc repro` at the check."""
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["check_params"]
    assert "params.yaml" in stage["deps"]


def test_a_run_key_that_belongs_to_the_optimizer_or_method_is_pointed_there():
    from zeroflow_core.run.config import resolve_config

    with pytest.raises(ConfigError, match=r"'lr' \(did you mean 'optimizer_hyper.lr'\?\)"):
        resolve_config({"method": "ease", "optimizer": "zo-sgd", "dataset": "hues", "lr": 0.1})
    with pytest.raises(ConfigError, match=r"'alpha' \(did you mean 'method_config.alpha'\?\)"):
        resolve_config({"method": "ease", "optimizer": "zo-sgd", "dataset": "hues", "alpha": 0.1})
    with pytest.raises(ConfigError, match=r"'epoch' \(did you mean 'epochs'\?\)"):
        resolve_config({"method": "ease", "optimizer": "zo-sgd", "dataset": "hues", "epoch": 2})


def test_the_resolver_merges_the_layers_in_order_and_says_which_set_each_key():
    from zeroflow_core.pipeline.cells import resolve_run

    params = _params()
    params["train"].update(epochs=4, dataset_options={"n_train": 30})
    params["datasets"]["digits"] = {"n_tasks": 5, "flip": False, "epochs": 5, "dataset_options": {"n_test": 7}}
    params["optimizers"]["zo-sgd"] = {"lr": 0.02, "q": 2}
    del params["optimizers"]["fo-adam"]
    config, set_by = resolve_run(params, "ease", "zo-sgd", "digits", 1)
    assert config["epochs"] == 5 and set_by["epochs"] == "params.yaml datasets.digits"
    assert config["n_tasks"] == 5 and config["seed"] == 1 and set_by["seed"] == "run"
    # mappings merge key by key: train's n_train and the dataset's n_test both stay, each with its layer
    assert config["dataset_options"] == {"n_train": 30, "n_test": 7}
    assert set_by["dataset_options.n_train"] == "params.yaml train"
    assert set_by["dataset_options.n_test"] == "params.yaml datasets.digits"
    hyper = config["optimizer_hyper"]
    assert (hyper["lr"], hyper["q"]) == (0.02, 2) and set_by["optimizer_hyper.lr"] == "params.yaml optimizers.zo-sgd"
    assert hyper["momentum"] == 0.9 and set_by["optimizer_hyper.momentum"] == "registry"
    assert hyper["seed"] == 1 and set_by["optimizer_hyper.seed"] == "run"  # each run its own directions
    assert config["batch_size"] == 8 and set_by["batch_size"] == "profile smoke"
    assert config["method_config"] == {"alpha": 0.1, "beta": 0.0, "use_init_ptm": False, "head_scale": 1.0}
    assert set_by["method_config.alpha"] == "params.yaml methods.ease" and set_by["method_config.beta"] == "registry"
    # a profile rule that matches the run, when params.yaml does not restate its value
    fo_adam = resolve_run(params, "ease", "fo-adam", "digits", 0)
    assert fo_adam.config["optimizer_hyper"]["lr"] == 0.01
    assert fo_adam.set_by["optimizer_hyper.lr"] == "profile smoke: when optimizer=fo-adam"

    def leaves(mapping, prefix=""):
        return {key for name, value in mapping.items()
                for key in (leaves(value, f"{prefix}{name}.") if isinstance(value, dict) and value else [prefix + name])}

    assert set(set_by) == leaves(config)  # every key has its layer, and only keys of the configuration


def test_a_sweep_cell_says_which_layer_set_its_value_and_its_fixed_settings():
    from zeroflow_core.pipeline.cells import sweep_cells

    params = _params()
    params["ablations"]["sweeps"]["head_scale"] = {"hyper": "head_scale", "optimizers": ["fo-sgd", "zo-sgd"],
                                                   "values": [1.0, 16.0], "official": 1.0}
    cell = [c for c in sweep_cells(params, "sparsity_mode") if c.config["optimizer"] != "none"][-1]
    hyper = cell.config["optimizer_hyper"]
    assert (hyper["sparsity_mode"], hyper["sparsity"], hyper["q"]) == ("official", 0.5, 1)
    assert cell.set_by["optimizer_hyper.sparsity_mode"] == "params.yaml ablations.sweeps.sparsity_mode.values"
    assert cell.set_by["optimizer_hyper.sparsity"] == "params.yaml ablations.sweeps.sparsity_mode.with"
    assert cell.set_by["optimizer_hyper.lr"] == "params.yaml optimizers.zo-sgd"  # ablations.optimizers is empty
    assert cell.set_by["n_tasks"] == "params.yaml ablations.train"
    scale = [c for c in sweep_cells(params, "head_scale") if c.config["optimizer"] != "none"][-1]
    assert scale.config["method_config"]["head_scale"] == 16.0
    assert scale.set_by["method_config.head_scale"] == "params.yaml ablations.sweeps.head_scale.values"


def test_an_identity_key_or_an_unknown_key_in_a_layer_is_refused_naming_the_layer():
    from zeroflow_core.run.config import Layer, resolve

    with pytest.raises(ConfigError, match=r"--set: 'seed' is part of the run's identity"):
        resolve({"method": "ease", "optimizer": "zo-sgd", "dataset": "hues"}, [Layer("--set", {"seed": 3})])
    with pytest.raises(ConfigError, match=r"params.yaml train: unknown configuration key 'epoch' \(did you mean 'epochs'"):
        resolve({"method": "ease", "optimizer": "zo-sgd", "dataset": "hues"}, [Layer("params.yaml train", {"epoch": 2})])


def test_dvc_train_stage_depends_on_exactly_its_sections():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["train"]["params"] == ["profile", "train", "grid.optimizers", "grid.beyond_paper", "grid.seeds",
                                         "optimizers", "methods.${item.method}", "datasets.${item.dataset}"]
    assert set(stages["train"]["matrix"]) == {"method", "dataset"}
    assert "optimizers" not in stages["baseline"]["do"]["params"]  # no optimizer edit reruns the baseline


def test_the_grid_has_one_baseline_cell_per_dataset_and_seed():
    params = _params()
    cells = list(grid_cells(params))
    baseline = [cell for cell in cells if cell[0] == "simplecil"]
    assert baseline == [("simplecil", "none", d, s) for d in params["grid"]["datasets"] for s in params["grid"]["seeds"]]
    # each trainable method also runs its zero-step control (optimizer none)
    assert len(cells) == len(baseline) + len(params["grid"]["methods"]) * (len(params["grid"]["optimizers"]) + 1) * len(
        params["grid"]["datasets"]) * len(params["grid"]["seeds"])
    config = run_config(params, "simplecil", "none", "hues", 0)
    assert config["optimizer"] == "none" and config["optimizer_hyper"] == {}


@pytest.mark.parametrize("edit,message", [
    (lambda p: p["grid"].update(baseline="ease"), "'grid.baseline' must name a method that trains nothing"),
    (lambda p: p["grid"].update(methods=["simplecil", "ease"]), "belongs in 'grid.baseline'"),
    (lambda p: p["execution"].update(workers=0), "'execution.workers'"),
    (lambda p: p["execution"].update(backend="slurm"), "'execution.backend' must be one of local, ray"),
    (lambda p: p["execution"].update(gpus=1), "unknown setting 'execution.gpus'"),
    (lambda p: p["execution"].update(cpus_per_cell=0), "'execution.cpus_per_cell' must be a number >= 1"),
    (lambda p: p["pretrain"].update(grayscale="yes"), "'pretrain.grayscale' must be bool"),
    # each seed pretrains its own backbone: no one seed for them all, and no sweep seed without its backbone
    (lambda p: p["pretrain"].update(seed=0), "'pretrain.seed' is no longer a setting: the pipeline pretrains one "
                                             "backbone per seed of grid.seeds"),
    (lambda p: p["ablations"].update(seeds=[0, 7]), "'ablations.seeds' has 7, which grid.seeds lacks"),
])
def test_baseline_and_execution_settings_are_checked(edit, message):
    params = _params()
    edit(params)
    with pytest.raises(ConfigError, match=message):
        check_params(params)


def test_train_cells_share_the_threads_and_keep_their_identity():
    from zeroflow_core.pipeline.cells import train_cells
    from zeroflow_core.run.config import identity

    params = _params()
    params["train"]["threads"] = 2
    cells = train_cells(params, "ease", "hues")
    assert len(cells) == (len(params["grid"]["optimizers"]) + 1) * len(params["grid"]["seeds"])  # + zero-step control
    assert {cell.config["threads"] for cell in cells} == {1}
    params["execution"]["workers"] = 1
    alone = train_cells(params, "ease", "hues")
    assert alone[0].config["threads"] == 2 and identity(alone[0].config) == identity(cells[0].config)
    params["execution"].update(backend="ray", cpus_per_cell=4)
    on_ray = train_cells(params, "ease", "hues")
    assert on_ray[0].config["threads"] == 4 and identity(on_ray[0].config) == identity(cells[0].config)


def test_dataset_manifest_fingerprints_the_data():
    from zeroflow_core.data.manifest import dataset_manifest

    small = {"n_classes": 10, "n_train": 4, "n_test": 2}
    first = dataset_manifest("synthetic", None, **small)
    assert first["splits"]["train"] | {"sha256": None} == {"images": 40, "classes": 10, "sha256": None}
    assert dataset_manifest("synthetic", None, **small) == first
    other_seed = dataset_manifest("synthetic", None, seed=1, **small)
    assert other_seed["splits"]["train"]["sha256"] != first["splits"]["train"]["sha256"]


def test_prepare_names_a_missing_dataset(tmp_path):
    from zeroflow_core.data import DatasetError
    from zeroflow_core.data.manifest import dataset_manifest

    with pytest.raises(DatasetError, match=f"cub: expected .*{tmp_path}"):
        dataset_manifest("cub", tmp_path)


def test_a_cell_made_by_other_code_is_run_again(tmp_path, monkeypatch):
    import json

    from zeroflow_core.pipeline import executor

    ran = []
    monkeypatch.setattr(executor, "run_cell", lambda cell: ran.append(cell.name) or _finish(cell))
    cells = [executor.Cell("a", {"seed": 0, "threads": 1}, tmp_path / "a"),
             executor.Cell("b", {"seed": 1, "threads": 1}, tmp_path / "b")]

    def _finish(cell):
        (cell.out / "config.yaml").write_text(yaml.safe_dump(cell.config))
        (cell.out / "metrics.json").write_text(json.dumps({"avg_acc": 1.0, "forgetting": 0.0}))
        return {"avg_acc": 1.0, "forgetting": 0.0}

    executor.run_cells(tmp_path, cells, log=lambda *_: None)
    assert ran == ["a", "b"]
    ran.clear()
    executor.run_cells(tmp_path, cells, log=lambda *_: None)
    assert ran == []  # same configuration, same code: kept
    (tmp_path / "b" / executor.CODE_FILE).write_text("an older fingerprint\n")
    executor.run_cells(tmp_path, cells, log=lambda *_: None)
    assert ran == ["b"]
    assert executor.code_fingerprint() == executor.code_fingerprint()
    from zeroflow_core.pipeline.imports import PACKAGE

    run = PACKAGE / "run"
    assert executor.code_fingerprint([run / "train.py"]) != executor.code_fingerprint([run / "config.py"])


def test_local_workers_get_their_own_gpus():
    from zeroflow_core.pipeline.executor import gpu_slot

    assert gpu_slot(0, 1, None) == ["0"] and gpu_slot(3, 1, None) == ["3"]
    assert gpu_slot(1, 2, ["4", "5", "6", "7"]) == ["6", "7"]
    with pytest.raises(RuntimeError, match="only 2 are visible"):
        gpu_slot(2, 1, ["0", "1"])


def test_a_failed_cell_leaves_no_folder_and_the_finished_ones_stay(tmp_path, monkeypatch):
    import json

    from zeroflow_core.pipeline import executor

    def run(cell):
        (cell.out / "config.yaml").write_text(yaml.safe_dump(cell.config))
        if cell.name == "b":
            raise FloatingPointError("the loss is nan")
        (cell.out / "metrics.json").write_text(json.dumps({"avg_acc": 1.0, "forgetting": 0.0}))
        return {"avg_acc": 1.0, "forgetting": 0.0}

    monkeypatch.setattr(executor, "run_cell", run)
    cells = [executor.Cell(name, {"seed": seed}, tmp_path / name) for seed, name in enumerate("ab")]
    with pytest.raises(RuntimeError, match="the cell b failed \\(FloatingPointError: the loss is nan\\)"):
        executor.run_cells(tmp_path, cells, log=lambda *_: None)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a"]


def test_the_summaries_of_a_stage_give_each_optimizers_means_and_curves(tmp_path):
    import csv
    import json

    from zeroflow_core.pipeline.cells import Cell
    from zeroflow_core.pipeline.stages import write_summaries

    cells = []
    for optimizer, accuracies in (("fo-sgd", (40.0, 44.0)), ("zo-sgd", (30.0, 30.0)), ("none", (20.0, 20.0))):
        for seed, avg in enumerate(accuracies):
            out = tmp_path / "runs" / f"{optimizer}-{seed}"
            out.mkdir(parents=True)
            curves = [[], []] if optimizer == "none" else [[2.0 + seed, 1.0], [1.5]]  # the control takes no step
            (out / "metrics.json").write_text(json.dumps({
                "avg_acc": avg, "last_acc": avg - 10, "forgetting": 5.0 + seed,
                "loss_curves": curves, "acc_seen": [avg + 5, avg - 5]}))
            cells.append(Cell(f"{optimizer}-{seed}", {"optimizer": optimizer, "seed": seed}, out))
    write_summaries("ease-hues", cells, metrics_dir=tmp_path / "metrics", plots_dir=tmp_path / "plots")
    summary = json.loads((tmp_path / "metrics" / "ease-hues.json").read_text())
    # two columns per optimizer in `dvc metrics show` (the book has the spread and the last accuracy)
    assert summary == {"fo-sgd": {"avg_acc": 42.0, "forgetting": 5.5}, "zo-sgd": {"avg_acc": 30.0, "forgetting": 5.5},
                       "none": {"avg_acc": 20.0, "forgetting": 5.5}}
    # the zero-step control has no loss curve: it is left out, not allowed to cut the others to nothing
    loss = list(csv.reader((tmp_path / "plots" / "loss" / "ease-hues.csv").open()))
    assert loss == [["step", "fo-sgd", "zo-sgd"], ["0", "2.5", "2.5"], ["1", "1.0", "1.0"], ["2", "1.5", "1.5"]]
    accuracy = list(csv.reader((tmp_path / "plots" / "accuracy" / "ease-hues.csv").open()))
    assert accuracy[1] == ["0", "47.0", "35.0", "25.0"]

    write_summaries("simplecil-hues", cells[:1], curves=False, metrics_dir=tmp_path / "metrics",
                    plots_dir=tmp_path / "plots")
    assert json.loads((tmp_path / "metrics" / "simplecil-hues.json").read_text()) == {
        "fo-sgd": {"avg_acc": 40.0, "forgetting": 5.0}}
    assert not (tmp_path / "plots" / "accuracy" / "simplecil-hues.csv").exists()


def test_the_plots_page_carries_its_scripts(tmp_path):
    from zeroflow_core.book.plots import offline_template

    page = offline_template(tmp_path / "template.html").read_text()
    assert "{plot_divs}" in page and "window.vegaEmbed" in page
    assert "https://" not in page.split("<script>")[0] and "cdn.jsdelivr" not in page


def test_dvc_lock_is_untracked_but_not_ignored():
    """main keeps no dvc.lock (a build's hashes depend on the machine, and main has no remote for its outputs),
    and does not git-ignore it either: DVC refuses to write a git-ignored dvc.lock ("'dvc.lock' is git-ignored"),
    and a user commits it as the baseline of their experiments (README)."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "dvc.lock"], cwd=ROOT, capture_output=True)
    assert tracked.returncode != 0, "dvc.lock is tracked by git"
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", "dvc.lock"], cwd=ROOT)
    assert ignored.returncode == 1, "dvc.lock is git-ignored: DVC would refuse to run"
    assert "dvc_plots" in (ROOT / ".gitignore").read_text()  # what `dvc plots show` writes


def test_dvc_repro_stops_at_check_params_which_names_a_misspelled_section_and_keeps_its_output(tmp_path):
    """DVC would refuse check_params itself if it declared the sections ("Parameters 'landscape' are missing"), so it
    declares none and names the misspelling; a failed check leaves its last output, so nothing after it turns stale.
    A section that dvc.yaml's templates read (grid here) fails in DVC's own parsing first: check-params names it."""
    import os
    import subprocess
    import sys

    (tmp_path / "book").mkdir()
    for name in ("dvc.yaml", "params.yaml", "book/pages.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "zeroflow_core", tmp_path / "zeroflow_core", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def run(*argv):
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)

    assert run("dvc", "init", "--no-scm", "-q").returncode == 0
    assert run("dvc", "repro", "--single-item", "check_params").returncode == 0
    checked = (tmp_path / "runs" / "params-checked.txt").read_text()
    text = (tmp_path / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text.replace("\nlandscape:", "\nlandscpe:"))
    done = run("dvc", "repro")
    assert done.returncode != 0
    assert "unknown section 'landscpe' (did you mean 'landscape'?)" in done.stdout + done.stderr, done.stdout + done.stderr
    assert (tmp_path / "runs" / "params-checked.txt").read_text() == checked
    (tmp_path / "params.yaml").write_text(text.replace("\ngrid:", "\ngird:"))
    assert "Could not find 'grid" in run("dvc", "status").stderr  # DVC's templating, before any stage
    done = run(sys.executable, "-m", "zeroflow_core.cli", "check-params")
    assert done.returncode == 2 and "unknown section 'gird' (did you mean 'grid'?)" in done.stderr, done.stderr


@pytest.mark.parametrize("edit,message", [
    # each at the key the user wrote, with the closest name
    (lambda p: p["grid"].update(datasets=["hue"]), r"'grid.datasets': unknown dataset 'hue' \(did you mean 'hues'\?\)"),
    (lambda p: p["grid"].update(optimizers=["fo-sgd", "zo-sdg"]),
     r"'grid.optimizers': unknown optimizer 'zo-sdg' \(did you mean 'zo-sgd'\?\)"),
    (lambda p: p["grid"].update(baseline="simplecl"), r"'grid.baseline' .*got 'simplecl' \(did you mean 'simplecil'\?\)"),
    (lambda p: p.update(landscpe=p.pop("landscape")), r"unknown section 'landscpe' \(did you mean 'landscape'\?\)"),
    (lambda p: p["ablations"].update(optimizer=p["ablations"].pop("optimizers")),
     r"unknown setting 'ablations.optimizer' \(did you mean 'ablations.optimizers'\?\)"),
    (lambda p: p["ablations"].update(optimizers={"zo-sdg": {"lr": 0.01}}),
     r"'ablations.optimizers.zo-sdg': unknown optimizer \(did you mean 'zo-sgd'\?\)"),
    (lambda p: p["ablations"]["sweeps"]["history"].update(optimizers=["zo-sdg"]),
     r"'ablations.sweeps.history.optimizers': unknown optimizer 'zo-sdg' \(did you mean 'zo-sgd'\?\)"),
    (lambda p: p["ablations"].update(method="eaze"), r"'ablations.method': unknown method 'eaze' \(did you mean 'ease'\?\)"),
    (lambda p: p["ablations"].update(dataset="hue"), r"'ablations.dataset' 'hue' must be one of grid.datasets .*'hues'"),
    (lambda p: p["datasets"].update(hue={"n_tasks": 5}), r"'datasets.hue': unknown dataset \(did you mean 'hues'\?\)"),
    (lambda p: p["optimizers"].update({"zo-sdg": {}}), r"'optimizers.zo-sdg': unknown optimizer \(did you mean 'zo-sgd'"),
    (lambda p: p["efficiency"].update(optimizers=["zo-sdg"]), r"'efficiency.optimizers': unknown optimizer 'zo-sdg' \(did"),
    (lambda p: p.update(profile="smoek"), r"unknown profile 'smoek' \(did you mean 'smoke'\?\)"),
])
def test_a_wrong_name_is_reported_at_the_key_written_with_the_closest_name(edit, message):
    params = _params()
    edit(params)
    with pytest.raises(ConfigError, match=message):
        check_params(params)


def test_a_yaml_error_names_the_file_and_line(tmp_path):
    (tmp_path / "params.yaml").write_text("profile: smoke\ngrid: [ease\n")
    with pytest.raises(ConfigError, match=r"params.yaml: not valid YAML: .*line 2"):
        load_params(tmp_path / "params.yaml")


def test_another_configuration_in_a_run_folder_names_the_differing_key_only(tmp_path):
    from zeroflow_core.run.config import resolve_config
    from zeroflow_core.run.train import train

    config = resolve_config({"method": "ease", "optimizer": "zo-sgd", "dataset": "hues"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "checkpoint.pt").write_bytes(b"a run in progress")
    edited = {**config, "optimizer_hyper": {**config["optimizer_hyper"], "lr": 0.5}}
    with pytest.raises(ConfigError) as error:
        train(edited, tmp_path)
    assert f"(key 'optimizer_hyper.lr': {config['optimizer_hyper']['lr']!r} there, 0.5 now)" in str(error.value)
    assert "{" not in str(error.value)  # no whole mapping printed


def test_the_paper_profile_lists_every_missing_dataset_and_the_weights_in_one_message(tmp_path):
    import os
    import subprocess
    import sys

    shutil.copy(ROOT / "params-paper.yaml", tmp_path / "params.yaml")
    done = subprocess.run([sys.executable, "-m", "zeroflow_core.cli", "check-params"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert done.returncode == 2 and "5 inputs of the grid are missing" in done.stderr, done.stderr
    for expected in ("cifar100: expected", "cub: expected", "imagenet_a: expected", "omnibenchmark: expected",
                     "weights/vit_base_patch16_224.augreg_in21k.safetensors: no such file"):
        assert expected in done.stderr, expected


def test_the_smoke_grid_needs_no_file_before_it_runs():
    from zeroflow_core.models.pretrained import PRETRAIN_DIR, seed_folder
    from zeroflow_core.pipeline.params import missing_inputs

    params = load_params(ROOT / "params.yaml")
    assert missing_inputs(params) == []
    # the one weights path exempt is the folder the pretrain stages fill, one backbone per seed of the grid, which
    # every stage that runs cells depends on
    assert params["train"]["backbone_weights"] == str(PRETRAIN_DIR)
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["pretrain"]
    assert stage["foreach"] == "${grid.seeds}" and stage["do"]["outs"] == [str(seed_folder("${item}"))]
    assert stage["do"]["cmd"] == "zeroflow stage-pretrain ${item}"


def test_budget_names_every_dataset_without_a_size_at_once():
    from zeroflow_core.pipeline.budget import grid_budget

    with pytest.raises(ValueError, match=r"no size for cifar100, imagenet_a, omnibenchmark: run `dvc repro "
                                         r"prepare@cifar100 prepare@imagenet_a prepare@omnibenchmark` or pass "
                                         r"--images cifar100=N,imagenet_a=N,omnibenchmark=N"):
        grid_budget(load_params(ROOT / "params-paper.yaml"), {"cub": 5994})


def test_any_sweep_gets_its_table_without_a_page(tmp_path, monkeypatch):
    """A sweep added to params.yaml, drawn by no page of the book, still has its summary: summary.csv and the log."""
    import csv
    import json

    from zeroflow_core.pipeline import stages
    from zeroflow_core.pipeline.cells import sweep_cells

    params = _params()
    params["ablations"]["seeds"] = [0, 1]
    params["ablations"]["sweeps"]["eps"] = {"hyper": "zo_eps", "optimizers": ["zo-sgd"], "values": [0.001, 0.01]}
    check_params(params)
    for cell in sweep_cells(params, "eps", tmp_path):
        cell.out.mkdir(parents=True)
        eps, seed = cell.config["optimizer_hyper"].get("zo_eps", -0.005), cell.config["seed"]  # the control: 25.5
        (cell.out / "metrics.json").write_text(json.dumps({"avg_acc": 30.0 + 1000 * eps + seed, "last_acc": 20.0,
                                                           "forgetting": 2.0}))
    monkeypatch.setattr(stages, "run_cells", lambda *args, **kwargs: [])
    logged = []
    stages.sweep(params, "eps", tmp_path, log=logged.append)
    rows = list(csv.reader((tmp_path / "eps" / stages.SWEEP_SUMMARY).open()))
    assert rows == [["optimizer", "zo_eps", "seeds", "avg_acc", "avg_acc_std", "last_acc", "last_acc_std",
                     "forgetting", "forgetting_std"],
                    ["zo-sgd", "0.001", "2", "31.5", "0.71", "20.0", "0.0", "2.0", "0.0"],
                    ["zo-sgd", "0.01", "2", "40.5", "0.71", "20.0", "0.0", "2.0", "0.0"]]
    assert "zo_eps" in logged[-1] and "40.5" in logged[-1]


def test_a_zo_sgd_rate_edit_changes_exactly_the_zo_sgd_cells_of_the_grid_and_the_sweeps():
    """What the guide says an edit of optimizers.zo-sgd.lr reruns: the zo-sgd cells of the grid and, since the smoke
    sweeps take the grid's rates (ablations.optimizers is empty), of every sweep; no other cell."""
    from zeroflow_core.pipeline.cells import sweep_cells, train_cells
    from zeroflow_core.run.config import identity

    def cells(params):
        grid = params["grid"]
        found = {cell.name: (cell.config["optimizer"], identity(cell.config))
                 for method in [grid["baseline"], *grid["methods"]]
                 for dataset in grid["datasets"] for cell in train_cells(params, method, dataset)}
        found.update({f"{name}/{cell.name}": (cell.config["optimizer"], identity(cell.config))
                      for name in params["ablations"]["sweeps"] for cell in sweep_cells(params, name)})
        return found

    params = _params()
    assert params["ablations"]["optimizers"] == {}
    before = cells(params)
    params["optimizers"]["zo-sgd"]["lr"] = 0.002
    after = cells(params)
    changed = {name for name in before if before[name] != after[name]}
    zo_sgd = {name for name, (optimizer, _) in before.items() if optimizer == "zo-sgd"}
    assert changed == zo_sgd and any("/" in name for name in changed) and any("/" not in name for name in changed)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "optimizers" in stages["ablation"]["do"]["params"]
    guide = " ".join((ROOT / "book" / "guide-pipeline.md").read_text().split())
    assert "reruns the zo-sgd cells of the grid and of the sweeps" in guide
