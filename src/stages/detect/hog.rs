//! `hog_people`: OpenCV's built-in HOG + linear SVM people detector
//! (Dalal-Triggs, `HOGDescriptor::getDefaultPeopleDetector`). It needs no
//! model file, so the default pipeline finds people on real footage out of
//! the box. Scores are SVM margins, not probabilities.

use opencv::core::{Mat, Rect, Size, Vector};
use opencv::objdetect::HOGDescriptor;
use opencv::prelude::*;

use super::nms::Candidate;
use crate::cvmat::with_frame_mat;
use crate::frame::Frame;

/// The default people detector's window, width x height.
const HOG_WINDOW: (i32, i32) = (64, 128);

/// HOG search settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HogSettings {
    /// Image pyramid step (> 1).
    pub scale: f64,
    /// Window stride in pixels (a multiple of 8).
    pub win_stride: i32,
    /// Resize the frame by this factor first (> 1 finds people smaller than the 64x128 window).
    pub upscale: f64,
    /// Minimum neighbouring hits to keep a grouped box.
    pub group_threshold: f64,
}

impl Default for HogSettings {
    fn default() -> Self {
        HogSettings {
            scale: 1.05,
            win_stride: 8,
            upscale: 1.0,
            group_threshold: 2.0,
        }
    }
}

/// OpenCV's HOG people detector with its scratch buffers.
pub struct HogPeople {
    settings: HogSettings,
    hog: HOGDescriptor,
    resized: Mat,
    found: Vector<Rect>,
    weights: Vector<f64>,
}

impl HogPeople {
    /// The default people detector with `settings`.
    pub fn new(settings: HogSettings) -> opencv::Result<HogPeople> {
        let mut hog = HOGDescriptor::default()?;
        hog.set_svm_detector(HOGDescriptor::get_default_people_detector()?);
        Ok(HogPeople {
            settings,
            hog,
            resized: Mat::default(),
            found: Vector::new(),
            weights: Vector::new(),
        })
    }

    /// People in a packed 3-channel frame, as candidates in source pixels (class 0).
    pub fn detect(&mut self, frame: &Frame, out: &mut Vec<Candidate>) -> Result<(), String> {
        out.clear();
        match frame.format() {
            gstreamer_video::VideoFormat::Rgb | gstreamer_video::VideoFormat::Bgr => {}
            other => {
                return Err(format!(
                    "hog_people needs RGB or BGR frames, not {}",
                    other.to_str()
                ));
            }
        }
        let (w, h) = (frame.width() as i32, frame.height() as i32);
        with_frame_mat(frame, |image, _| self.detect_mat(image, (w, h), out))
    }

    /// People in `image` (the frame's pixels, `size` = its width and height).
    fn detect_mat(
        &mut self,
        image: &Mat,
        (w, h): (i32, i32),
        out: &mut Vec<Candidate>,
    ) -> Result<(), String> {
        let s = &self.settings;
        // OpenCV's detectMultiScale corrupts memory on images smaller than its
        // 64x128 window; no person fits there anyway.
        if (f64::from(w) * s.upscale) < f64::from(HOG_WINDOW.0)
            || (f64::from(h) * s.upscale) < f64::from(HOG_WINDOW.1)
        {
            return Ok(());
        }
        let input = if (s.upscale - 1.0).abs() > f64::EPSILON {
            opencv::imgproc::resize(
                &image,
                &mut self.resized,
                Size::default(),
                s.upscale,
                s.upscale,
                opencv::imgproc::INTER_LINEAR,
            )
            .map_err(|e| e.to_string())?;
            &self.resized
        } else {
            image
        };
        self.hog
            .detect_multi_scale_weights(
                input,
                &mut self.found,
                &mut self.weights,
                0.0,
                Size::new(s.win_stride, s.win_stride),
                Size::new(8, 8),
                s.scale,
                s.group_threshold,
                false,
            )
            .map_err(|e| e.to_string())?;
        let k = 1.0 / s.upscale as f32;
        for (r, score) in self.found.iter().zip(self.weights.iter()) {
            let (x, y) = (r.x as f32 * k, r.y as f32 * k);
            let bbox = [
                x.max(0.0),
                y.max(0.0),
                (x + r.width as f32 * k).min(w as f32),
                (y + r.height as f32 * k).min(h as f32),
            ];
            out.push(Candidate {
                bbox,
                score: score as f32,
                class_id: 0,
            });
        }
        Ok(())
    }
}
