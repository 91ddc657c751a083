"""The published numbers in reference/: each with the backbone, the split and the table it comes from, and whether
it was checked against its source; Table 4's printed numbers (the ICML 2025 version); and the conditions the
book's sentences state about them."""
from pathlib import Path

import pandas as pd
import pytest

REFERENCE = Path(__file__).parents[1] / "reference"
CONDITIONS = {"table1_accuracy.csv": "split", "table2_efficiency.csv": "split", "table3_historical.csv": "split",
              "table4_sparsity.csv": "split", "table5_enhancements.csv": "split", "figure_read_off.csv": "split",
              "simplecil_aper.csv": "splits"}


@pytest.mark.parametrize("name,split", CONDITIONS.items())
def test_every_published_number_carries_its_backbone_split_source_and_check(name, split):
    table = pd.read_csv(REFERENCE / name)
    for column in ("backbone", split, "source", "verified"):
        assert column in table and table[column].notna().all() and (table[column].str.len() > 0).all(), (name, column)
    assert table.verified.str.match(r"(yes|no): ").all(), name  # and says how, or why not
    assert all("ViT-B/16" in backbone for backbone in table.backbone), name


def test_every_csv_of_numbers_is_listed_with_its_conditions():
    shipped = {path.name for path in REFERENCE.glob("*.csv")} - {"sources.csv"}
    assert shipped == set(CONDITIONS)


def test_table_4_holds_the_icml_versions_printed_numbers():
    """arXiv 2501.01045v4, Table 4: EASE + ZO-SGD on ImageNet-A, sparsity ratio 0 % to 90 %."""
    table = pd.read_csv(REFERENCE / "table4_sparsity.csv").set_index("ratio")
    assert table.index.tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert table.avg.tolist() == [57.87, 59.17, 59.46, 59.29, 59.39, 59.45, 59.26, 59.39, 59.38, 59.47]
    assert table["last"].tolist() == [48.32, 48.58, 49.05, 48.72, 48.91, 49.24, 49.11, 49.05, 49.11, 49.24]
    assert table.fgt.tolist() == [11.08, 12.65, 12.17, 12.76, 12.53, 12.37, 12.36, 12.54, 12.46, 12.33]
    assert all("2501.01045v4, Table 4" in source for source in table.source)
    # its 0 % column is plain ZO-SGD: Table 1's EASE row on ImageNet-A, which the seed text prints
    table_1 = pd.read_csv(REFERENCE / "table1_accuracy.csv", dtype={"optimizer": str})
    zo = table_1[(table_1.method == "EASE") & (table_1.optimizer == "SGD") & (table_1.strategy == "ZO")
                 & (table_1.dataset == "imagenet_a")].iloc[0]
    assert (zo.avg, zo["last"], zo.fgt) == tuple(table.loc[0.0, ["avg", "last", "fgt"]])


def test_table_5_holds_the_icml_versions_combined_enhancements_and_its_rows_agree_with_tables_1_3_4():
    """arXiv 2501.01045v4, Table 5 (EASE on ImageNet-A, avg / last): its baselines are Table 1's EASE SGD rows, its
    history row Table 3's best proportion (0.2) and its sparsity row Table 4's best ratio (0.9)."""
    table = pd.read_csv(REFERENCE / "table5_enhancements.csv").set_index("configuration")
    assert table.index.tolist() == ["fo-sgd", "zo-sgd", "hybrid", "history", "sparsity", "all"]
    assert table.avg.tolist() == [61.24, 57.87, 61.40, 58.90, 59.47, 62.07]
    assert table["last"].tolist() == [51.02, 48.32, 51.34, 49.04, 49.24, 51.94]
    assert all("2501.01045v4, Table 5" in source for source in table.source)
    table_1 = pd.read_csv(REFERENCE / "table1_accuracy.csv", dtype={"optimizer": str})
    for configuration, strategy in (("fo-sgd", "FO"), ("zo-sgd", "ZO")):
        row = table_1[(table_1.method == "EASE") & (table_1.optimizer == "SGD") & (table_1.strategy == strategy)
                      & (table_1.dataset == "imagenet_a")].iloc[0]
        assert (row.avg, row["last"]) == tuple(table.loc[configuration, ["avg", "last"]])
    history = pd.read_csv(REFERENCE / "table3_historical.csv").set_index("proportion")
    sparsity = pd.read_csv(REFERENCE / "table4_sparsity.csv").set_index("ratio")
    assert tuple(history.loc[0.2, ["avg", "last"]]) == tuple(table.loc["history", ["avg", "last"]])
    assert tuple(sparsity.loc[0.9, ["avg", "last"]]) == tuple(table.loc["sparsity", ["avg", "last"]])


def test_the_published_simplecil_numbers_are_on_the_in21k_backbone_as_the_table_1_sentence_says():
    """table_1.paper_no_training_statements says the published SimpleCIL is on ViT-B/16-IN21K and its release's
    split, not the backbone INFTY's code gives the paper's rows: that holds for every row it reads."""
    table = pd.read_csv(REFERENCE / "simplecil_aper.csv")
    assert table.backbone.str.startswith("ViT-B/16-IN21K").all()
    assert table.verified.str.startswith("yes").all()  # read in RevisitingCIL's seed-1993 logs
    assert table.set_index("dataset").loc["cub", ["avg", "last"]].tolist() == [92.24, 86.77]
