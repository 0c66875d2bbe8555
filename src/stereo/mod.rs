//! Stereo: pairing two streams by time ([`Pairer`], [`pair_loop`]) and
//! splitting side-by-side frames ([`SideBySide`], [`split_loop`]). The
//! `stereo_depth` stage that works on the pairs is in
//! [`crate::stages::stereo_depth`].
//!
//! Each left frame is paired with the right frame nearest in time within
//! `max_skew`; a frame that cannot be paired is dropped and counted
//! (`unpaired`). Times are PTS for recordings and the pipeline clock's
//! capture time for live sources. With live sources a frame waits at most
//! `max_wait` for its partner; recordings are paired losslessly.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gstreamer_video as gst_video;

use crate::clock;
use crate::edge::{EdgeRx, Outputs};
use crate::frame::{CaptureClock, Frame};
pub use crate::meter::PairStats;
use crate::record::{PairClock, PairInfo, Work};

/// How often a pairing thread with nothing to read checks its waiting frames.
const PAIR_TICK: Duration = Duration::from_millis(5);

/// Frames kept per side while waiting for a partner.
const MAX_PENDING: usize = 16;

/// Pairing parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairSettings {
    /// Largest |right − left| time of a pair, ns.
    pub max_skew_ns: u64,
    /// `None`: wait as long as it takes (recordings).
    pub max_wait_ns: Option<u64>,
}

/// A frame's time for pairing, and which clock it is on.
fn time_of(frame: &Frame) -> (i64, PairClock) {
    if let Some(ntp) = frame.meta.ntp_ns {
        return (ntp as i64, PairClock::Ntp);
    }
    match (frame.meta.capture_clock, frame.meta.pts_ns) {
        (CaptureClock::Pipeline | CaptureClock::Sender, _) | (_, None) => {
            (frame.meta.capture_ns as i64, PairClock::Pipeline)
        }
        (CaptureClock::Arrival, Some(pts)) => (pts as i64, PairClock::Pts),
    }
}

struct Pending {
    work: Work,
    t: i64,
    arrived_ns: u64,
}

/// Pairs two time-ordered streams. Feed it with [`Pairer::push`], then
/// [`Pairer::poll`] hands out the pairs that are ready.
pub struct Pairer {
    id: Arc<str>,
    settings: PairSettings,
    sides: [VecDeque<Pending>; 2],
    ended: [bool; 2],
    seq: u64,
    stats: Arc<PairStats>,
}

/// Left or right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The left view.
    Left = 0,
    /// The right view.
    Right = 1,
}

impl Pairer {
    /// A pairer for the pair `id`.
    pub fn new(id: &str, settings: PairSettings, stats: Arc<PairStats>) -> Pairer {
        Pairer {
            id: Arc::from(id),
            settings,
            sides: [VecDeque::new(), VecDeque::new()],
            ended: [false, false],
            seq: 0,
            stats,
        }
    }

    /// Adds a frame of one side, arrived at `now_ns` (monotonic).
    pub fn push(&mut self, side: Side, work: Work, now_ns: u64) {
        if self.sides[side as usize].len() >= MAX_PENDING {
            self.drop_front(side);
        }
        let (t, _) = time_of(&work.frame);
        self.sides[side as usize].push_back(Pending {
            work,
            t,
            arrived_ns: now_ns,
        });
    }

    /// Whether a side has room for another frame; a reader that respects this
    /// gives recordings backpressure instead of drops.
    pub fn wants(&self, side: Side) -> bool {
        self.sides[side as usize].len() < MAX_PENDING
    }

    /// Marks a side as finished: its partner frames stop waiting for it.
    pub fn end(&mut self, side: Side) {
        self.ended[side as usize] = true;
    }

    /// Both sides ended and nothing is pending.
    pub fn done(&self) -> bool {
        self.ended == [true, true] && self.sides.iter().all(VecDeque::is_empty)
    }

    fn unpaired(&self, side: Side, n: u64) {
        let c = match side {
            Side::Left => &self.stats.unpaired_left,
            Side::Right => &self.stats.unpaired_right,
        };
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn drop_front(&mut self, side: Side) {
        self.sides[side as usize].pop_front();
        self.unpaired(side, 1);
    }

    fn expired(&self, p: &Pending, now_ns: u64) -> bool {
        self.settings
            .max_wait_ns
            .is_some_and(|w| now_ns.saturating_sub(p.arrived_ns) > w)
    }

    /// Emits every pair that is ready at `now_ns` and drops frames that can
    /// no longer be paired.
    pub fn poll(&mut self, now_ns: u64, mut emit: impl FnMut(Work)) {
        let skew = self.settings.max_skew_ns as i64;
        loop {
            let (l, r) = (self.sides[0].front(), self.sides[1].front());
            match (l, r) {
                (Some(l), Some(r)) => {
                    let d = r.t - l.t;
                    if d < -skew {
                        // Too old for this left frame and for every later one.
                        self.drop_front(Side::Right);
                        continue;
                    }
                    if d > skew {
                        self.drop_front(Side::Left);
                        continue;
                    }
                    if let Some(r2) = self.sides[1].get(1)
                        && (r2.t - l.t).abs() < d.abs()
                    {
                        self.drop_front(Side::Right);
                        continue;
                    }
                    // A right frame before the left one: a later right frame may be nearer.
                    let may_improve = d < 0 && self.sides[1].len() == 1 && !self.ended[1];
                    if may_improve && !self.expired(l, now_ns) {
                        return;
                    }
                    self.emit_pair(d, &mut emit);
                }
                (Some(l), None) => {
                    if self.ended[1] || self.expired(l, now_ns) {
                        self.drop_front(Side::Left);
                        continue;
                    }
                    return;
                }
                (None, Some(r)) => {
                    if self.ended[0] || self.expired(r, now_ns) {
                        self.drop_front(Side::Right);
                        continue;
                    }
                    return;
                }
                (None, None) => return,
            }
        }
    }

    fn emit_pair(&mut self, skew_ns: i64, emit: &mut impl FnMut(Work)) {
        let (Some(left), Some(right)) = (self.sides[0].pop_front(), self.sides[1].pop_front())
        else {
            return;
        };
        let (_, clock) = time_of(&left.work.frame);
        let mut work = left.work;
        let info = PairInfo {
            left_seq: work.frame.meta.seq,
            right_seq: right.work.frame.meta.seq,
            skew_ns,
            clock,
        };
        work.frame.meta.stream = self.id.clone();
        work.frame.meta.seq = self.seq;
        work.frame.right = Some(Arc::new(right.work.frame));
        work.record.pair = Some(info);
        self.seq += 1;
        self.stats.pairs.fetch_add(1, Ordering::Relaxed);
        self.stats.skew.record_ns(skew_ns.unsigned_abs());
        emit(work);
    }
}

/// Splits a side-by-side frame into its left and right halves without
/// copying: both views share the buffer, the right one at an offset.
pub struct SideBySide {
    id: Arc<str>,
    layout: Option<(Arc<gst_video::VideoInfo>, Arc<gst_video::VideoInfo>)>,
    stats: Arc<PairStats>,
}

impl SideBySide {
    /// A splitter for the pair `id`.
    pub fn new(id: &str, stats: Arc<PairStats>) -> SideBySide {
        SideBySide {
            id: Arc::from(id),
            layout: None,
            stats,
        }
    }

    /// The halves' layouts for a frame layout (packed formats only).
    /// `layout`: the buffer's own (stride, offset) of plane 0 when it carries
    /// a `GstVideoMeta` (decoders that pad rows), else the caps'.
    fn halves(
        info: &gst_video::VideoInfo,
        layout: Option<(i32, usize)>,
    ) -> Result<(gst_video::VideoInfo, gst_video::VideoInfo), String> {
        let finfo = info.format_info();
        if finfo.n_planes() != 1 {
            return Err(format!(
                "side-by-side stereo needs a packed format (RGB, BGR, RGBA, BGRA, GRAY8), not {}",
                info.format()
            ));
        }
        let bpp = finfo.pixel_stride()[0] as usize;
        let half = info.width() / 2;
        let (stride, base) = layout.unwrap_or((info.stride()[0], info.offset()[0]));
        let build = |offset: usize| {
            gst_video::VideoInfo::builder(info.format(), half, info.height())
                .stride(&[stride])
                .offset(&[base + offset])
                .fps(info.fps())
                .build()
                .map_err(|e| e.to_string())
        };
        Ok((build(0)?, build(half as usize * bpp)?))
    }

    /// Turns one side-by-side frame into a pair.
    pub fn split(&mut self, mut work: Work) -> Result<Work, String> {
        // A buffer's `GstVideoMeta` overrides the layout the views are read
        // with, so it goes (a shallow copy: the pixels stay shared) and its
        // stride and offset move into the halves' layouts.
        let meta = work
            .frame
            .buffer
            .meta::<gst_video::VideoMeta>()
            .map(|m| (m.stride()[0], m.offset()[0]));
        if meta.is_some() {
            let buffer = work.frame.buffer.make_mut();
            if let Some(m) = buffer.meta_mut::<gst_video::VideoMeta>() {
                m.remove().map_err(|e| e.to_string())?;
            }
        }
        let same = self.layout.as_ref().is_some_and(|(l, _)| {
            l.height() == work.frame.info.height()
                && meta.is_none_or(|(stride, offset)| {
                    l.stride()[0] == stride && l.offset()[0] == offset
                })
        });
        if !same {
            let (l, r) = Self::halves(&work.frame.info, meta)?;
            self.layout = Some((Arc::new(l), Arc::new(r)));
        }
        let Some((l, r)) = &self.layout else {
            return Err("no layout".into());
        };
        let mut right = work.frame.clone();
        right.info = r.clone();
        work.frame.info = l.clone();
        work.record.pair = Some(PairInfo {
            left_seq: work.frame.meta.seq,
            right_seq: work.frame.meta.seq,
            skew_ns: 0,
            clock: time_of(&work.frame).1,
        });
        work.frame.meta.stream = self.id.clone();
        work.frame.right = Some(Arc::new(right));
        self.stats.pairs.fetch_add(1, Ordering::Relaxed);
        self.stats.skew.record_ns(0);
        Ok(work)
    }
}

/// Pairs two edges' frames by time until both end (see [`Pairer`]).
pub fn pair_loop(mut pairer: Pairer, left: &EdgeRx, right: &EdgeRx, out: &Outputs) {
    let mut ended = [false, false];
    let mut closed = false;
    while !pairer.done() && !closed {
        let never = crossbeam_channel::never();
        let l = if ended[0] || !pairer.wants(Side::Left) {
            &never
        } else {
            left.receiver()
        };
        let r = if ended[1] || !pairer.wants(Side::Right) {
            &never
        } else {
            right.receiver()
        };
        crossbeam_channel::select! {
            recv(l) -> m => match m {
                Ok(w) => pairer.push(Side::Left, w, clock::monotonic_ns()),
                Err(_) => { ended[0] = true; pairer.end(Side::Left); }
            },
            recv(r) -> m => match m {
                Ok(w) => pairer.push(Side::Right, w, clock::monotonic_ns()),
                Err(_) => { ended[1] = true; pairer.end(Side::Right); }
            },
            default(PAIR_TICK) => {}
        }
        pairer.poll(clock::monotonic_ns(), |w| closed |= out.send(w).is_err());
    }
}

/// Splits every side-by-side frame of an edge into a pair until the edge ends.
pub fn split_loop(mut split: SideBySide, rx: &EdgeRx, out: &Outputs) -> Result<(), String> {
    while let Some(work) = rx.recv() {
        if out.send(split.split(work)?).is_err() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use gstreamer_video::VideoFormat;
    use gstreamer_video::prelude::*;

    fn work(seq: u64, pts_ms: u64) -> Work {
        gstreamer::init().unwrap();
        let info = gst_video::VideoInfo::builder(VideoFormat::Gray8, 4, 2)
            .build()
            .unwrap();
        let mut frame = crate::frame::test_frame(info, vec![0; 8], seq);
        frame.meta.pts_ns = Some(pts_ms * 1_000_000);
        Work {
            frame,
            record: Record::default(),
        }
    }

    fn run(left: &[u64], right: &[u64], skew_ms: u64) -> (Vec<(u64, u64, i64)>, u64, u64) {
        let stats = Arc::new(PairStats::default());
        let mut p = Pairer::new(
            "pair",
            PairSettings {
                max_skew_ns: skew_ms * 1_000_000,
                max_wait_ns: None,
            },
            stats.clone(),
        );
        let mut out = Vec::new();
        let mut emit = |w: Work| {
            let i = w.record.pair.unwrap();
            assert_eq!(&*w.frame.meta.stream, "pair");
            assert!(w.frame.right.is_some());
            out.push((i.left_seq, i.right_seq, i.skew_ns / 1_000_000));
        };
        // Interleave arrivals: right runs ahead.
        let (mut li, mut ri) = (0, 0);
        while li < left.len() || ri < right.len() {
            if ri < right.len() {
                p.push(Side::Right, work(ri as u64, right[ri]), 0);
                ri += 1;
            }
            if ri >= 2 && li < left.len() || ri >= right.len() && li < left.len() {
                p.push(Side::Left, work(li as u64, left[li]), 0);
                li += 1;
            }
            p.poll(0, &mut emit);
        }
        p.end(Side::Left);
        p.end(Side::Right);
        p.poll(0, &mut emit);
        assert!(p.done());
        let (ul, ur) = (
            stats.unpaired_left.load(Ordering::Relaxed),
            stats.unpaired_right.load(Ordering::Relaxed),
        );
        assert_eq!(out.len() as u64 + ul, left.len() as u64);
        assert_eq!(out.len() as u64 + ur, right.len() as u64);
        (out, ul, ur)
    }

    #[test]
    fn pairs_each_left_frame_with_the_nearest_right_frame_within_the_skew() {
        // Right is 3 ms late and lost its frames at 200 and 300 ms.
        let left = [0, 100, 200, 300, 400];
        let right = [3, 103, 403, 503];
        let (pairs, ul, ur) = run(&left, &right, 5);
        assert_eq!(pairs, vec![(0, 0, 3), (1, 1, 3), (4, 2, 3)]);
        assert_eq!((ul, ur), (2, 1));
        // The nearest wins, not the first within the skew.
        let (pairs, _, _) = run(&[100], &[92, 98, 104], 10);
        assert_eq!(pairs, vec![(0, 1, -2)]);
        // Nothing within the skew: nothing paired, everything counted.
        let (pairs, ul, ur) = run(&[0, 100], &[50, 150], 10);
        assert_eq!((pairs.len(), ul, ur), (0, 2, 2));
    }

    #[test]
    fn sender_ntp_times_pair_streams_whose_pts_disagree() {
        // Two RTSP cameras: their PTS start anywhere, their NTP times agree.
        let stats = Arc::new(PairStats::default());
        let mut p = Pairer::new(
            "pair",
            PairSettings {
                max_skew_ns: 5_000_000,
                max_wait_ns: None,
            },
            stats,
        );
        let ntp = |seq: u64, pts_ms: u64, ntp_ms: u64| {
            let mut w = work(seq, pts_ms);
            let mut buffer = gstreamer::Buffer::new();
            let caps = gstreamer::Caps::new_empty_simple("timestamp/x-ntp");
            gstreamer::ReferenceTimestampMeta::add(
                buffer.get_mut().unwrap(),
                &caps,
                gstreamer::ClockTime::from_mseconds(ntp_ms),
                gstreamer::ClockTime::NONE,
            );
            w.frame.meta.ntp_ns = crate::sources::appsink::ntp_time(buffer.as_ref());
            w
        };
        p.push(Side::Left, ntp(0, 0, 5_000), 0);
        p.push(Side::Right, ntp(0, 9_000, 5_002), 0);
        p.end(Side::Left);
        p.end(Side::Right);
        let mut out = Vec::new();
        p.poll(0, |w| out.push(w.record.pair.unwrap()));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].clock, out[0].skew_ns), (PairClock::Ntp, 2_000_000));
    }

    #[test]
    fn live_frames_wait_at_most_max_wait() {
        let stats = Arc::new(PairStats::default());
        let mut p = Pairer::new(
            "pair",
            PairSettings {
                max_skew_ns: 5_000_000,
                max_wait_ns: Some(50_000_000),
            },
            stats.clone(),
        );
        let mut n = 0;
        p.push(Side::Left, work(0, 0), 0);
        p.poll(40_000_000, |_| n += 1);
        assert_eq!(stats.unpaired_left.load(Ordering::Relaxed), 0);
        p.poll(60_000_000, |_| n += 1);
        assert_eq!((n, stats.unpaired_left.load(Ordering::Relaxed)), (0, 1));
    }

    #[test]
    fn side_by_side_frames_split_into_two_views_of_one_buffer() {
        gstreamer::init().unwrap();
        let info = gst_video::VideoInfo::builder(VideoFormat::Rgb, 8, 2)
            .build()
            .unwrap();
        let stride = info.stride()[0] as usize;
        let mut bytes = vec![0u8; info.size()];
        for y in 0..2 {
            for x in 0..8 {
                bytes[y * stride + x * 3] = (10 * y + x) as u8;
            }
        }
        let frame = crate::frame::test_frame(info, bytes, 7);
        let mut s = SideBySide::new("sbs", Arc::new(PairStats::default()));
        let w = s
            .split(Work {
                frame,
                record: Record::default(),
            })
            .unwrap();
        let first = |f: &Frame| {
            let p = f.pixels().unwrap();
            let st = p.plane_stride()[0] as usize;
            let d = p.plane_data(0).unwrap();
            (f.width(), d[0], d[st])
        };
        assert_eq!(first(&w.frame), (4, 0, 10));
        assert_eq!(first(w.frame.right.as_ref().unwrap()), (4, 4, 14));
        assert_eq!(w.record.pair.unwrap().right_seq, 7);
    }
}
