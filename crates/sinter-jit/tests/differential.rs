//! Differential test: random kernels, scheduled at random with `sinter_loops::schedule`, run by the
//! JIT and by the loop interpreter (`sinter_loops::interp`, the oracle) on random data.
//!
//! Expressions without transcendental functions must agree bit for bit (every NaN counts as equal).
//! Expressions with exp/log/tanh/sigmoid/erf (whose JIT versions are polynomials within a few ulp)
//! avoid discontinuous operations and compare at rtol 1e-4 / atol 1e-5, the project default.

use sinter_ir::{DType, Tensor};
use sinter_jit::{CompiledProgram, JitOptions};
use sinter_loops::schedule::{parallelize, unroll_innermost, vectorize};
use sinter_loops::*;
use std::ops::Add;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn f32(&mut self) -> f32 {
        match self.below(12) {
            0 => [0.0, -0.0, f32::NAN, f32::INFINITY, -f32::INFINITY, 1e-40][self.below(6)],
            _ => (self.below(20001) as f32 - 10000.0) / 1000.0,
        }
    }
}

struct Gen<'a> {
    rng: &'a mut Rng,
    approx: bool,
    /// No integer values, so the loop can be vectorized.
    float_only: bool,
    a: BufferId,
    b: BufferId,
    c: BufferId,
    idx: Index,
}

impl Gen<'_> {
    fn f32_expr(&mut self, depth: usize) -> Expr {
        let leaf = depth == 0 || self.rng.below(4) == 0;
        if leaf {
            return match self.rng.below(4) {
                0 => Expr::load(self.a, self.idx.clone()),
                1 => Expr::load(self.b, self.idx.clone()),
                2 => Expr::f32(self.rng.f32()),
                _ => Expr::load(self.a, self.idx.clone()),
            };
        }
        let d = depth - 1;
        let n_choices = if self.approx { 6 } else { 8 };
        match self.rng.below(n_choices) {
            0 => {
                let ops = [
                    BinaryOp::Add,
                    BinaryOp::Sub,
                    BinaryOp::Mul,
                    BinaryOp::Div,
                    BinaryOp::Max,
                    BinaryOp::Min,
                ];
                let op = ops[self.rng.below(ops.len())];
                Expr::binary(op, self.f32_expr(d), self.f32_expr(d))
            }
            1 => Expr::fma(self.f32_expr(d), self.f32_expr(d), self.f32_expr(d)),
            2 => {
                let ops: &[UnaryOp] = if self.approx {
                    &[
                        UnaryOp::Exp,
                        UnaryOp::Tanh,
                        UnaryOp::Sigmoid,
                        UnaryOp::Erf,
                        UnaryOp::Log,
                        UnaryOp::Neg,
                        UnaryOp::Abs,
                        UnaryOp::Sqrt,
                    ]
                } else {
                    &[
                        UnaryOp::Neg,
                        UnaryOp::Abs,
                        UnaryOp::Sqrt,
                        UnaryOp::Floor,
                        UnaryOp::Ceil,
                        UnaryOp::Round,
                        UnaryOp::Sin,
                    ]
                };
                let op = ops[self.rng.below(ops.len())];
                let arg = self.f32_expr(d);
                // Keep exp's argument moderate so a few ulp stay a few ulp after the next operation.
                let arg = if op == UnaryOp::Exp || op == UnaryOp::Log {
                    Expr::min(Expr::unary(UnaryOp::Abs, arg), Expr::f32(20.0))
                } else {
                    arg
                };
                Expr::unary(op, arg)
            }
            3 | 4 => Expr::add(self.f32_expr(d), Expr::f32(self.rng.f32())),
            5 => Expr::select(self.cond(d), self.f32_expr(d), self.f32_expr(d)),
            6 if !self.float_only => Expr::cast(DType::F32, self.i32_expr(d)),
            6 => Expr::unary(UnaryOp::Neg, self.f32_expr(d)),
            _ => Expr::binary(
                [BinaryOp::Rem, BinaryOp::Pow][self.rng.below(2)],
                self.f32_expr(d),
                self.f32_expr(d),
            ),
        }
    }

    fn cond(&mut self, depth: usize) -> Expr {
        let ops = [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ];
        let op = ops[self.rng.below(ops.len())];
        let c = Expr::cmp(op, self.f32_expr(depth), self.f32_expr(depth));
        if self.rng.below(3) == 0 {
            let other = Expr::cmp(CmpOp::Gt, self.f32_expr(depth), Expr::f32(0.0));
            Expr::binary(
                [BinaryOp::And, BinaryOp::Or, BinaryOp::Xor][self.rng.below(3)],
                c,
                other,
            )
        } else {
            c
        }
    }

    fn i32_expr(&mut self, depth: usize) -> Expr {
        if depth == 0 || self.rng.below(3) == 0 {
            return match self.rng.below(3) {
                0 => Expr::load(self.c, self.idx.clone()),
                1 => Expr::constant(Scalar::I32(
                    [0, 1, -1, 7, i32::MIN, i32::MAX][self.rng.below(6)],
                )),
                _ => Expr::cast(DType::I32, self.f32_expr(0)),
            };
        }
        let d = depth - 1;
        let ops = [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Rem,
            BinaryOp::Max,
            BinaryOp::Min,
            BinaryOp::And,
            BinaryOp::Or,
            BinaryOp::Xor,
        ];
        match self.rng.below(4) {
            0 => Expr::unary(
                [UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Not][self.rng.below(3)],
                self.i32_expr(d),
            ),
            1 => Expr::cast(DType::I32, Expr::cast(DType::I8, self.i32_expr(d))),
            _ => Expr::binary(
                ops[self.rng.below(ops.len())],
                self.i32_expr(d),
                self.i32_expr(d),
            ),
        }
    }
}

/// out[r, col] = f(a, b, c at [r, col]); unless `float_only`, also sum[r] = Σ_col g(...) and
/// iout[r, col] = h(...) (integer, exact mode only).
fn random_kernel(
    rng: &mut Rng,
    approx: bool,
    float_only: bool,
    rows: usize,
    cols: usize,
) -> Kernel {
    let n = rows * cols;
    let mut kb = KernelBuilder::new("random", vec!["%rand".into()]);
    let a = kb.buffer("a", DType::F32, n, BufferRole::Input);
    let b = kb.buffer("b", DType::F32, n, BufferRole::Input);
    let c = kb.buffer("c", DType::I32, n, BufferRole::Input);
    let out = kb.buffer("out", DType::F32, n, BufferRole::Output);
    if float_only {
        kb.loop_(rows, |kb, r| {
            kb.loop_(cols, |kb, col| {
                let idx = Index::strided(&[r, col], &[cols as i64, 1], 0);
                let mut g = Gen {
                    rng: &mut *rng,
                    approx,
                    float_only,
                    a,
                    b,
                    c,
                    idx: idx.clone(),
                };
                let f = g.f32_expr(4);
                let tmp = kb.local(DType::F32, f);
                let f2 = g.f32_expr(2);
                kb.assign(tmp, Expr::add(Expr::Local(tmp), f2));
                kb.store(out, idx, Expr::Local(tmp));
            });
        });
        return kb.finish();
    }
    let sum = kb.buffer("sum", DType::F32, rows, BufferRole::Output);
    let iout = kb.buffer("iout", DType::I32, n, BufferRole::Output);
    kb.loop_(rows, |kb, r| {
        let acc = kb.local(DType::F32, Expr::f32(0.0));
        kb.loop_(cols, |kb, col| {
            let idx = Index::strided(&[r, col], &[cols as i64, 1], 0);
            let mut g = Gen {
                rng: &mut *rng,
                approx,
                float_only,
                a,
                b,
                c,
                idx: idx.clone(),
            };
            let f = g.f32_expr(4);
            let s = g.f32_expr(2);
            let h = if approx {
                Expr::constant(Scalar::I32(0))
            } else {
                g.i32_expr(3)
            };
            kb.store(out, idx.clone(), f);
            kb.assign(acc, Expr::add(Expr::Local(acc), s));
            kb.store(iout, idx, h);
        });
        kb.store(sum, Index::var(r), Expr::Local(acc));
    });
    kb.finish()
}

fn program_of(kernel: Kernel) -> Program {
    let buffers = kernel
        .buffers
        .iter()
        .map(|decl| ProgramBuffer {
            name: decl.name.clone(),
            dtype: decl.dtype,
            shape: vec![decl.len],
            source: if decl.role == BufferRole::Input {
                BufferSource::Input {
                    name: decl.name.clone(),
                }
            } else {
                BufferSource::Computed
            },
        })
        .collect();
    let outputs = kernel
        .buffers
        .iter()
        .enumerate()
        .filter(|(_, d)| d.role == BufferRole::Output)
        .map(|(idx, d)| (d.name.clone(), ProgramBufferId(idx as u32)))
        .collect();
    let args = (0..kernel.buffers.len() as u32)
        .map(ProgramBufferId)
        .collect();
    Program {
        buffers,
        calls: vec![KernelCall { kernel, args }],
        outputs,
    }
}

fn close(x: f32, y: f32) -> bool {
    (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-5 + 1e-4 * y.abs()
}

#[test]
fn jit_agrees_with_the_interpreter_on_random_kernels() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut n_vectorized = 0;
    let mut n_parallel = 0;
    for case in 0..200 {
        let approx = case % 3 == 2;
        let rows = 1 + rng.below(4);
        let cols = 1 + rng.below(11);
        let float_only = case % 2 == 0;
        let kernel = random_kernel(&mut rng, approx, float_only, rows, cols);
        let mut scheduled = kernel.clone();
        if rng.below(2) == 0 {
            if let Ok(k) = vectorize(&scheduled, 4) {
                scheduled = k;
            }
        }
        if rng.below(3) == 0 {
            scheduled = unroll_innermost(&scheduled, 2 + rng.below(3) as u32);
        }
        if rng.below(2) == 0 {
            if let Ok(k) = parallelize(&scheduled) {
                scheduled = k;
            }
        }
        let text = format!("{scheduled:?}");
        n_vectorized += usize::from(text.contains("Vectorized"));
        n_parallel += usize::from(text.contains("Parallel"));

        let n = rows * cols;
        let a = Tensor::from_vec(vec![n], (0..n).map(|_| rng.f32()).collect::<Vec<f32>>()).unwrap();
        let b = Tensor::from_vec(vec![n], (0..n).map(|_| rng.f32()).collect::<Vec<f32>>()).unwrap();
        let c = Tensor::from_vec(
            vec![n],
            (0..n)
                .map(|_| [0, 1, -1, 3, -7, 1000, i32::MIN, i32::MAX][rng.below(8)])
                .collect::<Vec<i32>>(),
        )
        .unwrap();
        let inputs = [("a", &a), ("b", &b), ("c", &c)];

        let want = interp::run_program(&program_of(kernel.clone()), &inputs).unwrap();
        let compiled = CompiledProgram::compile(
            program_of(scheduled),
            &JitOptions {
                threads: 2,
                dumps: false,
            },
        )
        .unwrap_or_else(|e| panic!("case {case}: {e}"));
        let got = compiled.run(&inputs).unwrap();
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            match g.dtype() {
                DType::F32 => {
                    let (gs, ws) = (g.as_slice::<f32>().unwrap(), w.as_slice::<f32>().unwrap());
                    for k in 0..gs.len() {
                        let ok = if approx {
                            close(gs[k], ws[k])
                        } else {
                            (gs[k].is_nan() && ws[k].is_nan()) || gs[k].to_bits() == ws[k].to_bits()
                        };
                        assert!(
                            ok,
                            "case {case} ({}) {name}[{k}]: jit {} interp {}\n{kernel:?}",
                            if approx { "approx" } else { "exact" },
                            gs[k],
                            ws[k]
                        );
                    }
                }
                _ => assert_eq!(g, w, "case {case} {name}"),
            }
        }
    }
    // The schedules must actually have been exercised.
    assert!(n_vectorized >= 10, "{n_vectorized} vectorized cases");
    assert!(n_parallel >= 10, "{n_parallel} parallel cases");
}
