"""The paper profile end to end on miniatures: its data layouts, both backbones (the IN-21K ViT-B/16 of the paper's
text and INFTY's IN-21K + IN-1K one) at their documented paths, the pipeline switched with the README's one command,
and paper runs of EASE and APER."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from miniatures import IN1K_CLASSES, IN21K_FT_IN1K_WEIGHTS, IN21K_WEIGHTS, make_paper_datasets, make_vit_b16_in21k
from zeroflow_core.io import file_sha256

ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
# 2 tasks of 2 classes, 2 steps of 2 images per task: what it costs is ViT-B/16 forwards at 224 px on a CPU
SHORT = ["n_tasks=2", "epochs=1", "max_steps_per_epoch=2", "batch_size=2", "eval_batch=8", "heldout_every=0",
         "threads=2", "workers=0"]


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory):
    """A checkout switched to the paper profile by the README's command, with its data and weights in place."""
    repo = tmp_path_factory.mktemp("paper")
    (repo / "book").mkdir()
    for name in ("dvc.yaml", "params-paper.yaml", "book/pages.yaml"):  # dvc.yaml loads the book's pages
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "zeroflow_core", repo / "zeroflow_core", ignore=shutil.ignore_patterns("__pycache__"))
    make_paper_datasets(repo / "data")
    make_vit_b16_in21k(repo / IN21K_WEIGHTS)
    make_vit_b16_in21k(repo / IN21K_FT_IN1K_WEIGHTS, seed=1, classes=IN1K_CLASSES)
    run(["dvc", "init", "--no-scm", "--quiet"], repo)
    switch = "cp params-paper.yaml params.yaml"  # the README's command, before its `&& dvc repro`
    assert f"{switch} && dvc repro" in (ROOT / "README.md").read_text()
    run(["bash", "-c", switch], repo)
    return repo


def run(argv, cwd):
    done = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_switched_pipeline_checks_its_params_and_prepares_every_paper_dataset(paper_repo):
    stages = ["check_params"] + [f"prepare@{d}" for d in ("cifar100", "cub", "imagenet_a", "omnibenchmark")]
    run(["dvc", "repro", "--single-item", *stages], paper_repo)
    for dataset, classes in (("cifar100", 4), ("cub", 10), ("imagenet_a", 10), ("omnibenchmark", 10)):
        manifest = json.loads((paper_repo / "data" / "prepared" / f"{dataset}.json").read_text())
        assert manifest["splits"]["train"]["classes"] == classes and manifest["splits"]["test"]["images"] == classes


def test_the_in21k_file_loads_into_the_backbone_without_its_head(paper_repo):
    from zeroflow_core.models.pretrained import read_state_dict
    from zeroflow_core.run.config import resolve_config
    from zeroflow_core.run.train import build_vit

    weights = paper_repo / IN21K_WEIGHTS
    saved = read_state_dict(weights)
    assert saved["head.weight"].shape == (21843, 768)
    config = resolve_config({"profile": "paper", "method": "ease", "optimizer": "zo-sgd", "dataset": "cifar100",
                             "backbone_weights": str(weights)})
    vit, identity = build_vit(config)
    assert identity["weights_sha256"] == file_sha256(weights)
    assert torch.equal(vit.backbone.state_dict()["blocks.11.mlp.fc2.weight"], saved["blocks.11.mlp.fc2.weight"])


def test_infty_backbone_is_a_named_switch_whose_file_must_match_it(paper_repo):
    """`backbone: vit-b16-in21k-ft-in1k` loads INFTY's backbone (timm's vit_base_patch16_224 under PILOT's timm
    0.6.12: IN-21K, then IN-1K) from its own file; the two files share every shape but the head, so a file given
    to the other backbone is refused by its head, naming the keys to change."""
    from zeroflow_core.models.pretrained import read_state_dict
    from zeroflow_core.run.config import resolve_config
    from zeroflow_core.run.train import build_vit

    weights = paper_repo / IN21K_FT_IN1K_WEIGHTS
    config = resolve_config({"profile": "paper", "method": "ease", "optimizer": "zo-sgd", "dataset": "cifar100",
                             "backbone": "vit-b16-in21k-ft-in1k", "backbone_weights": str(weights)})
    vit, identity = build_vit(config)
    assert identity == {"backbone": "vit-b16-in21k-ft-in1k", "weights_sha256": file_sha256(weights)}
    assert torch.equal(vit.backbone.state_dict()["blocks.0.attn.qkv.weight"],
                       read_state_dict(weights)["blocks.0.attn.qkv.weight"])
    for backbone, wrong in (("vit-b16", weights), ("vit-b16-in21k-ft-in1k", paper_repo / IN21K_WEIGHTS)):
        with pytest.raises(ValueError, match="another pretraining.*'backbone_weights'.*'backbone'"):
            build_vit({**config, "backbone": backbone, "backbone_weights": str(wrong)})


@pytest.mark.parametrize("optimizer", ["zo-sgd", "fo-sgd", "forward-grad"])
@pytest.mark.parametrize("method", ["ease", "aper"])
def test_a_paper_run_trains_evaluates_and_checkpoints_the_trained_state_only(paper_repo, method, optimizer):
    _paper_run(paper_repo, method, optimizer, "vit-b16", IN21K_WEIGHTS)


def test_a_paper_run_on_inftys_backbone(paper_repo):
    _paper_run(paper_repo, "ease", "zo-sgd", "vit-b16-in21k-ft-in1k", IN21K_FT_IN1K_WEIGHTS)


def _paper_run(paper_repo, method, optimizer, backbone, weights_file):
    out = f"runs/{method}-{optimizer}-{backbone}"
    sets = [arg for pair in [*SHORT, f"backbone={backbone}", f"backbone_weights={weights_file}"]
            for arg in ("--set", pair)]
    run([sys.executable, "-m", "zeroflow_core.cli", "train", "--profile", "paper", "--method", method,
         "--optimizer", optimizer, "--dataset", "cifar100", "--out", out, *sets], paper_repo)
    metrics = json.loads((paper_repo / out / "metrics.json").read_text())
    assert metrics["profile"] == "paper" and len(metrics["acc_matrix"]) == 2 and 0 <= metrics["avg_acc"] <= 100
    assert metrics["seed"] == 1993  # the profile's, the official code's
    assert metrics["steps"] == (4 if method == "ease" else 2)  # APER trains the first task only
    assert (metrics["backward_passes"] > 0) == (optimizer == "fo-sgd")
    config = (paper_repo / out / "config.yaml").read_text()
    assert f"backbone: {backbone}\n" in config and "transforms: reference" in config
    checkpoint = paper_repo / out / "checkpoint.pt"
    weights = paper_repo / weights_file
    assert checkpoint.stat().st_size < 0.05 * weights.stat().st_size
    state = torch.load(checkpoint, weights_only=False)
    assert state["backbone"] == {"backbone": backbone, "weights_sha256": file_sha256(weights)}
