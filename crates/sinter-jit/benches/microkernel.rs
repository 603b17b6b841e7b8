//! The GEMM microkernel (`Stmt::MatTile`) on its own: an `n x n x n` f32 product written directly as
//! one loop-IR kernel, so the figure is the tile code's, not the lowering's.
//!
//! The kernel packs `b` into 8-column panels (`[n/8][n][8]`, a scratch buffer) with plain loops (the
//! innermost vectorized), then
//! runs 4x8 tiles over (panel, row tile), reading `a` unpacked (`a_row = n`, `a_depth = 1`).
//! Variants block the depth in chunks of `kc` (the later chunks `accumulate`), with the loop order
//! panel, depth block, row tile, so one `kc x 8` block of the panel stays in L1 across the rows.
//!
//! Throughput is `2 n^3` elements, so criterion's "elem/s" is FLOP/s; a summary line per case also
//! prints GFLOP/s from the best of a few timed runs. The target (sinter issue 4) is 45 GFLOP/s on one
//! thread at n = 512; 128-bit FMA peaks at 58.7 here (DESIGN.md). Before a case is timed its result
//! is checked bit for bit against a Rust fma chain on a sample of rows.
//!
//! `SINTER_MICROKERNEL_ASM=1` prints the disassembly of each variant's kernel (Cranelift's VCode
//! listing), to check the inner loop for spills and the form of its FMAs.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sinter_ir::{DType, Tensor};
use sinter_jit::{CompiledProgram, JitOptions};
use sinter_loops::*;
use std::time::{Duration, Instant};

/// `c = a @ b` (row-major `n x n`) from packed panels and 4x8 tiles, depth in blocks of `kc`.
fn gemm_kernel(n: usize, kc: usize) -> Kernel {
    assert!(
        n.is_multiple_of(8) && n.is_multiple_of(kc),
        "the benchmark uses whole tiles"
    );
    let mut kb = KernelBuilder::new(format!("gemm{n}_kc{kc}"), vec!["%gemm".into()]);
    let a = kb.buffer("a", DType::F32, n * n, BufferRole::Input);
    let b = kb.buffer("b", DType::F32, n * n, BufferRole::Input);
    let c = kb.buffer("c", DType::F32, n * n, BufferRole::Output);
    let packed = kb.buffer("b_packed", DType::F32, n * n, BufferRole::Scratch);
    let n_i = n as i64;
    kb.loops(&[n / 8, n, 8], |kb, v| {
        let (p, k, col) = (v[0], v[1], v[2]);
        let dst = Index::strided(&[p, k, col], &[8 * n_i, 8, 1], 0);
        let src = Index::strided(&[p, k, col], &[8, n_i, 1], 0);
        kb.store(packed, dst, Expr::load(b, src));
    });
    kb.loops(&[n / 8, n / kc], |kb, v| {
        let (p, kblock) = (v[0], v[1]);
        let kc_i = kc as i64;
        // The first depth block starts from zero, the others add to it.
        let tiles = |kb: &mut KernelBuilder, kblock_offset: i64, accumulate: bool| {
            kb.loop_(n / 4, |kb, i| {
                kb.mat_tile(MatTile {
                    rows: 4,
                    cols: 8,
                    depth: kc,
                    a,
                    a_index: Index::strided(&[i, kblock], &[4 * n_i, kc_i], kblock_offset),
                    a_row: n_i,
                    a_depth: 1,
                    b: packed,
                    b_index: Index::strided(&[p, kblock], &[8 * n_i, 8 * kc_i], 8 * kblock_offset),
                    b_depth: 8,
                    c,
                    c_index: Index::strided(&[i, p], &[4 * n_i, 8], 0),
                    c_row: n_i,
                    accumulate,
                    epilogue: None,
                });
            });
        };
        kb.if_(
            Expr::cmp(CmpOp::Eq, Expr::Var(kblock), Expr::Const(Scalar::I64(0))),
            |kb| tiles(kb, 0, false),
            |kb| tiles(kb, 0, true),
        );
    });
    let mut kernel = kb.finish();
    // The pack's innermost loop (8 contiguous columns) copies four at a time.
    if let Stmt::Loop(panels) = &mut kernel.body[0] {
        if let Some(Stmt::Loop(rows)) = panels.body.first_mut() {
            if let Some(Stmt::Loop(cols)) = rows.body.first_mut() {
                cols.kind = LoopKind::Vectorized { width: 4 };
            }
        }
    }
    kernel
}

fn program(kernel: Kernel) -> Program {
    let n2 = kernel.buffers[0].len;
    let buffer = |name: &str, source| ProgramBuffer {
        name: name.into(),
        dtype: DType::F32,
        shape: vec![n2],
        source,
    };
    Program {
        buffers: vec![
            buffer("a", BufferSource::Input { name: "a".into() }),
            buffer("b", BufferSource::Input { name: "b".into() }),
            buffer("c", BufferSource::Computed),
            buffer("b_packed", BufferSource::Computed),
        ],
        calls: vec![KernelCall {
            kernel,
            args: (0..4).map(ProgramBufferId).collect(),
        }],
        outputs: vec![("c".into(), ProgramBufferId(2))],
    }
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = sinter_ir::rng::SplitMix64::new(seed);
    (0..n)
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
        .collect()
}

/// Checks rows 0, 1, 5, ... (a sample, to keep the check short) bit for bit.
fn check(n: usize, a: &[f32], b: &[f32], c: &[f32]) -> Result<(), String> {
    for r in (0..n).step_by(37).chain([n - 1]) {
        for col in 0..n {
            let mut acc = 0.0f32;
            for k in 0..n {
                acc = a[r * n + k].mul_add(b[k * n + col], acc);
            }
            if acc.to_bits() != c[r * n + col].to_bits() {
                return Err(format!(
                    "c[{r}, {col}] = {} but the fma chain gives {acc}",
                    c[r * n + col]
                ));
            }
        }
    }
    Ok(())
}

fn bench_microkernel(crit: &mut Criterion) {
    let mut group = crit.benchmark_group("microkernel_gemm_f32");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_millis(500));
    let show_asm = std::env::var_os("SINTER_MICROKERNEL_ASM").is_some();
    for (n, kcs) in [(512usize, [512usize, 256, 128]), (256, [256, 128, 64])] {
        let a = Tensor::from_vec(vec![n * n], values(n * n, 1)).expect("n*n values");
        let b = Tensor::from_vec(vec![n * n], values(n * n, 2)).expect("n*n values");
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        for kc in kcs {
            let name = format!("n{n}_kc{kc}");
            let options = JitOptions {
                threads: 1,
                dumps: show_asm,
            };
            let compiled = match CompiledProgram::compile(program(gemm_kernel(n, kc)), &options) {
                Ok(compiled) => compiled,
                Err(e) => {
                    println!("{name}: skipped, it does not compile: {e}");
                    continue;
                }
            };
            if show_asm {
                println!("{name} disassembly:\n{}", compiled.dumps()[0].disasm);
            }
            let inputs = [("a", &a), ("b", &b)];
            let out = compiled.run(&inputs).expect("the inputs match");
            let c = out[0].1.as_slice::<f32>().expect("f32 output");
            let (a_s, b_s) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
            if let Err(e) = check(n, a_s, b_s, c) {
                println!("{name}: skipped, wrong result: {e}");
                continue;
            }
            let best = (0..15)
                .map(|_| {
                    let start = Instant::now();
                    compiled.run(&inputs).expect("ran before");
                    start.elapsed()
                })
                .min()
                .expect("fifteen runs");
            println!(
                "{name}: {:.1} GFLOP/s (best of 15: {:.3} ms)",
                2.0 * (n as f64).powi(3) / best.as_secs_f64() / 1e9,
                best.as_secs_f64() * 1e3
            );
            group.bench_function(name, |bench| {
                bench.iter(|| compiled.run(&inputs).expect("ran before"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_microkernel);
criterion_main!(benches);
