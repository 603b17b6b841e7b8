//! Schedule transforms: each result verifies, prints as expected, and computes bit-for-bit the same
//! buffers as the original on random data (no transform reorders floating-point operations), run by
//! the loop-IR interpreter.

use sinter_ir::rng::SplitMix64;
use sinter_ir::TensorData;
use sinter_loops::interp::run_kernel;
use sinter_loops::schedule::*;
use sinter_loops::text::{parse_kernel, print_kernel};
use sinter_loops::verify::verify_kernel;
use sinter_loops::*;

fn kernel(text: &str) -> Kernel {
    match parse_kernel(text) {
        Ok(kernel) => kernel,
        Err(err) => panic!("{}", err.render(text)),
    }
}

/// Random buffers for `kernel`: floats in [-2, 2), integers in `0..int_range`, outputs random too (so
/// that an element a transform forgets to write shows up as a difference).
fn random_buffers(kernel: &Kernel, seed: u64, int_range: u64) -> Vec<TensorData> {
    let mut rng = SplitMix64::new(seed);
    kernel
        .buffers
        .iter()
        .map(|decl| {
            let values: Vec<f64> = (0..decl.len)
                .map(|_| {
                    if decl.dtype.is_float() {
                        rng.uniform(-2.0, 2.0)
                    } else {
                        (rng.next_u64() % int_range.max(1)) as f64
                    }
                })
                .collect();
            TensorData::from_f64s(decl.dtype, values.into_iter())
        })
        .collect()
}

fn run(kernel: &Kernel, buffers: &[TensorData]) -> Vec<TensorData> {
    let mut buffers = buffers.to_vec();
    let status = run_kernel(kernel, &mut buffers).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(status, 0, "kernel `{}` returned {status}", kernel.name);
    buffers
}

/// Every element as bits: floats by their bit pattern (f32 widens to f64 exactly), integers as is.
fn bits(data: &TensorData) -> Vec<u64> {
    (0..data.len())
        .map(|idx| {
            if data.dtype().is_float() {
                data.get_f64(idx).to_bits()
            } else {
                data.get_i64(idx) as u64
            }
        })
        .collect()
}

/// The transformed kernel verifies and computes the same non-scratch buffers as the original.
fn check_same(original: &Kernel, transformed: &Kernel, int_range: u64) {
    verify_kernel(original).unwrap_or_else(|errs| panic!("original: {errs:#?}"));
    verify_kernel(transformed)
        .unwrap_or_else(|errs| panic!("transformed: {errs:#?}\n{}", print_kernel(transformed)));
    for seed in 0..3 {
        let inputs = random_buffers(original, seed, int_range);
        let expected = run(original, &inputs);
        let actual = run(transformed, &inputs);
        for (idx, decl) in original.buffers.iter().enumerate() {
            if decl.role != BufferRole::Scratch {
                assert_eq!(
                    bits(&actual[idx]),
                    bits(&expected[idx]),
                    "buffer {idx} ({}) differs\n{}",
                    decl.name,
                    print_kernel(transformed)
                );
            }
        }
    }
}

const MATMUL: &str = "kernel matmul {
  b0: f32[15] input a
  b1: f32[40] weight b
  b2: f32[24] output c
  for i0 in 0..3 {
    for i1 in 0..8 {
      let v0: f32 = 0.0
      for i2 in 0..5 {
        v0 = fma(b0[5*i0 + i2], b1[i1 + 8*i2], v0)
      }
      b2[8*i0 + i1] = v0
    }
  }
}
";

const RELU_BATCH1: &str = "kernel relu {
  b0: f32[96] input x
  b1: f32[96] output y
  for i0 in 0..1 {
    for i1 in 0..96 {
      b1[96*i0 + i1] = max(b0[96*i0 + i1], 0.0)
    }
  }
}
";

/// A row softmax: three loops over each row, with a running max and sum.
const SOFTMAX: &str = "kernel softmax {
  b0: f32[24] input x
  b1: f32[24] output y
  for i0 in 0..4 {
    let v0: f32 = -inf
    for i1 in 0..6 {
      v0 = max(v0, b0[6*i0 + i1])
    }
    let v1: f32 = 0.0
    for i2 in 0..6 {
      let v2: f32 = exp(b0[6*i0 + i2] - v0)
      b1[6*i0 + i2] = v2
      v1 = v1 + v2
    }
    for i3 in 0..6 {
      b1[6*i0 + i3] = b1[6*i0 + i3] / v1
    }
  }
}
";

/// A transpose: no loop can vectorize (stores or loads stride by more than 1 in every loop).
const TRANSPOSE: &str = "kernel transpose {
  b0: f32[48] input x
  b1: f32[48] output y
  for i0 in 0..6 {
    for i1 in 0..8 {
      b1[8*i0 + i1] = b0[6*i1 + i0]
    }
  }
}
";

/// Uses its loop variable as a value and gathers through a data-dependent index.
const IOTA_GATHER: &str = "kernel iota_gather {
  b0: f32[10] weight table
  b1: i64[12] input idx
  b2: f32[12] output y
  for i0 in 0..12 {
    b2[i0] = b0[dyn(b1[i0], 10)] + cast<f32>(i0)
  }
}
";

const SUM_ALL: &str = "kernel sum {
  b0: f32[32] input x
  b1: f32[1] output y
  for i0 in 0..32 {
    b1[0] = b1[0] + b0[i0]
  }
}
";

#[test]
fn split_tiles_and_substitutes() {
    let original = kernel(IOTA_GATHER);
    let split = split_loop(&original, LoopVar(0), 4).unwrap();
    insta::assert_snapshot!("split_iota_gather", print_kernel(&split));
    check_same(&original, &split, 10);

    let original = kernel(MATMUL);
    let split = split_loop(&original, LoopVar(1), 2).unwrap();
    assert_eq!(split.n_loop_vars, 4);
    check_same(&original, &split, 1);
}

#[test]
fn split_rejects_what_it_cannot_do() {
    let original = kernel(MATMUL);
    assert!(matches!(
        split_loop(&original, LoopVar(1), 3),
        Err(ScheduleError::NotDivisible {
            extent: 8,
            factor: 3,
            ..
        })
    ));
    assert!(matches!(
        split_loop(&original, LoopVar(1), 0),
        Err(ScheduleError::BadFactor { .. })
    ));
    assert!(matches!(
        split_loop(&original, LoopVar(9), 2),
        Err(ScheduleError::NoSuchLoop { .. })
    ));
    let vectorized = vectorize(&original, 4).unwrap();
    let err = split_loop(&vectorized, LoopVar(1), 2).unwrap_err();
    assert!(
        err.to_string().contains("split needs a serial loop"),
        "{err}"
    );
}

#[test]
fn vectorize_picks_the_innermost_legal_loop() {
    // Matmul: the k loop is a reduction (store coefficient 0), so the n loop around it vectorizes.
    let original = kernel(MATMUL);
    let vectorized = vectorize(&original, 4).unwrap();
    insta::assert_snapshot!("vectorize_matmul", print_kernel(&vectorized));
    check_same(&original, &vectorized, 1);

    // Softmax: the reductions over a row stay serial (they assign locals of the outer loop); the
    // normalising loop vectorizes; the exp loop assigns v1 declared outside, so it stays serial.
    let original = kernel(SOFTMAX);
    let vectorized = vectorize(&original, 4).unwrap();
    insta::assert_snapshot!("vectorize_softmax", print_kernel(&vectorized));
    check_same(&original, &vectorized, 1);

    // Nothing in a transpose or an iota vectorizes, so they come back unchanged.
    let original = kernel(TRANSPOSE);
    assert_eq!(vectorize(&original, 4).unwrap(), original);
    let original = kernel(IOTA_GATHER);
    assert_eq!(vectorize(&original, 4).unwrap(), original);

    // A loop shorter than the vector width is not vectorized.
    let short = kernel(
        "kernel short {
  b0: f32[3] output y
  for i0 in 0..3 {
    b0[i0] = 1.0
  }
}",
    );
    assert_eq!(vectorize(&short, 4).unwrap(), short);
    assert_eq!(
        vectorize(&short, 8),
        Err(ScheduleError::UnsupportedVectorWidth { width: 8 })
    );
}

#[test]
fn unroll_marks_loops() {
    let original = kernel(MATMUL);
    let unrolled = unroll_loop(&original, LoopVar(2), 4).unwrap();
    check_same(&original, &unrolled, 1);
    let Stmt::Loop(outer) = &unrolled.body[0] else {
        panic!()
    };
    let Stmt::Loop(middle) = &outer.body[0] else {
        panic!()
    };
    let Stmt::Loop(inner) = &middle.body[1] else {
        panic!()
    };
    assert_eq!(inner.kind, LoopKind::Unrolled { factor: 4 });
    assert!(matches!(
        unroll_loop(&unrolled, LoopVar(2), 2),
        Err(ScheduleError::LoopNotSerial { .. })
    ));
    assert!(matches!(
        unroll_loop(&original, LoopVar(2), 1),
        Err(ScheduleError::BadFactor { .. })
    ));

    // unroll_innermost: the three innermost loops of softmax.
    let original = kernel(SOFTMAX);
    let unrolled = unroll_innermost(&original, 2);
    check_same(&original, &unrolled, 1);
    assert_eq!(print_kernel(&unrolled).matches("unroll 2").count(), 3);
    assert_eq!(unroll_innermost(&original, 1), original);
}

#[test]
fn parallelize_requires_disjoint_writes() {
    for text in [MATMUL, SOFTMAX, TRANSPOSE, IOTA_GATHER] {
        let original = kernel(text);
        let parallel = parallelize(&original).unwrap();
        let Stmt::Loop(lp) = &parallel.body[0] else {
            panic!()
        };
        assert_eq!(lp.kind, LoopKind::Parallel);
        check_same(&original, &parallel, 10);
        // Idempotent.
        assert_eq!(parallelize(&parallel).unwrap(), parallel);
    }
    let err = parallelize(&kernel(SUM_ALL)).unwrap_err();
    assert!(
        err.to_string()
            .contains("the accesses to b1 must all have one nonzero coefficient for i0"),
        "{err}"
    );
    let err = parallelize(&kernel(RELU_BATCH1)).unwrap_err();
    assert!(
        err.to_string().contains("the loop has 1 iteration(s)"),
        "{err}"
    );
    let two = kernel(
        "kernel two {
  b0: f32[4] output y
  for i0 in 0..4 {
    b0[i0] = 1.0
  }
  for i1 in 0..4 {
    b0[i1] = 2.0
  }
}",
    );
    let err = parallelize(&two).unwrap_err();
    assert!(
        err.to_string().contains("it has 2 top-level statements"),
        "{err}"
    );
}

#[test]
fn remove_unit_loops_exposes_the_real_loop() {
    let original = kernel(RELU_BATCH1);
    let flat = remove_unit_loops(&original);
    insta::assert_snapshot!("remove_unit_loops", print_kernel(&flat));
    check_same(&original, &flat, 1);
    // The loop variable as a value becomes 0.
    let original = kernel(
        "kernel unit {
  b0: f32[4] output y
  for i0 in 0..1 {
    for i1 in 0..4 {
      b0[i1 + 4*i0] = cast<f32>(i0 + i1)
    }
  }
}"
        .replace("i1 + 4*i0", "4*i0 + i1")
        .as_str(),
    );
    let flat = remove_unit_loops(&original);
    check_same(&original, &flat, 1);
    assert!(print_kernel(&flat).contains("b0[i1] = cast<f32>(0 + i1)"));
}

#[test]
fn schedule_kernel_pipeline() {
    let parallel = ScheduleOptions {
        vector_width: 4,
        parallel: true,
        unroll: 2,
    };
    // A batch-1 elementwise kernel: the unit loop goes, the flat loop is split into parallel chunks
    // whose inner loop vectorizes.
    let original = kernel(RELU_BATCH1);
    let scheduled = schedule_kernel(&original, &parallel).unwrap();
    insta::assert_snapshot!("schedule_relu_parallel", print_kernel(&scheduled));
    check_same(&original, &scheduled, 1);

    let original = kernel(MATMUL);
    let scheduled = schedule_kernel(&original, &parallel).unwrap();
    insta::assert_snapshot!("schedule_matmul_parallel", print_kernel(&scheduled));
    check_same(&original, &scheduled, 1);

    for text in [SOFTMAX, TRANSPOSE, IOTA_GATHER, SUM_ALL] {
        let original = kernel(text);
        for options in [parallel, ScheduleOptions::default()] {
            let scheduled = schedule_kernel(&original, &options).unwrap();
            check_same(&original, &scheduled, 10);
        }
    }
    // The default does not thread.
    let scheduled = schedule_kernel(&kernel(MATMUL), &ScheduleOptions::default()).unwrap();
    assert!(!print_kernel(&scheduled).contains("parallel"));
    assert!(print_kernel(&scheduled).contains("vectorize 4"));
    let off = ScheduleOptions {
        vector_width: 1,
        parallel: false,
        unroll: 0,
    };
    assert_eq!(
        schedule_kernel(&kernel(MATMUL), &off).unwrap(),
        kernel(MATMUL)
    );
    assert_eq!(
        schedule_kernel(
            &kernel(MATMUL),
            &ScheduleOptions {
                vector_width: 3,
                ..off
            }
        ),
        Err(ScheduleError::UnsupportedVectorWidth { width: 3 })
    );
}

#[test]
fn a_split_parallel_loop_stays_parallel_and_disjoint() {
    let original = kernel(MATMUL);
    let parallel = parallelize(&original).unwrap();
    let split = split_loop(&parallel, LoopVar(0), 3).unwrap();
    check_same(&original, &split, 1);
    assert!(print_kernel(&split).starts_with(
        "kernel matmul {\n  b0: f32[15] input a\n  b1: f32[40] weight b\n  b2: f32[24] output c\n  for i0 in 0..1 parallel {"
    ));
}

/// A graph with one op of each lowering family, whose inputs are all graph inputs except the gather
/// indices (a constant, so they are in range).
const GRAPH: &str = "graph sched {
  input %x: f32[2,3,6,6]
  input %w: f32[4,3,3,3]
  input %a: f32[5,7]
  input %b: f32[7,9]
  input %s: f32[9]
  const @idx: i64[3] = [0, -1, 2]
  %0: f32[2,4,4,4] = conv(%x, %w)
  %1: f32[2,4,4,4] = relu(%0)
  %2: f32[2,4,2,2] = max_pool(%1) {kernel_shape=[2,2], strides=[2,2]}
  %3: f32[5,9] = matmul(%a, %b)
  %4: f32[5,9] = softmax(%3)
  %5: f32[3,9] = gather(%4, @idx)
  %6: f32[9,5] = transpose(%3) {perm=[1,0]}
  %7: f32[5,1] = reduce_sum(%3) {axes=[1]}
  %8: f32[5,9] = layer_norm(%3, %s)
  %9: i64[1,9] = arg_max(%3)
  %10: f32[8,9] = concat(%5, %3) {axis=0}
  output pool = %2
  output g = %5
  output t = %6
  output r = %7
  output n = %8
  output am = %9
  output c = %10
}";

#[test]
fn lowered_kernels_schedule_verify_and_agree() {
    let graph = sinter_ir::parse_graph(GRAPH, &Default::default())
        .unwrap_or_else(|err| panic!("{}", err.render(GRAPH)));
    let program = sinter_loops::lower::lower_graph(&graph).unwrap_or_else(|err| panic!("{err}"));
    assert!(program.calls.len() >= 10, "{} calls", program.calls.len());
    let options = [
        ScheduleOptions {
            vector_width: 4,
            parallel: true,
            unroll: 4,
        },
        ScheduleOptions::default(),
    ];
    let (mut n_vectorized, mut n_parallel) = (0, 0);
    for call in &program.calls {
        for options in &options {
            let scheduled = schedule_kernel(&call.kernel, options).unwrap();
            let text = print_kernel(&scheduled);
            n_vectorized += usize::from(text.contains("vectorize 4"));
            n_parallel += usize::from(text.contains(" parallel {"));
            check_same(&call.kernel, &scheduled, 3);
        }
    }
    // Most lowered kernels have a loop worth vectorizing and a top loop worth threading.
    assert!(
        n_vectorized >= program.calls.len(),
        "{n_vectorized} vectorized"
    );
    assert!(
        n_parallel >= program.calls.len() / 2,
        "{n_parallel} parallel"
    );
}
