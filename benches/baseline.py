#!/usr/bin/env python3
"""The loop users write instead of percept: OpenCV VideoCapture + ONNX Runtime +
numpy letterbox, decode and NMS, one frame at a time, in one thread of Python
(ONNX Runtime with the same intra-op threads as percept's pipeline).

Prints one JSON object: frames, seconds, fps, per-frame latency (read to
result) p50/p99 in ms, the time inside session.run, and the detection count.

Usage: baseline.py MODEL.onnx VIDEO FRAMES THREADS [--layout yolov8|nanodet|end2end]
                   [--pad N] [--conf X] [--iou X] [--classes 0,1,2] [--max N] [--jsonl PATH]
                   [--track] [--pace FPS [--latest]]

Layouts (the same contracts percept's `layout` reads; see models/README.md):
  yolov8   [1, 4+C, N]: cx, cy, w, h, C class scores; class-aware NMS (default).
  nanodet  cls_8 reg_8 cls_16 reg_16 cls_32 reg_32: [1, n, C] sigmoid scores and
           [1, n, 4*11] GFL logits (side-major, sides l, t, r, b); class-aware NMS.
  end2end  [1, N, 6]: x1, y1, x2, y2, score, class in input pixels; no NMS.
Boxes are mapped back through the letterbox to frame pixels.

--track runs ByteTrack on each frame's detections (numpy Kalman filter, scipy's
Hungarian assignment; the reference implementation's rules and thresholds),
the work percept's `track` stage does; the JSON then counts `track_boxes`.

--jsonl PATH writes one JSON object per frame, after the timed loop (so it does
not change the timing): {"seq", "pts_ns", "detections": [{"bbox", "class_id",
"score"}], "tracks": [...]}. `tracks` repeats the detections with `id` = index
within the frame, because `percept eval` reads only `tracks`/`objects`; those
ids are not identities, so only the detection metrics of `percept eval` mean
anything for this file (not ID switches or IDF1). Every record also carries
`capture_wall_ns` (when the frame was read, or its scheduled instant with
--pace) and `emit_wall_ns` (when its result existed), wall-clock ns since the
Unix epoch: the two fields `percept eval --streaming` needs besides `seq`.

--pace FPS reads the video like a camera: a reader thread decodes and releases
frame i at start + i / FPS (0: the file's own rate); its capture time is that
scheduled instant, as percept's paced sources stamp theirs (a late release
counts as latency). The detector takes frames in order (a queue, no drops),
or with --latest always the newest one, dropping the frames that arrived while
it was busy (the usual drop-to-latest loop). --jsonl then holds one record per
frame read: a detected frame's record has its own detections, written when
they were done; any other frame's record "holds the last boxes", the newest
result finished by the frame's release, written then (at least capture + 1 ns,
so it never serves its own frame in streaming evaluation). No tracker. The
printed JSON then also has `processed`, `run_rate`, the capture-to-result
latency p50/p99 of the detected frames, `detect_p50_ms` (preprocess to decoded
boxes) and how late the reader released frames against the schedule
(`release_lag_p50_ms`, `_p99_ms`, `_max_ms`).
"""

import argparse
import bisect
import collections
import json
import math
import threading
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


class KalmanXYAH:
    """ByteTrack's constant-velocity Kalman filter on (cx, cy, aspect, height)
    (Zhang et al., ECCV 2022; the reference code's kalman_filter.py)."""
    ndim, std_pos, std_vel = 4, 1.0 / 20, 1.0 / 160

    def __init__(self):
        self.F = np.eye(8)
        self.F[:4, 4:] = np.eye(4)
        self.H = np.eye(4, 8)

    def initiate(self, z):
        mean = np.r_[z, np.zeros(4)]
        h = z[3]
        std = [2 * self.std_pos * h, 2 * self.std_pos * h, 1e-2, 2 * self.std_pos * h,
               10 * self.std_vel * h, 10 * self.std_vel * h, 1e-5, 10 * self.std_vel * h]
        return mean, np.diag(np.square(std))

    def predict(self, mean, cov):
        h = mean[3]
        q = np.diag(np.square([self.std_pos * h, self.std_pos * h, 1e-2, self.std_pos * h,
                               self.std_vel * h, self.std_vel * h, 1e-5, self.std_vel * h]))
        return self.F @ mean, self.F @ cov @ self.F.T + q

    def update(self, mean, cov, z):
        h = mean[3]
        r = np.diag(np.square([self.std_pos * h, self.std_pos * h, 1e-1, self.std_pos * h]))
        s = self.H @ cov @ self.H.T + r
        k = np.linalg.solve(s, self.H @ cov).T
        return mean + k @ (z - self.H @ mean), cov - k @ s @ k.T


def xyah(b):
    w, h = b[2] - b[0], b[3] - b[1]
    return np.array([b[0] + w / 2, b[1] + h / 2, w / max(h, 1e-6), h])


def tlbr(m):
    w, h = m[2] * m[3], m[3]
    return np.array([m[0] - w / 2, m[1] - h / 2, m[0] + w / 2, m[1] + h / 2])


def iou_matrix(a, b):
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a, b = np.asarray(a)[:, None], np.asarray(b)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


class ByteTrack:
    """ByteTrack (Zhang et al., ECCV 2022) as the reference byte_tracker.py does it:
    high-score boxes matched first (IoU fused with score), then low-score boxes
    to the tracks left, unconfirmed tracks last; Hungarian assignment (scipy)."""

    def __init__(self, high=0.5, low=0.1, new=0.6, match=0.8, max_lost=30):
        from scipy.optimize import linear_sum_assignment
        self.assign = linear_sum_assignment
        self.high, self.low, self.new, self.match, self.max_lost = high, low, new, match, max_lost
        self.kf = KalmanXYAH()
        self.tracks = []                   # dicts: id, mean, cov, score, cls, confirmed, lost, box
        self.next_id = 1
        self.frame = 0

    def _match(self, tracks, boxes, scores, thresh, fuse):
        cost = 1 - iou_matrix([t["box"] for t in tracks], boxes)
        if fuse and len(tracks) and len(boxes):
            cost = 1 - (1 - cost) * np.asarray(scores)[None]
        if cost.size == 0:
            return [], list(range(len(tracks))), list(range(len(boxes)))
        rows, cols = self.assign(cost)
        pairs = [(r, c) for r, c in zip(rows, cols) if cost[r, c] <= thresh]
        mr, mc = {r for r, _ in pairs}, {c for _, c in pairs}
        return pairs, [r for r in range(len(tracks)) if r not in mr], [c for c in range(len(boxes)) if c not in mc]

    def _update(self, t, box, score, cls):
        t["mean"], t["cov"] = self.kf.update(t["mean"], t["cov"], xyah(box))
        t["box"], t["score"], t["cls"], t["lost"] = tlbr(t["mean"]), score, cls, 0

    def update(self, boxes, scores, cls):
        self.frame += 1
        for t in self.tracks:
            t["mean"], t["cov"] = self.kf.predict(t["mean"], t["cov"])
            t["box"] = tlbr(t["mean"])
        hi = np.where(scores >= self.high)[0]
        lo = np.where((scores >= self.low) & (scores < self.high))[0]
        confirmed = [t for t in self.tracks if t["confirmed"]]
        unconfirmed = [t for t in self.tracks if not t["confirmed"]]
        pairs, left, free = self._match(confirmed, boxes[hi], scores[hi], self.match, True)
        for r, c in pairs:
            self._update(confirmed[r], boxes[hi[c]], scores[hi[c]], cls[hi[c]])
        active = [confirmed[r] for r in left if confirmed[r]["lost"] == 0]
        pairs, left2, _ = self._match(active, boxes[lo], scores[lo], 0.5, False)
        for r, c in pairs:
            self._update(active[r], boxes[lo[c]], scores[lo[c]], cls[lo[c]])
        matched = {id(confirmed[r]) for r in range(len(confirmed)) if r not in left}
        matched |= {id(active[r]) for r, _ in pairs}
        hi = hi[free]
        pairs, dead, free = self._match(unconfirmed, boxes[hi], scores[hi], 0.7, True)
        for r, c in pairs:
            self._update(unconfirmed[r], boxes[hi[c]], scores[hi[c]], cls[hi[c]])
            unconfirmed[r]["confirmed"] = True
            matched.add(id(unconfirmed[r]))
        gone = {id(unconfirmed[r]) for r in dead}
        kept = []
        for t in self.tracks:
            if id(t) in gone:
                continue
            if id(t) not in matched:
                t["lost"] += 1
                if t["lost"] > self.max_lost:
                    continue
            kept.append(t)
        for c in hi[free]:
            if scores[c] < self.new:
                continue
            mean, cov = self.kf.initiate(xyah(boxes[c]))
            kept.append({"id": self.next_id, "mean": mean, "cov": cov, "score": scores[c], "cls": cls[c],
                         "confirmed": self.frame == 1, "lost": 0, "box": np.asarray(boxes[c], float)})
            self.next_id += 1
        self.tracks = kept
        return [t for t in kept if t["confirmed"] and t["lost"] == 0]


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
    p.add_argument("--pace", type=float, default=None,
                   help="read the video like a camera at FPS frames per second (0: the file's rate)")
    p.add_argument("--track", action="store_true",
                   help="track the detections with ByteTrack (numpy + scipy), as percept's track stage does")
    p.add_argument("--latest", action="store_true",
                   help="with --pace: detect only the newest frame, dropping the ones that came meanwhile")
    a = p.parse_args()
    if a.latest and a.pace is None:
        p.error("--latest needs --pace")
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
    infer = [0.0]

    def detect(bgr):
        img, r, left, top = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, a.pad)
        blob = np.ascontiguousarray(img.transpose(2, 0, 1)[None], np.float32) / 255.0
        t1 = time.perf_counter()
        outs = sess.run(outputs, {name: blob})
        infer[0] += time.perf_counter() - t1
        boxes, scores, cls, needs_nms = decode(outs, a)
        if needs_nms:
            kept = class_nms(boxes, scores, cls, a.iou, a.max)
        else:
            kept = np.arange(min(len(scores), a.max))
        return (boxes[kept] - [left, top, left, top]) / r, scores[kept], cls[kept]

    cap = cv2.VideoCapture(a.video)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    if a.pace is not None:
        paced(a, cap, a.pace or fps, detect, infer)
        return
    latencies, n, detections, per_frame, tracked = [], 0, 0, [], 0
    tracker = ByteTrack() if a.track else None
    start = time.perf_counter()
    while n < a.frames:
        t0 = time.perf_counter()
        captured = time.time_ns()
        ok, bgr = cap.read()
        if not ok:
            break
        boxes, scores, cls = detect(bgr)
        detections += len(cls)
        if tracker is not None:
            tracked += len(tracker.update(boxes, scores, cls))
        latencies.append((time.perf_counter() - t0) * 1e3)
        if a.jsonl:
            per_frame.append((boxes, scores, cls, captured, time.time_ns()))
        n += 1
    secs = time.perf_counter() - start
    if a.jsonl:
        with open(a.jsonl, "w") as f:
            for i, (boxes, scores, cls, captured, emitted) in enumerate(per_frame):
                f.write(record(i, round(i * 1e9 / fps), captured, emitted, boxes, scores, cls))
    lat = np.array(latencies)
    print(json.dumps({"frames": n, "seconds": secs, "fps": n / secs, "latency_p50_ms": float(np.percentile(lat, 50)),
                      "latency_p99_ms": float(np.percentile(lat, 99)), "inference_s": infer[0], "detections": detections,
                      "track_boxes": tracked}))


def record(seq, pts_ns, captured, emitted, boxes, scores, cls):
    """One JSON Lines record; `tracks` repeats the detections with per-frame index ids."""
    dets = [{"bbox": [round(float(v), 2) for v in b], "class_id": int(c), "score": round(float(s), 4)}
            for b, s, c in zip(boxes, scores, cls)]
    tracks = [{"id": k, "bbox": d["bbox"], "class_id": d["class_id"], "score": d["score"]}
              for k, d in enumerate(dets)]
    return json.dumps({"seq": seq, "pts_ns": pts_ns, "capture_wall_ns": captured, "emit_wall_ns": emitted,
                       "detections": dets, "tracks": tracks}) + "\n"


def paced(a, cap, fps, detect, infer):
    """The camera-like loop: a paced reader thread, the detector in this thread."""
    period = 1.0 / fps
    captures = []                      # scheduled capture wall time per frame read
    arrivals = []                      # wall time the reader released it
    lags = []                          # release - schedule, ms
    pending = collections.deque()      # (index, frame) waiting for the detector
    cond = threading.Condition()
    state = {"done": False}

    def reader():
        start = time.perf_counter() + 0.05
        wall0 = time.time_ns() + 50_000_000
        i = 0
        while i < a.frames:
            ok, bgr = cap.read()       # decoded ahead of its instant, like a camera's sensor readout
            if not ok:
                break
            wait = start + i * period - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            with cond:
                arrivals.append(time.time_ns())
                captures.append(wall0 + round(i * period * 1e9))
                lags.append((time.perf_counter() - start - i * period) * 1e3)
                if a.latest:
                    pending.clear()    # drop to latest
                pending.append((i, bgr))
                cond.notify()
            i += 1
        with cond:
            state["done"] = True
            cond.notify()

    thread = threading.Thread(target=reader, daemon=True)
    results = {}                       # index -> (boxes, scores, classes, emit_wall_ns)
    work = []
    thread.start()
    while True:
        with cond:
            while not pending and not state["done"]:
                cond.wait()
            if not pending:
                break
            i, bgr = pending.popleft()
        t0 = time.perf_counter()
        boxes, scores, cls = detect(bgr)
        work.append((time.perf_counter() - t0) * 1e3)
        results[i] = (boxes, scores, cls, time.time_ns())
    thread.join()
    n = len(captures)
    done = sorted((r[3], i) for i, r in results.items())    # results by the time they existed
    emits = [e for e, _ in done]
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
    if a.jsonl:
        with open(a.jsonl, "w") as f:
            for j in range(n):
                pts = round(j * 1e9 / fps)
                if j in results:
                    boxes, scores, cls, emitted = results[j]
                    f.write(record(j, pts, captures[j], emitted, boxes, scores, cls))
                    continue
                written = max(arrivals[j], captures[j] + 1)
                k = bisect.bisect_right(emits, written)                  # results finished by then
                boxes, scores, cls = results[done[k - 1][1]][:3] if k else empty
                f.write(record(j, pts, captures[j], written, boxes, scores, cls))
    lat = np.array([(results[i][3] - captures[i]) / 1e6 for i in results] or [0.0])
    lags = np.array(lags or [0.0])
    print(json.dumps({
        "frames": n, "processed": len(results), "run_rate": len(results) / max(n, 1),
        "pace_fps": fps, "latest": a.latest,
        "latency_p50_ms": float(np.percentile(lat, 50)), "latency_p99_ms": float(np.percentile(lat, 99)),
        "detect_p50_ms": float(np.percentile(work or [0.0], 50)), "inference_s": infer[0],
        "release_lag_p50_ms": float(np.percentile(lags, 50)),
        "release_lag_p99_ms": float(np.percentile(lags, 99)), "release_lag_max_ms": float(lags.max())}))


if __name__ == "__main__":
    main()
