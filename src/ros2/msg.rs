//! The ROS 2 messages percept publishes, as Rust structs whose fields are in
//! the order of their `.msg` definitions: CDR (`super::cdr`) writes the
//! fields in declaration order with no names, so the order *is* the format.
//!
//! Definitions, checked against the `.msg` files of the ROS 2 Jazzy /
//! Humble packages (each struct names its file):
//! `builtin_interfaces` (ros2/rcl_interfaces), `std_msgs`, `geometry_msgs`,
//! `sensor_msgs` (ros2/common_interfaces) and `vision_msgs` 4.1.1
//! (ros-perception/vision_msgs, the version Humble and Jazzy ship).
//!
//! Units follow the messages: pixels for 2D boxes and the camera matrices,
//! seconds and nanoseconds for [`Time`]. `[f64; N]` fields are fixed-size
//! arrays (`float64[N]`, no length on the wire); `Vec` fields are unbounded
//! sequences (`T[]`, a `u32` count first).

use serde::{Deserialize, Serialize};

/// A message type: its ROS 2 name, for the type hash and the key expressions.
pub trait RosMessage: Serialize {
    /// The type's full name, `package/msg/Name` (e.g. `vision_msgs/msg/Detection2DArray`).
    const TYPE_NAME: &'static str;
}

/// `builtin_interfaces/msg/Time` (`int32 sec`, `uint32 nanosec`): a time
/// since the Unix epoch for header stamps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    /// Whole seconds since the epoch.
    pub sec: i32,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanosec: u32,
}

impl Time {
    /// The time of `wall_ns` nanoseconds since the Unix epoch; seconds
    /// saturate at `i32::MAX` (the year 2038 limit of `int32 sec`).
    pub fn from_wall_ns(wall_ns: u64) -> Time {
        Time {
            sec: i32::try_from(wall_ns / 1_000_000_000).unwrap_or(i32::MAX),
            nanosec: (wall_ns % 1_000_000_000) as u32,
        }
    }
}

/// `std_msgs/msg/Header` (`builtin_interfaces/Time stamp`, `string frame_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Acquisition time of the data (for percept: the frame's capture wall time).
    pub stamp: Time,
    /// The coordinate frame of the data (e.g. the camera's optical frame).
    pub frame_id: String,
}

/// `vision_msgs/msg/Point2D` (`float64 x`, `float64 y`): a point in pixel
/// coordinates, x right and y down as in `sensor_msgs/Image`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Point2D {
    /// Column, pixels.
    pub x: f64,
    /// Row, pixels.
    pub y: f64,
}

/// `vision_msgs/msg/Pose2D` (`vision_msgs/Point2D position`, `float64 theta`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pose2D {
    /// Position, pixels.
    pub position: Point2D,
    /// Rotation, radians, counter-clockwise positive (0 for axis-aligned boxes).
    pub theta: f64,
}

/// `vision_msgs/msg/BoundingBox2D` (`vision_msgs/Pose2D center`,
/// `float64 size_x`, `float64 size_y`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox2D {
    /// The box centre, pixels.
    pub center: Pose2D,
    /// Width, pixels.
    pub size_x: f64,
    /// Height, pixels.
    pub size_y: f64,
}

/// `vision_msgs/msg/ObjectHypothesis` (`string class_id`, `float64 score`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectHypothesis {
    /// The class (percept: its name, else its index as a decimal string).
    pub class_id: String,
    /// Confidence, by convention in `[0, 1]`.
    pub score: f64,
}

/// `geometry_msgs/msg/Point` (`float64 x`, `y`, `z`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// x, metres.
    pub x: f64,
    /// y, metres.
    pub y: f64,
    /// z, metres.
    pub z: f64,
}

/// `geometry_msgs/msg/Quaternion` (`float64 x 0`, `y 0`, `z 0`, `w 1`): the
/// `.msg` defaults make the default the identity rotation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quaternion {
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
    /// z.
    pub z: f64,
    /// w.
    pub w: f64,
}

impl Default for Quaternion {
    fn default() -> Self {
        Quaternion {
            x: 0.0,
            y: 0.0,
            z: 0.0,
            w: 1.0,
        }
    }
}

/// `geometry_msgs/msg/Pose` (`Point position`, `Quaternion orientation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// Position, metres.
    pub position: Point,
    /// Orientation.
    pub orientation: Quaternion,
}

/// `geometry_msgs/msg/PoseWithCovariance` (`Pose pose`, `float64[36] covariance`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoseWithCovariance {
    /// The pose.
    pub pose: Pose,
    /// Row-major 6x6 covariance of (x, y, z, rotation about x, y, z).
    #[serde(with = "array36")]
    pub covariance: [f64; 36],
}

impl Default for PoseWithCovariance {
    fn default() -> Self {
        PoseWithCovariance {
            pose: Pose::default(),
            covariance: [0.0; 36],
        }
    }
}

/// `vision_msgs/msg/ObjectHypothesisWithPose` (`ObjectHypothesis
/// hypothesis`, `geometry_msgs/PoseWithCovariance pose`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectHypothesisWithPose {
    /// Class and score.
    pub hypothesis: ObjectHypothesis,
    /// The object's pose (percept: the identity, no 3D pose).
    pub pose: PoseWithCovariance,
}

/// `vision_msgs/msg/Detection2D` (`std_msgs/Header header`,
/// `ObjectHypothesisWithPose[] results`, `BoundingBox2D bbox`, `string id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection2D {
    /// The source image's header.
    pub header: Header,
    /// Class hypotheses (percept: one).
    pub results: Vec<ObjectHypothesisWithPose>,
    /// The box, pixels of the source image.
    pub bbox: BoundingBox2D,
    /// The object's id across messages (percept: the track id), may be empty.
    pub id: String,
}

/// `vision_msgs/msg/Detection2DArray` (`std_msgs/Header header`, `Detection2D[] detections`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection2DArray {
    /// The source image's header.
    pub header: Header,
    /// The detections.
    pub detections: Vec<Detection2D>,
}

impl RosMessage for Detection2DArray {
    const TYPE_NAME: &'static str = "vision_msgs/msg/Detection2DArray";
}

/// `sensor_msgs/msg/RegionOfInterest` (`uint32 x_offset`, `y_offset`,
/// `height`, `width`, `bool do_rectify`); all zero means the full image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionOfInterest {
    /// Leftmost pixel.
    pub x_offset: u32,
    /// Topmost pixel.
    pub y_offset: u32,
    /// Rows, pixels.
    pub height: u32,
    /// Columns, pixels.
    pub width: u32,
    /// Whether the region is to be rectified.
    pub do_rectify: bool,
}

/// `sensor_msgs/msg/CameraInfo` (`std_msgs/Header header`, `uint32 height`,
/// `uint32 width`, `string distortion_model`, `float64[] d`, `float64[9] k`,
/// `float64[9] r`, `float64[12] p`, `uint32 binning_x`, `uint32 binning_y`,
/// `RegionOfInterest roi`). Matrices are row-major.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraInfo {
    /// Stamp and optical frame of the image.
    pub header: Header,
    /// Image rows, pixels.
    pub height: u32,
    /// Image columns, pixels.
    pub width: u32,
    /// `plumb_bob`, `rational_polynomial` or `equidistant` (`sensor_msgs/distortion_models.hpp`).
    pub distortion_model: String,
    /// Distortion coefficients in the model's order.
    pub d: Vec<f64>,
    /// Camera matrix of the distorted image `[fx, 0, cx, 0, fy, cy, 0, 0, 1]`, pixels.
    pub k: [f64; 9],
    /// Rectifying rotation (identity for one camera).
    pub r: [f64; 9],
    /// 3x4 projection of the rectified image, pixels.
    pub p: [f64; 12],
    /// Horizontal binning (0 or 1: none).
    pub binning_x: u32,
    /// Vertical binning (0 or 1: none).
    pub binning_y: u32,
    /// Region of interest (all zero: the full image).
    pub roi: RegionOfInterest,
}

impl RosMessage for CameraInfo {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/CameraInfo";
}

/// Serde for `[f64; 36]` as a fixed-size tuple (serde's own impls stop at 32):
/// no length on the wire, as CDR writes `float64[36]`.
mod array36 {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f64; 36], s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(36)?;
        for x in v {
            t.serialize_element(x)?;
        }
        t.end()
    }

    struct Array36;

    impl<'de> Visitor<'de> for Array36 {
        type Value = [f64; 36];

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("36 float64 values")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[f64; 36], A::Error> {
            let mut out = [0.0; 36];
            for (i, v) in out.iter_mut().enumerate() {
                *v = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(i, &self))?;
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f64; 36], D::Error> {
        d.deserialize_tuple(36, Array36)
    }
}
