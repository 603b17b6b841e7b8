//! The streaming attention kernel (`lower/attention.rs`) and the single-pass row normalizations
//! (`lower/normalize.rs`): numbers against sinter-ref through the loop interpreter on N(0, 1)
//! inputs (odd sizes, full and partial blocks, causal with `Sq` above and below `Skv`, masks, GQA,
//! 3-d layouts, f64), structural facts of the generated loop IR (no `seq x seq` buffer, causal
//! blocks skipped rather than masked, a parallel outer loop after scheduling) and `.sloop`
//! snapshots of small kernels.

use sinter_ir::{AttrValue, DType, Graph, Op, Tensor, TensorData, TensorType, Value};
use sinter_loops::interp::run_program;
use sinter_loops::lower::lower_graph;
use sinter_loops::schedule::{schedule_kernel, ScheduleOptions};
use sinter_loops::text::print_program;
use sinter_loops::verify::{verify_kernel, verify_program};
use sinter_loops::{LoopKind, Program, Stmt};
use sinter_ref::compare::{compare, Tolerance};
use sinter_ref::random::SplitMix64;

const TOL: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-5,
};

fn normal(rng: &mut SplitMix64) -> f64 {
    // Box-Muller; `1 - u` keeps the logarithm finite.
    let u = 1.0 - rng.uniform(0.0, 1.0);
    let w = rng.uniform(0.0, 1.0);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * w).cos()
}

fn random_input(rng: &mut SplitMix64, dtype: DType, shape: &[usize], mean: f64) -> Tensor {
    let len: usize = shape.iter().product();
    let data = match dtype {
        // A bool mask keeps about three keys in four.
        DType::Bool => TensorData::from_f64s(
            dtype,
            (0..len).map(|_| f64::from(rng.uniform(0.0, 1.0) < 0.75)),
        ),
        _ => TensorData::from_f64s(dtype, (0..len).map(|_| mean + normal(rng))),
    };
    Tensor::new(shape.to_vec(), data).unwrap()
}

/// One attention configuration.
#[derive(Clone, Debug)]
struct Case {
    dtype: DType,
    /// `(q, k, v)` shapes, 3-d or 4-d.
    shapes: [Vec<usize>; 3],
    mask: Option<(DType, Vec<usize>)>,
    causal: bool,
    softcap: f32,
    scale: Option<f32>,
    heads: Option<(i64, i64)>,
}

impl Case {
    fn d4(b: usize, hq: usize, hkv: usize, sq: usize, skv: usize, d: usize, dv: usize) -> Case {
        Case {
            dtype: DType::F32,
            shapes: [
                vec![b, hq, sq, d],
                vec![b, hkv, skv, d],
                vec![b, hkv, skv, dv],
            ],
            mask: None,
            causal: false,
            softcap: 0.0,
            scale: None,
            heads: None,
        }
    }

    fn causal(mut self) -> Case {
        self.causal = true;
        self
    }

    fn mask(mut self, dtype: DType, shape: &[usize]) -> Case {
        self.mask = Some((dtype, shape.to_vec()));
        self
    }

    fn op(&self) -> Op {
        let mut attrs = vec![("causal".to_string(), AttrValue::Bool(self.causal))];
        if self.softcap > 0.0 {
            attrs.push(("softcap".into(), AttrValue::Float(self.softcap.into())));
        }
        if let Some(scale) = self.scale {
            attrs.push(("scale".into(), AttrValue::Float(scale.into())));
        }
        if let Some((hq, hkv)) = self.heads {
            attrs.push(("q_num_heads".into(), AttrValue::Int(hq)));
            attrs.push(("kv_num_heads".into(), AttrValue::Int(hkv)));
        }
        Op::from_attrs("attention", attrs.into_iter().collect()).unwrap()
    }

    fn graph(&self) -> Graph {
        let mut g = Graph::new("attention");
        let mut values: Vec<Option<Value>> = ["q", "k", "v"]
            .iter()
            .zip(&self.shapes)
            .map(|(name, shape)| {
                Some(
                    g.add_input(*name, TensorType::fixed(self.dtype, shape))
                        .unwrap(),
                )
            })
            .collect();
        if let Some((dtype, shape)) = &self.mask {
            values.push(Some(
                g.add_input("mask", TensorType::fixed(*dtype, shape))
                    .unwrap(),
            ));
        }
        let outs = g.add_op_inferred(self.op(), &values, None).unwrap();
        g.add_output("y", outs[0]).unwrap();
        g
    }
}

fn inputs_for(graph: &Graph, seed: u64) -> Vec<(String, Tensor)> {
    let mut rng = SplitMix64::new(seed);
    graph
        .input_signature()
        .into_iter()
        .map(|(name, ty)| {
            let shape = ty.shape.as_static().unwrap();
            (
                name.to_string(),
                random_input(&mut rng, ty.dtype, &shape, 0.0),
            )
        })
        .collect()
}

fn run_both(graph: &Graph, program: &Program, inputs: &[(String, Tensor)]) -> (Tensor, Tensor) {
    let refs: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let expected = sinter_ref::run(graph, &refs).unwrap().remove(0).1;
    let borrowed: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let actual = run_program(program, &borrowed).unwrap().remove(0).1;
    (actual, expected)
}

fn scheduled(program: &Program) -> Program {
    let mut out = program.clone();
    let options = ScheduleOptions {
        parallel: true,
        ..ScheduleOptions::default()
    };
    for call in &mut out.calls {
        call.kernel = schedule_kernel(&call.kernel, &options).unwrap();
    }
    out
}

/// The case through lowering (and scheduling) and the interpreter matches the reference.
fn check(case: &Case) {
    let graph = case.graph();
    let program = lower_graph(&graph).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    verify_program(&program).unwrap_or_else(|e| panic!("{case:?}: {e:?}"));
    let program = scheduled(&program);
    verify_program(&program).unwrap_or_else(|e| panic!("{case:?} scheduled: {e:?}"));
    for seed in 0..2 {
        let inputs = inputs_for(&graph, seed);
        let (actual, expected) = run_both(&graph, &program, &inputs);
        let comparison = compare(&actual, &expected, TOL);
        assert!(comparison.matches(), "{case:?}, seed {seed}: {comparison}");
    }
}

#[test]
fn attention_full_and_partial_blocks_match_the_reference() {
    for (sq, skv) in [(1, 1), (7, 7), (33, 130), (130, 33), (64, 64), (65, 130)] {
        for d in [1, 5] {
            check(&Case::d4(1, 2, 2, sq, skv, d, d + 1));
            check(&Case::d4(1, 2, 2, sq, skv, d, d).causal());
        }
    }
}

#[test]
fn attention_head_dim_64() {
    check(&Case::d4(1, 1, 1, 70, 70, 64, 64));
    check(&Case::d4(1, 1, 1, 70, 70, 64, 64).causal());
}

#[test]
fn attention_causal_with_kv_longer_and_shorter_than_q() {
    // Top-left alignment: query i sees keys 0..=i whatever the lengths.
    check(&Case::d4(2, 2, 1, 70, 130, 4, 4).causal());
    check(&Case::d4(1, 2, 2, 130, 65, 4, 3).causal());
    check(&Case::d4(1, 1, 1, 129, 128, 3, 3).causal());
}

#[test]
fn attention_grouped_query_and_3d_layouts() {
    check(&Case::d4(2, 6, 2, 33, 70, 5, 4));
    check(&Case::d4(1, 4, 1, 66, 66, 3, 3).causal());
    let mut case = Case::d4(1, 1, 1, 1, 1, 1, 1);
    case.shapes = [vec![2, 70, 4 * 5], vec![2, 33, 2 * 5], vec![2, 33, 2 * 3]];
    case.heads = Some((4, 2));
    check(&case);
    check(&case.clone().causal());
    check(&case.mask(DType::F32, &[70, 33]));
}

#[test]
fn attention_masks_broadcast_and_pad() {
    let (sq, skv) = (70, 130);
    let base = || Case::d4(2, 2, 2, sq, skv, 4, 4);
    check(&base().mask(DType::F32, &[2, 2, sq, skv]));
    check(&base().mask(DType::F32, &[sq, skv]).causal());
    check(&base().mask(DType::Bool, &[2, 1, 1, skv]));
    check(&base().mask(DType::Bool, &[1, 2, sq, skv]).causal());
    // A last dim shorter than Skv is padded with -inf, never broadcast.
    check(&base().mask(DType::F32, &[sq, 5]));
    check(&base().mask(DType::Bool, &[1, 1]));
}

#[test]
fn attention_softcap_scale_and_f64() {
    let mut case = Case::d4(1, 2, 1, 70, 70, 6, 6).mask(DType::F32, &[70, 70]);
    case.softcap = 1.5;
    check(&case);
    check(&case.clone().causal());
    case.scale = Some(0.75);
    check(&case);
    let mut case = Case::d4(1, 2, 2, 70, 130, 5, 5).causal();
    case.dtype = DType::F64;
    check(&case.mask(DType::F64, &[70, 130]));
}

#[test]
fn attention_fully_masked_rows_are_nan_like_the_reference() {
    // Row 3 keeps no key; row 5 keeps only a key of the second block.
    let (sq, skv) = (70, 100);
    let case = Case::d4(1, 1, 1, sq, skv, 4, 4).mask(DType::Bool, &[sq, skv]);
    let graph = case.graph();
    let program = scheduled(&lower_graph(&graph).unwrap());
    let mut inputs = inputs_for(&graph, 7);
    let mut keep = vec![true; sq * skv];
    keep[3 * skv..4 * skv].fill(false);
    keep[5 * skv..6 * skv].fill(false);
    keep[5 * skv + 80] = true;
    inputs[3].1 = Tensor::new(vec![sq, skv], TensorData::Bool(keep.into())).unwrap();
    let (actual, expected) = run_both(&graph, &program, &inputs);
    let comparison = compare(&actual, &expected, TOL);
    assert!(comparison.matches(), "{comparison}");
    let y = actual.to_f64_vec();
    assert!(y[3 * 4..4 * 4].iter().all(|x| x.is_nan()));
    assert!(y[5 * 4..6 * 4].iter().all(|x| x.is_finite()));
}

#[test]
fn causal_attention_never_reads_keys_after_the_query_block() {
    // Keys and values from 64 on are NaN. Blocks of 64 queries: a kernel that computed those scores
    // and masked them (NaN + -inf) would poison the first block's rows; skipping them cannot.
    let case = Case::d4(1, 1, 1, 130, 130, 4, 4).causal();
    let graph = case.graph();
    let program = scheduled(&lower_graph(&graph).unwrap());
    let clean = inputs_for(&graph, 3);
    let mut poisoned = clean.clone();
    for slot in [1, 2] {
        let mut values = poisoned[slot].1.to_f64_vec();
        values[64 * 4..].fill(f64::NAN);
        poisoned[slot].1 = Tensor::new(
            vec![1, 1, 130, 4],
            TensorData::from_f64s(DType::F32, values.into_iter()),
        )
        .unwrap();
    }
    let (actual, _) = run_both(&graph, &program, &poisoned);
    let (_, expected) = run_both(&graph, &program, &clean);
    let first_block = |t: &Tensor| {
        Tensor::new(
            vec![64, 4],
            TensorData::from_f64s(DType::F32, t.to_f64_vec()[..64 * 4].iter().copied()),
        )
        .unwrap()
    };
    let comparison = compare(&first_block(&actual), &first_block(&expected), TOL);
    assert!(comparison.matches(), "{comparison}");
    assert!(actual.to_f64_vec()[64 * 4..].iter().all(|x| x.is_nan()));
}

/// Every kernel's statements, flattened.
fn count_stmts(stmts: &[Stmt], pred: &dyn Fn(&Stmt) -> bool) -> usize {
    stmts
        .iter()
        .map(|s| {
            usize::from(pred(s))
                + match s {
                    Stmt::Loop(lp) => count_stmts(&lp.body, pred),
                    Stmt::If {
                        then, otherwise, ..
                    } => count_stmts(then, pred) + count_stmts(otherwise, pred),
                    _ => 0,
                }
        })
        .sum()
}

#[test]
fn attention_memory_is_linear_in_the_sequence() {
    let seq = 1024;
    for case in [
        Case::d4(1, 1, 1, seq, seq, 64, 64),
        Case::d4(1, 1, 1, seq, seq, 64, 64).causal(),
        Case::d4(2, 4, 2, seq, seq, 16, 16).causal(),
    ] {
        let program = lower_graph(&case.graph()).unwrap();
        let q_len: usize = case.shapes[0].iter().product();
        let d = case.shapes[0][3];
        for call in &program.calls {
            for buf in &call.kernel.buffers {
                assert!(
                    buf.len < seq * seq,
                    "{}: {} has {}",
                    call.kernel.name,
                    buf.name,
                    buf.len
                );
            }
            let scratch: usize = call
                .kernel
                .buffers
                .iter()
                .filter(|b| b.role == sinter_loops::BufferRole::Scratch)
                .map(|b| b.len)
                .sum();
            // (D + BLOCK + 3) per query row (module doc).
            assert!(
                scratch <= q_len / d * (d + 64 + 3),
                "{}: {scratch} scratch elements",
                call.kernel.name
            );
        }
    }
}

#[test]
fn attention_kernel_is_parallel_and_vectorized_after_scheduling() {
    for case in [
        Case::d4(1, 1, 1, 256, 256, 64, 64).causal(),
        Case::d4(2, 4, 2, 256, 200, 16, 16).mask(DType::Bool, &[2, 1, 1, 200]),
        Case::d4(2, 4, 4, 64, 64, 8, 8),
    ] {
        let program = scheduled(&lower_graph(&case.graph()).unwrap());
        let main = program
            .calls
            .iter()
            .find(|c| c.kernel.name == "attention")
            .expect("the main kernel")
            .kernel
            .clone();
        verify_kernel(&main).unwrap();
        let [Stmt::Loop(top)] = main.body.as_slice() else {
            panic!("{case:?}: the body is not one loop");
        };
        assert_eq!(top.kind, LoopKind::Parallel, "{case:?}");
        let vectorized = count_stmts(
            &main.body,
            &|s| matches!(s, Stmt::Loop(lp) if matches!(lp.kind, LoopKind::Vectorized { .. })),
        );
        // The q pack is scalar; the state init, output init, softmax rows, rescale and final
        // division vectorize.
        assert!(vectorized >= 5, "{case:?}: {vectorized} vectorized loops");
        let tiles = count_stmts(&main.body, &|s| matches!(s, Stmt::MatTile(_)));
        assert!(tiles >= 2, "{case:?}: {tiles} tiles");
    }
}

#[test]
fn causal_attention_guards_blocks_after_the_diagonal() {
    let program = lower_graph(&Case::d4(1, 1, 1, 256, 256, 8, 8).causal().graph()).unwrap();
    let main = &program
        .calls
        .iter()
        .find(|c| c.kernel.name == "attention")
        .unwrap()
        .kernel;
    // One `if` per key block chooses visible / diagonal / skipped: two nested conditions.
    let ifs = count_stmts(&main.body, &|s| matches!(s, Stmt::If { .. }));
    assert_eq!(ifs, 2);
    let non_causal = lower_graph(&Case::d4(1, 1, 1, 256, 256, 8, 8).graph()).unwrap();
    let ifs = count_stmts(&non_causal.calls[0].kernel.body, &|s| {
        matches!(s, Stmt::If { .. })
    });
    assert_eq!(ifs, 0);
}

#[test]
fn small_causal_attention_snapshot() {
    let case = Case::d4(1, 2, 1, 5, 6, 3, 2)
        .causal()
        .mask(DType::Bool, &[6]);
    let program = lower_graph(&case.graph()).unwrap();
    insta::assert_snapshot!("attention_small_causal", print_program(&program));
}

/// A `layer_norm` / `rms_norm` over the last axis of `shape`, with scale and (layer_norm) bias.
fn norm_graph(name: &str, shape: &[usize], epsilon: f32) -> Graph {
    let mut g = Graph::new(name);
    let block = *shape.last().unwrap();
    let x = g
        .add_input("x", TensorType::fixed(DType::F32, shape))
        .unwrap();
    let scale = g
        .add_input("scale", TensorType::fixed(DType::F32, &[block]))
        .unwrap();
    let mut inputs = vec![Some(x), Some(scale)];
    if name == "layer_norm" {
        inputs.push(Some(
            g.add_input("bias", TensorType::fixed(DType::F32, &[block]))
                .unwrap(),
        ));
    }
    let op = Op::from_attrs(
        name,
        [
            ("axis".to_string(), AttrValue::Int(-1)),
            ("epsilon".to_string(), AttrValue::Float(epsilon.into())),
        ]
        .into_iter()
        .collect(),
    )
    .unwrap();
    let outs = g.add_op_inferred(op, &inputs, None).unwrap();
    g.add_output("y", outs[0]).unwrap();
    g
}

#[test]
fn layer_norm_of_rows_with_a_large_mean_matches_the_reference() {
    for name in ["layer_norm", "rms_norm"] {
        for (shape, mean) in [
            (vec![3, 768], 1000.0),
            (vec![4, 7], 1000.0),
            (vec![2, 1], 5.0),
            (vec![5, 33], -3000.0),
            (vec![2, 256], 0.0),
        ] {
            let graph = norm_graph(name, &shape, 1e-5);
            let program = scheduled(&lower_graph(&graph).unwrap());
            verify_program(&program).unwrap();
            let mut rng = SplitMix64::new(11);
            let inputs: Vec<(String, Tensor)> = graph
                .input_signature()
                .into_iter()
                .map(|(n, ty)| {
                    let shape = ty.shape.as_static().unwrap();
                    let m = if n == "x" { mean } else { 0.0 };
                    (n.to_string(), random_input(&mut rng, DType::F32, &shape, m))
                })
                .collect();
            let (actual, expected) = run_both(&graph, &program, &inputs);
            let comparison = compare(&actual, &expected, TOL);
            assert!(
                comparison.matches(),
                "{name} {shape:?} mean {mean}: {comparison}"
            );
        }
    }
}

#[test]
fn layer_norm_reads_each_row_once_for_its_statistics() {
    let program = lower_graph(&norm_graph("layer_norm", &[4, 16], 1e-5)).unwrap();
    let kernel = &program.calls[0].kernel;
    // One loop over the rows holding two loops over the block: statistics and the write pass.
    let [Stmt::Loop(rows)] = kernel.body.as_slice() else {
        panic!("not one row loop");
    };
    let block_loops = rows
        .body
        .iter()
        .filter(|s| matches!(s, Stmt::Loop(_)))
        .count();
    assert_eq!(block_loops, 2);
    insta::assert_snapshot!("layer_norm", print_program(&program));
}

#[test]
fn attention_with_empty_head_dim_or_no_keys_matches_the_reference() {
    // Head size 0: every score is `0 * scale`, NaN for the default scale 1/sqrt(0).
    check(&Case::d4(1, 2, 1, 3, 4, 0, 2));
    let mut scaled = Case::d4(1, 2, 1, 3, 4, 0, 2);
    scaled.scale = Some(0.5);
    check(&scaled);
    // No keys: every output is an empty sum.
    check(&Case::d4(1, 2, 1, 3, 0, 2, 2));
}
