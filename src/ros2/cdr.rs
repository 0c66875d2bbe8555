//! CDR, the bytes of a ROS 2 message on the wire: the 4-byte encapsulation
//! header `00 01 00 00` (representation `CDR_LE`, i.e. XCDR1 / PLAIN_CDR
//! little-endian, options 0), then the fields in definition order, each
//! aligned to its own size counted from the end of the header; strings as
//! a `u32` length including a NUL terminator, then the bytes and the NUL;
//! sequences as a `u32` count, then the elements; fixed arrays without a
//! count. This is what rmw_zenoh (through Fast-CDR) writes and reads.
//!
//! The body is written by the `cdr-encoding` crate (RustDDS's).

use byteorder::LittleEndian;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Ros2Error;

/// The encapsulation header of little-endian plain CDR (`CDR_LE`).
pub const CDR_LE_HEADER: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

/// Replaces `out` with the CDR encoding of `msg` (header and body). `out` is
/// reused: once its capacity holds a message, encoding allocates nothing
/// (`cdr-encoding` writes through `io::Write` into the `Vec`).
pub fn encode<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), Ros2Error> {
    out.clear();
    out.extend_from_slice(&CDR_LE_HEADER);
    cdr_encoding::to_writer::<T, LittleEndian, _>(&mut *out, msg)
        .map_err(|e| Ros2Error::Cdr(e.to_string()))
}

/// Decodes a message written by [`encode`] (or any little-endian plain CDR
/// with its header). Big-endian or XCDR2 payloads are refused.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Ros2Error> {
    match bytes.split_first_chunk::<4>() {
        Some((header, body)) if *header == CDR_LE_HEADER => {
            cdr_encoding::from_bytes::<T, LittleEndian>(body)
                .map(|(msg, _)| msg)
                .map_err(|e| Ros2Error::Cdr(e.to_string()))
        }
        _ => Err(Ros2Error::Cdr(format!(
            "not little-endian plain CDR (header {:02x?})",
            &bytes[..bytes.len().min(4)]
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ros2::msg::{Header, Time};

    #[test]
    fn header_bytes_are_hand_worked() {
        let h = Header {
            stamp: Time { sec: 1, nanosec: 2 },
            frame_id: "cam".into(),
        };
        let mut out = Vec::new();
        encode(&h, &mut out).unwrap();
        #[rustfmt::skip]
        let expected = [
            0x00, 0x01, 0x00, 0x00, // encapsulation: CDR_LE
            0x01, 0x00, 0x00, 0x00, // sec
            0x02, 0x00, 0x00, 0x00, // nanosec
            0x04, 0x00, 0x00, 0x00, // string length, with the NUL
            b'c', b'a', b'm', 0x00,
        ];
        assert_eq!(out, expected);
        assert_eq!(decode::<Header>(&out).unwrap(), h);
    }

    #[test]
    fn alignment_counts_from_the_end_of_the_header() {
        // A string of 2 (+NUL) ends at body offset 7: one byte of padding
        // puts the f64 at body offset 8 (file offset 12, not a multiple of 8).
        #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
        struct S {
            s: String,
            x: f64,
        }
        let mut out = Vec::new();
        encode(
            &S {
                s: "ab".into(),
                x: 1.0,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[4..12], &[3, 0, 0, 0, b'a', b'b', 0, 0]);
        assert_eq!(&out[12..], &1.0f64.to_le_bytes());
    }

    #[test]
    fn other_encapsulations_are_refused() {
        assert!(decode::<Time>(&[0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]).is_err());
        assert!(decode::<Time>(&[0, 1]).is_err());
    }
}
