import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from zeroflow_core.io import file_sha256
from zeroflow_core.optim import create_optimizer
from zeroflow_core.run.config import ConfigError, parse_overrides, resolve_config
from zeroflow_core.run.train import Run, build_vit, train

TINY = {"dataset": "digits", "backbone": "vit-smoke", "backbone_weights": "", "n_tasks": 5, "epochs": 2,
        "max_steps_per_epoch": 12, "batch_size": 16, "heldout_every": 5, "heldout_batch": 8, "threads": 1}


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "zeroflow_core.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


def _sets(config):
    """The command line of a configuration: --method, --optimizer and --dataset as flags, the rest as --set."""
    flags = [arg for key in ("method", "optimizer", "dataset") if key in config for arg in (f"--{key}", config[key])]
    return flags + [arg for key, value in config.items() if key not in ("method", "optimizer", "dataset")
                    for arg in ("--set", f"{key}={json.dumps(value)}")]


@pytest.mark.parametrize("overrides,message", [
    ({"epochs": 2, "epoch": 3}, "'epoch'"),
    ({"epochs": "three"}, "'epochs' must be int"),
    ({"method": "ewc2"}, "'method'.*ewc2"),
    ({"optimizer": "zo-sdg"}, "zo-sdg"),
    ({"dataset": "cifar10"}, "'dataset'.*cifar10"),
    ({"optimizer_hyper": {"lr": 0.1, "zo_epsilon": 1e-3}}, "zo_epsilon"),
    ({"method_config": {"alpah": 0.1}}, "alpah"),
    ({"batch_size": 0}, "batch_size"),
    ({"flip": "yes"}, "'flip' must be bool"),
    ({"profile": "huge"}, "huge"),
])
def test_bad_configuration_is_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(overrides)


def test_cli_refuses_bad_key_before_any_work(tmp_path):
    out = tmp_path / "run"
    result = _cli("train", "--method", "ease", "--optimizer", "zo-sgd", "--dataset", "hues", "--set", "epochz=2",
                  "--out", str(out))
    assert result.returncode != 0
    assert "epochz" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_overrides_are_parsed_as_yaml_with_dotted_sections():
    assert parse_overrides(["epochs=2", "optimizer_hyper.lr=1e-3", "flip=false", "dataset=digits"]) == {
        "epochs": 2, "optimizer_hyper": {"lr": 1e-3}, "flip": False, "dataset": "digits"}


def test_profiles_resolve_per_dataset_and_per_optimizer_settings():
    config = resolve_config({"dataset": "digits", "optimizer": "fo-sgd"})
    assert config["n_tasks"] == 5 and config["flip"] is False and config["optimizer_hyper"]["lr"] == 0.03
    smoke = resolve_config({"method": "ease", "optimizer": "zo-adam"})
    assert smoke["dataset"] == "hues" and smoke["adapter_scale"] == 1.0 and smoke["optimizer_hyper"]["lr"] == 3e-3
    assert smoke["optimizer_hyper"]["q"] == 4 and smoke["optimizer_hyper"]["batched"] is True  # the forward-pass rule
    assert smoke["optimizer_hyper"]["betas"] == [0.9, 0.999]  # the registry's, in full, in every configuration
    none = resolve_config({"method": "simplecil"})
    assert none["optimizer"] == "none" and none["optimizer_hyper"] == {}
    with pytest.raises(ConfigError, match="trains nothing"):
        resolve_config({"method": "simplecil", "optimizer": "zo-sgd"})
    control = resolve_config({"method": "ease", "optimizer": "none"})  # EASE's zero-step control
    assert control["optimizer"] == "none" and control["optimizer_hyper"] == {}
    with pytest.raises(ConfigError, match="zero-step control of 'ease'.*takes no optimizer_hyper"):
        resolve_config({"method": "ease", "optimizer": "none", "optimizer_hyper": {"lr": 0.1}})
    paper = resolve_config({"profile": "paper", "dataset": "cifar100", "optimizer": "zo-sgd"})
    assert paper["backbone"] == "vit-b16" and paper["batch_size"] == 48 and paper["transforms"] == "reference"



@pytest.mark.parametrize("optimizer", ["zo-sgd", "zo-adam", "zo-sgd-sign", "zo-adam-conserve"])
@pytest.mark.parametrize("method", ["ease", "aper"])
def test_the_paper_profile_gives_forward_pass_optimizers_the_official_budget(method, optimizer):
    """INFTY's gradient_bans/zeroflow.yaml: init_epochs 100, init_lr 1e-4, merged for every task."""
    paper = resolve_config({"profile": "paper", "method": method, "dataset": "cifar100", "optimizer": optimizer})
    assert paper["epochs"] == 100 and paper["optimizer_hyper"]["lr"] == 1e-4 and paper["schedule"] == "auto"
    forward = resolve_config({"profile": "paper", "method": method, "dataset": "cifar100", "optimizer": "forward-grad"})
    assert forward["epochs"] == 100 and forward["optimizer_hyper"]["lr"] == 1e-3
    assert forward["optimizer_hyper"]["weight_decay"] == 0.0 and forward["optimizer_hyper"]["mode"] == "train"
    backprop = resolve_config({"profile": "paper", "method": method, "dataset": "cifar100", "optimizer": "fo-sgd"})
    assert backprop["epochs"] == 20


@pytest.mark.parametrize("dataset", ["cifar100", "cub", "imagenet_a", "omnibenchmark"])
def test_under_zo_the_paper_profile_takes_infty_base_optimizer_on_every_dataset(dataset):
    """INFTY's utils/core.py (lines 20-43) replaces the base optimizer of every ZO run by SGD (momentum 0.9) or
    Adam with weight decay 5e-4, whatever the dataset config says: ImageNet-A's 5e-3 is backprop's only."""
    def paper(optimizer):
        return resolve_config({"profile": "paper", "method": "ease", "dataset": dataset, "optimizer": optimizer})

    for optimizer in ("zo-sgd", "zo-sgd-sign", "zo-sgd-conserve", "zo-adam", "zo-adam-sign", "zo-adam-conserve"):
        hyper = paper(optimizer)["optimizer_hyper"]
        assert hyper["weight_decay"] == 5e-4 and hyper["lr"] == 1e-4 and hyper.get("momentum", 0.9) == 0.9, optimizer
    assert paper("fo-sgd")["optimizer_hyper"]["weight_decay"] == (0.005 if dataset == "imagenet_a" else 5e-4)
    assert paper("forward-grad")["optimizer_hyper"]["weight_decay"] == 0.0


def test_the_paper_profile_takes_the_official_side_of_every_switch_and_the_smoke_profile_keeps_its_own():
    paper = resolve_config({"profile": "paper", "method": "ease", "dataset": "cifar100", "optimizer": "zo-sgd-conserve"})
    hyper = paper["optimizer_hyper"]
    assert (hyper["conserve_mode"], hyper["sparsity_mode"], hyper["history_rule"]) == ("reference", "official",
                                                                                       "official")
    assert paper["zo_scope"] == "official" and paper["ease_alpha_under_zo"] == "official"
    assert paper["min_lr"] == 0.0 and paper["method_config"]["head_scale"] == 1.0
    sign = resolve_config({"profile": "paper", "method": "ease", "dataset": "cub", "optimizer": "zo-adam-sign"})
    assert sign["optimizer_hyper"]["sign_mode"] == "projected" and sign["optimizer_hyper"]["sparsity_mode"] == "official"
    forward = resolve_config({"profile": "paper", "method": "ease", "dataset": "cub", "optimizer": "forward-grad"})
    assert forward["optimizer_hyper"]["mode"] == "train"
    smoke = resolve_config({"method": "ease", "optimizer": "zo-sgd-conserve"})
    assert (smoke["optimizer_hyper"]["conserve_mode"], smoke["optimizer_hyper"]["sparsity_mode"]) == ("exact", "exact")
    assert smoke["zo_scope"] == "trainable" and smoke["ease_alpha_under_zo"] == "release"
    assert smoke["min_lr"] == 1e-8 and smoke["method_config"]["alpha"] == 0.1 and smoke["seed"] == 0


def test_the_paper_profile_runs_seed_1993_first_with_the_official_seeding():
    """INFTY's exps/ease.json runs seed 1993, which trainer.py gives torch (set_random, line 33) and data_manager.py
    the class order (lines 153-157); the paper profile's default seed is that one, and the run seeds torch from it
    before it builds anything (EASE records the seed its modules are drawn from)."""
    from zeroflow_core import cli
    from zeroflow_core.run.train import Run

    paper = resolve_config({"profile": "paper", "method": "ease", "dataset": "cub", "optimizer": "zo-sgd"})
    assert paper["seed"] == 1993 and paper["class_order_seed"] == 1993
    assert cli.build_parser().parse_args(["train", "--method", "ease", "--dataset", "cub", "--out", "x"]).seed is None
    run = Run(resolve_config({**TINY, "method": "ease", "optimizer": "zo-sgd", "seed": 1993}), Path("unused"),
              progress=False)
    assert run.method.init_seed == 1993 and run.data.scenario.seed == 1993


@pytest.mark.parametrize("profile,optimizer,alpha", [
    ("paper", "zo-sgd", 0.9), ("paper", "zo-adam-conserve", 0.9), ("paper", "forward-grad", 0.9),
    ("paper", "fo-sgd", 0.05), ("paper", "fo-adam", 0.05), ("smoke", "zo-sgd", 0.1),
])
def test_ease_alpha_under_zo_official_takes_inftys_alpha_for_forward_pass_runs_only(profile, optimizer, alpha):
    """INFTY's main.py (lines 50-52) merges zeroflow.yaml into EASE's arguments: its alpha 0.9 (line 13, meant for
    history mixing) replaces EASE's α (models/ease.py line 35, utils/inc_net.py line 997) in every ZO and
    Forward-Grad run; backprop keeps the release config's (CUB: 0.05). The smoke profile keeps the release side."""
    from zeroflow_core.run.config import resolve

    dataset = "cub" if profile == "paper" else "hues"
    resolved = resolve({"profile": profile, "method": "ease", "dataset": dataset, "optimizer": optimizer})
    assert resolved.config["method_config"]["alpha"] == alpha
    if alpha == 0.9:
        assert resolved.set_by["method_config.alpha"].startswith("ease_alpha_under_zo: official")
    release = resolve_config({"profile": profile, "method": "ease", "dataset": dataset, "optimizer": optimizer,
                              "ease_alpha_under_zo": "release"})
    assert release["method_config"]["alpha"] == (0.05 if profile == "paper" else 0.1)
    # APER has no α: the switch leaves it alone
    aper = resolve_config({"profile": profile, "method": "aper", "dataset": dataset, "optimizer": optimizer})
    assert "alpha" not in aper["method_config"]


def test_the_official_alpha_wins_over_params_yaml_and_a_bad_value_is_named():
    """The smoke params.yaml sets methods.ease.alpha 0.1, as EASE's json does: the official side still replaces it,
    as INFTY's args.update does (what the switch's sweep measures)."""
    from zeroflow_core.io import load_yaml
    from zeroflow_core.pipeline.cells import resolve_run
    from zeroflow_core.run.config import Layer

    params = load_yaml((Path(__file__).parents[1] / "params.yaml").read_text())
    assert params["methods"]["ease"]["alpha"] == 0.1
    run = resolve_run(params, "ease", "zo-sgd", "hues", 0, [Layer("sweep", {"ease_alpha_under_zo": "official"})])
    assert run.config["method_config"]["alpha"] == 0.9
    with pytest.raises(ConfigError, match="'ease_alpha_under_zo'.*release, official"):
        resolve_config({"method": "ease", "optimizer": "zo-sgd", "ease_alpha_under_zo": "infty"})


@pytest.mark.parametrize("profile,optimizer,floor", [("paper", "fo-sgd", 0.0), ("smoke", "fo-sgd", 1e-8),
                                                     ("paper", "zo-sgd", None)])
def test_the_cosine_floor_is_the_run_setting_min_lr(profile, optimizer, floor):
    """PILOT's configs set min_lr 0 (exps/ease.json line 21; models/ease.py line 300 passes it as eta_min); the smoke
    profile keeps 1e-8, PILOT's value for a config without one. ZO runs have no schedule (schedule auto)."""
    from zeroflow_core.run.train import _scheduler

    config = resolve_config({"profile": profile, "method": "ease", "optimizer": optimizer,
                             "dataset": "cifar100" if profile == "paper" else "hues"})
    param = torch.nn.Parameter(torch.zeros(1))
    scheduler = _scheduler(config, torch.optim.SGD([param], lr=0.1))
    assert (scheduler.eta_min if scheduler else None) == floor
    with pytest.raises(ConfigError, match="'min_lr'"):
        resolve_config({"min_lr": -1.0})


def test_the_paper_profile_takes_each_datasets_ease_release_config():
    def paper(dataset, optimizer="fo-sgd", method="ease"):
        return resolve_config({"profile": "paper", "method": method, "dataset": dataset, "optimizer": optimizer})

    cub = paper("cub")
    assert cub["method_config"]["alpha"] == 0.05 and cub["optimizer_hyper"]["lr"] == 0.008 and cub["batch_size"] == 32
    assert paper("cub", "zo-sgd")["optimizer_hyper"]["lr"] == 1e-4 and paper("cub", "zo-sgd")["batch_size"] == 32
    ina = paper("imagenet_a")
    assert (ina["optimizer_hyper"]["lr"], ina["optimizer_hyper"]["weight_decay"]) == (0.05, 0.005)
    assert ina["batch_size"] == 32
    assert paper("imagenet_a", "zo-sgd")["optimizer_hyper"]["weight_decay"] == 5e-4  # INFTY's ZO base optimizer
    assert paper("imagenet_a", "forward-grad")["optimizer_hyper"]["weight_decay"] == 0.0
    assert paper("omnibenchmark")["optimizer_hyper"]["lr"] == 0.01 and paper("omnibenchmark")["batch_size"] == 16
    assert paper("cifar100")["optimizer_hyper"]["lr"] == 0.025 and paper("cifar100")["method_config"]["alpha"] == 0.1
    for dataset in ("cifar100", "cub", "imagenet_a", "omnibenchmark"):  # APER's adapter variant: one rate
        assert paper(dataset, method="aper")["optimizer_hyper"]["lr"] == 0.01


def _cited(source: str, repositories) -> list[tuple[str, str]]:
    """(repository, file) of each `;`-separated part of a profile rule's source: `[owner/repository] file[:lines]
    keys`, a part without a repository naming a file of the previous part's."""
    cited, repository = [], None
    for part in source.split(";"):
        words = part.split()
        if words and words[0] in repositories:
            repository, words = words[0], words[1:]
        assert repository and words, f"{source!r}: {part!r} names no repository and file"
        cited.append((repository, words[0].split(":")[0]))
    return cited


def test_every_official_setting_names_a_file_listed_in_reference_sources():
    """Each paper rule's source names files that reference/sources.csv lists with their repository and the commit
    read; the smoke profile's name the command that chose them."""
    import csv

    from zeroflow_core.run.config import PROFILES, check_profiles

    check_profiles(PROFILES)
    with open(Path(__file__).parents[1] / "reference" / "sources.csv") as f:
        listed = list(csv.DictReader(f))
    assert all(len(row["commit"]) == 40 and row["cited_for"] for row in listed)
    repositories = {row["repository"] for row in listed}
    files = {(row["repository"], row["file"]) for row in listed}
    for rule in PROFILES["paper"]["rules"]:
        for cited in _cited(rule["source"], repositories):
            assert cited in files, (cited, rule)
    assert all(rule["source"].startswith("zeroflow ") for rule in PROFILES["smoke"]["rules"] if "source" in rule)
    # the citations this check exists for: a folder in no commit, and a PILOT file that does not exist
    for wrong in ("THUDM/INFTY workdirs/infty_configs/gradient_bans/zeroflow.yaml init_epochs",
                  "LAMDA-CL/LAMDA-PILOT exps/aper_adapter.json init_lr"):
        assert not set(_cited(wrong, repositories)) <= files
    broken = {"paper": {"run": {}, "rules": [{"when": {"optimizer": "zo-sdg"}, "set": {}}]}}
    with pytest.raises(ConfigError, match="unknown optimizer 'zo-sdg'"):
        check_profiles(broken)
    broken = {"paper": {"run": {}, "rules": [{"when": {"dataset": "cifar10"}, "set": {}}]}}
    with pytest.raises(ConfigError, match="unknown dataset 'cifar10'"):
        check_profiles(broken)
    broken = {"paper": {"run": {}, "rules": [{"when": {"dataset": "cub"}, "set": {"epoch": 3}}]}}
    with pytest.raises(ConfigError, match="'epoch'"):
        check_profiles(broken)


def test_missing_backbone_weights_give_one_clear_message(tmp_path):
    config = resolve_config({**TINY, "backbone_weights": str(tmp_path / "nope.pt")})
    with pytest.raises(FileNotFoundError, match="nope.pt.*zeroflow pretrain"):
        train(config, tmp_path / "run")


def test_config_yaml_records_which_layer_set_each_key(tmp_path):
    from zeroflow_core import cli
    from zeroflow_core.run.config import identity

    out = tmp_path / "run"
    assert cli.main(["train", "--method", "simplecil", "--dataset", "hues", "--seed", "2", "--out", str(out),
                     "--set", "backbone_weights=", "--set", "dataset_options.n_train=4",
                     "--set", "dataset_options.n_test=2", "--set", "n_tasks=2"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    set_by = saved.pop("set_by")
    assert set_by["n_tasks"] == "--set" and set_by["dataset_options.n_train"] == "--set"
    assert set_by["seed"] == "run" and set_by["batch_size"] == "profile smoke" and set_by["eval_batch"] == "registry"
    assert saved["n_tasks"] == 2 and saved["seed"] == 2
    # the record is no part of what the run computes: the same command finds the run finished
    assert identity({**saved, "set_by": {}}) == identity(saved)
    before = (out / "metrics.json").stat().st_mtime_ns
    assert cli.main(["train", "--method", "simplecil", "--dataset", "hues", "--seed", "2", "--out", str(out),
                     "--set", "backbone_weights=", "--set", "dataset_options={n_train: 4, n_test: 2}",
                     "--set", "n_tasks=2"]) == 0
    assert (out / "metrics.json").stat().st_mtime_ns == before


def test_run_writes_metrics_dvclive_and_checkpoint(tmp_path):
    config = resolve_config({**TINY, "method": "finetune", "optimizer": "zo-sgd"})
    result = train(config, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["avg_acc"] == pytest.approx(result["avg_acc"])
    assert len(saved["acc_matrix"]) == 5 and saved["acc_matrix"][4][0] is None
    q = config["optimizer_hyper"]["q"]  # the smoke profile's 4, batched: 2q losses per step all the same
    assert saved["forward_passes"] == 2 * q * saved["steps"] == 2 * q * 5 * 2 * 12
    assert saved["backward_passes"] == 0 and saved["forwards_per_step"] == 2 * q
    assert [len(c) for c in saved["loss_curves"]] == [24] * 5
    assert {h["task"] for h in saved["heldout_losses"]} == set(range(5))
    assert all(len(h["losses"]) == h["task"] + 1 for h in saved["heldout_losses"])
    assert (tmp_path / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv").exists()
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == config
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize("method", ["ease", "finetune"])
def test_heldout_records_cost_at_most_a_tenth_of_the_training_forwards(tmp_path, method):
    """Asked for a record after every step, each task keeps them within HELDOUT_SHARE of its image-forwards
    (give or take its last record), and every task still gets records."""
    from zeroflow_core.run.train import HELDOUT_SHARE

    config = resolve_config({**TINY, "method": method, "optimizer": "zo-sgd", "heldout_every": 1,
                             "heldout_batch": 16})
    saved = train(config, tmp_path)
    record = 16 * config["n_tasks"] * (config["n_tasks"] if method == "ease" else 1)  # the dearest record: last task
    assert 0 < saved["heldout_image_forwards"] <= HELDOUT_SHARE * saved["train_image_forwards"] + config["n_tasks"] * record
    assert saved["train_image_forwards"] == 16 * saved["forward_passes"]  # batch 16, one image-forward per image
    assert 1 < len(saved["heldout_losses"]) < saved["steps"]
    assert {h["task"] for h in saved["heldout_losses"]} == set(range(config["n_tasks"]))


def test_killed_run_resumes_and_matches_an_uninterrupted_run(tmp_path):
    config = {**TINY, "method": "ease", "optimizer": "zo-adam", "max_steps_per_epoch": 20}
    args = ["train", "--out"]
    reference = _cli(*args, str(tmp_path / "whole"), *_sets(config))
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "zeroflow_core.cli", *args, str(out), *_sets(config)],
                               env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "metrics.json").exists()

    resumed = _cli(*args, str(out), *_sets(config))
    assert resumed.returncode == 0, resumed.stderr
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    again = json.loads((out / "metrics.json").read_text())
    for key in ("avg_acc", "last_acc", "forgetting", "acc_matrix", "loss_curves", "heldout_losses",
                "forward_passes", "steps"):
        assert again[key] == whole[key], key
    # the timing file kept the seconds of the tasks done before the kill: every task has its own
    spent = json.loads((out / "timing.json").read_text())
    assert len(spent["task_seconds"]) == len(spent["epoch_seconds"]) == TINY["n_tasks"]


def test_same_output_folder_refuses_a_different_configuration(tmp_path):
    config = resolve_config({**TINY, "method": "finetune", "optimizer": "fo-sgd", "n_tasks": 2,
                             "dataset_options": {}, "max_steps_per_epoch": 2, "epochs": 1})
    train(config, tmp_path)
    with pytest.raises(ConfigError, match="'epochs'"):
        train({**config, "epochs": 2}, tmp_path)


@pytest.fixture(scope="module")
def pretrained_smoke_backbone(tmp_path_factory):
    from zeroflow_core.run.pretrain import pretrain

    out = tmp_path_factory.mktemp("pretrain")
    # in colour: a grey pretraining needs about 10 epochs before it learns (the pipeline's 32%)
    result = pretrain(out, epochs=4, threads=1, n_classes=32)
    assert result["pretext_test_accuracy"] > 50  # 32 classes: chance is 3%
    return out / "backbone.pt"


def test_smoke_profile_shows_forgetting_and_its_remedies(pretrained_smoke_backbone, tmp_path):
    """Issue-level claim on the smoke profile (its hues set, 5 tasks, its learning rates; a shorter colour
    pretraining than the pipeline's): with backprop, fine-tuning loses all it had learned of every old
    task, EASE and APER keep much of it; with ZO-SGD both still predict far above chance. Forgetting is compared relative to each task's best accuracy, because the
    absolute drop is bounded by how much a method learned in the first place."""
    import numpy as np

    base = {"backbone_weights": str(pretrained_smoke_backbone), "threads": 1, "epochs": 2, "heldout_every": 0,
            "dataset_options": {"n_train": 24, "n_test": 10}}

    def relative_forgetting(result):
        matrix = np.array(result["acc_matrix"], dtype=float)
        best, final = np.nanmax(matrix[:-1], axis=1), matrix[:-1, -1]
        return float(np.mean((best - final) / best))

    result = {}
    for method, optimizer in [("finetune", "fo-sgd"), ("ease", "fo-sgd"), ("aper", "fo-sgd"),
                              ("ease", "zo-sgd"), ("aper", "zo-sgd")]:
        config = resolve_config({**base, "method": method, "optimizer": optimizer})
        result[method, optimizer] = train(config, tmp_path / f"{method}-{optimizer}")
    finetune = relative_forgetting(result["finetune", "fo-sgd"])
    assert finetune > 0.9
    for method in ("ease", "aper"):
        assert relative_forgetting(result[method, "fo-sgd"]) < finetune - 0.3
        assert result[method, "fo-sgd"]["last_acc"] > 2 * result["finetune", "fo-sgd"]["last_acc"]
        assert result[method, "zo-sgd"]["avg_acc"] > 12  # chance over the 10 to 50 seen classes is at most 10%


def _tiny_finetune(**changes):
    return resolve_config({**TINY, "method": "finetune", "optimizer": "fo-sgd", "n_tasks": 2, "dataset_options": {},
                           "max_steps_per_epoch": 2, "epochs": 1, **changes})


def test_a_truncated_checkpoint_is_named_and_the_run_starts_again_to_the_same_end(tmp_path, capsys):
    config = _tiny_finetune()
    whole = train(config, tmp_path / "whole")
    out = tmp_path / "cut"
    train(config, out)
    (out / "metrics.json").unlink()  # as if killed after the last checkpoint, which a full disk cut short
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    again = train(config, out)
    assert f"{checkpoint}: unreadable checkpoint" in capsys.readouterr().err
    for key in ("acc_matrix", "loss_curves", "forward_passes"):
        assert again[key] == whole[key], key


def test_a_checkpoint_made_with_other_backbone_weights_is_not_resumed(tmp_path, capsys):
    """The checkpoint holds no backbone, only its weights file's sha256: new weights at the same path restart."""
    from zeroflow_core.models import BACKBONES

    weights = tmp_path / "backbone.pt"
    torch.manual_seed(0)
    torch.save(BACKBONES["vit-smoke"].create().state_dict(), weights)
    config = {**_tiny_finetune(), "backbone_weights": str(weights)}
    out = tmp_path / "run"
    first = train(config, out)
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert not any(key.startswith("vit.backbone.") for key in state["method"])
    assert state["backbone"]["weights_sha256"] == file_sha256(weights)
    (out / "metrics.json").unlink()  # as if killed after the last checkpoint
    torch.manual_seed(1)
    torch.save(BACKBONES["vit-smoke"].create().state_dict(), weights)
    again = train(config, out)
    assert "made with another backbone" in capsys.readouterr().err
    assert again["acc_matrix"] != first["acc_matrix"]


def test_a_vit_b16_checkpoint_is_a_few_percent_of_the_model():
    """What training changes (two tasks of EASE: adapter sets, heads, prototypes) against the whole state."""
    import io

    from zeroflow_core.methods import create_method
    from zeroflow_core.run.train import trained_state

    vit, _ = build_vit(resolve_config({"profile": "paper", "method": "ease", "optimizer": "zo-sgd",
                                       "dataset": "cifar100", "backbone_weights": ""}))
    method = create_method("ease", vit, 100, 10)
    for task in range(2):
        method.begin_task(task)
        method.end_task(task, lambda s: (torch.randn(20, vit.embed_dim), torch.arange(10).repeat(2) + 10 * task))

    def size(state):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.tell()

    full, slim = size(method.state_dict()), size(trained_state(method))
    assert slim < 0.05 * full, (slim, full)


def test_a_finished_run_run_again_changes_nothing(tmp_path):
    config = _tiny_finetune()
    train(config, tmp_path)
    files = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in tmp_path.rglob("*") if path.is_file()}
    train({**config, "threads": 2}, tmp_path)  # placement differs: still the same run
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in tmp_path.rglob("*") if path.is_file()} == files


@pytest.mark.parametrize("method,optimizer", [("ease", "zo-sgd"), ("aper", "zo-sgd-conserve"), ("ease", "fo-sgd")])
def test_the_budget_counts_the_image_forwards_a_run_makes(tmp_path, method, optimizer):
    """`zeroflow budget`'s count for a run equals what the run's ViT counted (capped epochs: every batch full)."""
    from zeroflow_core.data import load_dataset
    from zeroflow_core.pipeline.budget import run_budget

    config = resolve_config({**TINY, "method": method, "optimizer": optimizer, "heldout_every": 0})
    saved = train(config, tmp_path)
    budget = run_budget(config, len(load_dataset("digits", None, "train")))
    trained_tasks = 1 if method == "aper" else config["n_tasks"]
    assert budget["steps"] == saved["steps"] == trained_tasks * config["epochs"] * config["max_steps_per_epoch"]
    assert budget["image_forwards"] == saved["train_image_forwards"]
    assert budget["image_backwards"] == (saved["train_image_forwards"] if optimizer == "fo-sgd" else 0)


@pytest.mark.parametrize("optimizer", ["zo-sgd", "zo-sgd-conserve", "forward-grad"])
def test_a_forward_pass_run_at_lr_0_equals_its_zero_step_control(tmp_path, optimizer):
    """Switched off, the numbers move back: at lr 0 a forward-pass run evaluates its losses and changes nothing, so
    it ends exactly where the method's zero-step control (optimizer none: every step skipped) does."""
    base = {**TINY, "method": "ease", "n_tasks": 2, "epochs": 1, "max_steps_per_epoch": 3, "heldout_every": 0}
    control = train(resolve_config({**base, "optimizer": "none"}), tmp_path / "control")
    off = train(resolve_config({**base, "optimizer": optimizer, "optimizer_hyper": {"lr": 0.0}}), tmp_path / "off")
    on = train(resolve_config({**base, "optimizer": optimizer, "optimizer_hyper": {"lr": 0.5}}), tmp_path / "on")
    assert off["acc_matrix"] == control["acc_matrix"] and control["loss_curves"] == [[], []]
    assert off["steps"] == 6 and control["steps"] == 0 and off["step_norms"] == [0.0, 0.0]
    assert on["acc_matrix"] != control["acc_matrix"] and on["step_norms"][0] > 0


def test_the_update_probe_sees_a_first_order_step_follow_the_gradient(tmp_path):
    """One FO-SGD step on the probe's own images (no momentum, no decay) moves every trained tensor along −∇L at the
    task's start: the cosine of the update with the gradient is 1."""
    from zeroflow_core.run.train import UpdateProbe

    run = Run(resolve_config({**TINY, "method": "ease", "optimizer": "fo-sgd"}), tmp_path / "run", progress=False)
    method = run.method
    method.begin_task(0)
    x, y = run.data.probe_batch(0)
    probe = UpdateProbe(method, (x, y))
    opt = create_optimizer("fo-sgd", method.trainable_parameters(), model=method, lr=0.1, momentum=0.0,
                           weight_decay=0.0)
    method.eval()
    opt.step(lambda: method.loss({"x": x, "y": y}))
    found = probe.finish()
    assert found["all"]["cosine"] == pytest.approx(1.0, abs=1e-4)
    assert found["heads"]["moved"] > 0 and found["adapters"]["relative"] > 0
