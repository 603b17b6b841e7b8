//! The GEMM microkernel (`Stmt::MatTile`): every tile shape, odd and even depths, accumulation,
//! strided and offset operands, epilogues, and whole products built from tiles (with edge tiles,
//! packed panels and blocked depth). The JIT must agree bit for bit with the loop interpreter and
//! with a plain Rust fma chain in increasing k.

mod common;

use common::*;
use sinter_ir::{DType, Tensor, TensorData};
use sinter_jit::{CompiledProgram, JitOptions};
use sinter_loops::*;

/// Deterministic values in [-1, 1) with full mantissas, so a fused and an unfused multiply-add (or a
/// different summation order) give different bits.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn add(a: Expr, b: Expr) -> Expr {
    Expr::binary(BinaryOp::Add, a, b)
}

/// The constant index `offset`.
fn at(offset: i64) -> Index {
    Index::strided(&[], &[], offset)
}

/// What a tile stores: the sum, or an expression of it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Epi {
    None,
    /// acc + bias[col] (coefficient 1 on the column: a vector load).
    ColBias,
    /// acc + bias[row] (coefficient 0 on the column: a splatted scalar load).
    RowBias,
    /// max(acc, 0).
    Relu,
    /// acc > 0 ? acc + bias[col] : acc * 0.5 (a Select over a vector compare).
    LeakyBias,
}

impl Epi {
    /// The epilogue of a tile whose bias buffer is `bias`, for a tile whose first row and column in
    /// the whole product are `row0` and `col0`; allocates its variables and local.
    fn build(
        self,
        kb: &mut KernelBuilder,
        bias: BufferId,
        row0: Index,
        col0: Index,
    ) -> Option<TileEpilogue> {
        if self == Epi::None {
            return None;
        }
        let row = kb.free_var();
        let col = kb.free_var();
        let acc = kb.free_local(DType::F32);
        let sum = Expr::Local(acc);
        let col_bias = Expr::load(bias, Index::var(col).plus(col0));
        let value = match self {
            Epi::None => unreachable!("returned above"),
            Epi::ColBias => add(sum, col_bias),
            Epi::RowBias => add(sum, Expr::load(bias, Index::var(row).plus(row0))),
            Epi::Relu => Expr::max(sum, Expr::f32(0.0)),
            Epi::LeakyBias => Expr::select(
                Expr::cmp(CmpOp::Gt, sum.clone(), Expr::f32(0.0)),
                add(sum.clone(), col_bias),
                Expr::binary(BinaryOp::Mul, sum, Expr::f32(0.5)),
            ),
        };
        Some(TileEpilogue {
            row,
            col,
            acc,
            value,
        })
    }

    /// The same function in Rust, on element (r, c) of the whole product.
    fn apply(self, acc: f32, r: usize, c: usize, bias: &[f32]) -> f32 {
        match self {
            Epi::None => acc,
            Epi::ColBias => acc + bias[c],
            Epi::RowBias => acc + bias[r],
            Epi::Relu => acc.max(0.0),
            Epi::LeakyBias => {
                if acc > 0.0 {
                    acc + bias[c]
                } else {
                    acc * 0.5
                }
            }
        }
    }
}

/// One tile at fixed offsets in flat buffers, with every stride free.
#[derive(Clone, Copy, Debug)]
struct Case {
    rows: u32,
    cols: u32,
    depth: usize,
    a_off: i64,
    a_row: i64,
    a_depth: i64,
    b_off: i64,
    b_depth: i64,
    c_off: i64,
    c_row: i64,
    accumulate: bool,
    epi: Epi,
    /// The role of `b`: Input or Weight (a weight's loads are `readonly | can_move` too).
    b_weight: bool,
}

impl Case {
    /// Row-major `a` (rows x depth), a packed `b` (depth x cols), a dense `c`, all at offset 0.
    fn dense(rows: u32, cols: u32, depth: usize) -> Case {
        Case {
            rows,
            cols,
            depth,
            a_off: 0,
            a_row: depth as i64,
            a_depth: 1,
            b_off: 0,
            b_depth: i64::from(cols),
            c_off: 0,
            c_row: i64::from(cols),
            accumulate: false,
            epi: Epi::None,
            b_weight: false,
        }
    }

    /// Transposed `a` (column-major, padded), `b` a row window of a wider matrix, `c` a window of
    /// a wider matrix, all at non-zero offsets.
    fn strided(rows: u32, cols: u32, depth: usize) -> Case {
        Case {
            a_off: 3,
            a_row: 1,
            a_depth: i64::from(rows) + 2,
            b_off: 5,
            b_depth: i64::from(cols) + 3,
            c_off: 2,
            c_row: i64::from(cols) + 4,
            ..Case::dense(rows, cols, depth)
        }
    }

    fn lens(&self) -> (usize, usize, usize) {
        let (rows, cols, depth) = (self.rows as i64, self.cols as i64, self.depth as i64);
        // Two spare elements after each operand: a tile that touches them is caught.
        let a = self.a_off + (rows - 1) * self.a_row + (depth - 1) * self.a_depth + 3;
        let b = self.b_off + (depth - 1) * self.b_depth + cols + 2;
        let c = self.c_off + (rows - 1) * self.c_row + cols + 2;
        (a as usize, b as usize, c as usize)
    }

    /// `c = c_init` (every element, so nothing is left undefined), then the tile.
    fn kernel(&self) -> Kernel {
        let (a_len, b_len, c_len) = self.lens();
        let mut kb = KernelBuilder::new("tile", vec!["%tile".into()]);
        let a = kb.buffer("a", DType::F32, a_len, BufferRole::Input);
        let b_role = if self.b_weight {
            BufferRole::Weight
        } else {
            BufferRole::Input
        };
        let b = kb.buffer("b", DType::F32, b_len, b_role);
        let c_init = kb.buffer("c_init", DType::F32, c_len, BufferRole::Input);
        let bias = kb.buffer("bias", DType::F32, 8, BufferRole::Input);
        let c = kb.buffer("c", DType::F32, c_len, BufferRole::Output);
        kb.loop_(c_len, |kb, i| {
            kb.store(c, Index::var(i), Expr::load(c_init, Index::var(i)));
        });
        let epilogue = self.epi.build(&mut kb, bias, at(0), at(0));
        kb.mat_tile(MatTile {
            rows: self.rows,
            cols: self.cols,
            depth: self.depth,
            a,
            a_index: at(self.a_off),
            a_row: self.a_row,
            a_depth: self.a_depth,
            b,
            b_index: at(self.b_off),
            b_depth: self.b_depth,
            c,
            c_index: at(self.c_off),
            c_row: self.c_row,
            accumulate: self.accumulate,
            epilogue,
        });
        kb.finish()
    }

    fn inputs(&self, seed: u64) -> Inputs {
        let (a_len, b_len, c_len) = self.lens();
        Inputs {
            a: values(a_len, seed),
            b: values(b_len, seed + 1),
            c_init: values(c_len, seed + 2),
            bias: values(8, seed + 3),
        }
    }

    /// The Rust oracle: one `mul_add` chain per element, in increasing k.
    fn expected(&self, inputs: &Inputs) -> Vec<f32> {
        let mut c = inputs.c_init.clone();
        for r in 0..self.rows as i64 {
            for col in 0..self.cols as i64 {
                let at = (self.c_off + r * self.c_row + col) as usize;
                let mut acc = if self.accumulate { c[at] } else { 0.0 };
                for k in 0..self.depth as i64 {
                    let a = inputs.a[(self.a_off + r * self.a_row + k * self.a_depth) as usize];
                    let b = inputs.b[(self.b_off + k * self.b_depth + col) as usize];
                    acc = a.mul_add(b, acc);
                }
                c[at] = self.epi.apply(acc, r as usize, col as usize, &inputs.bias);
            }
        }
        c
    }
}

struct Inputs {
    a: Vec<f32>,
    b: Vec<f32>,
    c_init: Vec<f32>,
    bias: Vec<f32>,
}

/// Runs `kernel` in the loop interpreter on `buffers` (in declaration order; outputs zeroed) and
/// returns the final contents of buffer `out`.
fn interpret(kernel: &Kernel, buffers: Vec<Vec<f32>>, out: usize) -> Vec<f32> {
    let mut data: Vec<TensorData> = buffers
        .into_iter()
        .map(|v| TensorData::F32(v.into()))
        .collect();
    let status = interp::run_kernel(kernel, &mut data).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 0);
    match &data[out] {
        TensorData::F32(v) => v.to_vec(),
        other => panic!("output is {:?}", other.dtype()),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Compiles and runs `case`, and checks it against the Rust oracle and the interpreter, bit for bit.
fn check(case: &Case, seed: u64) {
    let kernel = case.kernel();
    let inputs = case.inputs(seed);
    let want = case.expected(&inputs);
    let c_len = want.len();
    let interpreted = interpret(
        &kernel,
        vec![
            inputs.a.clone(),
            inputs.b.clone(),
            inputs.c_init.clone(),
            inputs.bias.clone(),
            vec![0.0; c_len],
        ],
        4,
    );
    assert_eq!(bits(&interpreted), bits(&want), "interpreter, {case:?}");
    let weights = [("b", t(inputs.b.clone()))];
    let weights: &[(&str, Tensor)] = if case.b_weight { &weights } else { &[] };
    let compiled = CompiledProgram::compile(
        program_of(kernel, weights),
        &JitOptions {
            threads: 1,
            dumps: false,
        },
    )
    .unwrap_or_else(|e| panic!("{case:?}: {e}"));
    let mut feeds = vec![
        ("a", t(inputs.a)),
        ("c_init", t(inputs.c_init)),
        ("bias", t(inputs.bias)),
    ];
    if !case.b_weight {
        feeds.push(("b", t(inputs.b)));
    }
    let got = vals::<f32>(&run(&compiled, &feeds).unwrap()[0]);
    assert_eq!(bits(&got), bits(&want), "jit, {case:?}");
}

#[test]
fn every_tile_shape_depth_and_accumulation() {
    let mut seed = 1;
    for rows in 1..=MAX_TILE_ROWS {
        for cols in 1..=MAX_TILE_COLS {
            for depth in [1, 2, 7, 64] {
                for accumulate in [false, true] {
                    let case = Case {
                        accumulate,
                        ..Case::dense(rows, cols, depth)
                    };
                    check(&case, seed);
                    seed += 4;
                }
            }
        }
    }
}

#[test]
fn strided_transposed_and_offset_operands() {
    let mut seed = 1000;
    for rows in 1..=MAX_TILE_ROWS {
        for cols in 1..=MAX_TILE_COLS {
            for (depth, accumulate) in [(1, true), (6, false), (9, true)] {
                let case = Case {
                    accumulate,
                    ..Case::strided(rows, cols, depth)
                };
                check(&case, seed);
                seed += 4;
            }
        }
    }
}

#[test]
fn a_row_from_a_wider_matrix_and_weight_b() {
    // a is rows x 40 row-major and the tile reads columns 11..11+depth of it; b is a weight.
    for (rows, cols, depth) in [(4, 8, 13), (3, 6, 4), (2, 3, 1), (4, 5, 2)] {
        let case = Case {
            a_off: 11,
            a_row: 40,
            a_depth: 1,
            b_weight: true,
            accumulate: true,
            ..Case::strided(rows, cols, depth)
        };
        check(&case, 77);
    }
}

#[test]
fn epilogues_bias_per_column_and_row_relu_select() {
    let mut seed = 5000;
    for epi in [Epi::ColBias, Epi::RowBias, Epi::Relu, Epi::LeakyBias] {
        for (rows, cols) in [(4, 8), (4, 7), (3, 4), (1, 1), (2, 5), (4, 3)] {
            for (depth, accumulate) in [(5, false), (8, true)] {
                let case = Case {
                    epi,
                    accumulate,
                    ..Case::strided(rows, cols, depth)
                };
                check(&case, seed);
                seed += 4;
            }
        }
    }
}

/// How a product of tiles is laid out.
#[derive(Clone, Copy, Debug)]
struct Gemm {
    m: usize,
    k: usize,
    n: usize,
    /// Copy `b` into 8-column panels ([n/8][k][8], a scratch buffer) before the tiles.
    packed: bool,
    /// Split depth into blocks of this many (the later ones accumulate), or `None`.
    kc: Option<usize>,
    epi: Epi,
}

impl Gemm {
    /// `c = epi(a @ b)` with `a` m x k and `b` k x n row-major, from 4x8 tiles and edge tiles.
    fn kernel(&self) -> Kernel {
        let Gemm { m, k, n, .. } = *self;
        let mut kb = KernelBuilder::new("gemm", vec!["%gemm".into()]);
        let a = kb.buffer("a", DType::F32, m * k, BufferRole::Input);
        let b = kb.buffer("b", DType::F32, k * n, BufferRole::Input);
        let bias = kb.buffer("bias", DType::F32, m.max(n), BufferRole::Input);
        let c = kb.buffer("c", DType::F32, m * n, BufferRole::Output);
        let panels = n.div_ceil(8);
        let (tile_b, b_panel_stride, b_k_stride) = if self.packed {
            let bp = kb.buffer("b_packed", DType::F32, panels * k * 8, BufferRole::Scratch);
            // Full panels, then the first n % 8 columns of the edge panel.
            let (full, edge) = (n / 8, n % 8);
            let pack = |kb: &mut KernelBuilder, panels: usize, first: usize, width: usize| {
                kb.loops(&[panels, k, width], |kb, v| {
                    let (p, kk, col) = (v[0], v[1], v[2]);
                    let dst = Index::strided(
                        &[p, kk, col],
                        &[(k * 8) as i64, 8, 1],
                        (first * k * 8) as i64,
                    );
                    let src = Index::strided(&[p, kk, col], &[8, n as i64, 1], (first * 8) as i64);
                    kb.store(bp, dst, Expr::load(b, src));
                });
            };
            if full > 0 {
                pack(&mut kb, full, 0, 8);
            }
            if edge > 0 {
                pack(&mut kb, 1, full, edge);
            }
            (bp, (k * 8) as i64, 8i64)
        } else {
            (b, 8i64, n as i64)
        };
        // Depth blocks: (first k, depth, accumulate).
        let kc = self.kc.unwrap_or(k);
        let blocks: Vec<(usize, usize)> =
            (0..k).step_by(kc).map(|k0| (k0, kc.min(k - k0))).collect();
        let n_blocks = blocks.len();
        for (block_idx, (k0, depth)) in blocks.into_iter().enumerate() {
            let last = block_idx + 1 == n_blocks;
            // Row tiles (full ones in a loop, then the edge), times column tiles likewise.
            let row_groups = [
                (m / 4, 4u32, 0usize),
                (usize::from(m % 4 > 0), (m % 4) as u32, m / 4 * 4),
            ];
            let col_groups = [
                (n / 8, 8u32, 0usize),
                (usize::from(n % 8 > 0), (n % 8) as u32, n / 8 * 8),
            ];
            for &(row_tiles, rows, row0) in &row_groups {
                for &(col_tiles, cols, col0) in &col_groups {
                    if row_tiles == 0 || col_tiles == 0 {
                        continue;
                    }
                    let epi = if last { self.epi } else { Epi::None };
                    kb.loops(&[row_tiles, col_tiles], |kb, v| {
                        let (i, j) = (v[0], v[1]);
                        let epilogue = epi.build(
                            kb,
                            bias,
                            Index::strided(&[i], &[4], row0 as i64),
                            Index::strided(&[j], &[8], col0 as i64),
                        );
                        let panel0 = (col0 / 8) as i64;
                        kb.mat_tile(MatTile {
                            rows,
                            cols,
                            depth,
                            a,
                            a_index: Index::strided(
                                &[i],
                                &[(4 * k) as i64],
                                (row0 * k + k0) as i64,
                            ),
                            a_row: k as i64,
                            a_depth: 1,
                            b: tile_b,
                            b_index: Index::strided(
                                &[j],
                                &[b_panel_stride],
                                panel0 * b_panel_stride
                                    + k0 as i64 * b_k_stride
                                    + if self.packed {
                                        0
                                    } else {
                                        col0 as i64 - panel0 * 8
                                    },
                            ),
                            b_depth: b_k_stride,
                            c,
                            c_index: Index::strided(
                                &[i, j],
                                &[(4 * n) as i64, 8],
                                (row0 * n + col0) as i64,
                            ),
                            c_row: n as i64,
                            accumulate: block_idx > 0,
                            epilogue,
                        });
                    });
                }
            }
        }
        kb.finish()
    }

    fn expected(&self, a: &[f32], b: &[f32], bias: &[f32]) -> Vec<f32> {
        let Gemm { m, k, n, .. } = *self;
        let mut c = vec![0.0f32; m * n];
        for r in 0..m {
            for col in 0..n {
                let mut acc = 0.0f32;
                for kk in 0..k {
                    acc = a[r * k + kk].mul_add(b[kk * n + col], acc);
                }
                c[r * n + col] = self.epi.apply(acc, r, col, bias);
            }
        }
        c
    }

    fn check(&self) {
        let Gemm { m, k, n, .. } = *self;
        let kernel = self.kernel();
        let a = values(m * k, 11);
        let b = values(k * n, 12);
        let bias = values(m.max(n), 13);
        let want = self.expected(&a, &b, &bias);
        let mut buffers = vec![a.clone(), b.clone(), bias.clone(), vec![0.0; m * n]];
        if self.packed {
            buffers.push(vec![0.0; n.div_ceil(8) * k * 8]);
        }
        let interpreted = interpret(&kernel, buffers, 3);
        assert_eq!(bits(&interpreted), bits(&want), "interpreter, {self:?}");
        let compiled = compile(kernel);
        let got = vals::<f32>(
            &run(&compiled, &[("a", t(a)), ("b", t(b)), ("bias", t(bias))]).unwrap()[0],
        );
        assert_eq!(bits(&got), bits(&want), "jit, {self:?}");
    }
}

#[test]
fn gemm_13x17x21_from_tiles_with_edges() {
    for packed in [false, true] {
        for kc in [None, Some(8), Some(5)] {
            for epi in [Epi::None, Epi::LeakyBias] {
                Gemm {
                    m: 13,
                    k: 17,
                    n: 21,
                    packed,
                    kc,
                    epi,
                }
                .check();
            }
        }
    }
}

#[test]
fn gemm_tile_aligned_and_small_shapes() {
    for (m, k, n) in [(8, 16, 16), (4, 1, 8), (1, 3, 1), (3, 2, 7), (5, 33, 9)] {
        for packed in [false, true] {
            Gemm {
                m,
                k,
                n,
                packed,
                kc: Some(4),
                epi: Epi::ColBias,
            }
            .check();
        }
    }
}

#[test]
fn a_tile_in_a_vectorized_loop_is_an_error() {
    let mut kernel = Case::dense(2, 4, 3).kernel();
    // Wrap the tile in a vectorized loop of extent 4 over a fresh variable.
    let tile = kernel.body.pop().unwrap();
    let var = LoopVar(kernel.n_loop_vars);
    kernel.n_loop_vars += 1;
    kernel.body.push(Stmt::Loop(Loop {
        var,
        extent: 4,
        kind: LoopKind::Vectorized { width: 4 },
        body: vec![tile],
    }));
    let result = CompiledProgram::compile(program_of(kernel, &[]), &JitOptions::default());
    assert!(result.is_err());
}
