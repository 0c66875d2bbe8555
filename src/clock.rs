//! Time: the monotonic clock used for latencies and deadlines, and wall-clock
//! time for output records only.
//!
//! `monotonic_ns` is CLOCK_MONOTONIC through GStreamer, the same timeline as
//! GStreamer's default system clock, so a live source's capture time
//! (`base_time + running_time`) can be compared with it directly.

use std::time::{SystemTime, UNIX_EPOCH};

use gstreamer as gst;

/// Nanoseconds on the monotonic clock.
pub fn monotonic_ns() -> u64 {
    gst::get_timestamp().nseconds()
}

/// Nanoseconds since the Unix epoch (wall clock, for people).
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Wall-clock time of a past monotonic instant.
pub fn wall_ns_of(monotonic: u64) -> u64 {
    let now_mono = monotonic_ns();
    wall_ns().saturating_sub(now_mono.saturating_sub(monotonic))
}
