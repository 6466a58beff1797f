//! rkubectl: the kubectl-like command-line client of rkube.
//!
//! Start with [`cli`] (the commands and flags) and [`commands`] (one module
//! per command); objects are shown by [`printers`], errors worded by [`report`].

mod cli;
mod commands;
mod duration;
mod manifests;
mod md5;
mod printers;
mod report;
mod resources;
mod revisions;
mod session;
mod strategic_merge;

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts");
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(message) = report::message(&e) {
                eprintln!("{message}");
            }
            e.downcast_ref::<report::ExitWith>().map_or(ExitCode::FAILURE, |code| ExitCode::from(code.0))
        }
    }
}
