#!/usr/bin/env python3
"""Writes percept's deterministic test models and synthetic scene recordings.

Every model is built by hand from ONNX operators with fixed weights; none is
trained. They find bright red, green and blue squares on a dark background,
which is what the synthetic recordings show, and emit boxes in each detector
output layout percept decodes:

  squares_yolov8.onnx        output0 [1, 4+C, N]   cx, cy, w, h, class scores
  squares_yolov5.onnx        output0 [1, N, 5+C]   cx, cy, w, h, objectness, class probabilities
  squares_end2end.onnx       output0 [1, K, 6]     x1, y1, x2, y2, score, class (top K, no NMS needed)
  squares_boxes_scores.onnx  boxes [1, N, 4] (x1, y1, x2, y2) + scores [1, N, C]
  squares_yolov8_nhwc.onnx   the YOLOv8 layout with an NHWC input [1, 256, 256, 3]
  wrong_rank.onnx            an input of rank 3, for the contract error test
  mono_depth.onnx            monocular depth: image [1, 3, 192, 256] -> relative inverse
                             depth [1, 192, 256] (smoothed luminance; the stereo stills are
                             painted so that it is right)
  cascade_exit1.onnx, cascade_exit2.onnx
                             a two-exit colour classifier (red / green) for early exit:
                             exit 1 is sure only when red and green differ a lot
  colour_embed.onnx          re-ID embedding: crops [N, 3, 32, 32] -> [N, 24], soft
                             8-bin histograms of R, G and B (objects of different
                             colours get different embeddings)

How a model finds squares (input `images` [1, 3, 256, 256], RGB in 0..1):
  1. A 1x1 convolution computes, per class, own channel minus the other two;
     `Greater(0.3)` turns that into a binary mask per class (gray letterbox
     padding and the dark background give negative values).
  2. Each class mask is split in two shades (the other channels' maximum
     below or above 0.25). Every mask pixel finds the extent of its run of
     same-shade pixels along its row and its column (one-sided max-pools of
     the other pixels' coordinates), so it knows its own square's box: squares
     that do not touch never mix, and a square in front of another of another
     shade hides it. Extents under 4 px (an almost hidden square) are not seen.
  3. Each anchor (stride 8, a 32x32 grid) pools its 8x8 cell. The anchor whose
     cell holds a square's centre scores 0.9 with that square's box; anchors
     whose cell centre is within 12 px of it score 0.5 with the same box:
     exact duplicates that NMS must remove (the end-to-end model, "exported
     with NMS", leaves them out).
Squares must be at most 40 px (network pixels). Squares of one class and one
shade that touch or overlap are seen as one object, their union.

Recordings (tests/media), 400x300 at 10 fps, lossless FFV1 in Matroska, with
exact ground truth:
  squares.mkv    three squares of three classes in separate bands;
                 squares.gt.jsonl: {"seq", "pts_ns", "boxes": [[x1, y1, x2, y2, class_id], ...],
                 "objects": [{"id", "bbox", "class_id"}]} (one identity per square)
  crossing.mkv   a deep red and an orange square (one detector class) meet,
                 overlap, wait and turn back, for appearance-aided tracking
                 (the detector sees the visible part of the hidden one);
                 crossing.gt.jsonl: {"seq", "objects": [{"id", "bbox", "class_id"}]},
                 crossing.gt.txt: the same in MOTChallenge text

Run by scripts/setup.sh when an output is missing or this file changed.
Usage: make_test_models.py OUT_MODELS_DIR OUT_MEDIA_DIR
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 256          # network input, square
STRIDE = 8          # anchor stride
GRID = SIZE // STRIDE
RUN = 40            # longest run of mask pixels the model measures (squares are smaller)
SHADE = 0.25        # splits each class into a dark and a light shade
MIN_SIDE = 4        # smallest visible extent of a square, network pixels
CLASSES = ["red", "green", "blue"]
TOPK = 50
OPSET = 17


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, array, name=None):
        self.n += 1
        name = name or f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, **attrs):
        self.n += 1
        out = f"t{self.n}_{op_type.lower()}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def op_named(self, op_type, inputs, out, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def model(self, name, inputs, outputs):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="percept make_test_models.py")
        model.ir_version = 8
        model.metadata_props.append(onnx.StringStringEntryProto(key="names", value=json.dumps(CLASSES)))
        onnx.checker.check_model(model, full_check=True)
        return model


def square_features(g, image="images"):
    """Per-anchor box (cx, cy, w, h) and per-class scores, each [1, 1|C, G, G]."""
    f32 = np.float32
    w = -np.ones((3, 3, 1, 1), f32)
    for c in range(3):
        w[c, c, 0, 0] = 1.0
    v = g.op("Conv", [image, g.const(w)])
    masks = g.op("Cast", [g.op("Greater", [v, g.const(f32(0.3))])], to=TensorProto.FLOAT)
    union = g.op("ReduceMax", [masks], axes=[1], keepdims=1)

    # Each class in two shades (the larger of the other two channels below or
    # above SHADE): squares of one class but different shades stay apart.
    chans = [g.op("Slice", [image, g.const(np.array([c], np.int64)), g.const(np.array([c + 1], np.int64)),
                            g.const(np.array([1], np.int64))]) for c in range(3)]
    others = [g.op("Max", [chans[(c + 1) % 3], chans[(c + 2) % 3]]) for c in range(3)]
    light = g.op("Cast", [g.op("Concat", [g.op("Greater", [o, g.const(f32(SHADE))]) for o in others], axis=1)],
                 to=TensorProto.FLOAT)
    shades = g.op("Concat", [g.op("Mul", [masks, g.op("Sub", [g.const(f32(1.0)), light])]),
                             g.op("Mul", [masks, light])], axis=1)               # [1, 6, S, S]
    background = g.op("Sub", [g.const(f32(1.0)), shades])

    # Every pixel learns the extent of its run of same-shade pixels along its
    # row and its column: the nearest other pixel on each side, found by a
    # one-sided max-pool over RUN pixels of the others' coordinates.
    xs = np.arange(SIZE, dtype=f32).reshape(1, 1, 1, SIZE)
    ys = xs.reshape(1, 1, SIZE, 1)
    size = g.const(f32(SIZE))

    def nearest(ramp, kernel, pads):
        pooled = g.op("MaxPool", [g.op("Mul", [background, g.const(ramp)])], kernel_shape=kernel, pads=pads)
        return g.op("ReduceSum", [g.op("Mul", [shades, pooled]), g.const(np.array([1], np.int64))], keepdims=1)

    row, col = [1, RUN + 1], [RUN + 1, 1]
    left = nearest(xs + 1, row, [0, RUN, 0, 0])                                  # first x of the run
    right = g.op("Sub", [size, nearest(SIZE - xs, row, [0, 0, 0, RUN])])          # one past its last
    top = nearest(ys + 1, col, [RUN, 0, 0, 0])
    bottom = g.op("Sub", [size, nearest(SIZE - ys, col, [0, 0, RUN, 0])])
    # Slivers (an almost hidden square) are too small to see.
    big = g.op("And", [g.op("GreaterOrEqual", [g.op("Sub", [right, left]), g.const(f32(MIN_SIDE))]),
                       g.op("GreaterOrEqual", [g.op("Sub", [bottom, top]), g.const(f32(MIN_SIDE))])])
    union = g.op("Mul", [union, g.op("Cast", [big], to=TensorProto.FLOAT)])
    half = g.const(f32(0.5))
    pcx = g.op("Mul", [g.op("Add", [left, right]), half])
    pcy = g.op("Mul", [g.op("Add", [top, bottom]), half])

    # A pixel is "responsible" when its 8x8 cell holds its square's centre and
    # "near" when its cell's centre is within 12 px of it.
    cell_x = (np.floor(xs / STRIDE) * STRIDE).astype(f32)
    cell_y = cell_x.reshape(1, 1, SIZE, 1)
    inside = [g.op("GreaterOrEqual", [pcx, g.const(cell_x)]), g.op("Less", [pcx, g.const(cell_x + STRIDE)]),
              g.op("GreaterOrEqual", [pcy, g.const(cell_y)]), g.op("Less", [pcy, g.const(cell_y + STRIDE)])]
    resp = g.op("And", [g.op("And", [inside[0], inside[1]]), g.op("And", [inside[2], inside[3]])])
    near_r = g.const(f32(12.0))
    near = g.op("And", [
        g.op("Less", [g.op("Abs", [g.op("Sub", [pcx, g.const(cell_x + STRIDE / 2)])]), near_r]),
        g.op("Less", [g.op("Abs", [g.op("Sub", [pcy, g.const(cell_y + STRIDE / 2)])]), near_r])])
    resp_px = g.op("Mul", [union, g.op("Cast", [resp], to=TensorProto.FLOAT)])
    near_px = g.op("Mul", [union, g.op("Cast", [near], to=TensorProto.FLOAT)])

    # Anchors pool their cell: the box of the square whose near pixels it holds
    # (coordinates stored so that larger is the answer) and the class scores.
    cell = dict(kernel_shape=[STRIDE, STRIDE], strides=[STRIDE, STRIDE])
    edges = g.op("Concat", [right, g.op("Sub", [size, left]), bottom, g.op("Sub", [size, top])], axis=1)
    pooled = g.op("MaxPool", [g.op("Mul", [edges, near_px])], **cell)
    part = g.op("Split", [pooled, g.const(np.array([1, 1, 1, 1], np.int64))], axis=1)
    # Split has four outputs: rewrite the node to name them.
    split = g.nodes.pop()
    parts = [f"{part}_{i}" for i in range(4)]
    g.nodes.append(helper.make_node("Split", list(split.input), parts, axis=1))
    xmax, xmin_r, ymax, ymin_r = parts
    xmin = g.op("Sub", [size, xmin_r])
    ymin = g.op("Sub", [size, ymin_r])
    cx = g.op("Mul", [g.op("Add", [xmin, xmax]), half])
    cy = g.op("Mul", [g.op("Add", [ymin, ymax]), half])
    bw = g.op("Sub", [xmax, xmin])
    bh = g.op("Sub", [ymax, ymin])

    presence = g.op("MaxPool", [g.op("Mul", [masks, near_px])], **cell)         # [1, C, G, G]
    resp_c = g.op("MaxPool", [g.op("Mul", [masks, resp_px])], **cell)
    # 0.9 at the responsible anchor, 0.5 at its neighbours, 0 elsewhere.
    scores = g.op("Add", [g.op("Mul", [resp_c, g.const(f32(0.4))]), g.op("Mul", [presence, g.const(f32(0.5))])])
    best_only = g.op("Mul", [resp_c, g.const(f32(0.9))])
    return dict(cx=cx, cy=cy, w=bw, h=bh, xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax,
                presence=presence, scores=scores, best_only=best_only)


def flat(g, t, channels):
    return g.op("Reshape", [t, g.const(np.array([1, channels, GRID * GRID], np.int64))])


def image_input(shape=(1, 3, SIZE, SIZE)):
    return helper.make_tensor_value_info("images", TensorProto.FLOAT, list(shape))


def out(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def yolov8(nhwc=False, batch=1):
    """`batch`: 1, a fixed size, or "N" (dynamic: the Reshape copies the batch dim)."""
    g = Graph()
    image = g.op("Transpose", ["images"], perm=[0, 3, 1, 2]) if nhwc else "images"
    f = square_features(g, image)
    cat = g.op("Concat", [f["cx"], f["cy"], f["w"], f["h"], f["scores"]], axis=1)
    lead = 1 if batch == 1 else 0
    g.op_named("Reshape", [cat, g.const(np.array([lead, 4 + len(CLASSES), GRID * GRID], np.int64))], "output0")
    shape = (batch, SIZE, SIZE, 3) if nhwc else (batch, 3, SIZE, SIZE)
    name = "squares_yolov8_nhwc" if nhwc else "squares_yolov8" if batch == 1 else f"squares_yolov8_batch{batch}"
    return g.model(name, [image_input(shape)], [out("output0", [batch, 4 + len(CLASSES), GRID * GRID])])


def yolov5():
    g = Graph()
    f = square_features(g)
    obj = g.op("ReduceMax", [f["scores"]], axes=[1], keepdims=1)
    cat = g.op("Concat", [f["cx"], f["cy"], f["w"], f["h"], obj, f["presence"]], axis=1)
    rows = flat(g, cat, 5 + len(CLASSES))
    g.op_named("Transpose", [rows], "output0", perm=[0, 2, 1])
    return g.model("squares_yolov5", [image_input()], [out("output0", [1, GRID * GRID, 5 + len(CLASSES)])])


def end2end():
    g = Graph()
    f = square_features(g)
    n = GRID * GRID
    # Deduplicated, as a model exported with NMS would be.
    best = flat(g, g.op("ReduceMax", [f["best_only"]], axes=[1], keepdims=1), 1)    # [1, 1, N]
    cls = flat(g, g.op("Cast", [g.op("ArgMax", [f["best_only"]], axis=1, keepdims=1)], to=TensorProto.FLOAT), 1)
    best = g.op("Reshape", [best, g.const(np.array([1, n], np.int64))])
    topk = g.op("TopK", [best, g.const(np.array([TOPK], np.int64))], axis=1)
    node = g.nodes.pop()
    values, idx = f"{topk}_values", f"{topk}_indices"
    g.nodes.append(helper.make_node("TopK", list(node.input), [values, idx], axis=1))
    cols = []
    for t in [f["xmin"], f["ymin"], f["xmax"], f["ymax"]]:
        row = g.op("Reshape", [t, g.const(np.array([1, n], np.int64))])
        cols.append(g.op("GatherElements", [row, idx], axis=1))
    cols.append(values)
    cls_row = g.op("Reshape", [cls, g.const(np.array([1, n], np.int64))])
    cols.append(g.op("GatherElements", [cls_row, idx], axis=1))
    stacked = g.op("Concat", [g.op("Unsqueeze", [c, g.const(np.array([2], np.int64))]) for c in cols], axis=2)
    g.op_named("Identity", [stacked], "output0")
    return g.model("squares_end2end", [image_input()], [out("output0", [1, TOPK, 6])])


def boxes_scores():
    g = Graph()
    f = square_features(g)
    boxes = flat(g, g.op("Concat", [f["xmin"], f["ymin"], f["xmax"], f["ymax"]], axis=1), 4)
    g.op_named("Transpose", [boxes], "boxes", perm=[0, 2, 1])
    g.op_named("Transpose", [flat(g, f["scores"], len(CLASSES))], "scores", perm=[0, 2, 1])
    n = GRID * GRID
    return g.model("squares_boxes_scores", [image_input()],
                   [out("boxes", [1, n, 4]), out("scores", [1, n, len(CLASSES)])])


def colour_embed():
    g = Graph()
    bins = 8
    centres = ((np.arange(bins, dtype=np.float32) + 0.5)).reshape(1, 1, bins, 1, 1)
    x = g.op("Unsqueeze", ["crops", g.const(np.array([2], np.int64))])                  # [N, 3, 1, H, W]
    d = g.op("Abs", [g.op("Sub", [g.op("Mul", [x, g.const(np.float32(bins))]), g.const(centres)])])
    tri = g.op("Relu", [g.op("Sub", [g.const(np.float32(1.0)), d])])                    # [N, 3, 8, H, W]
    hist = g.op("ReduceMean", [tri], axes=[3, 4], keepdims=0)                            # [N, 3, 8]
    g.op_named("Flatten", [hist], "embeddings", axis=1)                                 # [N, 24]
    crops = helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["N", 3, 32, 32])
    return g.model("colour_embed", [crops], [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", 3 * bins])])


def wrong_rank():
    g = Graph()
    g.op_named("Identity", ["images"], "output0")
    return g.model("wrong_rank", [image_input((1, 3, SIZE))], [out("output0", [1, 3, SIZE])])


# ---- synthetic scene -------------------------------------------------------
WIDTH, HEIGHT, FPS, FRAMES = 400, 300, 10, 40
BACKGROUND = 20
COLOURS = {0: (230, 30, 30), 1: (30, 220, 40), 2: (40, 50, 235)}
# (class, side, x0, y, vx px/frame): each in its own band, far apart.
OBJECTS = [(0, 30, 10, 10, 5), (1, 24, 340, 130, -5), (2, 36, 40, 250, 4)]


def scene():
    frames, truth = [], []
    for i in range(FRAMES):
        img = np.full((HEIGHT, WIDTH, 3), BACKGROUND, np.uint8)
        boxes = []
        for cls, side, x0, y, vx in OBJECTS:
            x = x0 + vx * i
            img[y:y + side, x:x + side] = COLOURS[cls]
            boxes.append([x, y, x + side, y + side, cls])
        frames.append(img)
        objects = [{"id": b[4] + 1, "bbox": b[:4], "class_id": b[4]} for b in boxes]
        truth.append({"seq": i, "pts_ns": i * 1_000_000_000 // FPS, "boxes": boxes, "objects": objects})
    return frames, truth


CROSS_FRAMES = 45
CROSS_SIDE = 30
CROSS_Y = 130
# id: (colour, position at frame t)
CROSSERS = {
    1: ((230, 30, 30), lambda t: 40 + 8 * min(t, 18) - 8 * max(t - 22, 0)),
    2: ((240, 110, 20), lambda t: 330 - 8 * min(t, 18) + 8 * max(t - 22, 0)),
}


def crossing():
    frames, truth = [], []
    for t in range(CROSS_FRAMES):
        img = np.full((HEIGHT, WIDTH, 3), BACKGROUND, np.uint8)
        objects = []
        for oid, (colour, x_at) in CROSSERS.items():  # id 2 is drawn over id 1
            x = x_at(t)
            img[CROSS_Y:CROSS_Y + CROSS_SIDE, x:x + CROSS_SIDE] = colour
            objects.append({"id": oid, "bbox": [x, CROSS_Y, x + CROSS_SIDE, CROSS_Y + CROSS_SIDE], "class_id": 0})
        frames.append(img)
        truth.append({"seq": t, "pts_ns": t * 1_000_000_000 // FPS, "objects": objects})
    return frames, truth


# Stereo stills: textured red squares in front of a textured wall, for an ideal
# pair (f = 500 px, B = 0.1 m; calibration/synthetic_400x300.toml).
# Disparity d gives depth 500 * 0.1 / d: wall 10 px (5 m), squares 40 px
# (1.25 m) and 25 px (2 m). stereo.gt.json lists each square's box in the
# left view and its position in metres. The textures' mean luminance is
# 0.1 + 0.5 / depth (wall 0.2, squares 0.5 and 0.35), which is what the
# monocular test model reads as relative inverse depth.
STEREO_SQUARES = [((60, 100, 36), 40, 95), ((250, 120, 32), 25, 31)]   # ((x, y, side), disparity, mean G)
MONO_SIZE = (256, 192)   # mono_depth.onnx input and output, width x height


def stereo_pair():
    rng = np.random.default_rng(5)
    wall = rng.integers(21, 82, (HEIGHT, WIDTH + 64), dtype=np.uint8)      # luminance 0.2
    left = np.repeat(wall[:, 32:32 + WIDTH, None], 3, axis=2).copy()
    right = np.repeat(wall[:, 42:42 + WIDTH, None], 3, axis=2).copy()   # wall at 10 px
    truth = []
    for (x, y, side), d, green in STEREO_SQUARES:
        tex = np.zeros((side, side, 3), np.uint8)
        tex[..., 0] = rng.integers(215, 256, (side, side))
        tex[..., 1] = rng.integers(green - 15, green + 16, (side, side))
        tex[..., 2] = rng.integers(0, 26, (side, side))
        left[y:y + side, x:x + side] = tex
        right[y:y + side, x - d:x - d + side] = tex
        z = 500 * 0.1 / d
        cx, cy = x + side / 2 - 200, y + side / 2 - 150
        truth.append({"bbox": [x, y, x + side, y + side], "disparity": d,
                      "position_m": [cx * z / 500, cy * z / 500, z]})
    return left, right, truth


def mono_depth():
    """Relative inverse depth as a depth network would give it: here the
    image's luminance, smoothed over 9x9 pixels, output [1, H, W]."""
    g = Graph()
    w = np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1)
    lum = g.op("Conv", ["image", g.const(w)])
    smooth = g.op("AveragePool", [lum], kernel_shape=[9, 9], pads=[4, 4, 4, 4], count_include_pad=0)
    g.op_named("Squeeze", [smooth, g.const(np.array([1], np.int64))], "depth")
    wdt, hgt = MONO_SIZE
    model = g.model("mono_depth", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, hgt, wdt])],
                    [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, hgt, wdt])])
    del model.metadata_props[:]
    return model


def cascade_exit1():
    """First exit of a two-exit colour classifier (classes red, green): the
    image's mean colour is the features; scores = softmax(8 (R - G), 8 (G - R)),
    confident only when red and green differ a lot."""
    g = Graph()
    mean = g.op("GlobalAveragePool", ["images"])                                   # [1, 3, 1, 1]
    g.op_named("Flatten", [mean], "features", axis=1)                              # [1, 3]
    w = np.array([[8.0, -8.0], [-8.0, 8.0], [0.0, 0.0]], np.float32)
    g.op_named("Softmax", [g.op("MatMul", ["features", g.const(w)])], "scores", axis=1)
    model = g.model("cascade_exit1", [image_input((1, 3, 32, 32))],
                    [out("features", [1, 3]), out("scores", [1, 2])])
    del model.metadata_props[:]
    model.metadata_props.append(onnx.StringStringEntryProto(key="names", value=json.dumps(["red", "green"])))
    return model


def cascade_exit2():
    """Second exit: the same decision, sharp: softmax(100 (R - G), 100 (G - R))."""
    g = Graph()
    w = np.array([[100.0, -100.0], [-100.0, 100.0], [0.0, 0.0]], np.float32)
    g.op_named("Softmax", [g.op("MatMul", ["features", g.const(w)])], "scores", axis=1)
    model = g.model("cascade_exit2", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3])],
                    [out("scores", [1, 2])])
    del model.metadata_props[:]
    return model


def write_png(image, path):
    h, w, _ = image.shape
    cmd = ["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!", "rawvideoparse", "format=rgb", f"width={w}",
           f"height={h}", "framerate=1/1", "!", "videoconvert", "!", "pngenc", "snapshot=true", "!",
           "filesink", f"location={path}"]
    subprocess.run(cmd, input=image.tobytes(), check=True)


def write_recording(frames, path):
    cmd = ["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!",
           f"rawvideoparse", "format=rgb", f"width={WIDTH}", f"height={HEIGHT}", f"framerate={FPS}/1", "!",
           "videoconvert", "!", "video/x-raw,format=BGRx", "!", "avenc_ffv1", "!", "matroskamux", "!",
           "filesink", f"location={path}"]
    data = b"".join(f.tobytes() for f in frames)
    subprocess.run(cmd, input=data, check=True)


def main():
    models, media = Path(sys.argv[1]), Path(sys.argv[2])
    models.mkdir(parents=True, exist_ok=True)
    media.mkdir(parents=True, exist_ok=True)
    for name, build in [("squares_yolov8", yolov8), ("squares_yolov5", yolov5), ("squares_end2end", end2end),
                        ("squares_boxes_scores", boxes_scores), ("wrong_rank", wrong_rank),
                        ("colour_embed", colour_embed), ("squares_yolov8_nhwc", lambda: yolov8(nhwc=True)),
                        ("mono_depth", mono_depth), ("cascade_exit1", cascade_exit1),
                        ("cascade_exit2", cascade_exit2),
                        ("squares_yolov8_batchN", lambda: yolov8(batch="N")),
                        ("squares_yolov8_batch4", lambda: yolov8(batch=4))]:
        onnx.save(build(), str(models / f"{name}.onnx"))
    (models / "squares.names").write_text("".join(c + "\n" for c in CLASSES))
    frames, truth = scene()
    write_recording(frames, media / "squares.mkv")
    (media / "squares.gt.jsonl").write_text("".join(json.dumps(t) + "\n" for t in truth))
    frames, truth = crossing()
    write_recording(frames, media / "crossing.mkv")
    (media / "crossing.gt.jsonl").write_text("".join(json.dumps(t) + "\n" for t in truth))
    mot = []
    for t in truth:
        for o in t["objects"]:
            x1, y1, x2, y2 = o["bbox"]
            mot.append(f"{t['seq'] + 1},{o['id']},{x1},{y1},{x2 - x1},{y2 - y1},1,1,1\n")
    (media / "crossing.gt.txt").write_text("".join(mot))
    left, right, truth = stereo_pair()
    write_png(left, media / "stereo_left.png")
    write_png(right, media / "stereo_right.png")
    write_png(np.concatenate([left, right], axis=1), media / "stereo_sbs.png")
    (media / "stereo.gt.json").write_text(json.dumps(truth) + "\n")


if __name__ == "__main__":
    main()
