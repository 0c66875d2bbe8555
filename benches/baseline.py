#!/usr/bin/env python3
"""The loop users write instead of percept: OpenCV VideoCapture + ONNX Runtime +
numpy letterbox, YOLOv8 decode and NMS, one frame at a time, in one thread of
Python (ONNX Runtime with the same intra-op threads as percept's pipeline).

Prints one JSON object: frames, seconds, fps, per-frame latency (read to
result) p50/p99 in ms, and the time inside session.run.

Usage: baseline.py MODEL.onnx VIDEO FRAMES THREADS
"""

import json
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort


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


def main():
    model, video, frames, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    size = sess.get_inputs()[0].shape[2]
    cap = cv2.VideoCapture(video)
    latencies, infer, n, detections = [], 0.0, 0, 0
    start = time.perf_counter()
    while n < frames:
        t0 = time.perf_counter()
        ok, bgr = cap.read()
        if not ok:
            break
        img, r, left, top = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)
        blob = np.ascontiguousarray(img.transpose(2, 0, 1)[None], np.float32) / 255.0
        t1 = time.perf_counter()
        out = sess.run(None, {name: blob})[0][0]          # [84, 8400]
        infer += time.perf_counter() - t1
        scores = out[4:].max(axis=0)
        cls = out[4:].argmax(axis=0)
        keep = scores >= 0.25
        cx, cy, w, h = out[0, keep], out[1, keep], out[2, keep], out[3, keep]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        boxes = (boxes - [left, top, left, top]) / r
        kept = []
        for c in np.unique(cls[keep]):
            idx = np.where(cls[keep] == c)[0]
            kept += [idx[k] for k in nms(boxes[idx], scores[keep][idx])]
        detections += len(kept[:100])
        latencies.append((time.perf_counter() - t0) * 1e3)
        n += 1
    secs = time.perf_counter() - start
    lat = np.array(latencies)
    print(json.dumps({"frames": n, "seconds": secs, "fps": n / secs, "latency_p50_ms": float(np.percentile(lat, 50)),
                      "latency_p99_ms": float(np.percentile(lat, 99)), "inference_s": infer, "detections": detections}))


if __name__ == "__main__":
    main()
