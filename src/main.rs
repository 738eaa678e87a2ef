use std::process::ExitCode;

use clap::Parser;
use fugue::cli::args::Cli;
use fugue::observability::init_tracing;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = init_tracing(cli.logging.log_format, &cli.logging.log) {
        eprintln!("fugue: {error:#}");
        return ExitCode::from(2);
    }
    match fugue::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "fugue stopped with an error");
            ExitCode::FAILURE
        }
    }
}
