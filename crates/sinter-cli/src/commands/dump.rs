//! `sinter dump`: load (parse or import), verify and print a model canonically.
//!
//! `--stage import` prints the graph as loaded: a `.sir` file as parsed, an `.onnx` file as the
//! importer builds it. The later stages are refused with "not available yet" until they exist.
//!
//! The text output is the printer's canonical form, so `sinter dump` is idempotent: dumping its own
//! output prints the same text again. With `--weights-out PATH`, constants with more than
//! `--inline-limit` elements go to PATH and the text refers to them by PATH's file name, which is how
//! the parser finds them when the text is saved in the same folder as PATH.

use super::{load_model, NotAvailable};
use crate::args::{DumpArgs, DumpFormat, Stage};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use sinter_ir::text::{print_graph, print_graph_with_weights, PrintOptions};
use std::io::Write;

pub fn dump(args: &DumpArgs, out: &mut impl Write) -> Result<()> {
    if args.stage != Stage::Import {
        let stage_name = args
            .stage
            .to_possible_value()
            .map(|value| value.get_name().to_string())
            .unwrap_or_default();
        return Err(NotAvailable(format!(
            "the `{stage_name}` stage is not available yet; only `--stage import` exists"
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
