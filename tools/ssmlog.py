#!/usr/bin/env python3
"""ssmlog: ssmhost run logs and bench files as pandas DataFrames, through h5py.

    import ssmlog                                   # tools/ on sys.path
    run = ssmlog.load_run("runs/a.h5")              # one run log
    run.train, run.eval                             # DataFrames indexed by step
    run.config, run.summary, run.attrs              # dicts
    table = ssmlog.load_table(["runs/"])            # one row per run, as `ssmhost report`
    bench = ssmlog.load_bench("bench.h5")           # one row per measured combination

    python3 tools/ssmlog.py runs/ [--csv] [--differing]   # the table on stdout

Finished, live (SWMR) and crashed logs are all read; a live log's columns are
cut to the rows every column has. Files that cannot be read are skipped with a
warning by load_table()/load_runs() and raise ValueError from load_run().
Schema: docs/runlog.md; the table's columns: docs/analysis.md.
"""
import math
import os
import socket
import sys
import warnings

import h5py
import numpy as np
import pandas as pd

RUNLOG_SCHEMA = 1
BENCH_SCHEMA = 1
BENCH_FORMAT = "ssmhost-bench"

# The columns `ssmhost report` shows, in its order (docs/analysis.md).
TABLE_COLUMNS = ["run", "layer", "inner", "disc", "task", "seq_len", "params", "steps", "metric", "best",
                 "final", "step_ms", "infer_ms", "tokens_per_s", "peak_mb", "wall_s", "status"]
# Options that are never "differing" (where the log went, verbosity, fixed columns).
NOISE_OPTIONS = {"log", "quiet", "resume", "steps_total", "checkpoint_every", "layer", "inner", "disc", "task",
                 "seq_len", "steps", "device", "config", "preset"}


def _text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def _attrs(obj):
    return {k: _text(v) for k, v in obj.attrs.items()}


def _open(path):
    """A finished file opens normally; a live or crashed run log only as a SWMR reader."""
    if not os.path.exists(path):
        raise ValueError(f"'{path}': no such file")
    if not h5py.is_hdf5(path):
        raise ValueError(f"'{path}': not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError:
        try:
            return h5py.File(path, "r", libver="latest", swmr=True)
        except OSError as e:
            raise ValueError(f"'{path}': cannot open the file (damaged or truncated?): {e}") from None


def _median(values):
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def writer_alive(path):
    """Whether the process named in the run log's lock file (<log>.lock: pid=, host= lines) is alive.
    A writer on another host is taken to be alive."""
    try:
        with open(path + ".lock") as f:
            kv = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
        pid = int(kv.get("pid", "0"))
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    if kv.get("host") and kv["host"] != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Run:
    """One run log: attrs, config, plugins, summary (dicts), train and eval (DataFrames indexed by step)."""

    def __init__(self, path):
        self.path = path
        with _open(path) as f:
            self.attrs = _attrs(f)
            fmt = self.attrs.get("format")
            if fmt == BENCH_FORMAT:
                raise ValueError(f"'{path}': a bench file, not a run log (use load_bench)")
            if "schema_version" not in self.attrs:
                raise ValueError(f"'{path}': not an ssmhost run log (no 'schema_version' attribute at the root)")
            version = int(self.attrs["schema_version"])
            if version < 1 or version > RUNLOG_SCHEMA:
                raise ValueError(f"'{path}': run log schema version {version} is not supported "
                                 f"(this ssmlog reads up to {RUNLOG_SCHEMA})")
            for g in ("train", "eval"):
                if g not in f:
                    raise ValueError(f"'{path}': not an ssmhost run log (no /{g})")
            self.config = _attrs(f["config"]) if "config" in f else {}
            self.plugins = {}
            if "config" in f and "plugins" in f["config"]:
                p = f["config/plugins"]
                self.plugins = {k: _text(v) for k, v in p.attrs.items()}
                for k, g in p.items():
                    self.plugins[k] = _attrs(g)
            self.summary = _attrs(f["summary"]) if "summary" in f else {}
            self.metric_name = _text(f["train"].attrs.get("metric_name", ""))
            self.train = self._frame(f["train"])
            self.eval = self._frame(f["eval"])
            self.events = []
            if "events" in f:  # written by newer ssmhost versions; optional
                try:
                    ev = f["events"]
                    self.events = pd.DataFrame({k: [_text(x) for x in ev[k][()]] for k in ev.keys()}).to_dict("records")
                except Exception:  # noqa: BLE001 - a layout this version does not know
                    self.events = []

    @staticmethod
    def _frame(group):
        cols = {}
        for name, ds in group.items():
            if isinstance(ds, h5py.Dataset):
                if hasattr(ds, "refresh"):
                    try:
                        ds.refresh()
                    except Exception:  # noqa: BLE001 - not opened as SWMR
                        pass
                cols[name] = ds[()]
        n = min((len(v) for v in cols.values()), default=0)  # a live writer may be one column ahead
        df = pd.DataFrame({k: v[:n] for k, v in cols.items()})
        if "step" in df:
            df = df.set_index("step")
        return df

    @property
    def finished(self):
        """True once the run closed its log (end_time written)."""
        return "end_time" in self.attrs

    @property
    def status(self):
        """The summary's status (completed, stopped_early, interrupted, failed, ...); for a log without
        end_time 'running' while its writer holds the lock (<log>.lock), else 'crashed'."""
        if not self.finished:
            return "running" if writer_alive(self.path) else "crashed"
        return self.summary.get("status") or "finished"

    def row(self, name=None):
        """This run as one row of the table `ssmhost report` prints (a dict)."""
        c, s = self.config, self.summary
        r = {"run": name or self.path, "path": self.path, "_kind": "run"}
        for k in ("layer", "inner", "disc", "task"):
            r[k] = c.get(k)
        # The schemes that took part, where the log records its plugins (as `report` does).
        records = {k: v for k, v in self.plugins.items() if isinstance(v, dict)}
        if records:
            r["disc"] = "+".join(k for k, v in records.items() if v.get("kind") == "disc") or None
        seq = c.get("seq_len")
        if seq not in (None, ""):
            r["seq_len"] = int(seq)
        elif len(self.train) and "tokens_per_s" in self.train and "batch_size" in c:
            ok = self.train[np.isfinite(self.train["tokens_per_s"]) & np.isfinite(self.train["step_ms"])]
            if len(ok):
                r["seq_len"] = int(round(ok["tokens_per_s"].iloc[0] * ok["step_ms"].iloc[0] / 1000 /
                                         float(c["batch_size"])))
        r["params"] = s.get("n_params")
        r["steps"] = s.get("steps", self.train.index[-1] if len(self.train) else None)
        r["metric"] = self.metric_name
        best, final = s.get("best_metric"), s.get("final_metric")
        if len(self.eval) and (best is None or final is None):
            m = self.eval["metric"].to_numpy(dtype=float)
            m = m[np.isfinite(m)]
            if m.size:
                high = self.metric_name in ("accuracy", "acc")
                best = best if best is not None else float(m.max() if high else m.min())
                final = final if final is not None else float(m[-1])
        r["best"], r["final"] = best, final
        if len(self.train):
            r["step_ms"] = _median(self.train["step_ms"])
            r["tokens_per_s"] = _median(self.train["tokens_per_s"])
        peak = s.get("peak_rss_mb")
        if peak is None and len(self.train) and "peak_rss_mb" in self.train:
            peak = float(np.nanmax(self.train["peak_rss_mb"])) if self.train["peak_rss_mb"].notna().any() else None
        r["peak_mb"] = peak
        wall = s.get("wall_time_s")
        if wall is None and len(self.train):
            wall = float(np.nansum(self.train["step_ms"])) / 1000
        r["wall_s"] = wall
        r["status"] = self.status
        for k, v in c.items():
            r.setdefault(k, v)
        return r

    def __repr__(self):
        return f"<ssmlog.Run {self.path!r}: {len(self.train)} train rows, {len(self.eval)} eval rows, {self.status}>"


def load_run(path):
    """One run log (raises ValueError with the file's name when it cannot be read)."""
    return Run(path)


def _expand_named(paths):
    """(file, name) for paths: a file as it is (named as given), a directory's *.h5 files below it
    (sorted, named by their path below the directory), as `ssmhost report` names them."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in map(str, paths):
        if os.path.isdir(p):
            found = []
            for root, _, files in os.walk(p):
                found += [os.path.normpath(os.path.join(root, f)) for f in files if f.endswith(".h5")]
            if not found:
                warnings.warn(f"'{p}': no run logs (*.h5) in this directory")
            out += [(f, os.path.relpath(f, p)) for f in sorted(found)]
        else:
            out.append((p, p))
    return out


def expand(paths):
    """Files for paths: a file as it is, a directory's *.h5 files below it (sorted)."""
    return [f for f, _ in _expand_named(paths)]


def _is_bench(path):
    try:
        with h5py.File(path, "r") as f:
            return _text(f.attrs.get("format", "")) == BENCH_FORMAT
    except OSError:
        return False


def load_runs(paths):
    """Run objects for every run log under paths; unreadable files are skipped with a warning."""
    runs = []
    for p in expand(paths):
        if _is_bench(p):
            continue
        try:
            runs.append(Run(p))
        except ValueError as e:
            warnings.warn(str(e))
    return runs


def load_bench(path):
    """A bench file (`ssmhost bench --out`): one row per combination, its options and its measurements
    (train_step_ms, infer_ms, tokens_per_s, peak_rss_mb, ...; NaN where it failed), and the raw
    samples as lists in train_step_ms_all / infer_ms_all."""
    with _open(path) as f:
        a = _attrs(f)
        if a.get("format") != BENCH_FORMAT:
            raise ValueError(f"'{path}': not an ssmhost bench file")
        version = int(a.get("schema_version", 0))
        if version < 1 or version > BENCH_SCHEMA:
            raise ValueError(f"'{path}': bench schema version {version} is not supported")
        rows = []
        for name, g in f["results"].items():
            r = {"id": name, "status": _text(g.attrs.get("status", "")), "error": _text(g.attrs.get("error", ""))}
            r.update(_attrs(g["config"]) if "config" in g else {})
            r.update(_attrs(g["summary"]) if "summary" in g else {})
            for col in ("train_step_ms", "infer_ms"):
                if col in g:
                    r[col + "_all"] = list(g[col][()])
            rows.append(r)
    df = pd.DataFrame(rows)
    for k in ("seq_len", "batch_size", "d_model", "d_state", "n_layers", "threads", "channels", "classes"):
        if k in df:
            df[k] = pd.to_numeric(df[k], errors="coerce")
    return df


def _bench_rows(path, name):
    df = load_bench(path)
    stem = name
    out = []
    for _, b in df.iterrows():
        r = {"run": f"{stem}#{b['id']}", "path": path, "_kind": "bench"}
        for k in ("layer", "inner", "disc", "task"):
            r[k] = b.get(k)
        r["seq_len"] = b.get("seq_len")
        r["params"] = b.get("n_params")
        r["steps"] = b.get("steps")
        r["step_ms"] = b.get("train_step_ms")
        r["infer_ms"] = b.get("infer_ms")
        r["tokens_per_s"] = b.get("tokens_per_s")
        r["peak_mb"] = b.get("peak_rss_mb")
        r["wall_s"] = b.get("wall_time_s")
        r["status"] = "bench" if b.get("status") == "ok" else (b.get("status") or "unknown")
        for k in ("batch_size", "d_model", "d_state", "n_layers", "threads", "channels", "classes"):
            if k in b:
                r.setdefault(k, b[k])
        out.append(r)
    return out


def _differs(df, col):
    """As `ssmhost report`: within one kind of row (run logs, bench results) a value that some rows
    lack differs; across kinds only options that every row has can differ."""
    text = df[col].map(lambda v: "\x01missing" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    kinds = df["_kind"].unique()
    if len(kinds) <= 1:
        return text.nunique() > 1
    if (text != "\x01missing").all() and text.nunique() > 1:
        return True
    return any(text[df["_kind"] == k].nunique() > 1 for k in kinds)


def load_table(paths, differing=False):
    """One row per run (and per bench combination) under paths, the columns of `ssmhost report`
    first, then every option; with differing=True only the options whose values differ.
    Unreadable files are skipped with a warning."""
    rows = []
    for p, name in _expand_named(paths):
        try:
            rows += _bench_rows(p, name) if _is_bench(p) else [Run(p).row(name)]
        except ValueError as e:
            warnings.warn(str(e))
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    fixed = [c for c in TABLE_COLUMNS if c in df and df[c].notna().any()]
    options = sorted(c for c in df.columns if c not in TABLE_COLUMNS and c not in ("path", "_kind"))
    if differing:
        options = [c for c in options if c not in NOISE_OPTIONS and _differs(df, c)]
    df = df[fixed + options + ["path"]]
    for c in ("seq_len", "params", "steps"):
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    return df


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="ssmhost run logs as a table (pandas)")
    ap.add_argument("paths", nargs="+", help="run logs, bench files or directories")
    ap.add_argument("--csv", action="store_true", help="CSV instead of a text table")
    ap.add_argument("--differing", action="store_true", help="only the options that differ between the runs")
    args = ap.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_table(args.paths, differing=args.differing)
    for w in caught:
        print(f"ssmlog: {w.message}", file=sys.stderr)
    if df.empty:
        print("ssmlog: no runs", file=sys.stderr)
        return 1
    df = df.drop(columns=["path"])
    if args.csv:
        df.to_csv(sys.stdout, index=False)
    else:
        with pd.option_context("display.max_columns", None, "display.width", 200):
            print(df.to_string(index=False))
    return 1 if caught else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
