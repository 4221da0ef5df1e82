//! `skrei`: run a node of the skrei compute network, or talk to one.
//!
//! The binary is the edge where skrei meets the world: it parses flags, reads
//! files and prints results; the rules themselves live in the `protocol` crate.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::EXIT_ERROR)
        }
    }
}
