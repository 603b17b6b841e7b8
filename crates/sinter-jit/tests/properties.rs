//! Property tests: for every op family, random shapes, attributes and data (and small random graphs
//! mixing families) are compiled by the JIT and compared with the reference interpreter.
//!
//! The op fixtures and the ONNX node suite pin down a few hand-picked cases per op; the lowering has
//! many shape- and attribute-dependent paths (broadcast strides, vector tails, pads, groups, strides,
//! directions, coordinate modes) that only random cases reach. Each case is a graph built with
//! `Graph::add_op_inferred` whose operands are graph inputs (weights are sometimes constants, which
//! the JIT bakes in as weights), compiled with `sinter_jit::compile` under a random schedule (threads,
//! vector width, unroll) and run on the same seeded data as `sinter_ref::run`. Every output is compared
//! with `sinter_ref::compare` at rtol 1e-4 / atol 1e-5; a family that needs more says why.
//!
//! Runs are reproducible: the proptest RNG has a fixed seed and failure-persistence files are off.
//! A failing case shrinks to a minimal one; the failure message prints its graph as `.sir` text, the
//! schedule and (for small tensors) the input data.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{RngSeed, TestCaseError};
use sinter_ir::rng::SplitMix64;
use sinter_ir::text::{print_graph, PrintOptions};
use sinter_ir::{
    AutoPad, CoordTransform, DType, FusedActivation, GeluApprox, Graph, NearestMode, Op, PadMode,
    ResizeMode, RnnActivation, RnnDirection, Shape, Tensor, TensorData, TensorType, Value,
};
use sinter_jit::{compile, CompileOptions};
use sinter_loops::schedule::ScheduleOptions;
use sinter_ref::compare::{compare, Tolerance};

/// The default tolerance of this file.
const TOL: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-5,
};

/// A fixed seed, no persistence files, and a bound on shrinking so a failure reports in bounded time.
/// `SINTER_PROPTEST_SCALE=N` multiplies every case count (and `SINTER_PROPTEST_SEED` replaces the
/// seed) for a deeper local search; CI runs the counts written here.
fn config(cases: u32) -> ProptestConfig {
    let env_u64 = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let scale = env_u64("SINTER_PROPTEST_SCALE").unwrap_or(1).max(1);
    ProptestConfig {
        cases: cases.saturating_mul(u32::try_from(scale).unwrap_or(u32::MAX)),
        rng_seed: RngSeed::Fixed(env_u64("SINTER_PROPTEST_SEED").unwrap_or(0x51_4E_7E_B2)),
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: building a case, running both backends, comparing.
// ---------------------------------------------------------------------------------------------

/// How the JIT schedules a case: every combination must compute the same values.
#[derive(Clone, Copy, Debug)]
struct Backend {
    threads: usize,
    vector_width: u32,
    unroll: u32,
}

impl Backend {
    fn options(self) -> CompileOptions {
        CompileOptions {
            threads: Some(self.threads),
            schedule: ScheduleOptions {
                vector_width: self.vector_width,
                parallel: self.threads > 1,
                unroll: self.unroll,
            },
            // The optimizer stays on: the random DAGs check it against the reference too.
            ..CompileOptions::default()
        }
    }
}

/// Shrinks towards one thread, vectors of 4 and no unrolling (the default single-threaded schedule).
fn backend() -> impl Strategy<Value = Backend> {
    (
        prop_oneof![3 => Just(1usize), 1 => Just(2usize)],
        prop_oneof![3 => Just(4u32), 1 => Just(1u32)],
        prop_oneof![3 => Just(1u32), 1 => Just(4u32)],
    )
        .prop_map(|(threads, vector_width, unroll)| Backend {
            threads,
            vector_width,
            unroll,
        })
}

/// How input values are drawn.
#[derive(Clone, Copy, Debug)]
enum Dist {
    /// Uniform in `[lo, hi)`.
    Uniform(f64, f64),
    /// Integers in `lo..=hi` (converted to the dtype, so also integral floats that tie and compare equal).
    Ints(i64, i64),
    /// Integers in `-m..=m` without 0 (integer divisors).
    NonZeroInts(i64),
    /// Magnitude uniform in `[lo, hi)`, random sign (float divisors).
    AwayFromZero(f64, f64),
    /// Multiples of 0.5 in `-m/2..=m/2` (ties for rounding).
    Halves(i64),
    /// Fair bools.
    Bool,
}

/// A graph under construction with the data of its inputs.
struct Case {
    graph: Graph,
    inputs: Vec<(String, Tensor)>,
    rng: SplitMix64,
    n_consts: usize,
}

impl Case {
    fn new(seed: u64) -> Case {
        Case {
            graph: Graph::new("prop"),
            inputs: Vec::new(),
            rng: SplitMix64::new(seed),
            n_consts: 0,
        }
    }

    fn data(&mut self, dtype: DType, shape: &[usize], dist: Dist) -> Tensor {
        let len: usize = shape.iter().product();
        let rng = &mut self.rng;
        let values: Vec<f64> = (0..len)
            .map(|_| match dist {
                Dist::Uniform(lo, hi) => rng.uniform(lo, hi),
                Dist::Ints(lo, hi) => (lo + (rng.next_u64() % (hi - lo + 1) as u64) as i64) as f64,
                Dist::NonZeroInts(m) => {
                    let v = 1 + (rng.next_u64() % m as u64) as i64;
                    if rng.next_u64() & 1 == 0 {
                        v as f64
                    } else {
                        -v as f64
                    }
                }
                Dist::AwayFromZero(lo, hi) => {
                    let v = rng.uniform(lo, hi);
                    if rng.next_u64() & 1 == 0 {
                        v
                    } else {
                        -v
                    }
                }
                Dist::Halves(m) => (-m + (rng.next_u64() % (2 * m + 1) as u64) as i64) as f64 / 2.0,
                Dist::Bool => (rng.next_u64() & 1) as f64,
            })
            .collect();
        Tensor::new(
            shape.to_vec(),
            TensorData::from_f64s(dtype, values.into_iter()),
        )
        .expect("the data has the shape's element count")
    }

    /// A graph input with random data.
    fn input(&mut self, dtype: DType, shape: &[usize], dist: Dist) -> Value {
        let tensor = self.data(dtype, shape, dist);
        self.input_tensor(tensor)
    }

    fn input_tensor(&mut self, tensor: Tensor) -> Value {
        let name = format!("in{}", self.inputs.len());
        let value = self
            .graph
            .add_input(name.clone(), tensor.ty())
            .expect("input names are fresh");
        self.inputs.push((name, tensor));
        value
    }

    /// A constant with random data (the JIT compiles it in as a weight).
    fn constant(&mut self, dtype: DType, shape: &[usize], dist: Dist) -> Value {
        let tensor = self.data(dtype, shape, dist);
        let name = format!("c{}", self.n_consts);
        self.n_consts += 1;
        self.graph
            .add_const(name, tensor)
            .expect("constant names are fresh")
    }

    /// A graph input, or a constant when `as_const`.
    fn operand(&mut self, as_const: bool, dtype: DType, shape: &[usize], dist: Dist) -> Value {
        if as_const {
            self.constant(dtype, shape, dist)
        } else {
            self.input(dtype, shape, dist)
        }
    }

    /// Adds `op`; an inference error means the strategy generated an invalid case, which fails.
    fn op(&mut self, op: Op, inputs: &[Option<Value>]) -> Result<Vec<Value>, TestCaseError> {
        self.graph
            .add_op_inferred(op, inputs, None)
            .map_err(|e| TestCaseError::fail(format!("the generated case does not infer: {e}")))
    }

    fn op1(&mut self, op: Op, inputs: &[Value]) -> Result<Value, TestCaseError> {
        let inputs: Vec<Option<Value>> = inputs.iter().copied().map(Some).collect();
        Ok(self.op(op, &inputs)?[0])
    }

    fn ty(&self, value: Value) -> &TensorType {
        self.graph.value_type(value)
    }

    fn shape(&self, value: Value) -> Vec<usize> {
        self.ty(value)
            .shape
            .as_static()
            .expect("property graphs are static")
    }

    fn output(&mut self, value: Value) {
        let name = format!("y{}", self.graph.outputs().len());
        self.graph
            .add_output(name, value)
            .expect("output names are fresh");
    }

    fn outputs(&mut self, values: &[Value]) {
        for &value in values {
            self.output(value);
        }
    }

    /// The graph as text and the inputs with at most 64 elements, for a failure message.
    fn describe(&self, backend: Backend) -> String {
        let mut text = format!(
            "schedule {backend:?}\n{}",
            print_graph(&self.graph, &PrintOptions::default())
        );
        for (name, tensor) in &self.inputs {
            if tensor.len() <= 64 {
                text.push_str(&format!("%{name} = {:?}\n", tensor.to_f64_vec()));
            } else {
                text.push_str(&format!("%{name}: {} elements\n", tensor.len()));
            }
        }
        text
    }

    /// Runs the reference and the JIT and compares every output under `tol`.
    fn check(self, backend: Backend, tol: Tolerance) -> Result<(), TestCaseError> {
        let fail =
            |what: String| TestCaseError::fail(format!("{what}\n{}", self.describe(backend)));
        let owned: Vec<(&str, Tensor)> = self
            .inputs
            .iter()
            .map(|(n, t)| (n.as_str(), t.clone()))
            .collect();
        let expected = sinter_ref::run(&self.graph, &owned)
            .map_err(|e| fail(format!("the reference cannot run the case: {e}")))?;
        let model = compile(self.graph.clone(), &backend.options())
            .map_err(|e| fail(format!("the JIT cannot compile the case: {e}")))?;
        let inputs: Vec<(&str, &Tensor)> =
            self.inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let actual = model
            .run(&inputs)
            .map_err(|e| fail(format!("the JIT cannot run the case: {e}")))?;
        if actual.len() != expected.len() {
            return Err(fail(format!(
                "{} outputs from the JIT, {} from the reference",
                actual.len(),
                expected.len()
            )));
        }
        for ((name, want), (_, got)) in expected.iter().zip(&actual) {
            let verdict = compare(got, want, tol);
            if !verdict.matches() {
                return Err(fail(format!("output {name}: {verdict}")));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Shared strategies.
// ---------------------------------------------------------------------------------------------

/// A seed for the input data (shrinks to 0; the shapes and attributes are what shrinking is for).
fn seed() -> impl Strategy<Value = u64> {
    any::<u64>()
}

/// A shape of rank `ranks` with dims in `1..=max_dim`; the last dim may reach `max_last` so that
/// vector loops get tails (sizes that are not multiples of 4).
fn shape(
    ranks: std::ops::RangeInclusive<usize>,
    max_dim: usize,
    max_last: usize,
) -> BoxedStrategy<Vec<usize>> {
    ranks
        .prop_flat_map(move |rank| {
            (
                prop::collection::vec(1..=max_dim, rank.saturating_sub(1)),
                1..=max_last,
            )
                .prop_map(move |(mut dims, last)| {
                    if rank > 0 {
                        dims.push(last);
                    }
                    dims
                })
        })
        .boxed()
}

/// An axis in `0..rank`, written negative (`axis - rank`) when `negative`.
fn axis_attr(axis: usize, rank: usize, negative: bool) -> i64 {
    if negative {
        axis as i64 - rank as i64
    } else {
        axis as i64
    }
}

/// The shape of an operand that broadcasts to `out`: the last `out.len() - drop` dims, each one set
/// to 1 where `ones` says so.
fn broadcast_operand(out: &[usize], drop: usize, ones: &[bool]) -> Vec<usize> {
    let drop = drop.min(out.len());
    out[drop..]
        .iter()
        .enumerate()
        .map(|(idx, &d)| if ones[idx % ones.len()] { 1 } else { d })
        .collect()
}

/// Integer data (i64) or float data (f32), for ops that only move values.
fn f32_or_i64(int: bool) -> (DType, Dist) {
    if int {
        (DType::I64, Dist::Ints(-99, 99))
    } else {
        (DType::F32, Dist::Uniform(-1.0, 1.0))
    }
}

fn ones_mask() -> impl Strategy<Value = Vec<bool>> {
    prop::collection::vec(prop::bool::weighted(0.3), 6)
}

// ---------------------------------------------------------------------------------------------
// Elementwise.
// ---------------------------------------------------------------------------------------------

const N_UNARY: usize = 27;

/// Unary op `idx` with attributes from `p1`/`p2`, the distribution of its input, and whether it
/// accepts integer inputs.
fn unary_op(idx: usize, p1: f32, p2: f32) -> (Op, Dist, bool) {
    let x = Dist::Uniform(-4.0, 4.0);
    let positive = Dist::Uniform(0.05, 4.0);
    match idx {
        0 => (Op::Neg {}, x, true),
        1 => (Op::Abs {}, x, true),
        2 => (Op::Exp {}, x, false),
        3 => (Op::Log {}, positive, false),
        4 => (Op::Sqrt {}, positive, false),
        5 => (Op::Reciprocal {}, Dist::AwayFromZero(0.05, 4.0), false),
        6 => (Op::Relu {}, x, true),
        7 => (Op::LeakyRelu { alpha: p1 }, x, false),
        8 => (Op::Sigmoid {}, x, false),
        9 => (
            Op::HardSigmoid {
                alpha: p1,
                beta: p2,
            },
            x,
            false,
        ),
        10 => (Op::HardSwish {}, x, false),
        11 => (Op::Tanh {}, x, false),
        12 => (Op::Erf {}, x, false),
        13 => (
            Op::Gelu {
                approximate: GeluApprox::None,
            },
            x,
            false,
        ),
        14 => (
            Op::Gelu {
                approximate: GeluApprox::Tanh,
            },
            x,
            false,
        ),
        15 => (Op::Elu { alpha: p1 }, x, false),
        16 => (
            Op::Selu {
                alpha: sinter_ir::SELU_ALPHA,
                gamma: sinter_ir::SELU_GAMMA,
            },
            x,
            false,
        ),
        17 => (
            Op::Selu {
                alpha: p1,
                gamma: p2,
            },
            x,
            false,
        ),
        18 => (Op::Softplus {}, x, false),
        19 => (Op::Softsign {}, x, false),
        20 => (Op::Mish {}, x, false),
        21 => (Op::Floor {}, Dist::Halves(9), false),
        22 => (Op::Ceil {}, Dist::Halves(9), false),
        23 => (Op::Round {}, Dist::Halves(9), false),
        24 => (Op::Sign {}, Dist::Ints(-2, 2), true),
        25 => (Op::Silu {}, x, false),
        _ => (Op::Identity {}, x, true),
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Every unary elementwise op (transcendental ones included) on random shapes, attributes and
    /// dtypes (f32, f64, and integers for the ops defined on them).
    #[test]
    fn unary_elementwise_matches_reference(
        op_idx in 0..N_UNARY,
        p1 in -2.0f32..2.0,
        p2 in -1.0f32..1.0,
        dtype_idx in 0usize..4,
        dims in shape(0..=4, 5, 13),
        seed in seed(),
        backend in backend(),
    ) {
        let (op, dist, int_ok) = unary_op(op_idx, p1, p2);
        let (dtype, dist) = match dtype_idx {
            2 => (DType::F64, dist),
            3 if int_ok => (if seed & 1 == 0 { DType::I64 } else { DType::I32 }, Dist::Ints(-9, 9)),
            _ => (DType::F32, dist),
        };
        let mut case = Case::new(seed);
        let x = case.input(dtype, &dims, dist);
        let y = case.op1(op, &[x])?;
        case.output(y);
        case.check(backend, TOL)?;
    }
}

const N_BINARY: usize = 15;

proptest! {
    #![proptest_config(config(64))]

    /// Every binary elementwise op with numpy broadcasting: each operand takes a suffix of the
    /// output's dims with some set to 1 (either side, or both), on f32, f64, i32 and i64.
    #[test]
    fn binary_elementwise_broadcasting_matches_reference(
        op_idx in 0..N_BINARY,
        dtype_idx in 0usize..5,
        out in shape(0..=4, 5, 11),
        drops in (0usize..=4, 0usize..=4),
        ones in (ones_mask(), ones_mask()),
        swap in any::<bool>(),
        seed in seed(),
        backend in backend(),
    ) {
        let float = Dist::Uniform(-3.0, 3.0);
        let (mut a_shape, mut b_shape) = (
            broadcast_operand(&out, drops.0, &ones.0),
            broadcast_operand(&out, drops.1, &ones.1),
        );
        if swap {
            std::mem::swap(&mut a_shape, &mut b_shape);
        }
        let float_dtype = if dtype_idx == 1 { DType::F64 } else { DType::F32 };
        let int_dtype = if dtype_idx == 3 { DType::I32 } else { DType::I64 };
        let int = dtype_idx >= 3;
        let (op, dtypes, dists) = match op_idx {
            0 => (Op::Add {}, None, (float, float)),
            1 => (Op::Sub {}, None, (float, float)),
            2 => (Op::Mul {}, None, (float, float)),
            3 => (Op::Div {}, None, (float, Dist::AwayFromZero(0.1, 3.0))),
            // The exponent may have another dtype than the base: an integer exponent half the time.
            4 => {
                let exponent = if seed & 2 == 0 {
                    (float_dtype, Dist::Uniform(-2.0, 2.0))
                } else {
                    (DType::I64, Dist::Ints(-2, 3))
                };
                (Op::Pow {}, Some((float_dtype, exponent.0)), (Dist::Uniform(0.1, 3.0), exponent.1))
            }
            5 => (Op::Max {}, None, (Dist::Ints(-2, 2), float)),
            6 => (Op::Min {}, None, (float, Dist::Ints(-2, 2))),
            7 => {
                // prelu broadcasts the slope to `x` only, so `x` takes the full output shape.
                a_shape = out.clone();
                (Op::PRelu {}, Some((float_dtype, float_dtype)), (float, float))
            }
            8 => (Op::Equal {}, None, (Dist::Ints(-2, 2), Dist::Ints(-2, 2))),
            9 => (Op::Less {}, None, (Dist::Ints(-2, 2), Dist::Ints(-2, 2))),
            10 => (Op::Greater {}, None, (Dist::Ints(-2, 2), Dist::Ints(-2, 2))),
            11 => (Op::LessOrEqual {}, None, (Dist::Ints(-2, 2), Dist::Ints(-2, 2))),
            12 => (Op::GreaterOrEqual {}, None, (Dist::Ints(-2, 2), Dist::Ints(-2, 2))),
            13 => (Op::And {}, Some((DType::Bool, DType::Bool)), (Dist::Bool, Dist::Bool)),
            _ => (Op::Or {}, Some((DType::Bool, DType::Bool)), (Dist::Bool, Dist::Bool)),
        };
        let (dtypes, dists) = match dtypes {
            Some(dtypes) => (dtypes, dists),
            None if int => {
                let divisor = if op_idx == 3 { Dist::NonZeroInts(7) } else { Dist::Ints(-9, 9) };
                ((int_dtype, int_dtype), (Dist::Ints(-9, 9), divisor))
            }
            None => ((float_dtype, float_dtype), dists),
        };
        let mut case = Case::new(seed);
        let a = case.input(dtypes.0, &a_shape, dists.0);
        let b = case.input(dtypes.1, &b_shape, dists.1);
        let y = case.op1(op, &[a, b])?;
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// `where` with three operands broadcasting together (a bool condition), on floats and integers.
    #[test]
    fn where_broadcasting_matches_reference(
        out in shape(0..=4, 4, 9),
        drops in (0usize..=4, 0usize..=4, 0usize..=4),
        ones in (ones_mask(), ones_mask(), ones_mask()),
        dtype_idx in 0usize..3,
        seed in seed(),
        backend in backend(),
    ) {
        let dtype = [DType::F32, DType::F64, DType::I64][dtype_idx];
        let mut case = Case::new(seed);
        let cond = case.input(DType::Bool, &broadcast_operand(&out, drops.0, &ones.0), Dist::Bool);
        let x = case.input(dtype, &broadcast_operand(&out, drops.1, &ones.1), Dist::Ints(-9, 9));
        let y = case.input(dtype, &broadcast_operand(&out, drops.2, &ones.2), Dist::Uniform(-9.0, 9.0));
        let z = case.op1(Op::Where {}, &[cond, x, y])?;
        case.output(z);
        case.check(backend, TOL)?;
    }

    /// `clip` with either, both or no bound (including `min > max`, where the result is `max`), and
    /// `not` on bools.
    #[test]
    fn clip_and_not_match_reference(
        dims in shape(0..=4, 5, 13),
        min in prop::option::of(-2.0f64..1.0),
        max in prop::option::of(-1.0f64..2.0),
        dtype_idx in 0usize..3,
        seed in seed(),
        backend in backend(),
    ) {
        let dtype = [DType::F32, DType::F64, DType::I64][dtype_idx];
        let (min, max) = if dtype == DType::I64 {
            (min.map(|v| (v * 4.0).round()), max.map(|v| (v * 4.0).round()))
        } else {
            (min, max)
        };
        let mut case = Case::new(seed);
        let x = case.input(dtype, &dims, Dist::Ints(-9, 9));
        let x = if dtype == DType::I64 { x } else {
            let scale = case.input(dtype, &dims, Dist::Uniform(0.0, 0.5));
            case.op1(Op::Mul {}, &[x, scale])?
        };
        let y = case.op1(Op::Clip { min, max }, &[x])?;
        let flags = case.input(DType::Bool, &dims, Dist::Bool);
        let not = case.op1(Op::Not {}, &[flags])?;
        case.outputs(&[y, not]);
        case.check(backend, TOL)?;
    }

    /// `cast` between every pair of dtypes, with values in each target's range (out-of-range
    /// float-to-integer conversions are undefined in ONNX), integer wrap-around, float-to-bool.
    #[test]
    fn cast_matches_reference(
        from_idx in 0usize..7,
        to_idx in 0usize..7,
        dims in shape(0..=3, 5, 13),
        seed in seed(),
        backend in backend(),
    ) {
        let dtypes = [DType::F32, DType::F64, DType::I64, DType::I32, DType::I8, DType::U8, DType::Bool];
        let (from, to) = (dtypes[from_idx], dtypes[to_idx]);
        let dist = match from {
            DType::F32 | DType::F64 if to == DType::U8 => Dist::Uniform(0.0, 250.0),
            DType::F32 | DType::F64 => Dist::Uniform(-120.0, 120.0),
            DType::Bool => Dist::Bool,
            DType::U8 => Dist::Ints(0, 255),
            DType::I8 => Dist::Ints(-128, 127),
            _ => Dist::Ints(-300, 300),
        };
        let mut case = Case::new(seed);
        let x = case.input(from, &dims, dist);
        let y = case.op1(Op::Cast { to }, &[x])?;
        case.output(y);
        case.check(backend, TOL)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Linear algebra.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(48))]

    /// numpy matmul: random broadcast batch dims on either side, 1-d operands (promoted and
    /// squeezed), m/k/n in 1..=40 (mostly not multiples of 4 or 8), `b` sometimes a constant.
    #[test]
    fn matmul_matches_reference(
        batch in prop::collection::vec(1usize..=3, 0..=2),
        drops in (0usize..=2, 0usize..=2),
        ones in (ones_mask(), ones_mask()),
        mkn in (1usize..=40, 1usize..=40, 1usize..=40),
        vectors in (prop::bool::weighted(0.15), prop::bool::weighted(0.15)),
        b_const in any::<bool>(),
        seed in seed(),
        backend in backend(),
    ) {
        let (m, k, n) = mkn;
        let mut a_shape = broadcast_operand(&batch, drops.0, &ones.0);
        let mut b_shape = broadcast_operand(&batch, drops.1, &ones.1);
        if vectors.0 {
            a_shape = vec![k];
        } else {
            a_shape.extend([m, k]);
        }
        if vectors.1 {
            b_shape = vec![k];
        } else {
            b_shape.extend([k, n]);
        }
        let mut case = Case::new(seed);
        let a = case.input(DType::F32, &a_shape, Dist::Uniform(-1.0, 1.0));
        let b = case.operand(b_const, DType::F32, &b_shape, Dist::Uniform(-1.0, 1.0));
        let y = case.op1(Op::MatMul {}, &[a, b])?;
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// gemm with every transpose combination, alpha/beta (0 included), and `c` absent or
    /// broadcast from a scalar, a row, a column or the full matrix.
    #[test]
    fn gemm_matches_reference(
        mkn in (1usize..=33, 1usize..=33, 1usize..=33),
        trans in (any::<bool>(), any::<bool>()),
        alpha_beta in (0usize..5, 0usize..5),
        c_kind in 0usize..7,
        consts in (any::<bool>(), any::<bool>()),
        seed in seed(),
        backend in backend(),
    ) {
        let (m, k, n) = mkn;
        let scalars = [1.0f32, 0.5, -1.25, 0.0, 2.0];
        let a_shape = if trans.0 { [k, m] } else { [m, k] };
        let b_shape = if trans.1 { [n, k] } else { [k, n] };
        let c_shape: Option<Vec<usize>> = match c_kind {
            0 => None,
            1 => Some(vec![]),
            2 => Some(vec![1]),
            3 => Some(vec![n]),
            4 => Some(vec![1, n]),
            5 => Some(vec![m, 1]),
            _ => Some(vec![m, n]),
        };
        let mut case = Case::new(seed);
        let a = case.input(DType::F32, &a_shape, Dist::Uniform(-1.0, 1.0));
        let b = case.operand(consts.0, DType::F32, &b_shape, Dist::Uniform(-1.0, 1.0));
        let c = c_shape.map(|shape| case.operand(consts.1, DType::F32, &shape, Dist::Uniform(-1.0, 1.0)));
        let op = Op::Gemm {
            alpha: scalars[alpha_beta.0],
            beta: scalars[alpha_beta.1],
            trans_a: trans.0,
            trans_b: trans.1,
        };
        let y = case.op(op, &[Some(a), Some(b), c])?[0];
        case.output(y);
        case.check(backend, TOL)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Convolution and pooling.
// ---------------------------------------------------------------------------------------------

/// One spatial axis of a window op: extra input beyond the window, kernel, stride, dilation and the
/// two raw pads (each op reduces them to what it accepts).
type WindowAxis = (usize, usize, usize, usize, usize, usize);

fn window_axes(max_kernel: usize) -> impl Strategy<Value = Vec<WindowAxis>> {
    prop::collection::vec(
        (
            0usize..=5,
            1..=max_kernel,
            1usize..=3,
            1usize..=2,
            0usize..=2,
            0usize..=2,
        ),
        1..=2,
    )
}

/// `notset` most of the time, else one of the automatic modes.
fn auto_pad() -> impl Strategy<Value = AutoPad> {
    prop_oneof![
        5 => Just(AutoPad::NotSet),
        1 => Just(AutoPad::SameUpper),
        1 => Just(AutoPad::SameLower),
        1 => Just(AutoPad::Valid),
    ]
}

fn to_i64(values: &[usize]) -> Vec<i64> {
    values.iter().map(|&v| v as i64).collect()
}

proptest! {
    #![proptest_config(config(48))]

    /// conv, 1-d and 2-d: kernel, strides, explicit pads or auto_pad, dilations, groups (depthwise
    /// included), with or without bias, weights as inputs or constants.
    #[test]
    fn conv_matches_reference(
        n in 1usize..=2,
        groups in (1usize..=3, 1usize..=3, 1usize..=3),
        depthwise in prop::bool::weighted(0.25),
        axes in window_axes(4),
        auto_pad in auto_pad(),
        bias in any::<bool>(),
        w_const in any::<bool>(),
        seed in seed(),
        backend in backend(),
    ) {
        let (group, c_per_group, m_per_group) = if depthwise {
            (groups.0 + 1, 1, groups.2.min(2))
        } else {
            groups
        };
        let mut x_shape = vec![n, group * c_per_group];
        let mut w_shape = vec![group * m_per_group, c_per_group];
        let (mut strides, mut dilations, mut begins, mut ends) = (vec![], vec![], vec![], vec![]);
        for &(extra, kernel, stride, dilation, pad_begin, pad_end) in &axes {
            let extent = (kernel - 1) * dilation + 1;
            let (pad_begin, pad_end) = if auto_pad == AutoPad::NotSet { (pad_begin, pad_end) } else { (0, 0) };
            x_shape.push((extent + extra).saturating_sub(pad_begin + pad_end).max(1));
            w_shape.push(kernel);
            strides.push(stride);
            dilations.push(dilation);
            begins.push(pad_begin);
            ends.push(pad_end);
        }
        let pads = if auto_pad == AutoPad::NotSet { [begins, ends].concat() } else { vec![] };
        let m = w_shape[0];
        let mut case = Case::new(seed);
        let x = case.input(DType::F32, &x_shape, Dist::Uniform(-1.0, 1.0));
        let w = case.operand(w_const, DType::F32, &w_shape, Dist::Uniform(-1.0, 1.0));
        let b = bias.then(|| case.operand(w_const, DType::F32, &[m], Dist::Uniform(-1.0, 1.0)));
        let op = Op::Conv {
            strides: to_i64(&strides),
            pads: to_i64(&pads),
            dilations: to_i64(&dilations),
            group: group as i64,
            auto_pad,
        };
        let y = case.op(op, &[Some(x), Some(w), b])?[0];
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// conv_transpose, 1-d and 2-d: strides, dilations, groups, output_padding, explicit pads,
    /// auto_pad, or an explicit output_shape (pads then derived from it), with or without bias.
    #[test]
    fn conv_transpose_matches_reference(
        n in 1usize..=2,
        groups in (1usize..=2, 1usize..=3, 1usize..=3),
        axes in prop::collection::vec(
            (1usize..=4, 1usize..=3, 1usize..=3, 1usize..=2, (0usize..=2, 0usize..=2), 0usize..=2, -3i64..=2),
            1..=2,
        ),
        mode in prop_oneof![
            4 => Just(0usize),
            1 => Just(1usize),
            1 => Just(2usize),
            1 => Just(3usize),
            2 => Just(4usize),
        ],
        bias in any::<bool>(),
        w_const in any::<bool>(),
        seed in seed(),
        backend in backend(),
    ) {
        let (group, c_per_group, m_per_group) = groups;
        let auto_pad = [
            AutoPad::NotSet,
            AutoPad::SameUpper,
            AutoPad::SameLower,
            AutoPad::Valid,
            AutoPad::NotSet,
        ][mode];
        let mut x_shape = vec![n, group * c_per_group];
        let mut w_shape = vec![group * c_per_group, m_per_group];
        let (mut strides, mut dilations, mut output_padding) = (vec![], vec![], vec![]);
        let (mut begins, mut ends, mut output_shape) = (vec![], vec![], vec![]);
        for &(input, kernel, stride, dilation, (pad_begin, pad_end), out_pad, shape_delta) in &axes {
            let extent = (kernel - 1) * dilation + 1;
            let out_pad = out_pad % stride;
            let full = stride * (input - 1) + out_pad + extent;
            // Pads may not remove the whole output.
            let (pad_begin, pad_end) = if pad_begin + pad_end < full { (pad_begin, pad_end) } else { (0, 0) };
            x_shape.push(input);
            w_shape.push(kernel);
            strides.push(stride);
            dilations.push(dilation);
            output_padding.push(out_pad);
            begins.push(pad_begin);
            ends.push(pad_end);
            // At most `stride - 1 - output_padding` beyond the full size (the spec's bound).
            let largest = (full + stride - 1 - out_pad) as i64;
            output_shape.push((full as i64 + shape_delta).clamp(1, largest) as usize);
        }
        let pads = if mode == 0 { [begins, ends].concat() } else { vec![] };
        let output_shape = if mode == 4 { output_shape } else { vec![] };
        let m = group * m_per_group;
        let mut case = Case::new(seed);
        let x = case.input(DType::F32, &x_shape, Dist::Uniform(-1.0, 1.0));
        let w = case.operand(w_const, DType::F32, &w_shape, Dist::Uniform(-1.0, 1.0));
        let b = bias.then(|| case.operand(w_const, DType::F32, &[m], Dist::Uniform(-1.0, 1.0)));
        let op = Op::ConvTranspose {
            strides: to_i64(&strides),
            pads: to_i64(&pads),
            dilations: to_i64(&dilations),
            group: group as i64,
            auto_pad,
            output_padding: to_i64(&output_padding),
            output_shape: to_i64(&output_shape),
        };
        let y = case.op(op, &[Some(x), Some(w), b])?[0];
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// max_pool and average_pool, 1-d and 2-d (kernel, strides, dilations, explicit pads smaller
    /// than the kernel or auto_pad, ceil_mode, count_include_pad), max_pool on f64, i8 and u8 too,
    /// and the global pools on 1 to 3 spatial axes.
    #[test]
    fn pools_match_reference(
        kind in 0usize..4,
        nc in (1usize..=2, 1usize..=3),
        axes in window_axes(4),
        auto_pad in auto_pad(),
        ceil_mode in any::<bool>(),
        count_include_pad in any::<bool>(),
        dtype_idx in 0usize..6,
        seed in seed(),
        backend in backend(),
    ) {
        let mut x_shape = vec![nc.0, nc.1];
        let mut case = Case::new(seed);
        let (dtype, dist) = match dtype_idx {
            3 if kind == 1 => (DType::U8, Dist::Ints(0, 255)),
            4 if kind == 1 => (DType::I8, Dist::Ints(-128, 127)),
            5 => (DType::F64, Dist::Uniform(-1.0, 1.0)),
            _ => (DType::F32, Dist::Uniform(-1.0, 1.0)),
        };
        let y = if kind >= 2 {
            // Global pools: one spatial axis per window axis, plus one more when the kernel says so.
            x_shape.extend(axes.iter().map(|a| a.0 + a.1));
            if axes[0].2 == 3 {
                x_shape.push(2);
            }
            let x = case.input(dtype, &x_shape, dist);
            let op = if kind == 2 { Op::GlobalAveragePool {} } else { Op::GlobalMaxPool {} };
            case.op1(op, &[x])?
        } else {
            let (mut kernel_shape, mut strides, mut dilations, mut begins, mut ends) =
                (vec![], vec![], vec![], vec![], vec![]);
            for &(extra, kernel, stride, dilation, pad_begin, pad_end) in &axes {
                let extent = (kernel - 1) * dilation + 1;
                x_shape.push(extent + extra);
                kernel_shape.push(kernel);
                strides.push(stride);
                dilations.push(dilation);
                // Pads must be smaller than the kernel.
                begins.push(pad_begin % kernel);
                ends.push(pad_end % kernel);
            }
            let pads = if auto_pad == AutoPad::NotSet { [begins, ends].concat() } else { vec![] };
            let x = case.input(dtype, &x_shape, dist);
            let op = if kind == 0 {
                Op::AveragePool {
                    kernel_shape: to_i64(&kernel_shape),
                    strides: to_i64(&strides),
                    pads: to_i64(&pads),
                    dilations: to_i64(&dilations),
                    auto_pad,
                    ceil_mode,
                    count_include_pad,
                }
            } else {
                Op::MaxPool {
                    kernel_shape: to_i64(&kernel_shape),
                    strides: to_i64(&strides),
                    pads: to_i64(&pads),
                    dilations: to_i64(&dilations),
                    auto_pad,
                    ceil_mode,
                }
            };
            case.op1(op, &[x])?
        };
        case.output(y);
        case.check(backend, TOL)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Fused ops (introduced by the optimizer).
// ---------------------------------------------------------------------------------------------

/// Every fused activation, with valid parameters (`clip` with finite and infinite bounds).
fn fused_activation() -> impl Strategy<Value = (FusedActivation, Vec<f32>)> {
    (0..FusedActivation::ALL.len(), 0usize..3, -0.5f32..0.5).prop_map(|(idx, variant, p)| {
        let activation = FusedActivation::ALL[idx];
        let params = match activation {
            FusedActivation::LeakyRelu => vec![p],
            FusedActivation::Clip => match variant {
                0 => vec![p - 0.5, p + 0.5],
                1 => vec![f32::NEG_INFINITY, p],
                _ => vec![p, f32::INFINITY],
            },
            _ => vec![],
        };
        (activation, params)
    })
}

/// A random convolution like `conv_matches_reference`'s, `widen` times the channels (so that
/// larger cases take the tiled path): the conv op, `x`'s and `w`'s shapes.
fn conv_case(
    n: usize,
    groups: (usize, usize, usize),
    depthwise: bool,
    widen: usize,
    axes: &[WindowAxis],
    auto_pad: AutoPad,
) -> (Op, Vec<usize>, Vec<usize>) {
    let (group, c_per_group, m_per_group) = if depthwise {
        (groups.0 + 1, 1, 1)
    } else {
        (groups.0, groups.1 * widen, groups.2 * widen)
    };
    let mut x_shape = vec![n, group * c_per_group];
    let mut w_shape = vec![group * m_per_group, c_per_group];
    let (mut strides, mut dilations, mut begins, mut ends) = (vec![], vec![], vec![], vec![]);
    for &(extra, kernel, stride, dilation, pad_begin, pad_end) in axes {
        let extent = (kernel - 1) * dilation + 1;
        let (pad_begin, pad_end) = if auto_pad == AutoPad::NotSet {
            (pad_begin, pad_end)
        } else {
            (0, 0)
        };
        x_shape.push(
            (extent + extra + 2 * widen)
                .saturating_sub(pad_begin + pad_end)
                .max(1),
        );
        w_shape.push(kernel);
        strides.push(stride);
        dilations.push(dilation);
        begins.push(pad_begin);
        ends.push(pad_end);
    }
    let pads = if auto_pad == AutoPad::NotSet {
        [begins, ends].concat()
    } else {
        vec![]
    };
    let op = Op::Conv {
        strides: to_i64(&strides),
        pads: to_i64(&pads),
        dilations: to_i64(&dilations),
        group: group as i64,
        auto_pad,
    };
    (op, x_shape, w_shape)
}

/// The output shape of `conv` over `x` and `w`.
fn conv_output(conv: &Op, x: &[usize], w: &[usize]) -> Result<Vec<usize>, TestCaseError> {
    let (xt, wt) = (
        TensorType::fixed(DType::F32, x),
        TensorType::fixed(DType::F32, w),
    );
    let types = sinter_ir::infer_types(conv, &[Some(&xt), Some(&wt)])
        .map_err(|e| TestCaseError::fail(format!("the generated conv does not infer: {e}")))?;
    Ok(types[0].shape.as_static().expect("static"))
}

proptest! {
    #![proptest_config(config(48))]

    /// fused_conv: every conv configuration of `conv_matches_reference` (widened so that some take
    /// the tiled path), every activation, with or without bias and residual.
    #[test]
    fn fused_conv_matches_reference(
        n in 1usize..=2,
        groups in (1usize..=3, 1usize..=3, 1usize..=3),
        depthwise in prop::bool::weighted(0.2),
        widen in 1usize..=4,
        axes in window_axes(3),
        auto_pad in auto_pad(),
        optional in (any::<bool>(), any::<bool>()),
        activation in fused_activation(),
        w_const in any::<bool>(),
        seed in seed(),
        backend in backend(),
    ) {
        let (conv, x_shape, w_shape) = conv_case(n, groups, depthwise, widen, &axes, auto_pad);
        let out = conv_output(&conv, &x_shape, &w_shape)?;
        let Op::Conv { strides, pads, dilations, group, auto_pad } = conv else { unreachable!() };
        let mut case = Case::new(seed);
        let x = case.input(DType::F32, &x_shape, Dist::Uniform(-1.0, 1.0));
        let w = case.operand(w_const, DType::F32, &w_shape, Dist::Uniform(-1.0, 1.0));
        let b = optional.0.then(|| case.operand(w_const, DType::F32, &[w_shape[0]], Dist::Uniform(-1.0, 1.0)));
        let z = optional.1.then(|| case.input(DType::F32, &out, Dist::Uniform(-1.0, 1.0)));
        let op = Op::FusedConv {
            strides, pads, dilations, group, auto_pad,
            activation: activation.0,
            activation_params: activation.1,
        };
        let y = case.op(op, &[Some(x), Some(w), b, z])?[0];
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// fused_matmul: matmul's shapes (batch dims, 1-d operands), a bias broadcast from a suffix of
    /// the product's shape with some dims 1, every activation.
    #[test]
    fn fused_matmul_matches_reference(
        batch in prop::collection::vec(1usize..=3, 0..=2),
        mkn in (1usize..=40, 1usize..=40, 1usize..=40),
        vectors in (prop::bool::weighted(0.15), prop::bool::weighted(0.15)),
        bias in (any::<bool>(), 0usize..=4, ones_mask()),
        activation in fused_activation(),
        b_const in any::<bool>(),
        seed in seed(),
        backend in backend(),
    ) {
        let (m, k, n) = mkn;
        let mut a_shape = batch.clone();
        a_shape.extend([m, k]);
        if vectors.0 {
            a_shape = vec![k];
        }
        let b_shape = if vectors.1 { vec![k] } else { vec![k, n] };
        let mut case = Case::new(seed);
        let a = case.input(DType::F32, &a_shape, Dist::Uniform(-1.0, 1.0));
        let b = case.operand(b_const, DType::F32, &b_shape, Dist::Uniform(-1.0, 1.0));
        let product = sinter_ir::infer_types(&Op::MatMul {}, &[Some(case.ty(a)), Some(case.ty(b))])
            .map_err(|e| TestCaseError::fail(e.to_string()))?[0]
            .shape
            .as_static()
            .expect("static");
        let bias = bias.0.then(|| {
            let rank = bias.1.min(product.len());
            let shape = broadcast_operand(&product, product.len() - rank, &bias.2);
            case.operand(b_const, DType::F32, &shape, Dist::Uniform(-1.0, 1.0))
        });
        let op = Op::FusedMatMul { activation: activation.0, activation_params: activation.1 };
        let y = case.op(op, &[Some(a), Some(b), bias])?[0];
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// conv_pool: the convolutions of `fused_conv_matches_reference`, every activation, max or
    /// average pools with kernels up to the convolution's output, strides (overlapping windows
    /// included), pads smaller than the kernel, ceil_mode and count_include_pad.
    #[test]
    fn conv_pool_matches_reference(
        n in 1usize..=2,
        groups in (1usize..=3, 1usize..=3, 1usize..=3),
        depthwise in prop::bool::weighted(0.2),
        widen in 1usize..=4,
        axes in window_axes(3),
        auto_pad in auto_pad(),
        pool_axes in prop::collection::vec((1usize..=3, 1usize..=3, 0usize..=2, 0usize..=2), 2),
        pool_flags in (any::<bool>(), any::<bool>(), any::<bool>()),
        bias in any::<bool>(),
        activation in fused_activation(),
        w_const in any::<bool>(),
        seed in seed(),
        backend in backend(),
    ) {
        let (conv, x_shape, w_shape) = conv_case(n, groups, depthwise, widen, &axes, auto_pad);
        let out = conv_output(&conv, &x_shape, &w_shape)?;
        let Op::Conv { strides, pads, dilations, group, auto_pad } = conv else { unreachable!() };
        let (mut kernel, mut pool_strides, mut begins, mut ends) = (vec![], vec![], vec![], vec![]);
        for (a, &(k, s, b, e)) in pool_axes.iter().take(out.len() - 2).enumerate() {
            let k = k.min(out[2 + a]).max(1);
            kernel.push(k);
            pool_strides.push(s);
            begins.push(b % k);
            ends.push(e % k);
        }
        let mut case = Case::new(seed);
        let x = case.input(DType::F32, &x_shape, Dist::Uniform(-1.0, 1.0));
        let w = case.operand(w_const, DType::F32, &w_shape, Dist::Uniform(-1.0, 1.0));
        let b = bias.then(|| case.operand(w_const, DType::F32, &[w_shape[0]], Dist::Uniform(-1.0, 1.0)));
        let op = Op::ConvPool {
            strides, pads, dilations, group, auto_pad,
            activation: activation.0,
            activation_params: activation.1,
            pool: if pool_flags.0 { sinter_ir::PoolKind::Max } else { sinter_ir::PoolKind::Average },
            pool_kernel_shape: to_i64(&kernel),
            pool_strides: to_i64(&pool_strides),
            pool_pads: to_i64(&[begins, ends].concat()),
            pool_ceil_mode: pool_flags.1,
            count_include_pad: pool_flags.2,
        };
        let y = case.op(op, &[Some(x), Some(w), b])?[0];
        case.output(y);
        case.check(backend, TOL)?;
    }
}

/// Every activation in the tile epilogue of each fused op, on fixed shapes large enough to take the
/// tiled path (random cases reach each combination only by chance), vectorized and threaded.
#[test]
fn every_activation_in_a_tiled_epilogue_matches_reference() {
    let backend = Backend {
        threads: 2,
        vector_width: 4,
        unroll: 1,
    };
    for &activation in FusedActivation::ALL {
        let params = match activation {
            FusedActivation::LeakyRelu => vec![0.1],
            FusedActivation::Clip => vec![-0.25, 0.5],
            _ => vec![],
        };
        let conv = |kind: usize| {
            let mut case = Case::new(kind as u64);
            let x = case.input(DType::F32, &[1, 4, 12, 12], Dist::Uniform(-1.0, 1.0));
            let w = case.constant(DType::F32, &[8, 4, 3, 3], Dist::Uniform(-1.0, 1.0));
            let b = case.constant(DType::F32, &[8], Dist::Uniform(-1.0, 1.0));
            let (activation, activation_params) = (activation, params.clone());
            let (op, z) = if kind == 0 {
                let z = case.input(DType::F32, &[1, 8, 12, 12], Dist::Uniform(-1.0, 1.0));
                let op = Op::FusedConv {
                    strides: vec![],
                    pads: vec![1, 1, 1, 1],
                    dilations: vec![],
                    group: 1,
                    auto_pad: AutoPad::NotSet,
                    activation,
                    activation_params,
                };
                (op, Some(z))
            } else {
                let op = Op::ConvPool {
                    strides: vec![],
                    pads: vec![1, 1, 1, 1],
                    dilations: vec![],
                    group: 1,
                    auto_pad: AutoPad::NotSet,
                    activation,
                    activation_params,
                    pool: sinter_ir::PoolKind::Max,
                    pool_kernel_shape: vec![3, 3],
                    pool_strides: vec![2, 2],
                    pool_pads: vec![1, 1, 1, 1],
                    pool_ceil_mode: false,
                    count_include_pad: false,
                };
                (op, None)
            };
            let mut inputs = vec![Some(x), Some(w), Some(b)];
            inputs.extend(z.map(Some));
            let y = case.op(op, &inputs).unwrap()[0];
            case.output(y);
            case
        };
        for kind in 0..2 {
            conv(kind)
                .check(backend, TOL)
                .unwrap_or_else(|e| panic!("{}: {e}", activation.name()));
        }
        let mut case = Case::new(7);
        let a = case.input(DType::F32, &[2, 13, 17], Dist::Uniform(-1.0, 1.0));
        let b = case.constant(DType::F32, &[17, 21], Dist::Uniform(-1.0, 1.0));
        let bias = case.constant(DType::F32, &[21], Dist::Uniform(-1.0, 1.0));
        let op = Op::FusedMatMul {
            activation,
            activation_params: params.clone(),
        };
        let y = case.op(op, &[Some(a), Some(b), Some(bias)]).unwrap()[0];
        case.output(y);
        case.check(backend, TOL)
            .unwrap_or_else(|e| panic!("{}: {e}", activation.name()));
    }
}

/// conv_pool on images large enough to be computed in several bands (one pooled row per band, and
/// 6 of 12), overlapping padded windows and exact ones, max and average.
#[test]
fn conv_pool_in_several_bands_matches_reference() {
    let backend = Backend {
        threads: 2,
        vector_width: 4,
        unroll: 2,
    };
    for (size, kernel, stride, pads, pool) in [
        (40, 3, 2, vec![1, 1, 1, 1], sinter_ir::PoolKind::Max),
        (40, 3, 2, vec![1, 0, 0, 1], sinter_ir::PoolKind::Average),
        (26, 2, 2, vec![], sinter_ir::PoolKind::Max),
    ] {
        let mut case = Case::new(size as u64);
        let x = case.input(DType::F32, &[1, 8, size, size], Dist::Uniform(-1.0, 1.0));
        let w = case.constant(DType::F32, &[16, 8, 3, 3], Dist::Uniform(-1.0, 1.0));
        let b = case.constant(DType::F32, &[16], Dist::Uniform(-1.0, 1.0));
        let op = Op::ConvPool {
            strides: vec![],
            pads: vec![],
            dilations: vec![],
            group: 1,
            auto_pad: AutoPad::NotSet,
            activation: FusedActivation::Silu,
            activation_params: vec![],
            pool,
            pool_kernel_shape: vec![kernel, kernel],
            pool_strides: vec![stride, stride],
            pool_pads: pads,
            pool_ceil_mode: true,
            count_include_pad: false,
        };
        let y = case.op(op, &[Some(x), Some(w), Some(b)]).unwrap()[0];
        case.output(y);
        case.check(backend, TOL).unwrap_or_else(|e| panic!("{e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Reductions, softmax, normalization.
// ---------------------------------------------------------------------------------------------

const N_REDUCE: usize = 11;

proptest! {
    #![proptest_config(config(64))]

    /// Every reduction and arg_max/arg_min over a random subset of axes (each written positive or
    /// negative), keepdims on and off, empty axes with and without noop_with_empty_axes, on f32,
    /// f64 and (for sum, max, min, arg_*) i64. Arg reductions get integral data, so ties exercise
    /// select_last_index.
    #[test]
    fn reductions_match_reference(
        op_idx in 0..N_REDUCE,
        dims in shape(1..=4, 6, 11),
        selected in prop::collection::vec(any::<bool>(), 4),
        negative in prop::collection::vec(any::<bool>(), 4),
        keepdims in any::<bool>(),
        noop in prop::bool::weighted(0.2),
        select_last_index in any::<bool>(),
        dtype_idx in 0usize..4,
        seed in seed(),
        backend in backend(),
    ) {
        let rank = dims.len();
        let axes: Vec<i64> = (0..rank)
            .filter(|&a| selected[a])
            .map(|a| axis_attr(a, rank, negative[a]))
            .collect();
        let int_ok = matches!(op_idx, 0 | 2 | 3 | 9 | 10);
        let dtype = match dtype_idx {
            2 => DType::F64,
            3 if int_ok => DType::I64,
            _ => DType::F32,
        };
        let dist = match op_idx {
            _ if dtype == DType::I64 => Dist::Ints(-9, 9),
            4 => Dist::Uniform(0.8, 1.25),
            9 | 10 => Dist::Ints(-2, 2),
            _ => Dist::Uniform(-2.0, 2.0),
        };
        let noop_with_empty_axes = noop && axes.is_empty();
        let op = match op_idx {
            0 => Op::ReduceSum { axes, keepdims, noop_with_empty_axes },
            1 => Op::ReduceMean { axes, keepdims, noop_with_empty_axes },
            2 => Op::ReduceMax { axes, keepdims, noop_with_empty_axes },
            3 => Op::ReduceMin { axes, keepdims, noop_with_empty_axes },
            4 => Op::ReduceProd { axes, keepdims, noop_with_empty_axes },
            5 => Op::ReduceL1 { axes, keepdims, noop_with_empty_axes },
            6 => Op::ReduceL2 { axes, keepdims, noop_with_empty_axes },
            7 => Op::ReduceSumSquare { axes, keepdims, noop_with_empty_axes },
            8 => Op::ReduceLogSumExp { axes, keepdims, noop_with_empty_axes },
            _ => {
                let axis = (0..rank).find(|&a| selected[a]).unwrap_or(0);
                let axis = axis_attr(axis, rank, negative[axis]);
                if op_idx == 9 {
                    Op::ArgMax { axis, keepdims, select_last_index }
                } else {
                    Op::ArgMin { axis, keepdims, select_last_index }
                }
            }
        };
        let mut case = Case::new(seed);
        let x = case.input(dtype, &dims, dist);
        let y = case.op1(op, &[x])?;
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// softmax and log_softmax along every axis (positive or negative) of shapes of rank 1 to 4.
    #[test]
    fn softmax_and_log_softmax_match_reference(
        log in any::<bool>(),
        dims in shape(1..=4, 6, 13),
        axis in any::<Index>(),
        negative in any::<bool>(),
        f64_data in prop::bool::weighted(0.2),
        seed in seed(),
        backend in backend(),
    ) {
        let rank = dims.len();
        let axis = axis_attr(axis.index(rank), rank, negative);
        let dtype = if f64_data { DType::F64 } else { DType::F32 };
        let mut case = Case::new(seed);
        let x = case.input(dtype, &dims, Dist::Uniform(-6.0, 6.0));
        let op = if log { Op::LogSoftmax { axis } } else { Op::Softmax { axis } };
        let y = case.op1(op, &[x])?;
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// layer_norm (any axis, optional bias), rms_norm, batch_norm, instance_norm, group_norm and
    /// lrn on random shapes and epsilons; the data is centred at 0 or offset by a large mean
    /// (1000 or -3000), which a single-pass variance must survive.
    #[test]
    fn normalizations_match_reference(
        mean_idx in 0usize..3,
        kind in 0usize..6,
        dims in shape(2..=4, 5, 11),
        axis in any::<Index>(),
        negative in any::<bool>(),
        with_bias in any::<bool>(),
        epsilon_idx in 0usize..3,
        groups in 1usize..=3,
        lrn in (0usize..3, 0.5f32..2.0, 0.2f32..1.0, 0.5f32..2.0),
        seed in seed(),
        backend in backend(),
    ) {
        let epsilon = [1e-5f32, 1e-3, 0.1][epsilon_idx];
        let rank = dims.len();
        let mut dims = dims;
        let mut case = Case::new(seed);
        let data = Dist::Uniform(-2.0, 2.0);
        let mean = [0.0, 1000.0, -3000.0][mean_idx];
        let x_data = Dist::Uniform(mean - 2.0, mean + 2.0);
        let y = match kind {
            0 | 1 => {
                let axis_idx = axis.index(rank);
                let x = case.input(DType::F32, &dims, x_data);
                let scale = case.input(DType::F32, &dims[axis_idx..], data);
                let axis = axis_attr(axis_idx, rank, negative);
                if kind == 0 {
                    let bias = with_bias.then(|| case.input(DType::F32, &dims[axis_idx..], data));
                    case.op(Op::LayerNorm { axis, epsilon }, &[Some(x), Some(scale), bias])?[0]
                } else {
                    case.op1(Op::RmsNorm { axis, epsilon }, &[x, scale])?
                }
            }
            2 => {
                let c = dims[1];
                let x = case.input(DType::F32, &dims, data);
                let scale = case.input(DType::F32, &[c], data);
                let bias = case.input(DType::F32, &[c], data);
                let mean = case.input(DType::F32, &[c], data);
                let var = case.input(DType::F32, &[c], Dist::Uniform(0.1, 2.0));
                case.op1(Op::BatchNorm { epsilon }, &[x, scale, bias, mean, var])?
            }
            3 | 4 => {
                if rank == 2 {
                    dims.push(3);
                }
                if kind == 4 {
                    dims[1] *= groups;
                }
                let c = dims[1];
                let x = case.input(DType::F32, &dims, x_data);
                let scale = case.input(DType::F32, &[c], data);
                let bias = case.input(DType::F32, &[c], data);
                let op = if kind == 3 {
                    Op::InstanceNorm { epsilon }
                } else {
                    Op::GroupNorm { num_groups: groups as i64, epsilon }
                };
                case.op1(op, &[x, scale, bias])?
            }
            _ => {
                let x = case.input(DType::F32, &dims, data);
                let (size_idx, alpha, beta, bias) = lrn;
                let op = Op::Lrn { size: [1, 3, 5][size_idx], alpha, beta, bias };
                case.op1(op, &[x])?
            }
        };
        case.output(y);
        case.check(backend, TOL)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Data movement.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(48))]

    /// transpose by a random permutation (or the empty perm, which reverses) of ranks 0 to 5, on
    /// f32 and i64.
    #[test]
    fn transpose_matches_reference(
        perm in (0usize..=5).prop_flat_map(|rank| Just((0..rank).collect::<Vec<usize>>()).prop_shuffle()),
        dims in prop::collection::vec(1usize..=4, 5),
        last in 1usize..=9,
        empty_perm in prop::bool::weighted(0.2),
        int in any::<bool>(),
        seed in seed(),
        backend in backend(),
    ) {
        let rank = perm.len();
        let mut dims = dims[..rank].to_vec();
        if let Some(d) = dims.last_mut() {
            *d = last;
        }
        let (dtype, dist) = f32_or_i64(int);
        let perm = if empty_perm { vec![] } else { to_i64(&perm) };
        let mut case = Case::new(seed);
        let x = case.input(dtype, &dims, dist);
        let y = case.op1(Op::Transpose { perm }, &[x])?;
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// concat of 1 to 3 operands along any axis (positive or negative), and split of the result into
    /// other pieces.
    #[test]
    fn concat_and_split_match_reference(
        dims in shape(1..=4, 4, 7),
        axis in any::<Index>(),
        negative in any::<bool>(),
        parts in prop::collection::vec(1usize..=4, 1..=3),
        seed in seed(),
        backend in backend(),
    ) {
        let rank = dims.len();
        let axis_idx = axis.index(rank);
        let axis = axis_attr(axis_idx, rank, negative);
        let mut case = Case::new(seed);
        let mut pieces = Vec::new();
        for &part in &parts {
            let mut piece_dims = dims.clone();
            piece_dims[axis_idx] = part;
            pieces.push(case.input(DType::F32, &piece_dims, Dist::Uniform(-1.0, 1.0)));
        }
        let joined = case.op1(Op::Concat { axis }, &pieces)?;
        let total: usize = parts.iter().sum();
        // Split into pieces of other sizes: the parts reversed, then the first one cut in two.
        let mut split: Vec<usize> = parts.iter().rev().copied().collect();
        if split[0] > 1 {
            let first = split[0];
            split.splice(0..1, [first / 2, first - first / 2]);
        }
        debug_assert_eq!(split.iter().sum::<usize>(), total);
        let outs = case.op(Op::Split { split: to_i64(&split), axis }, &[Some(joined)])?;
        case.output(joined);
        case.outputs(&outs);
        case.check(backend, TOL)?;
    }

    /// slice with positive and negative starts/ends (beyond the bounds too, and the i64 extremes
    /// exporters write), steps of both signs, explicit axes in any order or all axes.
    #[test]
    fn slice_matches_reference(
        dims in shape(1..=4, 7, 9),
        per_axis in prop::collection::vec(
            (any::<bool>(), -10i64..=10, -10i64..=10, 0usize..6, 0usize..6, any::<bool>()),
            4,
        ),
        all_axes in prop::bool::weighted(0.2),
        reverse_order in any::<bool>(),
        seed in seed(),
        backend in backend(),
    ) {
        let rank = dims.len();
        let (mut starts, mut ends, mut axes, mut steps) = (vec![], vec![], vec![], vec![]);
        for (a, &(selected, start, end, step_idx, extreme, negative)) in per_axis.iter().enumerate().take(rank) {
            if !(selected || all_axes) {
                continue;
            }
            let step = [1i64, -1, 2, -2, 3, -3][step_idx];
            let (start, end) = match extreme {
                0 if step > 0 => (start, i64::MAX),
                0 => (start, i64::MIN),
                1 if step > 0 => (i64::MIN, end),
                1 => (i64::MAX, end),
                _ => (start, end),
            };
            starts.push(start);
            ends.push(end);
            axes.push(axis_attr(a, rank, negative));
            steps.push(step);
        }
        if starts.is_empty() {
            starts.push(0);
            ends.push(i64::MAX);
            axes.push(0);
            steps.push(1);
        }
        if reverse_order {
            for list in [&mut starts, &mut ends, &mut axes, &mut steps] {
                list.reverse();
            }
        }
        let axes = if all_axes && !reverse_order { vec![] } else { axes };
        let steps = if steps.iter().all(|&s| s == 1) && seed & 1 == 0 { vec![] } else { steps };
        let mut case = Case::new(seed);
        let x = case.input(DType::F32, &dims, Dist::Uniform(-1.0, 1.0));
        let y = case.op1(Op::Slice { starts, ends, axes, steps }, &[x])?;
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// gather along any axis with i64 or i32 indices of rank 0 to 2 (negative ones included), and
    /// gather_elements with indices no larger than the data off the axis.
    #[test]
    fn gather_and_gather_elements_match_reference(
        elements in any::<bool>(),
        dims in shape(1..=3, 5, 6),
        axis in any::<Index>(),
        negative in any::<bool>(),
        index_dims in prop::collection::vec(1usize..=4, 0..=3),
        index_i32 in any::<bool>(),
        data_i64 in prop::bool::weighted(0.25),
        seed in seed(),
        backend in backend(),
    ) {
        let rank = dims.len();
        let axis_idx = axis.index(rank);
        let axis = axis_attr(axis_idx, rank, negative);
        let d = dims[axis_idx] as i64;
        let index_dtype = if index_i32 { DType::I32 } else { DType::I64 };
        let index_shape: Vec<usize> = if elements {
            (0..rank)
                .map(|a| match index_dims.get(a) {
                    _ if a == axis_idx => index_dims.first().copied().unwrap_or(2),
                    Some(&d) => d.min(dims[a]),
                    None => dims[a],
                })
                .collect()
        } else {
            index_dims.iter().take(2).copied().collect()
        };
        let (dtype, dist) = f32_or_i64(data_i64);
        let mut case = Case::new(seed);
        let data = case.input(dtype, &dims, dist);
        let indices = case.input(index_dtype, &index_shape, Dist::Ints(-d, d - 1));
        let op = if elements { Op::GatherElements { axis } } else { Op::Gather { axis } };
        let y = case.op1(op, &[data, indices])?;
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// pad in every mode, with negative pads (crops) and pads longer than the axis (reflect and wrap
    /// keep going periodically), on f32 and i64.
    #[test]
    fn pad_matches_reference(
        dims in shape(1..=4, 5, 6),
        pads in prop::collection::vec((-2i64..=4, -2i64..=4), 4),
        mode in prop_oneof![
            Just(PadMode::Constant),
            Just(PadMode::Reflect),
            Just(PadMode::Edge),
            Just(PadMode::Wrap),
        ],
        value in prop_oneof![Just(0.0f64), Just(1.5), Just(-2.0)],
        int in prop::bool::weighted(0.25),
        seed in seed(),
        backend in backend(),
    ) {
        let rank = dims.len();
        let (mut begins, mut ends) = (vec![], vec![]);
        for (a, &(begin, end)) in pads.iter().enumerate().take(rank) {
            let d = dims[a] as i64;
            // Crops leave at least one element.
            let begin = begin.max(-(d - 1));
            let end = end.max(-(d - 1 + begin.min(0)));
            begins.push(begin);
            ends.push(end);
        }
        let (dtype, dist, value) = if int {
            (DType::I64, Dist::Ints(-99, 99), value.round())
        } else {
            (DType::F32, Dist::Uniform(-1.0, 1.0), value)
        };
        let mut case = Case::new(seed);
        let x = case.input(dtype, &dims, dist);
        let y = case.op1(Op::Pad { pads: [begins, ends].concat(), mode, value }, &[x])?;
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// The views (reshape with 0 and -1 entries, flatten at any axis, squeeze with and without
    /// axes, unsqueeze at positive or negative axes) of a graph input and of a computed value.
    #[test]
    fn reshape_flatten_squeeze_unsqueeze_match_reference(
        kind in 0usize..4,
        dims in shape(1..=4, 4, 6),
        merge in prop::collection::vec(any::<bool>(), 4),
        flags in prop::collection::vec(any::<bool>(), 6),
        positions in prop::collection::vec(any::<Index>(), 2),
        computed in any::<bool>(),
        seed in seed(),
        backend in backend(),
    ) {
        let rank = dims.len();
        let mut case = Case::new(seed);
        let mut dims = dims;
        let op = match kind {
            0 => {
                // Merge runs of adjacent dims, then write some kept dims as 0 and one as -1.
                let mut target: Vec<i64> = vec![];
                for (a, &d) in dims.iter().enumerate() {
                    match target.last_mut() {
                        Some(last) if merge[a] => *last *= d as i64,
                        _ => target.push(d as i64),
                    }
                }
                if flags[0] {
                    target.push(1);
                }
                for (a, entry) in target.iter_mut().enumerate() {
                    if a < rank && *entry == dims[a] as i64 && flags[1 + a % 4] {
                        *entry = 0;
                    }
                }
                if flags[5] {
                    let idx = positions[0].index(target.len());
                    if target[idx] != 0 {
                        target[idx] = -1;
                    }
                }
                Op::Reshape { shape: target, allowzero: false }
            }
            1 => Op::Flatten {
                axis: axis_attr(positions[0].index(rank + 1), rank, flags[0]),
            },
            2 => {
                // Dims of 1 at some positions, squeezed by explicit axes (some negative) or all.
                let mut ones = vec![];
                for (a, d) in dims.iter_mut().enumerate() {
                    if merge[a] {
                        *d = 1;
                        ones.push(axis_attr(a, rank, flags[a]));
                    }
                }
                let axes = if flags[4] { vec![] } else { ones };
                Op::Squeeze { axes }
            }
            _ => {
                let out_rank = rank + if flags[0] { 2 } else { 1 };
                let first = positions[0].index(out_rank);
                let mut axes = vec![axis_attr(first, out_rank, flags[1])];
                if out_rank == rank + 2 {
                    let second = (first + 1 + positions[1].index(out_rank - 1)) % out_rank;
                    axes.push(axis_attr(second, out_rank, flags[2]));
                }
                Op::Unsqueeze { axes }
            }
        };
        let x = case.input(DType::F32, &dims, Dist::Uniform(-1.0, 1.0));
        let x = if computed { case.op1(Op::Neg {}, &[x])? } else { x };
        let y = case.op1(op, &[x])?;
        let z = case.op1(Op::Relu {}, &[y])?;
        case.outputs(&[y, z]);
        case.check(backend, TOL)?;
    }

    /// expand (the target broadcasting with the input both ways), tile, and trilu with diagonal
    /// offsets beyond the matrix.
    #[test]
    fn expand_tile_trilu_match_reference(
        kind in 0usize..3,
        out in shape(1..=4, 4, 7),
        drops in (0usize..=4, 0usize..=4),
        ones in (ones_mask(), ones_mask()),
        repeats in prop::collection::vec(1usize..=3, 4),
        upper in any::<bool>(),
        k in -4i64..=4,
        seed in seed(),
        backend in backend(),
    ) {
        let mut case = Case::new(seed);
        let y = match kind {
            0 => {
                let x = case.input(DType::F32, &broadcast_operand(&out, drops.0, &ones.0), Dist::Uniform(-1.0, 1.0));
                let shape = to_i64(&broadcast_operand(&out, drops.1, &ones.1));
                case.op1(Op::Expand { shape }, &[x])?
            }
            1 => {
                let x = case.input(DType::F32, &out, Dist::Uniform(-1.0, 1.0));
                let repeats = to_i64(&repeats[..out.len()]);
                case.op1(Op::Tile { repeats }, &[x])?
            }
            _ => {
                let mut dims = out.clone();
                if dims.len() < 2 {
                    dims.insert(0, 3);
                }
                let x = case.input(DType::F32, &dims, Dist::Uniform(-1.0, 1.0));
                case.op1(Op::Trilu { upper, k }, &[x])?
            }
        };
        case.output(y);
        case.check(backend, TOL)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Resize, recurrent, attention.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(48))]

    /// resize by scales or sizes on every axis, nearest (every rounding) and linear, in every
    /// coordinate transformation mode, on f32 and u8 (linear then rounds and saturates).
    #[test]
    fn resize_matches_reference(
        dims in shape(1..=4, 4, 6),
        per_axis in prop::collection::vec((0usize..9, 1usize..=8, any::<bool>()), 4),
        by_sizes in any::<bool>(),
        mode in prop_oneof![Just(ResizeMode::Nearest), Just(ResizeMode::Linear)],
        coordinate_transformation_mode in prop_oneof![
            Just(CoordTransform::HalfPixel),
            Just(CoordTransform::HalfPixelSymmetric),
            Just(CoordTransform::PytorchHalfPixel),
            Just(CoordTransform::AlignCorners),
            Just(CoordTransform::Asymmetric),
        ],
        nearest_mode in prop_oneof![
            Just(NearestMode::RoundPreferFloor),
            Just(NearestMode::RoundPreferCeil),
            Just(NearestMode::Floor),
            Just(NearestMode::Ceil),
        ],
        u8_data in prop::bool::weighted(0.2),
        seed in seed(),
        backend in backend(),
    ) {
        let rank = dims.len();
        let choices = [1.0f32, 2.0, 0.5, 1.5, 0.75, 3.0, 0.6, 2.5, 1.25];
        let mut scales = vec![];
        let mut sizes = vec![];
        for &(scale_idx, size, keep) in per_axis.iter().take(rank) {
            // Leading axes (batch, channels) are often left alone, as in images.
            scales.push(if keep { 1.0 } else { choices[scale_idx] });
            sizes.push(size as i64);
        }
        let (scales, sizes) = if by_sizes { (vec![], sizes) } else { (scales, vec![]) };
        let (dtype, dist) = if u8_data {
            (DType::U8, Dist::Ints(0, 255))
        } else {
            (DType::F32, Dist::Uniform(-1.0, 1.0))
        };
        let mut case = Case::new(seed);
        let x = case.input(dtype, &dims, dist);
        let op = Op::Resize { mode, coordinate_transformation_mode, nearest_mode, scales, sizes };
        let y = case.op1(op, &[x])?;
        case.output(y);
        case.check(backend, TOL)?;
    }

    /// rnn, lstm and gru: every direction, both layouts, small sequence/batch/input/hidden sizes,
    /// optional bias, sequence lengths, initial states and peepholes, clip, gru's
    /// linear_before_reset, lstm's input_forget, and non-default activations.
    #[test]
    fn recurrent_matches_reference(
        kind in 0usize..3,
        direction in prop_oneof![
            Just(RnnDirection::Forward),
            Just(RnnDirection::Reverse),
            Just(RnnDirection::Bidirectional),
        ],
        sizes in (1usize..=4, 1usize..=3, 1usize..=5, 1usize..=5),
        layout in 0i64..=1,
        optional in (
            any::<bool>(),
            prop::bool::weighted(0.3),
            any::<bool>(),
            any::<bool>(),
            prop::bool::weighted(0.3),
        ),
        clip in prop::option::weighted(0.2, 0.5f32..3.0),
        flag in any::<bool>(),
        activations in prop::option::weighted(0.25, prop::collection::vec(0usize..6, 3)),
        seed in seed(),
        backend in backend(),
    ) {
        let (seq, batch, input_size, hidden) = sizes;
        let (with_bias, with_lens, with_h, with_c, with_p) = optional;
        let n_dir = if direction == RnnDirection::Bidirectional { 2 } else { 1 };
        let gates = [1, 4, 3][kind];
        let n_activations = [1, 3, 2][kind];
        let activations: Vec<RnnActivation> = match activations {
            Some(picks) => {
                let table = [
                    RnnActivation::Sigmoid,
                    RnnActivation::Tanh,
                    RnnActivation::Relu,
                    RnnActivation::HardSigmoid,
                    RnnActivation::Softsign,
                    RnnActivation::LeakyRelu,
                ];
                (0..n_dir).flat_map(|_| picks[..n_activations].iter().map(|&p| table[p])).collect()
            }
            None => vec![],
        };
        let x_shape = if layout == 0 { [seq, batch, input_size] } else { [batch, seq, input_size] };
        let state_shape = if layout == 0 { [n_dir, batch, hidden] } else { [batch, n_dir, hidden] };
        let weights = Dist::Uniform(-0.6, 0.6);
        let mut case = Case::new(seed);
        let x = case.input(DType::F32, &x_shape, Dist::Uniform(-1.0, 1.0));
        let w = case.input(DType::F32, &[n_dir, gates * hidden, input_size], weights);
        let r = case.input(DType::F32, &[n_dir, gates * hidden, hidden], weights);
        let b = with_bias.then(|| case.input(DType::F32, &[n_dir, 2 * gates * hidden], weights));
        let lens = with_lens.then(|| case.input(DType::I32, &[batch], Dist::Ints(1, seq as i64)));
        let h0 = with_h.then(|| case.input(DType::F32, &state_shape, Dist::Uniform(-1.0, 1.0)));
        let hidden_size = hidden as i64;
        let (op, inputs) = match kind {
            0 => (
                Op::Rnn {
                    hidden_size,
                    direction,
                    activations,
                    activation_alpha: vec![],
                    activation_beta: vec![],
                    clip,
                    layout,
                },
                vec![Some(x), Some(w), Some(r), b, lens, h0],
            ),
            1 => {
                let c0 = with_c.then(|| case.input(DType::F32, &state_shape, Dist::Uniform(-1.0, 1.0)));
                let p = with_p.then(|| case.input(DType::F32, &[n_dir, 3 * hidden], weights));
                (
                    Op::Lstm {
                        hidden_size,
                        direction,
                        activations,
                        activation_alpha: vec![],
                        activation_beta: vec![],
                        clip,
                        layout,
                        input_forget: flag,
                    },
                    vec![Some(x), Some(w), Some(r), b, lens, h0, c0, p],
                )
            }
            _ => (
                Op::Gru {
                    hidden_size,
                    direction,
                    activations,
                    activation_alpha: vec![],
                    activation_beta: vec![],
                    clip,
                    layout,
                    linear_before_reset: flag,
                },
                vec![Some(x), Some(w), Some(r), b, lens, h0],
            ),
        };
        let outs = case.op(op, &inputs)?;
        case.outputs(&outs);
        case.check(backend, TOL)?;
    }

    /// attention, 4-d and 3-d, grouped key/value heads, explicit or default scale, causal masking,
    /// softcap, and no mask, a bool mask or a float mask broadcast to the scores (including a
    /// last dim shorter than the keys, padded as masked). Sequence lengths straddle the kernel's
    /// blocks of 64 (1, 7, 33, 64, 65, 130, with `Sq` above, equal to or below `Skv`) and head
    /// sizes include 1, 5 and 64.
    #[test]
    fn attention_matches_reference(
        three_d in any::<bool>(),
        sizes in (1usize..=2, 1usize..=2, 1usize..=2, seq_len(), seq_len(), head_size(), head_size()),
        normal_data in any::<bool>(),
        scale in prop::option::weighted(0.3, 0.1f32..1.0),
        causal in any::<bool>(),
        softcap in prop_oneof![3 => Just(0.0f32), 1 => 1.0f32..5.0],
        mask_kind in 0usize..3,
        mask_drop in 0usize..=4,
        mask_ones in ones_mask(),
        short_last in prop::bool::weighted(0.2),
        seed in seed(),
        backend in backend(),
    ) {
        let (batch, kv_heads, head_groups, seq_q, seq_kv, d, dv) = sizes;
        let q_heads = kv_heads * head_groups;
        let (q_shape, k_shape, v_shape) = if three_d {
            (vec![batch, seq_q, q_heads * d], vec![batch, seq_kv, kv_heads * d], vec![batch, seq_kv, kv_heads * dv])
        } else {
            (vec![batch, q_heads, seq_q, d], vec![batch, kv_heads, seq_kv, d], vec![batch, kv_heads, seq_kv, dv])
        };
        let mut case = Case::new(seed);
        // Uniform in [-1, 1), or spread like N(0, 1) (same variance), so scores are peaked.
        let data = if normal_data { Dist::Uniform(-1.73, 1.73) } else { Dist::Uniform(-1.0, 1.0) };
        let q = case.input(DType::F32, &q_shape, data);
        let k = case.input(DType::F32, &k_shape, data);
        let v = case.input(DType::F32, &v_shape, data);
        let scores = [batch, q_heads, seq_q, seq_kv];
        let mut mask_shape = broadcast_operand(&scores, mask_drop.min(3), &mask_ones);
        if let Some(last) = mask_shape.last_mut() {
            *last = if short_last { (seq_kv / 2).max(1) } else { seq_kv };
        }
        let mask = match mask_kind {
            0 => None,
            1 => Some(case.input(DType::Bool, &mask_shape, Dist::Bool)),
            _ => Some(case.input(DType::F32, &mask_shape, Dist::Uniform(-2.0, 1.0))),
        };
        let (q_num_heads, kv_num_heads) = if three_d { (q_heads as i64, kv_heads as i64) } else { (0, 0) };
        let op = Op::Attention { scale, causal, q_num_heads, kv_num_heads, softcap };
        let y = case.op(op, &[Some(q), Some(k), Some(v), mask])?[0];
        case.output(y);
        case.check(backend, TOL)?;
    }
}

/// Sequence lengths around the attention kernel's blocks of 64 rows and keys.
fn seq_len() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 2, 5, 7, 33, 64, 65, 130])
}

/// Attention head sizes: 1, odd ones, and a real model's 64.
fn head_size() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 3, 5, 8, 64])
}

// ---------------------------------------------------------------------------------------------
// Small random graphs.
// ---------------------------------------------------------------------------------------------

/// One node of a random graph: what it is, which earlier values it reads, and two parameter bytes
/// that choose the op within its kind and its attributes.
#[derive(Clone, Debug)]
struct Step {
    kind: usize,
    a: Index,
    b: Index,
    p1: u8,
    p2: u8,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0usize..7,
        any::<Index>(),
        any::<Index>(),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(|(kind, a, b, p1, p2)| Step { kind, a, b, p1, p2 })
}

/// Adds `step` to the graph, reading values of `pool`, and returns the new value. Every kind falls
/// back to a unary op where its operand does not fit (a scalar for softmax, a vector for transpose),
/// so every step sequence builds a valid graph.
fn add_step(case: &mut Case, pool: &[Value], step: &Step) -> Result<Value, TestCaseError> {
    let a = *step.a.get(pool);
    let a_shape = case.shape(a);
    let rank = a_shape.len();
    let (p1, p2) = (step.p1 as usize, step.p2 as usize);
    let unary = |case: &mut Case| {
        let op = [
            Op::Relu {},
            Op::Tanh {},
            Op::Sigmoid {},
            Op::Neg {},
            Op::Abs {},
            Op::Softsign {},
        ][p1 % 6]
            .clone();
        case.op1(op, &[a])
    };
    match step.kind {
        1 => {
            let b = *step.b.get(pool);
            let b_shape = case.shape(b);
            let fits =
                sinter_ir::broadcast_shapes(&Shape::fixed(&a_shape), &Shape::fixed(&b_shape))
                    .is_ok();
            let b = if fits {
                b
            } else {
                let ones: Vec<bool> = (0..6).map(|bit| p2 >> (bit + 2) & 1 == 1).collect();
                let shape = broadcast_operand(&a_shape, p2 % (rank + 1), &ones);
                case.input(DType::F32, &shape, Dist::Uniform(-1.0, 1.0))
            };
            let op = [Op::Add {}, Op::Sub {}, Op::Mul {}, Op::Max {}][p1 % 4].clone();
            case.op1(op, &[a, b])
        }
        2 if rank > 0 => {
            let k = a_shape[rank - 1];
            let n = 1 + p1 % 12;
            let w = case.operand(p2 & 1 == 1, DType::F32, &[k, n], Dist::Uniform(-1.0, 1.0));
            case.op1(Op::MatMul {}, &[a, w])
        }
        3 if rank > 0 => {
            let axis = (p1 % rank) as i64;
            let op = if p2 & 1 == 1 {
                Op::LogSoftmax { axis }
            } else {
                Op::Softmax { axis }
            };
            case.op1(op, &[a])
        }
        4 if rank > 0 => {
            let axes = vec![(p1 % rank) as i64];
            let keepdims = rank == 1 || p2 & 4 == 4;
            let noop_with_empty_axes = false;
            let op = match p2 % 3 {
                0 => Op::ReduceSum {
                    axes,
                    keepdims,
                    noop_with_empty_axes,
                },
                1 => Op::ReduceMean {
                    axes,
                    keepdims,
                    noop_with_empty_axes,
                },
                _ => Op::ReduceMax {
                    axes,
                    keepdims,
                    noop_with_empty_axes,
                },
            };
            case.op1(op, &[a])
        }
        5 if rank > 1 => {
            let shift = 1 + p1 % (rank - 1);
            let mut perm: Vec<i64> = (0..rank as i64)
                .map(|d| (d + shift as i64) % rank as i64)
                .collect();
            if p2 & 1 == 1 {
                perm.reverse();
            }
            case.op1(Op::Transpose { perm }, &[a])
        }
        6 if rank > 0 => {
            let axis = p1 % rank;
            let b = *step.b.get(pool);
            let b_shape = case.shape(b);
            let same_but_axis =
                b_shape.len() == rank && (0..rank).all(|d| d == axis || a_shape[d] == b_shape[d]);
            let b = if same_but_axis { b } else { a };
            case.op1(Op::Concat { axis: axis as i64 }, &[a, b])
        }
        _ => unary(case),
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Chains and DAGs of 2 to 6 nodes mixing elementwise ops (with broadcasting), matmul, softmax,
    /// reductions, transposes and concats over one or two inputs; a node may read any earlier
    /// value, and an intermediate value is sometimes a second output.
    #[test]
    fn random_graphs_match_reference(
        inputs in prop::collection::vec(shape(1..=3, 5, 9), 1..=2),
        steps in prop::collection::vec(step(), 2..=6),
        second_output in any::<Index>(),
        seed in seed(),
        backend in backend(),
    ) {
        let mut case = Case::new(seed);
        let mut pool: Vec<Value> = inputs
            .iter()
            .map(|dims| case.input(DType::F32, dims, Dist::Uniform(-1.0, 1.0)))
            .collect();
        let n_inputs = pool.len();
        for step in &steps {
            let value = add_step(&mut case, &pool, step)?;
            pool.push(value);
        }
        let last = *pool.last().expect("at least two steps");
        case.output(last);
        let computed = &pool[n_inputs..pool.len() - 1];
        if !computed.is_empty() {
            case.output(*second_output.get(computed));
        }
        case.check(backend, TOL)?;
    }
}
