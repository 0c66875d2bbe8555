//! Invalid pipelines (files under tests/pipelines/invalid): exit 2 and a message
//! that names the file, the line and the field.

use crate::util::*;

/// (file, line, field or phrase the message must contain)
const CASES: &[(&str, Option<usize>, &str)] = &[
    (
        "unknown_field.toml",
        Some(6),
        "`source.colour`: unknown field `colour`",
    ),
    (
        "wrong_type.toml",
        Some(6),
        "`source.max_frames`: invalid type",
    ),
    (
        "missing_file.toml",
        Some(6),
        "`source[0].location`: file not found",
    ),
    (
        "bad_wiring.toml",
        Some(10),
        "`stage[0].streams`: no source has id `right`",
    ),
    (
        "duplicate_id.toml",
        Some(8),
        "`stage[0].id`: duplicate id `cam0`",
    ),
    (
        "bad_version.toml",
        Some(1),
        "`version`: unsupported version 7",
    ),
    ("zero_capacity.toml", Some(10), "`stage[0].queue.capacity`"),
    (
        "field_for_other_kind.toml",
        Some(7),
        "`source[0].pattern`: not used by kind = \"file\"",
    ),
    (
        "unknown_policy.toml",
        Some(10),
        "`sink.queue.policy`: unknown variant `drop_newest`",
    ),
    ("no_sink.toml", None, "no [[sink]]"),
    // Issue 10: caught by `check`, not at run time.
    (
        "depth_png_stdout.toml",
        Some(9),
        "`sink[0].path`: depth_png writes one file per frame: give a folder",
    ),
    // Issue 17: `schedule`.
    (
        "schedule_not_async.toml",
        Some(10),
        "`stage[0].schedule`: only a detect stage can run beside the stream",
    ),
    (
        "schedule_unknown.toml",
        Some(10),
        "`stage[0].schedule`: one of \"inline\", \"async\", \"auto\"",
    ),
    (
        "wait_for_result_unknown.toml",
        Some(10),
        "`stage.wait_for_result`: unknown variant `always`, expected `next_frame` or `deadline`",
    ),
    (
        "wait_for_result_inline.toml",
        Some(10),
        "`stage[0].wait_for_result`: applies to a stage beside the stream only",
    ),
    // Issue 13: a sink kind's own options, checked by the kind.
    (
        "mcap_bad_images.toml",
        Some(10),
        "`sink[0].images`: unknown variant `png`, expected `jpeg` or `none`",
    ),
    (
        "mcap_unknown_option.toml",
        Some(10),
        "`sink[0].port`: unknown field `port` for kind = \"mcap\", expected one of `kind`, `path`, `queue`, `images`, `jpeg_quality`",
    ),
    (
        "mcap_stdout.toml",
        Some(9),
        "`sink[0].path`: an MCAP file is written with a summary at its end",
    ),
    (
        "video_bad_extension.toml",
        Some(9),
        "run.avi: the file name must end in .mp4 or .mkv",
    ),
    (
        "bad_pattern.toml",
        None,
        "could not set property \"pattern\"",
    ),
];

#[test]
fn invalid_pipelines_exit_2_naming_file_line_and_field() {
    for (file, line, phrase) in CASES {
        let path = repo().join("tests/pipelines/invalid").join(file);
        for command in ["check", "run"] {
            let run = run(&[command, path.to_str().unwrap()]);
            run.assert_code(2);
            let err = &run.stderr;
            assert!(
                err.contains(file),
                "{command} {file}: message does not name the file:\n{err}"
            );
            if let Some(line) = line {
                assert!(
                    err.contains(&format!("{file}:{line}:")),
                    "{command} {file}: no line {line}:\n{err}"
                );
            }
            assert!(
                err.contains(phrase),
                "{command} {file}: expected `{phrase}` in:\n{err}"
            );
        }
    }
}

#[test]
fn missing_pipeline_file_exits_2() {
    let run = run(&["check", "no/such/pipeline.toml"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("cannot read pipeline file no/such/pipeline.toml"),
        "{}",
        run.stderr
    );
}
