//! `rkube-certs`: creates (or completes) a cluster's certificate directory; see `rkube_pki::Args`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use rkube_pki::Args;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            // Bad input exits 1 (clap's own default is 2); --help and --version exit 0.
            let _ = err.print();
            return if err.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.dir.clone();
    let report = args.into_pki()?.ensure().with_context(|| format!("creating the PKI in {}", dir.display()))?;
    for (path, outcome) in &report.files {
        println!("{outcome} {}", path.display());
    }
    Ok(())
}
