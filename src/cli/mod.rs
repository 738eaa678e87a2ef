//! The command line: its argument tree, and the commands that run outside the
//! server (train, generate, render, eval, tokens, bench).

pub mod args;
mod bench;
mod corpus;
mod eval;
mod evaluate;
mod generate;
mod index;
mod render;
mod tokens;
mod train;

use tch::Device;

use self::args::{Cli, Command, TorchArgs};
use crate::devices::DeviceReport;

/// Runs the command to its end (`serve` and `worker` until a shutdown signal).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // Training processes log as the worker that starts them does.
    let attempt_env = cli.logging.env();
    match cli.command {
        Command::Serve(args) => async_runtime()?.block_on(async {
            let mut settings = args.settings();
            settings.training.attempt_env = attempt_env;
            let app = crate::app::App::build(settings).await?;
            app.run(crate::shared::shutdown_signal()).await
        }),
        Command::Worker(args) => {
            let mut settings = args.settings();
            settings.training.attempt_env = attempt_env;
            async_runtime()?.block_on(crate::jobs::worker::run_standalone(settings))
        }
        Command::Openapi => print_json(&crate::api::openapi()),
        Command::Devices => print_json(&DeviceReport::probe()),
        Command::Bench(args) => bench::run(&args),
        Command::Train(args) => train::train(&args),
        Command::Eval(args) => eval::eval(&args),
        Command::Tokens(args) => tokens::tokens(&args),
        Command::Index(args) => index::index(&args),
        Command::Evaluate(args) => evaluate::evaluate(&args),
        Command::Generate(args) => generate::generate(&args),
        Command::Render(args) => render::render(&args),
        Command::TrainAttempt(args) => crate::jobs::attempt::run(&args.settings()),
    }
}

fn async_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

impl TorchArgs {
    /// Sets the thread count and returns the device to use.
    pub(crate) fn apply(&self) -> Device {
        tch::set_num_threads(self.threads.max(1));
        let cuda = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        self.device.unwrap_or_else(|| crate::devices::default_devices(cuda)[0]).0
    }
}
