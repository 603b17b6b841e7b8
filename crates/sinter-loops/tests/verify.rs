//! The verifier: one negative test per error kind, the positive cases it must accept, and the rule
//! that it reports every problem.
//!
//! Kernels are written in the `.sloop` text format, so each case reads as the kernel it checks.

use sinter_ir::{DType, Tensor};
use sinter_loops::text::parse_kernel;
use sinter_loops::verify::{verify_kernel, verify_program, ProgramVerifyError, VerifyError};
use sinter_loops::*;

fn kernel(text: &str) -> Kernel {
    match parse_kernel(text) {
        Ok(kernel) => kernel,
        Err(err) => panic!("{}", err.render(text)),
    }
}

/// Verifies `text` and checks that the errors, printed, are exactly one per fragment, each
/// containing its fragment.
fn check_errors(text: &str, fragments: &[&str]) -> Vec<VerifyError> {
    let errors = match verify_kernel(&kernel(text)) {
        Ok(()) => Vec::new(),
        Err(errors) => errors,
    };
    let printed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        printed.len(),
        fragments.len(),
        "expected {fragments:#?}\ngot {printed:#?}"
    );
    for (message, fragment) in printed.iter().zip(fragments) {
        assert!(
            message.contains(fragment),
            "{message:?} does not contain {fragment:?}"
        );
    }
    errors
}

fn check_ok(text: &str) {
    check_errors(text, &[]);
}

const RELU: &str = "kernel relu {
  b0: f32[8] input x
  b1: f32[8] output y
  for i0 in 0..8 vectorize 4 {
    b1[i0] = max(b0[i0], 0.0)
  }
}";

#[test]
fn accepts_relu_matmul_and_gather() {
    check_ok(RELU);
    // Matmul vectorized over n, with the k reduction inside.
    check_ok(
        "kernel matmul {
  b0: f32[6] input a
  b1: f32[12] weight b
  b2: f32[8] output c
  for i0 in 0..2 {
    for i1 in 0..4 vectorize 4 {
      let v0: f32 = 0.0
      for i2 in 0..3 unroll 2 {
        v0 = fma(b0[3*i0 + i2], b1[i1 + 4*i2], v0)
      }
      b2[4*i0 + i1] = v0
    }
  }
}",
    );
    // Gather rows of a 5x4 table by 3 indices, in parallel.
    check_ok(
        "kernel gather {
  b0: f32[20] weight table
  b1: i64[3] input idx
  b2: f32[12] output y
  for i0 in 0..3 parallel {
    for i1 in 0..4 {
      b2[4*i0 + i1] = b0[i1 + 4*dyn(b1[i0], 5)]
    }
  }
}",
    );
    // Reversed: a negative stride and an offset that brings the range back into the buffer.
    check_ok(
        "kernel reverse {
  b0: f32[12] input x
  b1: f32[12] output y
  for i0 in 0..3 parallel {
    for i1 in 0..4 {
      b1[-4*i0 - i1 + 11] = b0[4*i0 + i1]
    }
  }
}",
    );
}

#[test]
fn an_empty_loop_proves_nothing_out_of_bounds() {
    check_ok(
        "kernel empty {
  b0: f32[1] output y
  for i0 in 0..0 {
    b0[i0 + 100] = 1.0
  }
}",
    );
}

#[test]
fn unknown_buffer() {
    check_errors(
        "kernel k {
  b0: f32[1] output y
  b0[0] = b3[0]
}",
        &["`b0[0] = b3[0]`: buffer b3 does not exist (the kernel has 1)"],
    );
}

#[test]
fn unknown_local() {
    // The text format cannot name a local without a dtype, so build it directly.
    let mut kernel = kernel("kernel k {\n  b0: f32[1] output y\n  b0[0] = 1.0\n}");
    kernel.body.push(Stmt::Store {
        buf: BufferId(0),
        index: Index::constant(0),
        value: Expr::Local(Local(4)),
    });
    let errors = verify_kernel(&kernel).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(
        errors[0],
        VerifyError::UnknownLocal {
            local: Local(4),
            n_locals: 0,
            ..
        }
    ));
    assert!(errors[0].to_string().contains("local v4 does not exist"));
}

#[test]
fn unknown_loop_var() {
    check_errors(
        "kernel k {
  b0: f32[4] output y
  vars 1
  for i0 in 0..4 {
    for i1 in 0..1 {
      b0[i0] = 1.0
    }
  }
}",
        &["`for i1 in 0..1 {`: loop variable i1 does not exist (the kernel has 1)"],
    );
}

#[test]
fn loop_var_out_of_scope() {
    check_errors(
        "kernel k {
  b0: f32[4] output y
  for i0 in 0..4 {
    b0[i0] = 1.0
  }
  b0[i0] = cast<f32>(i0)
}",
        &[
            "`b0[i0] = cast<f32>(i0)`: loop variable i0 is used outside its loop",
            "`b0[i0] = cast<f32>(i0)`: loop variable i0 is used outside its loop",
        ],
    );
}

#[test]
fn loop_var_rebound() {
    check_errors(
        "kernel k {
  b0: f32[4] output y
  for i0 in 0..4 {
    b0[i0] = 1.0
  }
  for i0 in 0..4 {
    b0[i0] = 2.0
  }
}",
        &["loop variable i0 is already bound by another loop"],
    );
}

#[test]
fn local_out_of_scope() {
    check_errors(
        "kernel k {
  b0: f32[4] output y
  for i0 in 0..4 {
    let v0: f32 = 1.0
    b0[i0] = v0
  }
  b0[0] = v0
  v0 = 2.0
}",
        &[
            "`b0[0] = v0`: local v0 is read outside the scope of its `let`",
            "`v0 = 2.0`: local v0 is assigned outside the scope of its `let`",
        ],
    );
    // Use before the `let`, in the same block.
    check_errors(
        "kernel k {
  b0: f32[1] output y
  b0[0] = v0
  let v0: f32 = 1.0
}",
        &["local v0 is read outside the scope"],
    );
}

#[test]
fn local_redeclared() {
    check_errors(
        "kernel k {
  b0: f32[1] output y
  let v0: f32 = 1.0
  if true {
    let v0: f32 = 2.0
  }
}",
        &["`let v0 = 2.0`: local v0 is declared by a second `let`"],
    );
}

#[test]
fn expr_type_rules() {
    check_errors(
        "kernel k {
  b0: f32[1] output y
  b1: i64[1] input n
  b2: u8[1] input u
  let v0: f32 = 1.0 + b1[0]
  let v1: i64 = exp(b1[0])
  let v2: u8 = neg(b2[0])
  let v3: f32 = not(1.0)
  let v4: f32 = pow(2.0, 3.0)
  let v5: i64 = pow(2, 3)
  let v6: bool = true + false
  let v7: f32 = 1.0 & 2.0
  let v8: bool = 1.0 < 1
  let v9: f32 = fma(1.0, 2.0, 3.0:f64)
  let v10: i64 = fma(1, 2, 3)
  let v11: f32 = select(true, 1.0, 1)
  let v12: i64 = abs(b1[0]) + rem(b1[0], 2) ^ 7
  let v13: bool = not(true) | true
}",
        &[
            "`let v0 = 1.0 + b1[0]`: the operands of `add` are f32 and i64",
            "`exp` takes a float, not i64",
            "`neg` takes a float or signed integer, not u8",
            "`not` takes a bool or an integer, not f32",
            "`pow` is not defined on i64",
            "`add` is not defined on bool",
            "`and` is not defined on f32",
            "a comparison of f32 with i64",
            "`fma` takes three f32 or three f64 operands, not f32, f32, f64",
            "`fma` takes three f32 or three f64 operands, not i64, i64, i64",
            "the arms of `select` are f32 and i64",
        ],
    );
}

#[test]
fn condition_not_bool() {
    check_errors(
        "kernel k {
  b0: f32[1] output y
  if 1.0 {
    b0[0] = select(1, 2.0, 3.0)
  }
}",
        &[
            "`if 1.0 {`: the `if` condition is f32, not bool",
            "the `select` condition is i64, not bool",
        ],
    );
}

#[test]
fn store_dtype() {
    check_errors(
        "kernel k {
  b0: f32[1] output y
  b0[0] = 1
}",
        &["the value stored to b0 (y: f32[1] output) is i64, the buffer is f32"],
    );
}

#[test]
fn local_dtype() {
    check_errors(
        "kernel k {
  b0: f32[1] output y
  let v0: f32 = 1
  v0 = true
}",
        &[
            "`let v0 = 1`: the value given to v0 is i64, the local is f32",
            "`v0 = true`: the value given to v0 is bool, the local is f32",
        ],
    );
}

#[test]
fn store_to_read_only() {
    check_errors(
        "kernel k {
  b0: f32[1] input x
  b1: f32[1] weight w
  b2: f32[1] scratch s
  b0[0] = 1.0
  b1[0] = 1.0
  b2[0] = 1.0
}",
        &[
            "stores to b0 (x: f32[1] input), which is read-only (Input)",
            "stores to b1 (w: f32[1] weight), which is read-only (Weight)",
        ],
    );
}

#[test]
fn index_not_normalized() {
    // The parser normalizes indices, so build the bad ones directly.
    let mut kernel = kernel(
        "kernel k {
  b0: f32[16] output y
  for i0 in 0..4 {
    for i1 in 0..4 {
      b0[4*i0 + i1] = 1.0
    }
  }
}",
    );
    let Stmt::Loop(outer) = &mut kernel.body[0] else {
        panic!()
    };
    let Stmt::Loop(inner) = &mut outer.body[0] else {
        panic!()
    };
    let store = |terms: Vec<(LoopVar, i64)>| Stmt::Store {
        buf: BufferId(0),
        index: Index {
            terms,
            offset: 0,
            dynamic: None,
        },
        value: Expr::f32(1.0),
    };
    let (i0, i1) = (LoopVar(0), LoopVar(1));
    inner.body = vec![
        store(vec![(i1, 1), (i0, 4)]),
        store(vec![(i0, 4), (i1, 0)]),
        store(vec![(i0, 1), (i0, 1)]),
    ];
    let errors = verify_kernel(&kernel).unwrap_err();
    let printed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        printed,
        [
            "kernel `k`: `b0[i1 + 4*i0] = 1.0`: the index into b0 (y: f32[16] output) is not normalized \
             (terms sorted by variable, each variable once, no zero coefficient)",
            "kernel `k`: `b0[4*i0 + 0*i1] = 1.0`: the index into b0 (y: f32[16] output) is not normalized \
             (terms sorted by variable, each variable once, no zero coefficient)",
            "kernel `k`: `b0[i0 + i0] = 1.0`: the index into b0 (y: f32[16] output) is not normalized \
             (terms sorted by variable, each variable once, no zero coefficient)",
        ]
    );
}

#[test]
fn index_out_of_bounds() {
    check_errors(
        "kernel k {
  b0: f32[8] input x
  b1: f32[8] output y
  b2: i64[2] input idx
  for i0 in 0..8 {
    b1[i0] = b0[i0 + 1]
    b1[7 - i0] = b0[-i0 + 7]
    b1[-i0] = b0[0]
  }
  for i1 in 0..2 {
    b1[4*dyn(b2[i1], 3)] = 0.0
  }
}",
        &[
            "the index into b0 (x: f32[8] input) ranges over 1..=8, outside 0..8",
            "the index into b1 (y: f32[8] output) ranges over -7..=0, outside 0..8",
            "the index into b1 (y: f32[8] output) ranges over 0..=8, outside 0..8",
        ],
    );
}

#[test]
fn dynamic_term() {
    check_errors(
        "kernel k {
  b0: f32[8] input x
  b1: f32[1] output y
  b1[0] = b0[dyn(1.0, 8)]
  b1[0] = b0[dyn(1, 0)]
}",
        &[
            "the dynamic index term into b0 (x: f32[8] input) has a f32 value; it must be an integer",
            "the dynamic index term into b0 (x: f32[8] input) has extent 0; it must be positive",
        ],
    );
}

#[test]
fn loop_kind_invalid() {
    check_errors(
        "kernel k {
  b0: f32[8] output y
  for i0 in 0..8 vectorize 8 {
    b0[i0] = 1.0
  }
  for i1 in 0..8 unroll 0 {
    b0[i1] = 1.0
  }
}",
        &[
            "`for i0 in 0..8 vectorize 8 {`: vector width 8 is not supported (only 4)",
            "`for i1 in 0..8 unroll 0 {`: an unroll factor must be at least 1",
        ],
    );
}

#[test]
fn vectorize_illegal() {
    check_errors(
        "kernel k {
  b0: f32[64] input x
  b1: f32[64] output y
  b2: i64[8] input n
  b3: bool[8] input mask
  let v0: f32 = 0.0
  for i0 in 0..8 vectorize 4 {
    b1[2*i0] = b0[3*i0]
    v0 = b0[i0]
    if b0[i0] > 0.0 {
      b1[i0] = cast<f32>(i0)
    }
    let v1: i64 = b2[i0]
    b1[i0 + dyn(b2[i0], 8)] = b0[dyn(b2[i0], 8)]
    b1[i0] = select(b3[i0], 1.0, 0.0)
    for i1 in 0..4 vectorize 4 {
      b1[i1] = 1.0
    }
  }
}",
        &[
            "the store to b1[2*i0] has coefficient 2 for i0; it must be 1",
            "the load b0[3*i0] has coefficient 3 for i0; it must be 0 or 1",
            "it assigns v0, which is declared outside the loop",
            "the condition of `if b0[i0] > 0.0` depends on i0",
            "the loop variable i0 is used as a value",
            "`b2[i0]` is i64 and depends on i0",
            "the dynamic index term of the store to b1 depends on i0",
            "`b2[i0]` is i64 and depends on i0",
            "the dynamic index term of the load from b0 depends on i0",
            "`b2[i0]` is i64 and depends on i0",
            "the load b3[i0] reads bool with coefficient 1 for i0; vector loads are f32",
            "it contains the vectorized loop over i1",
            "the store to b1[i1] has coefficient 0 for i0; it must be 1",
        ],
    );
}

#[test]
fn vectorized_masks_and_inner_reductions_are_legal() {
    check_ok(
        "kernel k {
  b0: f32[8] input x
  b1: f32[8] output y
  b2: f32[1] input bias
  for i0 in 0..8 vectorize 4 {
    let v0: bool = b0[i0] > b2[0]
    let v1: f32 = select(not(v0) | v0, b0[i0], cast<f32>(v0))
    b1[i0] = v1 * b2[0]
  }
}",
    );
}

#[test]
fn parallel_not_top_level() {
    check_errors(
        "kernel k {
  b0: f32[8] output y
  for i0 in 0..2 {
    for i1 in 0..4 parallel {
      b0[4*i0 + i1] = 1.0
    }
  }
  for i2 in 0..8 parallel {
    b0[i2] = 2.0
  }
}",
        &[
            "`for i1 in 0..4 parallel {`: a parallel loop must be the kernel's only top-level statement",
            "`for i2 in 0..8 parallel {`: a parallel loop must be the kernel's only top-level statement",
        ],
    );
}

#[test]
fn parallel_not_disjoint() {
    // Every iteration accumulates into the same element.
    check_errors(
        "kernel k {
  b0: f32[8] input x
  b1: f32[1] output y
  for i0 in 0..8 parallel {
    b1[0] = b1[0] + b0[i0]
  }
}",
        &["the accesses to b1 must all have one nonzero coefficient for i0, found [0, 0]"],
    );
    // Overlapping windows: iteration i0 writes 4*i0 .. 4*i0+4.
    check_errors(
        "kernel k {
  b0: f32[20] output y
  for i0 in 0..4 parallel {
    for i1 in 0..5 {
      b0[4*i0 + i1] = 1.0
    }
  }
}",
        &["each iteration touches a window of 5 elements of b0, wider than the stride 4 of i0"],
    );
    // A read of a written buffer at another iteration's element.
    check_errors(
        "kernel k {
  b0: f32[9] output y
  for i0 in 0..8 parallel {
    b0[i0] = b0[i0 + 1]
  }
}",
        &["each iteration touches a window of 2 elements of b0"],
    );
}

#[test]
fn every_problem_is_reported() {
    let errors = check_errors(
        "kernel many {
  b0: f32[4] input x
  b1: f32[4] output y
  for i0 in 0..5 {
    b0[i0] = 1
    b1[i0] = exp(2)
  }
}",
        &[
            "`b0[i0] = 1`: the index into b0 (x: f32[4] input) ranges over 0..=4, outside 0..4",
            "`b0[i0] = 1`: stores to b0 (x: f32[4] input), which is read-only",
            "`b0[i0] = 1`: the value stored to b0 (x: f32[4] input) is i64, the buffer is f32",
            "`b1[i0] = exp(2)`: `exp` takes a float, not i64",
            "`b1[i0] = exp(2)`: the index into b1 (y: f32[4] output) ranges over 0..=4",
        ],
    );
    // Every error names the kernel.
    assert!(errors
        .iter()
        .all(|e| e.to_string().starts_with("kernel `many`")));
}

fn program_buffer(name: &str, len: usize, source: BufferSource) -> ProgramBuffer {
    ProgramBuffer {
        name: name.into(),
        dtype: DType::F32,
        shape: vec![len],
        source,
    }
}

#[test]
fn program_call_order_bindings_and_outputs() {
    let relu = kernel(RELU);
    let computed = || BufferSource::Computed;
    let mut program = Program {
        buffers: vec![
            program_buffer("x", 8, BufferSource::Input { name: "x".into() }),
            program_buffer("%1", 8, computed()),
            program_buffer("%2", 8, computed()),
            program_buffer(
                "w",
                8,
                BufferSource::Weight(Tensor::zeros(DType::F32, vec![8])),
            ),
        ],
        calls: vec![
            KernelCall {
                kernel: relu.clone(),
                args: vec![ProgramBufferId(0), ProgramBufferId(1)],
            },
            KernelCall {
                kernel: relu.clone(),
                args: vec![ProgramBufferId(3), ProgramBufferId(2)],
            },
        ],
        outputs: vec![("y".into(), ProgramBufferId(2))],
    };
    assert_eq!(verify_program(&program), Ok(()));

    // Reading %2 before the call that writes it, an output nobody writes, one that does not exist.
    program.calls.swap(0, 1);
    program.calls[0].args = vec![ProgramBufferId(1), ProgramBufferId(2)];
    program.calls[1].args = vec![ProgramBufferId(0), ProgramBufferId(1)];
    program.buffers.push(program_buffer("%4", 8, computed()));
    program.outputs.push(("z".into(), ProgramBufferId(4)));
    program.outputs.push(("gone".into(), ProgramBufferId(9)));
    let errors = verify_program(&program).unwrap_err();
    let printed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(printed.len(), 3, "{printed:#?}");
    assert!(matches!(
        errors[0],
        ProgramVerifyError::ReadBeforeWrite {
            call_idx: 0,
            param_idx: 0,
            ..
        }
    ));
    assert!(printed[0].contains("reads B1 (`%1`) as parameter b0 before any call writes it"));
    assert!(printed[1].contains("output `z` is B4, which no call writes"));
    assert!(printed[2].contains("output `gone` is B9, which does not exist"));

    // A binding error and a kernel error.
    let mut bad = relu.clone();
    bad.body.clear();
    bad.body.push(Stmt::Store {
        buf: BufferId(0),
        index: Index::constant(0),
        value: Expr::f32(1.0),
    });
    let program = Program {
        buffers: vec![
            program_buffer("x", 8, BufferSource::Input { name: "x".into() }),
            program_buffer("%1", 4, computed()),
        ],
        calls: vec![KernelCall {
            kernel: bad,
            args: vec![ProgramBufferId(0), ProgramBufferId(1)],
        }],
        outputs: vec![],
    };
    let errors = verify_program(&program).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(matches!(errors[0], ProgramVerifyError::Binding(_)));
    assert!(matches!(
        errors[1],
        ProgramVerifyError::Kernel(VerifyError::StoreToReadOnly { .. })
    ));
}

/// A 2x3 product as one tile, with a bias epilogue: the shape every tile test varies.
const TILE: &str = "kernel tile {
  b0: f32[8] input a
  b1: f32[12] weight b
  b2: f32[3] weight bias
  b3: f32[6] output c
  local v0: f32
  vars 2
  tile rows 2 cols 3 depth 4 {
    a b0[0] row 4 k 1
    b b1[0] k 3
    c b3[0] row 3
    epilogue row i0 col i1 acc v0 = max(v0 + b2[i1], 0.0)
  }
}";

#[test]
fn tiles_are_checked_for_shape_bounds_aliasing_and_their_epilogue() {
    check_ok(TILE);
    // One row too many reads past `a` and writes past `c`.
    check_errors(
        &TILE.replace("rows 2", "rows 3"),
        &[
            "b0 (a: f32[8] input) ranges over 0..=11",
            "b3 (c: f32[6] output) ranges over 0..=8",
        ],
    );
    check_errors(
        &TILE
            .replace("rows 2 cols 3", "rows 5 cols 3")
            .replace("f32[8] input", "f32[20] input")
            .replace("f32[6] output", "f32[15] output"),
        &["a tile is 5x3; it must be 1..=4 rows by 1..=8 columns"],
    );
    // Reading the result while it is written; a result that is a weight.
    check_errors(
        &TILE.replace("+ b2[i1]", "+ b3[i1]"),
        &["the epilogue reads b3, the tile's result"],
    );
    check_errors(
        &TILE.replace("c b3[0]", "c b1[0]"),
        &[
            "b1 is both an operand and the result",
            "stores to b1 (b: f32[12] weight)",
        ],
    );
    check_errors(
        &TILE.replace("f32[6] output c", "f32[6] weight c"),
        &["stores to b3 (c: f32[6] weight)"],
    );
    // The epilogue runs four columns at a time: the column must not be a value.
    check_errors(
        &TILE.replace("max(v0 + b2[i1], 0.0)", "v0 + cast<f32>(i1)"),
        &["the epilogue cannot run four columns at a time"],
    );
    // A tile is vector code already: it cannot sit in a vectorized loop.
    let nested = "kernel nested {
  b0: f32[32] input a
  b1: f32[4] weight b
  b2: f32[32] output c
  for i0 in 0..8 vectorize 4 {
    tile rows 1 cols 4 depth 1 {
      a b0[4*i0] row 1 k 1
      b b1[0] k 4
      c b2[4*i0] row 4
    }
  }
}";
    check_errors(nested, &["it contains a matrix tile"]);
}

#[test]
fn a_parallel_loop_of_tiles_is_proved_disjoint_row_by_row() {
    // Panels of 4 columns of a 3 x 8 result: each iteration writes a 3 x 4 block, rows 8 apart.
    let panels = "kernel panels {
  b0: f32[6] input a
  b1: f32[16] weight b
  b2: f32[24] output c
  for i0 in 0..2 parallel {
    tile rows 3 cols 4 depth 2 {
      a b0[0] row 2 k 1
      b b1[8*i0] k 4
      c b2[4*i0] row 8
    }
  }
}";
    check_ok(panels);
    // Blocks of 5 columns overlap the next panel's.
    check_errors(
        &panels
            .replace("cols 4", "cols 5")
            .replace("b1: f32[16]", "b1: f32[20]")
            .replace("row 8", "row 10")
            .replace("f32[24]", "f32[32]"),
        &["the parallel iterations may touch the same element"],
    );
}
