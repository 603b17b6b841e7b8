//! ONNX models generated in the bench process: single conv layers and a full-size ResNet-18.
//!
//! The `jit` bench measures layers and a model far larger than anything committed to the repository
//! (a full-width ResNet-18 is about 45 MB of weights), so they are built here from a seed and encoded
//! with the prost messages of `sinter_onnx::proto`, the same bytes both sinter and tract then load.
//! Weights are drawn from [`SplitMix64`] with a He-style bound (`1/sqrt(fan_in)`), which keeps every
//! activation of order one: sums of thousands of products then round well inside the bench's
//! tolerance, and 18 layers deep nothing overflows.
//!
//! The ResNet-18 follows torchvision's `resnet18` exactly: a 7x7/2 conv, batch norm, ReLU and 3x3/2
//! max pool; four stages of two basic blocks (3x3 conv, BN, ReLU, 3x3 conv, BN, plus the identity or
//! a 1x1/2 conv and BN when the shape changes, then ReLU) at widths 64, 128, 256, 512; a global
//! average pool, a flatten and a 512 -> 1000 `Gemm`. Convs have no bias (BN follows each), as in
//! torchvision, so the importer's handling of `BatchNormalization` is part of what is timed.

use sinter_ir::rng::SplitMix64;
use sinter_ir::Tensor;
use sinter_onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, AttributeProto,
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto,
};

/// The IR version written (onnx 1.14's, readable by every importer in use).
const IR_VERSION: i64 = 9;

/// The default-domain opset written: recent enough for every op used, old enough for tract.
const OPSET_VERSION: i64 = 17;

/// One convolution layer: a square `kernel` with `stride` and symmetric `pad` on a square input.
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    pub name: &'static str,
    pub c_in: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    /// Height and width of the input.
    pub size: usize,
}

impl ConvSpec {
    /// Height and width of the output.
    pub fn out_size(&self) -> usize {
        (self.size + 2 * self.pad - self.kernel) / self.stride + 1
    }

    /// Floating-point operations of one run at batch 1: a multiply and an add per weight and output
    /// pixel (the bias add is not counted).
    pub fn flops(&self) -> u64 {
        let out = self.out_size() as u64;
        2 * (self.c_out * self.c_in * self.kernel * self.kernel) as u64 * out * out
    }

    /// The input shape at batch 1.
    pub fn input_shape(&self) -> [usize; 4] {
        [1, self.c_in, self.size, self.size]
    }

    /// The output shape at batch 1.
    pub fn output_shape(&self) -> [usize; 4] {
        [1, self.c_out, self.out_size(), self.out_size()]
    }
}

/// The distinct conv layers of torchvision's ResNet-18 at batch 1 and 224x224.
pub const RESNET18_CONVS: [ConvSpec; 11] = [
    conv("conv1_7x7s2_3to64_224", 3, 64, 7, 2, 3, 224),
    conv("3x3_64to64_56", 64, 64, 3, 1, 1, 56),
    conv("3x3s2_64to128_56", 64, 128, 3, 2, 1, 56),
    conv("1x1s2_64to128_56", 64, 128, 1, 2, 0, 56),
    conv("3x3_128to128_28", 128, 128, 3, 1, 1, 28),
    conv("3x3s2_128to256_28", 128, 256, 3, 2, 1, 28),
    conv("1x1s2_128to256_28", 128, 256, 1, 2, 0, 28),
    conv("3x3_256to256_14", 256, 256, 3, 1, 1, 14),
    conv("3x3s2_256to512_14", 256, 512, 3, 2, 1, 14),
    conv("1x1s2_256to512_14", 256, 512, 1, 2, 0, 14),
    conv("3x3_512to512_7", 512, 512, 3, 1, 1, 7),
];

const fn conv(
    name: &'static str,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    size: usize,
) -> ConvSpec {
    ConvSpec {
        name,
        c_in,
        c_out,
        kernel,
        stride,
        pad,
        size,
    }
}

/// Builds one ONNX graph: values are named `v0`, `v1`, ... in order of creation.
struct GraphBuilder {
    graph: GraphProto,
    rng: SplitMix64,
    n_values: usize,
    n_params: usize,
}

impl GraphBuilder {
    fn new(name: &str, seed: u64) -> GraphBuilder {
        GraphBuilder {
            graph: GraphProto {
                name: name.to_string(),
                ..GraphProto::default()
            },
            rng: SplitMix64::new(seed),
            n_values: 0,
            n_params: 0,
        }
    }

    fn fresh_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}{}", self.n_values);
        self.n_values += 1;
        name
    }

    /// An f32 initializer with values uniform in `[lo, hi)`.
    fn uniform_initializer(&mut self, dims: &[usize], lo: f64, hi: f64) -> String {
        let len: usize = dims.iter().product();
        let mut raw = Vec::with_capacity(4 * len);
        for _ in 0..len {
            raw.extend_from_slice(&(self.rng.uniform(lo, hi) as f32).to_le_bytes());
        }
        let name = self.fresh_name("w");
        self.n_params += len;
        self.graph.initializer.push(TensorProto {
            dims: dims.iter().map(|&dim| dim as i64).collect(),
            data_type: DataType::Float as i32,
            name: name.clone(),
            raw_data: raw.into(),
            ..TensorProto::default()
        });
        name
    }

    /// A conv weight `[c_out, c_in, k, k]` with the He-style bound of the module docs.
    fn conv_weight(&mut self, c_out: usize, c_in: usize, kernel: usize) -> String {
        let bound = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
        self.uniform_initializer(&[c_out, c_in, kernel, kernel], -bound, bound)
    }

    fn node(&mut self, op_type: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let output = self.fresh_name("v");
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|input| input.to_string()).collect(),
            output: vec![output.clone()],
            name: format!("{op_type}_{output}"),
            op_type: op_type.to_string(),
            attribute,
            ..NodeProto::default()
        });
        output
    }

    fn conv(&mut self, input: &str, spec: &ConvSpec, bias: bool) -> String {
        let weight = self.conv_weight(spec.c_out, spec.c_in, spec.kernel);
        let mut inputs = vec![input.to_string(), weight];
        if bias {
            inputs.push(self.uniform_initializer(&[spec.c_out], -0.1, 0.1));
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let (k, s, p) = (spec.kernel as i64, spec.stride as i64, spec.pad as i64);
        self.node(
            "Conv",
            &inputs,
            vec![
                ints("kernel_shape", &[k, k]),
                ints("strides", &[s, s]),
                ints("pads", &[p, p, p, p]),
            ],
        )
    }

    /// Inference batch norm with scale near 1, small shift, and running statistics near (0, 1).
    fn batch_norm(&mut self, input: &str, channels: usize) -> String {
        let scale = self.uniform_initializer(&[channels], 0.5, 1.5);
        let shift = self.uniform_initializer(&[channels], -0.1, 0.1);
        let mean = self.uniform_initializer(&[channels], -0.1, 0.1);
        let var = self.uniform_initializer(&[channels], 0.5, 1.5);
        self.node(
            "BatchNormalization",
            &[input, &scale, &shift, &mean, &var],
            vec![float("epsilon", 1e-5)],
        )
    }

    fn relu(&mut self, input: &str) -> String {
        self.node("Relu", &[input], Vec::new())
    }

    fn input(&mut self, name: &str, dims: &[usize]) {
        self.graph.input.push(value_info(name, dims));
    }

    fn output(&mut self, name: &str, dims: &[usize]) {
        self.graph.output.push(value_info(name, dims));
    }

    fn into_model(self) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET_VERSION,
            }],
            producer_name: "sinter benches".to_string(),
            graph: Some(self.graph),
            ..ModelProto::default()
        }
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..AttributeProto::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..AttributeProto::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Float as i32,
        f: value,
        ..AttributeProto::default()
    }
}

/// An f32 graph input or output of a fixed shape.
fn value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    ValueInfoProto::tensor(
        name,
        DataType::Float,
        dims.iter()
            .map(|&size| tensor_shape_proto::dimension::Value::DimValue(size as i64)),
    )
}

/// A model of one `Conv` (with bias) named `x` -> `y`, weights seeded by `seed`.
pub fn conv_model(spec: &ConvSpec, seed: u64) -> ModelProto {
    let mut builder = GraphBuilder::new(spec.name, seed);
    builder.input("x", &spec.input_shape());
    let out = builder.conv("x", spec, true);
    // Rename the conv's output to the graph output's name.
    if let Some(node) = builder.graph.node.last_mut() {
        node.output = vec!["y".to_string()];
    }
    debug_assert_ne!(out, "y");
    builder.output("y", &spec.output_shape());
    builder.into_model()
}

/// A generated model and the number of weights it holds.
pub struct GeneratedModel {
    pub model: ModelProto,
    pub n_params: usize,
}

/// Torchvision's ResNet-18 (see the module docs) for `input: f32[1,3,224,224]` -> `logits:
/// f32[1,1000]`, weights seeded by `seed`.
pub fn resnet18_model(seed: u64) -> GeneratedModel {
    let mut b = GraphBuilder::new("resnet18", seed);
    b.input("input", &[1, 3, 224, 224]);
    let stem = conv("conv1", 3, 64, 7, 2, 3, 224);
    let mut x = b.conv("input", &stem, false);
    x = b.batch_norm(&x, 64);
    x = b.relu(&x);
    x = b.node(
        "MaxPool",
        &[&x],
        vec![
            ints("kernel_shape", &[3, 3]),
            ints("strides", &[2, 2]),
            ints("pads", &[1, 1, 1, 1]),
        ],
    );
    let (mut channels, mut size) = (64, 56);
    for width in [64, 128, 256, 512] {
        for block_idx in 0..2 {
            let stride = if block_idx == 0 && width != 64 { 2 } else { 1 };
            let first = conv("", channels, width, 3, stride, 1, size);
            let second = conv("", width, width, 3, 1, 1, first.out_size());
            let mut y = b.conv(&x, &first, false);
            y = b.batch_norm(&y, width);
            y = b.relu(&y);
            y = b.conv(&y, &second, false);
            y = b.batch_norm(&y, width);
            let shortcut = if stride != 1 || channels != width {
                let down = conv("", channels, width, 1, stride, 0, size);
                let z = b.conv(&x, &down, false);
                b.batch_norm(&z, width)
            } else {
                x.clone()
            };
            let sum = b.node("Add", &[&y, &shortcut], Vec::new());
            x = b.relu(&sum);
            channels = width;
            size = first.out_size();
        }
    }
    x = b.node("GlobalAveragePool", &[&x], Vec::new());
    x = b.node("Flatten", &[&x], vec![int("axis", 1)]);
    let fc_bound = 1.0 / (512f64).sqrt();
    let fc_weight = b.uniform_initializer(&[1000, 512], -fc_bound, fc_bound);
    let fc_bias = b.uniform_initializer(&[1000], -fc_bound, fc_bound);
    b.node("Gemm", &[&x, &fc_weight, &fc_bias], vec![int("transB", 1)]);
    if let Some(node) = b.graph.node.last_mut() {
        node.output = vec!["logits".to_string()];
    }
    b.output("logits", &[1, 1000]);
    let n_params = b.n_params;
    GeneratedModel {
        model: b.into_model(),
        n_params,
    }
}

/// A random f32 input uniform in [-1, 1) of `shape`.
pub fn random_input(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    sinter_ref::random::random_tensor(&mut rng, sinter_ir::DType::F32, shape)
}

/// Checks of the generated models' structure, run by `cargo test --bench jit` before the
/// benchmarks (a bench target has no `#[test]` harness).
pub fn self_check() -> Result<(), String> {
    let flops: u64 = RESNET18_CONVS.iter().map(ConvSpec::flops).sum();
    // conv1 is 118 MMAC, each stride-1 3x3 115.6 MMAC (ResNet-18 is 1.8 GMAC in all, with repeats).
    if RESNET18_CONVS[0].out_size() != 112 || RESNET18_CONVS[0].flops() != 236_027_904 {
        return Err(format!("conv1 is wrong: {:?}", RESNET18_CONVS[0]));
    }
    if RESNET18_CONVS
        .iter()
        .any(|spec| spec.out_size() * spec.stride != spec.size)
    {
        return Err("a layer does not halve or keep its size".to_string());
    }
    if flops != 1_546_223_616 {
        return Err(format!("the distinct layers total {flops} FLOP"));
    }
    Ok(())
}
