//! How `rmw_zenoh` (ROS 2 Jazzy's Zenoh middleware, `rmw_zenoh_cpp`) names
//! things on Zenoh, so a publisher written with any Zenoh library is seen
//! and received by ROS 2 nodes on rmw_zenoh with no bridge: the data key
//! expression of a topic, the liveliness tokens that announce a node and a
//! publisher to the ROS graph, and the attachment of each sample. Strings
//! and bytes only: this module does not depend on Zenoh.
//!
//! Source of the formats: `rmw_zenoh_cpp/src/detail/liveliness_utils.cpp`
//! (`TopicInfo`, `Entity`, `qos_to_keyexpr`, `mangle_name`), `qos.cpp`
//! (the defaults the QoS string is relative to) and `attachment_helpers.cpp`
//! (`AttachmentData::serialize_to_zbytes`) of ros2/rmw_zenoh (the 0.2 line
//! released for Jazzy), with the attachment's byte layout from zenoh-ext's
//! `ZSerializer` (`zenoh-ext/src/serialization.rs`), read for the format only.

use std::fmt::Write as _;

use super::Ros2Error;
use super::hash::type_hash;
use super::msg::RosMessage;

/// The liveliness admin space of rmw_zenoh.
pub const ADMIN_SPACE: &str = "@ros2_lv";

/// Bytes in a source GID (`RMW_GID_STORAGE_SIZE`).
pub const GID_LEN: usize = 16;

/// Bytes in a sample attachment ([`attachment`]).
pub const ATTACHMENT_LEN: usize = 8 + 8 + 1 + GID_LEN;

/// A message type as rmw_zenoh names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosType {
    /// `pkg/msg/Name`.
    pub name: String,
    /// The DDS type name, `pkg::msg::dds_::Name_` (what `rosidl_typesupport`'s
    /// `message_namespace_` and `message_name_` give rmw_zenoh's `_create_type_name`).
    pub dds_name: String,
    /// The RIHS01 type hash, `RIHS01_<64 hex>`.
    pub hash: String,
}

impl RosType {
    /// The names of a message type of [`super::msg`].
    pub fn of<T: RosMessage>() -> Result<RosType, Ros2Error> {
        RosType::named(T::TYPE_NAME)
    }

    /// The names of a type of [`super::hash::TYPES`], by its `pkg/msg/Name`.
    pub fn named(name: &str) -> Result<RosType, Ros2Error> {
        Ok(RosType {
            name: name.to_string(),
            dds_name: dds_type_name(name)?,
            hash: type_hash(name)?,
        })
    }
}

/// `pkg/msg/Name` → `pkg::msg::dds_::Name_`.
pub fn dds_type_name(name: &str) -> Result<String, Ros2Error> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts[..] {
        [pkg, kind, msg] if [pkg, kind, msg].iter().all(|p| is_word(p)) => {
            Ok(format!("{pkg}::{kind}::dds_::{msg}_"))
        }
        _ => Err(Ros2Error::BadTypeName(name.to_string())),
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A name without its one leading and one trailing `/`.
fn inner(name: &str) -> &str {
    let n = name.strip_prefix('/').unwrap_or(name);
    n.strip_suffix('/').unwrap_or(n)
}

/// A ROS name (topic or namespace): `/`-separated words of `[A-Za-z0-9_]`
/// (rcl expands `~` and substitutions before rmw sees a name), or none.
fn check_name(what: &str, name: &str) -> Result<(), Ros2Error> {
    let n = inner(name);
    if n.is_empty() || n.split('/').all(is_word) {
        Ok(())
    } else {
        Err(Ros2Error::BadName(format!("{what} {name:?}")))
    }
}

/// The fully qualified topic name rcl hands rmw_zenoh: a leading `/`
/// added when missing, a trailing one dropped.
fn qualified(topic: &str) -> Result<String, Ros2Error> {
    check_name("topic", topic)?;
    match inner(topic) {
        "" => Err(Ros2Error::BadName("topic is empty".into())),
        t => Ok(format!("/{t}")),
    }
}

/// `/` → `%`, as rmw_zenoh's `mangle_name` does for names inside a
/// liveliness key expression.
fn mangle(name: &str) -> String {
    name.replace('/', "%")
}

/// The key expression a publisher puts its samples on:
/// `<domain_id>/<topic without leading or trailing '/'>/<DDS type name>/<RIHS01 hash>`
/// (rmw_zenoh's `TopicInfo`), e.g. `0/camera/detections/vision_msgs::msg::dds_::Detection2DArray_/RIHS01_…`.
pub fn topic_key_expr(domain_id: u32, topic: &str, ty: &RosType) -> Result<String, Ros2Error> {
    let topic = qualified(topic)?;
    Ok(format!(
        "{domain_id}/{}/{}/{}",
        &topic[1..],
        ty.dds_name,
        ty.hash
    ))
}

/// The node that owns the publishers, as its liveliness tokens name it.
#[derive(Debug, Clone, Copy)]
pub struct NodeInfo<'a> {
    /// ROS domain id (`ROS_DOMAIN_ID`, 0 by default).
    pub domain_id: u32,
    /// The Zenoh session id as Zenoh prints it (`ZenohId`'s `Display`: lowercase hex).
    pub zid: &'a str,
    /// The node's id, unique among the session's entities (rmw_zenoh
    /// draws the ids of nodes and of their publishers from one counter per
    /// context; a publisher's entity id must differ from its node's).
    pub node_id: u64,
    /// The node's namespace, `/` for none, e.g. `/robot1`.
    pub namespace: &'a str,
    /// The node's name, e.g. `percept`.
    pub name: &'a str,
}

impl NodeInfo<'_> {
    /// `@ros2_lv/<domain>/<zid>/<node id>/<entity id>` … `/<enclave>/<namespace>/<name>`
    /// with the enclave `%` (rcl's default enclave `/`, mangled) and the
    /// namespace mangled (`/` → `%`, so the root namespace is `%`).
    fn prefix(&self, entity_id: u64, kind: &str) -> Result<String, Ros2Error> {
        if !is_word(self.zid) || !self.zid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Ros2Error::BadName(format!("zenoh id {:?}", self.zid)));
        }
        if !is_word(self.name) {
            return Err(Ros2Error::BadName(format!("node name {:?}", self.name)));
        }
        check_name("namespace", self.namespace)?;
        let ns = match inner(self.namespace) {
            "" => "%".to_string(),
            ns => mangle(&format!("/{ns}")),
        };
        Ok(format!(
            "{ADMIN_SPACE}/{}/{}/{}/{entity_id}/{kind}/%/{ns}/{}",
            self.domain_id, self.zid, self.node_id, self.name
        ))
    }

    /// The node's liveliness token key expression (entity kind `NN`, its
    /// entity id is its node id): `@ros2_lv/<domain>/<zid>/<nid>/<nid>/NN/%/<namespace>/<name>`.
    pub fn liveliness_key(&self) -> Result<String, Ros2Error> {
        self.prefix(self.node_id, "NN")
    }

    /// A publisher's liveliness token key expression (entity kind `MP`):
    /// the node's, then `/<topic mangled>/<DDS type name>/<RIHS01 hash>/<QoS>`,
    /// e.g. `@ros2_lv/0/<zid>/0/1/MP/%/%/percept/%camera%detections/vision_msgs::msg::dds_::Detection2DArray_/RIHS01_…/::,10:,:,:,,`.
    pub fn publisher_liveliness_key(
        &self,
        entity_id: u64,
        topic: &str,
        ty: &RosType,
        qos: &Qos,
    ) -> Result<String, Ros2Error> {
        let mut key = self.prefix(entity_id, "MP")?;
        let _ = write!(
            key,
            "/{}/{}/{}/{}",
            mangle(&qualified(topic)?),
            ty.dds_name,
            ty.hash,
            qos.key()
        );
        Ok(key)
    }
}

/// Reliability (`rmw_qos_reliability_policy_e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    /// `RELIABLE` (1), rmw_zenoh's default.
    Reliable,
    /// `BEST_EFFORT` (2).
    BestEffort,
}

/// Durability (`rmw_qos_durability_policy_e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `TRANSIENT_LOCAL` (1): late subscribers get the last `depth` samples.
    TransientLocal,
    /// `VOLATILE` (2), rmw_zenoh's default.
    Volatile,
}

/// A keep-last publisher's QoS; deadline, lifespan and liveliness are the
/// defaults (infinite, automatic), as for rclcpp's default publisher QoS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qos {
    /// Reliability.
    pub reliability: Reliability,
    /// Durability.
    pub durability: Durability,
    /// History depth (`KEEP_LAST`); 0 means rmw_zenoh's default, 42.
    pub depth: u32,
}

impl Default for Qos {
    /// rclcpp's default publisher QoS: reliable, volatile, keep last 10.
    fn default() -> Self {
        Qos {
            reliability: Reliability::Reliable,
            durability: Durability::Volatile,
            depth: 10,
        }
    }
}

/// rmw_zenoh's default depth (`RMW_ZENOH_DEFAULT_HISTORY_DEPTH`).
const DEFAULT_DEPTH: u32 = 42;

impl Qos {
    /// The QoS part of a liveliness key expression, as rmw_zenoh's
    /// `qos_to_keyexpr` writes it: `<reliability>:<durability>:<history>,<depth>:<deadline s>,<ns>:<lifespan s>,<ns>:<liveliness>,<lease s>,<ns>`,
    /// each value empty when it equals rmw_zenoh's default (reliable,
    /// volatile, keep last, depth 42, infinite durations, automatic). A
    /// reliable, volatile, keep-last 10 publisher is `::,10:,:,:,,`.
    pub fn key(&self) -> String {
        let reliability = match self.reliability {
            Reliability::Reliable => "",
            Reliability::BestEffort => "2",
        };
        let durability = match self.durability {
            Durability::Volatile => "",
            Durability::TransientLocal => "1",
        };
        let depth = match self.depth {
            0 | DEFAULT_DEPTH => String::new(),
            d => d.to_string(),
        };
        format!("{reliability}:{durability}:,{depth}:,:,:,,")
    }
}

/// The attachment rmw_zenoh reads from every sample (`AttachmentData`):
/// the publisher's sequence number (from 1), the source timestamp
/// (nanoseconds since the Unix epoch) and the publisher's GID, serialised
/// as zenoh-ext's `ZSerializer` does `(i64, i64, [u8; 16])`: each `i64`
/// as 8 little-endian bytes, the array as its length in LEB128 (one byte,
/// `0x10`) and then its 16 bytes; 33 bytes in all, no allocation.
///
/// rmw_zenoh derives its own publishers' GIDs from a hash of their
/// liveliness key expression; a subscriber only uses the GID to tell
/// publishers apart (message info, lost-sample counting), so any 16 bytes
/// fixed for the publisher's lifetime serve.
pub fn attachment(
    sequence_number: i64,
    source_timestamp_ns: i64,
    gid: &[u8; GID_LEN],
) -> [u8; ATTACHMENT_LEN] {
    let mut out = [0; ATTACHMENT_LEN];
    out[..8].copy_from_slice(&sequence_number.to_le_bytes());
    out[8..16].copy_from_slice(&source_timestamp_ns.to_le_bytes());
    out[16] = GID_LEN as u8;
    out[17..].copy_from_slice(gid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ros2::msg::Detection2DArray;

    const ZID: &str = "1234567890abcdef1234567890abcdef";

    fn node() -> NodeInfo<'static> {
        NodeInfo {
            domain_id: 0,
            zid: ZID,
            node_id: 0,
            namespace: "/",
            name: "percept",
        }
    }

    #[test]
    fn dds_type_names() {
        assert_eq!(
            dds_type_name("vision_msgs/msg/Detection2DArray").unwrap(),
            "vision_msgs::msg::dds_::Detection2DArray_"
        );
        assert_eq!(
            dds_type_name("std_msgs/msg/String").unwrap(),
            "std_msgs::msg::dds_::String_"
        );
        assert!(dds_type_name("std_msgs/String").is_err());
        assert!(dds_type_name("a/msg/b*").is_err());
    }

    #[test]
    fn topic_key_expressions() {
        let ty = RosType::of::<Detection2DArray>().unwrap();
        let key = topic_key_expr(7, "/camera/detections/", &ty).unwrap();
        assert_eq!(
            key,
            format!(
                "7/camera/detections/vision_msgs::msg::dds_::Detection2DArray_/{}",
                ty.hash
            )
        );
        assert_eq!(topic_key_expr(7, "camera/detections", &ty).unwrap(), key);
        assert!(topic_key_expr(0, "/", &ty).is_err());
        assert!(topic_key_expr(0, "/a/**", &ty).is_err());
        assert!(topic_key_expr(0, "/a//b", &ty).is_err());
    }

    #[test]
    fn liveliness_key_expressions() {
        assert_eq!(
            node().liveliness_key().unwrap(),
            format!("@ros2_lv/0/{ZID}/0/0/NN/%/%/percept")
        );
        let ns = NodeInfo {
            namespace: "/robot1/front",
            node_id: 3,
            ..node()
        };
        assert_eq!(
            ns.liveliness_key().unwrap(),
            format!("@ros2_lv/0/{ZID}/3/3/NN/%/%robot1%front/percept")
        );
        let ty = RosType {
            name: "std_msgs/msg/String".into(),
            dds_name: "std_msgs::msg::dds_::String_".into(),
            hash: "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18".into(),
        };
        assert_eq!(
            node()
                .publisher_liveliness_key(1, "/chatter", &ty, &Qos::default())
                .unwrap(),
            format!(
                "@ros2_lv/0/{ZID}/0/1/MP/%/%/percept/%chatter/std_msgs::msg::dds_::String_/\
                 RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18/::,10:,:,:,,"
            )
        );
        assert!(
            NodeInfo {
                name: "a/b",
                ..node()
            }
            .liveliness_key()
            .is_err()
        );
        assert!(
            NodeInfo {
                zid: "xyz",
                ..node()
            }
            .liveliness_key()
            .is_err()
        );
    }

    #[test]
    fn qos_strings_are_relative_to_rmw_zenoh_s_defaults() {
        assert_eq!(Qos::default().key(), "::,10:,:,:,,");
        assert_eq!(
            Qos {
                depth: 42,
                ..Qos::default()
            }
            .key(),
            "::,:,:,:,,"
        );
        assert_eq!(
            Qos {
                reliability: Reliability::BestEffort,
                durability: Durability::TransientLocal,
                depth: 1,
            }
            .key(),
            "2:1:,1:,:,:,,"
        );
    }

    #[test]
    fn attachment_bytes_are_hand_worked() {
        let gid: [u8; 16] = std::array::from_fn(|i| 0xa0 + i as u8);
        let a = attachment(1, 1_700_000_000_123_456_789, &gid);
        // 1_700_000_000_123_456_789 = 0x1797_9CFE_3D85_CD15
        #[rustfmt::skip]
        let expected: [u8; 33] = [
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // sequence number, i64 LE
            0x15, 0xcd, 0x85, 0x3d, 0xfe, 0x9c, 0x97, 0x17, // source timestamp, i64 LE
            0x10,                                           // [u8; 16]: LEB128 length 16
            0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
            0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
        ];
        assert_eq!(a, expected);
    }
}
