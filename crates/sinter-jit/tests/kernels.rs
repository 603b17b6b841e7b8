//! Statements, schedules and the runtime: locals and reductions, `If`, data-dependent indices,
//! unrolled/vectorized/parallel loops (agreeing with their serial versions), input validation,
//! multi-kernel programs, concurrency, and dumps.

mod common;

use common::*;
use sinter_ir::{DType, Tensor};
use sinter_jit::{CompiledProgram, JitError, JitOptions};
use sinter_loops::*;
use std::ops::{Add, Mul};
use std::sync::Arc;

/// `c[m, n] = Σ_k a[m, k] · b[k, n] + bias[n]`, then relu, with the n loop of kind `n_kind` and the
/// m loop of kind `m_kind`.
fn matmul_kernel(m: usize, k: usize, n: usize, m_kind: LoopKind, n_kind: LoopKind) -> Kernel {
    let mut kb = KernelBuilder::new("matmul_relu", vec!["%mm".into(), "%relu".into()]);
    let a = kb.buffer("a", DType::F32, m * k, BufferRole::Input);
    let b = kb.buffer("b", DType::F32, k * n, BufferRole::Input);
    let bias = kb.buffer("bias", DType::F32, n, BufferRole::Input);
    let c = kb.buffer("c", DType::F32, m * n, BufferRole::Output);
    kb.loop_(m, |kb, i| {
        kb.loop_(n, |kb, j| {
            let acc = kb.local(DType::F32, Expr::load(bias, Index::var(j)));
            kb.loop_(k, |kb, p| {
                let prod = Expr::fma(
                    Expr::load(a, Index::strided(&[i, p], &[k as i64, 1], 0)),
                    Expr::load(b, Index::strided(&[p, j], &[n as i64, 1], 0)),
                    Expr::Local(acc),
                );
                kb.assign(acc, prod);
            });
            kb.store(
                c,
                Index::strided(&[i, j], &[n as i64, 1], 0),
                Expr::max(Expr::Local(acc), Expr::f32(0.0)),
            );
        });
    });
    let mut kernel = kb.finish();
    let Stmt::Loop(outer) = &mut kernel.body[0] else {
        unreachable!()
    };
    outer.kind = m_kind;
    let Stmt::Loop(inner) = &mut outer.body[0] else {
        unreachable!()
    };
    inner.kind = n_kind;
    kernel
}

fn seq(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 % 23) as f32 - 11.0) * scale)
        .collect()
}

fn matmul_ref(a: &[f32], b: &[f32], bias: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = bias[j];
            for p in 0..k {
                acc = a[i * k + p].mul_add(b[p * n + j], acc);
            }
            c[i * n + j] = acc.max(0.0);
        }
    }
    c
}

#[test]
fn matmul_every_schedule_agrees_exactly() {
    let (m, k, n) = (5, 9, 11);
    let a = seq(m * k, 0.25);
    let b = seq(k * n, 0.5);
    let bias = seq(n, 0.125);
    let want = matmul_ref(&a, &b, &bias, m, k, n);
    let schedules = [
        (LoopKind::Serial, LoopKind::Serial),
        (LoopKind::Serial, VEC4),
        (LoopKind::Serial, LoopKind::Unrolled { factor: 3 }),
        (LoopKind::Parallel, LoopKind::Serial),
        (LoopKind::Parallel, VEC4),
    ];
    for (m_kind, n_kind) in schedules {
        for threads in [1, 2] {
            let kernel = matmul_kernel(m, k, n, m_kind, n_kind);
            let compiled = compile_with(kernel, threads);
            let inputs = [
                ("a", t(a.clone())),
                ("b", t(b.clone())),
                ("bias", t(bias.clone())),
            ];
            let got = vals::<f32>(&run(&compiled, &inputs).unwrap()[0]);
            assert_eq!(got, want, "{m_kind:?} / {n_kind:?} on {threads} threads");
        }
    }
}

#[test]
fn vectorized_tail_lengths_and_broadcast_loads() {
    // out[i, j] = x[i, j] * s[i] + (x[i, j] > 0 ? 1 : -1), vectorized over j, for widths 1..=9.
    for width in 1..=9usize {
        let rows = 3;
        let build = |kind| {
            let mut kb = KernelBuilder::new("scale", vec![]);
            let x = kb.buffer("x", DType::F32, rows * width, BufferRole::Input);
            let s = kb.buffer("s", DType::F32, rows, BufferRole::Input);
            let out = kb.buffer("out", DType::F32, rows * width, BufferRole::Output);
            kb.loop_(rows, |kb, i| {
                kb.loop_(width, |kb, j| {
                    let xv = Expr::load(x, Index::strided(&[i, j], &[width as i64, 1], 0));
                    let tmp = kb.local(
                        DType::F32,
                        Expr::mul(xv.clone(), Expr::load(s, Index::var(i))),
                    );
                    let sign = Expr::select(
                        Expr::cmp(CmpOp::Gt, xv, Expr::f32(0.0)),
                        Expr::f32(1.0),
                        Expr::f32(-1.0),
                    );
                    kb.assign(tmp, Expr::add(Expr::Local(tmp), sign));
                    kb.store(
                        out,
                        Index::strided(&[i, j], &[width as i64, 1], 0),
                        Expr::Local(tmp),
                    );
                });
            });
            let mut kernel = kb.finish();
            let Stmt::Loop(outer) = &mut kernel.body[0] else {
                unreachable!()
            };
            set_kind(&mut outer.body, kind);
            kernel
        };
        let xs = seq(rows * width, 0.75);
        let ss = vec![2.0f32, -1.0, 0.5];
        let inputs = [("x", t(xs.clone())), ("s", t(ss.clone()))];
        let serial = run1(build(LoopKind::Serial), &inputs);
        let vector = run1(build(VEC4), &inputs);
        assert_eq!(serial, vector, "width {width}");
        let want: Vec<f32> = (0..rows * width)
            .map(|idx| xs[idx] * ss[idx / width] + if xs[idx] > 0.0 { 1.0 } else { -1.0 })
            .collect();
        assert_eq!(vals::<f32>(&serial[0]), want);
    }
}

#[test]
fn reduction_with_if_and_integer_locals() {
    // For each row: count of positives (i64) and sum of the positives (f32), using If.
    let (rows, cols) = (4, 6);
    let mut kb = KernelBuilder::new("count_pos", vec!["%count".into()]);
    let x = kb.buffer("x", DType::F32, rows * cols, BufferRole::Input);
    let count = kb.buffer("count", DType::I64, rows, BufferRole::Output);
    let sum = kb.buffer("sum", DType::F32, rows, BufferRole::Output);
    kb.loop_(rows, |kb, i| {
        let n = kb.local(DType::I64, Expr::constant(Scalar::I64(0)));
        let s = kb.local(DType::F32, Expr::f32(0.0));
        kb.loop_(cols, |kb, j| {
            let v = Expr::load(x, Index::strided(&[i, j], &[cols as i64, 1], 0));
            kb.if_(
                Expr::cmp(CmpOp::Gt, v.clone(), Expr::f32(0.0)),
                |kb| {
                    kb.assign(n, Expr::add(Expr::Local(n), Expr::constant(Scalar::I64(1))));
                    kb.assign(s, Expr::add(Expr::Local(s), v.clone()));
                },
                |_| {},
            );
        });
        kb.store(count, Index::var(i), Expr::Local(n));
        kb.store(sum, Index::var(i), Expr::Local(s));
    });
    let xs = seq(rows * cols, 1.0);
    let out = run1(kb.finish(), &[("x", t(xs.clone()))]);
    for r in 0..rows {
        let row = &xs[r * cols..(r + 1) * cols];
        assert_eq!(
            vals::<i64>(&out[0])[r],
            row.iter().filter(|&&v| v > 0.0).count() as i64
        );
        assert_eq!(
            vals::<f32>(&out[1])[r],
            row.iter().filter(|&&v| v > 0.0).sum::<f32>()
        );
    }
}

fn gather_kernel(index_dtype: DType, n_rows: usize, n_idx: usize, dim: usize) -> Kernel {
    // out[i, d] = table[idx[i], d] with ONNX negative-index normalisation.
    let mut kb = KernelBuilder::new("gather", vec!["/emb/Gather".into()]);
    let table = kb.buffer("table", DType::F32, n_rows * dim, BufferRole::Input);
    let idx = kb.buffer("idx", index_dtype, n_idx, BufferRole::Input);
    let out = kb.buffer("out", DType::F32, n_idx * dim, BufferRole::Output);
    kb.loops(&[n_idx, dim], |kb, vars| {
        let (i, d) = (vars[0], vars[1]);
        let mut index = Index::var(d);
        index.dynamic = Some(Box::new(DynamicTerm {
            value: Expr::load(idx, Index::var(i)),
            extent: n_rows as i64,
            stride: dim as i64,
        }));
        kb.store(
            out,
            Index::strided(&[i, d], &[dim as i64, 1], 0),
            Expr::load(table, index),
        );
    });
    kb.finish()
}

#[test]
fn gather_normalises_negative_indices_and_rejects_out_of_range() {
    let (rows, dim) = (5, 3);
    let table: Vec<f32> = (0..rows * dim).map(|v| v as f32).collect();
    for dtype in [DType::I64, DType::I32, DType::I8, DType::U8] {
        let compiled = compile(gather_kernel(dtype, rows, 3, dim));
        let indices = |v: &[i64]| Tensor::from_vec(vec![3], v.to_vec()).unwrap().cast(dtype);
        let good: &[i64] = if dtype == DType::U8 {
            &[4, 0, 2]
        } else {
            &[4, -1, -5]
        };
        let out = run(
            &compiled,
            &[("table", t(table.clone())), ("idx", indices(good))],
        )
        .unwrap();
        let want: Vec<f32> = good
            .iter()
            .flat_map(|&g| {
                let row = if g < 0 { g + rows as i64 } else { g } as usize;
                (0..dim).map(move |d| (row * dim + d) as f32)
            })
            .collect();
        assert_eq!(vals::<f32>(&out[0]), want, "{dtype}");
        for bad in [[0i64, 5, 1], [-6, 0, 0], [0, 0, 100]] {
            if dtype == DType::U8 && bad[1] < 0 {
                continue;
            }
            let err = run(
                &compiled,
                &[("table", t(table.clone())), ("idx", indices(&bad))],
            )
            .unwrap_err();
            match &err {
                JitError::Kernel {
                    kernel,
                    origins,
                    status,
                    ..
                } => {
                    assert_eq!(kernel, "gather");
                    assert_eq!(origins, "/emb/Gather");
                    assert_eq!(*status, STATUS_INDEX_OUT_OF_RANGE);
                }
                other => panic!("{other}"),
            }
            assert!(err.to_string().contains("out of range"), "{err}");
        }
    }
    // i64 extremes never wrap into range.
    let compiled = compile(gather_kernel(DType::I64, rows, 3, dim));
    for bad in [i64::MIN, i64::MAX, i64::MIN + 3] {
        let idx = t(vec![0i64, bad, 0]);
        assert!(
            run(&compiled, &[("table", t(table.clone())), ("idx", idx)]).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn input_validation_happens_before_anything_runs() {
    let compiled = compile(matmul_kernel(2, 3, 4, LoopKind::Serial, LoopKind::Serial));
    let a = t(vec![0.0f32; 6]);
    let b = t(vec![0.0f32; 12]);
    let bias = t(vec![0.0f32; 4]);
    let ok = compiled.run(&[("a", &a), ("b", &b), ("bias", &bias)]);
    assert!(ok.is_ok());

    let err = compiled.run(&[("a", &a), ("b", &b)]).unwrap_err();
    assert!(
        matches!(&err, JitError::MissingInput { name, .. } if name == "bias"),
        "{err}"
    );
    assert!(
        err.to_string().contains("bias") && err.to_string().contains("[4]"),
        "{err}"
    );

    let wrong_dtype = t(vec![0.0f64; 4]);
    let err = compiled
        .run(&[("a", &a), ("b", &b), ("bias", &wrong_dtype)])
        .unwrap_err();
    assert!(
        matches!(&err, JitError::InputDType { name, expected: DType::F32, actual: DType::F64 } if name == "bias"),
        "{err}"
    );

    let wrong_shape = Tensor::from_vec(vec![2, 2], vec![0.0f32; 4]).unwrap();
    let err = compiled
        .run(&[("a", &a), ("b", &b), ("bias", &wrong_shape)])
        .unwrap_err();
    assert!(
        matches!(&err, JitError::InputShape { name, expected, actual } if name == "bias" && expected == &vec![4] && actual == &vec![2, 2]),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "input `bias` has shape [2, 2], expected [4]"
    );

    let err = compiled
        .run(&[("a", &a), ("b", &b), ("bias", &bias), ("extra", &bias)])
        .unwrap_err();
    assert!(
        matches!(&err, JitError::UnknownInput { name, .. } if name == "extra"),
        "{err}"
    );

    let err = compiled
        .run(&[("a", &a), ("a", &a), ("b", &b), ("bias", &bias)])
        .unwrap_err();
    assert!(
        matches!(&err, JitError::DuplicateInput { name } if name == "a"),
        "{err}"
    );
}

#[test]
fn unverified_programs_are_never_compiled() {
    // An index past the end of the output: the verifier rejects it, so nothing is compiled.
    let mut kb = KernelBuilder::new("oob", vec!["%bad".into()]);
    let x = kb.buffer("x", DType::F32, 4, BufferRole::Input);
    let y = kb.buffer("y", DType::F32, 4, BufferRole::Output);
    kb.loop_(4, |kb, i| {
        kb.store(y, Index::affine([(i, 1)], 1), Expr::load(x, Index::var(i)))
    });
    let err =
        CompiledProgram::compile(program_of(kb.finish(), &[]), &JitOptions::default()).unwrap_err();
    assert!(matches!(err, JitError::Verify { .. }), "{err}");
    assert!(err.to_string().contains("oob"), "{err}");
}

/// Two kernels: h = x * w (weight), y = relu(h) + x; h is an intermediate in the arena.
fn two_kernel_program(n: usize) -> Program {
    let mut k1 = KernelBuilder::new("scale", vec!["%h".into()]);
    let x = k1.buffer("x", DType::F32, n, BufferRole::Input);
    let w = k1.buffer("w", DType::F32, n, BufferRole::Weight);
    let h = k1.buffer("h", DType::F32, n, BufferRole::Output);
    k1.loop_(n, |kb, i| {
        kb.store(
            h,
            Index::var(i),
            Expr::mul(Expr::load(x, Index::var(i)), Expr::load(w, Index::var(i))),
        )
    });
    let mut k1 = k1.finish();
    set_kind(&mut k1.body, LoopKind::Parallel);
    let mut k2 = KernelBuilder::new("relu_add", vec!["%y".into()]);
    let h2 = k2.buffer("h", DType::F32, n, BufferRole::Input);
    let x2 = k2.buffer("x", DType::F32, n, BufferRole::Input);
    let y = k2.buffer("y", DType::F32, n, BufferRole::Output);
    k2.loop_(n, |kb, i| {
        let v = Expr::add(
            Expr::max(Expr::load(h2, Index::var(i)), Expr::f32(0.0)),
            Expr::load(x2, Index::var(i)),
        );
        kb.store(y, Index::var(i), v);
    });
    let mut k2 = k2.finish();
    set_kind(&mut k2.body, VEC4);
    let weight: Vec<f32> = (0..n)
        .map(|i| if i % 3 == 0 { -1.0 } else { 2.0 })
        .collect();
    let buffer = |name: &str, source| ProgramBuffer {
        name: name.into(),
        dtype: DType::F32,
        shape: vec![n],
        source,
    };
    Program {
        buffers: vec![
            buffer("x", BufferSource::Input { name: "x".into() }),
            buffer("w", BufferSource::Weight(t(weight))),
            buffer("h", BufferSource::Computed),
            buffer("y", BufferSource::Computed),
        ],
        calls: vec![
            KernelCall {
                kernel: k1,
                args: vec![ProgramBufferId(0), ProgramBufferId(1), ProgramBufferId(2)],
            },
            KernelCall {
                kernel: k2,
                args: vec![ProgramBufferId(2), ProgramBufferId(0), ProgramBufferId(3)],
            },
        ],
        outputs: vec![
            ("y".into(), ProgramBufferId(3)),
            ("x_again".into(), ProgramBufferId(0)),
            ("h".into(), ProgramBufferId(2)),
        ],
    }
}

fn two_kernel_expected(x: &[f32]) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| (v * if i % 3 == 0 { -1.0 } else { 2.0 }).max(0.0) + v)
        .collect()
}

#[test]
fn multi_kernel_program_with_weights_and_pass_through_output() {
    let n = 1003;
    let compiled = CompiledProgram::compile(
        two_kernel_program(n),
        &JitOptions {
            threads: 2,
            dumps: false,
        },
    )
    .unwrap();
    let x = t(seq(n, 0.5));
    let out = compiled.run(&[("x", &x)]).unwrap();
    assert_eq!(out[0].0, "y");
    assert_eq!(vals::<f32>(&out[0].1), two_kernel_expected(&seq(n, 0.5)));
    assert_eq!(out[1], ("x_again".to_string(), x.clone()));
    assert_eq!(out[2].0, "h");
    // Runs reuse pooled arenas; the second run must not see the first one's values.
    let x2 = t(seq(n, -0.25));
    let out2 = compiled.run(&[("x", &x2)]).unwrap();
    assert_eq!(vals::<f32>(&out2[0].1), two_kernel_expected(&seq(n, -0.25)));
}

#[test]
fn compiled_program_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledProgram>();
}

#[test]
fn many_threads_share_one_compiled_program() {
    let n = 4099;
    let compiled = Arc::new(
        CompiledProgram::compile(
            two_kernel_program(n),
            &JitOptions {
                threads: 2,
                dumps: false,
            },
        )
        .unwrap(),
    );
    let handles: Vec<_> = (0..8)
        .map(|thread_idx| {
            let compiled = Arc::clone(&compiled);
            std::thread::spawn(move || {
                for round in 0..20 {
                    let scale = (thread_idx * 20 + round) as f32 * 0.01 - 0.5;
                    let xs = seq(n, scale);
                    let out = compiled.run(&[("x", &t(xs.clone()))]).unwrap();
                    assert_eq!(
                        vals::<f32>(&out[0].1),
                        two_kernel_expected(&xs),
                        "thread {thread_idx} round {round}"
                    );
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn dumps_hold_clif_and_disassembly_per_kernel() {
    let compiled = CompiledProgram::compile(
        two_kernel_program(16),
        &JitOptions {
            threads: 1,
            dumps: true,
        },
    )
    .unwrap();
    assert_eq!(compiled.dumps().len(), 2);
    let dump = compiled.dump("relu_add").unwrap();
    assert!(dump.clif.starts_with("function"), "{}", dump.clif);
    assert!(
        dump.clif.contains("f32x4"),
        "vectorized kernel: {}",
        dump.clif
    );
    assert!(dump.optimized_clif.contains("f32x4"));
    assert!(!dump.disasm.is_empty());
    assert!(dump.disasm.contains("xmm"), "{}", dump.disasm);
    // Without the option nothing is kept.
    let quiet = CompiledProgram::compile(
        two_kernel_program(16),
        &JitOptions {
            threads: 1,
            dumps: false,
        },
    )
    .unwrap();
    assert!(quiet.dumps().is_empty());
}

#[test]
fn relu_against_zero_is_one_compare_and_blend() {
    // max(x, 0.0) must not use CLIF fmax's NaN fix-up sequence (DESIGN.md), yet keep NaN.
    let kernel = unary_kernel(
        8,
        DType::F32,
        DType::F32,
        |x| Expr::max(x, Expr::f32(0.0)),
        VEC4,
    );
    let compiled = CompiledProgram::compile(
        program_of(kernel, &[]),
        &JitOptions {
            threads: 1,
            dumps: true,
        },
    )
    .unwrap();
    let dump = &compiled.dumps()[0];
    assert!(!dump.clif.contains("fmax"), "{}", dump.clif);
    assert!(dump.clif.contains("bitselect"), "{}", dump.clif);
}

#[test]
fn fma_uses_the_hardware_instruction() {
    let kernel = matmul_kernel(2, 3, 8, LoopKind::Serial, VEC4);
    let compiled = CompiledProgram::compile(
        program_of(kernel, &[]),
        &JitOptions {
            threads: 1,
            dumps: true,
        },
    )
    .unwrap();
    let disasm = &compiled.dumps()[0].disasm;
    if std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("avx") {
        assert!(disasm.contains("vfmadd"), "{disasm}");
    }
}
