//! `sinter`: the command-line driver.
//!
//! `main` only parses arguments, dispatches to `commands`, and turns errors into messages and exit
//! codes, so scripts can tell "wrong" from "not yet":
//! - `dump` and `run`: 0 on success, 1 on any error (bad model, bad inputs, failed run), 2 on usage
//!   errors (clap's own) and for features that are not available yet (the optimizer stage, ONNX
//!   ops the importer does not support).
//! - `check`: 0 when every output matches, 1 when some output differs, 2 when the model could not be
//!   run or compared (import failure, unsupported op, bad or missing files, usage errors, features
//!   not available yet).
//!
//! Nothing derived from user input may panic; every failure is an `anyhow` error with context.

mod args;
mod commands;
mod npy;
mod pb;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let is_check = matches!(cli.command, args::Command::Check(_));
    match commands::execute(cli.command) {
        Ok(commands::Outcome::Success) => ExitCode::SUCCESS,
        Ok(commands::Outcome::Mismatch) => ExitCode::FAILURE,
        // A closed stdout (`sinter dump big.sir | head`) is the reader's choice, not a failure.
        // `check` decides its verdict before printing and handles a closed pipe itself.
        Err(err) if !is_check && commands::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if is_check || commands::is_not_available(&err) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
