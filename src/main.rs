use std::process::ExitCode;

use clap::Parser;
use fugue::app::App;
use fugue::config::{Cli, Command};
use fugue::devices::DeviceReport;
use fugue::observability::init_tracing;
use fugue::shared::shutdown_signal;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = init_tracing(&cli.logging) {
        eprintln!("fugue: {error:#}");
        return ExitCode::from(2);
    }
    let outcome = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Openapi => print_json(&fugue::api::openapi()),
        Command::Devices => print_json(&DeviceReport::probe()),
        Command::Bench(args) => fugue::bench::run(&args),
        Command::Train(args) => fugue::cli::train(&args),
        Command::Eval(args) => fugue::cli::eval(&args),
        Command::Tokens(args) => fugue::cli::tokens(&args),
        Command::Generate(args) => fugue::cli::generate(&args),
        Command::Worker(args) => worker(&args),
        Command::TrainAttempt(args) => fugue::jobs::attempt::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "fugue stopped with an error");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &fugue::config::ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let app = App::build(args).await?;
        app.run(shutdown_signal()).await
    })
}

fn worker(args: &fugue::config::WorkerArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(fugue::jobs::worker::run_standalone(args))
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
