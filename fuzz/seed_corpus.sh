#!/usr/bin/env bash
# Seeds the fuzz corpora from the repository's fixtures (the corpora themselves are not committed):
#   fuzz/corpus/decode_import/  the ONNX models: tests/onnx-node/cases/*/model.onnx,
#                               crates/sinter-onnx/tests/data/*.onnx, tests/models/*/model.onnx
#   fuzz/corpus/parse_sir/      the .sir graphs: tests/fixtures/ops/*/model.sir, examples/**/*.sir
# Files are named by content hash, so re-running is idempotent and duplicates collapse.
set -euo pipefail
shopt -s nullglob globstar
fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz_dir/.."

seed() {
    local target="$1"
    shift
    local out="$fuzz_dir/corpus/$target"
    mkdir -p "$out"
    for file in "$@"; do
        # A fixture folder may be mid-regeneration; skip what is not a file right now.
        [[ -f "$file" ]] || continue
        cp "$file" "$out/$(sha1sum "$file" | cut -c1-40)"
    done
    echo "$target: $(find "$out" -type f | wc -l) files in fuzz/corpus/$target"
}

seed decode_import \
    tests/onnx-node/cases/*/model.onnx \
    crates/sinter-onnx/tests/data/*.onnx \
    tests/models/*/model.onnx
seed parse_sir \
    tests/fixtures/ops/*/model.sir \
    examples/**/*.sir
