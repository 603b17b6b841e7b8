//! The `.sloop` text format: printed snapshots, exact round trips (bits of every float included),
//! and parse errors with their positions.

use sinter_ir::{DType, Tensor};
use sinter_loops::text::{parse_kernel, parse_program, print_kernel, print_program, weight_hash};
use sinter_loops::*;
use std::collections::HashMap;
use std::ops::{Add, Div, Mul, Sub};

/// `c[m, n] = sum_k a[m, k] * b[k, n]` for 2x3 times 3x4.
fn matmul() -> Kernel {
    let mut kb = KernelBuilder::new("matmul_0", vec!["%0".into()]);
    let a = kb.buffer("x", DType::F32, 6, BufferRole::Input);
    let b = kb.buffer("@w", DType::F32, 12, BufferRole::Weight);
    let c = kb.buffer("%0", DType::F32, 8, BufferRole::Output);
    kb.loops(&[2, 4], |kb, vars| {
        let (m, n) = (vars[0], vars[1]);
        let acc = kb.local(DType::F32, Expr::f32(0.0));
        kb.loop_(3, |kb, k| {
            let prod = Expr::fma(
                Expr::load(a, Index::strided(&[m, k], &[3, 1], 0)),
                Expr::load(b, Index::strided(&[k, n], &[4, 1], 0)),
                Expr::Local(acc),
            );
            kb.assign(acc, prod);
        });
        kb.store(c, Index::strided(&[m, n], &[4, 1], 0), Expr::Local(acc));
    });
    kb.finish()
}

/// A kernel that uses every statement, every expression form, every op and every scalar dtype,
/// with awkward floats and names. Not meant to verify.
fn kitchen_sink() -> Kernel {
    let mut kb = KernelBuilder::new("sink \"all\"", vec!["%3".into(), "input:0".into()]);
    let x = kb.buffer("x", DType::F32, 16, BufferRole::Input);
    let idx = kb.buffer("@idx", DType::I64, 4, BufferRole::Weight);
    let y = kb.buffer("%3", DType::F32, 16, BufferRole::Output);
    let s = kb.buffer("scratch.sink", DType::I32, 4, BufferRole::Scratch);
    let mut unary = Vec::new();
    for (op, _) in sinter_loops::text::UNARY_NAMES {
        unary.push(op);
    }
    kb.loop_(4, |kb, i| {
        let acc = kb.local(DType::F32, Expr::f32(-0.0));
        for op in &unary {
            kb.assign(acc, Expr::unary(*op, Expr::Local(acc)));
        }
        for op in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Rem,
            BinaryOp::Max,
            BinaryOp::Min,
            BinaryOp::Pow,
            BinaryOp::And,
            BinaryOp::Or,
            BinaryOp::Xor,
        ] {
            kb.assign(
                acc,
                Expr::binary(op, Expr::Local(acc), Expr::load(x, Index::var(i))),
            );
        }
        // Precedence: (a + b) * c, a - (b - c), a / (b * c), (a < b) == (c >= d), a | b & c ^ d.
        let a = || Expr::Local(acc);
        kb.assign(acc, Expr::mul(Expr::add(a(), a()), a()));
        kb.assign(acc, Expr::sub(a(), Expr::sub(a(), a())));
        kb.assign(acc, Expr::div(a(), Expr::mul(a(), a())));
        kb.assign(acc, Expr::sub(Expr::sub(a(), a()), a()));
        let cmp = |op, l, r| Expr::cmp(op, l, r);
        let flag = kb.local(
            DType::Bool,
            cmp(
                CmpOp::Eq,
                cmp(CmpOp::Lt, a(), a()),
                cmp(CmpOp::Ge, a(), a()),
            ),
        );
        let f = || Expr::Local(flag);
        kb.assign(
            flag,
            Expr::binary(
                BinaryOp::Or,
                f(),
                Expr::binary(BinaryOp::Xor, Expr::binary(BinaryOp::And, f(), f()), f()),
            ),
        );
        kb.assign(
            flag,
            Expr::binary(
                BinaryOp::And,
                Expr::binary(BinaryOp::Or, f(), f()),
                cmp(CmpOp::Ne, a(), Expr::f32(f32::NAN)),
            ),
        );
        kb.assign(flag, cmp(CmpOp::Le, a(), Expr::f32(1e-45)));
        kb.assign(
            flag,
            cmp(CmpOp::Gt, a(), Expr::f32(f32::from_bits(0x7fc0_0001))),
        );
        kb.assign(
            acc,
            Expr::select(
                f(),
                Expr::fma(a(), Expr::f32(f32::INFINITY), Expr::f32(f32::NEG_INFINITY)),
                Expr::cast(
                    DType::F32,
                    Expr::Const(Scalar::F64(f64::from_bits(0x7ff4_0000_0000_0000))),
                ),
            ),
        );
        kb.assign(
            acc,
            Expr::cast(
                DType::F32,
                Expr::add(
                    Expr::Const(Scalar::F64(-5e-324)),
                    Expr::Const(Scalar::F64(f64::NAN)),
                ),
            ),
        );
        kb.assign(acc, Expr::f32(f32::from_bits(0x15ae_43fd)));
        let n = kb.local(DType::I64, Expr::Const(Scalar::I64(i64::MIN)));
        kb.assign(n, Expr::sub(Expr::Var(i), Expr::Const(Scalar::I64(-1))));
        let small = kb.local(DType::I8, Expr::Const(Scalar::I8(-128)));
        kb.assign(small, Expr::unary(UnaryOp::Not, Expr::Local(small)));
        let byte = kb.local(DType::U8, Expr::Const(Scalar::U8(255)));
        kb.assign(byte, Expr::cast(DType::U8, Expr::Local(small)));
        kb.store(s, Index::var(i), Expr::Const(Scalar::I32(i32::MIN)));
        let gathered = Index {
            terms: vec![(i, -1)],
            offset: 15,
            dynamic: Some(Box::new(DynamicTerm {
                value: Expr::load(idx, Index::var(i)),
                extent: 4,
                stride: -3,
            })),
        };
        kb.if_(
            Expr::cmp(CmpOp::Lt, Expr::Local(n), Expr::Const(Scalar::I64(3))),
            |kb| kb.store(y, gathered.clone(), Expr::Local(acc)),
            |kb| kb.store(y, Index::constant(-7), Expr::f32(-1.5)),
        );
        kb.if_(
            Expr::Const(Scalar::Bool(true)),
            |kb| kb.store(y, Index::constant(0), Expr::f32(2.0)),
            |_| {},
        );
    });
    let mut kernel = kb.finish();
    // A local no `let` declares, and more variables than loops bind.
    kernel.locals.push(DType::F64);
    kernel.n_loop_vars = 7;
    kernel.body.push(Stmt::Loop(Loop {
        var: LoopVar(5),
        extent: 0,
        kind: LoopKind::Vectorized { width: 4 },
        body: vec![Stmt::Store {
            buf: y,
            index: Index {
                terms: vec![(LoopVar(1), -2), (LoopVar(5), 3)],
                offset: 0,
                dynamic: None,
            },
            value: Expr::f32(0.0),
        }],
    }));
    kernel.body.push(Stmt::Loop(Loop {
        var: LoopVar(2),
        extent: 3,
        kind: LoopKind::Unrolled { factor: 2 },
        body: vec![],
    }));
    kernel.body.push(Stmt::Loop(Loop {
        var: LoopVar(3),
        extent: 3,
        kind: LoopKind::Parallel,
        body: vec![],
    }));
    kernel
}

/// Checks print -> parse -> print, and that the parsed kernel prints the same and (when it has no
/// NaN) equals the original.
fn check_round_trip(kernel: &Kernel) -> String {
    let text = print_kernel(kernel);
    let parsed = match parse_kernel(&text) {
        Ok(parsed) => parsed,
        Err(err) => panic!("{}\n{text}", err.render(&text)),
    };
    assert_eq!(print_kernel(&parsed), text);
    text
}

#[test]
fn matmul_prints_readably() {
    let kernel = matmul();
    let text = check_round_trip(&kernel);
    assert_eq!(parse_kernel(&text).unwrap(), kernel);
    insta::assert_snapshot!("matmul", text);
}

#[test]
fn kitchen_sink_round_trips_bit_exactly() {
    let kernel = kitchen_sink();
    let text = check_round_trip(&kernel);
    insta::assert_snapshot!("kitchen_sink", text);
    let parsed = parse_kernel(&text).unwrap();
    // `Scalar`'s PartialEq compares floats with `==`, so compare the structure NaN-free: every float
    // constant by its bits.
    assert_eq!(constant_bits(&parsed), constant_bits(&kernel));
    assert_eq!(parsed.locals, kernel.locals);
    assert_eq!(parsed.n_loop_vars, 7);
    assert_eq!(parsed.buffers, kernel.buffers);
    assert_eq!(parsed.origins, kernel.origins);
    assert_eq!(parsed.name, kernel.name);
}

fn constant_bits(kernel: &Kernel) -> Vec<(DType, u64)> {
    fn expr(e: &Expr, out: &mut Vec<(DType, u64)>) {
        match e {
            Expr::Const(s) => out.push((
                s.dtype(),
                match *s {
                    Scalar::F32(x) => u64::from(x.to_bits()),
                    Scalar::F64(x) => x.to_bits(),
                    Scalar::I64(x) => x as u64,
                    Scalar::I32(x) => x as u64,
                    Scalar::I8(x) => x as u64,
                    Scalar::U8(x) => u64::from(x),
                    Scalar::Bool(x) => u64::from(x),
                },
            )),
            Expr::Var(_) | Expr::Local(_) => {}
            Expr::Load { index, .. } => {
                if let Some(d) = &index.dynamic {
                    expr(&d.value, out);
                }
            }
            Expr::Unary(_, a) | Expr::Cast(_, a) => expr(a, out),
            Expr::Binary(_, a, b) | Expr::Cmp(_, a, b) => {
                expr(a, out);
                expr(b, out);
            }
            Expr::Fma(a, b, c)
            | Expr::Select {
                cond: a,
                then: b,
                otherwise: c,
            } => {
                expr(a, out);
                expr(b, out);
                expr(c, out);
            }
        }
    }
    fn stmts(s: &[Stmt], out: &mut Vec<(DType, u64)>) {
        for stmt in s {
            match stmt {
                Stmt::Loop(lp) => stmts(&lp.body, out),
                Stmt::Let { init: v, .. } | Stmt::Assign { value: v, .. } => expr(v, out),
                Stmt::Store { index, value, .. } => {
                    if let Some(d) = &index.dynamic {
                        expr(&d.value, out);
                    }
                    expr(value, out);
                }
                Stmt::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    expr(cond, out);
                    stmts(then, out);
                    stmts(otherwise, out);
                }
                Stmt::MatTile(tile) => {
                    if let Some(epilogue) = &tile.epilogue {
                        expr(&epilogue.value, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    stmts(&kernel.body, &mut out);
    out
}

#[test]
fn kitchen_sink_structure_survives_without_nans() {
    // Replace every NaN by 1.0 so that derived PartialEq applies to the whole kernel.
    let text = print_kernel(&kitchen_sink())
        .replace("nan32(0x7fc00001)", "1.0")
        .replace("nan(0x7ff4000000000000):f64", "1.0:f64")
        .replace("nan:f64", "2.0:f64")
        .replace("nan", "3.0");
    let kernel = parse_kernel(&text).unwrap();
    assert_eq!(parse_kernel(&print_kernel(&kernel)).unwrap(), kernel);
    assert_eq!(print_kernel(&kernel), text);
}

#[test]
fn every_f32_bit_class_round_trips() {
    let values = [
        0.0f32,
        -0.0,
        1.0,
        0.1,
        1e-45,
        -1.1754942e-38,
        3.4028235e38,
        f32::from_bits(0x15ae_43fd),
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001),
    ];
    for value in values {
        let mut kb = KernelBuilder::new("k", vec![]);
        let y = kb.buffer("y", DType::F32, 1, BufferRole::Output);
        kb.store(y, Index::constant(0), Expr::f32(value));
        let text = check_round_trip(&kb.finish());
        let parsed = parse_kernel(&text).unwrap();
        let Stmt::Store {
            value: Expr::Const(Scalar::F32(back)),
            ..
        } = &parsed.body[0]
        else {
            panic!("{text}");
        };
        assert_eq!(back.to_bits(), value.to_bits(), "{text}");
    }
}

#[test]
fn hand_written_text_parses_with_defaults() {
    let text = "\
; relu over 8 floats
kernel relu_1 from %1 {
  b0: f32[8] input x   ; the input
  b1: f32[8] output y
  for i0 in 0..8 vectorize 4 {
    b1[i0] = max(b0[i0], 0.0)
  }
}
";
    let kernel = parse_kernel(text).unwrap();
    assert_eq!(kernel.n_loop_vars, 1);
    assert_eq!(kernel.origins, vec!["%1".to_string()]);
    let expected = "\
kernel relu_1 from %1 {
  b0: f32[8] input x
  b1: f32[8] output y
  for i0 in 0..8 vectorize 4 {
    b1[i0] = max(b0[i0], 0.0)
  }
}
";
    assert_eq!(print_kernel(&kernel), expected);
    assert_eq!(kernel.to_string(), expected);
}

#[test]
fn precedence_and_literals_parse_as_written() {
    let text = "kernel k {
  b0: f32[1] output y
  let v0: f32 = 1.0 + 2.0 * 3.0 - 4.0 / 5.0
  let v1: bool = v0 < 1.0 | v0 > 2.0 & true
  let v2: i64 = 3 - -4
  let v3: i32 = -2147483648:i32
  let v4: f64 = 1:f64 + -inf:f64
}
";
    let kernel = parse_kernel(text).unwrap();
    let Stmt::Let { init, .. } = &kernel.body[0] else {
        panic!()
    };
    assert_eq!(
        *init,
        Expr::sub(
            Expr::add(Expr::f32(1.0), Expr::mul(Expr::f32(2.0), Expr::f32(3.0))),
            Expr::div(Expr::f32(4.0), Expr::f32(5.0))
        )
    );
    let Stmt::Let { init, .. } = &kernel.body[1] else {
        panic!()
    };
    let v0 = || Expr::Local(Local(0));
    assert_eq!(
        *init,
        Expr::binary(
            BinaryOp::Or,
            Expr::cmp(CmpOp::Lt, v0(), Expr::f32(1.0)),
            Expr::binary(
                BinaryOp::And,
                Expr::cmp(CmpOp::Gt, v0(), Expr::f32(2.0)),
                Expr::Const(Scalar::Bool(true))
            )
        )
    );
    assert_eq!(
        kernel.locals,
        vec![DType::F32, DType::Bool, DType::I64, DType::I32, DType::F64]
    );
    check_round_trip(&kernel);
}

/// `(line, col, message fragment)` for each bad text.
#[test]
fn parse_errors_have_positions() {
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "kernel k {\n  b0: f32[8] input x\n  b1: f32(8) output y\n}",
            3,
            10,
            "expected `[`",
        ),
        (
            "kernel k {\n  b1: f32[8] input x\n}",
            2,
            3,
            "expected buffer b0 next",
        ),
        (
            "kernel k {\n  b0: f32[8] reader x\n}",
            2,
            14,
            "expected a role",
        ),
        (
            "kernel k {\n  for i0 in 1..8 {\n  }\n}",
            2,
            13,
            "loops start at 0",
        ),
        (
            "kernel k {\n  let v0: f32 = 1.0 < 2.0 < 3.0\n}",
            2,
            27,
            "comparisons do not chain",
        ),
        ("kernel k {\n  let v0: f32 = -v0\n}", 2, 18, "neg(x)"),
        (
            "kernel k {\n  let v0: u8 = 256:u8\n}",
            2,
            16,
            "out of range for u8",
        ),
        (
            "kernel k {\n  let v0: f32 = 1.5:i32\n}",
            2,
            17,
            "not a literal of i32",
        ),
        (
            "kernel k {\n  let v0: f32 = frob(1.0)\n}",
            2,
            17,
            "unknown name `frob`",
        ),
        (
            "kernel k {\n  let v0: f32 = max(1.0)\n}",
            2,
            24,
            "`max` takes 2 arguments",
        ),
        (
            "kernel k {\n  v3 = 1.0\n}",
            2,
            3,
            "local v3 is never declared",
        ),
        (
            "kernel k {\n  let v1: f32 = 1.0\n}",
            1,
            1,
            "local v0 has no dtype",
        ),
        (
            "kernel k {\n  let v0: f32 = 1.0\n  let v0: i64 = 1\n}",
            3,
            7,
            "declared f32 before",
        ),
        (
            "kernel k {\n  b0[i0 + dyn(1, 2) + dyn(1, 2)] = 1.0\n}",
            2,
            23,
            "at most one `dyn",
        ),
        (
            "kernel k {\n  let v0: f32 = nan32(0x3f800000)\n}",
            2,
            17,
            "not a NaN",
        ),
        (
            "kernel k {\n  let v0: f32 = 3abc\n}",
            2,
            17,
            "invalid number",
        ),
        (
            "kernel k {\n  let v0: f32 = \"open\n}",
            2,
            17,
            "unterminated string",
        ),
        ("kernel k {\n}\nkernel j {\n}", 3, 1, "expected end of file"),
        ("kernel k {\n  b0[i0] = 1.0\n", 3, 1, "found end of file"),
        ("kernel k {\n  $\n}", 2, 3, "unexpected character"),
    ];
    for &(text, line, col, fragment) in cases {
        let err = parse_kernel(text).expect_err(text);
        assert!(
            err.message.contains(fragment),
            "{text:?}: {} does not mention {fragment:?}",
            err.message
        );
        assert_eq!(
            (err.line, err.col),
            (line, col),
            "{text:?}: {}",
            err.message
        );
        // The rendered error shows the offending line (when the error is not past the last one).
        if line <= text.lines().count() {
            assert!(err
                .render(text)
                .contains(&format!("line {line}, column {col}")));
        }
    }
}

fn program() -> (Program, HashMap<String, Tensor>) {
    let weight =
        Tensor::from_vec(vec![3, 4], (0..12).map(|v| v as f32 * 0.5 - 1.0).collect()).unwrap();
    let mut weights = HashMap::new();
    weights.insert("@w".to_string(), weight.clone());
    let program = Program {
        buffers: vec![
            ProgramBuffer {
                name: "x".into(),
                dtype: DType::F32,
                shape: vec![2, 3],
                source: BufferSource::Input { name: "x".into() },
            },
            ProgramBuffer {
                name: "@w".into(),
                dtype: DType::F32,
                shape: vec![3, 4],
                source: BufferSource::Weight(weight),
            },
            ProgramBuffer {
                name: "%0".into(),
                dtype: DType::F32,
                shape: vec![2, 4],
                source: BufferSource::Computed,
            },
            ProgramBuffer {
                name: "input:1".into(),
                dtype: DType::I64,
                shape: vec![],
                source: BufferSource::Input {
                    name: "graph input".into(),
                },
            },
        ],
        calls: vec![KernelCall {
            kernel: matmul(),
            args: vec![ProgramBufferId(0), ProgramBufferId(1), ProgramBufferId(2)],
        }],
        outputs: vec![("y".into(), ProgramBufferId(2))],
    };
    (program, weights)
}

#[test]
fn programs_round_trip_with_weights_by_name() {
    let (program, weights) = program();
    let text = print_program(&program);
    insta::assert_snapshot!("program", text);
    let lookup = |name: &str| weights.get(name).cloned();
    let parsed = parse_program(&text, &lookup).unwrap();
    assert_eq!(parsed, program);
    assert_eq!(print_program(&parsed), text);
    assert!(text.contains(&format!("hash 0x{:016x}", weight_hash(&weights["@w"]))));
}

#[test]
fn programs_reject_missing_or_different_weights() {
    let (program, weights) = program();
    let text = print_program(&program);
    let err = parse_program(&text, &|_| None).unwrap_err();
    assert!(
        err.message.contains("no data was given for weight @w"),
        "{err}"
    );
    assert_eq!(err.line, 3);
    let other = Tensor::from_vec(vec![3, 4], vec![0.0f32; 12]).unwrap();
    let err = parse_program(&text, &|_| Some(other.clone())).unwrap_err();
    assert!(err.message.contains("has hash"), "{err}");
    let wrong_shape = Tensor::from_vec(vec![12], vec![0.0f32; 12]).unwrap();
    let err = parse_program(&text, &|_| Some(wrong_shape.clone())).unwrap_err();
    assert!(err.message.contains("declared f32[3,4]"), "{err}");
    let _ = weights;
}

#[test]
fn program_parse_errors() {
    let err = parse_program("program {\n  B1: f32[2] computed y\n}", &|_| None).unwrap_err();
    assert!(err.message.contains("expected program buffer B0"), "{err}");
    let err = parse_program("program {\n  output y = B0\n}", &|_| None).unwrap_err();
    assert!(err.message.contains("B0 is not declared"), "{err}");
    let err = parse_program("program {\n  B0: f32[2] stolen y\n}", &|_| None).unwrap_err();
    assert!(err.message.contains("`stolen`"), "{err}");
}

#[test]
fn indices_are_normalized_when_parsed() {
    let text = "kernel k {
  b0: f32[64] output y
  for i0 in 0..4 {
    for i1 in 0..4 {
      b0[3 + 16*i1 + i0 + 0*i1 + i0 - 1] = 1.0
    }
  }
}";
    let kernel = parse_kernel(text).unwrap();
    let Stmt::Loop(outer) = &kernel.body[0] else {
        panic!()
    };
    let Stmt::Loop(inner) = &outer.body[0] else {
        panic!()
    };
    let Stmt::Store { index, .. } = &inner.body[0] else {
        panic!()
    };
    assert_eq!(
        *index,
        Index::affine([(LoopVar(0), 2), (LoopVar(1), 16)], 2)
    );
    assert!(print_kernel(&kernel).contains("b0[2*i0 + 16*i1 + 2] = 1.0"));
    let err = parse_kernel(
        "kernel k {\n  b0: f32[1] output y\n  b0[9223372036854775807*i0 + i0] = 1.0\n}",
    )
    .unwrap_err();
    assert!(err.message.contains("does not fit i64"), "{err}");
    assert_eq!((err.line, err.col), (3, 33));
}

#[test]
fn lowered_programs_round_trip() {
    let graph_text = "graph g {
  input %x: f32[2,3,5,5]
  const @w: f32[2,3,2,2] = [0.5, -1.0, 0.25, 1.0, 0.0, -0.5, -0.25, 2.0, 1.5, 0.0, 1.0, -1.0, 0.5, -1.0, 0.25, 1.0, 0.0, -0.5, -0.25, 2.0, 1.5, 0.0, 1.0, -1.0]
  const @idx: i64[2] = [1, -1]
  %0: f32[2,2,4,4] = conv(%x, @w)
  %1: f32[2,2,4,4] = sigmoid(%0)
  %2: f32[2,2,4,4] = gather(%1, @idx) {axis=1}
  output y = %2
}";
    let graph = sinter_ir::parse_graph(graph_text, &Default::default()).unwrap();
    let program = sinter_loops::lower::lower_graph(&graph).unwrap();
    let weights: HashMap<String, Tensor> = program
        .buffers
        .iter()
        .filter_map(|b| match &b.source {
            BufferSource::Weight(t) => Some((b.name.clone(), t.clone())),
            _ => None,
        })
        .collect();
    assert!(!weights.is_empty());
    let text = print_program(&program);
    let parsed = parse_program(&text, &|name| weights.get(name).cloned())
        .unwrap_or_else(|err| panic!("{}\n{text}", err.render(&text)));
    assert_eq!(parsed, program);
    assert_eq!(print_program(&parsed), text);
}
