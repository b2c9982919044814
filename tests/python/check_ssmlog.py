#!/usr/bin/env python3
"""tools/ssmlog.py against `ssmhost report --format json` (used by tests/test_ssmlog.cpp).

    check_ssmlog.py TOOLS_DIR RUNS_DIR REPORT_JSON
"""
import json
import math
import subprocess
import sys
import warnings

sys.path.insert(0, sys.argv[1])
import ssmlog  # noqa: E402

runs_dir, report = sys.argv[2], json.load(open(sys.argv[3]))

# One run: the DataFrames and dicts.
run = ssmlog.load_run(f"{runs_dir}/zoh.h5")
assert run.finished and run.status == "completed", run
assert list(run.train.index[:3]) == [1, 2, 3], run.train.index
assert len(run.train) == 20 and len(run.eval) == 2
for col in ("loss", "metric", "lr", "grad_norm", "step_ms", "tokens_per_s", "peak_rss_mb"):
    assert col in run.train, col
assert run.config["disc"] == "zoh" and run.metric_name == "accuracy"
assert run.summary["best_metric"] == run.eval["metric"].max()

# Errors name the file.
for bad, why in ((f"{runs_dir}/junk.h5", "not an HDF5 file"), (f"{runs_dir}/bench.h5", "bench file"),
                 (f"{runs_dir}/none.h5", "no such file")):
    try:
        ssmlog.load_run(bad)
        raise SystemExit(f"{bad}: no error")
    except ValueError as e:
        assert why in str(e) and bad in str(e), e

# The table: the same rows and numbers as report's JSON; junk.h5 is a warning.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    table = ssmlog.load_table([runs_dir])
assert any("junk.h5" in str(w.message) for w in caught), [str(w.message) for w in caught]
assert len(table) == len(report) == 4, (len(table), len(report))
by_run = {r["run"]: r for r in report}
for _, row in table.iterrows():
    want = by_run[row["run"]]
    for key in ("layer", "disc", "seq_len", "params", "steps", "best", "final", "step_ms", "tokens_per_s", "peak_mb",
                "status", "infer_ms"):
        got, exp = row.get(key), want.get(key)
        if exp is None:
            assert got is None or (isinstance(got, float) and math.isnan(got)) or str(got) in ("<NA>", "nan"), (key, got)
            continue
        if isinstance(exp, (int, float)):
            assert math.isclose(float(got), exp, rel_tol=1e-6), (row["run"], key, got, exp)
        else:
            assert str(got) == exp, (row["run"], key, got, exp)

differing = ssmlog.load_table([f"{runs_dir}/zoh.h5", f"{runs_dir}/bilinear.h5"], differing=True)
assert "seed" not in differing.columns and "d_model" not in differing.columns, differing.columns
assert list(differing["disc"]) == ["zoh", "bilinear"]

# The bench file as its own DataFrame.
bench = ssmlog.load_bench(f"{runs_dir}/bench.h5")
assert list(bench["seq_len"]) == [8, 16] and (bench["train_step_ms"] > 0).all() and (bench["status"] == "ok").all()
assert len(bench["train_step_ms_all"][0]) == 1

# The command-line form.
out = subprocess.run([sys.executable, f"{sys.argv[1]}/ssmlog.py", f"{runs_dir}/zoh.h5", f"{runs_dir}/bilinear.h5",
                      "--csv", "--differing"], capture_output=True, text=True, check=True).stdout
lines = out.strip().splitlines()
assert len(lines) == 3 and lines[0].startswith("run,layer,disc"), out
print("ssmlog: ok")
