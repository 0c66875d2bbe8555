#!/usr/bin/env python3
"""The loop users write instead of percept: OpenCV VideoCapture + ONNX Runtime +
numpy letterbox, decode and NMS, one frame at a time, in one thread of Python
(ONNX Runtime with the same intra-op threads as percept's pipeline).

Prints one JSON object: frames, seconds, fps, per-frame latency (read to
result) p50/p99 in ms, the time inside session.run, and the detection count.

Usage: baseline.py MODEL.onnx VIDEO FRAMES THREADS [--layout yolov8|nanodet|end2end]
                   [--pad N] [--conf X] [--iou X] [--classes 0,1,2] [--max N] [--jsonl PATH]

Layouts (the same contracts percept's `layout` reads; see models/README.md):
  yolov8   [1, 4+C, N]: cx, cy, w, h, C class scores; class-aware NMS (default).
  nanodet  cls_8 reg_8 cls_16 reg_16 cls_32 reg_32: [1, n, C] sigmoid scores and
           [1, n, 4*11] GFL logits (side-major, sides l, t, r, b); class-aware NMS.
  end2end  [1, N, 6]: x1, y1, x2, y2, score, class in input pixels; no NMS.
Boxes are mapped back through the letterbox to frame pixels.

--jsonl PATH writes one JSON object per frame, after the timed loop (so it does
not change the timing): {"seq", "pts_ns", "detections": [{"bbox", "class_id",
"score"}], "tracks": [...]}. `tracks` repeats the detections with `id` = index
within the frame, because `percept eval` reads only `tracks`/`objects`; those
ids are not identities, so only the detection metrics of `percept eval` mean
anything for this file (not ID switches or IDF1).
"""

import argparse
import json
import math
import time

import cv2
import numpy as np
import onnxruntime as ort

NANODET_STRIDES = (8, 16, 32)
NANODET_BINS = 11  # reg_max 10


def letterbox(img, size=640, pad=114):
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (size - nh) // 2, (size - nw) // 2
    out = np.full((size, size, 3), pad, np.uint8)
    out[top:top + nh, left:left + nw] = resized
    return out, r, left, top


def nms(boxes, scores, iou=0.45):
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
        union = area(boxes[i]) + area(boxes[order[1:]]) - inter
        order = order[1:][inter / np.maximum(union, 1e-9) <= iou]
    return keep


def class_nms(boxes, scores, cls, iou, max_det):
    """Class-aware NMS; indices of the kept boxes, best first, at most max_det."""
    kept = []
    for c in np.unique(cls):
        idx = np.where(cls == c)[0]
        kept += [idx[k] for k in nms(boxes[idx], scores[idx], iou)]
    kept = np.array(kept, dtype=np.int64)
    return kept[np.argsort(-scores[kept], kind="stable")][:max_det]


def select(scores, cls, conf, classes):
    """Cells whose best class passes the threshold and the class filter."""
    keep = scores >= conf
    if classes is not None:
        keep &= np.isin(cls, classes)
    return keep


def decode_yolov8(outs, a):
    out = outs[0][0]                                      # [4+C, N]
    scores = out[4:].max(axis=0)
    cls = out[4:].argmax(axis=0)
    keep = select(scores, cls, a.conf, a.classes)
    cx, cy, w, h = out[0, keep], out[1, keep], out[2, keep], out[3, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return boxes, scores[keep], cls[keep], True


def nanodet_centres(size):
    """Per stride: cell centres [n, 2] (row-major, +0.5 offset), in input pixels."""
    grids = []
    for s in NANODET_STRIDES:
        w = math.ceil(size / s)
        i = np.arange(w * w)
        grids.append(np.stack([(i % w + 0.5) * s, (i // w + 0.5) * s], axis=1).astype(np.float32))
    return grids


def decode_nanodet(outs, a):
    boxes, scores, classes = [], [], []
    for k, s in enumerate(NANODET_STRIDES):
        cls_out, reg_out = outs[2 * k][0], outs[2 * k + 1][0]   # [n, C], [n, 44]
        sc = cls_out.max(axis=1)
        cl = cls_out.argmax(axis=1)
        keep = select(sc, cl, a.conf, a.classes)
        if not keep.any():
            continue
        logits = reg_out[keep].reshape(-1, 4, NANODET_BINS)      # side-major: l, t, r, b
        e = np.exp(logits - logits.max(axis=2, keepdims=True))
        d = (e @ np.arange(NANODET_BINS, dtype=np.float32)) / e.sum(axis=2) * s   # [m, 4]
        c = a.centres[k][keep]
        boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
        scores.append(sc[keep])
        classes.append(cl[keep])
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), True
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes), True


def decode_end2end(outs, a):
    out = outs[0][0]                                      # [N, 6]
    scores = out[:, 4]
    cls = np.maximum(out[:, 5], 0).astype(np.int64)
    keep = select(scores, cls, a.conf, a.classes)
    return out[keep, :4], scores[keep], cls[keep], False


DECODERS = {"yolov8": decode_yolov8, "nanodet": decode_nanodet, "end2end": decode_end2end}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("video")
    p.add_argument("frames", type=int)
    p.add_argument("threads", type=int)
    p.add_argument("--layout", choices=sorted(DECODERS), default="yolov8")
    p.add_argument("--pad", type=int, default=114, help="letterbox pad value (percept: 114; 0 in its nanodet pipelines)")
    p.add_argument("--conf", type=float, default=0.25, help="score threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=None,
                   help="NMS IoU threshold (default 0.45 for yolov8, as percept; 0.5 for nanodet)")
    p.add_argument("--classes", default=None, help="comma-separated class ids to keep, e.g. 0,1,2,3,5,7")
    p.add_argument("--max", type=int, default=100, help="at most this many detections per frame")
    p.add_argument("--jsonl", default=None, help="write one JSON object per frame here")
    a = p.parse_args()
    if a.iou is None:
        a.iou = 0.5 if a.layout == "nanodet" else 0.45
    if a.classes is not None:
        a.classes = np.array([int(c) for c in a.classes.split(",") if c.strip()], dtype=np.int64)
    return a


def main():
    a = parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    size = sess.get_inputs()[0].shape[2]
    if a.layout == "nanodet":
        outputs = [f"{kind}_{s}" for s in NANODET_STRIDES for kind in ("cls", "reg")]
        a.centres = nanodet_centres(size)
    else:
        outputs = [sess.get_outputs()[0].name]
    decode = DECODERS[a.layout]
    cap = cv2.VideoCapture(a.video)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    latencies, infer, n, detections, per_frame = [], 0.0, 0, 0, []
    start = time.perf_counter()
    while n < a.frames:
        t0 = time.perf_counter()
        ok, bgr = cap.read()
        if not ok:
            break
        img, r, left, top = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, a.pad)
        blob = np.ascontiguousarray(img.transpose(2, 0, 1)[None], np.float32) / 255.0
        t1 = time.perf_counter()
        outs = sess.run(outputs, {name: blob})
        infer += time.perf_counter() - t1
        boxes, scores, cls, needs_nms = decode(outs, a)
        if needs_nms:
            kept = class_nms(boxes, scores, cls, a.iou, a.max)
        else:
            kept = np.arange(min(len(scores), a.max))
        boxes = (boxes[kept] - [left, top, left, top]) / r
        detections += len(kept)
        latencies.append((time.perf_counter() - t0) * 1e3)
        if a.jsonl:
            per_frame.append((boxes, scores[kept], cls[kept]))
        n += 1
    secs = time.perf_counter() - start
    if a.jsonl:
        with open(a.jsonl, "w") as f:
            for i, (boxes, scores, cls) in enumerate(per_frame):
                dets = [{"bbox": [round(float(v), 2) for v in b], "class_id": int(c), "score": round(float(s), 4)}
                        for b, s, c in zip(boxes, scores, cls)]
                tracks = [{"id": k, "bbox": d["bbox"], "class_id": d["class_id"], "score": d["score"]}
                          for k, d in enumerate(dets)]
                f.write(json.dumps({"seq": i, "pts_ns": round(i * 1e9 / fps), "detections": dets,
                                    "tracks": tracks}) + "\n")
    lat = np.array(latencies)
    print(json.dumps({"frames": n, "seconds": secs, "fps": n / secs, "latency_p50_ms": float(np.percentile(lat, 50)),
                      "latency_p99_ms": float(np.percentile(lat, 99)), "inference_s": infer, "detections": detections}))


if __name__ == "__main__":
    main()
