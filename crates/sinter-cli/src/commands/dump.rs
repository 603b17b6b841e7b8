//! `sinter dump`: load (parse or import), verify and print a model canonically.
//!
//! `--stage import` prints the graph as loaded: a `.sir` file as parsed, an `.onnx` file as the
//! importer builds it. `loops`, `clif` and `asm` compile the graph for the JIT at concrete shapes
//! (`--dim`, symbols default to 1) and print every kernel at that stage, each headed by the graph
//! nodes it came from. `optimized` is refused with "not available yet" until the optimizer exists.
//!
//! The text output is the printer's canonical form, so `sinter dump` is idempotent: dumping its own
//! output prints the same text again. With `--weights-out PATH`, constants with more than
//! `--inline-limit` elements go to PATH and the text refers to them by PATH's file name, which is how
//! the parser finds them when the text is saved in the same folder as PATH.

use super::{load_model, sized_inputs, NotAvailable};
use crate::args::{DumpArgs, DumpFormat, Stage};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use sinter_ir::text::{print_graph, print_graph_with_weights, PrintOptions};
use sinter_jit::CompileOptions;
use std::io::Write;

pub fn dump(args: &DumpArgs, out: &mut impl Write) -> Result<()> {
    if matches!(args.stage, Stage::Loops | Stage::Clif | Stage::Asm) {
        let graph = load_model(&args.model)?.graph;
        return dump_compiled(args, graph, out);
    }
    if args.stage != Stage::Import {
        let stage_name = args
            .stage
            .to_possible_value()
            .map(|value| value.get_name().to_string())
            .unwrap_or_default();
        return Err(NotAvailable(format!(
            "the `{stage_name}` stage is not available yet (the graph optimizer does not exist yet)"
        ))
        .into());
    }
    let graph = load_model(&args.model)?.graph;
    let text = match (args.format, &args.weights_out) {
        (DumpFormat::Text, None) => print_graph(&graph, &PrintOptions::default()),
        (DumpFormat::Text, Some(weights_path)) => {
            let Some(file_name) = weights_path.file_name().and_then(|name| name.to_str()) else {
                bail!(
                    "`--weights-out {}` needs a UTF-8 file name",
                    weights_path.display()
                );
            };
            let options = PrintOptions {
                inline_limit: args.inline_limit,
                weights_file: Some(file_name.to_string()),
            };
            let printed = print_graph_with_weights(&graph, &options);
            std::fs::write(weights_path, &printed.weights)
                .with_context(|| format!("cannot write `{}`", weights_path.display()))?;
            printed.text
        }
        (DumpFormat::Dot, None) => sinter_ir::dot::to_dot(&graph),
        (DumpFormat::Dot, Some(_)) => bail!("`--weights-out` applies to `--format text` only"),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Compiles `graph` for the JIT at the `--dim` sizes and prints every kernel at the requested stage.
fn dump_compiled(args: &DumpArgs, graph: sinter_ir::Graph, out: &mut impl Write) -> Result<()> {
    let (inputs, defaulted) = sized_inputs(&graph, &args.dims);
    let described: Vec<(&str, sinter_ir::DType, &[usize])> = inputs
        .iter()
        .map(|input| (input.name.as_str(), input.dtype, input.shape.as_slice()))
        .collect();
    let bindings = sinter_ir::bind_inputs(&graph, &described)?;
    let options = CompileOptions {
        threads: args.threads.map(usize::from),
        dumps: args.stage != Stage::Loops,
        ..CompileOptions::default()
    };
    let compiled = sinter_jit::compile(graph, &options)
        .map_err(|err| anyhow::anyhow!("cannot compile the model for the JIT: {err}"))?;
    let program = compiled
        .program_for(&bindings)
        .map_err(|err| anyhow::anyhow!("cannot compile the model for the JIT: {err}"))?;
    for symbol in &defaulted {
        writeln!(out, "; `{symbol}` = 1 (size it with `--dim {symbol}=N`)")?;
    }
    if args.stage == Stage::Loops {
        out.write_all(sinter_loops::text::print_program(program.program()).as_bytes())?;
        return Ok(());
    }
    for call in &program.program().calls {
        let Some(dump) = program.dump(&call.kernel.name) else {
            anyhow::bail!("the JIT kept no dump of kernel `{}`", call.kernel.name);
        };
        let text = if args.stage == Stage::Clif {
            &dump.optimized_clif
        } else {
            &dump.disasm
        };
        writeln!(
            out,
            "; kernel {} from {}",
            dump.name,
            call.kernel.origins.join(", ")
        )?;
        writeln!(out, "{}", text.trim_end())?;
        writeln!(out)?;
    }
    Ok(())
}
