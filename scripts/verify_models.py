#!/usr/bin/env python3
"""Checks converted models with onnxruntime (percept's venv: onnxruntime,
onnx, numpy) on frame 0 of vtest.avi as prepared by convert_human_models.py.

    verify_models.py MODELS_DIR INPUTS_DIR [--ref REF_DIR] [--layout-check] [--bench]

- runs models/nanodet-m-416.onnx and models/centernet-512.onnx on the frame;
- with --ref, compares every output with TensorFlow.js's own result
  (tfjs_reference.cjs) and fails above a tolerance;
- decodes both (GFL for NanoDet, as the Rust decoder is to do) and prints the
  people found at score >= 0.5, in frame pixels;
- with --layout-check, decodes NanoDet's box distributions every possible way
  (side-major / bin-major, all 24 side orders) and prints how well each agrees
  across neighbouring cells and with CenterNet's boxes;
- with --bench, prints the median session.run time at 1 and 2 threads.
Exits non-zero when a check fails.
"""
import argparse
import itertools
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

STRIDES = (8, 16, 32)
NANODET_IN = 416
CENTERNET_IN = 512
REG_BINS = 11  # reg_max 10 -> bins 0..10
PERSON = 0
# TF.js and onnxruntime accumulate in different orders; on vtest frame 0 the
# outputs agreed to 1e-6 (cls), 1.2e-5 (reg logits), 3e-5 (CenterNet pixels).
REF_TOL = {"cls": 1e-4, "reg": 1e-3, "output0": 1e-2}


def log(msg):
    print(f"[verify] {msg}", file=sys.stderr, flush=True)


def session(path, threads=1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def load_f32(path, shape):
    return np.fromfile(path, dtype="<f4").reshape(shape)


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def gfl_decode(outs, layout="side-major", sides=(0, 1, 2, 3), score_thr=0.3):
    """Decodes NanoDet's raw heads. Returns [K, 4] boxes x1,y1,x2,y2 in
    416-input pixels, [K] scores, [K] classes, [K] (stride, cell index).

    reg [1, N, 44]: side-major means index side*11 + bin; sides gives which of
    the 4 groups is (left, top, right, bottom). Distance of a side =
    sum_b softmax(logits)_b * b, in units of the stride. Cell i of a W x W
    grid has its centre at ((i % W) + 0.5) * stride, ((i // W) + 0.5) * stride.
    """
    boxes, scores, classes, where = [], [], [], []
    for s in STRIDES:
        cls = outs[f"cls_{s}"][0]
        reg = outs[f"reg_{s}"][0]
        w = NANODET_IN // s
        n = cls.shape[0]
        if layout == "side-major":
            r = reg.reshape(n, 4, REG_BINS)
        else:
            r = reg.reshape(n, REG_BINS, 4).transpose(0, 2, 1)
        dist = (softmax(r, 2) * np.arange(REG_BINS, dtype=np.float32)).sum(2) * s  # [n, 4]
        dist = dist[:, list(sides)]  # -> left, top, right, bottom
        idx = np.arange(n)
        cx = (idx % w + 0.5) * s
        cy = (idx // w + 0.5) * s
        c = cls.argmax(1)
        sc = cls[idx, c]
        keep = sc >= score_thr
        b = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1)
        boxes.append(b[keep]); scores.append(sc[keep]); classes.append(c[keep])
        where.append(np.stack([np.full(keep.sum(), s), idx[keep]], 1))
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes), np.concatenate(where)


def iou(a, b):
    """a [N,4], b [M,4] -> [N,M]"""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(2)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(1)
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def nms(boxes, scores, thr=0.5):
    order = np.argsort(-scores)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        ov = iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ov < thr]
    return np.array(keep, dtype=int)


def nanodet_people(outs, sx, sy, thr=0.5):
    b, s, c, _ = gfl_decode(outs, score_thr=thr)
    m = c == PERSON
    b, s = b[m], s[m]
    k = nms(b, s)
    b = b[k] * np.array([sx, sy, sx, sy], dtype=np.float32)
    return b, s[k]


def centernet_people(det, sx, sy, thr=0.5):
    d = det[0]
    m = (d[:, 4] >= thr) & (d[:, 5] == PERSON)
    d = d[m]
    k = nms(d[:, :4], d[:, 4])  # human also runs NMS over the top-100
    return d[k, :4] * np.array([sx, sy, sx, sy], dtype=np.float32), d[k, 4]


def fmt_boxes(b, s):
    return "; ".join(f"[{x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f}] {sc:.2f}" for (x1, y1, x2, y2), sc in zip(b, s))


def check_contract(path, inputs, outputs):
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    dims = lambda vi: [d.dim_value for d in vi.type.tensor_type.shape.dim]
    got_in = [(i.name, dims(i)) for i in m.graph.input]
    got_out = [(o.name, dims(o)) for o in m.graph.output]
    if got_in != inputs or got_out != outputs:
        raise SystemExit(f"{path}: contract mismatch: inputs {got_in} outputs {got_out}")
    meta = {p.key: p.value for p in m.metadata_props}
    for k in ("names", "imgsz", "task", "source", "sha256", "license", "converter"):
        if k not in meta:
            raise SystemExit(f"{path}: metadata '{k}' missing")


def layout_check(outs, cn_people_416):
    """Which reading of reg gives self-consistent boxes that match CenterNet?"""
    rows = []
    for layout in ("side-major", "bin-major"):
        for sides in itertools.permutations(range(4)):
            b, s, c, _ = gfl_decode(outs, layout, sides, score_thr=0.3)
            m = c == PERSON
            b, s = b[m], s[m]
            if len(b) == 0:
                continue
            keep = nms(b, s)
            # consistency: mean IoU of every candidate with the kept box it overlaps most
            cons = iou(b, b[keep]).max(1).mean()
            match = iou(b[keep], cn_people_416).max(1).mean() if len(cn_people_416) else 0.0
            hw = np.median((b[keep, 3] - b[keep, 1]) / np.maximum(b[keep, 2] - b[keep, 0], 1e-3))
            rows.append((cons + match, layout, sides, cons, match, hw))
    rows.sort(key=lambda r: -r[0])
    names = "ltrb"
    print("NanoDet reg layout check (person candidates, score >= 0.3):")
    print("  layout      groups->(l,t,r,b)  cell-consistency  IoU-vs-CenterNet  median h/w")
    for _, layout, sides, cons, match, hw in rows[:6] + [r for r in rows if r[1] == "bin-major" and r[2] == (0, 1, 2, 3)]:
        print(f"  {layout:10s}  {''.join(str(x) for x in sides):17s}  {cons:16.3f}  {match:16.3f}  {hw:10.2f}")
    best = rows[0]
    return best[1], best[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models")
    ap.add_argument("inputs")
    ap.add_argument("--ref")
    ap.add_argument("--layout-check", action="store_true")
    ap.add_argument("--bench", action="store_true")
    a = ap.parse_args()

    nano_path = os.path.join(a.models, "nanodet-m-416.onnx")
    cn_path = os.path.join(a.models, "centernet-512.onnx")
    nano_out_names = ["cls_8", "reg_8", "cls_16", "reg_16", "cls_32", "reg_32"]
    check_contract(nano_path, [("images", [1, 3, 416, 416])],
                   [(n, [1, (NANODET_IN // int(n.split("_")[1])) ** 2, 80 if n.startswith("cls") else 44])
                    for n in nano_out_names])
    check_contract(cn_path, [("images", [1, 3, 512, 512])], [("output0", [1, 100, 6])])
    log("contracts and onnx.checker: ok")

    with open(os.path.join(a.inputs, "frame.json")) as f:
        frame = json.load(f)
    W, H = frame["width"], frame["height"]
    x_nano = load_f32(os.path.join(a.inputs, "nanodet_nchw01.f32"), (1, 3, 416, 416))
    x_cn = load_f32(os.path.join(a.inputs, "centernet_nchw01.f32"), (1, 3, 512, 512))
    sn, sc = session(nano_path), session(cn_path)
    outs = dict(zip(nano_out_names, sn.run(nano_out_names, {"images": x_nano})))
    det = sc.run(["output0"], {"images": x_cn})[0]
    failures = []

    for s in STRIDES:
        c = outs[f"cls_{s}"]
        if c.min() < 0 or c.max() > 1:
            failures.append(f"cls_{s} outside [0,1]: {c.min()}..{c.max()}")
    log(f"NanoDet cls range {min(outs[k].min() for k in outs if k.startswith('cls')):.4g}.."
        f"{max(outs[k].max() for k in outs if k.startswith('cls')):.4g} (post-sigmoid); "
        f"reg range {min(outs[k].min() for k in outs if k.startswith('reg')):.3g}.."
        f"{max(outs[k].max() for k in outs if k.startswith('reg')):.3g} (logits)")
    cls_ids = det[0, :, 5]
    log(f"CenterNet output0: x in {det[0,:,[0,2]].min():.1f}..{det[0,:,[0,2]].max():.1f}, "
        f"y in {det[0,:,[1,3]].min():.1f}..{det[0,:,[1,3]].max():.1f}, score {det[0,:,4].min():.3f}..{det[0,:,4].max():.3f}, "
        f"class ids {int(cls_ids.min())}..{int(cls_ids.max())} integral={bool(np.all(cls_ids == np.round(cls_ids)))}")

    if a.ref:
        for name, model_outs in (("nanodet", outs), ("centernet", {"output0": det})):
            with open(os.path.join(a.ref, f"{name}.json")) as f:
                meta = json.load(f)
            for i, m in enumerate(meta):
                r = load_f32(os.path.join(a.ref, f"{name}.{i}.f32"), m["shape"])
                if name == "nanodet":
                    _, n, ch = m["shape"]
                    key = f"{'cls' if ch == 80 else 'reg'}_{NANODET_IN // int(round(n ** 0.5))}"
                else:
                    key = "output0"
                o = model_outs[key]
                if key == "output0":
                    # top-100 order may differ between near-equal scores: compare
                    # the confident rows, matched by sort order of (score, class, x1)
                    conf = r[0, :, 4] >= 0.2
                    rr = r[0][conf]; oo = o[0][o[0, :, 4] >= 0.2]
                    if len(rr) != len(oo):
                        failures.append(f"centernet: {len(oo)} rows >= 0.2 in ONNX, {len(rr)} in TF.js")
                        continue
                    rr = rr[np.lexsort((rr[:, 0], rr[:, 5], -np.round(rr[:, 4], 3)))]
                    oo = oo[np.lexsort((oo[:, 0], oo[:, 5], -np.round(oo[:, 4], 3)))]
                    diff = np.abs(rr - oo).max(); tol = REF_TOL["output0"]
                else:
                    diff = np.abs(r - o).max(); tol = REF_TOL[key[:3]]
                print(f"ONNX vs TF.js {name}:{m['name']} -> {key}: max abs diff {diff:.3g}")
                if diff > tol:
                    failures.append(f"{key}: max abs diff {diff:.3g} > {tol}")

    sx, sy = W / NANODET_IN, H / NANODET_IN
    nb, ns = nanodet_people(outs, sx, sy)
    cb, cs = centernet_people(det, W / CENTERNET_IN, H / CENTERNET_IN)
    print(f"frame 0 of {os.path.basename(frame['video'])} ({W}x{H}), people at score >= 0.5 (after NMS 0.5), boxes x1,y1,x2,y2 in frame pixels:")
    print(f"  nanodet-m-416: {len(nb)}: {fmt_boxes(nb, ns)}")
    print(f"  centernet-512: {len(cb)}: {fmt_boxes(cb, cs)}")
    n3 = len(nanodet_people(outs, sx, sy, 0.3)[0])
    c3 = len(centernet_people(det, W / CENTERNET_IN, H / CENTERNET_IN, 0.3)[0])
    print(f"  people at score >= 0.3: nanodet-m-416 {n3}, centernet-512 {c3}")
    d = det[0][det[0, :, 4] >= 0.5]
    print(f"  centernet-512, all classes >= 0.5: " + ", ".join(
        f"{int(k)}:{int((d[:, 5] == k).sum())}" for k in np.unique(d[:, 5])))
    for n, b in (("nanodet", nb), ("centernet", cb)):
        if not 2 <= len(b) <= 8:
            failures.append(f"{n}: {len(b)} people on frame 0, expected 2..8")

    if a.layout_check:
        cn416 = cb / np.array([W / NANODET_IN, H / NANODET_IN] * 2, dtype=np.float32)
        cn_low = det[0][(det[0, :, 4] >= 0.3) & (det[0, :, 5] == PERSON), :4] / CENTERNET_IN * NANODET_IN
        layout, sides = layout_check(outs, cn_low if len(cn_low) else cn416)
        print(f"best: {layout}, groups {sides} = (left, top, right, bottom)")
        if (layout, tuple(sides)) != ("side-major", (0, 1, 2, 3)):
            failures.append(f"reg layout is not side-major l,t,r,b: {layout} {sides}")

    if a.bench:
        for path, name, feed in ((nano_path, "nanodet-m-416", {"images": x_nano}), (cn_path, "centernet-512", {"images": x_cn})):
            for th in (1, 2):
                s = session(path, th)
                for _ in range(3):
                    s.run(None, feed)
                ts = []
                for _ in range(20):
                    t0 = time.perf_counter(); s.run(None, feed); ts.append(time.perf_counter() - t0)
                print(f"bench {name} threads={th}: median {1000 * np.median(ts):.1f} ms (min {1000 * min(ts):.1f}, 20 runs)")

    if failures:
        for f in failures:
            log("FAIL: " + f)
        sys.exit(1)
    log("all checks passed")


if __name__ == "__main__":
    main()
