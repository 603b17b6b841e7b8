//! `sinter dump`: load (parse or import), verify and print a model canonically.
//!
//! `--stage import` prints the graph as loaded: a `.sir` file as parsed, an `.onnx` file as the
//! importer builds it. `loops`, `clif` and `asm` compile the graph for the JIT at concrete shapes
//! (`--dim`, symbols default to 1) and print every kernel at that stage, each headed by the graph
//! nodes it came from. `optimized` prints the graph after `sinter-opt`; with `--stats` and
//! `--explain` it adds `;` comment lines (so the output still parses) with op counts, rule firings,
//! phase statistics and the rule behind each rewritten node.
//!
//! The text output is the printer's canonical form, so `sinter dump` is idempotent: dumping its own
//! output prints the same text again. With `--weights-out PATH`, constants with more than
//! `--inline-limit` elements go to PATH and the text refers to them by PATH's file name, which is how
//! the parser finds them when the text is saved in the same folder as PATH.

use super::{load_model, sized_inputs};
use crate::args::{DumpArgs, DumpFormat, Stage};
use anyhow::{bail, Context, Result};
use sinter_ir::text::{print_graph, print_graph_with_weights, PrintOptions};
use sinter_jit::CompileOptions;
use std::collections::BTreeMap;
use std::io::Write;

pub fn dump(args: &DumpArgs, out: &mut impl Write) -> Result<()> {
    if matches!(args.stage, Stage::Loops | Stage::Clif | Stage::Asm) {
        let graph = load_model(&args.model)?.graph;
        return dump_compiled(args, graph, out);
    }
    if (args.stats || args.explain) && args.stage != Stage::Optimized {
        bail!("`--stats` and `--explain` apply to `--stage optimized`");
    }
    let mut graph = load_model(&args.model)?.graph;
    if args.stage == Stage::Optimized {
        let before = op_counts(&graph);
        let optimized = sinter_opt::optimize(graph, &sinter_opt::OptimizeOptions::default())
            .map_err(|err| anyhow::anyhow!("the graph optimizer failed: {err}"))?;
        graph = optimized.graph;
        if args.stats {
            write_stats(out, &before, &graph, &optimized.report)?;
        }
        if args.explain {
            write_explanations(out, &optimized.report)?;
        }
    }
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
        optimize: (!args.no_opt).then(sinter_opt::OptimizeOptions::default),
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

/// Op name -> count, in name order.
fn op_counts(graph: &sinter_ir::Graph) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for id in graph.node_ids() {
        if let Some(op) = graph.node(id).op() {
            *counts.entry(op.name()).or_default() += 1;
        }
    }
    counts
}

fn write_stats(
    out: &mut impl Write,
    before_counts: &BTreeMap<&'static str, usize>,
    after: &sinter_ir::Graph,
    report: &sinter_opt::OptimizeReport,
) -> Result<()> {
    let after_counts = op_counts(after);
    writeln!(out, "; ops (before -> after):")?;
    let names: std::collections::BTreeSet<&str> = before_counts
        .keys()
        .chain(after_counts.keys())
        .copied()
        .collect();
    for name in names {
        let (b, a) = (
            before_counts.get(name).copied().unwrap_or(0),
            after_counts.get(name).copied().unwrap_or(0),
        );
        writeln!(out, ";   {name}: {b} -> {a}")?;
    }
    writeln!(out, "; rules fired:")?;
    for (rule, count) in &report.rule_counts {
        writeln!(out, ";   {rule}: {count}")?;
    }
    for phase in &report.phases {
        writeln!(
            out,
            "; phase {}: {} iterations, {}, {} e-nodes in {} classes; search {:.2} ms, apply {:.2} ms, rebuild {:.2} ms",
            phase.phase,
            phase.iterations,
            phase.stop_reason,
            phase.egraph_nodes,
            phase.egraph_classes,
            phase.search_time.as_secs_f64() * 1e3,
            phase.apply_time.as_secs_f64() * 1e3,
            phase.rebuild_time.as_secs_f64() * 1e3
        )?;
    }
    writeln!(
        out,
        "; estimated cost {:.0} -> {:.0}; {} weight-only nodes folded",
        report.cost_before, report.cost_after, report.n_folded
    )?;
    writeln!(
        out,
        "; time: conversion {:.2} ms, saturation {:.2} ms, extraction {:.2} ms, folding {:.2} ms",
        report.conversion_time.as_secs_f64() * 1e3,
        report.saturation_time.as_secs_f64() * 1e3,
        report.extraction_time.as_secs_f64() * 1e3,
        report.fold_time.as_secs_f64() * 1e3
    )?;
    Ok(())
}

fn write_explanations(out: &mut impl Write, report: &sinter_opt::OptimizeReport) -> Result<()> {
    writeln!(
        out,
        "; rewritten nodes (op <- rule, at the source node it replaces; every rule that rewrote it):"
    )?;
    for explanation in &report.explanations {
        writeln!(
            out,
            ";   {} <- {} at `{}` ({})",
            explanation.op,
            explanation.rule,
            explanation.label,
            explanation.rewrites.join(", ")
        )?;
    }
    Ok(())
}
