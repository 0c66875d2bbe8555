//! The `stereo_depth` kind's pipeline-file settings (`calibration`,
//! `[stage.sgbm]`, depth limits).

use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use crate::config::ConfigError;
use crate::config::resolve::{field_names, Resolver, StageContext, StageKind};
use crate::model::ModelError;
use crate::stage::{Built, StageSettings};

use super::{DepthFrame, SgbmMode, SgbmSettings, StereoDepthSettings, StereoDepthStage};

/// The `stereo_depth` kind.
pub static KIND: StageKind = StageKind {
    name: "stereo_depth",
    admission: true,
    asynchronous: false,
    fields: field_names::<StereoDepthSpec>,
    resolve,
};

/// A `stereo_depth` stage's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StereoDepthSpec {
    /// The calibration file (TOML, see calibration/README.md).
    calibration: Option<Spanned<String>>,
    /// StereoSGBM parameters (`[stage.sgbm]`).
    sgbm: Option<Spanned<SgbmSpec>>,
    /// Depths beyond this are invalid (metres; default: no limit).
    max_depth_m: Option<Spanned<f32>>,
    /// Each side of a box shrinks by this fraction before its median depth (default 0.25).
    box_shrink: Option<Spanned<f32>>,
    /// The view of the depth map and 3D positions: `rectified` (default) or `left`.
    depth_frame: Option<Spanned<String>>,
}

/// `[stage.sgbm]`: OpenCV StereoSGBM parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SgbmSpec {
    min_disparity: Option<Spanned<i32>>,
    num_disparities: Option<Spanned<i32>>,
    block_size: Option<Spanned<i32>>,
    p1: Option<Spanned<i32>>,
    p2: Option<Spanned<i32>>,
    disp12_max_diff: Option<Spanned<i32>>,
    pre_filter_cap: Option<Spanned<i32>>,
    uniqueness_ratio: Option<Spanned<i32>>,
    speckle_window_size: Option<Spanned<i32>>,
    speckle_range: Option<Spanned<i32>>,
    mode: Option<Spanned<SgbmMode>>,
    full_width: Option<Spanned<bool>>,
}

/// `max_depth_m` and `box_shrink`, shared by the depth stages.
pub(crate) fn depth_limits(
    r: &Resolver<'_>,
    max_depth_m: &Option<Spanned<f32>>,
    box_shrink: &Option<Spanned<f32>>,
    field: &str,
) -> Result<(f32, f32), ConfigError> {
    let max_depth_m = match max_depth_m {
        None => 0.0,
        Some(v) if v.get_ref().is_finite() && *v.get_ref() >= 0.0 => *v.get_ref(),
        Some(v) => {
            return Err(r.invalid(
                v.span(),
                format!("{field}.max_depth_m"),
                "metres, at least 0",
            ));
        }
    };
    let box_shrink = match box_shrink {
        None => 0.25,
        Some(v) if (0.0..0.5).contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            return Err(r.invalid(
                v.span(),
                format!("{field}.box_shrink"),
                "a fraction, at least 0 and under 0.5",
            ));
        }
    };
    Ok((max_depth_m, box_shrink))
}

fn resolve(
    r: &Resolver<'_>,
    table: Spanned<DeTable<'_>>,
    ctx: &StageContext<'_>,
) -> Result<Arc<dyn StageSettings>, ConfigError> {
    let spec: StereoDepthSpec = r.typed(table)?;
    let field = ctx.field;
    let Some(cal) = &spec.calibration else {
        return Err(r.invalid(
            ctx.kind_span.clone(),
            format!("{field}.calibration"),
            "a stereo_depth stage needs `calibration` (a file in calibration/)",
        ));
    };
    let calibration_path = r.existing_file(cal, &format!("{field}.calibration"))?;
    let calibration = crate::calib::StereoCalibration::load(&calibration_path)?;
    let mut sgbm = SgbmSettings::default();
    if let Some(g) = &spec.sgbm {
        let g = g.get_ref();
        let int = |v: &Option<Spanned<i32>>,
                   name: &str,
                   default: i32,
                   ok: &dyn Fn(i32) -> bool,
                   rule: &str| {
            match v {
                None => Ok(default),
                Some(v) if ok(*v.get_ref()) => Ok(*v.get_ref()),
                Some(v) => Err(r.invalid(
                    v.span(),
                    format!("{field}.sgbm.{name}"),
                    rule.to_string(),
                )),
            }
        };
        let any = |_: i32| true;
        let nonneg = |x: i32| x >= 0;
        sgbm.min_disparity = int(
            &g.min_disparity,
            "min_disparity",
            sgbm.min_disparity,
            &any,
            "",
        )?;
        sgbm.num_disparities = int(
            &g.num_disparities,
            "num_disparities",
            sgbm.num_disparities,
            &|x| x > 0 && x % 16 == 0,
            "a positive multiple of 16",
        )?;
        sgbm.block_size = int(
            &g.block_size,
            "block_size",
            sgbm.block_size,
            &|x| (1..=11).contains(&x) && x % 2 == 1,
            "odd, 1 to 11",
        )?;
        sgbm.p1 = g.p1.as_ref().map(|v| *v.get_ref());
        sgbm.p2 = g.p2.as_ref().map(|v| *v.get_ref());
        if let (Some(p1), Some(p2)) = (sgbm.p1, sgbm.p2)
            && p2 <= p1
        {
            let span = g.p2.as_ref().map_or(ctx.kind_span.clone(), Spanned::span);
            return Err(r.invalid(
                span,
                format!("{field}.sgbm.p2"),
                "must be larger than p1",
            ));
        }
        sgbm.disp12_max_diff = int(
            &g.disp12_max_diff,
            "disp12_max_diff",
            sgbm.disp12_max_diff,
            &any,
            "",
        )?;
        sgbm.pre_filter_cap = int(
            &g.pre_filter_cap,
            "pre_filter_cap",
            sgbm.pre_filter_cap,
            &nonneg,
            "at least 0",
        )?;
        sgbm.uniqueness_ratio = int(
            &g.uniqueness_ratio,
            "uniqueness_ratio",
            sgbm.uniqueness_ratio,
            &nonneg,
            "at least 0",
        )?;
        sgbm.speckle_window_size = int(
            &g.speckle_window_size,
            "speckle_window_size",
            sgbm.speckle_window_size,
            &nonneg,
            "at least 0",
        )?;
        sgbm.speckle_range = int(
            &g.speckle_range,
            "speckle_range",
            sgbm.speckle_range,
            &nonneg,
            "at least 0",
        )?;
        if let Some(m) = &g.mode {
            sgbm.mode = *m.get_ref();
        }
        if let Some(f) = &g.full_width {
            sgbm.full_width = *f.get_ref();
        }
    }
    let (max_depth_m, box_shrink) =
        depth_limits(r, &spec.max_depth_m, &spec.box_shrink, field)?;
    let depth_frame = match &spec.depth_frame {
        None => DepthFrame::Rectified,
        Some(v) => match v.get_ref().as_str() {
            "rectified" => DepthFrame::Rectified,
            "left" => DepthFrame::Left,
            _ => {
                return Err(r.invalid(
                    v.span(),
                    format!("{field}.depth_frame"),
                    "\"rectified\" (the left rectified view) or \"left\" (the original left view)",
                ));
            }
        },
    };
    Ok(Arc::new(StereoDepthSettings {
        depth_frame,
        calibration_path,
        calibration,
        sgbm,
        max_depth_m,
        box_shrink,
    }))
}

impl StageSettings for StereoDepthSettings {
    fn build(&self) -> Result<Built, ModelError> {
        let stage = StereoDepthStage::new(self).map_err(|message| ModelError::Run {
            path: self.calibration_path.clone(),
            message,
        })?;
        Ok(Built {
            stage: Box::new(stage),
            info: None,
        })
    }

    fn describe(&self) -> String {
        format!(
            "calibration {}, {} disparities, block {}",
            self.calibration_path.display(),
            self.sgbm.num_disparities,
            self.sgbm.block_size
        )
    }
}
