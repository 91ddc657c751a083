"""Table 1's text: the paper's own rows against its no-training baseline (SimpleCIL), read from reference/."""
from __future__ import annotations


import pandas as pd

from zeroflow_core.book.report import dataset_label, method_label, optimizer_label


def paper_no_training_statements(tidy: pd.DataFrame, baseline: str) -> list[str]:
    """How the paper's rows stand against the published no-training numbers (Table 1's paper block). Those numbers
    (reference/simplecil_aper.csv) are on ViT-B/16-IN21K and their release's splits, while INFTY's code, which made
    the paper's rows, loads the IN-21K model fine-tuned on IN-1K: the sentence says so."""
    paper = tidy[tidy.source == "paper"]
    anchors = paper[paper.method == baseline].set_index("dataset")
    lines = []
    for dataset, anchor in anchors.iterrows():
        parts = []
        for method in [m for m in paper.method.unique() if m != baseline]:
            rows = paper[(paper.method == method) & (paper.dataset == dataset)]
            if rows.empty:
                continue
            above = rows[rows.avg_acc_mean >= anchor.avg_acc_mean]
            names = f" (all but {', '.join(optimizer_label(o) for o in above.optimizer)})" if 0 < len(above) < len(rows) else ""
            parts.append(f"{method_label(method)} {len(rows) - len(above)} of {len(rows)}{names}")
        if parts:
            lines.append(f"In the paper on {dataset_label(dataset)}, the rows whose average accuracy is below the "
                         f"published {method_label(baseline)} ({anchor.avg_acc_mean:.2f}, no training, on "
                         "ViT-B/16-IN21K and its release's split, not the backbone of INFTY's code that made the "
                         "paper's rows, IN-21K fine-tuned on IN-1K): " + "; ".join(parts) + ".")
    return lines
