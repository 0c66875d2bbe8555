#!/usr/bin/env python3
"""Writes a YOLOv8-layout ONNX model that costs (almost) nothing to run: its
output is a constant [1, 84, 8400] tensor (COCO's 80 classes, 640x640 input),
so a pipeline run with it measures everything but the model.

The constant holds 12 people at fixed places (the cells' cx, cy, w, h in input
pixels, class 0, score 0.9) and, beside each, two shifted copies with lower
scores that class-aware NMS suppresses: decode, NMS and the tracker do the work
they would do on a real frame with 12 people. The input is read (one pixel,
times zero), so ONNX Runtime cannot drop it.

Usage: make_constant_model.py OUT.onnx
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 640
CELLS = 8400  # 80 x 80 + 40 x 40 + 20 x 20
CLASSES = 80


def main():
    out = np.zeros((1, 4 + CLASSES, CELLS), np.float32)
    cell = 0
    for k in range(12):
        cx, cy = 60 + (k % 6) * 100, 200 + (k // 6) * 220
        for dx, score in ((0, 0.9), (6, 0.7), (-5, 0.6)):
            out[0, :4, cell] = (cx + dx, cy, 50, 130)
            out[0, 4, cell] = score
            cell += 97  # spread over the grid, as a model's cells are
    nodes = [
        helper.make_node("Slice", ["images", "starts", "ends"], ["pixel"]),
        helper.make_node("ReduceMax", ["pixel"], ["value"], keepdims=0),
        helper.make_node("Mul", ["value", "zero"], ["nothing"]),
        helper.make_node("Add", ["boxes", "nothing"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(np.zeros(4, np.int64), "starts"),
        numpy_helper.from_array(np.ones(4, np.int64), "ends"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(out, "boxes"),
    ]
    graph = helper.make_graph(
        nodes, "constant_yolov8", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + CLASSES, CELLS])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, sys.argv[1])


if __name__ == "__main__":
    main()
