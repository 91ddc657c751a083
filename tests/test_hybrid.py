"""The two hybrids of forward passes and backprop: the head by backprop (run key head_optimizer, after ZO-FC) and the
hybrid schedule (run key fo_epochs, the ZeroFlow ICML version's Enhancement 1)."""
import copy
import io

import pytest
import torch

from zeroflow_core.models.parameter_sets import SetClosure, set_cross_entropy
from zeroflow_core.optim import NonFiniteLossError, create_optimizer
from zeroflow_core.optim.hybrid_head import BACKPROP_HEAD
from zeroflow_core.run.config import ConfigError, resolve_config
from zeroflow_core.run.train import train

from test_train import TINY

PLAIN = {"momentum": 0.0, "weight_decay": 0.0}


def _classifier(seed=0):
    """A two-block adapter ViT with a trainable linear head, and a batch."""
    from zeroflow_core.models import AdapterClassifier, create_adapter_vit

    torch.manual_seed(seed)
    model = AdapterClassifier(create_adapter_vit("vit-tiny"), num_classes=5, train_head=True)
    model.vit.backbone.blocks = model.vit.backbone.blocks[:2]
    for adapters in model.vit.adapter_sets:
        del adapters[2:]
    with torch.no_grad():  # the up-projections start at zero; give the estimate something to see
        for adapters in model.vit.adapter_sets:
            for adapter in adapters:
                adapter.up.weight.normal_(0, 0.1)
    generator = torch.Generator().manual_seed(0)
    return model, (torch.rand(6, 3, 32, 32, generator=generator), torch.randint(0, 5, (6,), generator=generator))


def _closure(model, batch):
    x, y = batch
    return SetClosure(model, lambda: set_cross_entropy(model(x), y))


def _adapters(model):
    return [p for name, p in model.named_parameters() if p.requires_grad and not name.startswith("head.")]


def _hybrid(name, model, lr=0.1, **hyper):
    groups = [{"params": _adapters(model)}, {"params": list(model.head.parameters()), BACKPROP_HEAD: True}]
    return create_optimizer(name, groups, model=model, lr=lr, **hyper)


def _head_gradient(model, batch, adapters) -> list[torch.Tensor]:
    """∇_head L with the adapters at `adapters`, in eval mode (as a zeroth-order step evaluates)."""
    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p, value in zip(_adapters(probe), adapters):
            p.copy_(value)
    loss = torch.nn.functional.cross_entropy(probe(batch[0]), batch[1])
    return list(torch.autograd.grad(loss, list(probe.head.parameters())))


def test_the_head_steps_along_the_mean_of_its_exact_gradients_at_the_steps_points():
    """Two-sided ZO-SGD at q = 2: the head moves by −lr · (1/4) Σ ∇_head L at the four points the step evaluated, and
    the adapters exactly as ZO-SGD over the adapters alone (the same directions: the head is no part of them)."""
    model, batch = _classifier()
    start = copy.deepcopy(model)
    points = []
    closure, adapters = _closure(model, batch), _adapters(model)

    def recording():
        points.append([p.detach().clone() for p in adapters])
        return closure()

    # sequential, so that the points can be recorded; ε = 1e-2 keeps the losses' fp32 rounding out of the comparison
    # with the batched step below (tests/test_optim.py's batched tests do the same)
    opt = _hybrid("zo-sgd", model, q=2, seed=3, zo_eps=1e-2, **PLAIN)
    opt.step(recording)
    assert len(points) == 4 and opt.head_backward_passes == 4 and opt.backward_passes == 0
    expected = [sum(g) / 4 for g in zip(*(_head_gradient(start, batch, point) for point in points))]
    for h, b, e in zip(model.head.parameters(), start.head.parameters(), expected):
        torch.testing.assert_close(b.detach() - h.detach(), 0.1 * e, rtol=1e-4, atol=1e-8)

    # batched: the same step, the four points in one forward and one backward through the head
    again = copy.deepcopy(start)
    batched_opt = _hybrid("zo-sgd", again, q=2, seed=3, zo_eps=1e-2, batched=True, **PLAIN)
    batched_opt.step(_closure(again, batch))
    assert batched_opt.head_backward_passes == 1 and batched_opt.forward_passes == 4
    moved = torch.cat([(s - b).flatten() for s, b in zip(start.parameters(), model.parameters())])
    apart = torch.cat([(a - b).flatten() for a, b in zip(again.parameters(), model.parameters())])
    assert float(apart.norm() / moved.norm()) <= 1e-4

    # the adapters: as ZO-SGD over the adapters alone, the head frozen
    alone = copy.deepcopy(start)
    alone.head.requires_grad_(False)
    create_optimizer("zo-sgd", _adapters(alone), model=alone, lr=0.1, q=2, seed=3, zo_eps=1e-2, **PLAIN).step(
        _closure(alone, batch))
    for a, b in zip(_adapters(alone), _adapters(model)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("batched", [False, True])
def test_the_forward_passes_record_no_graph_through_the_backbone(batched):
    """What autograd keeps during a hybrid step is the head's inputs (a few KB), not the backbone's activations that a
    backprop step keeps: the step's memory stays at inference's."""
    from torch.autograd.graph import saved_tensors_hooks

    def saved_bytes(step):
        total = [0]

        def pack(tensor):
            total[0] += tensor.numel() * tensor.element_size()
            return tensor

        with saved_tensors_hooks(pack, lambda tensor: tensor):
            step()
        return total[0]

    model, batch = _classifier()
    hybrid = saved_bytes(lambda: _hybrid("zo-sgd", model, q=2, batched=batched).step(_closure(model, batch)))
    backprop = saved_bytes(lambda: create_optimizer("fo-sgd", list(model.parameters()), model=model).step(
        _closure(model, batch)))
    features = 4 * 6 * model.vit.embed_dim * 4  # four points × batch × features × fp32
    assert 0 < hybrid <= 4 * features < backprop / 10, (hybrid, backprop)


def test_forward_grad_with_the_head_by_backprop_takes_the_exact_head_gradient():
    model, batch = _classifier()
    start = copy.deepcopy(model)
    opt = _hybrid("forward-grad", model, q=2, mode="eval")
    opt.step(_closure(model, batch))
    expected = _head_gradient(start, batch, _adapters(start))
    for h, b, e in zip(model.head.parameters(), start.head.parameters(), expected):
        torch.testing.assert_close(b.detach() - h.detach(), 0.1 * e, rtol=1e-4, atol=1e-7)
    assert any(not torch.equal(a, b) for a, b in zip(_adapters(model), _adapters(start)))


def test_an_exact_step_trains_the_head_with_the_rest_and_a_failed_step_leaves_it_alone():
    model, batch = _classifier()
    opt = _hybrid("zo-sgd", model, fo_every=1)
    head = [p.detach().clone() for p in model.head.parameters()]
    opt.step(_closure(model, batch))
    assert opt.backward_passes == 1 and opt.head_backward_passes == 0
    assert all(not torch.equal(h, p) for h, p in zip(head, model.head.parameters()))
    head = [p.detach().clone() for p in model.head.parameters()]
    failing = _hybrid("zo-sgd", model, q=2)
    with pytest.raises(NonFiniteLossError):
        failing.step(lambda: _closure(model, batch)() * float("nan"))
    assert all(torch.equal(h, p) for h, p in zip(head, model.head.parameters()))


def test_the_heads_state_resumes_bit_identically():
    def run(steps, state=None):
        model, batch = _classifier()
        opt = _hybrid("zo-adam", model, q=2)
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        for _ in range(steps):
            opt.step(_closure(model, batch))
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buffer)
        buffer.seek(0)
        return model, opt, torch.load(buffer, weights_only=False)

    straight, opt_a, _ = run(4)
    _, _, checkpoint = run(2)
    resumed, opt_b, _ = run(2, checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters()))
    assert opt_a.counters() == opt_b.counters() and opt_b.head_backward_passes == 16
    assert opt_b.param_groups[1][BACKPROP_HEAD] and len(opt_b.state[list(resumed.head.parameters())[0]]) == 3


def test_only_a_forward_pass_optimizer_takes_a_backprop_head():
    model, _ = _classifier()
    with pytest.raises(ValueError, match="backprop_head.*forward-pass"):
        _hybrid("fo-sgd", model)
    with pytest.raises(ValueError, match="backprop_head.*true or false"):
        create_optimizer("zo-sgd", [{"params": list(model.head.parameters()), BACKPROP_HEAD: "yes"}])


# -- in a run ---------------------------------------------------------------------------------------------------
BASE = {**TINY, "method": "ease", "n_tasks": 2, "epochs": 2, "max_steps_per_epoch": 3, "heldout_every": 0,
        "optimizer_hyper": {"q": 2, "batched": True}}


def test_a_run_with_the_head_by_backprop_spends_the_same_forwards_and_one_head_backward_per_step(tmp_path):
    plain = train(resolve_config({**BASE, "optimizer": "zo-sgd"}), tmp_path / "plain")
    hybrid = train(resolve_config({**BASE, "optimizer": "zo-sgd", "head_optimizer": "backprop"}), tmp_path / "hybrid")
    assert hybrid["forward_passes"] == plain["forward_passes"] == 12 * 4
    assert hybrid["head_backward_passes"] == hybrid["steps"] == 12 and hybrid["backward_passes"] == 0
    assert plain["head_backward_passes"] == 0 and hybrid["acc_matrix"] != plain["acc_matrix"]


@pytest.mark.parametrize("optimizer,key,value", [("fo-sgd", "head_optimizer", "backprop"), ("none", "fo_epochs", 1),
                                                 ("zo-sgd", "fo_epochs", 3), ("zo-sgd", "fo_hyper", {"lr": 0.1})])
def test_the_hybrids_are_refused_where_they_mean_nothing(optimizer, key, value):
    with pytest.raises(ConfigError, match=key):
        resolve_config({**BASE, "optimizer": optimizer, key: value,
                        **({"optimizer_hyper": {}} if optimizer in ("fo-sgd", "none") else {})})


def test_the_hybrid_schedule_is_backprop_first_then_the_forward_pass_optimizer(tmp_path):
    """fo_epochs = epochs is the backprop run itself (fo-sgd at its own run's settings); fo_epochs = 1 of 2 starts as
    it, epoch for epoch, then continues with ZO-SGD."""
    fo = train(resolve_config({**BASE, "optimizer": "fo-sgd", "optimizer_hyper": {}}), tmp_path / "fo")
    all_fo = train(resolve_config({**BASE, "optimizer": "zo-sgd", "fo_epochs": 2}), tmp_path / "all")
    assert all_fo["acc_matrix"] == fo["acc_matrix"] and all_fo["loss_curves"] == fo["loss_curves"]
    assert all_fo["backward_passes"] == fo["backward_passes"] == 12

    fo_one = train(resolve_config({**BASE, "optimizer": "fo-sgd", "optimizer_hyper": {}, "epochs": 1}),
                   tmp_path / "fo1")
    half = train(resolve_config({**BASE, "optimizer": "zo-sgd", "fo_epochs": 1}), tmp_path / "half")
    for curve, prefix in zip(half["loss_curves"], fo_one["loss_curves"]):
        assert curve[:3] == prefix and len(curve) == 6
    assert half["backward_passes"] == 6 and half["forward_passes"] == 6 + 6 * 4


def test_the_backprop_phase_anneals_over_its_own_epochs(tmp_path):
    """Two backprop epochs of three follow a two-epoch backprop run step for step: the cosine schedule of the phase
    spans the phase, not the run."""
    fo_two = train(resolve_config({**BASE, "optimizer": "fo-sgd", "optimizer_hyper": {}}), tmp_path / "fo2")
    hybrid = train(resolve_config({**BASE, "optimizer": "zo-sgd", "epochs": 3, "fo_epochs": 2}), tmp_path / "hybrid")
    for curve, prefix in zip(hybrid["loss_curves"], fo_two["loss_curves"]):
        assert curve[:6] == prefix and len(curve) == 9


def test_the_backprop_phase_takes_its_optimizers_own_settings_and_params_yaml(tmp_path):
    from zeroflow_core.pipeline.cells import resolve_run
    from zeroflow_core.pipeline.params import load_params

    config = resolve_config({**BASE, "optimizer": "zo-adam", "fo_epochs": 1})
    assert config["fo_hyper"] == resolve_config({**BASE, "optimizer": "fo-adam", "optimizer_hyper": {}})[
        "optimizer_hyper"]
    params = load_params("params.yaml")
    params["optimizers"]["fo-sgd"] = {"lr": 0.07}
    params["train"] = {**params["train"], "fo_epochs": 1}
    resolved = resolve_run(params, "ease", "zo-sgd", "hues", 0)
    assert resolved.config["fo_hyper"]["lr"] == 0.07
    assert resolved.set_by["fo_hyper.lr"].startswith("params.yaml optimizers.fo-sgd")


# -- Table 2 ---------------------------------------------------------------------------------------------------
def test_table_2_measures_the_hybrid_head_as_a_row_of_its_own(tmp_path):
    """`efficiency.backprop_head`: ZO-SGD again with the head by backprop, one head backward per forward call (two
    at two-sided q = 1) and no full backward; its row is labelled apart from plain ZO-SGD's."""
    import json

    from zeroflow_core.book import table_2
    from zeroflow_core.run.bench import run_benchmark

    plain, = run_benchmark("vit-tiny", ["zo-sgd"], batch_size=2, steps=1, threads=1, warmup=0, depth=2)
    hybrid, = run_benchmark("vit-tiny", ["zo-sgd"], batch_size=2, steps=1, threads=1, warmup=0, depth=2,
                            head_optimizer="backprop")
    assert (hybrid["forwards_per_step"], hybrid["backwards_per_step"], hybrid["head_backwards_per_step"]) == (2, 0, 2)
    assert plain["head_backwards_per_step"] == 0 and hybrid["head_optimizer"] == "backprop"
    with pytest.raises(ValueError, match="forward-pass optimizers only"):
        run_benchmark("vit-tiny", ["fo-sgd"], batch_size=2, steps=1, threads=1, warmup=0, depth=2,
                      head_optimizer="backprop")
    fo = {**plain, "optimizer": "fo-sgd", "q": None, "head_optimizer": "same"}
    old = {k: v for k, v in fo.items() if k not in ("head_optimizer", "head_backwards_per_step")}  # before the head
    (tmp_path / "vit-tiny.json").write_text(json.dumps([old, plain, hybrid]))
    frame = table_2.load_efficiency(tmp_path, ["vit-tiny"])
    assert frame.label.tolist() == ["FO-SGD", "ZO-SGD (q = 1)", "ZO-SGD (q = 1), head by backprop"]
    table = table_2.efficiency_table(frame, "vit-tiny").set_index("optimizer")
    assert table["head backwards / step"].tolist() == [0, 0, 2]


def test_only_forward_pass_optimizers_are_measured_with_a_backprop_head():
    from zeroflow_core.pipeline.params import check_params, load_params

    params = load_params("params.yaml")
    params["efficiency"]["backprop_head"] = ["fo-adam"]
    with pytest.raises(ConfigError, match="'efficiency.backprop_head': 'fo-adam' is no forward-pass optimizer"):
        check_params(params)


# -- the grid's rows beyond the paper ---------------------------------------------------------------------------
def _with_rows(rows):
    from zeroflow_core.pipeline.params import load_params

    params = load_params("params.yaml")
    params["grid"]["beyond_paper"] = rows
    return params


def test_a_head_row_of_the_grid_is_its_optimizer_with_the_head_by_backprop_in_a_folder_of_its_own():
    from zeroflow_core.pipeline.cells import resolve_run, train_cells
    from zeroflow_core.pipeline.params import check_params

    params = _with_rows(["lozo", "zo-sgd+head"])
    check_params(params)
    resolved = resolve_run(params, "ease", "zo-sgd+head", "hues", 0)
    plain = resolve_run(params, "ease", "zo-sgd", "hues", 0).config
    assert resolved.config == {**plain, "head_optimizer": "backprop"}
    assert resolved.set_by["head_optimizer"] == "grid row zo-sgd+head"
    cells = {cell.name: cell for cell in train_cells(params, "ease", "hues")}
    assert cells["ease-zo-sgd+head-hues-0"].out.name == "ease-zo-sgd+head-hues-0"
    assert cells["ease-lozo-hues-1"].config["optimizer"] == "lozo"
    assert list(cells).index("ease-zo-sgd+head-hues-0") > list(cells).index("ease-fzoo-hues-0")  # after the paper's


@pytest.mark.parametrize("rows,message", [(["fo-sgd+head"], "'fo-sgd' trains by backprop"),
                                          (["zo-sdg+head"], "unknown optimizer 'zo-sdg'"),
                                          (["fzoo"], "lists 'fzoo' twice")])
def test_a_row_beyond_the_paper_that_cannot_run_is_refused(rows, message):
    from zeroflow_core.pipeline.params import check_params

    with pytest.raises(ConfigError, match=message):
        check_params(_with_rows(rows))


def test_a_head_row_is_shown_beside_its_optimizer_and_read_from_its_own_folder(tmp_path):
    import json

    from zeroflow_core.book import report
    from zeroflow_core.pipeline.cells import run_folder

    assert report.optimizer_label("zo-adam+head") == "ZO-Adam + BP head"
    assert report.paper_row("zo-sgd+head") == ("SGD", "ZO, head by backprop (beyond the paper)")
    assert report.optimizer_colour("zo-sgd+head") == "#ffbf86"  # ZO-SGD's #ff7f0e, halfway to white
    for row, ran in (("zo-sgd+head", "zo-sgd"), ("none", "none")):
        folder = run_folder("ease", row, "hues", 0, tmp_path)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({
            "optimizer": ran, "method": "ease", "avg_acc": 50.0, "last_acc": 40.0, "forgetting": 5.0,
            "acc_seen": [60.0, 40.0]}))
    runs = report.load_runs(tmp_path, ["ease"], ["zo-sgd+head"], ["hues"], [0])
    assert runs.optimizer.tolist() == ["zo-sgd+head", "none"]
    (run_folder("ease", "zo-sgd+head", "hues", 0, tmp_path) / "metrics.json").write_text(json.dumps({
        "optimizer": "zo-adam", "avg_acc": 1.0, "last_acc": 1.0, "forgetting": 1.0, "acc_seen": [1.0]}))
    with pytest.raises(ValueError, match="holds optimizer='zo-adam'"):
        report.load_runs(tmp_path, ["ease"], ["zo-sgd+head"], ["hues"], [0])


def test_the_claims_of_the_rows_beyond_the_paper_read_each_against_what_its_paper_improves_on():
    import pandas as pd

    from zeroflow_core.book import claims
    from zeroflow_core.book.trained import DID_NOT_TRAIN

    def rows(optimizer, avg, drops):
        return [{"method": "ease", "optimizer": optimizer, "dataset": "hues", "seed": seed, "avg_acc": avg + seed,
                 "last_acc": avg, "forgetting": 5.0, "loss_drop": drop} for seed, drop in enumerate(drops)]

    runs = pd.DataFrame(rows("zo-sgd", 50.0, [0.3, 0.31]) + rows("zo-sgd+head", 60.0, [0.5, 0.52])
                        + rows("lozo", 51.0, [0.2, 0.21]) + rows("hizoo", 40.0, [0.0, 0.001])
                        + rows("none", 30.0, [None, None]))
    found = {claim.claim: claim for claim in claims.beyond_paper_claims(runs, "ease")}
    assert set(found) == {"ZO-SGD + BP head beats ZO-SGD (EASE)", "LOZO beats ZO-SGD (EASE)",
                          "HiZOO beats ZO-SGD (EASE)"}
    head = found["ZO-SGD + BP head beats ZO-SGD (EASE)"]
    assert head.verdict == claims.CONFIRMED and head.paper == "ZO-FC, arXiv 2510.21019"
    assert found["LOZO beats ZO-SGD (EASE)"].verdict == claims.WITHIN  # 1 point apart, spreads 0.71 each
    assert found["LOZO beats ZO-SGD (EASE)"].paper == "LOZO, arXiv 2410.07698"
    assert found["HiZOO beats ZO-SGD (EASE)"].verdict == DID_NOT_TRAIN
