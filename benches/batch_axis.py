"""Writes a copy of an ONNX detector with a dynamic batch axis ("N") and
checks it: every Reshape gets a constant target shape whose leading 1 becomes
0 (copy the batch dimension), the graph's inputs and outputs get "N" as their
first dimension, and a batch of 3 random images must give each image's outputs
of the original model to 1e-4. Made for the NanoDet-m of scripts/fetch_models.sh
(its six head Reshapes compute their shapes from a constant batch of 1); a
model that mixes the batch into other axes (CenterNet's top-k over a flattened
map) fails the check and nothing is written.

Usage: python batch_axis.py IN.onnx OUT.onnx   (onnx, onnxruntime, numpy)
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def main():
    src, dst = sys.argv[1], sys.argv[2]
    model = onnx.load(src)
    graph = model.graph
    reshapes = [n for n in graph.node if n.op_type == "Reshape"]
    # The shapes the Reshapes produce on a batch of one, from a run of the original.
    probe = onnx.load(src)
    known = {o.name for o in probe.graph.output}
    for n in reshapes:
        if n.output[0] not in known:
            probe.graph.output.append(onnx.ValueInfoProto(name=n.output[0]))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    one = np.random.default_rng(0).random([1] + list(inp.shape[1:]), dtype=np.float32)
    names = [o.name for o in session.get_outputs()]
    shapes = dict(zip(names, (v.shape for v in session.run(None, {inp.name: one}))))
    for i, n in enumerate(reshapes):
        shape = list(shapes[n.output[0]])
        if shape[0] != 1:
            sys.exit(f"{src}: Reshape {n.name} gives {shape}: its first axis is not the batch")
        name = f"batch_axis_shape_{i}"
        graph.initializer.append(numpy_helper.from_array(np.array([0] + shape[1:], np.int64), name))
        n.input[1] = name
    for value in list(graph.input) + list(graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    del graph.value_info[:]
    onnx.checker.check_model(model)
    original = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    batched = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(1).random([3] + list(inp.shape[1:]), dtype=np.float32)
    together = batched.run(None, {inp.name: images})
    worst = 0.0
    for i in range(3):
        alone = original.run(None, {inp.name: images[i:i + 1]})
        for a, b in zip(alone, together):
            if a.shape != b[i:i + 1].shape:
                sys.exit(f"{src}: output shape {b.shape} in a batch of 3, {a.shape} alone")
            worst = max(worst, float(np.abs(a - b[i:i + 1]).max()))
    if worst > 1e-4:
        sys.exit(f"{src}: a batch of 3 differs from single runs by {worst}")
    onnx.save(model, dst)
    print(f"{dst}: batch axis N; a batch of 3 matches single runs to {worst:.2g}")


if __name__ == "__main__":
    main()
