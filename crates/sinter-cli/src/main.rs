//! `sinter`: the command-line driver.
//!
//! `main` only parses arguments, dispatches to `commands`, and turns errors into messages and exit
//! codes: 0 on success, 1 on any error (bad model, bad inputs, failed run), 2 on usage errors (clap's
//! own) and for features that are not available yet, so scripts can tell "wrong" from "not yet".
//! Nothing derived from user input may panic; every failure is an `anyhow` error with context.

mod args;
mod commands;
mod npy;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (`sinter dump big.sir | head`) is the reader's choice, not a failure.
        Err(err) if commands::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if commands::is_not_available(&err) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
