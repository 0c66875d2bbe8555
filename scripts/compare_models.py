#!/usr/bin/env python3
"""Regenerates the committed detectors and compares them numerically.

    ~/.cache/percept/venv/bin/python scripts/compare_models.py [--models DIR] [--regenerated DIR]

Runs scripts/fetch_models.sh into a temporary folder (needs the npm registry;
creates the converter venv when missing, which downloads tensorflow-cpu),
then feeds both the committed and the regenerated models a fixed
pseudo-random input and a fixed smooth input, and compares every output.
tf2onnx's output is not byte-identical between runs, so the check is
numeric: exit 0 when the max abs difference is <= 1e-4 everywhere, 1
otherwise. --regenerated DIR compares with an existing folder instead of
regenerating. Needs onnxruntime and numpy (percept's venv).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {"nanodet-m-416.onnx": 416, "centernet-512.onnx": 512}
TOL = 1e-4


def inputs(size):
    rng = np.random.default_rng(20240611)
    noise = rng.random((1, 3, size, size), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    smooth = np.stack([xx, yy, 0.5 + 0.5 * np.sin(6.0 * (xx + yy))])[None].astype(np.float32)
    return {"noise": noise, "smooth": smooth}


def run(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, {"images": x})))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.path.join(ROOT, "models"))
    ap.add_argument("--regenerated")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="percept-compare.") as tmp:
        regen = a.regenerated
        if not regen:
            regen = os.path.join(tmp, "models")
            env = dict(os.environ, PERCEPT_TFJS_REFERENCE=os.environ.get("PERCEPT_TFJS_REFERENCE", "0"))
            r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "fetch_models.sh"), regen], env=env)
            if r.returncode != 0:
                print("compare_models: regeneration failed", file=sys.stderr)
                return 2
        worst = 0.0
        for name, size in MODELS.items():
            for label, x in inputs(size).items():
                a_out = run(os.path.join(a.models, name), x)
                b_out = run(os.path.join(regen, name), x)
                if a_out.keys() != b_out.keys():
                    print(f"{name}: outputs differ: {sorted(a_out)} vs {sorted(b_out)}")
                    return 1
                for k in a_out:
                    if a_out[k].shape != b_out[k].shape:
                        print(f"{name}:{k}: shapes differ {a_out[k].shape} vs {b_out[k].shape}")
                        return 1
                    d = float(np.abs(a_out[k] - b_out[k]).max())
                    worst = max(worst, d)
                    print(f"{name} {label:6s} {k:8s} max abs diff {d:.3g}")
        ok = worst <= TOL
        print(f"compare_models: max abs diff {worst:.3g} -> {'equal' if ok else 'DIFFERENT'} (tolerance {TOL})")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
