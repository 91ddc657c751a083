"""`zeroflow bench`: report shape and pass counts, never timings (they depend on the machine's load)."""
import contextlib
import io
import json

import pytest

from zeroflow_core import cli
from zeroflow_core.run.bench import BenchmarkError, _spawn, format_table, run_benchmark

REQUIRED = {
    "optimizer": str, "peak_memory_mb": float, "forward_peak_memory_mb": float, "step_seconds": float,
    "forward_seconds": float, "forwards_per_step": float, "backwards_per_step": float,
}
# Small and quick: each worker is a fresh interpreter, so imports dominate; two blocks suffice.
SMALL = ["--model", "vit-tiny", "--batch-size", "2", "--steps", "1", "--warmup", "0", "--threads", "1", "--depth", "2"]


@pytest.fixture(scope="module")
def rows():
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli.main(["bench", "--optimizers", "zo-sgd,fo-sgd", "--q", "1", "--json", *SMALL]) == 0
    return json.loads(buffer.getvalue())


def test_json_rows_have_the_keys_and_sane_values(rows):
    assert [r["optimizer"] for r in rows] == ["zo-sgd", "fo-sgd"]
    for row in rows:
        for key, kind in REQUIRED.items():
            assert isinstance(row[key], kind), (key, row[key])
        assert "q" in row
        assert row["peak_memory_mb"] > 0 and row["forward_peak_memory_mb"] > 0
        assert row["step_seconds"] > 0 and row["forward_seconds"] > 0
        assert row["device"].startswith(("cpu", "cuda"))
    # the forward-only baseline is one measurement shared by every row
    assert rows[0]["forward_peak_memory_mb"] == rows[1]["forward_peak_memory_mb"]


def test_pass_counts_per_step(rows):
    zo, fo = rows
    assert (zo["q"], zo["forwards_per_step"], zo["backwards_per_step"]) == (1, 2, 0)
    assert (fo["q"], fo["forwards_per_step"], fo["backwards_per_step"]) == (None, 1, 1)


def test_q_sets_the_query_budget_for_all_rows_or_per_row():
    (row,) = run_benchmark("vit-tiny", ["zo-sgd"], batch_size=2, steps=1, q=2, threads=1, warmup=0, depth=2)
    assert (row["q"], row["forwards_per_step"], row["backwards_per_step"]) == (2, 4, 0)
    # Table 2's rows: ZO-SGD at its default budget and again at q = 3, one forward baseline for both
    default, three = run_benchmark("vit-tiny", ["zo-sgd", ("zo-sgd", 3)], batch_size=2, steps=1, threads=1,
                                   warmup=0, depth=2, attention="fused")
    assert (default["q"], default["forwards_per_step"], three["q"], three["forwards_per_step"]) == (1, 2, 3, 6)
    assert default["attention"] == "fused" and default["forward_peak_memory_mb"] == three["forward_peak_memory_mb"]
    with pytest.raises(ValueError, match="'attention' must be one of explicit, fused"):
        run_benchmark("vit-tiny", ["zo-sgd"], batch_size=2, steps=1, attention="flash")
    with pytest.raises(ValueError, match="'q' must be an integer >= 1, got 0"):
        run_benchmark("vit-tiny", [("zo-sgd", 0)], batch_size=2, steps=1)


def test_table_shows_ratios_against_forward_and_first_order(rows):
    table = format_table(rows)
    assert "step/fwd" in table and "mem/fwd" in table and "mem/fo-sgd" in table
    assert table.splitlines()[1].split()[0] == "zo-sgd"


def test_unknown_optimizer_is_refused_before_any_worker_starts(capsys, monkeypatch):
    def no_spawn(*args, **kwargs):
        raise AssertionError("a worker was spawned")

    monkeypatch.setattr("zeroflow_core.run.bench._spawn", no_spawn)
    assert cli.main(["bench", "--optimizers", "zo-sgd,zo-magic", *SMALL]) != 0
    err = capsys.readouterr().err
    assert "zo-magic" in err and "unknown optimizer" in err and "Traceback" not in err


def test_worker_failure_is_one_clear_line():
    config = dict(mode="forward", model="vit-nonexistent", batch_size=2, steps=1, threads=1, warmup=0, depth=None)
    with pytest.raises(BenchmarkError) as info:
        _spawn(config, "the forward-only baseline")
    message = str(info.value)
    assert "vit-nonexistent" in message and "forward-only baseline" in message
    assert "Traceback" not in message and "\n" not in message


def test_batched_rows_time_both_modes_side_by_side_with_one_large_forward():
    from zeroflow_core.run.bench import format_batching, run_batching

    rows = run_batching("vit-tiny", ["zo-sgd", "fo-sgd", "forward-grad"], batch_size=2, steps=2, qs=[1, 2],
                        threads=1, warmup=0, depth=1, memory=False)
    # only the optimizers that batch, each at each q; n = the forwards one step replaces
    assert [(r["optimizer"], r["q"], r["forwards_per_step"]) for r in rows] == [
        ("zo-sgd", 1, 2), ("zo-sgd", 2, 4), ("forward-grad", 1, 1), ("forward-grad", 2, 2)]
    for row in rows:
        forwards = row["forwards_per_step"] * row["forward_seconds"]
        assert row["batched_over_forwards"] == pytest.approx(row["batched_seconds"] / forwards)
        assert row["copies_forward_over_forwards"] == pytest.approx(row["copies_forward_seconds"] / forwards)
        assert row["copies_forward_seconds"] > 0 and row["batched_over_sequential"] > 0
    table = format_batching(rows)
    assert table.splitlines()[0].split()[-2:] == ["nB-fwd/(n·fwd)", "batched/seq"]
    assert "nB-fwd: one plain forward of the n copies of the batch" in table
