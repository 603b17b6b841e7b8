#!/usr/bin/env python3
"""Structurally minimizes a crashing ONNX input for the decode_import fuzz target.

libFuzzer's byte-level `cargo fuzz tmin` rarely shrinks protobuf (deleting a byte breaks a length
prefix), so this deletes whole messages instead: nodes, graph inputs/outputs/initializers, value
infos, attributes, node inputs/outputs, opset imports and doc strings, greedily and repeatedly,
keeping a deletion when the target still panics at the same source location with the same
first line of its message.

    python3 fuzz/minimize_onnx.py fuzz/target/x86_64-unknown-linux-gnu/release/decode_import \
        fuzz/artifacts/decode_import/crash-... minimized.onnx
"""
import re
import subprocess
import sys

import onnx


def panic_site(binary, data):
    """Where and why running `binary` on `data` panics (`file:line` and the message's first line),
    or None if it does not crash."""
    path = "/tmp/minimize_onnx_candidate.onnx"
    with open(path, "wb") as f:
        f.write(data)
    run = subprocess.run([binary, path], capture_output=True, text=True, errors="replace")
    if run.returncode == 0:
        return None
    match = re.search(r"panicked at ([^\n]*):\n([^\n]*)", run.stderr)
    return match.groups() if match else ("deadly signal", run.stderr[-200:])


def candidates(model):
    """Yields (description, function that applies one deletion to a copy of the model)."""
    graph_fields = ["node", "input", "output", "initializer", "value_info", "sparse_initializer"]
    for field in graph_fields:
        for idx in range(len(getattr(model.graph, field))):
            yield f"graph.{field}[{idx}]", lambda m, f=field, i=idx: getattr(m.graph, f).pop(i)
    for node_idx, node in enumerate(model.graph.node):
        for field in ["attribute", "input", "output"]:
            for idx in range(len(getattr(node, field))):
                yield (
                    f"node[{node_idx}].{field}[{idx}]",
                    lambda m, n=node_idx, f=field, i=idx: getattr(m.graph.node[n], f).pop(i),
                )
        for field in ["name", "doc_string"]:
            if getattr(node, field):
                yield f"node[{node_idx}].{field}", lambda m, n=node_idx, f=field: m.graph.node[
                    n
                ].ClearField(f)
    for idx in range(len(model.opset_import)):
        yield f"opset_import[{idx}]", lambda m, i=idx: m.opset_import.pop(i)
    for field in ["doc_string", "producer_name", "producer_version", "domain", "metadata_props"]:
        if model.HasField(field) if field != "metadata_props" else len(model.metadata_props):
            yield f"model.{field}", lambda m, f=field: m.ClearField(f)
    for field in ["doc_string", "name"]:
        if getattr(model.graph, field):
            yield f"graph.{field}", lambda m, f=field: m.graph.ClearField(f)


def main():
    binary, crash_path, out_path = sys.argv[1:4]
    data = open(crash_path, "rb").read()
    site = panic_site(binary, data)
    if site is None:
        sys.exit("the input does not crash the target")
    print(f"crash at {site}, {len(data)} bytes")
    model = onnx.ModelProto()
    model.ParseFromString(data)
    best = model.SerializeToString()
    if panic_site(binary, best) != site:
        # Re-encoding changed the crash (unknown fields, non-canonical encoding): keep the bytes.
        sys.exit("re-encoding the model loses the crash; minimize by hand")
    changed = True
    while changed:
        changed = False
        for description, apply in candidates(model):
            trial = onnx.ModelProto()
            trial.CopyFrom(model)
            apply(trial)
            encoded = trial.SerializeToString()
            if panic_site(binary, encoded) == site:
                print(f"removed {description}: {len(encoded)} bytes")
                model, best, changed = trial, encoded, True
                break
    with open(out_path, "wb") as f:
        f.write(best)
    print(f"{len(best)} bytes -> {out_path}")


if __name__ == "__main__":
    main()
