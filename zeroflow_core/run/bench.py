"""Memory and time of one optimizer step, per optimizer, against a plain inference forward.

Every measurement runs in a fresh worker process (`python -m zeroflow_core.run.bench --worker ...`)
so that a peak-memory figure belongs to one optimizer and nothing else:

- one "forward" worker per benchmark: only no-grad, eval-mode forwards of the batch. Its peak is
  `forward_peak_memory_mb`, shared by every row (same model, same batch, same seed);
- one "step" worker per optimizer: warm-up, then `steps` rounds of one timed `step(closure)`
  followed by one timed no-grad forward, so `step_seconds / forward_seconds` compares
  measurements taken side by side under the same load; absolute times are noisy, the ratio is
  what we report. The step worker's peak is `peak_memory_mb` (its interleaved no-grad forwards
  need no more memory than any step does, so they do not raise it).

Memory, decided deliberately:
- CUDA: `torch.cuda.max_memory_allocated()` over the whole worker, model weights included and
  never reset, as the paper's GPU memory column counts the model too.
- CPU: the peak resident set of the worker, read from `VmHWM` in /proc/self/status. Not
  `getrusage(RUSAGE_SELF).ru_maxrss`: Linux carries the parent's high-water mark into the
  child across fork/vfork + exec, so a worker spawned by a 1.5 GB parent reports 1.5 GB while
  VmHWM (which belongs to the post-exec address space) reports its own peak. ru_maxrss is the
  fallback only where /proc is missing. CPU figures include the interpreter and the torch
  libraries; `baseline_memory_mb` (resident set after imports, before the model exists) is
  recorded so that net figures can be computed. Our optimizers never import torch._dynamo (see
  optim/base.py); forward-grad's torch.func does, and that is charged to forward-grad.
  Workers run with glibc's mmap threshold fixed at 4 MiB (MALLOC_MMAP_THRESHOLD_): every buffer of
  4 MiB or more is mapped on allocation and returned on free, so the resident peak follows the
  peak of live activations. With glibc's default the threshold climbs to the size of the largest
  freed buffer (up to 32 MiB) and later activations are carved from a heap that keeps freed pages,
  so the peak depends on allocation order: on ViT-B/16 at batch 48 a ZO-SGD worker peaked up to
  170 MB above the same forward, varying from run to run (FO/ZO 4.2× to 4.9×). Smaller buffers stay
  on the heap, where mapping each one would make small models' steps page-fault bound.

Attention, decided deliberately: `attention="explicit"` (default) computes softmax(q·kᵀ)·v with
the attention matrix materialised, as the official EASE/APER backbone (PILOT's vit_ease.py) does
and so as the paper's Table 2 was measured; backprop then keeps every block's attention matrix,
which is a large part of FO's memory. `attention="fused"` uses timm's fused
scaled-dot-product kernel (what our training runs use; same function, less stored). The forward
baseline uses the same attention as the step workers. forward-grad always runs unfused (jvp
has no rule for the fused CPU kernels); with `fused`, its row is still compared with the fused
forward, since the question is what training costs relative to inference, and
`forward_unfused_seconds` records the unfused forward for reference.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from zeroflow_core.optim.hyper import DIRECTION_STREAM
from zeroflow_core.settings import ConfigError, Setting, check_values, declared, did_you_mean, is_integer

SEED = 0
NUM_CLASSES = 100
RESULT_MARK = "ZEROFLOW_BENCH_RESULT "
ATTENTION = ("explicit", "fused")
MMAP_THRESHOLD = 4 << 20
EFFICIENCY_DIR = Path("runs/efficiency")


def _at_least(low):
    return dict(check=lambda value: value >= low, requirement=f"must be >= {low}")


def _budgets(values) -> bool:
    return all(is_integer(q) and q >= 1 for q in values)


# Table 2 (params.yaml's `efficiency`): what the `efficiency@<model>` stages measure, and each model's run.
EFFICIENCY_SETTINGS = declared(
    Setting("threads", 2, "torch threads in each worker process", **_at_least(1)),
    Setting("attention", "explicit", "explicit: softmax(q·kᵀ)·v as the official backbone; fused: timm's kernel",
            choices=ATTENTION),
    Setting("optimizers", [], "the optimizers measured (registry names)"),
    Setting("extra_q", [], "ZO-SGD measured again at each of these query budgets", check=_budgets,
            requirement="must hold integers >= 1"),
    Setting("batched_q", [], "ZO-SGD's step one query per forward against all of its queries in one forward, at "
            "each of these query budgets, side by side in one process (and each mode's peak memory)",
            check=_budgets, requirement="must hold integers >= 1"),
    Setting("backprop_head", [], "these forward-pass optimizers measured again with the classifier head trained by "
            "backprop (the run key head_optimizer: backprop): the hybrid head's memory and time against inference's",
            check=lambda values: isinstance(values, list) and all(isinstance(v, str) for v in values),
            requirement="must be a list of optimizer names"),
    Setting("models", {}, "one entry per model measured: its batch_size, steps and warmup"),
)
MODEL_SETTINGS = declared(
    Setting("batch_size", 32, "images per step", **_at_least(1)),
    Setting("steps", 5, "timed steps (the median is reported)", **_at_least(1)),
    Setting("warmup", 1, "untimed steps first", **_at_least(0)),
    EFFICIENCY_SETTINGS["optimizers"],
    EFFICIENCY_SETTINGS["extra_q"],
    EFFICIENCY_SETTINGS["batched_q"],
    EFFICIENCY_SETTINGS["backprop_head"],
)
MODEL_REQUIRED = ("batch_size", "steps", "warmup")


def check_efficiency(section: dict, where: str = "params.yaml") -> None:
    """params.yaml's `efficiency` section: every key present with its type, known models and optimizers."""
    from zeroflow_core.models.vit import BACKBONES
    from zeroflow_core.optim import OPTIMIZERS

    check_values(section, EFFICIENCY_SETTINGS, where, prefix="efficiency.",
                 required=[key for key in EFFICIENCY_SETTINGS if key not in ("batched_q", "backprop_head")])
    if not section["models"]:
        raise ConfigError(f"{where}: 'efficiency.models' must name at least one model")
    for model, settings in section["models"].items():
        if model not in BACKBONES:
            raise ConfigError(f"{where}: 'efficiency.models.{model}': unknown model; known: {', '.join(BACKBONES)}")
        check_values(settings, MODEL_SETTINGS, where, prefix=f"efficiency.models.{model}.", required=MODEL_REQUIRED)
    for name, settings in [("efficiency", section), *((f"efficiency.models.{m}", s) for m, s in section["models"].items())]:
        unknown = [optimizer for optimizer in settings.get("optimizers", []) if optimizer not in OPTIMIZERS]
        if unknown:
            raise ConfigError(f"{where}: '{name}.optimizers': unknown optimizer {unknown[0]!r}"
                              f"{did_you_mean(unknown[0], OPTIMIZERS)}; known: {', '.join(OPTIMIZERS)}")
        forward_pass = [o for o, spec in OPTIMIZERS.items() if spec.forward_pass_only]
        backprop = [o for o in settings.get("backprop_head", []) if o not in forward_pass]
        if backprop:
            raise ConfigError(f"{where}: '{name}.backprop_head': {backprop[0]!r} is no forward-pass optimizer (the "
                              f"hybrid head is one's variant); known: {', '.join(forward_pass)}")


def efficiency_pairs(section: dict, model: str) -> tuple[list, dict]:
    """Table 2's measurements for one model of the `efficiency` section: (optimizer, q) pairs, its optimizers
    (the model's list, else the section's) then ZO-SGD at each extra q, and the model's settings."""
    if model not in section["models"]:
        raise ConfigError(f"'efficiency.models' has no entry {model!r}; it has: {', '.join(section['models'])}")
    settings = section["models"][model]
    optimizers, extra_q = (settings.get(key, section[key]) for key in ("optimizers", "extra_q"))
    return [(name, None) for name in optimizers] + [("zo-sgd", q) for q in extra_q], settings


def backprop_head_optimizers(section: dict, model: str) -> list[str]:
    """The forward-pass optimizers the `efficiency@<model>` stage measures again with the head by backprop."""
    return list(section["models"][model].get("backprop_head", section.get("backprop_head", [])))


def batched_budgets(section: dict, model: str) -> list[int]:
    """The query budgets at which the `efficiency@<model>` stage times ZO-SGD sequential against batched."""
    return list(section["models"][model].get("batched_q", section.get("batched_q", [])))


class BenchmarkError(RuntimeError):
    """A benchmark worker failed; the message is the worker's own one-line error."""


# -- parent side ------------------------------------------------------------------------------
def run_benchmark(model: str, optimizers, batch_size: int, steps: int, q: int | None = None,
                  threads: int = 2, warmup: int = 1, depth: int | None = None,
                  attention: str = "explicit", head_optimizer: str = "same") -> list[dict]:
    """One row per optimizer (see the module docstring for what each figure means).

    `optimizers` holds registry names, measured at query budget `q` (None: each one's default),
    and/or (name, q) pairs for rows at their own budget, e.g. ["zo-sgd", ("zo-sgd", 4)]. With `head_optimizer`
    backprop, the model's head is trained too, by backprop (optim/hybrid_head.py), the adapters by the optimizer.
    """
    from zeroflow_core.optim import OPTIMIZERS

    rows_to_run = validate(model, optimizers, batch_size, steps, q, threads, warmup, depth, attention)
    common = dict(model=model, batch_size=batch_size, steps=steps, threads=threads, warmup=warmup, depth=depth,
                  attention=attention)
    forward = _spawn(dict(common, mode="forward"), "the forward-only baseline")
    if head_optimizer != "same" and not all(OPTIMIZERS[name].forward_pass_only for name, _ in rows_to_run):
        raise ValueError(f"head_optimizer {head_optimizer!r} is for forward-pass optimizers only")
    rows = []
    for name, budget in rows_to_run:
        result = _spawn(dict(common, mode="step", optimizer=name, q=budget, head_optimizer=head_optimizer),
                        f"optimizer {name!r}")
        rows.append(_row(name, common, result, forward) | {"head_optimizer": head_optimizer})
    return rows


def validate(model, optimizers, batch_size, steps, q, threads, warmup, depth, attention="explicit"):
    """The (optimizer, q) pairs to measure, or a ValueError naming the bad argument."""
    from zeroflow_core.models.vit import BACKBONES
    from zeroflow_core.optim import OPTIMIZERS

    if model not in BACKBONES:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(sorted(BACKBONES))}")
    entries = [optimizers] if isinstance(optimizers, str) else list(optimizers)
    pairs = [(e, q) if isinstance(e, str) else tuple(e) for e in entries]
    pairs = [(n.strip(), budget) for n, budget in pairs if n.strip()]
    if not pairs:
        raise ValueError("no optimizer given")
    unknown = [n for n, _ in pairs if n not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"unknown optimizer{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(OPTIMIZERS)}")
    check_values(dict(batch_size=batch_size, steps=steps, warmup=warmup), MODEL_SETTINGS, "bench", error=ValueError)
    check_values(dict(threads=threads, attention=attention), EFFICIENCY_SETTINGS, "bench", error=ValueError)
    for _, budget in pairs:
        if budget is not None:
            check_values({"q": budget}, DIRECTION_STREAM, "bench", error=ValueError)
    if depth is not None and not (is_integer(depth) and depth >= 1):
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    return pairs


def _spawn(config: dict, what: str) -> dict:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    # OpenMP/MKL pools outside torch's own setting would otherwise size themselves to the machine.
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(config["threads"])
    # A fixed glibc mmap threshold (see the module docstring), unless the caller chose one.
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    proc = subprocess.run([sys.executable, "-m", "zeroflow_core.run.bench", "--worker", json.dumps(config)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        if proc.returncode < 0:
            reason = f"killed by signal {-proc.returncode}" + (" (out of memory?)" if proc.returncode == -9 else "")
        else:
            reason = lines[-1] if lines else f"exit status {proc.returncode}"
        raise BenchmarkError(f"benchmark worker for {what} failed: {reason}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    raise BenchmarkError(f"benchmark worker for {what} printed no result")


def _row(name: str, common: dict, result: dict, forward: dict) -> dict:
    step, fwd = result["step_seconds"], result["forward_seconds"]
    row = {
        "optimizer": name,
        "q": result["q"],
        "model": common["model"],
        "batch_size": common["batch_size"],
        "device": result["device"],
        "threads": common["threads"],
        "steps": common["steps"],
        "attention": common["attention"],
        "peak_memory_mb": result["peak_memory_mb"],
        "forward_peak_memory_mb": forward["peak_memory_mb"],
        "baseline_memory_mb": result["baseline_memory_mb"],
        "forward_baseline_memory_mb": forward["baseline_memory_mb"],
        "step_seconds": step,
        "step_spread": result["step_spread"],
        "forward_seconds": fwd,
        "forward_spread": result["forward_spread"],
        "step_times": result["step_times"],
        "forward_times": result["forward_times"],
        "forward_unfused_seconds": result["forward_unfused_seconds"],
        "forwards_per_step": result["forwards_per_step"],
        "backwards_per_step": result["backwards_per_step"],
        "head_backwards_per_step": result["head_backwards_per_step"],
        # the median of the repeats' step / forward, each pair timed side by side in the worker
        "step_over_forward": result["step_over_forward"],
        "step_over_forward_spread": result["step_over_forward_spread"],
        "step_over_forwards": step / (result["forwards_per_step"] * fwd) if result["forwards_per_step"] else None,
        "memory_over_forward": result["peak_memory_mb"] / forward["peak_memory_mb"],
    }
    if common.get("depth"):
        row["depth"] = common["depth"]
    return row


def run_batching(model: str, optimizers, batch_size: int, steps: int, qs, threads: int = 1, warmup: int = 1,
                 depth: int | None = None, attention: str = "explicit", memory: bool = True) -> list[dict]:
    """Each forward-pass optimizer at each q, one query per forward against all of a step's queries in one forward:
    the two steps and a plain no-grad forward interleaved in one worker (`steps` times: medians and the spread
    between quartiles), and, with `memory`, each mode's peak in a worker of its own."""
    from zeroflow_core.optim import OPTIMIZERS

    names = [name for name in optimizers if "batched" in OPTIMIZERS[name].hyper]
    validate(model, names, batch_size, steps, None, threads, warmup, depth, attention)
    common = dict(model=model, batch_size=batch_size, steps=steps, threads=threads, warmup=warmup, depth=depth,
                  attention=attention)
    rows = []
    for name in names:
        for q in qs:
            pair = _spawn(dict(common, mode="pair", optimizer=name, q=q), f"optimizer {name!r} at q = {q}")
            row = {"optimizer": name, "q": q, "model": model, "batch_size": batch_size, "threads": threads,
                   "device": pair["device"], "forwards_per_step": pair["forwards_per_step"], "steps": steps}
            ratios = [b / s for b, s in zip(pair["batched_seconds"], pair["sequential_seconds"])]
            for key in ("sequential", "batched", "forward", "copies_forward"):
                row[f"{key}_seconds"], row[f"{key}_spread"] = _median_spread(pair[f"{key}_seconds"])
            row["batched_over_sequential"], row["ratio_spread"] = _median_spread(ratios)
            forwards = row["forwards_per_step"] * row["forward_seconds"]
            row["sequential_over_forwards"] = row["sequential_seconds"] / forwards
            row["batched_over_forwards"] = row["batched_seconds"] / forwards
            row["copies_forward_over_forwards"] = row["copies_forward_seconds"] / forwards
            if memory:
                for key, flag in (("sequential", False), ("batched", True)):
                    peak = _spawn(dict(common, mode="step", optimizer=name, q=q, batched=flag, steps=1),
                                  f"optimizer {name!r} at q = {q}, {key}")
                    row[f"{key}_peak_mb"] = peak["peak_memory_mb"]
            rows.append(row)
    return rows


def _spread(values) -> float | None:
    """The spread between the first and third quartiles of repeated timings; None for a single one (no spread
    measured)."""
    if len(values) < 2:
        return None
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q3 - q1


def _median_spread(values) -> tuple[float, float]:
    """The median and the spread between the first and third quartiles."""
    q1, median, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return statistics.median(values), q3 - q1


def format_batching(rows: list[dict]) -> str:
    """run_batching's table: per optimizer and q, each step as a multiple of its forwards (n = the queries' forwards,
    each a plain forward of the batch) and the batched step against the sequential one, medians ± quartile spread."""
    head = ["optimizer", "q", "n", "forward s", "sequential s", "batched s", "seq/(n·fwd)", "batched/(n·fwd)",
            "nB-fwd/(n·fwd)", "batched/seq"]
    memory = "sequential_peak_mb" in rows[0] if rows else False
    if memory:
        head += ["seq peak MB", "batched peak MB"]
    lines = []
    for r in rows:
        cells = [r["optimizer"], str(r["q"]), f"{r['forwards_per_step']:g}",
                 f"{r['forward_seconds']:.4f}±{r['forward_spread']:.4f}",
                 f"{r['sequential_seconds']:.4f}±{r['sequential_spread']:.4f}",
                 f"{r['batched_seconds']:.4f}±{r['batched_spread']:.4f}",
                 f"{r['sequential_over_forwards']:.2f}", f"{r['batched_over_forwards']:.2f}",
                 f"{r['copies_forward_over_forwards']:.2f}", f"{r['batched_over_sequential']:.2f}±{r['ratio_spread']:.2f}"]
        if memory:
            cells += [f"{r['sequential_peak_mb']:.0f}", f"{r['batched_peak_mb']:.0f}"]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)] if lines else [len(h) for h in head]
    out = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    out += ["  ".join(c.rjust(w) for c, w in zip(cells, widths)) for cells in lines]
    if rows:
        r0 = rows[0]
        out.append(f"model {r0['model']}, batch {r0['batch_size']}, device {r0['device']}, {r0['threads']} thread(s), "
                   f"median ± spread between quartiles of {r0['steps']} interleaved repeats; nB-fwd: one plain forward "
                   "of the n copies of the batch, what one large batch alone gains over n forwards")
    return "\n".join(out)


def stage_overhead(stage: str, folder: Path, workers: int) -> dict:
    """The fixed cost per cell of one cell stage of dvc.yaml: its folder is emptied, so every cell runs;
    `dvc repro` runs the stage alone; the cells' own time (training and evaluating their tasks, their timing
    files' task_seconds) is taken from the wall time, and the rest shared among the cells."""
    import shutil

    from zeroflow_core.run.timing import read_timing, timing_folder

    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(timing_folder(folder), ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(["dvc", "repro", "--single-item", "--force", stage], check=True, capture_output=True)
    wall = time.perf_counter() - started
    cells = [read_timing(path.parent) for path in sorted(Path(folder).glob("*/metrics.json"))]
    own = sum(sum(cell.get("task_seconds", [])) for cell in cells)
    return {"stage": stage, "cells": len(cells), "workers": workers, "wall_s": wall, "cells_own_s": own,
            # side by side, `workers` cells share the wall time
            "fixed_per_cell_s": (wall - own / workers) / len(cells)}


def format_table(rows: list[dict]) -> str:
    """A readable table of the ratios; memory relative to the first fo-* row when there is one."""
    if not rows:
        return ""
    reference = next((r for r in rows if r["optimizer"].startswith("fo-")), None)
    head = ["optimizer", "q", "fwd/step", "bwd/step", "step s", "fwd s", "step/fwd", "step/(n·fwd)",
            "peak MB", "fwd peak MB", "mem/fwd", "net mem/fwd"]
    if reference:
        head.append(f"mem/{reference['optimizer']}")
    lines = []
    for r in rows:
        # net: without the interpreter and libraries, i.e. what the model, batch and optimizer add
        net = (r["peak_memory_mb"] - r["baseline_memory_mb"]) / max(
            r["forward_peak_memory_mb"] - r["forward_baseline_memory_mb"], 1e-9)
        cells = [r["optimizer"], "-" if r["q"] is None else str(r["q"]), f"{r['forwards_per_step']:g}",
                 f"{r['backwards_per_step']:g}", f"{r['step_seconds']:.4f}", f"{r['forward_seconds']:.4f}",
                 f"{r['step_over_forward']:.2f}",
                 "-" if r["step_over_forwards"] is None else f"{r['step_over_forwards']:.2f}",
                 f"{r['peak_memory_mb']:.0f}", f"{r['forward_peak_memory_mb']:.0f}",
                 f"{r['memory_over_forward']:.2f}", f"{net:.2f}"]
        if reference:
            cells.append(f"{r['peak_memory_mb'] / reference['peak_memory_mb']:.2f}")
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    out += ["  ".join(c.rjust(w) for c, w in zip(cells, widths)) for cells in lines]
    r0 = rows[0]
    out.append(f"model {r0['model']}, batch {r0['batch_size']}, {r0['attention']} attention, device {r0['device']}, "
               f"{r0['threads']} threads, median of {r0['steps']} steps; n = forwards per step")
    unfused = [r for r in rows if r["forward_unfused_seconds"] is not None]
    for r in unfused:
        out.append(f"{r['optimizer']} runs attention unfused: unfused forward {r['forward_unfused_seconds']:.4f} s, "
                   f"step / unfused forward {r['step_seconds'] / r['forward_unfused_seconds']:.2f}")
    return "\n".join(out)


# -- worker side ------------------------------------------------------------------------------
def _build(config: dict, device):
    import torch

    from zeroflow_core.models.vit import AdapterClassifier, create_adapter_vit, disable_fused_attention

    torch.manual_seed(SEED)
    vit = create_adapter_vit(config["model"])
    if config.get("depth"):
        # tests only: fewer blocks, built before the adapters so that adapters match blocks
        vit.backbone.blocks = vit.backbone.blocks[: config["depth"]]
    model = AdapterClassifier(vit, num_classes=NUM_CLASSES).to(device)
    if config.get("attention", "explicit") == "explicit":
        disable_fused_attention(model)
    generator = torch.Generator().manual_seed(SEED)
    size = vit.image_size
    x = torch.randn(config["batch_size"], 3, size, size, generator=generator).to(device)
    y = torch.randint(0, NUM_CLASSES, (config["batch_size"],), generator=generator).to(device)
    return model, x, y


def _timed(fn, device) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _worker(config: dict) -> dict:
    import torch

    from zeroflow_core.models.parameter_sets import SetClosure, set_cross_entropy
    from zeroflow_core.optim import OPTIMIZERS, create_optimizer
    from zeroflow_core.optim.base import eval_mode
    from zeroflow_core.run.runtime import current_memory_mb, peak_memory_mb

    torch.set_num_threads(config["threads"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    baseline = current_memory_mb(device)
    model, x, y = _build(config, device)
    attention = [m for m in model.modules() if hasattr(m, "fused_attn")]
    inference_fused = [m.fused_attn for m in attention]

    def forward(fused=None):
        # Set the attention path explicitly: an optimizer may have switched it (forward-grad).
        current = [m.fused_attn for m in attention]
        for m, flag in zip(attention, inference_fused if fused is None else [fused] * len(attention)):
            m.fused_attn = flag
        try:
            with torch.no_grad(), eval_mode(model):
                model(x)
        finally:
            for m, flag in zip(attention, current):
                m.fused_attn = flag

    result = {"device": str(device), "baseline_memory_mb": baseline}
    if config["mode"] == "forward":
        for _ in range(config["warmup"]):
            forward()
        times = [_timed(forward, device) for _ in range(config["steps"])]
        return dict(result, forward_seconds=statistics.median(times), peak_memory_mb=peak_memory_mb(device))

    name = config["optimizer"]
    hyper = {"q": config["q"]} if config["q"] is not None and "q" in OPTIMIZERS[name].hyper else {}
    if "batched" in OPTIMIZERS[name].hyper:
        hyper["batched"] = bool(config.get("batched", False))
    params = [p for p in model.parameters() if p.requires_grad]
    groups = params
    if config.get("head_optimizer", "same") == "backprop":
        from zeroflow_core.optim.hybrid_head import BACKPROP_HEAD

        model.head.requires_grad_(True)
        groups = [{"params": params}, {"params": list(model.head.parameters()), BACKPROP_HEAD: True}]
        params = params + list(model.head.parameters())
    optimizer = create_optimizer(name, groups, model=model, **hyper)
    switched = [m.fused_attn for m in attention] != inference_fused
    closure = SetClosure(model, lambda: set_cross_entropy(model(x), y))
    if config["mode"] == "pair":
        return dict(result, **_pair(config, model, x, params, closure, forward, device, name, hyper))

    def step():
        optimizer.step(closure)

    model.train()  # as training would run; ZO and forward-grad switch to eval for their own forwards
    for _ in range(config["warmup"]):
        step()
        forward()
    forwards, backwards = optimizer.forward_passes, optimizer.backward_passes
    head_backwards = optimizer.head_backward_passes
    step_times, forward_times, unfused_times = [], [], []
    for _ in range(config["steps"]):
        step_times.append(_timed(step, device))
        forward_times.append(_timed(forward, device))
        if switched:
            unfused_times.append(_timed(lambda: forward(fused=False), device))
    ratios = [s / f for s, f in zip(step_times, forward_times)]
    return dict(
        result,
        q=optimizer.defaults.get("q"),
        trainable_parameters=sum(p.numel() for p in params),
        step_times=step_times,
        forward_times=forward_times,
        step_seconds=statistics.median(step_times),
        step_spread=_spread(step_times),
        forward_seconds=statistics.median(forward_times),
        forward_spread=_spread(forward_times),
        step_over_forward=statistics.median(ratios),
        step_over_forward_spread=_spread(ratios),
        forward_unfused_seconds=statistics.median(unfused_times) if switched else None,
        forwards_per_step=(optimizer.forward_passes - forwards) / config["steps"],
        backwards_per_step=(optimizer.backward_passes - backwards) / config["steps"],
        head_backwards_per_step=(optimizer.head_backward_passes - head_backwards) / config["steps"],
        peak_memory_mb=peak_memory_mb(device),
    )


def _pair(config: dict, model, x, params, closure, forward, device, name: str, hyper: dict) -> dict:
    """The same optimizer one query at a time and batched, on the same model and batch, their steps and a no-grad
    forward interleaved `steps` times, with one plain forward of the step's n copies of the batch: the ratios are
    measured side by side, under the same load."""
    import torch

    from zeroflow_core.optim import create_optimizer
    from zeroflow_core.optim.base import eval_mode

    sequential = create_optimizer(name, params, model=model, **{**hyper, "batched": False})
    batched = create_optimizer(name, params, model=model, **{**hyper, "batched": True})
    # What one large batch alone gains: one plain forward of the step's n copies of the batch (no perturbation, no
    # step) against n forwards of the batch, on this device and thread count. The batched step can go below it only
    # by what runs once (the layers before the first adapter), and above it by its perturbations and update.
    copies = x.repeat(sequential.forwards_per_step, *[1] * (x.dim() - 1))

    def one_forward_of_copies():
        with torch.no_grad(), eval_mode(model):
            model(copies)

    model.train()
    for _ in range(config["warmup"]):
        sequential.step(closure)
        batched.step(closure)
        forward()
        one_forward_of_copies()
    times = {"sequential": [], "batched": [], "forward": [], "copies_forward": []}
    for _ in range(config["steps"]):
        times["sequential"].append(_timed(lambda: sequential.step(closure), device))
        times["batched"].append(_timed(lambda: batched.step(closure), device))
        times["forward"].append(_timed(forward, device))
        times["copies_forward"].append(_timed(one_forward_of_copies, device))
    return {"q": sequential.defaults.get("q"), "forwards_per_step": sequential.forwards_per_step,
            **{f"{key}_seconds": values for key, values in times.items()}}


def _worker_main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--worker":
        print("usage: python -m zeroflow_core.run.bench --worker CONFIG_JSON (use `zeroflow bench` instead)",
              file=sys.stderr)
        return 2
    try:
        result = _worker(json.loads(argv[1]))
    except Exception as error:  # the parent shows this one line, not a traceback
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
