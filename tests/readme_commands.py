"""The commands of the README's and the book's guide's shell blocks, and where each one is run.

`tests/test_readme.py` runs the `here` ones and fails on a README or guide command that is not listed below;
`tests/pipeline-check.sh` runs the `pipeline` ones, in README order and exactly as written, in its
clone of the tiny grid after `dvc repro` (`python tests/readme_commands.py pipeline` prints them).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
# the README is the landing page; the manual is the book's Guide part (book/guide*.md, listed in book/pages.yaml)
GUIDE = sorted((ROOT / "book").glob("guide*.md"))

HERE = "here"
PIPELINE = "pipeline"

# Where each README command runs. A `here` entry may add flags that only make it cheaper (fewer epochs or
# steps); the reason of any other entry says why no test can run it on a CPU machine without the data.
WHERE = {
    "make main": "CI: .ci/run sets up with `make test` and `make pipeline-check` runs this dvc repro on the tiny grid",
    "make test": "CI: .ci/run runs it",
    "dvc remote add --default lab s3://our-bucket/zeroflow": "needs a cloud bucket; pipeline-check adds a local-directory remote",
    "dvc repro && dvc push": "needs the cloud remote above; pipeline-check runs both with a local-directory remote",
    'git add dvc.lock .dvc/config params.yaml && git commit -m "results of ..." && git push':
        "needs a git server; pipeline-check commits and clones locally",
    "dvc pull && dvc status": "needs the cloud remote above; pipeline-check runs both in a fresh clone of a local remote",
    'git add dvc.lock && git commit -m "baseline results"':
        "pipeline-check makes this commit (with its remote's config) in its fresh clone before the dvc commands below",
    "zeroflow --help": HERE,
    "zeroflow --version": HERE,
    "zeroflow optimizers": HERE,
    "zeroflow optimizers zo-sgd": HERE,
    "zeroflow train --help": HERE,
    "zeroflow pretrain --out runs/pretrain/seed0": (HERE, "--epochs 1 --classes 8"),
    "zeroflow pretrain --seed 1 --out runs/pretrain/seed1": (HERE, "--epochs 1 --classes 8"),
    "zeroflow train --method ease --optimizer zo-sgd --dataset hues --out runs/ease-zo-sgd":
        (HERE, "--set epochs=1 --set max_steps_per_epoch=2"),
    "zeroflow train --method ease --optimizer zo-sgd --dataset hues --seed 1 --set optimizer_hyper.q=4 "
    "--out runs/ease-zo-sgd-q4": (HERE, "--set epochs=1 --set max_steps_per_epoch=2"),
    "zeroflow train --method simplecil --dataset hues --out runs/no-training": HERE,
    "zeroflow search-lr --method ease --dataset hues --optimizers zo-sgd,fo-sgd --lrs 1e-3,1e-2 --out runs/lr.csv": HERE,
    "zeroflow bench --model vit-tiny --optimizers zo-sgd,fo-sgd,forward-grad --batch-size 32 --steps 5": (HERE, "--steps 2"),
    "zeroflow bench-stage train@ease-hues": PIPELINE,
    "dvc exp run -S optimizers.zo-sgd.lr=0.002": PIPELINE,
    "dvc params diff": PIPELINE,
    "dvc metrics show": PIPELINE,
    "dvc metrics diff": PIPELINE,
    "dvc plots show": PIPELINE,
    "zeroflow plots": PIPELINE,
    "dvc exp show --drop '.*' --keep 'Experiment|.*ease-hues.*zo-sgd.avg_acc$|.*zo-sgd.lr$'": PIPELINE,
    "dvc exp run --queue -S optimizers.zo-sgd.lr=0.002": PIPELINE,
    "dvc exp run --queue -S optimizers.zo-sgd.lr=0.005": PIPELINE,
    "dvc queue start -j 2": PIPELINE,
    "dvc queue status": PIPELINE,
    "git fetch origin gh-pages && git worktree add ../published FETCH_HEAD":
        "needs the published gh-pages branch; pipeline-check compares its build with its own site/latest",
    "zeroflow compare ../published/latest --tolerance 1":
        "needs the published book; pipeline-check runs `zeroflow compare site/latest`, tests/test_compare.py the rest",
    "cp params-paper.yaml params.yaml && dvc repro": "needs the paper's data and weights (and a GPU to finish); "
                                                    "tests/test_pipeline.py checks what it resolves to",
    "zeroflow train --profile paper --method ease --optimizer zo-sgd --dataset cifar100 --out runs/x":
        "needs CIFAR-100 and the ViT-B/16-IN21K weights",
}


def readme_commands(text: str | None = None) -> list[str]:
    """Each command of the ```bash blocks of `text`, or of the README then the guide's pages: continuation lines
    joined, comments dropped, each command once (where it first appears)."""
    text = "\n".join(path.read_text() for path in [README, *GUIDE]) if text is None else text
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            command = re.sub(r"\s+", " ", command)
            if command and not command.startswith("#") and command not in commands:
                commands.append(command)
    return commands


def where(command: str) -> tuple[str, str]:
    """(place, extra flags) of a README command; KeyError if it is not listed."""
    entry = WHERE[command]
    return entry if isinstance(entry, tuple) else (entry, "")


if __name__ == "__main__":
    place = sys.argv[1]
    print("\n".join(c for c in readme_commands() if where(c)[0] == place))
