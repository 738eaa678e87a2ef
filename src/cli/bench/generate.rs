//! `fugue bench generate`: generation steps per second, side by side in one run.
//!
//! 1. One decode step (embedding → stacked LSTM → dense) for a batch of streams,
//!    with the hand-written LSTM cell and with libtorch's fused `lstm` op.
//! 2. The engine serving a real model: that many sessions at once, masking and
//!    sampling included.
//! 3. The PyTorch reference: `gen` (state carried, as fugue does) and the
//!    tutorials' `gen-window` (the last 40 tokens re-read for every new one).

use std::process::Command;
use std::time::Instant;

use std::path::Path;

use anyhow::{Context, bail};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

use super::{quantile, reference};
use crate::cli::args::GenerateBenchArgs;
use crate::devices::WeightFormat;
use crate::generate::engine::{Engine, EngineConfig, ModelToLoad, SessionEvent, SessionRequest};
use crate::generate::request::GenerateRequest;
use crate::model::artifact::{Network, Representation, read_meta, save};
use crate::model::lstm::Lstm;
use crate::model::token_net::{Head, TokenNet, TokenNetConfig};

pub fn run(args: &GenerateBenchArgs) -> anyhow::Result<()> {
    tch::set_num_threads(args.reference.threads.max(1));
    let _no_grad = tch::no_grad_guard();
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let embedding = nn::embedding(vs.root() / "embedding", args.vocab, args.embed, Default::default());
    let lstm = Lstm::new(&(vs.root() / "lstm"), args.embed, args.hidden, args.layers);
    let out = nn::linear(vs.root() / "out", args.hidden, args.vocab, Default::default());
    println!(
        "generate {}x{}, vocabulary {}, {} thread(s); steps/s (tokens/s = steps/s x batch)",
        args.layers, args.hidden, args.vocab, args.reference.threads
    );
    let (embedding, lstm, out) = (&embedding, &lstm, &out);
    for &batch in &args.batches {
        let ids = &Tensor::randint(args.vocab, [batch], (Kind::Int64, Device::Cpu));
        let cell = rate(args.steps, || {
            let mut state = lstm.zero_state(batch, Device::Cpu);
            move || {
                let (hidden, next) = lstm.step(&embedding.forward(ids), &state);
                state = next;
                out.forward(&hidden)
            }
        });
        let fused = rate(args.steps, || {
            let mut state = lstm.zero_state(batch, Device::Cpu);
            move || {
                let input = embedding.forward(ids).unsqueeze(1);
                let (hidden, next) = lstm.forward(&input, &state, 0.0, false);
                state = next;
                out.forward(&hidden.squeeze_dim(1))
            }
        });
        print!("batch {batch:>3}: cell {cell:>8.0}  fused {fused:>8.0}  (cell/fused {:.2}x)", cell / fused);
        if let Some(python) = &args.reference.python {
            let stateful = reference_rate(args, python, "gen", batch, args.vocab)?;
            print!("  pytorch gen {stateful:>8.0}  ratio {:.2}x", cell.max(fused) / stateful);
        }
        println!();
    }
    if let Some(python) = &args.reference.python {
        let window = reference_rate(args, python, "gen-window", 1, args.vocab)?;
        println!("pytorch gen-window (the tutorials' loop, batch 1, window 40): {window:.0} steps/s");
    }
    // The engine shares the threads among its workers as a server does.
    let (_, threads_each) = args.engine_layout();
    tch::set_num_threads(threads_each);
    same_model(args)?;
    engine_rates(args)
}

/// The engine against the PyTorch reference on one model: a 2×512 network (as
/// `--layers`, `--hidden`, `--embed` say, random weights) over the events
/// vocabulary of `--model`, so that the engine decodes it as it does that model.
/// One stream, and 64 at once (PyTorch batched), in the same run.
fn same_model(args: &GenerateBenchArgs) -> anyhow::Result<()> {
    let mut meta = read_meta(&args.model)?;
    let Representation::Events { vocabulary, .. } = &meta.representation else {
        bail!("{} is not an events model", args.model.display());
    };
    let vocab = vocabulary.len() as i64;
    let config = TokenNetConfig {
        vocabulary: vocab,
        embedding: args.embed,
        hidden: args.hidden,
        layers: args.layers,
        dropout: 0.0,
        recurrent_dropout: 0.0,
        head: Head::Linear,
    };
    let vs = VarStore::new(Device::Cpu);
    TokenNet::new(&vs.root(), config.clone());
    meta.network = Network::Token(config);
    let dir = tempfile::tempdir()?;
    let model_dir = dir.path().join("same-model");
    save(&model_dir, &meta, &vs, None)?;
    let (workers, threads_each) = args.engine_layout();
    // Every worker loads the model as it starts, so that the figures are of
    // generation alone, as PyTorch's (warmed up) are.
    let preload = vec![ModelToLoad { model_id: BENCH_MODEL.into(), model_dir: model_dir.clone() }];
    let formats = [WeightFormat::Fp32, WeightFormat::Fp16];
    let engines = formats.map(|format| {
        let config = EngineConfig::local(Device::Cpu, 64, format.on(Device::Cpu));
        Engine::start(&config.with_workers(workers, preload.clone()))
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    println!(
        "same model, engine (weights fp32 | fp16; {workers} worker(s) of {threads_each} thread(s)) against PyTorch (fp32, {} thread(s)): {}x{} LSTM, embedding {}, vocabulary {vocab}; tokens/s",
        args.reference.threads, args.layers, args.hidden, args.embed
    );
    let representation = &meta.representation;
    let engine_run = |engine: &Engine, sessions: i64, tokens: u32| {
        runtime.block_on(engine_rate(engine, &model_dir, representation, sessions as u64, tokens, true, None))
    };
    // A first run for each, as PyTorch's loop warms up before it times.
    for engine in &engines {
        engine_run(engine, 1, SESSION_TOKENS)?;
    }
    for sessions in [1i64, 64] {
        // One stream writes as many tokens as 8 of the 64 do, so that it runs long
        // enough to measure.
        let tokens = if sessions == 1 { 8 * SESSION_TOKENS } else { SESSION_TOKENS };
        // Alternating runs, so that a slow moment of a shared machine hits each;
        // the median of each.
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); engines.len() + 1];
        let runs = if args.reference.python.is_some() { SAME_MODEL_RUNS } else { 1 };
        for _ in 0..runs {
            for (engine, rates) in engines.iter().zip(&mut rates) {
                rates.push(engine_run(engine, sessions, tokens)?);
            }
            if let Some(python) = &args.reference.python {
                rates[engines.len()]
                    .push(reference_rate(args, python, "gen", sessions, vocab)? * sessions as f64);
            }
        }
        let medians: Vec<f64> = rates
            .iter_mut()
            .map(|rates| {
                rates.sort_by(f64::total_cmp);
                if rates.is_empty() { f64::NAN } else { quantile(rates, 0.5) }
            })
            .collect();
        let [fp32, fp16, pytorch] = medians[..] else { unreachable!("two engines and the reference") };
        print!("{sessions:>3} session(s): engine fp32 {fp32:>8.0}  engine fp16 {fp16:>8.0}");
        if args.reference.python.is_some() {
            print!(
                "  pytorch gen {pytorch:>8.0}  engine/pytorch fp32 {:.2}x fp16 {:.2}x  (medians of {runs} alternating runs)",
                fp32 / pytorch,
                fp16 / pytorch
            );
        }
        println!();
    }
    Ok(())
}

/// Steps per second of the closure `make` returns, after 20 warm-up steps.
fn rate<F: FnMut() -> Tensor>(steps: u32, make: impl FnOnce() -> F) -> f64 {
    let mut step = make();
    for _ in 0..20 {
        let _ = step();
    }
    let started = Instant::now();
    for _ in 0..steps {
        let _ = step();
    }
    f64::from(steps) / started.elapsed().as_secs_f64()
}

fn reference_rate(
    args: &GenerateBenchArgs,
    python: &Path,
    mode: &str,
    batch: i64,
    vocab: i64,
) -> anyhow::Result<f64> {
    let number = |n: i64| n.to_string();
    let mut command = Command::new(python);
    command
        .arg(&args.reference.script)
        .arg(mode)
        .args(["--batch", &number(batch), "--vocab", &number(vocab), "--embed", &number(args.embed)])
        .args(["--hidden", &number(args.hidden), "--layers", &number(args.layers), "--seq", "40"])
        .args(["--steps", &args.steps.to_string(), "--threads", &args.reference.threads.to_string()]);
    reference(command)?["steps_per_s"].as_f64().context("the reference printed no steps_per_s")
}

/// The engine serving `args.model` to 1, 4, 16 and 64 sessions at once; for a
/// model with parts, also with its parts' masks against one stream without them,
/// at 1 and 64 sessions, side by side.
fn engine_rates(args: &GenerateBenchArgs) -> anyhow::Result<()> {
    let (workers, _) = args.engine_layout();
    let preload = vec![ModelToLoad { model_id: BENCH_MODEL.into(), model_dir: args.model.clone() }];
    let config = EngineConfig::local(Device::Cpu, 64, WeightFormat::default());
    let engine = Engine::start(&config.with_workers(workers, preload));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let representation = read_meta(&args.model)?.representation;
    let model = args.model.display();
    let served = |sessions, parts, limit| {
        runtime.block_on(engine_rate(
            &engine,
            &args.model,
            &representation,
            sessions,
            SESSION_TOKENS,
            parts,
            limit,
        ))
    };
    served(1, true, None)?; // a first run, as PyTorch warms up before it times
    for sessions in [1u64, 4, 16, 64] {
        let rate = served(sessions, true, None)?;
        println!("engine, {model} ({sessions:>2} sessions): {rate:>8.0} tokens/s in all");
    }
    let has_parts = matches!(&representation, Representation::Events { config, .. } if config.max_parts > 0);
    if has_parts {
        for sessions in [1u64, 64] {
            // Alternating runs, so that a slow moment of a shared machine hits both.
            let (mut masked, mut plain) = (0.0, 0.0);
            for _ in 0..3 {
                masked += served(sessions, true, None)?;
                plain += served(sessions, false, None)?;
            }
            println!(
                "engine, {model} ({sessions:>2} sessions): with part masks {:>8.0}, one stream {:>8.0} tokens/s (masks/none {:.2}x)",
                masked / 3.0,
                plain / 3.0,
                masked / plain
            );
        }
    }
    // The copy limit: the same sessions with and without `max_copied_notes`,
    // alternating, against the model's originality index.
    if let Some(index) = crate::model::artifact::read_originality(&args.model)? {
        let index = std::sync::Arc::new(index);
        for sessions in [1u64, 64] {
            let (mut guarded, mut free) = (0.0, 0.0);
            for _ in 0..3 {
                let limit = Some((index.clone(), COPY_LIMIT));
                guarded += served(sessions, true, limit)?;
                free += served(sessions, true, None)?;
            }
            println!(
                "engine, {model} ({sessions:>2} sessions): with max_copied_notes {COPY_LIMIT} {:>8.0}, without {:>8.0} tokens/s (guard/none {:.2}x)",
                guarded / 3.0,
                free / 3.0,
                guarded / free
            );
        }
    }
    Ok(())
}

/// The id the benchmark's engines know their model by.
const BENCH_MODEL: &str = "bench";

/// The copy limit the engine benchmark runs with.
const COPY_LIMIT: u32 = 4;

/// Alternating runs of the engine and of PyTorch on the same model.
const SAME_MODEL_RUNS: usize = 3;

/// Tokens each session of the engine's figures writes, unless said otherwise.
const SESSION_TOKENS: u32 = 400;

/// Tokens per second of `sessions` sessions of `tokens` tokens stepped together; with
/// `parts`, a model with parts writes the parts its corpus typically has; with
/// `copy_limit`, each session's decoder masks copies longer than it.
async fn engine_rate(
    engine: &Engine,
    model_dir: &Path,
    representation: &Representation,
    sessions: u64,
    tokens: u32,
    parts: bool,
    copy_limit: Option<(std::sync::Arc<crate::analysis::originality::OriginalityIndex>, u32)>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut receivers = Vec::new();
    for seed in 0..sessions {
        let request: GenerateRequest = serde_json::from_value(
            serde_json::json!({"length": {"tokens": tokens}, "seed": seed, "end_on_bar": false}),
        )?;
        let validated = request.check(seed)?;
        let parts =
            if parts { crate::generate::parts::for_model(representation, &validated)? } else { Vec::new() };
        let session = SessionRequest {
            model_id: BENCH_MODEL.into(),
            model_dir: model_dir.to_owned(),
            validated,
            parts,
            given: None,
            primer: None,
            copy_guard: copy_limit.as_ref().map(|(index, max)| {
                crate::analysis::originality::CopyGuard::new(
                    index.clone(),
                    *max,
                    &crate::generate::compose::GUARDED,
                )
            }),
            hold: None,
            controls: None,
            span: tracing::Span::none(),
        };
        receivers.push(engine.submit(session).map_err(|_| anyhow::anyhow!("engine busy"))?);
    }
    let mut tokens = 0;
    for mut receiver in receivers {
        while let Some(event) = receiver.recv().await {
            match event {
                SessionEvent::Finished(piece) => tokens += piece.tokens,
                SessionEvent::Failed(message) => anyhow::bail!(message),
                SessionEvent::Notes(_) => {}
            }
        }
    }
    Ok(f64::from(tokens) / started.elapsed().as_secs_f64())
}
