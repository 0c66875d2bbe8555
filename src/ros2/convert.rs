//! percept's results as ROS 2 messages: a frame's boxes as a
//! `vision_msgs/Detection2DArray`, a stream's calibration as a
//! `sensor_msgs/CameraInfo`.
//!
//! [`Ros2Messages`] refills one message of each kind in place and encodes
//! it into one reused buffer, so in steady state (no more boxes than an
//! earlier frame had, labels no longer than before) a frame allocates
//! nothing: strings and vectors keep their capacity, and detections beyond
//! this frame's count wait in a spare list instead of being dropped.

use std::fmt::Write as _;

use super::Ros2Error;
use super::cdr;
use super::msg::{
    BoundingBox2D, CameraInfo, Detection2D, Detection2DArray, Header, ObjectHypothesisWithPose,
    Point2D, Pose2D, PoseWithCovariance, RegionOfInterest, Time,
};
use crate::overlay::{BoxView, boxes};
use crate::record::{self, Record};

fn set_header(h: &mut Header, capture_wall_ns: u64, frame_id: &str) {
    h.stamp = Time::from_wall_ns(capture_wall_ns);
    h.frame_id.clear();
    h.frame_id.push_str(frame_id);
}

fn fill_detection(d: &mut Detection2D, b: &BoxView<'_>, header: &Header) {
    d.header.stamp = header.stamp;
    d.header.frame_id.clear();
    d.header.frame_id.push_str(&header.frame_id);
    let [x1, y1, x2, y2] = b.bbox.map(f64::from);
    d.bbox = BoundingBox2D {
        center: Pose2D {
            position: Point2D {
                x: (x1 + x2) / 2.0,
                y: (y1 + y2) / 2.0,
            },
            theta: 0.0,
        },
        size_x: x2 - x1,
        size_y: y2 - y1,
    };
    d.id.clear();
    if let Some(id) = b.track_id {
        let _ = write!(d.id, "{id}");
    }
    d.results.truncate(1);
    if d.results.is_empty() {
        d.results.push(ObjectHypothesisWithPose::default());
    }
    let r = &mut d.results[0];
    r.pose = PoseWithCovariance::default();
    r.hypothesis.score = f64::from(b.score);
    let class = &mut r.hypothesis.class_id;
    class.clear();
    if b.class.is_empty() {
        let _ = write!(class, "{}", b.class_id);
    } else {
        class.push_str(b.class);
    }
}

/// Refills `out` with the boxes of a frame's `record` (its tracks when a
/// tracker ran, else its detections), stamped `capture_wall_ns` (ns since
/// the Unix epoch) in frame `frame_id`. Each detection has the array's
/// header, its box's centre and size in pixels of the frame (`theta` 0),
/// `id` the track id in decimal (empty without tracking), and one result:
/// `class_id` the class name (its index in decimal when it has none), the
/// score, and an identity pose with zero covariance. Detections `out` no
/// longer needs go to `spare`, and are taken back from it first.
pub fn fill_detection_array(
    record: &Record,
    capture_wall_ns: u64,
    frame_id: &str,
    out: &mut Detection2DArray,
    spare: &mut Vec<Detection2D>,
) {
    set_header(&mut out.header, capture_wall_ns, frame_id);
    let mut n = 0;
    for b in boxes(record) {
        if n == out.detections.len() {
            out.detections.push(spare.pop().unwrap_or_default());
        }
        fill_detection(&mut out.detections[n], &b, &out.header);
        n += 1;
    }
    spare.extend(out.detections.drain(n..));
}

/// The `Detection2DArray` of a frame (see [`fill_detection_array`]); a new message.
pub fn detection_array(record: &Record, capture_wall_ns: u64, frame_id: &str) -> Detection2DArray {
    let mut out = Detection2DArray::default();
    fill_detection_array(record, capture_wall_ns, frame_id, &mut out, &mut Vec::new());
    out
}

/// The ROS name of a distortion model: percept's (and Foxglove's)
/// `kannala_brandt`, OpenCV's fisheye model, is ROS's `equidistant`
/// (`sensor_msgs/distortion_models.hpp`; image_geometry undistorts it with
/// `cv::fisheye`); `plumb_bob` (k1, k2, p1, p2, k3) and `rational_polynomial`
/// are the same in both.
pub fn ros_distortion_model(model: &str) -> &str {
    match model {
        "kannala_brandt" => "equidistant",
        other => other,
    }
}

/// Refills `out` with a stream's calibration, stamped `capture_wall_ns`
/// in frame `frame_id`: size, distortion model (ROS's name) and
/// coefficients, `k`, `r`, `p` as calibrated; no binning, the full image as
/// region of interest.
pub fn fill_camera_info(
    camera: &record::CameraInfo,
    capture_wall_ns: u64,
    frame_id: &str,
    out: &mut CameraInfo,
) {
    set_header(&mut out.header, capture_wall_ns, frame_id);
    out.height = camera.height;
    out.width = camera.width;
    out.distortion_model.clear();
    out.distortion_model
        .push_str(ros_distortion_model(camera.distortion_model));
    out.d.clear();
    out.d.extend_from_slice(&camera.d);
    out.k = camera.k;
    out.r = camera.r;
    out.p = camera.p;
    out.binning_x = 0;
    out.binning_y = 0;
    out.roi = RegionOfInterest::default();
}

/// The `CameraInfo` of a calibration (see [`fill_camera_info`]); a new message.
pub fn camera_info(
    camera: &record::CameraInfo,
    capture_wall_ns: u64,
    frame_id: &str,
) -> CameraInfo {
    let mut out = CameraInfo::default();
    fill_camera_info(camera, capture_wall_ns, frame_id, &mut out);
    out
}

/// Builds and encodes a stream's ROS 2 messages into buffers it reuses
/// (see the module docs); one per stream or per sink thread.
#[derive(Debug, Default)]
pub struct Ros2Messages {
    detections: Detection2DArray,
    spare: Vec<Detection2D>,
    camera: CameraInfo,
    buf: Vec<u8>,
}

impl Ros2Messages {
    /// An empty builder.
    pub fn new() -> Ros2Messages {
        Ros2Messages {
            buf: Vec::with_capacity(4096),
            ..Ros2Messages::default()
        }
    }

    /// The CDR bytes (with the encapsulation header) of the frame's
    /// `Detection2DArray` ([`fill_detection_array`]); valid until the next call.
    pub fn detections(
        &mut self,
        record: &Record,
        capture_wall_ns: u64,
        frame_id: &str,
    ) -> Result<&[u8], Ros2Error> {
        fill_detection_array(
            record,
            capture_wall_ns,
            frame_id,
            &mut self.detections,
            &mut self.spare,
        );
        cdr::encode(&self.detections, &mut self.buf)?;
        Ok(&self.buf)
    }

    /// The CDR bytes of a calibration's `CameraInfo` ([`fill_camera_info`]);
    /// valid until the next call.
    pub fn camera_info(
        &mut self,
        camera: &record::CameraInfo,
        capture_wall_ns: u64,
        frame_id: &str,
    ) -> Result<&[u8], Ros2Error> {
        fill_camera_info(camera, capture_wall_ns, frame_id, &mut self.camera);
        cdr::encode(&self.camera, &mut self.buf)?;
        Ok(&self.buf)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pool::Pooled;
    use crate::record::{Detection, TrackOut, TrackState};

    fn detection(bbox: [f32; 4], class_id: u32, class: &str, score: f32) -> Detection {
        Detection {
            bbox,
            class_id,
            class: Arc::from(class),
            score,
            position: None,
        }
    }

    fn track(id: u64, bbox: [f32; 4], class: &str, score: f32) -> TrackOut {
        TrackOut {
            id,
            bbox,
            class_id: 0,
            class: Arc::from(class),
            score,
            velocity_px_s: [0.0; 2],
            age_s: 1.0,
            state: TrackState::Confirmed,
            predicted: false,
            position: None,
            forecast: None,
        }
    }

    fn record(detections: Vec<Detection>, tracks: Option<Vec<TrackOut>>) -> Record {
        let mut r = Record::default();
        let mut d = Pooled::default();
        detections.into_iter().for_each(|x| d.push(x));
        r.detections = Some(d);
        r.tracks = tracks.map(|ts| {
            let mut t = Pooled::default();
            ts.into_iter().for_each(|x| t.push(x));
            t
        });
        r
    }

    #[test]
    fn detections_without_tracks() {
        let r = record(
            vec![
                detection([10.0, 20.0, 30.0, 60.0], 0, "person", 0.75),
                detection([0.5, 0.5, 1.5, 2.5], 7, "", 0.5),
            ],
            None,
        );
        let m = detection_array(&r, 1_700_000_000_123_456_789, "cam0");
        assert_eq!(
            m.header.stamp,
            Time {
                sec: 1_700_000_000,
                nanosec: 123_456_789
            }
        );
        assert_eq!(m.header.frame_id, "cam0");
        assert_eq!(m.detections.len(), 2);
        let d = &m.detections[0];
        assert_eq!(d.header, m.header);
        assert_eq!(d.bbox.center.position, Point2D { x: 20.0, y: 40.0 });
        assert_eq!(
            (d.bbox.size_x, d.bbox.size_y, d.bbox.center.theta),
            (20.0, 40.0, 0.0)
        );
        assert_eq!(d.id, "");
        assert_eq!(d.results.len(), 1);
        assert_eq!(d.results[0].hypothesis.class_id, "person");
        assert_eq!(d.results[0].hypothesis.score, 0.75);
        assert_eq!(d.results[0].pose.pose.orientation.w, 1.0);
        assert_eq!(m.detections[1].results[0].hypothesis.class_id, "7");
    }

    #[test]
    fn tracks_replace_detections() {
        let r = record(
            vec![detection([1.0, 1.0, 2.0, 2.0], 0, "person", 0.9)],
            Some(vec![track(42, [100.0, 50.0, 140.0, 130.0], "car", 0.625)]),
        );
        let m = detection_array(&r, 5, "f");
        assert_eq!(m.detections.len(), 1);
        assert_eq!(m.detections[0].id, "42");
        assert_eq!(m.detections[0].results[0].hypothesis.class_id, "car");
        assert_eq!(
            m.detections[0].bbox.center.position,
            Point2D { x: 120.0, y: 90.0 }
        );
    }

    #[test]
    fn refilling_reuses_and_round_trips() {
        let mut b = Ros2Messages::new();
        let three = record(
            (0..3)
                .map(|i| detection([0.0, 0.0, 4.0 + i as f32, 4.0], i, "thing", 0.5))
                .collect(),
            None,
        );
        let one = record(vec![detection([0.0, 0.0, 8.0, 8.0], 1, "x", 0.25)], None);
        b.detections(&three, 1, "a").unwrap();
        let bytes = b.detections(&one, 2, "a").unwrap().to_vec();
        assert_eq!(b.spare.len(), 2);
        let decoded: Detection2DArray = cdr::decode(&bytes).unwrap();
        assert_eq!(decoded, detection_array(&one, 2, "a"));
        let again = b.detections(&three, 3, "a").unwrap().to_vec();
        assert_eq!(b.spare.len(), 0);
        assert_eq!(
            cdr::decode::<Detection2DArray>(&again).unwrap(),
            detection_array(&three, 3, "a")
        );
    }

    #[test]
    fn camera_info_from_calibration() {
        let cam = record::CameraInfo {
            width: 640,
            height: 480,
            distortion_model: "kannala_brandt",
            d: vec![0.1, -0.01, 0.001, 0.0001],
            k: [500.0, 0.0, 320.0, 0.0, 501.0, 240.0, 0.0, 0.0, 1.0],
            r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            p: [
                500.0, 0.0, 320.0, 0.0, 0.0, 501.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0,
            ],
        };
        let mut b = Ros2Messages::new();
        let bytes = b.camera_info(&cam, 2_000_000_001, "cam0").unwrap().to_vec();
        let m: CameraInfo = cdr::decode(&bytes).unwrap();
        assert_eq!(m.distortion_model, "equidistant");
        assert_eq!((m.width, m.height), (640, 480));
        assert_eq!(m.header.stamp, Time { sec: 2, nanosec: 1 });
        assert_eq!(m.d, cam.d);
        assert_eq!((m.k, m.r, m.p), (cam.k, cam.r, cam.p));
        assert_eq!(m.roi, RegionOfInterest::default());
    }
}
