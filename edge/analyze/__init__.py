"""`tlf-edge analyze`: recorded clips through the cart's own per-frame chain, at any scale.

inputs.py  which clips the inputs hold, and the content hash that names each
clip.py    one clip through edge.runtime.pipeline.Pipeline (ROI, spacing, segmenter, thickness,
           temporal filter, freeze), returned as rows, a summary and PNG bytes
plots.py   thickness over time with its band and flagged frames; the B-mode thumbnail
report.py  the clip folders, the run table (CSV, Parquet) and the HTML index
run.py     what is done already, and the local engine (one process or N)
ray_engine.py  the same work on Ray actors (the [scale] extra)
cli.py     the command line
"""
