//! Lowering plus the loop-IR interpreter against `sinter_ref::run` on seeded random inputs, for the
//! main op families and attribute combinations the fixtures cover thinly (groups, dilations, strides,
//! broadcast batch dims, negative slice steps, reflect pads), plus whole-program properties: every
//! lowered program verifies, views produce no kernel, outputs never alias inputs or each other, and
//! lowering errors name every unsupported node at once.

mod common;

use sinter_ir::{AttrValue, DType, Graph, Op, Tensor, TensorType, Value};
use sinter_loops::interp::run_program;
use sinter_loops::lower::{lower_graph, LowerIssue};
use sinter_loops::verify::verify_program;
use sinter_ref::compare::Tolerance;
use sinter_ref::random::{random_tensor, SplitMix64};

/// `op` from its text name and attributes (panics on a typo: these are test literals).
fn op(name: &str, attrs: &[(&str, AttrValue)]) -> Op {
    Op::from_attrs(
        name,
        attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ints(values: &[i64]) -> AttrValue {
    AttrValue::Ints(values.to_vec())
}

/// A one-node graph over fresh inputs of the given types; every output of the node is a graph output.
fn one_op_graph(op: Op, inputs: &[(DType, &[usize])]) -> Graph {
    let mut g = Graph::new("t");
    let values: Vec<Option<Value>> = inputs
        .iter()
        .enumerate()
        .map(|(idx, (dtype, shape))| {
            Some(
                g.add_input(format!("in{idx}"), TensorType::fixed(*dtype, shape))
                    .unwrap(),
            )
        })
        .collect();
    let outs = g
        .add_op_inferred(op, &values, None)
        .unwrap_or_else(|e| panic!("{e}"));
    for (idx, v) in outs.into_iter().enumerate() {
        g.add_output(format!("out{idx}"), v).unwrap();
    }
    g
}

/// Lowers, verifies, interprets and compares against the reference on seeded random inputs.
fn check_graph(graph: &Graph, seed: u64, tolerance: Tolerance) {
    let program = lower_graph(graph).unwrap_or_else(|e| panic!("{e}"));
    if let Err(errors) = verify_program(&program) {
        panic!("does not verify: {errors:#?}");
    }
    common::interp_matches_reference(graph, &program, seed, tolerance);
}

const TOL: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-5,
};

fn check(op: Op, inputs: &[(DType, &[usize])]) {
    let name = op.name();
    let graph = one_op_graph(op, inputs);
    for seed in 0..3 {
        std::panic::catch_unwind(|| check_graph(&graph, seed, TOL))
            .unwrap_or_else(|_| panic!("`{name}` with inputs {inputs:?}, seed {seed}"));
    }
}

const F32: DType = DType::F32;

#[test]
fn unary_elementwise_ops_match_the_reference() {
    for name in [
        "neg",
        "abs",
        "exp",
        "sqrt",
        "relu",
        "sigmoid",
        "tanh",
        "erf",
        "gelu",
        "elu",
        "selu",
        "softplus",
        "softsign",
        "mish",
        "hard_sigmoid",
        "hard_swish",
        "floor",
        "ceil",
        "round",
        "sign",
        "leaky_relu",
        "reciprocal",
    ] {
        check(op(name, &[]), &[(F32, &[3, 5, 7])]);
    }
    check(
        op(
            "clip",
            &[
                ("min", AttrValue::Float(-0.5)),
                ("max", AttrValue::Float(0.25)),
            ],
        ),
        &[(F32, &[4, 9])],
    );
    check(
        op("cast", &[("to", AttrValue::Ident("i32".into()))]),
        &[(F32, &[10])],
    );
}

#[test]
fn broadcasting_binary_ops_match_the_reference() {
    let shapes: [(&[usize], &[usize]); 4] = [
        (&[2, 3, 4], &[4]),
        (&[2, 1, 4], &[3, 1]),
        (&[5], &[]),
        (&[1, 3, 1], &[2, 1, 6]),
    ];
    for name in [
        "add", "sub", "mul", "div", "max", "min", "pow", "less", "equal",
    ] {
        for (a, b) in shapes {
            check(op(name, &[]), &[(F32, a), (F32, b)]);
        }
    }
    check(op("add", &[]), &[(DType::I32, &[3, 4]), (DType::I32, &[4])]);
    check(op("prelu", &[]), &[(F32, &[2, 3, 4]), (F32, &[3, 1])]);
    check(
        op("where", &[]),
        &[(DType::Bool, &[3, 1]), (F32, &[1, 4]), (F32, &[3, 4])],
    );
}

#[test]
fn matmul_and_gemm_match_the_reference() {
    let cases: [(&[usize], &[usize]); 5] = [
        (&[3, 4], &[4, 5]),
        (&[2, 3, 4], &[4, 5]),
        (&[5], &[5, 3]),
        (&[2, 5], &[5]),
        (&[2, 1, 3, 4], &[3, 4, 2]),
    ];
    for (a, b) in cases {
        check(op("matmul", &[]), &[(F32, a), (F32, b)]);
    }
    check(
        op(
            "gemm",
            &[
                ("alpha", AttrValue::Float(0.5)),
                ("beta", AttrValue::Float(2.0)),
                ("trans_b", AttrValue::Bool(true)),
            ],
        ),
        &[(F32, &[3, 4]), (F32, &[5, 4]), (F32, &[5])],
    );
    check(
        op("gemm", &[("trans_a", AttrValue::Bool(true))]),
        &[(F32, &[4, 3]), (F32, &[4, 5])],
    );
}

#[test]
fn convolutions_match_the_reference() {
    // Grouped, strided, dilated and padded 2-d; depthwise; 1-d with same_upper.
    check(
        op(
            "conv",
            &[
                ("group", AttrValue::Int(2)),
                ("strides", ints(&[2, 1])),
                ("dilations", ints(&[1, 2])),
                ("pads", ints(&[1, 2, 0, 1])),
            ],
        ),
        &[(F32, &[2, 4, 7, 8]), (F32, &[6, 2, 3, 3]), (F32, &[6])],
    );
    check(
        op(
            "conv",
            &[("group", AttrValue::Int(3)), ("pads", ints(&[1, 1, 1, 1]))],
        ),
        &[(F32, &[1, 3, 5, 5]), (F32, &[3, 1, 3, 3])],
    );
    check(
        op(
            "conv",
            &[
                ("auto_pad", AttrValue::Ident("same_upper".into())),
                ("strides", ints(&[2])),
            ],
        ),
        &[(F32, &[1, 2, 9]), (F32, &[3, 2, 4])],
    );
    check(
        op(
            "conv_transpose",
            &[("strides", ints(&[2, 2])), ("pads", ints(&[1, 0, 0, 1]))],
        ),
        &[(F32, &[1, 2, 3, 4]), (F32, &[2, 3, 3, 3]), (F32, &[3])],
    );
}

#[test]
fn pools_match_the_reference() {
    check(
        op(
            "max_pool",
            &[
                ("kernel_shape", ints(&[3, 3])),
                ("strides", ints(&[2, 2])),
                ("pads", ints(&[1, 1, 1, 1])),
            ],
        ),
        &[(F32, &[2, 3, 7, 6])],
    );
    for include in [false, true] {
        check(
            op(
                "average_pool",
                &[
                    ("kernel_shape", ints(&[3, 2])),
                    ("strides", ints(&[2, 2])),
                    ("pads", ints(&[1, 0, 1, 1])),
                    ("ceil_mode", AttrValue::Bool(true)),
                    ("count_include_pad", AttrValue::Bool(include)),
                ],
            ),
            &[(F32, &[1, 2, 6, 5])],
        );
    }
    check(op("global_average_pool", &[]), &[(F32, &[2, 3, 4, 5])]);
    check(op("global_max_pool", &[]), &[(F32, &[2, 3, 4, 5])]);
}

#[test]
fn reductions_match_the_reference() {
    for name in [
        "reduce_sum",
        "reduce_mean",
        "reduce_max",
        "reduce_min",
        "reduce_prod",
        "reduce_l1",
        "reduce_l2",
        "reduce_sum_square",
        "reduce_log_sum_exp",
    ] {
        check(op(name, &[("axes", ints(&[1]))]), &[(F32, &[3, 4, 5])]);
        check(
            op(
                name,
                &[
                    ("axes", ints(&[0, 2])),
                    ("keepdims", AttrValue::Bool(false)),
                ],
            ),
            &[(F32, &[3, 4, 5])],
        );
        check(op(name, &[]), &[(F32, &[2, 3])]);
    }
    for name in ["arg_max", "arg_min"] {
        check(
            op(name, &[("axis", AttrValue::Int(1))]),
            &[(F32, &[3, 4, 5])],
        );
        check(
            op(
                name,
                &[
                    ("axis", AttrValue::Int(-1)),
                    ("select_last_index", AttrValue::Bool(true)),
                ],
            ),
            &[(DType::I32, &[3, 6])],
        );
    }
}

#[test]
fn normalizations_match_the_reference() {
    check(
        op("softmax", &[("axis", AttrValue::Int(1))]),
        &[(F32, &[2, 5, 3])],
    );
    check(op("log_softmax", &[]), &[(F32, &[4, 7])]);
    check(
        op("layer_norm", &[("axis", AttrValue::Int(-2))]),
        &[(F32, &[2, 3, 4]), (F32, &[3, 4]), (F32, &[4])],
    );
    check(op("rms_norm", &[]), &[(F32, &[3, 8]), (F32, &[8])]);
    check(
        op("batch_norm", &[]),
        &[
            (F32, &[2, 3, 4]),
            (F32, &[3]),
            (F32, &[3]),
            (F32, &[3]),
            (F32, &[3]),
        ],
    );
    check(
        op("instance_norm", &[]),
        &[(F32, &[2, 3, 4, 2]), (F32, &[3]), (F32, &[3])],
    );
    check(
        op("group_norm", &[("num_groups", AttrValue::Int(2))]),
        &[(F32, &[2, 4, 3]), (F32, &[4]), (F32, &[4])],
    );
    check(
        op("lrn", &[("size", AttrValue::Int(3))]),
        &[(F32, &[1, 5, 2, 2])],
    );
}

#[test]
fn data_movement_matches_the_reference() {
    check(
        op("transpose", &[("perm", ints(&[2, 0, 1]))]),
        &[(F32, &[2, 3, 4])],
    );
    check(
        op("concat", &[("axis", AttrValue::Int(1))]),
        &[(F32, &[2, 1, 3]), (F32, &[2, 4, 3])],
    );
    check(
        op(
            "split",
            &[("split", ints(&[1, 3])), ("axis", AttrValue::Int(-1))],
        ),
        &[(F32, &[2, 4])],
    );
    check(
        op(
            "slice",
            &[
                ("starts", ints(&[-1, 1])),
                ("ends", ints(&[-100, 4])),
                ("axes", ints(&[0, 1])),
                ("steps", ints(&[-2, 2])),
            ],
        ),
        &[(F32, &[5, 6])],
    );
    for mode in ["constant", "reflect", "edge", "wrap"] {
        check(
            op(
                "pad",
                &[
                    ("pads", ints(&[1, 2, 2, -1])),
                    ("mode", AttrValue::Ident(mode.into())),
                    ("value", AttrValue::Float(0.5)),
                ],
            ),
            &[(F32, &[3, 4])],
        );
    }
    check(op("tile", &[("repeats", ints(&[2, 3]))]), &[(F32, &[2, 2])]);
    check(
        op("expand", &[("shape", ints(&[2, 3, 4]))]),
        &[(F32, &[3, 1])],
    );
    check(
        op("trilu", &[("k", AttrValue::Int(-1))]),
        &[(F32, &[2, 3, 4])],
    );
    check(
        op("trilu", &[("upper", AttrValue::Bool(false))]),
        &[(F32, &[4, 3])],
    );
}

#[test]
fn gather_reads_data_dependent_indices() {
    // Random i64 indices lie in [0, 4): in range for an axis of 4 and 5.
    check(
        op("gather", &[("axis", AttrValue::Int(1))]),
        &[(F32, &[2, 5, 3]), (DType::I64, &[2, 2])],
    );
    check(
        op("gather_elements", &[("axis", AttrValue::Int(0))]),
        &[(F32, &[4, 3]), (DType::I64, &[2, 3])],
    );
}

#[test]
fn an_out_of_range_gather_index_stops_the_program_with_status_1() {
    let graph = one_op_graph(op("gather", &[]), &[(F32, &[3]), (DType::I64, &[2])]);
    let program = lower_graph(&graph).unwrap();
    let data = Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 3.0]).unwrap();
    let good = Tensor::from_vec(vec![2], vec![-1i64, 0]).unwrap();
    let out = run_program(&program, &[("in0", &data), ("in1", &good)]).unwrap();
    assert_eq!(out[0].1.as_slice::<f32>().unwrap(), &[3.0, 1.0]);
    let bad = Tensor::from_vec(vec![2], vec![0i64, 3]).unwrap();
    let err = run_program(&program, &[("in0", &data), ("in1", &bad)]).unwrap_err();
    assert!(err.to_string().contains("status 1"), "{err}");
}

#[test]
fn a_small_network_lowers_and_matches_the_reference() {
    // conv -> relu -> max_pool -> flatten -> gemm -> softmax, with weights as constants.
    let mut g = Graph::new("net");
    let mut rng = SplitMix64::new(7);
    let x = g
        .add_input("x", TensorType::fixed(F32, &[1, 2, 6, 6]))
        .unwrap();
    let w = g
        .add_const("w", random_tensor(&mut rng, F32, &[4, 2, 3, 3]))
        .unwrap();
    let b = g
        .add_const("b", random_tensor(&mut rng, F32, &[4]))
        .unwrap();
    let fc = g
        .add_const("fc", random_tensor(&mut rng, F32, &[5, 16]))
        .unwrap();
    let conv = g
        .add_op_inferred(
            op("conv", &[("pads", ints(&[1, 1, 1, 1]))]),
            &[Some(x), Some(w), Some(b)],
            None,
        )
        .unwrap()[0];
    let relu = g
        .add_op_inferred(op("relu", &[]), &[Some(conv)], None)
        .unwrap()[0];
    let pool = g
        .add_op_inferred(
            op(
                "max_pool",
                &[("kernel_shape", ints(&[3, 3])), ("strides", ints(&[3, 3]))],
            ),
            &[Some(relu)],
            None,
        )
        .unwrap()[0];
    let flat = g
        .add_op_inferred(op("flatten", &[]), &[Some(pool)], None)
        .unwrap()[0];
    let logits = g
        .add_op_inferred(
            op("gemm", &[("trans_b", AttrValue::Bool(true))]),
            &[Some(flat), Some(fc)],
            None,
        )
        .unwrap()[0];
    let probs = g
        .add_op_inferred(op("softmax", &[]), &[Some(logits)], None)
        .unwrap()[0];
    g.add_output("probs", probs).unwrap();
    g.add_output("features", flat).unwrap();
    let program = lower_graph(&g).unwrap();
    // Flatten is a view, and the pool's buffer takes its shape as the `features` output: conv, relu,
    // pool, gemm and softmax, no copy.
    assert_eq!(
        program.calls.len(),
        5,
        "{:?}",
        program
            .calls
            .iter()
            .map(|c| &c.kernel.name)
            .collect::<Vec<_>>()
    );
    for seed in 0..3 {
        check_graph(&g, seed, TOL);
    }
}

#[test]
fn outputs_that_alias_inputs_or_each_other_get_copies() {
    let mut g = Graph::new("alias");
    let x = g.add_input("x", TensorType::fixed(F32, &[2, 3])).unwrap();
    let id = g
        .add_op_inferred(op("identity", &[]), &[Some(x)], None)
        .unwrap()[0];
    let r = g
        .add_op_inferred(op("relu", &[]), &[Some(x)], None)
        .unwrap()[0];
    g.add_output("same_as_x", id).unwrap();
    g.add_output("relu", r).unwrap();
    g.add_output("relu_again", r).unwrap();
    let program = lower_graph(&g).unwrap();
    let mut bufs: Vec<_> = program.outputs.iter().map(|(_, b)| *b).collect();
    bufs.sort();
    bufs.dedup();
    assert_eq!(bufs.len(), 3, "outputs must be distinct buffers");
    for (_, buf) in &program.outputs {
        assert!(matches!(
            program.buffer(*buf).source,
            sinter_loops::BufferSource::Computed
        ));
    }
    check_graph(&g, 1, TOL);
}

#[test]
fn symbolic_shapes_and_unsupported_ops_are_all_reported() {
    let mut g = Graph::new("bad");
    let x = g
        .add_input(
            "x",
            TensorType::new(
                F32,
                vec![sinter_ir::Dim::sym("batch"), sinter_ir::Dim::Static(3)],
            ),
        )
        .unwrap();
    let r = g
        .add_op_inferred(op("relu", &[]), &[Some(x)], None)
        .unwrap()[0];
    g.add_output("r", r).unwrap();
    // Integer l2 and log-sum-exp reductions are not lowered (sinter-ref computes them in f64).
    let i = g
        .add_input("i", TensorType::fixed(DType::I32, &[2, 3]))
        .unwrap();
    for name in ["reduce_l2", "reduce_log_sum_exp"] {
        let v = g
            .add_op_inferred(op(name, &[]), &[Some(i)], Some(format!("my_{name}")))
            .unwrap()[0];
        g.add_output(name, v).unwrap();
    }
    let err = lower_graph(&g).unwrap_err();
    let symbolic = err
        .issues
        .iter()
        .filter(|i| matches!(i, LowerIssue::SymbolicShape { .. }))
        .count();
    assert_eq!(symbolic, 2, "the input and the relu are symbolic: {err}");
    let text = err.to_string();
    assert!(text.contains("batch"), "{text}");
    assert!(
        text.contains("my_reduce_l2") && text.contains("my_reduce_log_sum_exp"),
        "{text}"
    );
    assert_eq!(err.issues.len(), 4, "{text}");
}

#[test]
fn resize_matches_the_reference() {
    for (mode, transform) in [
        ("nearest", "half_pixel"),
        ("nearest", "asymmetric"),
        ("linear", "half_pixel"),
        ("linear", "align_corners"),
        ("linear", "pytorch_half_pixel"),
    ] {
        check(
            op(
                "resize",
                &[
                    ("mode", AttrValue::Ident(mode.into())),
                    (
                        "coordinate_transformation_mode",
                        AttrValue::Ident(transform.into()),
                    ),
                    ("sizes", ints(&[1, 2, 5, 3])),
                ],
            ),
            &[(F32, &[1, 2, 3, 4])],
        );
    }
}

#[test]
fn recurrent_layers_match_the_reference() {
    let (seq, batch, input, hidden) = (4usize, 2usize, 3usize, 5usize);
    for (name, gates) in [("rnn", 1usize), ("lstm", 4), ("gru", 3)] {
        for direction in ["forward", "reverse", "bidirectional"] {
            let n_dir = if direction == "bidirectional" { 2 } else { 1 };
            let mut attrs = vec![
                ("hidden_size", AttrValue::Int(hidden as i64)),
                ("direction", AttrValue::Ident(direction.into())),
            ];
            if name == "gru" {
                attrs.push((
                    "linear_before_reset",
                    AttrValue::Bool(direction == "reverse"),
                ));
            }
            check(
                op(name, &attrs),
                &[
                    (F32, &[seq, batch, input]),
                    (F32, &[n_dir, gates * hidden, input]),
                    (F32, &[n_dir, gates * hidden, hidden]),
                    (F32, &[n_dir, 2 * gates * hidden]),
                    // Random i32 lengths lie in [0, 4): some sequences are empty or short.
                    (DType::I32, &[batch]),
                ],
            );
        }
    }
}

#[test]
fn attention_matches_the_reference() {
    check(
        op("attention", &[]),
        &[
            (F32, &[2, 2, 3, 4]),
            (F32, &[2, 2, 5, 4]),
            (F32, &[2, 2, 5, 6]),
        ],
    );
    check(
        op(
            "attention",
            &[
                ("causal", AttrValue::Bool(true)),
                ("softcap", AttrValue::Float(2.0)),
            ],
        ),
        &[
            (F32, &[1, 4, 3, 4]),
            (F32, &[1, 2, 3, 4]),
            (F32, &[1, 2, 3, 4]),
        ],
    );
    check(
        op(
            "attention",
            &[
                ("q_num_heads", AttrValue::Int(4)),
                ("kv_num_heads", AttrValue::Int(2)),
            ],
        ),
        &[
            (F32, &[2, 3, 8]),
            (F32, &[2, 5, 4]),
            (F32, &[2, 5, 4]),
            (F32, &[3, 5]),
        ],
    );
}

/// `op` over inputs that are graph inputs (`false`) or seeded random constants (`true`): constant
/// right-hand operands are packed into panels when the program is built, inputs by a kernel.
fn graph_with_consts(op: Op, inputs: &[(&[usize], bool)]) -> Graph {
    let mut g = Graph::new("t");
    let mut rng = SplitMix64::new(99);
    let values: Vec<Option<Value>> = inputs
        .iter()
        .enumerate()
        .map(|(idx, &(shape, is_const))| {
            Some(if is_const {
                g.add_const(format!("w{idx}"), random_tensor(&mut rng, F32, shape))
                    .unwrap()
            } else {
                g.add_input(format!("in{idx}"), TensorType::fixed(F32, shape))
                    .unwrap()
            })
        })
        .collect();
    let outs = g.add_op_inferred(op, &values, None).unwrap();
    g.add_output("out0", outs[0]).unwrap();
    g
}

/// How many register tiles the lowered program of `graph` contains.
fn count_tiles(graph: &Graph) -> usize {
    fn walk(stmts: &[sinter_loops::Stmt]) -> usize {
        stmts
            .iter()
            .map(|s| match s {
                sinter_loops::Stmt::MatTile(_) => 1,
                sinter_loops::Stmt::Loop(lp) => walk(&lp.body),
                sinter_loops::Stmt::If {
                    then, otherwise, ..
                } => walk(then) + walk(otherwise),
                _ => 0,
            })
            .sum()
    }
    let program = lower_graph(graph).unwrap();
    program.calls.iter().map(|c| walk(&c.kernel.body)).sum()
}

#[test]
fn tiled_products_match_the_reference() {
    // Sizes around the 4x8 tile: full tiles only, remainder rows, remainder columns, both, and
    // fewer than one tile of columns; constant and computed right-hand sides; batch broadcast.
    let matmuls: [(&[usize], &[usize], bool); 8] = [
        (&[8, 16], &[16, 16], false),
        (&[13, 7], &[7, 21], false),
        (&[13, 7], &[7, 21], true),
        (&[40, 9], &[9, 19], false),
        (&[6, 5], &[5, 3], true),
        (&[2, 9, 6], &[6, 11], true),
        (&[3, 1, 5, 4], &[2, 4, 9], false),
        (&[1, 33], &[33, 40], false),
    ];
    for (a, b, b_const) in matmuls {
        let graph = graph_with_consts(op("matmul", &[]), &[(a, false), (b, b_const)]);
        assert!(count_tiles(&graph) > 0, "matmul {a:?} x {b:?} is not tiled");
        check_graph(&graph, 1, TOL);
    }
    // Gemm: transposed operands, alpha, beta with a broadcast c, constant b (packed transposed).
    for (trans_a, trans_b, b_const) in [
        (false, true, true),
        (true, false, false),
        (true, true, false),
    ] {
        let (m, k, n) = (11, 6, 13);
        let a_shape = if trans_a { [k, m] } else { [m, k] };
        let b_shape = if trans_b { [n, k] } else { [k, n] };
        let gemm = op(
            "gemm",
            &[
                ("alpha", AttrValue::Float(0.5)),
                ("beta", AttrValue::Float(-2.0)),
                ("trans_a", AttrValue::Bool(trans_a)),
                ("trans_b", AttrValue::Bool(trans_b)),
            ],
        );
        let graph = graph_with_consts(
            gemm,
            &[(&a_shape, false), (&b_shape, b_const), (&[n], true)],
        );
        assert!(count_tiles(&graph) > 0);
        check_graph(&graph, 2, TOL);
    }
    // Convolutions as implicit GEMM: padded 3x3, strided, dilated, grouped, pointwise (x is the
    // matrix itself), 1-d, batch 2; depthwise stays a direct nest.
    let conv = |attrs: &[(&str, AttrValue)], x: &[usize], w: &[usize], bias: bool| {
        let mut inputs: Vec<(&[usize], bool)> = vec![(x, false), (w, true)];
        let bias_shape = [w[0]];
        if bias {
            inputs.push((&bias_shape, true));
        }
        graph_with_consts(op("conv", attrs), &inputs)
    };
    let tiled = [
        conv(
            &[("pads", ints(&[1, 1, 1, 1]))],
            &[1, 5, 9, 10],
            &[7, 5, 3, 3],
            true,
        ),
        conv(
            &[("strides", ints(&[2, 2]))],
            &[2, 3, 11, 9],
            &[9, 3, 3, 3],
            false,
        ),
        conv(
            &[("dilations", ints(&[2, 1])), ("pads", ints(&[2, 0, 1, 1]))],
            &[1, 4, 8, 8],
            &[6, 4, 3, 2],
            true,
        ),
        conv(
            &[("group", AttrValue::Int(2))],
            &[1, 8, 7, 7],
            &[10, 4, 3, 3],
            true,
        ),
        conv(&[], &[1, 16, 6, 7], &[12, 16, 1, 1], true),
        conv(&[], &[2, 16, 6, 8], &[12, 16, 1, 1], false),
        conv(&[("pads", ints(&[2, 2]))], &[1, 6, 30], &[8, 6, 5], true),
    ];
    for (idx, graph) in tiled.iter().enumerate() {
        assert!(count_tiles(graph) > 0, "conv case {idx} is not tiled");
        check_graph(graph, 3, TOL);
    }
    let depthwise = conv(
        &[("group", AttrValue::Int(8))],
        &[1, 8, 9, 9],
        &[8, 1, 3, 3],
        true,
    );
    assert_eq!(count_tiles(&depthwise), 0);
    check_graph(&depthwise, 4, TOL);
}

/// The tile nest of a small gemm with a packed constant `b` and a bias epilogue, as printed, and
/// the same kernels after the default schedule with threads: the panel loop becomes parallel, the
/// remainder columns are their own kernel, and the text parses back to the same program.
#[test]
fn tiled_gemm_lowering_snapshot() {
    let gemm = op("gemm", &[("trans_b", AttrValue::Bool(true))]);
    let graph = graph_with_consts(gemm, &[(&[6, 3], false), (&[20, 3], true), (&[20], true)]);
    let program = lower_graph(&graph).unwrap();
    let text = sinter_loops::text::print_program(&program);
    insta::assert_snapshot!("tiled_gemm", text);
    let weights: std::collections::HashMap<String, Tensor> = program
        .buffers
        .iter()
        .filter_map(|b| match &b.source {
            sinter_loops::BufferSource::Weight(t) => Some((b.name.clone(), t.clone())),
            _ => None,
        })
        .collect();
    let parsed =
        sinter_loops::text::parse_program(&text, &|name| weights.get(name).cloned()).unwrap();
    assert_eq!(parsed, program);
    let options = sinter_loops::schedule::ScheduleOptions {
        parallel: true,
        ..Default::default()
    };
    let scheduled: Vec<String> = program
        .calls
        .iter()
        .map(|call| {
            let kernel = sinter_loops::schedule::schedule_kernel(&call.kernel, &options).unwrap();
            sinter_loops::verify::verify_kernel(&kernel).unwrap();
            sinter_loops::text::print_kernel(&kernel)
        })
        .collect();
    assert!(scheduled[0].contains("parallel"), "{}", scheduled[0]);
    insta::assert_snapshot!("tiled_gemm_scheduled", scheduled.join("\n"));
}

#[test]
fn recurrent_layers_with_constant_weights_use_tiles_and_match_the_reference() {
    // Hidden 5 with 4 gates is 20 rows: two full panels of 8 and a remainder of 4.
    let (seq, batch, input, hidden) = (5usize, 2usize, 3usize, 5usize);
    for (name, gates) in [("rnn", 1usize), ("lstm", 4), ("gru", 3)] {
        for (direction, layout) in [("forward", 0), ("reverse", 1), ("bidirectional", 0)] {
            let n_dir = if direction == "bidirectional" { 2 } else { 1 };
            let mut attrs = vec![
                ("hidden_size", AttrValue::Int(hidden as i64)),
                ("direction", AttrValue::Ident(direction.into())),
                ("layout", AttrValue::Int(layout)),
            ];
            if name == "gru" {
                attrs.push((
                    "linear_before_reset",
                    AttrValue::Bool(direction == "reverse"),
                ));
            }
            let x_shape = if layout == 0 {
                [seq, batch, input]
            } else {
                [batch, seq, input]
            };
            let mut g = Graph::new("t");
            let mut rng = SplitMix64::new(7);
            let mut constant = |g: &mut Graph, name: &str, shape: &[usize]| {
                Some(
                    g.add_const(name, random_tensor(&mut rng, F32, shape))
                        .unwrap(),
                )
            };
            let x = Some(g.add_input("x", TensorType::fixed(F32, &x_shape)).unwrap());
            let w = constant(&mut g, "w", &[n_dir, gates * hidden, input]);
            let r = constant(&mut g, "r", &[n_dir, gates * hidden, hidden]);
            let b = constant(&mut g, "b", &[n_dir, 2 * gates * hidden]);
            // Random i32 lengths lie in [0, 4): some sequences are empty or short.
            let lens = Some(
                g.add_input("lens", TensorType::fixed(DType::I32, &[batch]))
                    .unwrap(),
            );
            let outs = g
                .add_op_inferred(op(name, &attrs), &[x, w, r, b, lens], None)
                .unwrap();
            for (idx, v) in outs.into_iter().enumerate() {
                g.add_output(format!("out{idx}"), v).unwrap();
            }
            assert!(count_tiles(&g) > 0, "{name} {direction} is not tiled");
            for seed in 0..2 {
                check_graph(&g, seed, TOL);
            }
        }
    }
}

#[test]
fn a_resize_to_an_empty_output_lowers_to_an_empty_kernel() {
    let resize = op(
        "resize",
        &[("scales", AttrValue::Floats(vec![1.0, 1.0, 0.5]))],
    );
    check(resize, &[(F32, &[1, 1, 1])]);
}

/// The kernel names of the lowered program of `graph`, in call order.
fn kernel_names(graph: &Graph) -> Vec<String> {
    let program = lower_graph(graph).unwrap();
    program
        .calls
        .iter()
        .map(|c| c.kernel.name.clone())
        .collect()
}

#[test]
fn elementwise_chains_fuse_into_tile_epilogues() {
    // linear + bias + relu: one tile kernel (plus its remainder-columns kernel), no relu kernel.
    let mut g = Graph::new("t");
    let mut rng = SplitMix64::new(5);
    let x = g.add_input("x", TensorType::fixed(F32, &[9, 6])).unwrap();
    let w = g
        .add_const("w", random_tensor(&mut rng, F32, &[6, 13]))
        .unwrap();
    let b = g
        .add_const("b", random_tensor(&mut rng, F32, &[13]))
        .unwrap();
    let mm = g
        .add_op_inferred(op("matmul", &[]), &[Some(x), Some(w)], None)
        .unwrap()[0];
    let add = g
        .add_op_inferred(op("add", &[]), &[Some(mm), Some(b)], None)
        .unwrap()[0];
    let relu = g
        .add_op_inferred(op("relu", &[]), &[Some(add)], None)
        .unwrap()[0];
    g.add_output("y", relu).unwrap();
    assert_eq!(
        kernel_names(&g),
        ["matmul_add_relu", "matmul_cols_add_relu"]
    );
    check_graph(&g, 1, TOL);

    // conv + relu + residual add + relu (a ResNet block's tail), batch 2.
    let mut g = Graph::new("t");
    let x = g
        .add_input("x", TensorType::fixed(F32, &[2, 4, 6, 6]))
        .unwrap();
    let skip = g
        .add_input("skip", TensorType::fixed(F32, &[2, 5, 6, 6]))
        .unwrap();
    let w = g
        .add_const("w", random_tensor(&mut rng, F32, &[5, 4, 3, 3]))
        .unwrap();
    let bias = g
        .add_const("bias", random_tensor(&mut rng, F32, &[5]))
        .unwrap();
    let conv = op("conv", &[("pads", ints(&[1, 1, 1, 1]))]);
    let y = g
        .add_op_inferred(conv, &[Some(x), Some(w), Some(bias)], None)
        .unwrap()[0];
    let y = g
        .add_op_inferred(op("add", &[]), &[Some(y), Some(skip)], None)
        .unwrap()[0];
    let y = g
        .add_op_inferred(op("relu", &[]), &[Some(y)], None)
        .unwrap()[0];
    g.add_output("y", y).unwrap();
    assert_eq!(kernel_names(&g), ["conv_im2col", "conv_add_relu"]);
    assert!(count_tiles(&g) > 0);
    check_graph(&g, 2, TOL);
}

#[test]
fn gru_without_linear_before_reset_tiles_its_candidate_product_too() {
    let tiles = |linear_before_reset: bool| {
        let mut g = Graph::new("t");
        let mut rng = SplitMix64::new(3);
        let x = g
            .add_input("x", TensorType::fixed(F32, &[4, 1, 3]))
            .unwrap();
        let w = g
            .add_const("w", random_tensor(&mut rng, F32, &[1, 15, 3]))
            .unwrap();
        let r = g
            .add_const("r", random_tensor(&mut rng, F32, &[1, 15, 5]))
            .unwrap();
        let attrs = [
            ("hidden_size", AttrValue::Int(5)),
            ("linear_before_reset", AttrValue::Bool(linear_before_reset)),
        ];
        let outs = g
            .add_op_inferred(op("gru", &attrs), &[Some(x), Some(w), Some(r)], None)
            .unwrap();
        g.add_output("y", outs[0]).unwrap();
        check_graph(&g, 1, TOL);
        count_tiles(&g)
    };
    // The input projection and R h (two panels: 8 + 7 rows), plus R_c (r ⊙ h) without it.
    assert!(
        tiles(false) > tiles(true),
        "{} vs {}",
        tiles(false),
        tiles(true)
    );
}
