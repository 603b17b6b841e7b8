//! Epilogue fusion in the lowering: which elementwise consumers are absorbed into their producer's
//! nest (kernel count and origins), what the fused program looks like (`.sloop` snapshots), and that
//! the fused program computes what `sinter_ref::run` does on seeded random inputs.

mod common;

use sinter_ir::{AttrValue, DType, Graph, Op, Tensor, TensorType, Value};
use sinter_loops::lower::lower_graph;
use sinter_loops::text::print_program;
use sinter_loops::verify::verify_program;
use sinter_loops::Program;
use sinter_ref::compare::Tolerance;
use sinter_ref::random::{random_tensor, SplitMix64};

const F32: DType = DType::F32;

const TOL: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-5,
};

/// A graph under construction, with seeded random weights.
struct Net {
    g: Graph,
    rng: SplitMix64,
}

impl Net {
    fn new() -> Net {
        Net {
            g: Graph::new("fusion"),
            rng: SplitMix64::new(11),
        }
    }

    fn input(&mut self, name: &str, shape: &[usize]) -> Value {
        self.g
            .add_input(name, TensorType::fixed(F32, shape))
            .unwrap()
    }

    fn weight(&mut self, name: &str, shape: &[usize]) -> Value {
        let tensor = random_tensor(&mut self.rng, F32, shape);
        self.g.add_const(name, tensor).unwrap()
    }

    /// `name(inputs)` with `attrs`, labelled `label`.
    fn op(
        &mut self,
        name: &str,
        attrs: &[(&str, AttrValue)],
        inputs: &[Value],
        label: &str,
    ) -> Value {
        let op = Op::from_attrs(
            name,
            attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let inputs: Vec<Option<Value>> = inputs.iter().copied().map(Some).collect();
        self.g
            .add_op_inferred(op, &inputs, Some(label.to_string()))
            .unwrap_or_else(|e| panic!("{e}"))[0]
    }

    fn output(&mut self, name: &str, value: Value) {
        self.g.add_output(name, value).unwrap();
    }
}

/// Lowers `net`, checks the kernels' names and origins (the labels of the nodes each computes) and
/// the interpreter's results against the reference on three seeds, and returns the program.
fn lowered(net: &Net, kernels: &[(&str, &[&str])]) -> Program {
    let program = lower_graph(&net.g).unwrap_or_else(|e| panic!("{e}"));
    if let Err(errors) = verify_program(&program) {
        panic!("does not verify: {errors:#?}");
    }
    let actual: Vec<(String, Vec<String>)> = program
        .calls
        .iter()
        .map(|c| (c.kernel.name.clone(), c.kernel.origins.clone()))
        .collect();
    let expected: Vec<(String, Vec<String>)> = kernels
        .iter()
        .map(|(name, origins)| {
            let origins = origins
                .iter()
                .map(|label| {
                    let id = net
                        .g
                        .node_ids()
                        .find(|&id| net.g.node(id).label.as_deref() == Some(*label))
                        .unwrap_or_else(|| panic!("no node `{label}`"));
                    net.g.node(id).describe()
                })
                .collect();
            (name.to_string(), origins)
        })
        .collect();
    assert_eq!(actual, expected);
    for seed in 0..3 {
        matches_reference(&net.g, &program, seed);
    }
    program
}

fn matches_reference(graph: &Graph, program: &Program, seed: u64) {
    common::interp_matches_reference(graph, program, seed, TOL);
}

fn ints(values: &[i64]) -> AttrValue {
    AttrValue::Ints(values.to_vec())
}

#[test]
fn a_unary_chain_is_one_kernel() {
    let mut n = Net::new();
    let x = n.input("x", &[3, 5, 7]);
    let a = n.op("relu", &[], &[x], "relu_a");
    let b = n.op("tanh", &[], &[a], "tanh_b");
    let c = n.op("neg", &[], &[b], "neg_c");
    n.output("y", c);
    let program = lowered(
        &n,
        &[("relu_a_tanh_b_neg_c", &["relu_a", "tanh_b", "neg_c"])],
    );
    insta::assert_snapshot!("unary_chain", print_program(&program));
}

#[test]
fn a_broadcast_bias_fuses_into_an_elementwise_producer() {
    let mut n = Net::new();
    let x = n.input("x", &[2, 3, 4]);
    let y = n.input("y", &[2, 3, 4]);
    let bias = n.weight("bias", &[3, 1]);
    let m = n.op("mul", &[], &[x, y], "mul_m");
    let b = n.op("add", &[], &[m, bias], "add_b");
    n.output("out", b);
    let program = lowered(&n, &[("mul_m_add_b", &["mul_m", "add_b"])]);
    insta::assert_snapshot!("broadcast_bias", print_program(&program));
}

#[test]
fn a_residual_add_fuses_into_layer_norm() {
    let mut n = Net::new();
    let x = n.input("x", &[2, 3, 8]);
    let scale = n.weight("scale", &[8]);
    let shift = n.weight("shift", &[8]);
    let ln = n.op(
        "layer_norm",
        &[("axis", AttrValue::Int(-1))],
        &[x, scale, shift],
        "layer_norm",
    );
    let r = n.op("add", &[], &[x, ln], "add_residual");
    n.output("out", r);
    let program = lowered(
        &n,
        &[("layer_norm_add_residual", &["layer_norm", "add_residual"])],
    );
    insta::assert_snapshot!("residual_add", print_program(&program));
}

#[test]
fn a_chain_of_three_fuses_into_its_producer() {
    let mut n = Net::new();
    let x = n.input("x", &[4, 6]);
    let y = n.input("y", &[4, 6]);
    let s = n.input("s", &[6]);
    let a = n.op("add", &[], &[x, y], "add_a");
    let r = n.op("relu", &[], &[a], "relu_r");
    let m = n.op("mul", &[], &[r, s], "mul_m");
    let t = n.op("sigmoid", &[], &[m], "sigmoid_t");
    n.output("out", t);
    let program = lowered(
        &n,
        &[(
            "add_a_relu_r_mul_m_sigmoid_t",
            &["add_a", "relu_r", "mul_m", "sigmoid_t"],
        )],
    );
    insta::assert_snapshot!("chain_of_three", print_program(&program));
}

#[test]
fn a_value_with_two_consumers_is_not_fused() {
    let mut n = Net::new();
    let x = n.input("x", &[5, 3]);
    let a = n.op("relu", &[], &[x], "relu_a");
    let b = n.op("exp", &[], &[a], "exp_b");
    let c = n.op("neg", &[], &[a], "neg_c");
    n.output("b", b);
    n.output("c", c);
    lowered(
        &n,
        &[
            ("relu_a", &["relu_a"]),
            ("exp_b", &["exp_b"]),
            ("neg_c", &["neg_c"]),
        ],
    );
    // One consumer reading the value twice is two uses as well.
    let mut n = Net::new();
    let x = n.input("x", &[5, 3]);
    let a = n.op("relu", &[], &[x], "relu_a");
    let sq = n.op("mul", &[], &[a, a], "mul_sq");
    n.output("out", sq);
    lowered(&n, &[("relu_a", &["relu_a"]), ("mul_sq", &["mul_sq"])]);
}

#[test]
fn a_graph_output_is_not_fused_away_but_ends_a_chain() {
    let mut n = Net::new();
    let x = n.input("x", &[2, 9]);
    let a = n.op("relu", &[], &[x], "relu_a");
    let b = n.op("exp", &[], &[a], "exp_b");
    let c = n.op("neg", &[], &[b], "neg_c");
    n.output("a", a);
    n.output("b", b);
    n.output("c", c);
    // `a` must be stored; `b` is an output too, so `neg_c` stays out; `exp_b` keeps `b`'s buffer.
    let program = lowered(
        &n,
        &[
            ("relu_a", &["relu_a"]),
            ("exp_b", &["exp_b"]),
            ("neg_c", &["neg_c"]),
        ],
    );
    // The chain's last value may itself be an output: relu absorbs exp, whose value is `b`.
    let mut n = Net::new();
    let x = n.input("x", &[2, 9]);
    let a = n.op("relu", &[], &[x], "relu_a");
    let b = n.op("exp", &[], &[a], "exp_b");
    n.output("b", b);
    let fused = lowered(&n, &[("relu_a_exp_b", &["relu_a", "exp_b"])]);
    assert_eq!(program.outputs.len(), 3);
    let (name, buf) = &fused.outputs[0];
    assert_eq!(name, "b");
    assert_eq!(
        fused.buffer(*buf).name,
        "%1",
        "the buffer is named after the chain's value"
    );
}

#[test]
fn a_consumer_that_broadcasts_the_value_is_not_fused() {
    let mut n = Net::new();
    let x = n.input("x", &[3, 1]);
    let y = n.input("y", &[1, 4]);
    let a = n.op("relu", &[], &[x], "relu_a");
    let b = n.op("add", &[], &[a, y], "add_b");
    n.output("out", b);
    lowered(&n, &[("relu_a", &["relu_a"]), ("add_b", &["add_b"])]);
}

#[test]
fn a_dtype_changing_consumer_is_not_fused() {
    let mut n = Net::new();
    let x = n.input("x", &[6]);
    let a = n.op("relu", &[], &[x], "relu_a");
    let b = n.op(
        "cast",
        &[("to", AttrValue::Ident("i32".into()))],
        &[a],
        "cast_b",
    );
    let y = n.input("y", &[6]);
    let c = n.op("less", &[], &[x, y], "less_c");
    let d = n.op("not", &[], &[c], "not_d");
    n.output("b", b);
    n.output("d", d);
    // A bool chain of one dtype fuses; the f32 -> i32 cast does not.
    lowered(
        &n,
        &[
            ("relu_a", &["relu_a"]),
            ("cast_b", &["cast_b"]),
            ("less_c_not_d", &["less_c", "not_d"]),
        ],
    );
}

#[test]
fn an_operand_lowered_later_leaves_the_link_to_the_later_producer() {
    // `add(a, b)`: when `a` is lowered, `b` does not exist yet, so `exp_b` absorbs the add.
    let mut n = Net::new();
    let x = n.input("x", &[4, 4]);
    let a = n.op("relu", &[], &[x], "relu_a");
    let b = n.op("exp", &[], &[x], "exp_b");
    let s = n.op("add", &[], &[a, b], "add_s");
    let t = n.op("tanh", &[], &[s], "tanh_t");
    n.output("out", t);
    lowered(
        &n,
        &[
            ("relu_a", &["relu_a"]),
            ("exp_b_add_s_tanh_t", &["exp_b", "add_s", "tanh_t"]),
        ],
    );
}

#[test]
fn pools_absorb_activations_and_channel_biases() {
    let mut n = Net::new();
    let x = n.input("x", &[2, 3, 6, 6]);
    let bias = n.weight("bias", &[3, 1, 1]);
    let p = n.op(
        "max_pool",
        &[("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))],
        &[x],
        "max_pool",
    );
    let r = n.op("relu", &[], &[p], "relu_r");
    n.output("out", r);
    let q = n.op(
        "average_pool",
        &[
            ("kernel_shape", ints(&[3, 3])),
            ("pads", ints(&[1, 1, 1, 1])),
        ],
        &[x],
        "average_pool",
    );
    let b = n.op("add", &[], &[q, bias], "add_b");
    n.output("avg", b);
    let program = lowered(
        &n,
        &[
            ("max_pool_relu_r", &["max_pool", "relu_r"]),
            ("average_pool_add_b", &["average_pool", "add_b"]),
        ],
    );
    insta::assert_snapshot!("pool_relu", print_program(&program));
}

#[test]
fn reductions_and_normalizations_absorb_their_epilogues() {
    let mut n = Net::new();
    let x = n.input("x", &[2, 4, 3, 5]);
    let gamma = n.weight("gamma", &[4]);
    let beta = n.weight("beta", &[4]);
    let scale = n.weight("scale", &[4, 1, 1]);
    let tail = n.input("tail", &[5]);
    let sum = n.op("reduce_sum", &[("axes", ints(&[1]))], &[x], "reduce_sum");
    let sq = n.op("sqrt", &[], &[sum], "sqrt_s");
    n.output("norm", sq);
    // group_norm's nest is [N, groups] x [C/groups, S]; the epilogue sees [N, C, S].
    let gn = n.op(
        "group_norm",
        &[("num_groups", AttrValue::Int(2))],
        &[x, gamma, beta],
        "group_norm",
    );
    let gs = n.op("mul", &[], &[gn, scale], "mul_g");
    n.output("gn", gs);
    let sm = n.op("softmax", &[("axis", AttrValue::Int(-1))], &[x], "softmax");
    let sc = n.op("mul", &[], &[sm, tail], "mul_s");
    n.output("sm", sc);
    // instance_norm's view is [N, C, H*W]: a bias over W alone cannot be indexed in it.
    let inorm = n.op("instance_norm", &[], &[x, gamma, beta], "instance_norm");
    let ib = n.op("add", &[], &[inorm, tail], "add_i");
    n.output("in", ib);
    let am = n.op("arg_max", &[("axis", AttrValue::Int(2))], &[x], "arg_max");
    let one = n.g.add_const("one", Tensor::scalar(1i64)).unwrap();
    let am1 = n.op("add", &[], &[am, one], "add_am");
    n.output("am", am1);
    let program = lowered(
        &n,
        &[
            ("reduce_sum_sqrt_s", &["reduce_sum", "sqrt_s"]),
            ("group_norm_mul_g", &["group_norm", "mul_g"]),
            ("softmax_mul_s", &["softmax", "mul_s"]),
            ("instance_norm", &["instance_norm"]),
            ("add_i", &["add_i"]),
            ("arg_max_add_am", &["arg_max", "add_am"]),
        ],
    );
    insta::assert_snapshot!("reduce_normalize", print_program(&program));
}

#[test]
fn a_producer_that_does_not_opt_in_leaves_the_chain_to_its_consumer() {
    // transpose writes its output without an epilogue, so relu lowers normally and absorbs exp.
    let mut n = Net::new();
    let x = n.input("x", &[3, 4]);
    let t = n.op("transpose", &[("perm", ints(&[1, 0]))], &[x], "transpose");
    let r = n.op("relu", &[], &[t], "relu_r");
    let e = n.op("exp", &[], &[r], "exp_e");
    n.output("out", e);
    lowered(
        &n,
        &[
            ("transpose", &["transpose"]),
            ("relu_r_exp_e", &["relu_r", "exp_e"]),
        ],
    );
}

#[test]
fn a_long_chain_is_named_after_its_producer_and_length() {
    let mut n = Net::new();
    let x = n.input("x", &[8]);
    let mut v = n.op("relu", &[], &[x], "relu_first_with_a_long_label");
    let mut labels = vec!["relu_first_with_a_long_label".to_string()];
    for step in 0..4 {
        let label = format!("neg_step_with_a_long_label_{step}");
        v = n.op("neg", &[], &[v], &label);
        labels.push(label);
    }
    n.output("out", v);
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    lowered(&n, &[("relu_first_with_a_long_label_fused4", &labels)]);
}
