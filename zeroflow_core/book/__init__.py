"""The book that reports the results: reading runs and the paper's numbers (report.py), one module per page's
tables and statements, named after the page (table_1.py, table_2.py, ablations.py for Figure 5 and Tables 3–4,
table_5.py, figure_7.py, landscape.py for Figures 3 and 6, official_vs_ours.py, updates.py for "Where training
goes", cost.py, claims.py), the verdict rule (trained.py), the drawing (figures.py, plots.py), the Jupyter Book
build (build.py) and the comparison of two books (compare.py).

The top layer under the command line: it imports the science core and the pipeline."""
