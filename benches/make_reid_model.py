#!/usr/bin/env python3
"""Writes a re-ID embedding network of realistic cost with random weights, for
benchmarks only (its embeddings mean nothing).

Input `crops` [N, 3, 256, 128] (the usual person re-ID crop), output
`embeddings` [N, 256]: a stem and four stride-2 stages of 3x3 convolutions with
ReLU (two per stage), global average pooling and a linear layer, about
0.6 GFLOPs per crop (OSNet x1.0 is about 1 GFLOP, OSNet x0.5 about 0.3).

Usage: make_reid_model.py OUT.onnx
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    rng = np.random.default_rng(7)
    nodes, inits = [], []
    x, c_in, n = "crops", 3, 0

    def conv(x, c_in, c_out, stride):
        nonlocal n
        n += 1
        w = (rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2.0 / (9 * c_in))).astype(np.float32)
        b = np.zeros(c_out, np.float32)
        inits.extend([numpy_helper.from_array(w, f"w{n}"), numpy_helper.from_array(b, f"b{n}")])
        nodes.append(helper.make_node("Conv", [x, f"w{n}", f"b{n}"], [f"c{n}"], pads=[1, 1, 1, 1],
                                      strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [f"c{n}"], [f"r{n}"]))
        return f"r{n}"

    for c_out in [32, 64, 96, 128, 256]:
        x = conv(x, c_in, c_out, 2)
        x = conv(x, c_out, c_out, 1)
        c_in = c_out
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    fc = (rng.standard_normal((c_in, 256)) / np.sqrt(c_in)).astype(np.float32)
    inits.append(numpy_helper.from_array(fc, "fc"))
    nodes.append(helper.make_node("MatMul", ["flat", "fc"], ["embeddings"]))
    graph = helper.make_graph(
        nodes, "reid_cnn_random", [helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["N", 3, 256, 128])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", 256])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="percept benches")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, sys.argv[1])


if __name__ == "__main__":
    main()
