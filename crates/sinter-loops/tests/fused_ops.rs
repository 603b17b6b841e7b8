//! The lowering of the fused ops (`fused_conv`, `fused_matmul`, `conv_pool`) and of `silu`: `.sloop`
//! snapshots of small cases, and the loop interpreter against `sinter_ref::run` on seeded random
//! cases over strides, pads, dilations, groups, pool windows, every activation, with and without the
//! optional inputs, through both the tiled and the direct paths.

mod common;

use sinter_ir::{AttrValue, DType, FusedActivation, Graph, Op, TensorType, Value};
use sinter_loops::lower::lower_graph;
use sinter_loops::text::print_program;
use sinter_loops::verify::verify_program;
use sinter_loops::Program;
use sinter_ref::compare::Tolerance;
use sinter_ref::random::{random_tensor, SplitMix64};

const TOL: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-5,
};

fn ints(values: &[usize]) -> AttrValue {
    AttrValue::Ints(values.iter().map(|&v| v as i64).collect())
}

/// One random graph: inputs (`x` and any non-constant operands), constants, one op.
struct Case {
    g: Graph,
    rng: SplitMix64,
}

impl Case {
    fn new(seed: u64) -> Case {
        Case {
            g: Graph::new("fused"),
            rng: SplitMix64::new(seed),
        }
    }

    fn below(&mut self, n: u64) -> usize {
        (self.rng.next_u64() % n) as usize
    }

    fn input(&mut self, name: &str, dtype: DType, shape: &[usize]) -> Value {
        self.g
            .add_input(name, TensorType::fixed(dtype, shape))
            .unwrap()
    }

    fn weight(&mut self, name: &str, dtype: DType, shape: &[usize]) -> Value {
        let tensor = random_tensor(&mut self.rng, dtype, shape);
        self.g.add_const(name, tensor).unwrap()
    }

    /// Adds `op` over `inputs`; `None` when inference rejects the random combination.
    fn op(&mut self, op: Op, inputs: &[Option<Value>]) -> Option<Value> {
        self.g
            .add_op_inferred(op, inputs, Some("fused".into()))
            .ok()
            .map(|v| v[0])
    }

    /// A random activation with valid parameters.
    fn activation(&mut self) -> (FusedActivation, Vec<f32>) {
        let all = FusedActivation::ALL;
        let activation = all[self.below(all.len() as u64)];
        let params = match activation {
            FusedActivation::LeakyRelu => vec![0.2],
            FusedActivation::Clip => match self.below(3) {
                0 => vec![-0.5, 0.5],
                1 => vec![f32::NEG_INFINITY, 0.25],
                _ => vec![0.0, f32::INFINITY],
            },
            _ => vec![],
        };
        (activation, params)
    }
}

/// Lowers and verifies `g`, and checks the interpreter against the reference on two seeds.
fn check(g: &Graph, seed: u64) -> Program {
    let program = lower_graph(g).unwrap_or_else(|e| panic!("{e}"));
    if let Err(errors) = verify_program(&program) {
        panic!("does not verify: {errors:#?}\n{}", print_program(&program));
    }
    for s in 0..2 {
        common::interp_matches_reference(g, &program, seed * 7 + s, TOL);
    }
    program
}

fn uses_tiles(program: &Program) -> bool {
    print_program(program).contains("tile rows ")
}

/// The convolution attributes and input shapes of a random convolution: `(attrs, x, w)`.
#[allow(clippy::type_complexity)]
fn random_conv(c: &mut Case, big: bool) -> (Vec<(String, AttrValue)>, Vec<usize>, Vec<usize>) {
    let n_sp = if c.below(5) == 0 { 1 } else { 2 };
    let group = [1, 1, 2, 3][c.below(4)];
    let depthwise = c.below(5) == 0;
    let (cg, mg) = if depthwise {
        (1, 1)
    } else if big {
        (3 + c.below(3), 4 + c.below(5))
    } else {
        (1 + c.below(2), 1 + c.below(3))
    };
    let n = 1 + c.below(2);
    let kernel: Vec<usize> = (0..n_sp).map(|_| 1 + c.below(3)).collect();
    let strides: Vec<usize> = (0..n_sp).map(|_| 1 + c.below(2)).collect();
    let dilations: Vec<usize> = (0..n_sp).map(|_| 1 + c.below(2)).collect();
    let pads: Vec<usize> = (0..2 * n_sp).map(|_| c.below(2)).collect();
    let size = if big { 10 + c.below(6) } else { 4 + c.below(4) };
    let mut x = vec![n, cg * group];
    x.extend(vec![size; n_sp]);
    let mut w = vec![mg * group, cg];
    w.extend(&kernel);
    let mut attrs = vec![
        ("strides".to_string(), ints(&strides)),
        ("dilations".to_string(), ints(&dilations)),
        ("group".to_string(), AttrValue::Int(group as i64)),
    ];
    if c.below(4) == 0 {
        attrs.push(("auto_pad".into(), AttrValue::Ident("same_upper".into())));
    } else {
        attrs.push(("pads".into(), ints(&pads)));
    }
    (attrs, x, w)
}

fn with_activation(
    mut attrs: Vec<(String, AttrValue)>,
    (activation, params): (FusedActivation, Vec<f32>),
) -> Vec<(String, AttrValue)> {
    attrs.push((
        "activation".into(),
        AttrValue::Ident(activation.name().into()),
    ));
    attrs.push((
        "activation_params".into(),
        AttrValue::Floats(params.into_iter().map(f64::from).collect()),
    ));
    attrs
}

#[test]
fn fused_conv_matches_the_reference() {
    let (mut n_checked, mut n_tiled) = (0, 0);
    for seed in 0..60u64 {
        let mut c = Case::new(seed);
        let big = seed % 2 == 0;
        let (attrs, x_shape, w_shape) = random_conv(&mut c, big);
        let attrs = with_activation(attrs, c.activation());
        let op = Op::from_attrs("fused_conv", attrs).unwrap();
        let x = c.input("x", DType::F32, &x_shape);
        let w = c.weight("w", DType::F32, &w_shape);
        let b = (c.below(2) == 0).then(|| c.weight("b", DType::F32, &[w_shape[0]]));
        // The residual's type is the convolution's: infer it first.
        let Ok(types) = sinter_ir::infer_types(
            &op,
            &[
                Some(c.g.value_type(x)),
                Some(c.g.value_type(w)),
                b.map(|b| c.g.value_type(b)),
            ],
        ) else {
            continue;
        };
        let z = (c.below(2) == 0)
            .then(|| c.input("z", DType::F32, &types[0].shape.as_static().unwrap()));
        let Some(y) = c.op(op, &[Some(x), Some(w), b, z]) else {
            continue;
        };
        // Half the cases feed a graph epilogue the fused op's own epilogue must come before.
        let y = if c.below(2) == 0 {
            c.op(Op::Tanh {}, &[Some(y)]).unwrap()
        } else {
            y
        };
        c.g.add_output("y", y).unwrap();
        let program = check(&c.g, seed);
        n_checked += 1;
        n_tiled += usize::from(uses_tiles(&program));
    }
    assert!(n_checked >= 40, "only {n_checked} valid cases");
    assert!(
        n_tiled >= 10 && n_tiled < n_checked,
        "{n_tiled} of {n_checked} tiled"
    );
}

#[test]
fn fused_conv_in_f64_uses_the_direct_nest() {
    let mut c = Case::new(3);
    let x = c.input("x", DType::F64, &[1, 2, 5, 5]);
    let w = c.weight("w", DType::F64, &[3, 2, 3, 3]);
    let z = c.input("z", DType::F64, &[1, 3, 3, 3]);
    let attrs = with_activation(vec![], (FusedActivation::GeluTanh, vec![]));
    let y = c
        .op(
            Op::from_attrs("fused_conv", attrs).unwrap(),
            &[Some(x), Some(w), None, Some(z)],
        )
        .unwrap();
    c.g.add_output("y", y).unwrap();
    let program = check(&c.g, 5);
    assert!(!uses_tiles(&program));
}

#[test]
fn fused_matmul_matches_the_reference() {
    let (mut n_checked, mut n_tiled) = (0, 0);
    for seed in 0..60u64 {
        let mut c = Case::new(100 + seed);
        let dtype = [DType::F32, DType::F32, DType::F32, DType::F64, DType::I32][c.below(5)];
        let (m, k, n) = (1 + c.below(12), 1 + c.below(9), 1 + c.below(20));
        let batch: Vec<usize> = (0..c.below(3)).map(|_| 1 + c.below(3)).collect();
        let mut a_shape = batch.clone();
        a_shape.extend([m, k]);
        if c.below(6) == 0 {
            a_shape = vec![k];
        }
        let mut b_shape = vec![k, n];
        if c.below(6) == 0 {
            b_shape = vec![k];
        }
        let a = c.input("a", dtype, &a_shape);
        let b = if c.below(2) == 0 {
            c.weight("b", dtype, &b_shape)
        } else {
            c.input("b", dtype, &b_shape)
        };
        let Ok(product) = sinter_ir::infer_types(
            &Op::MatMul {},
            &[Some(c.g.value_type(a)), Some(c.g.value_type(b))],
        ) else {
            continue;
        };
        let out = product[0].shape.as_static().unwrap();
        // A bias of a random suffix of the product's shape, some dims broadcast.
        let bias = (c.below(3) != 0).then(|| {
            let rank = c.below(out.len() as u64 + 1);
            let shape: Vec<usize> = out[out.len() - rank..]
                .iter()
                .map(|&d| if c.below(3) == 0 { 1 } else { d })
                .collect();
            c.weight("bias", dtype, &shape)
        });
        let activation = if dtype == DType::I32 {
            let all = [FusedActivation::Identity, FusedActivation::Relu];
            (all[c.below(2)], vec![])
        } else {
            c.activation()
        };
        let op = Op::from_attrs("fused_matmul", with_activation(vec![], activation)).unwrap();
        let Some(y) = c.op(op, &[Some(a), Some(b), bias]) else {
            continue;
        };
        c.g.add_output("y", y).unwrap();
        let program = check(&c.g, seed);
        n_checked += 1;
        n_tiled += usize::from(uses_tiles(&program));
    }
    assert!(n_checked >= 50, "only {n_checked} valid cases");
    assert!(
        n_tiled >= 10 && n_tiled < n_checked,
        "{n_tiled} of {n_checked} tiled"
    );
}

#[test]
fn conv_pool_matches_the_reference() {
    let (mut n_checked, mut n_tiled, mut n_masked) = (0, 0, 0);
    for seed in 0..80u64 {
        let mut c = Case::new(200 + seed);
        let big = seed % 2 == 0;
        let (mut attrs, x_shape, w_shape) = random_conv(&mut c, big);
        let n_sp = x_shape.len() - 2;
        let kernel: Vec<usize> = (0..n_sp).map(|_| 1 + c.below(3)).collect();
        let strides: Vec<usize> = (0..n_sp).map(|_| 1 + c.below(3)).collect();
        let pads: Vec<usize> = (0..2 * n_sp)
            .map(|i| c.below(kernel[i % n_sp] as u64))
            .collect();
        let max = c.below(2) == 0;
        attrs.extend([
            (
                "pool".to_string(),
                AttrValue::Ident(if max { "max" } else { "average" }.into()),
            ),
            ("pool_kernel_shape".into(), ints(&kernel)),
            ("pool_strides".into(), ints(&strides)),
            ("pool_pads".into(), ints(&pads)),
            ("pool_ceil_mode".into(), AttrValue::Bool(c.below(2) == 0)),
            ("count_include_pad".into(), AttrValue::Bool(c.below(2) == 0)),
        ]);
        let attrs = with_activation(attrs, c.activation());
        let op = Op::from_attrs("conv_pool", attrs).unwrap();
        let x = c.input("x", DType::F32, &x_shape);
        let w = c.weight("w", DType::F32, &w_shape);
        let b = (c.below(2) == 0).then(|| c.weight("b", DType::F32, &[w_shape[0]]));
        let Some(y) = c.op(op, &[Some(x), Some(w), b]) else {
            continue;
        };
        c.g.add_output("y", y).unwrap();
        let program = check(&c.g, seed);
        n_checked += 1;
        n_tiled += usize::from(uses_tiles(&program));
        n_masked += usize::from(print_program(&program).contains("pool_mask"));
    }
    assert!(n_checked >= 40, "only {n_checked} valid cases");
    assert!(
        n_tiled >= 10 && n_tiled < n_checked,
        "{n_tiled} of {n_checked} tiled"
    );
    assert!(n_masked >= 10, "{n_masked} of {n_checked} masked");
}

/// A 3x3 conv (8 -> 16 channels, relu) and a 2x2 max pool over an image of `size`: the program,
/// checked, and the element counts of its scratch buffers, largest first.
fn banded(size: usize) -> (Program, Vec<usize>) {
    let mut c = Case::new(9);
    let x = c.input("x", DType::F32, &[1, 8, size, size]);
    let w = c.weight("w", DType::F32, &[16, 8, 3, 3]);
    let b = c.weight("b", DType::F32, &[16]);
    let attrs = with_activation(
        vec![
            ("pool".into(), AttrValue::Ident("max".into())),
            ("pool_kernel_shape".into(), ints(&[2, 2])),
            ("pool_strides".into(), ints(&[2, 2])),
        ],
        (FusedActivation::Relu, vec![]),
    );
    let op = Op::from_attrs("conv_pool", attrs).unwrap();
    let y = c.op(op, &[Some(x), Some(w), Some(b)]).unwrap();
    c.g.add_output("y", y).unwrap();
    let program = check(&c.g, 1);
    assert_eq!(program.calls.len(), 1);
    assert!(uses_tiles(&program));
    let mut scratch: Vec<usize> = program
        .buffers
        .iter()
        .filter(|b| b.name.starts_with("scratch."))
        .map(|b| b.shape.iter().product::<usize>())
        .collect();
    scratch.sort_unstable_by(|a, b| b.cmp(a));
    (program, scratch)
}

#[test]
fn conv_pool_computes_bands_of_the_convolution_output() {
    // 40x40 -> conv 38x38 -> 19 pooled rows: a prime count, so one pooled row (two conv rows) per
    // band: im2col 72 x 2 x 38, band 16 x 2 x 38, never the 16 x 38 x 38 convolution output.
    let (_, scratch) = banded(40);
    assert_eq!(scratch, [72 * 2 * 38, 16 * 2 * 38]);
    // 26x26 -> conv 24x24 -> 12 pooled rows, 6 per band (the largest divisor within the budget).
    let (_, scratch) = banded(26);
    assert_eq!(scratch, [72 * 12 * 24, 16 * 12 * 24]);
    // A small convolution fits in one band.
    let (_, scratch) = banded(10);
    assert_eq!(scratch, [72 * 8 * 8, 16 * 8 * 8]);
}

#[test]
fn silu_lowers_and_fuses_like_any_activation() {
    let mut c = Case::new(4);
    let x = c.input("x", DType::F32, &[3, 5]);
    let s = c.op(Op::Silu {}, &[Some(x)]).unwrap();
    let t = c.op(Op::Silu {}, &[Some(s)]).unwrap();
    c.g.add_output("y", t).unwrap();
    let program = check(&c.g, 2);
    assert_eq!(program.calls.len(), 1);
}

/// A small conv_pool on the direct path (average, overlapping, padded, ceil mode), for review.
#[test]
fn conv_pool_snapshot() {
    let mut c = Case::new(21);
    let x = c.input("x", DType::F32, &[1, 2, 5, 5]);
    let w = c.weight("w", DType::F32, &[2, 1, 3, 3]);
    let b = c.weight("b", DType::F32, &[2]);
    let attrs = with_activation(
        vec![
            ("pads".into(), ints(&[1, 1, 1, 1])),
            ("group".into(), AttrValue::Int(2)),
            ("pool".into(), AttrValue::Ident("average".into())),
            ("pool_kernel_shape".into(), ints(&[3, 3])),
            ("pool_strides".into(), ints(&[2, 2])),
            ("pool_pads".into(), ints(&[1, 1, 0, 0])),
            ("pool_ceil_mode".into(), AttrValue::Bool(true)),
        ],
        (FusedActivation::Relu, vec![]),
    );
    let op = Op::from_attrs("conv_pool", attrs).unwrap();
    let y = c.op(op, &[Some(x), Some(w), Some(b)]).unwrap();
    c.g.add_output("y", y).unwrap();
    let program = check(&c.g, 3);
    insta::assert_snapshot!("conv_pool", print_program(&program));
}

/// A small tiled fused_conv with bias, residual and clip, for review: the residual add and the clip
/// sit in the tiles' epilogue.
#[test]
fn fused_conv_snapshot() {
    let mut c = Case::new(22);
    let x = c.input("x", DType::F32, &[1, 4, 6, 6]);
    let w = c.weight("w", DType::F32, &[8, 4, 3, 3]);
    let b = c.weight("b", DType::F32, &[8]);
    let z = c.input("z", DType::F32, &[1, 8, 6, 6]);
    let attrs = with_activation(
        vec![("pads".into(), ints(&[1, 1, 1, 1]))],
        (FusedActivation::Clip, vec![0.0, 6.0]),
    );
    let op = Op::from_attrs("fused_conv", attrs).unwrap();
    let y = c.op(op, &[Some(x), Some(w), Some(b), Some(z)]).unwrap();
    c.g.add_output("y", y).unwrap();
    let program = check(&c.g, 4);
    assert!(uses_tiles(&program));
    insta::assert_snapshot!("fused_conv", print_program(&program));
}
