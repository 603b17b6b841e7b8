"""Generates the small ONNX files that sinter-onnx's tests decode.

Run from anywhere with the `onnx` Python package installed (written against onnx 1.19):

    python3 crates/sinter-onnx/tests/data/make_models.py

The outputs are committed, so the tests need no Python. They are written by the official `onnx`
serializer, which makes them an independent check of the hand-written prost field numbers
(tests/differential.rs) and real input for the tensor conversion tests (tests/decode.rs). Values are
deterministic: re-running the script reproduces the same bytes.

Files:
- attributes.onnx: one node with an attribute of every AttributeProto type, an If with subgraphs, a
  model-local function with a ref_attr_name attribute, and value_info of every TypeProto kind.
- initializers.onnx: initializers of every dtype sinter supports, each once in raw_data and once in its
  typed field, plus scalar, empty and unsupported-dtype (FLOAT16, BFLOAT16, STRING) ones, and inputs
  with dim_value, dim_param, unknown dims and denotations.
- external.onnx + external.weights.bin: initializers stored in an external file at several offsets.
- old_opset.onnx: IR version 3 with opset 7, the oldest combination the decoder accepts.
- multi_domain.onnx: several operator-set domains, node overload and metadata, sparse initializers,
  quantization annotations and training info.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def tensor_type(name, elem_type, shape):
    return helper.make_tensor_value_info(name, elem_type, shape)


def attributes_model():
    """Every AttributeProto type, subgraphs, a function and every TypeProto kind."""
    body = helper.make_graph(
        [helper.make_node("Neg", ["a"], ["b"], name="inner_neg")],
        "inner",
        [tensor_type("a", TensorProto.FLOAT, [2])],
        [tensor_type("b", TensorProto.FLOAT, [2])],
    )
    body2 = helper.make_graph(
        [helper.make_node("Abs", ["a"], ["b"], name="inner_abs")],
        "inner2",
        [tensor_type("a", TensorProto.FLOAT, ["n"])],
        [tensor_type("b", TensorProto.FLOAT, ["n"])],
    )
    t_attr = helper.make_tensor("t_attr", TensorProto.FLOAT, [2, 2], [1.0, -2.0, 3.5, -0.0])
    t_list = [
        helper.make_tensor("t0", TensorProto.INT64, [3], [1, -2, 1 << 40]),
        numpy_helper.from_array(np.array([1.25, -7.5], dtype=np.float32), "t1"),
    ]
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("sv", TensorProto.FLOAT, [2], [5.0, 6.0]),
        helper.make_tensor("si", TensorProto.INT64, [2], [1, 7]),
        [2, 4],
    )
    sparse2 = helper.make_sparse_tensor(
        helper.make_tensor("sv2", TensorProto.INT32, [1], [9]),
        helper.make_tensor("si2", TensorProto.INT64, [1], [0]),
        [3],
    )
    tp = helper.make_tensor_type_proto(TensorProto.FLOAT, ["batch", 3])
    tp_seq = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.INT64, None))
    all_attrs = helper.make_node(
        "AllAttrs",
        ["x", "", "x"],
        ["y"],
        name="all_attrs",
        domain="sinter.test",
        doc_string="a node carrying every attribute type",
        f=1.5,
        i=-7,
        s="h\u00e9llo",
        t=t_attr,
        g=body,
        sparse=sparse,
        tp=tp,
        floats=[0.5, float("nan"), -0.0, float("inf"), 1e-40],
        ints=[0, -1, 1 << 62],
        strings=["a", "", "\u03bb"],
        tensors=t_list,
        graphs=[body, body2],
        sparses=[sparse, sparse2],
        tps=[tp, tp_seq],
    )
    all_attrs.attribute[0].doc_string = "a float attribute"
    if_node = helper.make_node("If", ["cond"], ["z"], name="branch", then_branch=body, else_branch=body2)
    const = helper.make_node("Constant", [], ["c"], name="const", value_floats=[1.0, 2.0])
    call = helper.make_node("Scale", ["x"], ["w"], name="call", domain="sinter.fn", alpha=0.25)

    fn_node = helper.make_node("Mul", ["fx", "fs"], ["fy"], name="fn_mul")
    fn_const = helper.make_node("Constant", [], ["fs"], name="fn_const")
    fn_const.attribute.append(
        helper.make_attribute_ref("value_float", onnx.AttributeProto.FLOAT)
    )
    fn_const.attribute[0].ref_attr_name = "alpha"
    function = helper.make_function(
        "sinter.fn",
        "Scale",
        ["fx"],
        ["fy"],
        [fn_const, fn_node],
        [helper.make_opsetid("", 24)],
        attributes=["alpha"],
        attribute_protos=[helper.make_attribute("beta", 2)],
        doc_string="multiplies by alpha",
    )

    value_info = [
        helper.make_value_info("seq", tp_seq),
        helper.make_value_info(
            "map",
            helper.make_map_type_proto(
                TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, [1])
            ),
        ),
        helper.make_value_info(
            "opt", helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.BOOL, []))
        ),
        helper.make_value_info(
            "sp", helper.make_sparse_tensor_type_proto(TensorProto.FLOAT, [2, "k"])
        ),
    ]
    graph = helper.make_graph(
        [all_attrs, if_node, const, call],
        "attributes",
        [tensor_type("x", TensorProto.FLOAT, [2]), tensor_type("cond", TensorProto.BOOL, [])],
        [tensor_type("y", TensorProto.FLOAT, [2]), tensor_type("z", TensorProto.FLOAT, [2])],
        value_info=value_info,
        doc_string="every attribute type",
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", 24),
            helper.make_opsetid("sinter.test", 1),
            helper.make_opsetid("sinter.fn", 1),
        ],
        functions=[function],
        producer_name="make_models.py",
        producer_version="1",
        doc_string="attribute coverage",
    )
    helper.set_model_props(model, {"purpose": "decoder test", "author": "sinter"})
    return model


# The values of initializers.onnx, shared by the raw and the typed variant of each dtype. The Rust tests
# (tests/decode.rs) hold the same lists.
INITIALIZER_VALUES = {
    "f32": (np.float32, [2, 3], [-1.5, 0.0, 2.25, -0.0, 1e-30, 3.4e38]),
    "f64": (np.float64, [3], [1.0 / 3.0, -2.5e300, 5e-324]),
    "i64": (np.int64, [4], [0, -1, 9007199254740993, -(1 << 63)]),
    "i32": (np.int32, [2, 2], [7, -8, 2147483647, -2147483648]),
    "i8": (np.int8, [5], [-128, -1, 0, 1, 127]),
    "u8": (np.uint8, [5], [0, 1, 128, 254, 255]),
    "bool": (np.bool_, [4], [True, False, False, True]),
}

TYPED = {
    "f32": TensorProto.FLOAT,
    "f64": TensorProto.DOUBLE,
    "i64": TensorProto.INT64,
    "i32": TensorProto.INT32,
    "i8": TensorProto.INT8,
    "u8": TensorProto.UINT8,
    "bool": TensorProto.BOOL,
}


def initializers_model():
    inits = []
    for key, (np_type, dims, values) in INITIALIZER_VALUES.items():
        array = np.array(values, dtype=np_type).reshape(dims)
        inits.append(helper.make_tensor(f"{key}_raw", TYPED[key], dims, array.tobytes(), raw=True))
        inits.append(helper.make_tensor(f"{key}_typed", TYPED[key], dims, array.flatten().tolist()))
    inits.append(helper.make_tensor("scalar_f32", TensorProto.FLOAT, [], np.float32(42.5).tobytes(), raw=True))
    inits.append(helper.make_tensor("empty_f32", TensorProto.FLOAT, [0, 3], []))
    inits.append(
        helper.make_tensor(
            "f16_raw", TensorProto.FLOAT16, [2], np.array([1.0, 2.0], dtype=np.float16).tobytes(), raw=True
        )
    )
    inits.append(helper.make_tensor("bf16_typed", TensorProto.BFLOAT16, [2], [1.0, 2.0]))
    inits.append(helper.make_tensor("str_typed", TensorProto.STRING, [2], [b"ab", b"\xff\x00"]))
    inits.append(helper.make_tensor("u64_typed", TensorProto.UINT64, [2], [1, (1 << 64) - 1]))

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, None])
    x.type.tensor_type.shape.dim[0].denotation = "DATA_BATCH"
    x.type.denotation = "TENSOR"
    unranked = onnx.ValueInfoProto()
    unranked.name = "unranked"
    unranked.type.tensor_type.elem_type = TensorProto.FLOAT
    nodes = [
        helper.make_node("Add", ["x", "x"], ["s"], name="add"),
        helper.make_node("Identity", ["unranked"], ["u"], name="id"),
    ]
    graph = helper.make_graph(
        nodes,
        "initializers",
        [x, unranked],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch", 3, None]),
         helper.make_tensor_value_info("u", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return model


def external_model():
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) * 0.5 - 2.0, "w")
    b = numpy_helper.from_array(np.array([1.0, -1.0, 0.5, 0.0], dtype=np.float32), "b")
    idx = numpy_helper.from_array(np.array([3, -4, 5], dtype=np.int64), "idx")
    inline = numpy_helper.from_array(np.array([7], dtype=np.int32), "inline")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="gemm", transB=1)],
        "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        initializer=[w, b, idx, inline],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.external_data_helper.convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location="external.weights.bin", size_threshold=0
    )
    # Everything but `inline` goes to the weights file; `inline` stays in raw_data.
    for tensor in model.graph.initializer:
        if tensor.name == "inline":
            del tensor.external_data[:]
            tensor.data_location = TensorProto.DEFAULT
    return model


def old_opset_model():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "old",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)], ir_version=3)


def multi_domain_model():
    scaler = helper.make_node(
        "Scaler", ["x"], ["s"], name="scaler", domain="ai.onnx.ml", offset=[0.5], scale=[2.0]
    )
    gelu = helper.make_node("Gelu", ["s"], ["g"], name="gelu", domain="com.microsoft")
    gelu.overload = "fast"
    helper.set_metadata_props(gelu, {"origin": "fused"})
    relu = helper.make_node("Relu", ["g"], ["y"], name="relu")
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("sparse_w", TensorProto.FLOAT, [2], [1.0, 2.0]),
        helper.make_tensor("sparse_w_idx", TensorProto.INT64, [2], [0, 3]),
        [2, 2],
    )
    annotation = onnx.TensorAnnotation()
    annotation.tensor_name = "s"
    entry = annotation.quant_parameter_tensor_names.add()
    entry.key = "SCALE_TENSOR"
    entry.value = "s_scale"
    graph = helper.make_graph(
        [scaler, gelu, relu],
        "multi",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        sparse_initializer=[sparse],
    )
    graph.quantization_annotation.append(annotation)
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("ai.onnx", 18),
            helper.make_opsetid("ai.onnx.ml", 3),
            helper.make_opsetid("com.microsoft", 1),
        ],
        ir_version=10,
    )
    training = model.training_info.add()
    training.initialization.CopyFrom(
        helper.make_graph(
            [helper.make_node("Constant", [], ["w0"], value_float=0.0)], "init", [], []
        )
    )
    binding = training.initialization_binding.add()
    binding.key = "w"
    binding.value = "w0"
    model.model_version = 3
    model.domain = "sinter.test"
    return model


def main():
    # convert_model_to_external_data refuses to run when the weights file exists (it checks relative to
    # the working directory), and save_model appends to it, so start without one.
    os.chdir(HERE)
    weights = os.path.join(HERE, "external.weights.bin")
    if os.path.exists(weights):
        os.remove(weights)
    models = {
        "attributes.onnx": attributes_model(),
        "initializers.onnx": initializers_model(),
        "external.onnx": external_model(),
        "old_opset.onnx": old_opset_model(),
        "multi_domain.onnx": multi_domain_model(),
    }
    for name, model in models.items():
        path = os.path.join(HERE, name)
        if name == "external.onnx":
            # Writes the tensors that convert_model_to_external_data marked to the weights file.
            onnx.save_model(model, path)
        else:
            with open(path, "wb") as f:
                f.write(model.SerializeToString(deterministic=True))
        print(f"wrote {name} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
