//! Shape and dtype inference, family by family: concrete expected types (symbolic dims, auto_pad,
//! ceil_mode, broadcasting included) and error cases checked by message.

use sinter_ir::{
    broadcast_shapes, infer_types, AttrValue, BuildError, DType, Dim, Graph, InferError,
    InferErrorKind, Op, Shape, TensorType,
};
use std::collections::BTreeSet;

/// Parses a type written as in the text format: `f32[batch,3,224,224]`, `i64[]`.
fn ty(text: &str) -> TensorType {
    let (dtype, rest) = text.split_once('[').expect("type has `[`");
    let dims = rest.strip_suffix(']').expect("type ends with `]`");
    let dims: Vec<Dim> = if dims.is_empty() {
        Vec::new()
    } else {
        dims.split(',')
            .map(|d| {
                d.trim()
                    .parse::<usize>()
                    .map(Dim::Static)
                    .unwrap_or_else(|_| Dim::sym(d.trim()))
            })
            .collect()
    };
    TensorType::new(DType::from_name(dtype).expect("known dtype"), dims)
}

fn ints(values: &[i64]) -> AttrValue {
    AttrValue::Ints(values.to_vec())
}

fn int(value: i64) -> AttrValue {
    AttrValue::Int(value)
}

fn float(value: f64) -> AttrValue {
    AttrValue::Float(value)
}

fn ident(value: &str) -> AttrValue {
    AttrValue::Ident(value.to_string())
}

fn boolean(value: bool) -> AttrValue {
    AttrValue::Bool(value)
}

/// Builds an op from its text name and non-default attributes.
fn op(name: &str, attrs: &[(&str, AttrValue)]) -> Op {
    let attrs = attrs
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    Op::from_attrs(name, attrs).unwrap_or_else(|e| panic!("test op `{name}`: {e}"))
}

/// Infers with inputs written as types, `_` for an absent optional input.
fn infer(op: &Op, inputs: &[&str]) -> Result<Vec<TensorType>, InferError> {
    let types: Vec<Option<TensorType>> =
        inputs.iter().map(|s| (*s != "_").then(|| ty(s))).collect();
    let refs: Vec<Option<&TensorType>> = types.iter().map(Option::as_ref).collect();
    infer_types(op, &refs)
}

#[track_caller]
fn check(op: &Op, inputs: &[&str], expected: &[&str]) {
    let got = infer(op, inputs).unwrap_or_else(|e| panic!("{} on {inputs:?}: {e}", op.name()));
    let expected: Vec<TensorType> = expected.iter().map(|s| ty(s)).collect();
    assert_eq!(got, expected, "{} on {inputs:?}", op.name());
}

/// Checks that inference fails with a message naming the op and containing every needle.
#[track_caller]
fn check_err(op: &Op, inputs: &[&str], needles: &[&str]) -> InferError {
    let err = match infer(op, inputs) {
        Ok(types) => panic!(
            "{} on {inputs:?} should fail, inferred {types:?}",
            op.name()
        ),
        Err(err) => err,
    };
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("`{}`: ", op.name())),
        "op not named in: {message}"
    );
    for needle in needles {
        assert!(message.contains(needle), "`{needle}` not in: {message}");
    }
    err
}

// ---- arity and messages ----

#[test]
fn error_messages_name_the_op_and_expected_vs_got() {
    let err = check_err(&op("exp", &[]), &["i64[2,3]"], &[]);
    assert_eq!(
        err.to_string(),
        "`exp`: input `x` must be a float dtype (f32, f64), got i64"
    );
    assert_eq!(err.op, "exp");
    assert!(matches!(
        err.kind,
        InferErrorKind::DType {
            got: DType::I64,
            ..
        }
    ));

    let err = check_err(
        &op("relu", &[]),
        &["f32[2]", "f32[2]"],
        &["expects exactly 1 inputs, got 2"],
    );
    assert!(matches!(
        err.kind,
        InferErrorKind::InputCount { got: 2, .. }
    ));
    check_err(
        &op("conv", &[]),
        &["f32[1,1,4,4]", "_", "f32[1]"],
        &["input `w` (slot 1) is required but absent"],
    );
    check_err(
        &op("concat", &[("axis", int(0))]),
        &[],
        &["expects at least 1 inputs, got 0"],
    );
    check_err(
        &op("concat", &[("axis", int(0))]),
        &["f32[2]", "_"],
        &["input `inputs` (slot 1) is required"],
    );
    check_err(
        &op("gemm", &[]),
        &["f32[2,3]", "f32[3,4]", "f32[4]", "f32[4]"],
        &["expects 2 to 3 inputs, got 4"],
    );
    check_err(
        &op(
            "range",
            &[
                ("start", float(0.0)),
                ("limit", float(3.0)),
                ("delta", float(1.0)),
                ("dtype", ident("i64")),
            ],
        ),
        &["f32[1]"],
        &["expects exactly 0 inputs, got 1"],
    );
}

/// One minimal valid case per op: the op, its input types and its expected output types.
fn valid_cases() -> Vec<(Op, Vec<&'static str>, Vec<&'static str>)> {
    vec![
        (op("neg", &[]), vec!["i8[2]"], vec!["i8[2]"]),
        (op("abs", &[]), vec!["u8[2]"], vec!["u8[2]"]),
        (op("exp", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("log", &[]), vec!["f64[2]"], vec!["f64[2]"]),
        (op("sqrt", &[]), vec!["f32[]"], vec!["f32[]"]),
        (op("reciprocal", &[]), vec!["f32[n]"], vec!["f32[n]"]),
        (op("relu", &[]), vec!["i32[2]"], vec!["i32[2]"]),
        (op("leaky_relu", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("sigmoid", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("hard_sigmoid", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("hard_swish", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("tanh", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("erf", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (
            op("gelu", &[("approximate", ident("tanh"))]),
            vec!["f32[2]"],
            vec!["f32[2]"],
        ),
        (op("elu", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("selu", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("softplus", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("softsign", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("mish", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (
            op("clip", &[("min", float(0.0)), ("max", float(6.0))]),
            vec!["f32[2]"],
            vec!["f32[2]"],
        ),
        (op("floor", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("ceil", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("round", &[]), vec!["f32[2]"], vec!["f32[2]"]),
        (op("sign", &[]), vec!["i64[2]"], vec!["i64[2]"]),
        (op("not", &[]), vec!["bool[2]"], vec!["bool[2]"]),
        (
            op("cast", &[("to", ident("i32"))]),
            vec!["f32[b,2]"],
            vec!["i32[b,2]"],
        ),
        (op("identity", &[]), vec!["bool[2]"], vec!["bool[2]"]),
        (op("add", &[]), vec!["f32[2,1]", "f32[3]"], vec!["f32[2,3]"]),
        (op("sub", &[]), vec!["i64[2]", "i64[]"], vec!["i64[2]"]),
        (op("mul", &[]), vec!["u8[2]", "u8[2]"], vec!["u8[2]"]),
        (op("div", &[]), vec!["f32[2]", "f32[1]"], vec!["f32[2]"]),
        (op("pow", &[]), vec!["f32[2]", "i64[]"], vec!["f32[2]"]),
        (op("max", &[]), vec!["i8[2]", "i8[2]"], vec!["i8[2]"]),
        (op("min", &[]), vec!["f64[2]", "f64[2]"], vec!["f64[2]"]),
        (
            op("prelu", &[]),
            vec!["f32[1,3,4]", "f32[3,1]"],
            vec!["f32[1,3,4]"],
        ),
        (
            op("equal", &[]),
            vec!["bool[2]", "bool[2]"],
            vec!["bool[2]"],
        ),
        (op("less", &[]), vec!["f32[2]", "f32[2]"], vec!["bool[2]"]),
        (
            op("greater", &[]),
            vec!["i32[2]", "i32[2]"],
            vec!["bool[2]"],
        ),
        (
            op("less_or_equal", &[]),
            vec!["f32[2]", "f32[2]"],
            vec!["bool[2]"],
        ),
        (
            op("greater_or_equal", &[]),
            vec!["f32[2]", "f32[2]"],
            vec!["bool[2]"],
        ),
        (op("and", &[]), vec!["bool[2]", "bool[1]"], vec!["bool[2]"]),
        (op("or", &[]), vec!["bool[2]", "bool[2]"], vec!["bool[2]"]),
        (
            op("where", &[]),
            vec!["bool[2]", "i64[2]", "i64[2]"],
            vec!["i64[2]"],
        ),
        (
            op("matmul", &[]),
            vec!["f32[2,3]", "f32[3,4]"],
            vec!["f32[2,4]"],
        ),
        (
            op("gemm", &[]),
            vec!["f32[2,3]", "f32[3,4]"],
            vec!["f32[2,4]"],
        ),
        (
            op("conv", &[]),
            vec!["f32[1,1,3,3]", "f32[2,1,3,3]"],
            vec!["f32[1,2,1,1]"],
        ),
        (
            op("conv_transpose", &[]),
            vec!["f32[1,1,1,1]", "f32[1,2,3,3]"],
            vec!["f32[1,2,3,3]"],
        ),
        (
            op("max_pool", &[("kernel_shape", ints(&[2]))]),
            vec!["f32[1,1,4]"],
            vec!["f32[1,1,3]"],
        ),
        (
            op("average_pool", &[("kernel_shape", ints(&[2]))]),
            vec!["f32[1,1,4]"],
            vec!["f32[1,1,3]"],
        ),
        (
            op("global_average_pool", &[]),
            vec!["f32[1,2,3,3]"],
            vec!["f32[1,2,1,1]"],
        ),
        (
            op("global_max_pool", &[]),
            vec!["f32[1,2,3]"],
            vec!["f32[1,2,1]"],
        ),
        (
            op("batch_norm", &[]),
            vec!["f32[1,2,3]", "f32[2]", "f32[2]", "f32[2]", "f32[2]"],
            vec!["f32[1,2,3]"],
        ),
        (
            op("instance_norm", &[]),
            vec!["f32[1,2,3]", "f32[2]", "f32[2]"],
            vec!["f32[1,2,3]"],
        ),
        (
            op("lrn", &[("size", int(3))]),
            vec!["f32[1,2,3,3]"],
            vec!["f32[1,2,3,3]"],
        ),
        (
            op("pad", &[("pads", ints(&[1, 2]))]),
            vec!["f32[3]"],
            vec!["f32[6]"],
        ),
        (
            op("resize", &[("sizes", ints(&[4]))]),
            vec!["f32[2]"],
            vec!["f32[4]"],
        ),
        (op("reduce_sum", &[]), vec!["f32[2,3]"], vec!["f32[1,1]"]),
        (op("reduce_mean", &[]), vec!["f32[2,3]"], vec!["f32[1,1]"]),
        (op("reduce_max", &[]), vec!["f32[2,3]"], vec!["f32[1,1]"]),
        (op("reduce_min", &[]), vec!["f32[2,3]"], vec!["f32[1,1]"]),
        (op("reduce_prod", &[]), vec!["f32[2,3]"], vec!["f32[1,1]"]),
        (op("reduce_l1", &[]), vec!["f32[2,3]"], vec!["f32[1,1]"]),
        (op("reduce_l2", &[]), vec!["f32[2,3]"], vec!["f32[1,1]"]),
        (
            op("reduce_sum_square", &[]),
            vec!["f32[2,3]"],
            vec!["f32[1,1]"],
        ),
        (
            op("reduce_log_sum_exp", &[]),
            vec!["f32[2,3]"],
            vec!["f32[1,1]"],
        ),
        (op("arg_max", &[]), vec!["f32[2,3]"], vec!["i64[1,3]"]),
        (
            op("arg_min", &[("keepdims", boolean(false))]),
            vec!["f32[2,3]"],
            vec!["i64[3]"],
        ),
        (
            op("reshape", &[("shape", ints(&[3, 2]))]),
            vec!["f32[2,3]"],
            vec!["f32[3,2]"],
        ),
        (op("flatten", &[]), vec!["f32[2,3,4]"], vec!["f32[2,12]"]),
        (op("transpose", &[]), vec!["f32[2,3]"], vec!["f32[3,2]"]),
        (op("squeeze", &[]), vec!["f32[1,3]"], vec!["f32[3]"]),
        (
            op("unsqueeze", &[("axes", ints(&[0]))]),
            vec!["f32[3]"],
            vec!["f32[1,3]"],
        ),
        (
            op("concat", &[("axis", int(0))]),
            vec!["f32[2]", "f32[3]"],
            vec!["f32[5]"],
        ),
        (
            op("split", &[("split", ints(&[1, 2]))]),
            vec!["f32[3]"],
            vec!["f32[1]", "f32[2]"],
        ),
        (
            op("slice", &[("starts", ints(&[1])), ("ends", ints(&[3]))]),
            vec!["f32[4]"],
            vec!["f32[2]"],
        ),
        (
            op("gather", &[]),
            vec!["f32[4,2]", "i64[3]"],
            vec!["f32[3,2]"],
        ),
        (
            op("gather_elements", &[]),
            vec!["f32[4,2]", "i32[3,2]"],
            vec!["f32[3,2]"],
        ),
        (
            op("expand", &[("shape", ints(&[2, 3]))]),
            vec!["f32[3]"],
            vec!["f32[2,3]"],
        ),
        (
            op("tile", &[("repeats", ints(&[2]))]),
            vec!["f32[3]"],
            vec!["f32[6]"],
        ),
        (
            op(
                "range",
                &[
                    ("start", float(0.0)),
                    ("limit", float(5.0)),
                    ("delta", float(2.0)),
                    ("dtype", ident("i64")),
                ],
            ),
            vec![],
            vec!["i64[3]"],
        ),
        (op("trilu", &[]), vec!["f32[3,3]"], vec!["f32[3,3]"]),
        (op("shape", &[]), vec!["f32[batch,3]"], vec!["i64[2]"]),
        (
            op("constant_of_shape", &[("shape", ints(&[2, 2]))]),
            vec![],
            vec!["f32[2,2]"],
        ),
        (op("softmax", &[]), vec!["f32[2,3]"], vec!["f32[2,3]"]),
        (op("log_softmax", &[]), vec!["f32[2,3]"], vec!["f32[2,3]"]),
        (
            op("layer_norm", &[]),
            vec!["f32[2,3]", "f32[3]"],
            vec!["f32[2,3]"],
        ),
        (
            op("rms_norm", &[]),
            vec!["f32[2,3]", "f32[3]"],
            vec!["f32[2,3]"],
        ),
        (
            op("group_norm", &[("num_groups", int(2))]),
            vec!["f32[1,4,3]", "f32[4]", "f32[4]"],
            vec!["f32[1,4,3]"],
        ),
        (
            op("attention", &[]),
            vec!["f32[1,2,3,4]", "f32[1,2,5,4]", "f32[1,2,5,6]"],
            vec!["f32[1,2,3,6]"],
        ),
        (
            op("rnn", &[("hidden_size", int(4))]),
            vec!["f32[5,2,3]", "f32[1,4,3]", "f32[1,4,4]"],
            vec!["f32[5,1,2,4]", "f32[1,2,4]"],
        ),
        (
            op("lstm", &[("hidden_size", int(4))]),
            vec!["f32[5,2,3]", "f32[1,16,3]", "f32[1,16,4]"],
            vec!["f32[5,1,2,4]", "f32[1,2,4]", "f32[1,2,4]"],
        ),
        (
            op("gru", &[("hidden_size", int(4))]),
            vec!["f32[5,2,3]", "f32[1,12,3]", "f32[1,12,4]"],
            vec!["f32[5,1,2,4]", "f32[1,2,4]"],
        ),
        (op("silu", &[]), vec!["f32[batch,3]"], vec!["f32[batch,3]"]),
        (
            op("fused_conv", &[("activation", ident("relu"))]),
            vec![
                "f32[batch,3,5,5]",
                "f32[4,3,3,3]",
                "f32[4]",
                "f32[batch,4,3,3]",
            ],
            vec!["f32[batch,4,3,3]"],
        ),
        (
            op("fused_matmul", &[("activation", ident("gelu"))]),
            vec!["f32[batch,2,5]", "f32[5,3]", "f32[2,1]"],
            vec!["f32[batch,2,3]"],
        ),
        (
            op(
                "conv_pool",
                &[
                    ("pool", ident("average")),
                    ("pool_kernel_shape", ints(&[2, 2])),
                    ("pool_strides", ints(&[2, 2])),
                ],
            ),
            vec!["f32[batch,3,7,7]", "f32[4,3,2,2]"],
            vec!["f32[batch,4,3,3]"],
        ),
    ]
}

#[test]
fn every_op_has_a_valid_case() {
    // A newly added op cannot go without inference: every op name must have a case.
    let mut covered = BTreeSet::new();
    for (op, inputs, expected) in &valid_cases() {
        check(op, inputs, expected);
        assert_eq!(op.num_outputs(), expected.len(), "{}", op.name());
        covered.insert(op.name());
    }
    let all: BTreeSet<&str> = Op::NAMES.iter().copied().collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(missing.is_empty(), "ops without a case: {missing:?}");
}

// ---- elementwise ----

#[test]
fn unary_ops_check_dtypes() {
    check(&op("relu", &[]), &["f32[batch,3]"], &["f32[batch,3]"]);
    check(&op("neg", &[]), &["i32[4]"], &["i32[4]"]);
    check_err(
        &op("neg", &[]),
        &["u8[4]"],
        &["input `x` must be a signed numeric dtype", "got u8"],
    );
    check_err(&op("sigmoid", &[]), &["i32[4]"], &["must be a float dtype"]);
    check_err(
        &op("abs", &[]),
        &["bool[4]"],
        &["must be a numeric dtype", "got bool"],
    );
    check_err(&op("not", &[]), &["f32[4]"], &["must be bool, got f32"]);
    check(
        &op("cast", &[("to", ident("bool"))]),
        &["i64[2,seq]"],
        &["bool[2,seq]"],
    );
}

#[test]
fn clip_bounds_must_fit_the_dtype() {
    check(
        &op("clip", &[("min", float(0.0)), ("max", float(6.0))]),
        &["i32[3]"],
        &["i32[3]"],
    );
    check_err(
        &op("clip", &[("min", float(0.5))]),
        &["i32[3]"],
        &["attribute `min` must be representable as i32, got 0.5"],
    );
    check_err(
        &op("clip", &[("max", float(300.0))]),
        &["u8[3]"],
        &["attribute `max`", "u8"],
    );
    // ONNX passes the bounds as tensors of x's dtype: a NaN bound is a valid f32 (every element
    // becomes NaN), but no integer.
    check(
        &op("clip", &[("max", float(f64::NAN))]),
        &["f32[3]"],
        &["f32[3]"],
    );
    check_err(
        &op("clip", &[("min", float(f64::NAN))]),
        &["i8[3]"],
        &["attribute `min` must be representable as i8, got NaN"],
    );
    check_err(
        &op("clip", &[("min", float(f64::NEG_INFINITY))]),
        &["i64[3]"],
        &["attribute `min` must be representable as i64"],
    );
}

#[test]
fn broadcasting_follows_numpy_with_symbols() {
    let add = op("add", &[]);
    check(&add, &["f32[batch,1,4]", "f32[3,1]"], &["f32[batch,3,4]"]);
    check(
        &add,
        &["f32[batch,seq,512]", "f32[512]"],
        &["f32[batch,seq,512]"],
    );
    check(&add, &["f32[]", "f32[2,3]"], &["f32[2,3]"]);
    // A symbol against a static size > 1 is assumed to be that size.
    check(&add, &["f32[n,4]", "f32[5,4]"], &["f32[5,4]"]);
    check(&add, &["f32[n,4]", "f32[1,4]"], &["f32[n,4]"]);
    check(&add, &["f32[n,4]", "f32[n,1]"], &["f32[n,4]"]);
    check_err(
        &add,
        &["f32[n,4]", "f32[m,4]"],
        &["do not provably broadcast", "different symbols `n` and `m`"],
    );
    check_err(
        &add,
        &["f32[2,3]", "f32[4,3]"],
        &[
            "shapes [2,3] and [4,3] do not broadcast",
            "axis 0",
            "2 and 4",
        ],
    );
    check_err(
        &add,
        &["f32[2]", "i64[2]"],
        &["input `b` must be f32 (the dtype of `a`), got i64"],
    );
    check_err(&add, &["bool[2]", "bool[2]"], &["must be a numeric dtype"]);

    let shape = |s: &str| ty(&format!("f32{s}")).shape;
    assert_eq!(
        broadcast_shapes(&shape("[batch,1]"), &shape("[7]")).unwrap(),
        shape("[batch,7]")
    );
    assert_eq!(
        broadcast_shapes(&shape("[]"), &shape("[]")).unwrap(),
        Shape::scalar()
    );
    let err = broadcast_shapes(&shape("[3]"), &shape("[4]")).unwrap_err();
    assert_eq!(err.op, "broadcast");
    assert!(err.to_string().contains("do not broadcast"), "{err}");
}

#[test]
fn pow_comparison_logic_and_where() {
    check(&op("pow", &[]), &["f32[3]", "i64[]"], &["f32[3]"]);
    check(&op("pow", &[]), &["i32[2,3]", "f64[3]"], &["i32[2,3]"]);
    check_err(
        &op("pow", &[]),
        &["i8[3]", "i8[3]"],
        &["input `a` must be f32, f64, i32 or i64, got i8"],
    );
    check_err(
        &op("pow", &[]),
        &["f32[3]", "bool[3]"],
        &["input `b` must be a numeric dtype"],
    );
    check(
        &op("equal", &[]),
        &["i64[batch,1]", "i64[4]"],
        &["bool[batch,4]"],
    );
    check_err(
        &op("less", &[]),
        &["bool[2]", "bool[2]"],
        &["must be a numeric dtype"],
    );
    check_err(
        &op("greater", &[]),
        &["f32[2]", "f64[2]"],
        &["input `b` must be f32"],
    );
    check_err(
        &op("and", &[]),
        &["i32[2]", "i32[2]"],
        &["input `a` must be bool"],
    );
    let where_op = op("where", &[]);
    check(
        &where_op,
        &["bool[batch,1]", "f32[1,4]", "f32[]"],
        &["f32[batch,4]"],
    );
    check_err(
        &where_op,
        &["f32[2]", "f32[2]", "f32[2]"],
        &["input `cond` must be bool"],
    );
    check_err(
        &where_op,
        &["bool[2]", "f32[2]", "f64[2]"],
        &["input `y` must be f32 (the dtype of `x`)"],
    );
    check_err(
        &where_op,
        &["bool[3]", "f32[2]", "f32[2]"],
        &["do not broadcast"],
    );
}

#[test]
fn prelu_slope_broadcasts_to_x() {
    let prelu = op("prelu", &[]);
    check(
        &prelu,
        &["f32[batch,3,8,8]", "f32[3,1,1]"],
        &["f32[batch,3,8,8]"],
    );
    check(
        &prelu,
        &["f32[batch,3,8,8]", "f32[1]"],
        &["f32[batch,3,8,8]"],
    );
    check_err(
        &prelu,
        &["f32[2,3,4]", "f32[5]"],
        &["input `slope` of shape [5] does not broadcast to `x`'s shape [2,3,4]"],
    );
    check_err(&prelu, &["f32[4]", "f32[2,4]"], &["does not broadcast"]);
    check_err(
        &prelu,
        &["i8[4]", "i8[4]"],
        &["must be f32, f64, i32 or i64"],
    );
}

// ---- linear algebra ----

#[test]
fn matmul_is_numpy_matmul() {
    let matmul = op("matmul", &[]);
    check(
        &matmul,
        &["f32[batch,seq,64]", "f32[64,128]"],
        &["f32[batch,seq,128]"],
    );
    check(&matmul, &["f32[2,1,3,4]", "f32[5,4,6]"], &["f32[2,5,3,6]"]);
    check(&matmul, &["f32[4]", "f32[4,5]"], &["f32[5]"]);
    check(&matmul, &["f32[batch,3,4]", "f32[4]"], &["f32[batch,3]"]);
    check(&matmul, &["i64[4]", "i64[4]"], &["i64[]"]);
    check(&matmul, &["f32[3,k]", "f32[k,2]"], &["f32[3,2]"]);
    check(&matmul, &["f32[3,k]", "f32[4,2]"], &["f32[3,2]"]);
    check_err(
        &matmul,
        &["f32[3,4]", "f32[5,2]"],
        &["the contracted dims", "4 and 5 differ"],
    );
    check_err(
        &matmul,
        &["f32[3,k]", "f32[j,2]"],
        &["symbols `k` and `j` cannot be proven equal"],
    );
    check_err(
        &matmul,
        &["f32[]", "f32[3]"],
        &["input `a` must have rank at least 1, got f32[]"],
    );
    check_err(
        &matmul,
        &["u8[2,2]", "u8[2,2]"],
        &["must be f32, f64, i32 or i64"],
    );
}

#[test]
fn gemm_transposes_and_broadcasts_c() {
    let gemm = op("gemm", &[("trans_b", boolean(true))]);
    check(
        &gemm,
        &["f32[batch,64]", "f32[10,64]", "f32[10]"],
        &["f32[batch,10]"],
    );
    check(
        &gemm,
        &["f32[batch,64]", "f32[10,64]", "f32[1,10]"],
        &["f32[batch,10]"],
    );
    check(
        &op("gemm", &[("trans_a", boolean(true))]),
        &["f32[3,2]", "f32[3,4]"],
        &["f32[2,4]"],
    );
    check_err(
        &gemm,
        &["f32[batch,64]", "f32[10,64]", "f32[7]"],
        &["input `c` of shape [7] does not broadcast to the result shape [batch,10]"],
    );
    check_err(
        &gemm,
        &["f32[4,64]", "f32[64,10]"],
        &["contracted dims", "64 and 10 differ"],
    );
    check_err(
        &gemm,
        &["f32[2,3,4]", "f32[4,5]"],
        &["input `a` must have rank 2"],
    );
}

// ---- convolution and pooling ----

#[test]
fn conv_output_sizes() {
    check(
        &op("conv", &[]),
        &["f32[batch,1,28,28]", "f32[6,1,5,5]", "f32[6]"],
        &["f32[batch,6,24,24]"],
    );
    let strided = op(
        "conv",
        &[("strides", ints(&[2, 2])), ("pads", ints(&[3, 3, 3, 3]))],
    );
    check(
        &strided,
        &["f32[1,3,224,224]", "f32[64,3,7,7]"],
        &["f32[1,64,112,112]"],
    );
    // Dilation 2 makes a 3-wide kernel span 5.
    check(
        &op("conv", &[("dilations", ints(&[2, 2]))]),
        &["f32[1,1,10,10]", "f32[1,1,3,3]"],
        &["f32[1,1,6,6]"],
    );
    // Asymmetric pads and strides per axis.
    let asym = op(
        "conv",
        &[("strides", ints(&[1, 3])), ("pads", ints(&[0, 1, 2, 1]))],
    );
    check(&asym, &["f32[1,1,5,7]", "f32[2,1,3,3]"], &["f32[1,2,5,3]"]);
    // 1-d convolution.
    check(
        &op("conv", &[]),
        &["f32[2,4,10]", "f32[8,4,3]"],
        &["f32[2,8,8]"],
    );
    check_err(
        &op("conv", &[]),
        &["f32[1,1,2,2]", "f32[1,1,3,3]"],
        &["padded input size 2 is smaller than the dilated kernel size 3"],
    );
}

#[test]
fn conv_auto_pad() {
    let x = "f32[1,3,7,7]";
    let w = "f32[8,3,3,3]";
    for mode in ["same_upper", "same_lower"] {
        let same = op(
            "conv",
            &[("auto_pad", ident(mode)), ("strides", ints(&[2, 2]))],
        );
        check(&same, &[x, w], &["f32[1,8,4,4]"]);
        let same_unit = op("conv", &[("auto_pad", ident(mode))]);
        check(&same_unit, &["f32[n,3,h,w]", w], &["f32[n,8,h,w]"]);
    }
    let valid = op(
        "conv",
        &[("auto_pad", ident("valid")), ("strides", ints(&[2, 2]))],
    );
    check(&valid, &[x, w], &["f32[1,8,3,3]"]);
    let both = op(
        "conv",
        &[
            ("auto_pad", ident("same_upper")),
            ("pads", ints(&[1, 1, 1, 1])),
        ],
    );
    check_err(
        &both,
        &[x, w],
        &["attribute `pads` cannot be given together with auto_pad=same_upper"],
    );
}

#[test]
fn conv_symbolic_spatial_dims() {
    // Stride 1 with pads restoring the size keeps the symbol.
    let padded = op("conv", &[("pads", ints(&[1, 1, 1, 1]))]);
    check(
        &padded,
        &["f32[batch,3,h,w]", "f32[16,3,3,3]"],
        &["f32[batch,16,h,w]"],
    );
    let strided = op(
        "conv",
        &[("pads", ints(&[1, 1, 1, 1])), ("strides", ints(&[2, 2]))],
    );
    let err = check_err(
        &strided,
        &["f32[batch,3,h,w]", "f32[16,3,3,3]"],
        &["spatial axis 0", "`h`", "symbolic dims have no expressions"],
    );
    assert!(matches!(err.kind, InferErrorKind::Symbolic(_)));
    check_err(
        &op("conv", &[]),
        &["f32[1,3,h,w]", "f32[16,3,3,3]"],
        &["expression of `h`"],
    );
    check_err(
        &op(
            "conv",
            &[
                ("auto_pad", ident("same_upper")),
                ("strides", ints(&[2, 2])),
            ],
        ),
        &["f32[1,3,h,8]", "f32[4,3,3,3]"],
        &["ceil(`h` / 2)"],
    );
    check_err(
        &op("conv", &[]),
        &["f32[1,3,8,8]", "f32[16,3,k,3]"],
        &["kernel dims of `w` [k,3] must be static"],
    );
}

#[test]
fn conv_groups_channels_and_bias() {
    let depthwise = op("conv", &[("group", int(32)), ("pads", ints(&[1, 1, 1, 1]))]);
    check(
        &depthwise,
        &["f32[1,32,8,8]", "f32[32,1,3,3]", "f32[32]"],
        &["f32[1,32,8,8]"],
    );
    check(
        &op("conv", &[("group", int(2))]),
        &["f32[1,4,3,3]", "f32[6,2,3,3]"],
        &["f32[1,6,1,1]"],
    );
    check_err(
        &depthwise,
        &["f32[1,32,8,8]", "f32[32,2,3,3]"],
        &["channels of `x`", "64"],
    );
    check_err(
        &op("conv", &[("group", int(2))]),
        &["f32[1,4,3,3]", "f32[5,2,3,3]"],
        &["attribute `group` must divide the output channel count 5"],
    );
    check_err(
        &op("conv", &[("group", int(0))]),
        &["f32[1,4,3,3]", "f32[4,4,3,3]"],
        &["attribute `group` must be at least 1, got 0"],
    );
    check_err(
        &op("conv", &[]),
        &["f32[1,3,8,8]", "f32[16,4,3,3]"],
        &["channels of `x`"],
    );
    check_err(
        &op("conv", &[]),
        &["f32[1,3,8,8]", "f32[16,3,3,3]", "f32[8]"],
        &["input `b` must have 16 (the output channel count) at axis 0, got 8"],
    );
    check_err(
        &op("conv", &[]),
        &["f32[1,3,8,8]", "f32[16,3,3]"],
        &["input `w` must have rank 4"],
    );
    check_err(
        &op("conv", &[]),
        &["i32[1,3,8,8]", "i32[16,3,3,3]"],
        &["must be a float dtype"],
    );
    check_err(
        &op("conv", &[("pads", ints(&[1, 1, 1]))]),
        &["f32[1,3,8,8]", "f32[16,3,3,3]"],
        &["attribute `pads` must have 4 entries"],
    );
    check_err(
        &op("conv", &[("pads", ints(&[-1, 0, 0, 0]))]),
        &["f32[1,3,8,8]", "f32[16,3,3,3]"],
        &["attribute `pads` must be at least 0, got -1"],
    );
    check_err(
        &op("conv", &[("strides", ints(&[0, 1]))]),
        &["f32[1,3,8,8]", "f32[16,3,3,3]"],
        &["attribute `strides` must be at least 1, got 0"],
    );
    check_err(
        &op("conv", &[("dilations", ints(&[1]))]),
        &["f32[1,3,8,8]", "f32[16,3,3,3]"],
        &["attribute `dilations` must have 2 entries (one per spatial axis)"],
    );
}

#[test]
fn conv_transpose_output_sizes() {
    let up = op(
        "conv_transpose",
        &[("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))],
    );
    check(
        &up,
        &["f32[batch,16,14,14]", "f32[16,8,4,4]", "f32[8]"],
        &["f32[batch,8,28,28]"],
    );
    let adj = op(
        "conv_transpose",
        &[
            ("strides", ints(&[2, 2])),
            ("output_padding", ints(&[1, 0])),
        ],
    );
    check(&adj, &["f32[1,2,3,3]", "f32[2,3,3,3]"], &["f32[1,3,8,7]"]);
    let explicit = op(
        "conv_transpose",
        &[("strides", ints(&[2, 2])), ("output_shape", ints(&[10, 8]))],
    );
    check(
        &explicit,
        &["f32[1,2,h,3]", "f32[2,3,3,3]"],
        &["f32[1,3,10,8]"],
    );
    check(
        &op("conv_transpose", &[("group", int(2))]),
        &["f32[1,4,5,5]", "f32[4,3,3,3]"],
        &["f32[1,6,7,7]"],
    );
    let same = op(
        "conv_transpose",
        &[
            ("strides", ints(&[2, 2])),
            ("auto_pad", ident("same_upper")),
        ],
    );
    check(
        &same,
        &["f32[1,2,5,6]", "f32[2,3,3,3]"],
        &["f32[1,3,10,12]"],
    );
    let keep = op("conv_transpose", &[("pads", ints(&[1, 1, 1, 1]))]);
    check(&keep, &["f32[n,2,h,w]", "f32[2,3,3,3]"], &["f32[n,3,h,w]"]);
    check_err(
        &up,
        &["f32[1,16,h,4]", "f32[16,8,4,4]"],
        &["spatial axis 0", "2 * (`h` - 1)"],
    );
    let big_adj = op(
        "conv_transpose",
        &[
            ("strides", ints(&[2, 2])),
            ("output_padding", ints(&[2, 0])),
        ],
    );
    check_err(
        &big_adj,
        &["f32[1,2,3,3]", "f32[2,3,3,3]"],
        &["attribute `output_padding` must be smaller than the stride (2)"],
    );
    // A dilation larger than output_padding does not help: the extra outputs must stay within one
    // stride, as the interpreter (and onnxruntime) require.
    let dilated_adj = op(
        "conv_transpose",
        &[
            ("dilations", ints(&[3, 3])),
            ("output_padding", ints(&[1, 0])),
        ],
    );
    check_err(
        &dilated_adj,
        &["f32[1,2,3,3]", "f32[2,3,3,3]"],
        &["attribute `output_padding` must be smaller than the stride (1)"],
    );
    // output_shape may exceed the full size (here 2 * 2 + 3 = 7) by less than a stride...
    let shaped = |size: i64| {
        op(
            "conv_transpose",
            &[
                ("strides", ints(&[2, 2])),
                ("output_shape", ints(&[size, 7])),
            ],
        )
    };
    check(
        &shaped(8),
        &["f32[1,2,3,3]", "f32[2,3,3,3]"],
        &["f32[1,3,8,7]"],
    );
    check_err(
        &shaped(9),
        &["f32[1,2,3,3]", "f32[2,3,3,3]"],
        &["attribute `output_shape` spatial axis 0: 9 is more than a stride beyond the full output size 7"],
    );
    // ...and with output_shape the pads are ignored, as ONNX says.
    let ignored_pads = op(
        "conv_transpose",
        &[("pads", ints(&[-3, 9])), ("output_shape", ints(&[5]))],
    );
    check(
        &ignored_pads,
        &["f32[1,2,3]", "f32[2,3,3]"],
        &["f32[1,3,5]"],
    );
    // An empty spatial input has no output size that maps back to it.
    check_err(
        &op("conv_transpose", &[]),
        &["f32[1,2,0,3]", "f32[2,3,3,3]"],
        &["spatial axis 0 of `x` [1,2,0,3] is empty"],
    );
    check_err(
        &op("conv_transpose", &[]),
        &["f32[1,3,5,5]", "f32[2,3,3,3]"],
        &["input `w` must have 3 (the channel count of `x`) at axis 0, got 2"],
    );
    check_err(
        &op("conv_transpose", &[("output_shape", ints(&[4]))]),
        &["f32[1,2,3,3]", "f32[2,3,3,3]"],
        &["attribute `output_shape` must have 2 entries"],
    );
}

#[test]
fn pool_output_sizes() {
    let pool = op(
        "max_pool",
        &[("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))],
    );
    check(&pool, &["f32[batch,3,32,32]"], &["f32[batch,3,16,16]"]);
    check(&pool, &["u8[1,3,32,32]"], &["u8[1,3,16,16]"]);
    check_err(&pool, &["i32[1,3,32,32]"], &["must be f32, f64, i8 or u8"]);
    let avg = op(
        "average_pool",
        &[
            ("kernel_shape", ints(&[3, 3])),
            ("pads", ints(&[1, 1, 1, 1])),
        ],
    );
    check(&avg, &["f32[1,3,h,w]"], &["f32[1,3,h,w]"]);
    check_err(
        &op("average_pool", &[("kernel_shape", ints(&[2, 2]))]),
        &["i8[1,1,4,4]"],
        &["must be a float dtype"],
    );
    let dilated = op(
        "max_pool",
        &[("kernel_shape", ints(&[3])), ("dilations", ints(&[2]))],
    );
    check(&dilated, &["f32[1,1,9]"], &["f32[1,1,5]"]);
    check_err(
        &op("max_pool", &[("kernel_shape", ints(&[2]))]),
        &["f32[1,1,4,4]"],
        &["attribute `kernel_shape` must have 2 entries (one per spatial axis), got [2]"],
    );
    check_err(
        &op("max_pool", &[("kernel_shape", ints(&[0, 2]))]),
        &["f32[1,1,4,4]"],
        &["attribute `kernel_shape` must be at least 1, got 0"],
    );
    check_err(
        &op("max_pool", &[("kernel_shape", ints(&[2]))]),
        &["f32[1,4]"],
        &["input `x` must have rank at least 3"],
    );
    let same = op(
        "max_pool",
        &[
            ("kernel_shape", ints(&[3, 3])),
            ("strides", ints(&[2, 2])),
            ("auto_pad", ident("same_lower")),
        ],
    );
    check(&same, &["f32[1,1,7,8]"], &["f32[1,1,4,4]"]);
}

#[test]
fn pool_ceil_mode() {
    let pool = |ceil: bool, pads: &[i64]| {
        op(
            "max_pool",
            &[
                ("kernel_shape", ints(&[2])),
                ("strides", ints(&[2])),
                ("pads", ints(pads)),
                ("ceil_mode", boolean(ceil)),
            ],
        )
    };
    // 5 wide, kernel 2, stride 2: floor gives 2 windows, ceil a third one starting at index 4.
    check(&pool(false, &[0, 0]), &["f32[1,1,5]"], &["f32[1,1,2]"]);
    check(&pool(true, &[0, 0]), &["f32[1,1,5]"], &["f32[1,1,3]"]);
    // 4 wide with one pad at the end: the ceil formula gives 3, but the third window would start at
    // index 4, in the end padding, so ONNX drops it.
    check(&pool(true, &[0, 1]), &["f32[1,1,4]"], &["f32[1,1,2]"]);
    // With a pad at the start the same window starts inside the input and is kept.
    check(&pool(true, &[1, 0]), &["f32[1,1,4]"], &["f32[1,1,3]"]);
    // PyTorch's example: 6 wide, kernel 3, stride 2, pad 1: ceil gives 4, the last start (6) is in
    // the input plus left pad (7), so 4 windows.
    let torch = op(
        "average_pool",
        &[
            ("kernel_shape", ints(&[3])),
            ("strides", ints(&[2])),
            ("pads", ints(&[1, 1])),
            ("ceil_mode", boolean(true)),
        ],
    );
    check(&torch, &["f32[1,1,6]"], &["f32[1,1,4]"]);
    check_err(
        &pool(true, &[0, 0]),
        &["f32[1,1,s]"],
        &["expression of `s`"],
    );
}

#[test]
fn pool_floor_sizes_match_counting_windows() {
    // Without ceil_mode the output is the number of window starts k * stride with the whole
    // (dilated) window inside the padded input.
    for n in 1..12usize {
        for kernel in 1..4i64 {
            for stride in 1..4i64 {
                for dilation in 1..3i64 {
                    for (begin, end) in [(0, 0), (1, 0), (0, 2), (2, 1)] {
                        let padded = n as i64 + begin + end;
                        let extent = (kernel - 1) * dilation + 1;
                        let pool = op(
                            "max_pool",
                            &[
                                ("kernel_shape", ints(&[kernel])),
                                ("strides", ints(&[stride])),
                                ("dilations", ints(&[dilation])),
                                ("pads", ints(&[begin, end])),
                            ],
                        );
                        let x = format!("f32[1,1,{n}]");
                        if begin >= kernel || end >= kernel {
                            check_err(&pool, &[&x], &["must be smaller than the kernel size"]);
                            continue;
                        }
                        if padded < extent {
                            check_err(&pool, &[&x], &["smaller than the dilated kernel"]);
                            continue;
                        }
                        let count = (0..).take_while(|k| k * stride + extent <= padded).count();
                        check(&pool, &[&x], &[&format!("f32[1,1,{count}]")]);
                    }
                }
            }
        }
    }
}

#[test]
fn global_pools() {
    check(
        &op("global_average_pool", &[]),
        &["f32[batch,64,7,7]"],
        &["f32[batch,64,1,1]"],
    );
    check(
        &op("global_max_pool", &[]),
        &["f64[batch,64,h,w]"],
        &["f64[batch,64,1,1]"],
    );
    check_err(
        &op("global_max_pool", &[]),
        &["f32[3]"],
        &["rank at least 3"],
    );
}

// ---- normalization ----

#[test]
fn per_channel_normalizations() {
    let bn = op("batch_norm", &[]);
    let c64 = "f32[64]";
    check(
        &bn,
        &["f32[batch,64,7,7]", c64, c64, c64, c64],
        &["f32[batch,64,7,7]"],
    );
    check(
        &bn,
        &["f32[batch,64]", c64, c64, c64, c64],
        &["f32[batch,64]"],
    );
    check_err(
        &bn,
        &["f32[batch,64]", c64, c64, "f64[64]", "f64[64]"],
        &["input `mean` must be f32 (the dtype of `x`), got f64"],
    );
    check_err(
        &bn,
        &["f32[batch,64,7,7]", c64, c64, "f32[32]", c64],
        &["input `mean` must have 64 (the channel count of `x`) at axis 0, got 32"],
    );
    check_err(
        &bn,
        &["f32[batch,64,7,7]", c64, "f64[64]", c64, c64],
        &["input `bias` must be f32 (the dtype of `x`)"],
    );
    check_err(
        &bn,
        &["f32[batch,64,7,7]", "f32[1,64]", c64, c64, c64],
        &["input `scale` must have rank 1"],
    );
    let inorm = op("instance_norm", &[]);
    check(
        &inorm,
        &["f32[n,3,h,w]", "f32[3]", "f32[3]"],
        &["f32[n,3,h,w]"],
    );
    check_err(
        &inorm,
        &["f32[n,3]", "f32[3]", "f32[3]"],
        &["rank at least 3"],
    );
    let gn = op("group_norm", &[("num_groups", int(32))]);
    check(
        &gn,
        &["f32[batch,64,h,w]", c64, c64],
        &["f32[batch,64,h,w]"],
    );
    check_err(
        &op("group_norm", &[("num_groups", int(3))]),
        &["f32[1,64,4,4]", c64, c64],
        &["attribute `num_groups` must divide the channel count 64, got 3"],
    );
    check(
        &op("lrn", &[("size", int(5))]),
        &["f32[1,96,55,55]"],
        &["f32[1,96,55,55]"],
    );
    check_err(
        &op("lrn", &[("size", int(0))]),
        &["f32[1,96,55,55]"],
        &["attribute `size` must be at least 1"],
    );
}

#[test]
fn layer_rms_norm_and_softmax() {
    let ln = op("layer_norm", &[]);
    check(
        &ln,
        &["f32[batch,seq,512]", "f32[512]", "f32[512]"],
        &["f32[batch,seq,512]"],
    );
    check(
        &ln,
        &["f32[batch,seq,512]", "f32[512]"],
        &["f32[batch,seq,512]"],
    );
    check(
        &op("layer_norm", &[("axis", int(1))]),
        &["f32[batch,seq,512]", "f32[seq,512]", "_"],
        &["f32[batch,seq,512]"],
    );
    check_err(
        &ln,
        &["f32[batch,seq,512]", "f32[256]"],
        &["input `scale` of shape [256] does not broadcast to the normalized shape [512]"],
    );
    check_err(
        &op("layer_norm", &[("axis", int(3))]),
        &["f32[2,3,4]", "f32[4]"],
        &["attribute `axis` must be in [-3, 2] for rank 3, got 3"],
    );
    // The scale has x's dtype (ONNX's RMSNormalization allows another float type; the importer
    // casts), as layer_norm's.
    check(
        &op("rms_norm", &[]),
        &["f64[batch,seq,64]", "f64[64]"],
        &["f64[batch,seq,64]"],
    );
    check_err(
        &op("rms_norm", &[]),
        &["f32[batch,seq,64]", "f64[64]"],
        &["input `scale` must be f32 (the dtype of `x`), got f64"],
    );
    check_err(
        &op("rms_norm", &[]),
        &["f32[batch,seq,64]", "f32[seq,64]"],
        &["does not broadcast to the normalized shape [64]"],
    );
    check(
        &op("softmax", &[("axis", int(1))]),
        &["f32[batch,10]"],
        &["f32[batch,10]"],
    );
    check_err(
        &op("softmax", &[("axis", int(-3))]),
        &["f32[batch,10]"],
        &["attribute `axis` must be in [-2, 1]"],
    );
    check_err(
        &op("log_softmax", &[]),
        &["f32[]"],
        &["attribute `axis` cannot name an axis of a scalar, got -1"],
    );
    check_err(&op("softmax", &[]), &["i64[3]"], &["must be a float dtype"]);
}

#[test]
fn attention_four_d() {
    let attn = op("attention", &[]);
    check(
        &attn,
        &[
            "f32[batch,8,seq,64]",
            "f32[batch,2,kv,64]",
            "f32[batch,2,kv,32]",
        ],
        &["f32[batch,8,seq,32]"],
    );
    check(
        &attn,
        &[
            "f32[batch,8,seq,64]",
            "f32[batch,8,seq,64]",
            "f32[batch,8,seq,64]",
            "bool[seq,seq]",
        ],
        &["f32[batch,8,seq,64]"],
    );
    check(
        &attn,
        &[
            "f32[2,4,3,8]",
            "f32[2,4,5,8]",
            "f32[2,4,5,8]",
            "f32[2,1,3,5]",
        ],
        &["f32[2,4,3,8]"],
    );
    // Opset 24: the mask's last axis may be shorter than the kv sequence (padded with -inf).
    check(
        &attn,
        &["f32[2,4,3,8]", "f32[2,4,5,8]", "f32[2,4,5,8]", "bool[3,4]"],
        &["f32[2,4,3,8]"],
    );
    check_err(
        &attn,
        &["f32[2,4,3,8]", "f32[2,4,5,8]", "f32[2,4,5,8]", "bool[3,6]"],
        &["input `mask` of shape [3,6] does not broadcast"],
    );
    check_err(
        &attn,
        &["f32[2,4,3,8]", "f32[2,4,5,8]", "f32[2,4,5,8]", "i64[3,5]"],
        &["input `mask` must be bool or f32"],
    );
    check_err(
        &attn,
        &["f32[2,8,3,8]", "f32[2,3,5,8]", "f32[2,3,5,8]"],
        &["query head count 8 must be a multiple of the key/value head count 3"],
    );
    check_err(
        &attn,
        &["f32[2,4,3,8]", "f32[2,4,5,16]", "f32[2,4,5,8]"],
        &["head sizes of `q` and `k`"],
    );
    check_err(
        &attn,
        &["f32[2,4,3,8]", "f32[2,4,5,8]", "f32[2,4,6,8]"],
        &["sequence lengths of `k` and `v`"],
    );
    check_err(
        &attn,
        &["f32[2,3,4,8,1]", "f32[2,4,5,8]", "f32[2,4,6,8]"],
        &["input `q` must have rank 3 or 4"],
    );
}

#[test]
fn attention_three_d() {
    let attn = op(
        "attention",
        &[("q_num_heads", int(8)), ("kv_num_heads", int(4))],
    );
    check(
        &attn,
        &[
            "f32[batch,seq,512]",
            "f32[batch,kv,256]",
            "f32[batch,kv,128]",
        ],
        &["f32[batch,seq,256]"],
    );
    check_err(
        &op("attention", &[]),
        &[
            "f32[batch,seq,512]",
            "f32[batch,kv,512]",
            "f32[batch,kv,512]",
        ],
        &["attribute `q_num_heads` must be positive for the 3-d input `q`"],
    );
    check_err(
        &attn,
        &[
            "f32[batch,seq,500]",
            "f32[batch,kv,256]",
            "f32[batch,kv,256]",
        ],
        &["attribute `q_num_heads` must divide the hidden size 500"],
    );
    check_err(
        &attn,
        &[
            "f32[batch,seq,512]",
            "f32[batch,kv,128]",
            "f32[batch,kv,256]",
        ],
        &["head sizes of `q` and `k`: 64 and 32 differ"],
    );
}

// ---- pad and resize ----

#[test]
fn pad_sizes() {
    let pad = op("pad", &[("pads", ints(&[0, 0, 1, 2, 0, 0, 1, 2]))]);
    check(&pad, &["f32[batch,3,4,4]"], &["f32[batch,3,6,8]"]);
    check(
        &op("pad", &[("pads", ints(&[0, -1, 0, -1]))]),
        &["i64[3,4]"],
        &["i64[3,2]"],
    );
    check_err(&pad, &["f32[batch,3,h,4]"], &["axis 2 would be `h` + 2"]);
    check_err(
        &op("pad", &[("pads", ints(&[0, -5]))]),
        &["f32[3]"],
        &["crops axis 0 of size 3 by more than its size"],
    );
    check_err(
        &op("pad", &[("pads", ints(&[1, 1]))]),
        &["f32[3,3]"],
        &["attribute `pads` must have 4 entries"],
    );
    check_err(
        &op("pad", &[("pads", ints(&[1, 1])), ("value", float(0.5))]),
        &["i32[3]"],
        &["attribute `value` must be representable as i32, got 0.5"],
    );
    check_err(
        &op(
            "pad",
            &[("pads", ints(&[1, 1])), ("mode", ident("reflect"))],
        ),
        &["f32[0]"],
        &["axis 0 is empty", "reflect"],
    );
    check(
        &op("pad", &[("pads", ints(&[1, 1])), ("mode", ident("edge"))]),
        &["bool[3]"],
        &["bool[5]"],
    );
}

#[test]
fn resize_sizes() {
    let up = op(
        "resize",
        &[("scales", AttrValue::Floats(vec![1.0, 1.0, 2.0, 2.0]))],
    );
    check(&up, &["f32[batch,3,8,8]"], &["f32[batch,3,16,16]"]);
    let down = op(
        "resize",
        &[
            ("scales", AttrValue::Floats(vec![0.5, 1.5])),
            ("mode", ident("linear")),
        ],
    );
    check(&down, &["f32[7,5]"], &["f32[3,7]"]);
    check(
        &op("resize", &[("sizes", ints(&[1, 3, 10, 12]))]),
        &["u8[1,3,h,w]"],
        &["u8[1,3,10,12]"],
    );
    check_err(
        &up,
        &["f32[batch,3,h,8]"],
        &["axis 2 would be floor(`h` * 2)"],
    );
    check_err(
        &op(
            "resize",
            &[
                ("sizes", ints(&[2])),
                ("scales", AttrValue::Floats(vec![2.0])),
            ],
        ),
        &["f32[3]"],
        &["both given"],
    );
    check_err(
        &op("resize", &[]),
        &["f32[3]"],
        &["exactly one must be given"],
    );
    check_err(
        &op("resize", &[("scales", AttrValue::Floats(vec![2.0]))]),
        &["f32[3,3]"],
        &["attribute `scales` must have 2 entries"],
    );
    check_err(
        &op("resize", &[("scales", AttrValue::Floats(vec![0.0]))]),
        &["f32[3]"],
        &["positive"],
    );
    check_err(
        &op(
            "resize",
            &[("sizes", ints(&[4])), ("mode", ident("linear"))],
        ),
        &["bool[3]"],
        &["must be a numeric dtype"],
    );
}

// ---- reductions ----

#[test]
fn reductions() {
    check(
        &op("reduce_mean", &[("axes", ints(&[-1]))]),
        &["f32[batch,seq,512]"],
        &["f32[batch,seq,1]"],
    );
    check(
        &op(
            "reduce_sum",
            &[("axes", ints(&[0, 2])), ("keepdims", boolean(false))],
        ),
        &["i64[batch,seq,512]"],
        &["i64[seq]"],
    );
    check(&op("reduce_sum", &[]), &["f32[batch,4]"], &["f32[1,1]"]);
    check(
        &op("reduce_sum", &[("keepdims", boolean(false))]),
        &["f32[batch,4]"],
        &["f32[]"],
    );
    check(
        &op("reduce_prod", &[("noop_with_empty_axes", boolean(true))]),
        &["f32[batch,4]"],
        &["f32[batch,4]"],
    );
    check(
        &op("reduce_max", &[("axes", ints(&[1]))]),
        &["bool[2,3]"],
        &["bool[2,1]"],
    );
    check(&op("reduce_min", &[]), &["u8[2,3]"], &["u8[1,1]"]);
    check_err(
        &op("reduce_sum", &[]),
        &["i8[2,3]"],
        &["must be f32, f64, i32 or i64, got i8"],
    );
    check_err(
        &op("reduce_l2", &[("axes", ints(&[1, -1]))]),
        &["f32[2,3]"],
        &["attribute `axes` names axis 1 twice"],
    );
    check_err(
        &op("reduce_l1", &[("axes", ints(&[2]))]),
        &["f32[2,3]"],
        &["attribute `axes` must be in [-2, 1] for rank 2, got 2"],
    );
    check(
        &op("arg_max", &[("axis", int(-1))]),
        &["f32[batch,10]"],
        &["i64[batch,1]"],
    );
    check(
        &op("arg_min", &[("axis", int(1)), ("keepdims", boolean(false))]),
        &["u8[batch,10]"],
        &["i64[batch]"],
    );
    check_err(
        &op("arg_max", &[]),
        &["bool[3]"],
        &["must be a numeric dtype"],
    );
    check_err(&op("arg_max", &[]), &["f32[]"], &["attribute `axis`"]);
}

// ---- data movement ----

#[test]
fn reshape_with_symbolic_factors() {
    let reshape = |shape: &[i64]| op("reshape", &[("shape", ints(shape))]);
    check(
        &reshape(&[0, -1]),
        &["f32[batch,64,7,7]"],
        &["f32[batch,3136]"],
    );
    check(
        &reshape(&[0, 0, 8, 64]),
        &["f32[batch,seq,512]"],
        &["f32[batch,seq,8,64]"],
    );
    check(
        &reshape(&[0, 0, -1]),
        &["f32[batch,seq,8,64]"],
        &["f32[batch,seq,512]"],
    );
    check(&reshape(&[-1, 4]), &["f32[batch,1,4]"], &["f32[batch,4]"]);
    check(&reshape(&[-1, 12]), &["f32[2,3,4]"], &["f32[2,12]"]);
    check(
        &reshape(&[4, 0, -1]),
        &["f32[2,seq,2,3]"],
        &["f32[4,seq,3]"],
    );
    check(&reshape(&[-1]), &["f32[0,3]"], &["f32[0]"]);
    check_err(
        &reshape(&[5, -1]),
        &["f32[2,3,4]"],
        &["24 is not divisible by 5"],
    );
    check_err(
        &reshape(&[-1, 4]),
        &["f32[batch,6]"],
        &["the -1 entry of [-1, 4] would be `batch` * 6 / 4"],
    );
    check_err(
        &reshape(&[-1]),
        &["f32[batch,4]"],
        &["would be `batch` * 4", "symbolic dims have no expressions"],
    );
    check_err(
        &reshape(&[3, 3]),
        &["f32[2,3]"],
        &["cannot reshape [2,3] (6 elements) to [3, 3] (9 elements)"],
    );
    check_err(
        &reshape(&[8, 64]),
        &["f32[seq,512]"],
        &["cannot reshape [seq,512] (`seq` * 512 elements)"],
    );
    check_err(
        &reshape(&[-1, -1]),
        &["f32[4]"],
        &["may contain -1 at most once"],
    );
    check_err(
        &reshape(&[0, 0, 0]),
        &["f32[2,3]"],
        &["entry 2 is 0 (copy the input dim), but the input [2,3] has no axis 2"],
    );
    check_err(
        &reshape(&[-2, 3]),
        &["f32[2,3]"],
        &["entries must be -1, 0 or positive, got -2"],
    );
    check_err(
        &reshape(&[0, -1]),
        &["f32[2,3]", "f32[2]"],
        &["expects exactly 1 inputs"],
    );
    check_err(
        &reshape(&[1, -1]),
        &["f32[batch,4]"],
        &["would be `batch` * 4"],
    );
    check_err(&reshape(&[0, -1]), &["f32[seq,batch,4]"], &["`batch` * 4"]);
    let allowzero = |shape: &[i64]| {
        op(
            "reshape",
            &[("shape", ints(shape)), ("allowzero", boolean(true))],
        )
    };
    check(&allowzero(&[0, 3]), &["f32[3,0]"], &["f32[0,3]"]);
    check_err(
        &allowzero(&[0, -1]),
        &["f32[3,0]"],
        &["may not contain both 0 and -1 with allowzero"],
    );
}

#[test]
fn flatten_transpose_squeeze_unsqueeze() {
    check(
        &op("flatten", &[]),
        &["f32[batch,1,28,28]"],
        &["f32[batch,784]"],
    );
    check(
        &op("flatten", &[("axis", int(0))]),
        &["f32[2,3,4]"],
        &["f32[1,24]"],
    );
    check(
        &op("flatten", &[("axis", int(3))]),
        &["f32[2,3,4]"],
        &["f32[24,1]"],
    );
    check(
        &op("flatten", &[("axis", int(-1))]),
        &["f32[2,3,batch]"],
        &["f32[6,batch]"],
    );
    check_err(
        &op("flatten", &[("axis", int(0))]),
        &["f32[batch,4]"],
        &["a flattened dim of [batch,4] would be `batch` * 4"],
    );
    check_err(
        &op("flatten", &[("axis", int(4))]),
        &["f32[2,3,4]"],
        &["attribute `axis` must be in [-3, 3] for rank 3, got 4"],
    );

    check(
        &op("transpose", &[("perm", ints(&[0, 2, 1, 3]))]),
        &["f32[batch,seq,8,64]"],
        &["f32[batch,8,seq,64]"],
    );
    check(
        &op("transpose", &[]),
        &["f32[batch,3,5]"],
        &["f32[5,3,batch]"],
    );
    check_err(
        &op("transpose", &[("perm", ints(&[0, 0, 1]))]),
        &["f32[2,3,4]"],
        &["attribute `perm` must be a permutation of 0..3 for rank 3, got [0, 0, 1]"],
    );
    check_err(
        &op("transpose", &[("perm", ints(&[1, 0]))]),
        &["f32[2,3,4]"],
        &["must be a permutation"],
    );
    check_err(
        &op("transpose", &[("perm", ints(&[0, 1, -1]))]),
        &["f32[2,3,4]"],
        &["must be a permutation"],
    );

    check(
        &op("squeeze", &[]),
        &["f32[1,batch,1,4]"],
        &["f32[batch,4]"],
    );
    check(
        &op("squeeze", &[("axes", ints(&[-2]))]),
        &["f32[1,batch,1,4]"],
        &["f32[1,batch,4]"],
    );
    // A listed symbolic axis is assumed to be 1, as ONNX assumes.
    check(
        &op("squeeze", &[("axes", ints(&[1]))]),
        &["f32[2,n]"],
        &["f32[2]"],
    );
    check_err(
        &op("squeeze", &[("axes", ints(&[3]))]),
        &["f32[1,batch,1,4]"],
        &["cannot squeeze axis 3 of [1,batch,1,4]: its size is 4, not 1"],
    );

    check(
        &op("unsqueeze", &[("axes", ints(&[0, -1]))]),
        &["f32[batch,4]"],
        &["f32[1,batch,4,1]"],
    );
    check(
        &op("unsqueeze", &[("axes", ints(&[0]))]),
        &["i64[]"],
        &["i64[1]"],
    );
    check_err(
        &op("unsqueeze", &[("axes", ints(&[0, 3]))]),
        &["f32[4]"],
        &["attribute `axes` must be in [-3, 2] for rank 3, got 3"],
    );
    check_err(
        &op("unsqueeze", &[("axes", ints(&[0, -3]))]),
        &["f32[4]"],
        &["names axis 0 twice"],
    );
}

#[test]
fn concat_and_split() {
    let concat = op("concat", &[("axis", int(1))]);
    check(
        &concat,
        &["f32[batch,3]", "f32[batch,5]", "f32[batch,2]"],
        &["f32[batch,10]"],
    );
    // The other axes unify: a symbol meeting a static size is assumed to be that size.
    check(&concat, &["f32[n,3]", "f32[4,2]"], &["f32[4,5]"]);
    check(
        &op("concat", &[("axis", int(0))]),
        &["f32[seq,4]"],
        &["f32[seq,4]"],
    );
    check(
        &op("concat", &[("axis", int(0))]),
        &["f32[seq,4]", "f32[0,4]"],
        &["f32[seq,4]"],
    );
    check_err(
        &op("concat", &[("axis", int(0))]),
        &["f32[batch,3]", "f32[2,3]"],
        &["the concat axis would be `batch` + 2"],
    );
    check_err(
        &concat,
        &["f32[2,3]", "f32[4,3]"],
        &["axis 0 of `inputs[0]` and `inputs[1]` (not the concat axis): 2 and 4 differ"],
    );
    check_err(
        &concat,
        &["f32[2,3]", "f64[2,3]"],
        &["input `inputs[1]` must be f32 (the dtype of `inputs[0]`)"],
    );
    check_err(
        &concat,
        &["f32[2,3]", "f32[2,3,1]"],
        &["input `inputs[1]` must have rank 2"],
    );
    check_err(
        &op("concat", &[("axis", int(0))]),
        &["f32[]"],
        &["rank at least 1"],
    );

    let split = op("split", &[("split", ints(&[2, 4])), ("axis", int(1))]);
    check(
        &split,
        &["f32[batch,6,h]"],
        &["f32[batch,2,h]", "f32[batch,4,h]"],
    );
    check_err(
        &split,
        &["f32[batch,5,h]"],
        &["attribute `split` must sum to the size 5 of axis 1, got [2, 4] (sum 6)"],
    );
    check_err(
        &op("split", &[("split", ints(&[]))]),
        &["f32[4]"],
        &["must have at least one entry"],
    );
    check_err(
        &op("split", &[("split", ints(&[5, -1]))]),
        &["f32[4]"],
        &["attribute `split` must be at least 0, got -1"],
    );
}

#[test]
fn slice_clamps_like_onnx() {
    let slice = |starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]| {
        op(
            "slice",
            &[
                ("starts", ints(starts)),
                ("ends", ints(ends)),
                ("axes", ints(axes)),
                ("steps", ints(steps)),
            ],
        )
    };
    check(
        &slice(&[1, -5], &[8, i64::MAX], &[], &[]),
        &["f32[10,20]"],
        &["f32[7,5]"],
    );
    check(&slice(&[0], &[10], &[0], &[3]), &["f32[10]"], &["f32[4]"]);
    check(
        &slice(&[-1], &[i64::MIN], &[0], &[-1]),
        &["f32[10]"],
        &["f32[10]"],
    );
    check(&slice(&[8], &[2], &[0], &[-2]), &["f32[10]"], &["f32[3]"]);
    check(&slice(&[20], &[30], &[0], &[]), &["f32[10]"], &["f32[0]"]);
    check(&slice(&[5], &[2], &[0], &[]), &["f32[10]"], &["f32[0]"]);
    check(
        &slice(&[100], &[-100], &[0], &[-1]),
        &["f32[10]"],
        &["f32[10]"],
    );
    check(
        &slice(&[0], &[256], &[1], &[]),
        &["f32[batch,512]"],
        &["f32[batch,256]"],
    );
    check(
        &slice(&[0], &[i64::MAX], &[0], &[]),
        &["f32[batch,512]"],
        &["f32[batch,512]"],
    );
    check(
        &slice(&[-1], &[i64::MIN], &[-2], &[-1]),
        &["f32[batch,512]"],
        &["f32[batch,512]"],
    );
    check_err(
        &slice(&[1], &[i64::MAX], &[0], &[]),
        &["f32[batch,512]"],
        &["axis 0: slicing `batch` from 1"],
    );
    check_err(
        &slice(&[0], &[4], &[0], &[0]),
        &["f32[10]"],
        &["attribute `steps` entries must not be 0"],
    );
    check_err(
        &slice(&[0, 0], &[4], &[], &[]),
        &["f32[10,3]"],
        &["attribute `ends` must have as many entries as `starts` (2)"],
    );
    check_err(
        &slice(&[0], &[4], &[1, 0], &[]),
        &["f32[10,3]"],
        &["attribute `axes` must have as many entries"],
    );
    check_err(
        &slice(&[0, 0], &[4, 4], &[1, -1], &[]),
        &["f32[10,3]"],
        &["names axis 1 twice"],
    );
    check_err(
        &slice(&[0, 0, 0], &[1, 1, 1], &[], &[]),
        &["f32[10,3]"],
        &["must be in [-2, 1]"],
    );
}

#[test]
fn gather_expand_tile_trilu() {
    check(
        &op("gather", &[]),
        &["f32[32000,512]", "i64[batch,seq]"],
        &["f32[batch,seq,512]"],
    );
    check(
        &op("gather", &[("axis", int(1))]),
        &["f32[3,4,5]", "i32[2]"],
        &["f32[3,2,5]"],
    );
    check(&op("gather", &[]), &["f32[5,6]", "i64[]"], &["f32[6]"]);
    check_err(
        &op("gather", &[]),
        &["f32[5,6]", "f32[2]"],
        &["input `indices` must be an index dtype (i64, i32), got f32"],
    );
    check_err(
        &op("gather", &[("axis", int(2))]),
        &["f32[5,6]", "i64[2]"],
        &["attribute `axis` must be in [-2, 1]"],
    );
    check(
        &op("gather_elements", &[("axis", int(1))]),
        &["f32[3,4]", "i64[3,2]"],
        &["f32[3,2]"],
    );
    check_err(
        &op("gather_elements", &[]),
        &["f32[3,4]", "i64[3]"],
        &["input `indices` must have rank 2"],
    );

    check(
        &op("expand", &[("shape", ints(&[2, 1, 4]))]),
        &["f32[3,1]"],
        &["f32[2,3,4]"],
    );
    check(
        &op("expand", &[("shape", ints(&[1, 5]))]),
        &["f32[batch,1]"],
        &["f32[batch,5]"],
    );
    check_err(
        &op("expand", &[("shape", ints(&[4]))]),
        &["f32[3]"],
        &["do not broadcast"],
    );
    check_err(
        &op("expand", &[("shape", ints(&[-1]))]),
        &["f32[3]"],
        &["attribute `shape` must be at least 0"],
    );

    check(
        &op("tile", &[("repeats", ints(&[1, 2]))]),
        &["f32[batch,3]"],
        &["f32[batch,6]"],
    );
    check(
        &op("tile", &[("repeats", ints(&[0, 1]))]),
        &["f32[batch,3]"],
        &["f32[0,3]"],
    );
    check_err(
        &op("tile", &[("repeats", ints(&[2, 1]))]),
        &["f32[batch,3]"],
        &["axis 0 would be 2 * `batch`"],
    );
    check_err(
        &op("tile", &[("repeats", ints(&[2]))]),
        &["f32[2,3]"],
        &["attribute `repeats` must have 2 entries"],
    );

    check(
        &op("trilu", &[("upper", boolean(false)), ("k", int(-1))]),
        &["bool[batch,4,4]"],
        &["bool[batch,4,4]"],
    );
    check_err(&op("trilu", &[]), &["f32[4]"], &["rank at least 2"]);
}

#[test]
fn range_shape_and_constant_of_shape_have_no_inputs() {
    let range = |start: f64, limit: f64, delta: f64, dtype: &str| {
        op(
            "range",
            &[
                ("start", float(start)),
                ("limit", float(limit)),
                ("delta", float(delta)),
                ("dtype", ident(dtype)),
            ],
        )
    };
    check(&range(0.0, 10.0, 3.0, "i64"), &[], &["i64[4]"]);
    check(&range(10.0, 0.0, -3.0, "i32"), &[], &["i32[4]"]);
    check(&range(1.0, 0.0, 1.0, "f32"), &[], &["f32[0]"]);
    check(&range(0.0, 2.5, 0.5, "f32"), &[], &["f32[5]"]);
    check(&range(0.0, 1.0, 0.3, "f64"), &[], &["f64[4]"]);
    check(&range(-3.0, 3.0, 2.0, "i64"), &[], &["i64[3]"]);
    check_err(
        &range(0.5, 3.0, 1.0, "i64"),
        &[],
        &["attribute `start` must be representable as i64, got 0.5"],
    );
    check_err(
        &range(0.0, 3.0, 0.0, "f32"),
        &[],
        &["attribute `delta` must not be 0"],
    );
    check_err(
        &range(0.0, 3.0, 1.0, "bool"),
        &[],
        &["attribute `dtype` must be f32, f64, i32 or i64, got bool"],
    );
    check_err(
        &range(0.0, f64::INFINITY, 1.0, "f64"),
        &[],
        &["must be finite"],
    );

    check(&op("shape", &[]), &["f32[batch,3,h,w]"], &["i64[4]"]);
    check(
        &op("shape", &[("start", int(1)), ("end", int(-1))]),
        &["f32[batch,3,h,w]"],
        &["i64[2]"],
    );
    check(
        &op("shape", &[("start", int(-10))]),
        &["bool[batch,3]"],
        &["i64[2]"],
    );
    check(
        &op("shape", &[("start", int(3)), ("end", int(1))]),
        &["f32[batch,3,h,w]"],
        &["i64[0]"],
    );
    check(&op("shape", &[]), &["f32[]"], &["i64[0]"]);

    check(
        &op(
            "constant_of_shape",
            &[
                ("shape", ints(&[2, 3])),
                ("value", float(7.0)),
                ("dtype", ident("i64")),
            ],
        ),
        &[],
        &["i64[2,3]"],
    );
    check(
        &op(
            "constant_of_shape",
            &[
                ("shape", ints(&[])),
                ("value", float(1.0)),
                ("dtype", ident("bool")),
            ],
        ),
        &[],
        &["bool[]"],
    );
    check_err(
        &op(
            "constant_of_shape",
            &[
                ("shape", ints(&[2])),
                ("value", float(0.5)),
                ("dtype", ident("i64")),
            ],
        ),
        &[],
        &["attribute `value` must be representable as i64"],
    );
    check_err(
        &op("constant_of_shape", &[("shape", ints(&[-2]))]),
        &[],
        &["attribute `shape` must be at least 0, got -2"],
    );
}

// ---- recurrent ----

#[test]
fn lstm_layouts_and_directions() {
    let lstm = op("lstm", &[("hidden_size", int(8))]);
    check(
        &lstm,
        &[
            "f32[seq,batch,16]",
            "f32[1,32,16]",
            "f32[1,32,8]",
            "f32[1,64]",
            "i32[batch]",
            "f32[1,batch,8]",
            "f32[1,batch,8]",
            "f32[1,24]",
        ],
        &["f32[seq,1,batch,8]", "f32[1,batch,8]", "f32[1,batch,8]"],
    );
    let batch_first = op(
        "lstm",
        &[
            ("hidden_size", int(8)),
            ("layout", int(1)),
            ("direction", ident("bidirectional")),
        ],
    );
    check(
        &batch_first,
        &[
            "f32[batch,seq,16]",
            "f32[2,32,16]",
            "f32[2,32,8]",
            "_",
            "_",
            "f32[batch,2,8]",
        ],
        &["f32[batch,seq,2,8]", "f32[batch,2,8]", "f32[batch,2,8]"],
    );
    check_err(
        &lstm,
        &["f32[seq,batch,16]", "f32[1,16,16]", "f32[1,32,8]"],
        &["input `w` must have 32 (4 gates * hidden_size) at axis 1, got 16"],
    );
    check_err(
        &lstm,
        &["f32[seq,batch,16]", "f32[1,32,12]", "f32[1,32,8]"],
        &["input `w` must have 16 (the input size of `x`) at axis 2, got 12"],
    );
    check_err(
        &lstm,
        &["f32[seq,batch,16]", "f32[2,32,16]", "f32[2,32,8]"],
        &["must have 1 (the number of directions) at axis 0, got 2"],
    );
    check_err(
        &lstm,
        &[
            "f32[seq,batch,16]",
            "f32[1,32,16]",
            "f32[1,32,8]",
            "f32[1,32]",
        ],
        &["input `b` must have 64 (2 * 4 gates * hidden_size)"],
    );
    check_err(
        &lstm,
        &[
            "f32[seq,batch,16]",
            "f32[1,32,16]",
            "f32[1,32,8]",
            "_",
            "f32[batch]",
        ],
        &["input `sequence_lens` must be an index dtype (i64, i32), got f32"],
    );
    check_err(
        &lstm,
        &[
            "f32[seq,batch,16]",
            "f32[1,32,16]",
            "f32[1,32,8]",
            "_",
            "_",
            "f32[1,4,8]",
            "_",
            "f32[1,32]",
        ],
        &["input `p` must have 24 (3 peepholes * hidden_size)"],
    );
    check_err(
        &op("lstm", &[("hidden_size", int(8)), ("layout", int(2))]),
        &["f32[seq,batch,16]", "f32[1,32,16]", "f32[1,32,8]"],
        &["attribute `layout` must be 0 or 1, got 2"],
    );
    check_err(
        &op("lstm", &[("hidden_size", int(0))]),
        &["f32[seq,batch,16]", "f32[1,0,16]", "f32[1,0,0]"],
        &["attribute `hidden_size` must be at least 1"],
    );
}

#[test]
fn rnn_and_gru() {
    let gru = op(
        "gru",
        &[
            ("hidden_size", int(8)),
            ("direction", ident("bidirectional")),
            ("layout", int(1)),
        ],
    );
    check(
        &gru,
        &[
            "f32[batch,seq,16]",
            "f32[2,24,16]",
            "f32[2,24,8]",
            "f32[2,48]",
            "_",
            "f32[batch,2,8]",
        ],
        &["f32[batch,seq,2,8]", "f32[batch,2,8]"],
    );
    // In layout 1 the initial state is batch first.
    check_err(
        &gru,
        &[
            "f32[4,seq,16]",
            "f32[2,24,16]",
            "f32[2,24,8]",
            "_",
            "_",
            "f32[2,4,8]",
        ],
        &["input `initial_h` must have 2 (the number of directions) at axis 1, got 4"],
    );
    let rnn = op(
        "rnn",
        &[("hidden_size", int(8)), ("direction", ident("reverse"))],
    );
    check(
        &rnn,
        &["f64[seq,3,16]", "f64[1,8,16]", "f64[1,8,8]"],
        &["f64[seq,1,3,8]", "f64[1,3,8]"],
    );
    check_err(
        &rnn,
        &["f64[seq,3,16]", "f64[1,16,16]", "f64[1,8,8]"],
        &["input `w` must have 8 (1 gates * hidden_size) at axis 1, got 16"],
    );
    check_err(
        &rnn,
        &["f64[seq,3,16]", "f32[1,8,16]", "f64[1,8,8]"],
        &["input `w` must be f64 (the dtype of `x`)"],
    );
    check_err(
        &rnn,
        &["i32[seq,3,16]", "i32[1,8,16]", "i32[1,8,8]"],
        &["must be a float dtype"],
    );
    let bad_acts = op(
        "rnn",
        &[
            ("hidden_size", int(8)),
            (
                "activations",
                AttrValue::Idents(vec!["relu".into(), "tanh".into()]),
            ),
        ],
    );
    check_err(
        &bad_acts,
        &["f32[seq,3,16]", "f32[1,8,16]", "f32[1,8,8]"],
        &["attribute `activations` must have 1 entries (1 per direction), got 2"],
    );
    let clip = op("gru", &[("hidden_size", int(8)), ("clip", float(-1.0))]);
    check_err(
        &clip,
        &["f32[seq,3,16]", "f32[1,24,16]", "f32[1,24,8]"],
        &["attribute `clip` must be positive"],
    );
}

// ---- graph building ----

#[test]
fn add_op_inferred_builds_typed_nodes() {
    let mut graph = Graph::new("g");
    let x = graph.add_input("x", ty("f32[batch,1,28,28]")).unwrap();
    let w = graph
        .add_const("w", sinter_ir::Tensor::zeros(DType::F32, vec![6, 1, 5, 5]))
        .unwrap();
    let conv = graph
        .add_op_inferred(op("conv", &[]), &[Some(x), Some(w)], Some("conv1".into()))
        .unwrap();
    assert_eq!(conv.len(), 1);
    assert_eq!(graph.value_type(conv[0]), &ty("f32[batch,6,24,24]"));
    let halves = graph
        .add_op_inferred(
            op("split", &[("split", ints(&[3, 3])), ("axis", int(1))]),
            &[Some(conv[0])],
            None,
        )
        .unwrap();
    assert_eq!(halves.len(), 2);
    assert_eq!(graph.value_type(halves[1]), &ty("f32[batch,3,24,24]"));
    assert_eq!(graph.node(halves[0].node).label, None);

    let err = graph
        .add_op_inferred(op("exp", &[]), &[Some(w), Some(w)], Some("e".into()))
        .unwrap_err();
    assert!(matches!(err, BuildError::Infer { .. }));
    assert_eq!(
        err.to_string(),
        "exp node `e`: expects exactly 1 inputs, got 2"
    );
    let err = graph
        .add_op_inferred(op("matmul", &[]), &[Some(conv[0]), Some(w)], None)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("matmul node: the contracted dims"),
        "{err}"
    );

    let missing = sinter_ir::Value::new(conv[0].node, 5);
    let err = graph
        .add_op_inferred(op("relu", &[]), &[Some(missing)], Some("r".into()))
        .unwrap_err();
    assert!(matches!(err, BuildError::Graph { .. }), "{err:?}");
    assert!(err.to_string().starts_with("relu node `r`: value"), "{err}");
    let n_nodes = graph.node_count();
    assert_eq!(n_nodes, 4, "failed builds add no node");
}

#[test]
fn rules_shared_with_the_reference_interpreter() {
    // Pool pads must be smaller than the kernel, as onnxruntime and sinter-ref require.
    let pool = op(
        "max_pool",
        &[
            ("kernel_shape", ints(&[2, 2])),
            ("pads", ints(&[0, 2, 0, 0])),
        ],
    );
    check_err(&pool, &["f32[1,1,8,8]"], &["attribute `pads` must be smaller than the kernel size 2 of spatial axis 1, got 2 and 0"]);
    // gather_elements indices may be smaller than data off the gather axis, never larger.
    let ge = op("gather_elements", &[("axis", int(0))]);
    check(&ge, &["f32[3,4]", "i64[5,2]"], &["f32[5,2]"]);
    check_err(
        &ge,
        &["f32[3,4]", "i64[2,5]"],
        &["`indices` [2,5] must not exceed `data` [3,4] on axis 1"],
    );
    check(&ge, &["f32[3,n]", "i64[2,n]"], &["f32[2,n]"]);
    check_err(&ge, &["f32[3,n]", "i64[2,4]"], &["must not exceed"]);
    // A symbolic split axis is assumed to be the sum of the pieces, as ONNX assumes.
    let split = op("split", &[("split", ints(&[2, 2]))]);
    check(&split, &["f32[n,3]"], &["f32[2,3]", "f32[2,3]"]);
    // resize interpolates every numeric dtype but not bool; nearest copies any dtype.
    let resize = op(
        "resize",
        &[("sizes", ints(&[4])), ("mode", ident("linear"))],
    );
    check(&resize, &["u8[2]"], &["u8[4]"]);
    check_err(&resize, &["bool[2]"], &["must be a numeric dtype"]);
    let nearest = op("resize", &[("sizes", ints(&[4]))]);
    check(&nearest, &["bool[2]"], &["bool[4]"]);
    // sequence_lens may be i64 as well as ONNX's i32.
    let rnn = op("rnn", &[("hidden_size", int(4))]);
    check(
        &rnn,
        &["f32[5,2,3]", "f32[1,4,3]", "f32[1,4,4]", "_", "i64[2]"],
        &["f32[5,1,2,4]", "f32[1,2,4]"],
    );
    // attention's v shares q's dtype.
    let attn = op("attention", &[]);
    check_err(
        &attn,
        &["f32[1,2,3,4]", "f32[1,2,5,4]", "f64[1,2,5,6]"],
        &["input `v` must be f32 (the dtype of `q`)"],
    );
}

#[test]
fn no_input_or_attribute_makes_inference_panic() {
    // Every op, with each input in turn replaced by an unusual type: results may be errors, never
    // panics (overflowing arithmetic included, since tests run with overflow checks).
    let unusual = [
        "f32[]",
        "f32[0]",
        "i64[3]",
        "bool[1,1]",
        "f32[n,3,h,w]",
        "u8[18446744073709551615,2]",
        "i32[2,0,3]",
        "f64[1,1,1,1,1]",
    ];
    for (op, inputs, _) in valid_cases() {
        for slot_idx in 0..inputs.len() {
            for replacement in unusual {
                let mut replaced = inputs.clone();
                replaced[slot_idx] = replacement;
                let _ = infer(&op, &replaced);
            }
        }
        let _ = infer(&op, &[]);
        let _ = infer(&op, &["f32[2]"; 9]);
    }

    let (max, min) = (i64::MAX, i64::MIN);
    let huge = "f32[18446744073709551615,18446744073709551615]";
    let huge_3d = "f32[1,1,18446744073709551615]";
    let extremes: Vec<(Op, Vec<&str>)> = vec![
        (
            op(
                "conv",
                &[
                    ("strides", ints(&[max, max])),
                    ("dilations", ints(&[max, max])),
                    ("pads", ints(&[max; 4])),
                ],
            ),
            vec!["f32[1,1,4,4]", "f32[1,1,3,3]"],
        ),
        (
            op("conv", &[("dilations", ints(&[max]))]),
            vec![huge_3d, "f32[1,1,18446744073709551615]"],
        ),
        (
            op("conv", &[("group", int(max))]),
            vec![
                "f32[1,18446744073709551615,4,4]",
                "f32[1,18446744073709551615,3,3]",
            ],
        ),
        (
            op(
                "conv_transpose",
                &[
                    ("strides", ints(&[max])),
                    ("dilations", ints(&[max])),
                    ("output_padding", ints(&[max - 1])),
                ],
            ),
            vec![huge_3d, "f32[1,1,18446744073709551615]"],
        ),
        (
            op("conv_transpose", &[("pads", ints(&[max, max]))]),
            vec!["f32[1,1,4]", "f32[1,1,3]"],
        ),
        (
            op(
                "conv_transpose",
                &[("output_shape", ints(&[max])), ("group", int(max))],
            ),
            vec![huge_3d, "f32[1,18446744073709551615,3]"],
        ),
        (
            op(
                "max_pool",
                &[
                    ("kernel_shape", ints(&[max])),
                    ("strides", ints(&[max])),
                    ("pads", ints(&[max - 1, max - 1])),
                    ("ceil_mode", boolean(true)),
                ],
            ),
            vec![huge_3d],
        ),
        (
            op(
                "average_pool",
                &[("kernel_shape", ints(&[max])), ("dilations", ints(&[max]))],
            ),
            vec![huge_3d],
        ),
        (
            op("reshape", &[("shape", ints(&[max, max]))]),
            vec!["f32[2]"],
        ),
        (op("reshape", &[("shape", ints(&[-1, max]))]), vec![huge]),
        (
            op("reshape", &[("shape", ints(&[0, 0, -1]))]),
            vec!["f32[18446744073709551615,18446744073709551615,18446744073709551615]"],
        ),
        (op("flatten", &[("axis", int(min))]), vec![huge]),
        (
            op("flatten", &[("axis", int(1))]),
            vec!["f32[18446744073709551615,18446744073709551615,18446744073709551615]"],
        ),
        (op("tile", &[("repeats", ints(&[max, max]))]), vec![huge]),
        (
            op("expand", &[("shape", ints(&[max, max]))]),
            vec!["f32[1]"],
        ),
        (
            op(
                "slice",
                &[
                    ("starts", ints(&[min])),
                    ("ends", ints(&[max])),
                    ("steps", ints(&[min])),
                ],
            ),
            vec![huge],
        ),
        (
            op(
                "slice",
                &[
                    ("starts", ints(&[max])),
                    ("ends", ints(&[min])),
                    ("steps", ints(&[max])),
                ],
            ),
            vec![huge],
        ),
        (
            op("pad", &[("pads", ints(&[max, max, max, max]))]),
            vec![huge],
        ),
        (op("pad", &[("pads", ints(&[min, min]))]), vec!["f32[3]"]),
        (
            op(
                "resize",
                &[("scales", AttrValue::Floats(vec![3.4e38, 3.4e38]))],
            ),
            vec![huge],
        ),
        (
            op(
                "range",
                &[
                    ("start", float(-1e308)),
                    ("limit", float(1e308)),
                    ("delta", float(1e-300)),
                    ("dtype", ident("f64")),
                ],
            ),
            vec![],
        ),
        (
            op(
                "range",
                &[
                    ("start", float(i64::MIN as f64)),
                    ("limit", float(i64::MAX as f64)),
                    ("delta", float(1.0)),
                    ("dtype", ident("i64")),
                ],
            ),
            vec![],
        ),
        (
            op(
                "range",
                &[
                    ("start", float(0.0)),
                    ("limit", float(1e30)),
                    ("delta", float(1e-30)),
                    ("dtype", ident("f32")),
                ],
            ),
            vec![],
        ),
        (
            op("shape", &[("start", int(min)), ("end", int(max))]),
            vec![huge],
        ),
        (
            op("constant_of_shape", &[("shape", ints(&[max, max]))]),
            vec![],
        ),
        (
            op("concat", &[("axis", int(0))]),
            vec!["f32[18446744073709551615]"; 5],
        ),
        (op("split", &[("split", ints(&[max, max]))]), vec!["f32[3]"]),
        (
            op("lstm", &[("hidden_size", int(max))]),
            vec!["f32[1,1,1]", "f32[1,1,1]", "f32[1,1,1]"],
        ),
        (
            op(
                "attention",
                &[("q_num_heads", int(max)), ("kv_num_heads", int(max))],
            ),
            vec!["f32[1,1,18446744073709551615]"; 3],
        ),
        (
            op("unsqueeze", &[("axes", ints(&[min, max]))]),
            vec!["f32[2]"],
        ),
        (op("squeeze", &[("axes", ints(&[max]))]), vec!["f32[2]"]),
        (
            op("transpose", &[("perm", ints(&[max, min]))]),
            vec!["f32[2,2]"],
        ),
        (
            op("gather", &[("axis", int(min))]),
            vec!["f32[2]", "i64[2]"],
        ),
        (
            op("group_norm", &[("num_groups", int(max))]),
            vec!["f32[1,4,2]", "f32[4]", "f32[4]"],
        ),
        (op("lrn", &[("size", int(max))]), vec!["f32[1,4,2]"]),
        (op("reduce_sum", &[("axes", ints(&[min]))]), vec!["f32[2]"]),
        (op("arg_max", &[("axis", int(max))]), vec!["f32[2]"]),
        (
            op(
                "clip",
                &[
                    ("min", float(f64::INFINITY)),
                    ("max", float(f64::NEG_INFINITY)),
                ],
            ),
            vec!["i64[2]"],
        ),
    ];
    for (op, inputs) in &extremes {
        let _ = infer(op, inputs);
    }
    // Spot checks that extreme attributes are rejected rather than wrapped around: window
    // attributes beyond MAX_ATTR_SIZE, and shapes beyond MAX_ELEMENTS.
    let err = infer(&extremes[0].0, &extremes[0].1).unwrap_err();
    assert!(
        err.to_string()
            .contains("attribute `strides` must be at most 2147483648"),
        "{err}"
    );
    assert!(infer(&extremes[3].0, &extremes[3].1).is_err());
    assert!(infer(&extremes[20].0, &extremes[20].1).is_err());
    assert!(infer(&extremes[27].0, &extremes[27].1).is_err());
}

// ---- rules agreed with the reference interpreter and the spec ----
//
// One test per decision; `tests/infer_ref_agreement.rs` checks on random cases that the interpreter
// accepts exactly what these accept.

#[test]
fn erf_is_float_only() {
    check(&op("erf", &[]), &["f64[2]"], &["f64[2]"]);
    for dtype in ["i64", "i32", "i8", "u8", "bool"] {
        check_err(
            &op("erf", &[]),
            &[&format!("{dtype}[2]")],
            &["input `x` must be a float dtype (f32, f64)"],
        );
    }
}

#[test]
fn global_pools_need_rank_3_and_spatial_elements() {
    for name in ["global_average_pool", "global_max_pool"] {
        check(&op(name, &[]), &["f32[2,3,5]"], &["f32[2,3,1]"]);
        check_err(&op(name, &[]), &["f32[2,3]"], &["rank at least 3"]);
        check_err(
            &op(name, &[]),
            &["f32[2,3,4,0]"],
            &["spatial axis 1 of `x` [2,3,4,0] is empty"],
        );
    }
}

#[test]
fn normalization_parameters_have_the_dtype_of_x() {
    let bn = op("batch_norm", &[]);
    let c = "f64[3]";
    check(&bn, &["f64[2,3,4]", c, c, c, c], &["f64[2,3,4]"]);
    for slot_idx in 1..5 {
        let mut inputs = vec!["f64[2,3,4]", c, c, c, c];
        inputs[slot_idx] = "f32[3]";
        let name = ["x", "scale", "bias", "mean", "var"][slot_idx];
        check_err(
            &bn,
            &inputs,
            &[&format!(
                "input `{name}` must be f64 (the dtype of `x`), got f32"
            )],
        );
    }
    check_err(
        &op("rms_norm", &[]),
        &["f64[2,4]", "f32[4]"],
        &["input `scale` must be f64 (the dtype of `x`), got f32"],
    );
}

#[test]
fn layer_and_rms_norm_parameters_broadcast_to_the_normalized_dims() {
    let layer = op("layer_norm", &[("axis", int(1))]);
    let rms = op("rms_norm", &[("axis", int(1))]);
    for scale in ["f32[3,4]", "f32[4]", "f32[3,1]", "f32[]"] {
        check(&layer, &["f32[2,3,4]", scale, scale], &["f32[2,3,4]"]);
        check(&rms, &["f32[2,3,4]", scale], &["f32[2,3,4]"]);
    }
    // Broadcasting to all of x is not enough: the leading dims are not normalized.
    for scale in ["f32[2,3,4]", "f32[2,1,1]"] {
        check_err(
            &layer,
            &["f32[2,3,4]", scale],
            &["does not broadcast to the normalized shape [3,4]"],
        );
        check_err(
            &rms,
            &["f32[2,3,4]", scale],
            &["does not broadcast to the normalized shape [3,4]"],
        );
    }
    check_err(
        &layer,
        &["f32[2,3,4]", "f32[3,4]", "f32[2,3,4]"],
        &["input `bias` of shape [2,3,4] does not broadcast"],
    );
}

#[test]
fn recurrent_activation_lists_are_per_direction_and_positional() {
    let rnn = |direction: &str, activations: &[&str], alpha: &[f64]| {
        let idents = activations.iter().map(|a| a.to_string()).collect();
        op(
            "rnn",
            &[
                ("hidden_size", int(2)),
                ("direction", ident(direction)),
                ("activations", AttrValue::Idents(idents)),
                ("activation_alpha", AttrValue::Floats(alpha.to_vec())),
            ],
        )
    };
    let uni = ["f32[3,1,2]", "f32[1,2,2]", "f32[1,2,2]"];
    let bi = ["f32[3,1,2]", "f32[2,2,2]", "f32[2,2,2]"];
    check(
        &rnn("forward", &[], &[]),
        &uni,
        &["f32[3,1,1,2]", "f32[1,1,2]"],
    );
    check(
        &rnn("forward", &["leaky_relu"], &[0.1]),
        &uni,
        &["f32[3,1,1,2]", "f32[1,1,2]"],
    );
    check(
        &rnn("bidirectional", &["tanh", "relu"], &[]),
        &bi,
        &["f32[3,2,1,2]", "f32[2,1,2]"],
    );
    // One list shared by both directions is not accepted.
    check_err(
        &rnn("bidirectional", &["tanh"], &[]),
        &bi,
        &["attribute `activations` must have 2 entries (1 per direction), got 1"],
    );
    // alpha/beta: empty, or exactly one entry per listed activation.
    check_err(
        &rnn("bidirectional", &["tanh", "leaky_relu"], &[0.1]),
        &bi,
        &["attribute `activation_alpha` must be empty or have one entry per listed activation (2), got 1"],
    );
    check_err(
        &rnn("forward", &[], &[0.1]),
        &uni,
        &["attribute `activation_alpha` must be empty or have one entry per listed activation (0)"],
    );
    let lstm = op(
        "lstm",
        &[
            ("hidden_size", int(1)),
            (
                "activations",
                AttrValue::Idents(vec!["sigmoid".into(), "tanh".into()]),
            ),
        ],
    );
    check_err(
        &lstm,
        &["f32[1,1,1]", "f32[1,4,1]", "f32[1,4,1]"],
        &["must have 3 entries (3 per direction), got 2"],
    );
}

#[test]
fn resize_sizes_are_floor_of_f64_products() {
    let scaled = |scale: f64| op("resize", &[("scales", AttrValue::Floats(vec![scale]))]);
    // f32(0.7) = 0.699999988..., so 10 * it is 6.99999988 in f64 (it would round to 7 in f32).
    check(&scaled(0.7), &["f32[10]"], &["f32[6]"]);
    // Size 0 is allowed.
    check(&scaled(0.25), &["f32[3]"], &["f32[0]"]);
    check(&scaled(2.0), &["f32[0]"], &["f32[0]"]);
    // `sizes` on a symbolic axis gives that static size.
    let sized = |size: i64| op("resize", &[("sizes", ints(&[size]))]);
    check(&sized(5), &["f32[n]"], &["f32[5]"]);
    check(&sized(0), &["f32[0]"], &["f32[0]"]);
    check_err(
        &sized(3),
        &["f32[0]"],
        &["axis 0 is empty and cannot be resized to 3 elements"],
    );
    check_err(
        &scaled(3.4e38),
        &["f32[4]"],
        &["attribute `scales` make axis 0 of size 4 too large"],
    );
}

#[test]
fn range_counts_in_f64_from_the_attributes() {
    let range = |start: f64, limit: f64, delta: f64, dtype: &str| {
        op(
            "range",
            &[
                ("start", float(start)),
                ("limit", float(limit)),
                ("delta", float(delta)),
                ("dtype", ident(dtype)),
            ],
        )
    };
    // 1e-46 is 0 in f32, but the count uses the f64 attribute: ceil(1e-46 / 1) = 1.
    check(&range(0.0, 1e-46, 1.0, "f32"), &[], &["f32[1]"]);
    check(&range(0.0, 1.0, 0.1, "f32"), &[], &["f32[10]"]);
    check(&range(5.0, 0.0, 1.0, "i64"), &[], &["i64[0]"]);
    check_err(
        &range(0.0, 1.0, 0.0, "i32"),
        &[],
        &["attribute `delta` must not be 0"],
    );
    check_err(
        &range(0.0, 1e17, 1.0, "i64"),
        &[],
        &["gives 100000000000000000 elements, too many"],
    );
    check_err(
        &range(0.0, 2f64.powi(63), 1e18, "i64"),
        &[],
        &["attribute `limit` must be representable as i64"],
    );
    check_err(
        &range(0.0, 3.0, 1.0, "i8"),
        &[],
        &["attribute `dtype` must be f32, f64, i32 or i64, got i8"],
    );
}

#[test]
fn pool_pads_are_smaller_than_the_kernel() {
    for name in ["max_pool", "average_pool"] {
        let pool = |pads: &[i64]| {
            op(
                name,
                &[
                    ("kernel_shape", ints(&[3, 2])),
                    ("dilations", ints(&[2, 2])),
                    ("pads", ints(pads)),
                ],
            )
        };
        check(&pool(&[2, 1, 2, 1]), &["f32[1,1,6,6]"], &["f32[1,1,6,6]"]);
        // The bound is the kernel size, not the dilated extent.
        check_err(
            &pool(&[3, 0, 0, 0]),
            &["f32[1,1,6,6]"],
            &["attribute `pads` must be smaller than the kernel size 3 of spatial axis 0, got 3 and 0"],
        );
        check_err(
            &pool(&[0, 0, 0, 2]),
            &["f32[1,1,6,6]"],
            &["must be smaller than the kernel size 2 of spatial axis 1, got 0 and 2"],
        );
        check_err(
            &pool(&[1, 1, 1, 1]),
            &["f32[1,1,0,6]"],
            &["spatial axis 0 of `x` [1,1,0,6] is empty"],
        );
        // ONNX forbids pads together with auto_pad, and `valid` rounds down whatever ceil_mode says.
        let valid = |extra: &[(&str, AttrValue)]| {
            let mut attrs = vec![
                ("kernel_shape", ints(&[2])),
                ("strides", ints(&[2])),
                ("auto_pad", ident("valid")),
                ("ceil_mode", boolean(true)),
            ];
            attrs.extend(extra.iter().cloned());
            op(name, &attrs)
        };
        check(&valid(&[]), &["f32[1,1,5]"], &["f32[1,1,2]"]);
        check_err(
            &valid(&[("pads", ints(&[0, 0]))]),
            &["f32[1,1,5]"],
            &["attribute `pads` cannot be given together with auto_pad=valid"],
        );
    }
}

#[test]
fn a_symbol_meeting_a_static_size_is_that_size() {
    check(&op("add", &[]), &["f32[n]", "f32[3]"], &["f32[3]"]);
    check(
        &op("where", &[]),
        &["bool[n,1]", "f32[3,1]", "f32[4]"],
        &["f32[3,4]"],
    );
    check(&op("prelu", &[]), &["f32[n,3]", "f32[2,3]"], &["f32[n,3]"]);
    check(
        &op("expand", &[("shape", ints(&[2, 3]))]),
        &["f32[n,1]"],
        &["f32[2,3]"],
    );
    check(&op("matmul", &[]), &["f32[2,k]", "f32[3,4]"], &["f32[2,4]"]);
    check(
        &op("gemm", &[]),
        &["f32[m,k]", "f32[3,4]", "f32[n]"],
        &["f32[m,4]"],
    );
    check(
        &op("concat", &[("axis", int(1))]),
        &["f32[n,2]", "f32[3,5]"],
        &["f32[3,7]"],
    );
    // Two different symbols cannot be proven equal.
    check_err(
        &op("add", &[]),
        &["f32[n]", "f32[m]"],
        &["different symbols `n` and `m`"],
    );
    check_err(
        &op("concat", &[("axis", int(1))]),
        &["f32[n,2]", "f32[m,5]"],
        &["the symbols `n` and `m` cannot be proven equal"],
    );
    check_err(
        &op("matmul", &[]),
        &["f32[2,k]", "f32[j,4]"],
        &["the symbols `k` and `j` cannot be proven equal"],
    );
}

#[test]
fn dtype_sets_follow_onnx_type_constraints() {
    // neg: signed types; abs and sign: every numeric type.
    check(&op("neg", &[]), &["i8[2]"], &["i8[2]"]);
    check_err(&op("neg", &[]), &["u8[2]"], &["signed numeric dtype"]);
    for name in ["abs", "sign"] {
        check(&op(name, &[]), &["u8[2]"], &["u8[2]"]);
        check_err(&op(name, &[]), &["bool[2]"], &["numeric dtype"]);
    }
    // Arithmetic reductions: f32, f64, i32, i64; max/min also 8-bit integers and bool.
    for name in [
        "reduce_sum",
        "reduce_mean",
        "reduce_prod",
        "reduce_l1",
        "reduce_l2",
        "reduce_sum_square",
        "reduce_log_sum_exp",
    ] {
        check(&op(name, &[]), &["i32[2]"], &["i32[1]"]);
        for dtype in ["u8", "i8", "bool"] {
            check_err(
                &op(name, &[]),
                &[&format!("{dtype}[2]")],
                &["must be f32, f64, i32 or i64"],
            );
        }
    }
    for name in ["reduce_max", "reduce_min"] {
        for dtype in ["u8", "i8", "bool"] {
            check(
                &op(name, &[]),
                &[&format!("{dtype}[2]")],
                &[&format!("{dtype}[1]")],
            );
        }
    }
    // matmul, gemm, prelu and pow's base: f32, f64, i32, i64.
    for dtype in ["i8", "u8"] {
        let t = format!("{dtype}[2,2]");
        check_err(
            &op("matmul", &[]),
            &[&t, &t],
            &["must be f32, f64, i32 or i64"],
        );
        check_err(
            &op("gemm", &[]),
            &[&t, &t],
            &["must be f32, f64, i32 or i64"],
        );
        check_err(
            &op("prelu", &[]),
            &[&t, &t],
            &["must be f32, f64, i32 or i64"],
        );
        check_err(
            &op("pow", &[]),
            &[&t, "f32[]"],
            &["must be f32, f64, i32 or i64"],
        );
    }
    check(&op("pow", &[]), &["i32[2]", "u8[]"], &["i32[2]"]);
    // max_pool: floats and 8-bit integers.
    let pool = op("max_pool", &[("kernel_shape", ints(&[2]))]);
    check(&pool, &["i8[1,1,4]"], &["i8[1,1,3]"]);
    check_err(&pool, &["i64[1,1,4]"], &["must be f32, f64, i8 or u8"]);
}

#[test]
fn other_rules_agreed_with_the_interpreter() {
    // lrn only needs [N, C].
    check(
        &op("lrn", &[("size", int(3))]),
        &["f32[2,5]"],
        &["f32[2,5]"],
    );
    // arg_max/arg_min of an empty axis has no index to return.
    check_err(
        &op("arg_min", &[("axis", int(1))]),
        &["f32[3,0]"],
        &["axis 1 of [3,0] is empty, so it has no extreme"],
    );
    check(
        &op("arg_min", &[("axis", int(0))]),
        &["f32[3,0]"],
        &["i64[1,0]"],
    );
    // An integer mean over an empty axis has no value, unless there is no group at all.
    let mean = op("reduce_mean", &[("axes", ints(&[1]))]);
    check_err(
        &mean,
        &["i32[3,0]"],
        &["the i32 mean over an empty axis of [3,0] has no value"],
    );
    check(&mean, &["i32[0,0]"], &["i32[0,1]"]);
    check(&mean, &["i32[n,0]"], &["i32[n,1]"]);
    check(&mean, &["f32[3,0]"], &["f32[3,1]"]);
    // Indices are i32 or i64 only.
    check_err(
        &op("gather", &[]),
        &["f32[3]", "u8[2]"],
        &["input `indices` must be an index dtype (i64, i32), got u8"],
    );
    // transpose's perm has no negative entries.
    check_err(
        &op("transpose", &[("perm", ints(&[-1, 0]))]),
        &["f32[2,3]"],
        &["must be a permutation of 0..2"],
    );
    // pad crops first: a crop larger than the axis is an error even if a pad on the other side
    // would make up for it, and the non-constant modes need elements left to extend.
    check_err(
        &op("pad", &[("pads", ints(&[3, -2]))]),
        &["f32[1]"],
        &["crops axis 0 of size 1 by more than its size (3, -2)"],
    );
    check(
        &op("pad", &[("pads", ints(&[3, -1]))]),
        &["f32[1]"],
        &["f32[3]"],
    );
    check_err(
        &op("pad", &[("pads", ints(&[1, -2])), ("mode", ident("edge"))]),
        &["f32[2]"],
        &["axis 0 is empty after cropping, so it cannot be padded in edge mode"],
    );
    check_err(
        &op("pad", &[("pads", ints(&[1, 0])), ("value", float(0.5))]),
        &["i32[2]"],
        &["attribute `value` must be representable as i32, got 0.5"],
    );
    check_err(
        &op(
            "constant_of_shape",
            &[
                ("shape", ints(&[2])),
                ("value", float(300.0)),
                ("dtype", ident("u8")),
            ],
        ),
        &[],
        &["attribute `value` must be representable as u8, got 300"],
    );
    // attention's operands are all 4-d or all 3-d.
    check_err(
        &op(
            "attention",
            &[("q_num_heads", int(1)), ("kv_num_heads", int(1))],
        ),
        &["f32[1,2,4]", "f32[1,1,2,4]", "f32[1,1,2,4]"],
        &["input `k` must have rank 3 (the rank of `q`)"],
    );
}

#[test]
fn ir_limits_on_attributes_and_element_counts() {
    // Window attributes up to MAX_ATTR_SIZE are fine; beyond it they are rejected.
    let at_limit = sinter_ir::MAX_ATTR_SIZE;
    let pool = |stride: i64| {
        op(
            "max_pool",
            &[("kernel_shape", ints(&[1])), ("strides", ints(&[stride]))],
        )
    };
    check(&pool(at_limit), &["f32[1,1,5]"], &["f32[1,1,1]"]);
    check_err(
        &pool(at_limit + 1),
        &["f32[1,1,5]"],
        &["attribute `strides` must be at most 2147483648, got 2147483649"],
    );
    check_err(
        &op("pad", &[("pads", ints(&[-(at_limit + 1), 0]))]),
        &["f32[3]"],
        &["attribute `pads` entries must be within ±2147483648"],
    );
    check_err(
        &op("rnn", &[("hidden_size", int(at_limit + 1))]),
        &["f32[1,1,1]", "f32[1,1,1]", "f32[1,1,1]"],
        &["attribute `hidden_size` must be at most 2147483648"],
    );
    // An empty tensor may have large dims, as long as its non-zero dims multiply to at most
    // MAX_ELEMENTS, for inputs and outputs alike.
    check(
        &op(
            "constant_of_shape",
            &[("shape", ints(&[1 << 40, 0, 1 << 19]))],
        ),
        &[],
        &["f32[1099511627776,0,524288]"],
    );
    check_err(
        &op("constant_of_shape", &[("shape", ints(&[i64::MAX, 0]))]),
        &[],
        &["output 0 of type f32[9223372036854775807,0] has more than 1152921504606846975 elements"],
    );
    check_err(
        &op("relu", &[]),
        &["f32[0,18446744073709551615]"],
        &["input `x` of type f32[0,18446744073709551615] has more than"],
    );
}
