//! The ROS 2 wire format of percept's results, for a publisher that speaks
//! to ROS 2 nodes on `rmw_zenoh` directly: messages ([`msg`]), their CDR
//! bytes ([`cdr`]), their RIHS01 type hashes ([`hash`]), rmw_zenoh's key
//! expressions, liveliness tokens and sample attachment ([`rmw_zenoh`]),
//! and the messages of a frame's record and a stream's calibration
//! ([`convert`]). Pure functions over strings and bytes: no Zenoh here; the
//! `zenoh` sink puts these bytes on these keys.
//!
//! A publisher of `Detection2DArray` on `/camera/detections` declares the
//! liveliness tokens [`rmw_zenoh::NodeInfo::liveliness_key`] and
//! [`rmw_zenoh::NodeInfo::publisher_liveliness_key`], then puts each
//! frame's [`Ros2Messages::detections`] bytes on
//! [`rmw_zenoh::topic_key_expr`] with the [`rmw_zenoh::attachment`] of
//! its sequence number, the frame's capture wall time and its GID.

pub mod cdr;
pub mod convert;
pub mod hash;
pub mod msg;
pub mod rmw_zenoh;

pub use convert::{Ros2Messages, camera_info, detection_array};
pub use hash::type_hash;
pub use msg::{CameraInfo, Detection2DArray, RosMessage};
pub use rmw_zenoh::{NodeInfo, Qos, RosType, attachment, topic_key_expr};

/// What building ROS 2 names and bytes can fail on.
#[derive(Debug, thiserror::Error)]
pub enum Ros2Error {
    /// The CDR encoder or decoder refused a value or payload.
    #[error("CDR: {0}")]
    Cdr(String),
    /// A type with no definition in [`hash::TYPES`].
    #[error("no definition of ROS 2 type {0}")]
    UnknownType(String),
    /// A type name that is not `pkg/msg/Name` of `[A-Za-z0-9_]` words.
    #[error("bad ROS 2 type name {0:?}")]
    BadTypeName(String),
    /// A topic, namespace, node name or Zenoh id that cannot be part of a key expression.
    #[error("bad ROS 2 name: {0}")]
    BadName(String),
}
