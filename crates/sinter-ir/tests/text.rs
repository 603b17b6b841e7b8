//! The `.sir` text format: exact round trips, canonical numbering, parse errors with positions, and
//! DOT export.

use sinter_ir::text::{
    parse_file, parse_graph, print_graph, print_graph_with_weights, ParseError, ParseOptions,
    PrintOptions,
};
use sinter_ir::{graphs_equal, to_dot, DType, Dim, Graph, Op, Shape, Tensor, TensorType, Value};
use std::path::{Path, PathBuf};

fn parse(src: &str) -> Graph {
    match parse_graph(src, &ParseOptions::default()) {
        Ok(graph) => graph,
        Err(err) => panic!("{}", err.render(src)),
    }
}

fn print(graph: &Graph) -> String {
    print_graph(graph, &PrintOptions::default())
}

/// parse -> print -> parse -> print: both prints are identical and both graphs are equal.
/// Returns the canonical text.
fn check_round_trip(src: &str) -> String {
    let first = parse(src);
    let text = print(&first);
    let second = parse(&text);
    assert!(
        graphs_equal(&first, &second),
        "graphs differ after a round trip:\n{text}"
    );
    assert_eq!(print(&second), text, "printing is not stable");
    text
}

fn parse_err(src: &str) -> ParseError {
    match parse_graph(src, &ParseOptions::default()) {
        Ok(graph) => panic!("expected a parse error, got\n{}", print(&graph)),
        Err(err) => err,
    }
}

/// Asserts the error's position and that its message contains `message`.
fn check_error(src: &str, line: usize, col: usize, message: &str) {
    let err = parse_err(src);
    assert_eq!(
        (err.line, err.col),
        (line, col),
        "position of: {}\n{}",
        err.message,
        err.render(src)
    );
    assert!(
        err.message.contains(message),
        "message `{}` lacks `{message}`",
        err.message
    );
}

fn f32_ty(dims: &[usize]) -> TensorType {
    TensorType::fixed(DType::F32, dims)
}

/// A fresh folder under the system temp folder, unique to this process and `tag`.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sinter-text-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// splitmix64: deterministic pseudo-random bits without a dependency.
struct Bits(u64);

impl Bits {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

// ---- round trips ----

/// Every syntax form in one graph, written in canonical form: printing it gives the same text back.
const CANONICAL: &str = r#"graph "every form" {
  input %x: f32[batch,3,4,4]
  input %"input:0": f32["seq len",2]
  input %"0": i64[]
  input %seq: f32[4,1,2]
  input %h0: f32[1,1,1]
  const @w: f32[3,3,1,1] = [1.0, -0.0, 0.5, 1e-45, -3.4028235e38, 7.038530691851209e-26, inf, -inf, nan]
  const @"b:0": f32[3] = [nan32(0x7fc00001), nan32(0xffc00000), 0.1]
  const @W: f32[1,4,2] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
  const @R: f32[1,4,1] = [-1.0, -2.0, -3.0, -4.0]
  const @mask: bool[2,1] = [true, false]
  const @d: f64[2,2] = [0.1, -0.0, 5e-324, nan(0x7ff0000000000001)]
  const @i64s: i64[3] = [-9223372036854775808, 0, 9223372036854775807]
  const @i32s: i32[2] = [-2147483648, 2147483647]
  const @i8s: i8[2] = [-128, 127]
  const @u8s: u8[2] = [0, 255]
  const @empty: f32[0,3] = []
  const @unused: f64[] = [2.5]
  %0: f32[batch,3,4,4] = conv(%x, @w, @"b:0") {strides=[1,1], pads=[0,0,0,0]} loc("conv \"1\"")
  %1: f32[batch,3,4,4] = leaky_relu(%0) {alpha=0.2}
  %2: f32[batch,1,4,4], %3: f32[batch,2,4,4] = split(%1) {split=[1,2], axis=1}
  %4: f32["seq len",2] = clip(%"input:0") {min=-1.5, max=nan(0x7ff8000000000002)}
  %5: f64[2,2] = cast(%"0") {to=f64}
  %6: f32[4,1,1,1], %7: f32[1,1,1], %8: f32[1,1,1] = lstm(%seq, @W, @R, _, _, %h0) {hidden_size=1, activations=[sigmoid,tanh,relu], activation_alpha=[0.5,nan32(0x7fc00005)]} loc("")
  %9: f32[5] = range() {start=0.0, limit=5.0, delta=1.0, dtype=f32}
  %10: bool[2,1] = not(@mask)
  output y = %3
  output "prob:0" = %2
  output same = %2
  output clipped = %4
  output w = @w
  output raw = %x
  output casted = %5
  output h = %7
  output r = %9
  output n = %10
}
"#;

#[test]
fn canonical_text_prints_back_unchanged() {
    let text = check_round_trip(CANONICAL);
    assert_eq!(text, CANONICAL);
}

#[test]
fn parsed_values_are_exact() {
    let graph = parse(CANONICAL);
    let tensor = |name: &str| {
        graph
            .node_ids()
            .find_map(|id| match &graph.node(id).kind {
                sinter_ir::NodeKind::Const { name: n, value } if n == name => Some(value.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no const {name}"))
    };
    let w: Vec<u32> = tensor("w")
        .as_slice::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect();
    assert_eq!(
        w,
        [
            0x3f80_0000,
            0x8000_0000,
            0x3f00_0000,
            0x0000_0001,
            0xff7f_ffff,
            0x15ae_43fd,
            0x7f80_0000,
            0xff80_0000,
            0x7fc0_0000
        ]
    );
    // The shortest f32 form of 0x15ae43fd double-rounds through f64; the parser reads f32 directly.
    let short = parse("graph g {\n  const @v: f32[] = [7.038531e-26]\n}\n");
    let printed = print(&short);
    assert!(printed.contains("[7.038530691851209e-26]"), "{printed}");
    assert!(graphs_equal(&short, &parse(&printed)));
    let b: Vec<u32> = tensor("b:0")
        .as_slice::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect();
    assert_eq!(b, [0x7fc0_0001, 0xffc0_0000, 0.1f32.to_bits()]);
    let d: Vec<u64> = tensor("d")
        .as_slice::<f64>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect();
    assert_eq!(
        d,
        [
            0.1f64.to_bits(),
            0x8000_0000_0000_0000,
            1,
            0x7ff0_0000_0000_0001
        ]
    );
    assert_eq!(tensor("i8s").as_slice::<i8>().unwrap(), [-128, 127]);
    assert_eq!(tensor("mask").as_slice::<bool>().unwrap(), [true, false]);
    assert_eq!(tensor("empty").shape(), [0, 3]);
    assert_eq!(tensor("unused").shape(), [] as [usize; 0]);

    let (name, ty) = graph.input_signature()[1];
    assert_eq!(name, "input:0");
    assert_eq!(ty.shape, Shape(vec![Dim::sym("seq len"), Dim::Static(2)]));
    assert_eq!(graph.input_signature()[2].0, "0");
    assert_eq!(graph.name, "every form");
    let labels: Vec<Option<String>> = graph
        .node_ids()
        .filter(|&id| graph.node(id).op().is_some())
        .map(|id| graph.node(id).label.clone())
        .filter(Option::is_some)
        .collect();
    assert_eq!(
        labels,
        [Some("conv \"1\"".to_string()), Some(String::new())]
    );
    let lstm = graph
        .node_ids()
        .find(|&id| graph.node(id).op().is_some_and(|op| op.name() == "lstm"))
        .unwrap();
    let inputs = graph.node_inputs(lstm);
    assert_eq!(inputs.len(), 6);
    assert!(inputs[3].is_none() && inputs[4].is_none() && inputs[5].is_some());
    match graph.node(lstm).op() {
        Some(Op::Lstm {
            activation_alpha, ..
        }) => {
            assert_eq!(activation_alpha[1].to_bits(), 0x7fc0_0005);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hand_written_forms_normalize() {
    // Unnumbered and out-of-order names, whitespace, comments, ints in float tensors, default attrs
    // written explicitly, items interleaved: all normalize to the canonical form.
    let src = r#"
        ; leading comment
        graph g{ input %a : f32[ 2 ] ; trailing comment
          const @k: f32[2] = [1, 2]
          %sum: f32[2] = add(%a, @k) {} ; no attributes
          output out = %sum
          %prod: f32[2] = mul(%sum, %a)
          %lr: f32[2] = leaky_relu(%prod) {alpha=0.01}
          output "out 2" = %lr
        }
        ; after the graph
    "#;
    let text = check_round_trip(src);
    assert_eq!(
        text,
        "graph g {\n  input %a: f32[2]\n  const @k: f32[2] = [1.0, 2.0]\n  %0: f32[2] = add(%a, @k)\n  \
         %1: f32[2] = mul(%0, %a)\n  %2: f32[2] = leaky_relu(%1)\n  output out = %0\n  output \"out 2\" = %2\n}\n"
    );
}

#[test]
fn attribute_kinds_round_trip() {
    let src = r#"graph attrs {
  input %x: f32[1,2,8,8]
  input %s: f32[4]
  %0: f32[1,2,4,4] = max_pool(%x) {kernel_shape=[2,2], strides=[2,2], auto_pad=same_upper, ceil_mode=true}
  %1: f32[1,2,4,4] = gelu(%0) {approximate=tanh}
  %2: f32[1,2,8,8] = resize(%1) {mode=linear, coordinate_transformation_mode=align_corners, scales=[1.0,1.0,2.0,2.0]}
  %3: f32[1,2,8,8] = pad(%2) {pads=[0,0,1,1,0,0,-1,-1], mode=reflect, value=-0.0}
  %4: f32[1,2,8,8] = selu(%3) {alpha=1e-45, gamma=-3.4028235e38}
  %5: f32[4] = shape(%4) {start=-2, end=9223372036854775807}
  %6: f32[4] = clip(%s) {min=5e-324}
  %7: f32[1,2,8,8] = attention(%4, %4, %4) {scale=nan32(0xff800001), causal=true}
  output a = %7
  output b = %5
  output c = %6
}
"#;
    let text = check_round_trip(src);
    // `value=-0.0` differs bitwise from its default `0.0`, so it is printed and keeps its sign.
    for piece in [
        "value=-0.0",
        "auto_pad=same_upper, ceil_mode=true",
        "{approximate=tanh}",
        "scales=[1.0,1.0,2.0,2.0]",
        "{alpha=1e-45, gamma=-3.4028235e38}",
        "end=9223372036854775807",
        "{min=5e-324}",
        "{scale=nan32(0xff800001), causal=true}",
    ] {
        assert!(text.contains(piece), "missing `{piece}` in\n{text}");
    }
}

#[test]
fn fused_ops_round_trip_with_their_attributes() {
    let src = r#"graph fused {
  input %x: f32[1,2,8,8]
  input %z: f32[1,4,8,8]
  input %a: f32[3,5]
  input %w: f32[4,2,3,3]
  input %m: f32[5,6]
  input %w2: f32[4,2,3,3]
  const @b: f32[4] = [1.0,2.0,3.0,4.0]
  %0: f32[1,4,8,8] = fused_conv(%x, %w, _, %z) {pads=[1,1,1,1], activation=clip, activation_params=[-inf,6.0]}
  %1: f32[1,4,4,4] = conv_pool(%0, %w2, @b) {pads=[1,1,1,1], group=2, activation=leaky_relu, activation_params=[0.1], pool=average, pool_kernel_shape=[3,3], pool_strides=[2,2], pool_pads=[1,1,1,1], pool_ceil_mode=true, count_include_pad=true}
  %2: f32[3,6] = fused_matmul(%a, %m) {activation=gelu_tanh}
  %3: f32[3,6] = silu(%2)
  output y = %1
  output v = %3
}
"#;
    let text = check_round_trip(src);
    for piece in [
        "fused_conv(%x, %w, _, %z) {pads=[1,1,1,1], activation=clip, activation_params=[-inf,6.0]}",
        "{pads=[1,1,1,1], group=2, activation=leaky_relu, activation_params=[0.1], pool=average, pool_kernel_shape=[3,3], pool_strides=[2,2], pool_pads=[1,1,1,1], pool_ceil_mode=true, count_include_pad=true}",
        "fused_matmul(%a, %m) {activation=gelu_tanh}",
        "= silu(",
    ] {
        assert!(text.contains(piece), "missing `{piece}` in\n{text}");
    }
    // The attribute a conv_pool cannot do without.
    check_error(
        "graph g {\n  input %x: f32[1,1,4,4]\n  input %w: f32[1,1,1,1]\n  %0: f32[1,1,2,2] = conv_pool(%x, %w) {pool=max}\n  output y = %0\n}\n",
        4,
        22,
        "pool_kernel_shape",
    );
}

#[test]
fn random_float_bits_round_trip_bitwise() {
    let mut bits = Bits(0x5eed);
    let n = 4096;
    // Random patterns include NaNs with payloads, subnormals and both zeros; add the known
    // double-rounding case explicitly.
    let mut f32s: Vec<f32> = (0..n).map(|_| f32::from_bits(bits.next() as u32)).collect();
    f32s[0] = f32::from_bits(0x15ae_43fd);
    f32s[1] = f32::from_bits(0x8000_0001);
    let f64s: Vec<f64> = (0..n).map(|_| f64::from_bits(bits.next())).collect();
    let mut graph = Graph::new("bits");
    let a = graph
        .add_const("a", Tensor::from_vec(vec![n], f32s.clone()).unwrap())
        .unwrap();
    let b = graph
        .add_const("b", Tensor::from_vec(vec![n / 2, 2], f64s.clone()).unwrap())
        .unwrap();
    graph.add_output("a", a).unwrap();
    graph.add_output("b", b).unwrap();
    // Attributes too: f32 ones go through `parse::<f64>() as f32`, f64 ones through `parse::<f64>()`.
    let x = graph.add_input("x", f32_ty(&[2])).unwrap();
    for idx in 0..64 {
        let alpha = f32::from_bits(bits.next() as u32);
        let min = f64::from_bits(bits.next());
        let node = graph
            .add_op(
                Op::LeakyRelu { alpha },
                &[Some(x)],
                vec![f32_ty(&[2])],
                None,
            )
            .unwrap();
        let clip = Op::Clip {
            min: Some(min),
            max: None,
        };
        let node = graph
            .add_op(clip, &[Some(Value::new(node, 0))], vec![f32_ty(&[2])], None)
            .unwrap();
        graph
            .add_output(format!("o{idx}"), Value::new(node, 0))
            .unwrap();
    }
    let text = print(&graph);
    let parsed = parse(&text);
    assert!(graphs_equal(&graph, &parsed));
    assert_eq!(print(&parsed), text);

    let original_ops: Vec<Op> = graph
        .node_ids()
        .filter_map(|id| graph.node(id).op().cloned())
        .collect();
    let parsed_ops: Vec<Op> = parsed
        .node_ids()
        .filter_map(|id| parsed.node(id).op().cloned())
        .collect();
    for (before, after) in original_ops.iter().zip(&parsed_ops) {
        match (before, after) {
            (Op::LeakyRelu { alpha: x }, Op::LeakyRelu { alpha: y }) => {
                assert_eq!(x.to_bits(), y.to_bits())
            }
            (Op::Clip { min: Some(x), .. }, Op::Clip { min: Some(y), .. }) => {
                assert_eq!(x.to_bits(), y.to_bits())
            }
            other => panic!("ops out of order: {other:?}"),
        }
    }
}

#[test]
fn scalar_and_empty_consts_of_every_dtype() {
    let mut graph = Graph::new("scalars");
    for (idx, tensor) in [
        Tensor::scalar(1.5f32),
        Tensor::scalar(-2.25f64),
        Tensor::scalar(i64::MIN),
        Tensor::scalar(i32::MAX),
        Tensor::scalar(-7i8),
        Tensor::scalar(200u8),
        Tensor::scalar(true),
    ]
    .into_iter()
    .enumerate()
    {
        let dtype = tensor.dtype();
        let value = graph.add_const(format!("s{idx}"), tensor).unwrap();
        graph.add_output(format!("s{idx}"), value).unwrap();
        let empty = graph
            .add_const(format!("e{idx}"), Tensor::zeros(dtype, vec![2, 0]))
            .unwrap();
        graph.add_output(format!("e{idx}"), empty).unwrap();
    }
    let text = print(&graph);
    assert!(text.contains("const @s0: f32[] = [1.5]\n"), "{text}");
    assert!(text.contains("const @s6: bool[] = [true]\n"), "{text}");
    assert!(text.contains("const @e5: u8[2,0] = []\n"), "{text}");
    assert!(graphs_equal(&graph, &parse(&text)));
}

#[test]
fn op_without_results_and_without_inputs_round_trip() {
    // A split into zero parts has no results; it is printed as a bare call. The verifier rejects it,
    // but the printer and parser still round-trip it.
    let mut graph = Graph::new("odd");
    let x = graph.add_input("x", f32_ty(&[2])).unwrap();
    graph
        .add_op(
            Op::Split {
                split: vec![],
                axis: 0,
            },
            &[Some(x)],
            vec![],
            None,
        )
        .unwrap();
    let shape = Op::ConstantOfShape {
        shape: vec![2],
        value: 1.0,
        dtype: DType::F32,
    };
    let node = graph.add_op(shape, &[], vec![f32_ty(&[2])], None).unwrap();
    graph.add_output("y", Value::new(node, 0)).unwrap();
    let text = print(&graph);
    assert!(text.contains("  split(%x) {split=[]}\n"), "{text}");
    assert!(
        text.contains("= constant_of_shape() {shape=[2], value=1.0}\n"),
        "{text}"
    );
    let parsed = parse(&text);
    assert!(graphs_equal(&graph, &parsed));
    assert_eq!(print(&parsed), text);
}

// ---- canonical numbering ----

/// x -> relu -> a, x -> exp -> b, add(a, b); the two branches inserted in `order`, with a dead node
/// inserted and removed first when `with_hole`.
fn diamond(relu_first: bool, with_hole: bool) -> Graph {
    let ty = f32_ty(&[2]);
    let mut graph = Graph::new("diamond");
    let x = graph.add_input("x", ty.clone()).unwrap();
    if with_hole {
        let dead = graph
            .add_op(Op::Neg {}, &[Some(x)], vec![ty.clone()], None)
            .unwrap();
        graph.remove_node(dead);
    }
    let relu = |g: &mut Graph| {
        g.add_op(Op::Relu {}, &[Some(x)], vec![ty.clone()], None)
            .unwrap()
    };
    let exp = |g: &mut Graph| {
        g.add_op(Op::Exp {}, &[Some(x)], vec![ty.clone()], Some("e".into()))
            .unwrap()
    };
    let (a, b) = if relu_first {
        let a = relu(&mut graph);
        (a, exp(&mut graph))
    } else {
        let b = exp(&mut graph);
        (relu(&mut graph), b)
    };
    let k = graph
        .add_const("k", Tensor::from_vec(vec![2], vec![1.0f32, 2.0]).unwrap())
        .unwrap();
    let sum = graph
        .add_op(
            Op::Add {},
            &[Some(Value::new(a, 0)), Some(Value::new(b, 0))],
            vec![ty.clone()],
            None,
        )
        .unwrap();
    let out = graph
        .add_op(
            Op::Mul {},
            &[Some(Value::new(sum, 0)), Some(k)],
            vec![ty],
            None,
        )
        .unwrap();
    graph.add_output("y", Value::new(out, 0)).unwrap();
    graph
}

#[test]
fn printing_numbers_values_canonically() {
    let in_order = diamond(true, false);
    let expected = "graph diamond {\n  input %x: f32[2]\n  const @k: f32[2] = [1.0, 2.0]\n  \
                    %0: f32[2] = relu(%x)\n  %1: f32[2] = exp(%x) loc(\"e\")\n  %2: f32[2] = add(%0, %1)\n  \
                    %3: f32[2] = mul(%2, @k)\n  output y = %3\n}\n";
    assert_eq!(print(&in_order), expected);
    for (relu_first, with_hole) in [(false, false), (true, true), (false, true)] {
        let scrambled = diamond(relu_first, with_hole);
        assert_eq!(
            print(&scrambled),
            expected,
            "relu_first={relu_first} with_hole={with_hole}"
        );
        assert!(graphs_equal(&in_order, &scrambled));
    }
}

#[test]
fn graphs_equal_sees_differences() {
    let base = diamond(true, false);
    let mut renamed = base.clone();
    renamed.name = "other".into();
    assert!(!graphs_equal(&base, &renamed));

    let relabelled = parse(&print(&base).replace("loc(\"e\")", "loc(\"f\")"));
    assert!(!graphs_equal(&base, &relabelled));
    let swapped = parse(&print(&base).replace("add(%0, %1)", "add(%1, %0)"));
    assert!(!graphs_equal(&base, &swapped));
    let new_data = parse(&print(&base).replace("[1.0, 2.0]", "[1.0, -0.0]"));
    assert!(!graphs_equal(&base, &new_data));
    let zero = parse(&print(&base).replace("[1.0, 2.0]", "[1.0, 0.0]"));
    assert!(
        !graphs_equal(&new_data, &zero),
        "-0.0 and 0.0 differ bitwise"
    );
    let retyped = parse(&print(&base).replace("%2: f32[2]", "%2: f32[n]"));
    assert!(!graphs_equal(&base, &retyped));
    assert!(graphs_equal(&base, &parse(&print(&base))));
}

#[test]
fn a_cycle_prints_without_panicking() {
    let ty = f32_ty(&[2]);
    let mut graph = Graph::new("loop");
    let x = graph.add_input("x", ty.clone()).unwrap();
    let a = graph
        .add_op(Op::Relu {}, &[Some(x)], vec![ty.clone()], None)
        .unwrap();
    let b = graph
        .add_op(Op::Exp {}, &[Some(Value::new(a, 0))], vec![ty], None)
        .unwrap();
    graph.add_output("y", Value::new(b, 0)).unwrap();
    graph.replace_uses(x, Value::new(b, 0)).unwrap();
    let text = print(&graph);
    assert!(text.starts_with("; this graph has a cycle"), "{text}");
    assert!(parse_graph(&text, &ParseOptions::default()).is_err());
    assert!(to_dot(&graph).contains("->"));
}

// ---- external weights ----

fn weights_graph() -> Graph {
    let mut graph = Graph::new("weights");
    let x = graph.add_input("x", f32_ty(&[3])).unwrap();
    let big = graph
        .add_const(
            "big",
            Tensor::from_vec(vec![3], vec![1.5f32, -0.0, f32::from_bits(0x7fc0_0003)]).unwrap(),
        )
        .unwrap();
    let small = graph
        .add_const("small", Tensor::from_vec(vec![1], vec![2.0f32]).unwrap())
        .unwrap();
    let ints = graph
        .add_const(
            "ints",
            Tensor::from_vec(vec![5], vec![1i64, -2, 3, i64::MAX, i64::MIN]).unwrap(),
        )
        .unwrap();
    let mask = graph
        .add_const(
            "mask",
            Tensor::from_vec(vec![3], vec![true, false, true]).unwrap(),
        )
        .unwrap();
    let sum = graph
        .add_op(Op::Add {}, &[Some(x), Some(big)], vec![f32_ty(&[3])], None)
        .unwrap();
    let prod = graph
        .add_op(
            Op::Mul {},
            &[Some(Value::new(sum, 0)), Some(small)],
            vec![f32_ty(&[3])],
            None,
        )
        .unwrap();
    graph.add_output("y", Value::new(prod, 0)).unwrap();
    graph.add_output("ints", ints).unwrap();
    graph.add_output("mask", mask).unwrap();
    graph
}

#[test]
fn external_weights_round_trip_through_files() {
    let graph = weights_graph();
    let options = PrintOptions {
        inline_limit: 2,
        weights_file: Some("w.bin".into()),
    };
    let printed = print_graph_with_weights(&graph, &options);
    assert!(
        printed
            .text
            .contains("const @big: f32[3] = external(\"w.bin\", offset=0)\n"),
        "{}",
        printed.text
    );
    assert!(
        printed.text.contains("const @small: f32[1] = [2.0]\n"),
        "{}",
        printed.text
    );
    assert!(
        printed
            .text
            .contains("const @ints: i64[5] = external(\"w.bin\", offset=64)\n"),
        "{}",
        printed.text
    );
    assert!(
        printed
            .text
            .contains("const @mask: bool[3] = external(\"w.bin\", offset=128)\n"),
        "{}",
        printed.text
    );
    assert_eq!(printed.weights.len(), 131);
    assert_eq!(&printed.weights[128..], [1, 0, 1]);

    let dir = temp_dir("external");
    let sir = dir.join("model.sir");
    std::fs::write(&sir, &printed.text).unwrap();
    std::fs::write(dir.join("w.bin"), &printed.weights).unwrap();
    let parsed = parse_file(&sir).unwrap_or_else(|err| panic!("{}", err.render(&printed.text)));
    assert!(graphs_equal(&graph, &parsed));
    assert_eq!(print(&parsed), print(&graph));

    // The same text with an explicit base folder, and in a subfolder.
    let parsed = parse_graph(
        &printed.text,
        &ParseOptions {
            base_dir: Some(dir.clone()),
        },
    )
    .unwrap();
    assert!(graphs_equal(&graph, &parsed));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/w2.bin"), &printed.weights).unwrap();
    let nested = printed.text.replace("\"w.bin\"", "\"./sub/w2.bin\"");
    assert!(graphs_equal(
        &graph,
        &parse_graph(
            &nested,
            &ParseOptions {
                base_dir: Some(dir.clone())
            }
        )
        .unwrap()
    ));

    // Without a weights file name everything is inline.
    let inline = print_graph_with_weights(
        &graph,
        &PrintOptions {
            inline_limit: 0,
            weights_file: None,
        },
    );
    assert!(inline.weights.is_empty() && !inline.text.contains("external"));
    assert_eq!(
        print_graph(&graph, &options),
        print(&graph),
        "print_graph ignores weights_file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn external_weights_errors() {
    let dir = temp_dir("external-errors");
    std::fs::write(dir.join("w.bin"), [0u8; 10]).unwrap();
    let with_dir = ParseOptions {
        base_dir: Some(dir.clone()),
    };
    let src = |file: &str, offset: &str| {
        format!("graph g {{\n  const @w: f32[2] = external(\"{file}\", offset={offset})\n  output w = @w\n}}\n")
    };
    let err = |file: &str, offset: &str, options: &ParseOptions| {
        parse_graph(&src(file, offset), options).expect_err("should fail")
    };
    // The happy path first, so the failures below are about what they change.
    assert!(parse_graph(&src("w.bin", "2"), &with_dir).is_ok());

    let e = err("w.bin", "0", &ParseOptions::default());
    assert_eq!((e.line, e.col), (2, 31));
    assert!(e.message.contains("no base folder is set"), "{}", e.message);

    for bad in ["../w.bin", "/etc/passwd", "sub/../../w.bin", ""] {
        let e = err(bad, "0", &with_dir);
        assert!(
            e.message.contains("must be a relative path inside"),
            "{bad}: {}",
            e.message
        );
    }
    let e = err("w.bin", "4", &with_dir);
    assert_eq!((e.line, e.col), (2, 47));
    assert_eq!(
        e.message,
        "const @w (f32[2]) needs bytes 4..12 of `w.bin`, but the file has 10 bytes"
    );
    let e = err("w.bin", "18446744073709551615", &with_dir);
    assert!(
        e.message.contains("more bytes than fit in memory"),
        "{}",
        e.message
    );
    let e = err("missing.bin", "0", &with_dir);
    assert!(
        e.message.starts_with("cannot read external weights"),
        "{}",
        e.message
    );
    let e = err("w.bin", "-1", &with_dir);
    assert!(
        e.message.contains("non-negative byte offset"),
        "{}",
        e.message
    );

    let e = parse_file(&dir.join("nope.sir")).expect_err("missing file");
    assert_eq!((e.line, e.col), (0, 0));
    assert!(e.to_string().starts_with("cannot read"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- parse errors, one per kind ----

#[test]
fn error_unclosed_shape() {
    check_error(
        "graph g {\n  input %x: f32[2,3)\n}\n",
        2,
        20,
        "expected `]` to close the shape, found `)`",
    );
}

#[test]
fn error_unknown_op_suggests() {
    let src = "graph g {\n  input %x: f32[1,1,3,3]\n  %0: f32[1,1,3,3] = conv2d(%x, %x)\n}\n";
    let err = parse_err(src);
    assert_eq!((err.line, err.col), (3, 22));
    assert_eq!(err.message, "unknown op `conv2d`; did you mean `conv`?");
    check_error(
        "graph g {\n  %0: f32[1] = frobnicate()\n}\n",
        2,
        16,
        "unknown op `frobnicate`",
    );
    assert!(!parse_err("graph g {\n  %0: f32[1] = frobnicate()\n}\n")
        .message
        .contains("did you mean"));
}

#[test]
fn error_use_before_definition() {
    let err = parse_err(
        "graph g {\n  input %x: f32[2]\n  %0: f32[2] = add(%x, %7)\n  %7: f32[2] = relu(%x)\n}\n",
    );
    assert_eq!((err.line, err.col), (3, 24));
    assert_eq!(err.message, "value %7 is used before it is defined");
    check_error(
        "graph g {\n  %0: f32[2] = relu(%0)\n}\n",
        2,
        21,
        "value %0 is used before it is defined",
    );
    check_error(
        "graph g {\n  output y = @w\n}\n",
        2,
        14,
        "const @w is used before it is defined",
    );
    check_error(
        "graph g {\n  output y = %\"0\"\n}\n",
        2,
        14,
        "value %\"0\" is used before it is defined",
    );
}

#[test]
fn error_attribute_type() {
    let src = "graph g {\n  input %x: f32[1,1,3,3]\n  %0: f32[1,1,3,3] = conv(%x, %x) {group=1, strides=1.5}\n}\n";
    let err = parse_err(src);
    assert_eq!((err.line, err.col), (3, 53));
    assert_eq!(
        err.message,
        "attribute `strides` of `conv` must be a list of integers, got a float `1.5`"
    );
}

#[test]
fn error_unknown_missing_and_repeated_attributes() {
    check_error(
        "graph g {\n  input %x: f32[2]\n  %0: f32[2] = relu(%x) {alpha=0.5}\n}\n",
        3,
        26,
        "op `relu` has no attribute `alpha`",
    );
    check_error(
        "graph g {\n  input %x: f32[2]\n  %0: f32[1], %1: f32[1] = split(%x)\n}\n",
        3,
        28,
        "op `split` needs attribute `split` (a list of integers)",
    );
    check_error(
        "graph g {\n  input %x: f32[2]\n  %0: f32[2] = flatten(%x) {axis=1, axis=0}\n}\n",
        3,
        37,
        "attribute `axis` is given twice",
    );
    check_error(
        "graph g {\n  input %x: f32[2]\n  %0: f32[2] = transpose(%x) {perm=[1, 0.5, x]}\n}\n",
        3,
        45,
        "a list holds one kind of value: found an identifier `x` in a list that starts with an integer `1`",
    );
    check_error(
        "graph g {\n  input %x: f32[2]\n  %0: f32[2] = transpose(%x) {perm=[[1]]}\n}\n",
        3,
        37,
        "attribute lists cannot be nested",
    );
}

#[test]
fn error_const_element_count() {
    check_error(
        "graph g {\n  const @w: f32[2,3] = [1.0, 2.0, 3.0, 4.0, 5.0]\n}\n",
        2,
        24,
        "const @w has 5 elements but f32[2,3] needs 6",
    );
    check_error(
        "graph g {\n  const @s: i64[] = []\n}\n",
        2,
        21,
        "const @s has 0 elements but i64[] needs 1",
    );
}

#[test]
fn error_unknown_dtype() {
    check_error(
        "graph g {\n  input %x: float32[2]\n}\n",
        2,
        13,
        "unknown dtype `float32`; expected one of f32, f64, i64, i32, i8, u8, bool",
    );
}

#[test]
fn error_duplicate_definitions() {
    check_error(
        "graph g {\n  input %x: f32[2]\n  input %x: f32[3]\n}\n",
        3,
        9,
        "value %x is defined twice; first at line 2",
    );
    check_error(
        "graph g {\n  input %x: f32[2]\n  %0: f32[2] = relu(%x)\n  %0: f32[2] = relu(%x)\n}\n",
        4,
        3,
        "value %0 is defined twice; first at line 3",
    );
    check_error(
        "graph g {\n  input %x: f32[2]\n  %0: f32[1], %0: f32[1] = split(%x) {split=[1,1]}\n}\n",
        3,
        15,
        "value %0 is defined twice on this line",
    );
    check_error(
        "graph g {\n  const @w: f32[] = [1.0]\n  const @w: f32[] = [2.0]\n}\n",
        3,
        9,
        "const @w is defined twice; first at line 2",
    );
    check_error(
        "graph g {\n  input %w: f32[]\n  const @w: f32[] = [2.0]\n}\n",
        3,
        9,
        "const @w has the name of input %w, defined at line 2",
    );
    check_error(
        "graph g {\n  input %x: f32[2]\n  output y = %x\n  output y = %x\n}\n",
        4,
        10,
        "output y is declared twice; first at line 3",
    );
}

#[test]
fn error_literals() {
    check_error(
        "graph g {\n  const @b: u8[2] = [1, 256]\n}\n",
        2,
        25,
        "integer `256` is out of range for u8 (0..=255)",
    );
    check_error(
        "graph g {\n  const @b: i64[1] = [99999999999999999999]\n}\n",
        2,
        23,
        "integer `99999999999999999999` is out of range for i64",
    );
    check_error(
        "graph g {\n  const @b: i32[2] = [1, 2.5]\n}\n",
        2,
        26,
        "expected an integer for i32, found float `2.5`",
    );
    check_error(
        "graph g {\n  const @b: bool[1] = [1]\n}\n",
        2,
        24,
        "expected `true` or `false` or `]`, found `1`",
    );
    check_error(
        "graph g {\n  const @b: f32[1] = [nan32(0x3f800000)]\n}\n",
        2,
        29,
        "`nan32(0x3f800000)` is not a NaN bit pattern",
    );
    check_error(
        "graph g {\n  const @b: f64[1] = [nan(0x17ff8000000000000)]\n}\n",
        2,
        27,
        "has more than 16 hex digits",
    );
    check_error(
        "graph g {\n  const @b: f32[1] = [1.5e]\n}\n",
        2,
        23,
        "expected exponent digits in `1.5e`",
    );
    check_error(
        "graph g {\n  const @b: f32[1] = [3abc]\n}\n",
        2,
        23,
        "invalid number `3abc`",
    );
    check_error(
        "graph g {\n  const @b: f32[batch] = [1.0]\n}\n",
        2,
        13,
        "const @b must have a static shape, but dim `batch` of f32[batch] is symbolic",
    );
    check_error(
        "graph g {\n  input %x: f32[-1]\n}\n",
        2,
        17,
        "a dim cannot be negative, found `-1`",
    );
}

#[test]
fn error_structure() {
    check_error(
        "graph g {\n  input %x: f32[2]\n",
        3,
        1,
        "expected `}` to close the graph, found end of file",
    );
    check_error(
        "graph g {\n}\ngraph h {\n}\n",
        3,
        1,
        "expected end of file after the graph's closing `}`, found `graph`",
    );
    check_error("model g {\n}\n", 1, 1, "expected `graph` to start the file");
    check_error(
        "graph g {\n  inptu %x: f32[2]\n}\n",
        2,
        3,
        "expected `input`, `const`, `output`, an op line",
    );
    check_error(
        "graph g {\n  output \"y = %x\n}\n",
        2,
        10,
        "unterminated string",
    );
    check_error(
        "graph g {\n  input %x: f32[2] $\n}\n",
        2,
        20,
        "unexpected character `$`",
    );
    check_error(
        "graph g {\n  input %x: f32[2]\n  %0: f32[2] = relu(%x) loc(conv1)\n}\n",
        3,
        29,
        "expected a string label like `loc(\"conv1\")`, found `conv1`",
    );
    check_error(
        "graph g {\n  input %0: f32[2]\n}\n",
        2,
        9,
        "an input needs a name, not a number",
    );
    // Columns count characters, not bytes.
    check_error(
        "graph \"é\" {\n  input %x: f32[2) ; é\n}\n",
        2,
        18,
        "expected `]` to close the shape",
    );
}

#[test]
fn error_display_and_render() {
    let src = "graph g {\n\tinput %x: f32[2,3)\n}\n";
    let err = parse_err(src);
    assert_eq!(
        err.to_string(),
        "line 2, column 19: expected `]` to close the shape, found `)`"
    );
    assert_eq!(
        err.render(src),
        "error: expected `]` to close the shape, found `)`\n --> line 2, column 19\n  |\n2 | \tinput %x: f32[2,3)\n  | \t                 ^\n"
    );
}

// ---- every .sir file in the repository ----

fn sir_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" && name != ".git" {
                sir_files(&path, out);
            }
        } else if name.ends_with(".sir") {
            out.push(path);
        }
    }
}

/// Every `.sir` file in the repository parses and round-trips, except files under a folder named
/// `invalid` (fixtures for error messages, which must not parse).
#[test]
fn every_sir_file_in_the_repo_round_trips() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    sir_files(&root, &mut files);
    for path in files {
        let is_invalid_fixture = path.components().any(|c| c.as_os_str() == "invalid");
        let src = std::fs::read_to_string(&path).unwrap();
        match parse_file(&path) {
            Ok(graph) if !is_invalid_fixture => {
                let text = print(&graph);
                let again = parse(&text);
                assert!(
                    graphs_equal(&graph, &again),
                    "{} does not round-trip",
                    path.display()
                );
                assert_eq!(print(&again), text, "{}", path.display());
            }
            Ok(_) => panic!("{} is under `invalid/` but parses", path.display()),
            Err(err) if !is_invalid_fixture => panic!("{}: {}", path.display(), err.render(&src)),
            Err(_) => {}
        }
    }
}

/// Every ```sir block in the spec files this format owns parses and round-trips. (The root
/// `spec_examples` test also verifies and runs them.)
#[test]
fn spec_examples_round_trip() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ir-spec");
    let mut n_blocks = 0;
    for file in ["text-format.md", "types.md"] {
        let doc = std::fs::read_to_string(spec.join(file)).unwrap();
        let mut lines = doc.lines();
        while let Some(line) = lines.next() {
            if line.trim() == "```sir" {
                let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
                let text = check_round_trip(&block.join("\n"));
                // Examples show exactly what the printer writes, apart from comments.
                let without_comments: String = block
                    .iter()
                    .map(|l| l.split(';').next().unwrap_or("").trim_end())
                    .filter(|l| !l.is_empty())
                    .map(|l| format!("{l}\n"))
                    .collect();
                assert_eq!(
                    without_comments, text,
                    "{file}: example is not in canonical form"
                );
                n_blocks += 1;
            }
        }
    }
    assert!(
        n_blocks >= 4,
        "expected examples in the spec, found {n_blocks}"
    );
}

// ---- size ----

#[test]
fn large_inline_weights_parse_in_linear_time() {
    // About 4 MB of text: a quadratic parser would take minutes here.
    let mut bits = Bits(7);
    let n = 300_000;
    let data: Vec<f32> = (0..n)
        .map(|_| (bits.next() as u32 >> 9) as f32 / 4096.0 - 1000.0)
        .collect();
    let mut graph = Graph::new("big");
    let x = graph.add_input("x", f32_ty(&[n])).unwrap();
    let mut prev = x;
    for idx in 0..200 {
        let w = graph
            .add_const(
                format!("w{idx}"),
                Tensor::from_vec(vec![n / 200], data[..n / 200].to_vec()).unwrap(),
            )
            .unwrap();
        let _ = w;
        let node = graph
            .add_op(
                Op::Relu {},
                &[Some(prev)],
                vec![f32_ty(&[n])],
                Some(format!("relu{idx}")),
            )
            .unwrap();
        prev = Value::new(node, 0);
    }
    let big = graph
        .add_const("big", Tensor::from_vec(vec![n], data).unwrap())
        .unwrap();
    let sum = graph
        .add_op(
            Op::Add {},
            &[Some(prev), Some(big)],
            vec![f32_ty(&[n])],
            None,
        )
        .unwrap();
    graph.add_output("y", Value::new(sum, 0)).unwrap();
    let text = print(&graph);
    assert!(text.len() > 3_000_000, "{}", text.len());
    let start = std::time::Instant::now();
    let parsed = parse(&text);
    let elapsed = start.elapsed();
    assert!(graphs_equal(&graph, &parsed));
    assert!(
        elapsed.as_secs() < 10,
        "parsing {} bytes took {elapsed:?}",
        text.len()
    );
}

// ---- DOT ----

#[test]
fn dot_export() {
    let src = r#"graph "my \"net\"" {
  input %x: f32[batch,4]
  const @w: f32[2] = [1.0, 2.0]
  %0: f32[batch,2], %1: f32[batch,2] = split(%x) {split=[2,2], axis=1} loc("sp")
  %2: f32[batch,2] = add(%1, @w)
  %3: f32[batch,2] = leaky_relu(%2) {alpha=0.5}
  output y = %3
  output "first half" = %0
}
"#;
    let graph = parse(src);
    let dot = to_dot(&graph);
    let expected_lines = [
        "digraph \"my \\\"net\\\"\" {",
        "  n0 [shape=ellipse, label=\"input x\\nf32[batch,4]\"];",
        "  n1 [shape=box, label=\"split \\\"sp\\\"\\nsplit=[2, 2]\\naxis=1\"];",
        "  n2 [shape=box, style=filled, fillcolor=lightgrey, label=\"@w\\nf32[2]\"];",
        "  n3 [shape=box, label=\"add\"];",
        "  n4 [shape=box, label=\"leaky_relu\\nalpha=0.5\"];",
        "  n0 -> n1 [label=\"f32[batch,4]\"];",
        "  n1 -> n3 [label=\"outputs[1]: f32[batch,2]\"];",
        "  n2 -> n3 [label=\"f32[2]\"];",
        "  n3 -> n4 [label=\"f32[batch,2]\"];",
        "  out0 [shape=house, label=\"output y\"];",
        "  n4 -> out0 [label=\"f32[batch,2]\"];",
        "  out1 [shape=house, label=\"output first half\"];",
        "  n1 -> out1 [label=\"outputs[0]: f32[batch,2]\"];",
    ];
    for line in expected_lines {
        assert!(
            dot.lines().any(|l| l == line),
            "missing line {line}\nin\n{dot}"
        );
    }
    assert!(!dot.contains("1.0, 2.0"), "constant data is not drawn");
    assert!(dot.trim_end().ends_with('}'));
    // Deterministic and independent of insertion order.
    assert_eq!(to_dot(&diamond(true, false)), to_dot(&diamond(false, true)));
}
