#!/usr/bin/env python3
"""Generates tests/onnx-node/: the ONNX backend node-test cases that sinter's importer can take.

The onnx wheel (1.23.2) no longer ships `onnx/backend/test/data/node`; the cases only exist as Python code
that `onnx.backend.test.case.node.collect_testcases()` runs. This script collects them all, keeps those whose
graph uses only ONNX ops that sinter supports or folds at import (`SINTER_ONNX_OPS`) and only tensor values of
dtypes sinter has (`SINTER_DTYPES`), and writes each kept case in the ONNX backend-test layout:

    cases/<case_name>/model.onnx
    cases/<case_name>/test_data_set_<k>/input_<i>.pb     serialized TensorProto, i-th graph input
    cases/<case_name>/test_data_set_<k>/output_<i>.pb    serialized TensorProto, i-th graph output

plus two manifests (tab-separated, one header line, sorted by case name):

    cases.tsv      name, op types used, default-domain opset version, rtol, atol
    excluded.tsv   name, reason category, details (every failed check, not only the first)

Run it with the pinned onnx (see README.md and requirements.txt), from anywhere:

    /tmp/venv-onnx123/bin/python tests/onnx-node/gen_node_fixtures.py

It deletes and regenerates `cases/` and the manifests. Re-running gives byte-identical files: onnx seeds
`np.random` with 0 before every exporter, and protobuf serialization of these messages (no map fields) is
deterministic.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

ONNX_VERSION = "1.23.2"
ROOT = Path(__file__).resolve().parent
CASES_DIR = ROOT / "cases"
CASES_TSV = ROOT / "cases.tsv"
EXCLUDED_TSV = ROOT / "excluded.tsv"
DEFAULT_DOMAINS = ("", "ai.onnx")

# The ONNX ops (default domain) that sinter's importer supports, either by mapping them to an IR op or by
# folding them away at import (Constant, Identity, Dropout in inference mode, Shape/Size/ConstantOfShape on
# static shapes, ...). A case is kept only when every node of its graph is one of these. Keep this list in
# step with the ONNX importer; extending it and re-running this script adds the newly covered cases.
SINTER_ONNX_OPS = frozenset(
    """
    Neg Abs Exp Log Sqrt Reciprocal Relu LeakyRelu Sigmoid HardSigmoid HardSwish Tanh Erf Gelu Elu Selu
    Softplus Softsign Mish Clip Floor Ceil Round Sign Not Cast Identity
    Add Sub Mul Div Pow Max Min PRelu
    Equal Less Greater LessOrEqual GreaterOrEqual And Or Where
    MatMul Gemm Conv ConvTranspose MaxPool AveragePool GlobalAveragePool GlobalMaxPool
    BatchNormalization InstanceNormalization LRN Pad Resize Upsample
    ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceSumSquare ReduceLogSumExp
    ArgMax ArgMin
    Reshape Flatten Transpose Squeeze Unsqueeze Concat Split Slice Gather GatherElements Expand Tile Range
    Trilu Shape ConstantOfShape
    Softmax LogSoftmax LayerNormalization RMSNormalization GroupNormalization Attention
    RNN LSTM GRU
    Constant Dropout Size
    """.split()
)

# The tensor element types sinter has (sinter_ir::DType: F32 F64 I64 I32 I8 U8 Bool).
SINTER_DTYPES = frozenset(
    {
        TensorProto.FLOAT,
        TensorProto.DOUBLE,
        TensorProto.INT64,
        TensorProto.INT32,
        TensorProto.INT8,
        TensorProto.UINT8,
        TensorProto.BOOL,
    }
)

# Exclusion reason categories, in the order they are checked; a case's category is its first failed check.
REASON_ORDER = ("subgraph", "function", "domain", "op", "value-kind", "dtype")


def dtype_name(elem_type: int) -> str:
    if elem_type == TensorProto.UNDEFINED:
        return "undefined"
    return TensorProto.DataType.Name(elem_type).lower()


def value_kind(type_proto: onnx.TypeProto) -> str:
    """'tensor', 'sequence', 'optional', 'map', 'sparse_tensor' or 'unknown'."""
    kind = type_proto.WhichOneof("value")
    return kind.removesuffix("_type") if kind else "unknown"


def graph_attrs(node: onnx.NodeProto) -> list[str]:
    return [a.name for a in node.attribute if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)]


def node_dtypes(node: onnx.NodeProto) -> list[tuple[str, int]]:
    """Element types that a node introduces through its attributes (Cast's `to`, Constant's value, ...).

    These matter for function-expanded cases, whose intermediate values never appear as graph inputs or
    outputs: `Cast(to=FLOAT16)` in the middle of a graph needs a dtype sinter does not have."""
    found = []
    for attr in node.attribute:
        if attr.type == AttributeProto.TENSOR:
            found.append((f"{node.op_type}.{attr.name}", attr.t.data_type))
        elif attr.type == AttributeProto.TENSORS:
            found.extend((f"{node.op_type}.{attr.name}", t.data_type) for t in attr.tensors)
        elif attr.name in ("to", "dtype", "output_dtype") and attr.type == AttributeProto.INT:
            found.append((f"{node.op_type}.{attr.name}", attr.i))
    return found


def check_case(case) -> list[tuple[str, str]]:
    """Every reason the case cannot be kept, as (category, detail) pairs; empty when it is kept."""
    model = case.model
    graph = model.graph
    reasons: list[tuple[str, str]] = []

    with_subgraph = sorted({n.op_type for n in graph.node if graph_attrs(n)})
    if with_subgraph:
        reasons.append(("subgraph", "subgraph in " + ",".join(with_subgraph)))
    if model.functions:
        reasons.append(("function", "model-local functions " + ",".join(f.name for f in model.functions)))

    other_domain = sorted({f"{n.domain}:{n.op_type}" for n in graph.node if n.domain not in DEFAULT_DOMAINS})
    if other_domain:
        reasons.append(("domain", "non-default domain op " + ",".join(other_domain)))
    unsupported = sorted(
        {n.op_type for n in graph.node if n.domain in DEFAULT_DOMAINS and n.op_type not in SINTER_ONNX_OPS}
    )
    if unsupported:
        reasons.append(("op", "unsupported op " + ",".join(unsupported)))

    io_values = [("input", v) for v in graph.input] + [("output", v) for v in graph.output]
    non_tensor = sorted(
        {f"{value_kind(v.type)} {role} {v.name}" for role, v in io_values if value_kind(v.type) != "tensor"}
    )
    if non_tensor:
        reasons.append(("value-kind", "non-tensor value: " + "; ".join(non_tensor)))

    bad_dtypes = set()
    for role, v in io_values:
        if value_kind(v.type) == "tensor" and v.type.tensor_type.elem_type not in SINTER_DTYPES:
            bad_dtypes.add(f"{role} {v.name}: {dtype_name(v.type.tensor_type.elem_type)}")
    for init in graph.initializer:
        if init.data_type not in SINTER_DTYPES:
            bad_dtypes.add(f"initializer {init.name}: {dtype_name(init.data_type)}")
    for node in graph.node:
        for where, elem_type in node_dtypes(node):
            if elem_type not in SINTER_DTYPES:
                bad_dtypes.add(f"{where}: {dtype_name(elem_type)}")
    if bad_dtypes:
        reasons.append(("dtype", "unsupported dtype " + "; ".join(sorted(bad_dtypes))))
    return reasons


def to_tensor_proto(value, name: str) -> TensorProto:
    """A data-set value as the TensorProto the backend-test layout stores (named after its graph value)."""
    if isinstance(value, TensorProto):
        return value
    return numpy_helper.from_array(np.asarray(value), name)


def write_case(case) -> None:
    case_dir = CASES_DIR / case.name
    case_dir.mkdir(parents=True)
    (case_dir / "model.onnx").write_bytes(case.model.SerializeToString())
    graph = case.model.graph
    for set_idx, (inputs, outputs) in enumerate(case.data_sets):
        set_dir = case_dir / f"test_data_set_{set_idx}"
        set_dir.mkdir()
        if len(inputs) != len(graph.input) or len(outputs) != len(graph.output):
            raise ValueError(
                f"{case.name}: data set {set_idx} has {len(inputs)} inputs / {len(outputs)} outputs, "
                f"graph has {len(graph.input)} / {len(graph.output)}"
            )
        for input_idx, (value, info) in enumerate(zip(inputs, graph.input)):
            tensor = to_tensor_proto(value, info.name)
            (set_dir / f"input_{input_idx}.pb").write_bytes(tensor.SerializeToString())
        for output_idx, (value, info) in enumerate(zip(outputs, graph.output)):
            tensor = to_tensor_proto(value, info.name)
            (set_dir / f"output_{output_idx}.pb").write_bytes(tensor.SerializeToString())


def default_opset(model: onnx.ModelProto) -> str:
    versions = [str(o.version) for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    return ",".join(versions) if versions else "-"


def fmt_tol(x: float) -> str:
    return repr(float(x))


def main() -> int:
    if onnx.__version__ != ONNX_VERSION:
        print(f"expected onnx {ONNX_VERSION}, found {onnx.__version__}; see README.md", file=sys.stderr)
        return 1
    # The exporters deliberately compute inf/nan/overflowing casts; their numpy warnings are noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        cases = collect_testcases()

    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError("duplicate case names in collect_testcases()")

    if CASES_DIR.exists():
        shutil.rmtree(CASES_DIR)
    CASES_DIR.mkdir()

    kept_rows, excluded_rows = [], []
    reason_counts: Counter[str] = Counter()
    op_counts: Counter[str] = Counter()
    for case in sorted(cases, key=lambda c: c.name):
        reasons = check_case(case)
        if reasons:
            reasons.sort(key=lambda r: REASON_ORDER.index(r[0]))
            reason_counts[reasons[0][0]] += 1
            detail = " | ".join(d for _, d in reasons)
            excluded_rows.append(f"{case.name}\t{reasons[0][0]}\t{detail}")
            continue
        write_case(case)
        op_types = sorted({n.op_type for n in case.model.graph.node})
        op_counts.update(op_types)
        kept_rows.append(
            f"{case.name}\t{','.join(op_types)}\t{default_opset(case.model)}\t"
            f"{fmt_tol(case.rtol)}\t{fmt_tol(case.atol)}"
        )

    CASES_TSV.write_text("name\top_types\topset\trtol\tatol\n" + "".join(r + "\n" for r in kept_rows))
    EXCLUDED_TSV.write_text("name\tcategory\treason\n" + "".join(r + "\n" for r in excluded_rows))

    total_bytes = sum(p.stat().st_size for p in CASES_DIR.rglob("*") if p.is_file())
    print(f"collected {len(cases)}, kept {len(kept_rows)}, excluded {len(excluded_rows)}")
    for category in REASON_ORDER:
        print(f"  excluded ({category}): {reason_counts[category]}")
    print(f"cases/ holds {total_bytes} bytes in files")
    print("kept cases per op (a case counts once for every op it uses):")
    for op in sorted(op_counts):
        print(f"  {op}\t{op_counts[op]}")
    unused = sorted(SINTER_ONNX_OPS - op_counts.keys())
    print("supported ops with no kept case: " + (", ".join(unused) if unused else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
