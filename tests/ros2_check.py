"""Independent check of percept's ROS 2 wire format (src/ros2), with rosbags.

Usage: python tests/ros2_check.py IN.json  (the set-up venv's python)

IN.json: {"<pkg/msg/Name>": {"cdr": "<hex CDR bytes>", "hash": "RIHS01_...",
          "key": "<topic key expression>"}, ...}

Prints one JSON object: for each message name, "decoded" (the fields rosbags
reads from the CDR bytes, nested types as objects, arrays as lists), "hash"
(rosbags' RIHS01 hash of the type), "key_suffix" ("<DDS type name>/<hash>",
how an rmw_zenoh topic key expression ends) and "reserialized_equal" (whether
rosbags writes the decoded message back to the same bytes).

Types: builtin_interfaces, std_msgs, geometry_msgs and sensor_msgs come from
rosbags' own ROS 2 Jazzy type store; vision_msgs 4.1.1 (not in it) is
registered below from its .msg files (ros-perception/vision_msgs, tag 4.1.1,
comments dropped), transcribed independently of src/ros2/hash.rs.
"""

import dataclasses
import json
import sys

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

VISION_MSGS = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/Detection2D": (
        "std_msgs/Header header\nObjectHypothesisWithPose[] results\n"
        "BoundingBox2D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nDetection2D[] detections\n",
}


def plain(value):
    """A rosbags message as JSON-ready Python values."""
    if dataclasses.is_dataclass(value):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.name.startswith("__")  # rosbags' __msgtype__
        }
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def dds_name(name):
    pkg, kind, msg = name.split("/")
    return f"{pkg}::{kind}::dds_::{msg}_"


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        claims = json.load(f)
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for name, text in VISION_MSGS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)

    out = {}
    for name, claim in claims.items():
        raw = bytes.fromhex(claim["cdr"])
        msg = store.deserialize_cdr(raw, name)
        again = bytes(store.serialize_cdr(msg, name, little_endian=True))
        type_hash = store.hash_rihs01(name)
        out[name] = {
            "decoded": plain(msg),
            "hash": type_hash,
            "key_suffix": f"{dds_name(name)}/{type_hash}",
            "reserialized_equal": again == raw,
        }
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
