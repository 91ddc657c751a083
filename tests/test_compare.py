"""`zeroflow compare`: every verdict and number of one build's book against another's."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from zeroflow_core import cli
from zeroflow_core.book.compare import compare_results, kernels_section, record_kernels

CLAIMS = ("claim,the paper,verdict here,numbers,page\n"
          "ZO forgets less than FO (EASE),section 5,**confirmed**,forgetting ZO-SGD 4.17 ± 0.20 against FO-SGD 9.00 ± "
          "1.00,[table_1](table_1.ipynb)\n"
          "ZO needs about 5× less memory than FO,Table 2,**refuted**,FO-SGD 1200 MB against ZO-SGD 600 MB,"
          "[table_2](table_2.ipynb)\n")
TABLE = ("source,method,optimizer,n_seeds,avg_acc_mean,avg_acc_std,seconds_mean\n"
         "ours,simplecil,none,2,26.66,1.10,3.0\n"
         "ours,ease,zo-sgd,2,30.73,0.74,12.5\n")


def _build(root: Path, claims: str = CLAIMS, table: str = TABLE, statement: str = "EASE: **2 of 2** trained.") -> Path:
    (root / "results" / "claims").mkdir(parents=True)
    (root / "results" / "table_1").mkdir(parents=True)
    (root / "results" / "claims" / "claims.csv").write_text(claims)
    (root / "results" / "table_1" / "table_1.csv").write_text(table)
    (root / "results" / "table_1" / "statements.md").write_text(statement + "\n")
    (root / "results" / "table_1" / "table_1.ipynb").write_text("{}")  # not compared: its tables are the CSVs
    (root / "params.yaml").write_text("grid: {seeds: [0, 1]}\ntrain: {threads: 2}\n")
    return root


def test_an_identical_build_is_the_same_book(tmp_path):
    comparison = compare_results(_build(tmp_path / "a") / "results", _build(tmp_path / "b") / "results")
    assert comparison.same and comparison.differences == [] and comparison.files == 3
    assert comparison.numbers == 23  # 13 in the claims (page names too), 8 in the table, 2 in the statement


def test_every_moved_number_and_changed_verdict_is_listed(tmp_path):
    this = _build(tmp_path / "a")
    other = _build(tmp_path / "b", claims=CLAIMS.replace("**confirmed**", "**within the spread**").replace(
        "1200 MB", "1300 MB"), table=TABLE.replace("26.66,1.10,3.0", "28.77,1.20,4.5").replace("30.73", "30.80"),
                   statement="EASE: **1 of 2** trained.")
    comparison = compare_results(this / "results", other / "results", tolerance=0.5)
    texts = comparison.of("text")
    assert [(d.file, d.this, d.other) for d in texts] == [
        ("claims/claims.csv", "**confirmed**", "**within the spread**")]
    numbers = {(d.where, d.this, d.other): d for d in comparison.of("number")}
    assert set(numbers) == {("ours simplecil none · avg_acc_mean", "26.66", "28.77"),
                            ("ours simplecil none · avg_acc_std", "1.10", "1.20"),
                            ("ours ease zo-sgd · avg_acc_mean", "30.73", "30.80"),
                            ("line 1", "2", "1")}
    simplecil = numbers[("ours simplecil none · avg_acc_mean", "26.66", "28.77")]
    assert simplecil.delta == pytest.approx(2.11) and simplecil.beyond_spread is False  # within 1.10 + 1.20
    assert numbers[("ours ease zo-sgd · avg_acc_mean", "30.73", "30.80")].beyond_spread is False
    # time and memory are the machine's: counted apart, never a difference of the book
    assert {(d.this, d.other) for d in comparison.of("measured")} == {("3.0", "4.5"), ("1200", "1300")}
    assert [d.this for d in comparison.numbers_over()] == ["26.66", "2"]
    assert comparison.largest().this == "26.66" and not comparison.same


def test_the_command_names_the_verdicts_and_the_largest_difference(tmp_path, capsys):
    this, other = _build(tmp_path / "a"), _build(tmp_path / "b", table=TABLE.replace("30.73", "30.93"))
    (other / "params.yaml").write_text("grid: {seeds: [0, 1]}\ntrain: {threads: 1}\n")
    assert cli.main(["compare", str(other), "--this", str(this), "--tolerance", "0.5",
                     "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "params.yaml: 1 parameters differ" in out and "train.threads 2 here, 1 there" in out
    assert "Verdicts, statuses and statements: identical." in out
    assert "the largest by 0.2 (table_1/table_1.csv [ours ease zo-sgd · avg_acc_mean]: 30.73 here, 30.93 there)" in out
    summary = json.loads((tmp_path / "c.json").read_text())
    assert summary["numbers_differing"] == 1 and summary["texts_differing"] == 0
    assert cli.main(["compare", str(other), "--this", str(this)]) == 1  # tolerance 0: any moved number fails
    capsys.readouterr()
    assert cli.main(["compare", str(tmp_path / "nowhere"), "--this", str(this)]) == 2
    assert "nowhere: neither a folder nor a git revision of this repository" in capsys.readouterr().err


def test_a_folder_without_results_is_refused_by_name(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["compare", str(tmp_path / "empty"), "--this", str(_build(tmp_path / "a"))]) == 2
    assert "no results/ with a page's tables in it" in capsys.readouterr().err


def test_a_table_of_another_shape_is_one_difference(tmp_path):
    this = _build(tmp_path / "a")
    other = _build(tmp_path / "b", table=TABLE + "ours,ease,fo-sgd,2,40.00,1.00,2.0\n")
    shutil.rmtree(other / "results" / "claims")
    comparison = compare_results(this / "results", other / "results")
    assert {(d.file, d.where) for d in comparison.of("file")} == {("claims/claims.csv", "the whole file"),
                                                                  ("table_1/table_1.csv", "its rows")}


def test_the_kernels_record_makes_the_reproducibility_pages_table(tmp_path):
    this, other = _build(tmp_path / "a"), _build(tmp_path / "b", table=TABLE.replace("30.73", "30.75"))
    import subprocess

    subprocess.run("git init -q && git add -A && git -c user.name=t -c user.email=t@localhost commit -qm built",
                   shell=True, cwd=this, check=True)
    built = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=this, capture_output=True, text=True).stdout.strip()
    # as `zeroflow compare --json` writes it: the builds' folders beside the summary
    summary = {"this": str(this), "other": str(other), **compare_results(this / "results", other / "results").summary()}
    (tmp_path / "avx2.json").write_text(json.dumps(summary))
    record = record_kernels("AVX512", {"avx2": tmp_path / "avx2.json"}, tmp_path / "kernels.json")
    assert str(tmp_path) not in (tmp_path / "kernels.json").read_text()  # no scratch path in a committed record
    assert record["commit"] == built  # the reference build's clone's commit, not the recording checkout's
    section = kernels_section(tmp_path / "kernels.json")
    assert "| AVX512 → AVX2 | 1 of 23 | 0.02 (table_1/table_1.csv, ours ease zo-sgd · avg_acc_mean) | 0 | none |" \
        in section
    assert "Not measured" in kernels_section(tmp_path / "absent.json")


def test_a_git_revision_is_compared_through_its_dvc_remote(tmp_path, monkeypatch, capsys):
    """OTHER as a revision: its results/ come from the DVC remote it was pushed to (`dvc get`), beside `dvc params
    diff` and `dvc metrics diff`; here a repository whose one stage writes a results/ page."""
    import subprocess
    import sys

    from zeroflow_core.book.compare import compare

    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    page = repo / "page.csv"
    page.write_text(TABLE)
    (repo / "dvc.yaml").write_text("stages:\n  table_1:\n    cmd: mkdir -p results/table_1 && cp page.csv "
                                   "results/table_1/table_1.csv\n    deps: [page.csv]\n    outs: [results/table_1]\n")

    def run(*argv):
        subprocess.run(list(argv), check=True, capture_output=True)

    dvc = (sys.executable, "-m", "dvc")
    run("git", "init", "-q")
    run(*dvc, "init", "-q")
    run(*dvc, "repro", "-q")
    run(*dvc, "remote", "add", "--default", "scratch", str(tmp_path / "remote"))
    run(*dvc, "push", "-q")
    run("git", "add", "-A")
    run("git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "published")
    this = _build(tmp_path / "this", table=TABLE.replace("30.73", "31.73"))
    assert not compare("HEAD", str(this), tolerance=0.5, log=print)
    out = capsys.readouterr().out
    assert "$ dvc params diff HEAD" in out
    assert "the largest by 1 (table_1/table_1.csv [ours ease zo-sgd · avg_acc_mean]: 31.73 here, 30.73 there)" in out
    # the claims and statements this build has and the revision lacks are differences of their own
    assert "claims/claims.csv [the whole file]: 'present' here, 'absent' there" in out
