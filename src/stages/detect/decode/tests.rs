//! Tests of the output decoders (kept apart so that `decode.rs` stays readable).

use super::*;

fn all(confidence: f32) -> Filter {
    Filter {
        confidence,
        classes: None,
    }
}

fn run(layout: Layout, views: &[View<'_>], filter: &Filter) -> Vec<Candidate> {
    let mut out = Vec::new();
    let contract = OutputContract::plain(layout, Vec::new(), 0);
    candidates(&contract, views, filter, &mut Vec::new(), &mut out).unwrap();
    out
}

#[test]
fn yolov8_is_channel_major_with_max_class_score() {
    // 3 anchors, 2 classes: rows cx, cy, w, h, s0, s1.
    let data = [
        10.0, 50.0, 90.0, // cx
        10.0, 50.0, 90.0, // cy
        4.0, 8.0, 2.0, // w
        4.0, 8.0, 2.0, // h
        0.9, 0.1, 0.3, // class 0
        0.2, 0.7, 0.1, // class 1
    ];
    let c = run(
        Layout::Yolov8,
        &[View {
            dims: &[1, 6, 3],
            data: &data,
        }],
        &all(0.25),
    );
    assert_eq!(c.len(), 3);
    assert_eq!(
        c[0],
        Candidate {
            bbox: [8.0, 8.0, 12.0, 12.0],
            score: 0.9,
            class_id: 0
        }
    );
    assert_eq!(
        c[1],
        Candidate {
            bbox: [46.0, 46.0, 54.0, 54.0],
            score: 0.7,
            class_id: 1
        }
    );
    assert_eq!(c[2].class_id, 0);
    let only1 = Filter {
        confidence: 0.25,
        classes: Some(vec![1]),
    };
    assert_eq!(
        run(
            Layout::Yolov8,
            &[View {
                dims: &[1, 6, 3],
                data: &data
            }],
            &only1
        )
        .len(),
        1
    );
}

#[test]
fn yolov8_takes_the_first_best_class_and_filters_after_choosing_it() {
    // 3 anchors, 3 classes: a tie (classes 1 and 2 at 0.8), a best class the
    // filter drops (class 0 at 0.9 beats class 2 at 0.6), and a NaN score.
    let data = [
        1.0, 2.0, 3.0, // cx
        1.0, 2.0, 3.0, // cy
        2.0, 2.0, 2.0, // w
        2.0, 2.0, 2.0, // h
        0.1, 0.9, f32::NAN, // class 0
        0.8, 0.1, 0.7, // class 1
        0.8, 0.6, 0.2, // class 2
    ];
    let view = [View {
        dims: &[1, 7, 3],
        data: &data,
    }];
    let c = run(Layout::Yolov8, &view, &all(0.5));
    let got: Vec<(f32, u32)> = c.iter().map(|c| (c.score, c.class_id)).collect();
    assert_eq!(got, [(0.8, 1), (0.9, 0), (0.7, 1)]);
    let no_person = Filter {
        confidence: 0.5,
        classes: Some(vec![1, 2]),
    };
    let c = run(Layout::Yolov8, &view, &no_person);
    let got: Vec<(f32, u32)> = c.iter().map(|c| (c.score, c.class_id)).collect();
    assert_eq!(got, [(0.8, 1), (0.7, 1)], "anchor 1's best class is 0: dropped, not demoted");
}

#[test]
fn yolov5_multiplies_objectness_and_class_probability() {
    let data = [
        20.0, 20.0, 10.0, 10.0, 0.8, 0.1, 0.9, // kept: 0.72, class 1
        20.0, 20.0, 10.0, 10.0, 0.2, 0.9, 0.1, // objectness below threshold
        20.0, 20.0, 10.0, 10.0, 0.5, 0.4, 0.4, // 0.2: below threshold
    ];
    let c = run(
        Layout::Yolov5,
        &[View {
            dims: &[1, 3, 7],
            data: &data,
        }],
        &all(0.25),
    );
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].class_id, 1);
    assert!((c[0].score - 0.72).abs() < 1e-6);
    assert_eq!(c[0].bbox, [15.0, 15.0, 25.0, 25.0]);
}

#[test]
fn end2end_and_boxes_scores_read_corners() {
    let e2e = [1.0, 2.0, 3.0, 4.0, 0.9, 2.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.0];
    let c = run(
        Layout::End2end,
        &[View {
            dims: &[1, 2, 6],
            data: &e2e,
        }],
        &all(0.5),
    );
    assert_eq!(
        c,
        vec![Candidate {
            bbox: [1.0, 2.0, 3.0, 4.0],
            score: 0.9,
            class_id: 2
        }]
    );

    let boxes = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let scores = [0.1, 0.6, 0.3, 0.2];
    let c = run(
        Layout::BoxesScores,
        &[
            View {
                dims: &[1, 2, 4],
                data: &boxes,
            },
            View {
                dims: &[1, 2, 2],
                data: &scores,
            },
        ],
        &all(0.5),
    );
    assert_eq!(
        c,
        vec![Candidate {
            bbox: [1.0, 2.0, 3.0, 4.0],
            score: 0.6,
            class_id: 1
        }]
    );
}

#[test]
fn wrong_sizes_are_errors_not_panics() {
    let mut out = Vec::new();
    let r = candidates(
        &OutputContract::plain(Layout::Yolov8, Vec::new(), 0),
        &[View {
            dims: &[1, 6, 4],
            data: &[0.0; 6],
        }],
        &all(0.1),
        &mut Vec::new(),
        &mut out,
    );
    assert!(r.is_err());
}

#[test]
fn contract_names_the_tensor() {
    let t = TensorInfo {
        name: "output0".into(),
        dtype: "f32".into(),
        dims: vec![Some(1), Some(8400), Some(84)],
    };
    let e = check_outputs(
        Layout::End2end,
        std::slice::from_ref(&t),
        None,
        Path::new("m.onnx"),
        Hints::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("m.onnx") && e.to_string().contains("`output0`"),
        "{e}"
    );
    let ok = check_outputs(
        Layout::Yolov5,
        &[t],
        None,
        Path::new("m.onnx"),
        Hints::default(),
    )
    .unwrap();
    assert_eq!(ok.classes, 79);
}

fn tensor(name: &str, dims: &[u64]) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        dtype: "f32".into(),
        dims: dims.iter().map(|&d| Some(d)).collect(),
    }
}

#[test]
fn gfl_contract_pairs_heads_by_cells_and_orders_strides() {
    // NanoDet-m at 416 as converted: heads out of order, told apart by the class count.
    let outputs = [
        tensor("a", &[1, 169, 44]),
        tensor("b", &[1, 2704, 80]),
        tensor("c", &[1, 169, 80]),
        tensor("d", &[1, 2704, 44]),
        tensor("e", &[1, 676, 44]),
        tensor("f", &[1, 676, 80]),
    ];
    let hints = Hints {
        input: (416, 416),
        classes: Some(80),
    };
    let c = check_outputs(Layout::Nanodet, &outputs, None, Path::new("m"), hints).unwrap();
    assert_eq!(c.names, ["b", "d", "f", "e", "c", "a"]);
    assert_eq!(c.classes, 80);
    let g = c.gfl.unwrap();
    assert_eq!(g.bins, 11);
    assert_eq!(g.offset, 0.5);
    let strides: Vec<(u32, usize, usize)> = g
        .levels
        .iter()
        .map(|l| (l.stride, l.cols, l.rows))
        .collect();
    assert_eq!(strides, [(8, 52, 52), (16, 26, 26), (32, 13, 13)]);

    // Without metadata the names must say which is which.
    let e = check_outputs(
        Layout::Nanodet,
        &outputs,
        None,
        Path::new("m"),
        Hints {
            input: (416, 416),
            classes: None,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot tell the class tensor"), "{e}");
    // A head whose cells fit no stride of the input is refused, naming it.
    let e = check_outputs(
        Layout::Nanodet,
        &outputs,
        None,
        Path::new("m"),
        Hints {
            input: (320, 320),
            classes: Some(80),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cells match no stride"), "{e}");
}

#[test]
fn gfl_contract_reads_one_concatenated_output_as_nanodet_plus() {
    // NanoDet-Plus-m 416: 52² + 26² + 13² + 7² = 3598 rows of 80 + 4·8.
    let t = tensor("output", &[1, 3598, 112]);
    let c = check_outputs(
        Layout::Nanodet,
        std::slice::from_ref(&t),
        None,
        Path::new("m"),
        Hints {
            input: (416, 416),
            classes: None,
        },
    )
    .unwrap();
    let g = c.gfl.unwrap();
    assert_eq!((c.classes, g.bins, g.offset, g.reg_at), (80, 8, 0.0, 80));
    assert_eq!(g.levels.len(), 4);
    assert_eq!(g.levels[3].first, 2704 + 676 + 169);
    // Rows that are not a whole grid are refused.
    let bad = tensor("output", &[1, 3597, 112]);
    assert!(
        check_outputs(
            Layout::Nanodet,
            &[bad],
            None,
            Path::new("m"),
            Hints {
                input: (416, 416),
                classes: None,
            }
        )
        .is_err()
    );
}

#[test]
fn gfl_decodes_centre_plus_expected_distances() {
    // 32x32 input: stride 8 (4x4 cells) and stride 16 (2x2); 2 classes, 4 bins.
    let hints = Hints {
        input: (32, 32),
        classes: Some(2),
    };
    let outputs = [
        tensor("cls8", &[1, 16, 2]),
        tensor("reg8", &[1, 16, 16]),
        tensor("cls16", &[1, 4, 2]),
        tensor("reg16", &[1, 4, 16]),
    ];
    let contract =
        check_outputs(Layout::Nanodet, &outputs, None, Path::new("m"), hints).unwrap();
    let mut cls8 = vec![0.0f32; 32];
    let mut reg8 = vec![0.0f32; 256];
    let mut cls16 = vec![0.0f32; 8];
    let reg16 = vec![0.0f32; 64]; // uniform: 1.5 bins a side
    // Stride 8, cell 5 (column 1, row 1): class 1 at 0.8, every side peaked at bin 2.
    cls8[5 * 2 + 1] = 0.8;
    for side in 0..4 {
        reg8[5 * 16 + side * 4 + 2] = 100.0;
    }
    // Stride 16, cell 3 (column 1, row 1): class 0 at 0.6.
    cls16[3 * 2] = 0.6;
    let views = [
        View {
            dims: &[1, 16, 2],
            data: &cls8,
        },
        View {
            dims: &[1, 16, 16],
            data: &reg8,
        },
        View {
            dims: &[1, 4, 2],
            data: &cls16,
        },
        View {
            dims: &[1, 4, 16],
            data: &reg16,
        },
    ];
    let mut out = Vec::new();
    candidates(&contract, &views, &all(0.5), &mut Vec::new(), &mut out).unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    // Centre (1.5·8, 1.5·8) = (12, 12), 2 bins · 8 px = 16 px a side.
    assert_eq!(out[0].class_id, 1);
    assert_eq!(out[0].score, 0.8);
    for (got, want) in out[0].bbox.iter().zip([-4.0, -4.0, 28.0, 28.0]) {
        assert!((got - want).abs() < 1e-3, "{:?}", out[0].bbox);
    }
    // Centre (24, 24), uniform bins: 1.5 · 16 = 24 px a side.
    assert_eq!(out[1].class_id, 0);
    for (got, want) in out[1].bbox.iter().zip([0.0, 0.0, 48.0, 48.0]) {
        assert!((got - want).abs() < 1e-3, "{:?}", out[1].bbox);
    }
    // Views too small for the grid are an error, not a panic.
    let short = [View {
        dims: &[1, 2, 2],
        data: &cls8[..4],
    }];
    assert!(candidates(&contract, &short, &all(0.5), &mut Vec::new(), &mut out).is_err());
}

#[test]
fn yolo_contracts_use_the_model_names_for_the_class_count() {
    let named = |c: usize| Hints {
        input: (640, 640),
        classes: Some(c),
    };
    let check = |dims: &[u64], hints: Hints| {
        check_outputs(
            Layout::Yolov8,
            &[tensor("output0", dims)],
            None,
            Path::new("m.onnx"),
            hints,
        )
    };
    // Transposed export: rows are anchors.
    let c = check(&[1, 8400, 84], named(80)).unwrap();
    assert!(c.transposed && c.classes == 80, "{c:?}");
    let c = check(&[1, 8400, 84], Hints::default()).unwrap();
    assert!(c.transposed && c.classes == 80, "{c:?}");
    // Segmentation: 32 mask coefficients after the 80 classes are not classes.
    let c = check(&[1, 116, 8400], named(80)).unwrap();
    assert!(!c.transposed && c.classes == 80, "{c:?}");
    assert!(
        c.reason.contains("32 values after the classes"),
        "{}",
        c.reason
    );
    // Pose: one class, 51 keypoint values.
    assert_eq!(check(&[1, 56, 8400], named(1)).unwrap().classes, 1);
    // Fewer channels than the names need: refused, naming the tensor.
    let e = check(&[1, 84, 8400], named(90)).unwrap_err().to_string();
    assert!(e.contains("`output0`") && e.contains("90 classes"), "{e}");
}

#[test]
fn transposed_yolov8_rows_decode_like_channel_major_columns() {
    // 2 anchors, 2 classes, as rows: cx, cy, w, h, s0, s1.
    let rows = [
        10.0, 10.0, 4.0, 4.0, 0.9, 0.2, 50.0, 50.0, 8.0, 8.0, 0.1, 0.7,
    ];
    let mut contract = OutputContract::plain(Layout::Yolov8, Vec::new(), 2);
    contract.transposed = true;
    let mut out = Vec::new();
    let views = [View {
        dims: &[1, 2, 6],
        data: &rows,
    }];
    candidates(&contract, &views, &all(0.5), &mut Vec::new(), &mut out).unwrap();
    assert_eq!(
        out,
        vec![
            Candidate {
                bbox: [8.0, 8.0, 12.0, 12.0],
                score: 0.9,
                class_id: 0
            },
            Candidate {
                bbox: [46.0, 46.0, 54.0, 54.0],
                score: 0.7,
                class_id: 1
            }
        ]
    );
    assert!(check_probabilities(&contract, &out).is_ok());
    out[0].score = 16.0;
    let e = check_probabilities(&contract, &out).unwrap_err();
    assert!(e.contains("not a probability"), "{e}");
}

#[test]
fn best_class_rules_out_rows_below_the_threshold_at_every_length_and_skips_nan() {
    // Lengths around the eight lanes, the best value at every position.
    for len in [1usize, 2, 7, 8, 9, 15, 16, 17, 80, 81] {
        for at in 0..len {
            let mut v: Vec<f32> = (0..len).map(|i| (i % 5) as f32 * 0.1).collect();
            v[at] = 0.95;
            assert_eq!(max_score(&v), argmax(&v).1, "len {len}, best at {at}");
            assert_eq!(best_class(&v, 0.95), Some((at as u32, 0.95)));
            assert_eq!(best_class(&v, 0.96), None);
        }
    }
    assert_eq!(max_score(&[]), f32::NEG_INFINITY);
    assert_eq!(max_score(&[f32::NAN, 0.3, f32::NAN]), 0.3);
    assert_eq!(max_score(&[f32::NAN; 9]), f32::NEG_INFINITY);
    assert_eq!(argmax(&[f32::NAN; 9]).1, f32::NEG_INFINITY);
}
