//! `fugue bench`: speed figures printed side by side, as ratios, in one run.

mod endless;
mod generate;
mod harmonize;
mod load;
mod nade;
mod originality;
mod render;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::cli::args::{BenchArgs, BenchCommand, IngestBenchArgs, TrainBenchArgs, TrainHead};
use crate::datasets::{IngestLimits, folder_uploads, ingest};

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match &args.which {
        BenchCommand::Ingest(args) => ingest_bench(args),
        BenchCommand::Train(args) => match args.head {
            TrainHead::Token => train_bench(args),
            TrainHead::Nade => nade::run(args),
        },
        BenchCommand::Generate(args) => generate::run(args),
        BenchCommand::Load(args) => load::run(args),
        BenchCommand::Originality(args) => originality::run(args),
        BenchCommand::Harmonize(args) => harmonize::run(args),
        BenchCommand::Render(args) => render::run(args),
        BenchCommand::Endless(args) => endless::run(args),
    }
}

/// CPU time a process has used so far, in seconds: in user space and in the
/// kernel on its behalf (from `/proc/PID/stat`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuTimes {
    user: f64,
    system: f64,
}

impl CpuTimes {
    fn of(pid: u32) -> anyhow::Result<CpuTimes> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The command name may hold spaces; the fields after its closing parenthesis don't.
        let fields: Vec<&str> =
            stat.rsplit_once(')').context("reading /proc/PID/stat")?.1.split_whitespace().collect();
        let ticks =
            |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 of stat(5); the list starts at field 3.
        let per_second = clock_ticks_per_second();
        Ok(CpuTimes { user: ticks(11) / per_second, system: ticks(12) / per_second })
    }

    /// What was used since `earlier`.
    fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes { user: self.user - earlier.user, system: self.system - earlier.system }
    }
}

fn clock_ticks_per_second() -> f64 {
    let answer = Command::new("getconf").arg("CLK_TCK").output();
    answer
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The value at `share` (0 to 1) of `sorted`, which is not empty.
fn quantile(sorted: &[f64], share: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * share).round() as usize]
}

/// A memory figure of process `pid` from `/proc/PID/status` (`VmRSS`, now; `VmHWM`,
/// its peak), in MB.
fn memory_mb(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kb / 1024.0)
}

fn ingest_bench(args: &IngestBenchArgs) -> anyhow::Result<()> {
    let uploads = folder_uploads(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    if uploads.is_empty() {
        bail!("no MIDI files in {}", args.data.display());
    }
    let bytes: usize = uploads.iter().map(|upload| upload.bytes.len()).sum();
    let limits = IngestLimits::default();
    let mut best = f64::INFINITY;
    for _ in 0..args.repeat.max(1) {
        let batch = uploads.clone();
        let started = Instant::now();
        let ingested = ingest(batch, false, &limits)?;
        best = best.min(started.elapsed().as_secs_f64());
        if ingested.report.accepted.len() != uploads.len() {
            bail!("{} of {} files were rejected", ingested.report.rejected.len(), uploads.len());
        }
    }
    let files_per_second = uploads.len() as f64 / best;
    println!(
        "fugue   ingest: {} files, {:.2} MB in {best:.4} s (best of {}): {files_per_second:.0} files/s, {:.1} MB/s",
        uploads.len(),
        bytes as f64 / 1e6,
        args.repeat.max(1),
        bytes as f64 / 1e6 / best,
    );
    if let Some(python) = &args.music21_python {
        let sample: Vec<&str> =
            uploads.iter().take(args.music21_files).map(|upload| upload.file_name.as_str()).collect();
        let reference = music21_rate(python, &sample)?;
        println!(
            "music21 ingest: {} files in {:.2} s: {reference:.2} files/s",
            sample.len(),
            sample.len() as f64 / reference
        );
        println!("ratio: fugue is {:.0}x faster than music21", files_per_second / reference);
    }
    Ok(())
}

/// Runs `bench/music21_ingest.py` and returns its files per second.
fn music21_rate(python: &Path, paths: &[&str]) -> anyhow::Result<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/music21_ingest.py");
    let output = Command::new(python).arg(&script).args(paths).output().context("running music21")?;
    if !output.status.success() {
        bail!("music21 failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    report["files_per_second"].as_f64().context("music21 printed no files_per_second")
}

/// The reference's training step, in fugue: embedding → LSTM (fused op) → dense on
/// the last step → cross-entropy → backward → fugue's Adam.
fn train_bench(args: &TrainBenchArgs) -> anyhow::Result<()> {
    use tch::nn::{self, Module, VarStore};
    use tch::{Device, Kind, Tensor};

    use crate::model::lstm::Lstm;
    use crate::model::optim::{Optimizer, OptimizerConfig, OptimizerKind};

    tch::set_num_threads(args.reference.threads.max(1));
    for size in &args.sizes {
        let (layers, hidden) = layers_and_hidden(size)?;
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let embedding = nn::embedding(vs.root() / "embedding", args.vocab, args.embed, Default::default());
        let lstm = Lstm::new(&(vs.root() / "lstm"), args.embed, hidden, layers);
        let out = nn::linear(vs.root() / "out", hidden, args.vocab, Default::default());
        let config = OptimizerConfig {
            kind: OptimizerKind::Adam,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            clip_grad_norm: None,
            weight_averaging: 0.0,
        };
        let mut optimizer = Optimizer::new(&vs, config);
        let x = Tensor::randint(args.vocab, [args.batch, args.seq], (Kind::Int64, Device::Cpu));
        let y = Tensor::randint(args.vocab, [args.batch], (Kind::Int64, Device::Cpu));
        let mut step = || {
            let (hidden, _) =
                lstm.forward(&embedding.forward(&x), &lstm.zero_state(args.batch, Device::Cpu), 0.0, true);
            let logits = out.forward(&hidden.select(1, args.seq - 1));
            optimizer.backward_step(&logits.cross_entropy_for_logits(&y));
        };
        for _ in 0..5 {
            step();
        }
        let started = Instant::now();
        for _ in 0..args.steps {
            step();
        }
        let ours = f64::from(args.steps) * args.batch as f64 / started.elapsed().as_secs_f64();
        print!("train {size} batch {} seq {}: fugue {ours:.0} samples/s", args.batch, args.seq);
        if let Some(python) = &args.reference.python {
            let reference = reference_train_rate(args, python, layers, hidden)?;
            print!(", pytorch {reference:.0} samples/s, ratio {:.2}x", ours / reference);
        }
        println!();
    }
    Ok(())
}

fn reference_train_rate(
    args: &TrainBenchArgs,
    python: &Path,
    layers: i64,
    hidden: i64,
) -> anyhow::Result<f64> {
    let number = |n: i64| n.to_string();
    let mut command = Command::new(python);
    command
        .arg(&args.reference.script)
        .arg("train")
        .args(["--batch", &number(args.batch), "--seq", &number(args.seq), "--vocab", &number(args.vocab)])
        .args(["--embed", &number(args.embed), "--hidden", &number(hidden), "--layers", &number(layers)])
        .args(["--steps", &(args.steps * 20).to_string(), "--threads", &args.reference.threads.to_string()]);
    reference(command)?["samples_per_s"].as_f64().context("the reference printed no samples_per_s")
}

/// `2x512`: layers and hidden units.
fn layers_and_hidden(size: &str) -> anyhow::Result<(i64, i64)> {
    size.split_once('x')
        .and_then(|(l, h)| Some((l.parse::<i64>().ok()?, h.parse::<i64>().ok()?)))
        .with_context(|| format!("size `{size}` is not LAYERSxHIDDEN"))
}

/// Runs the PyTorch reference and returns the JSON line it prints.
fn reference(mut command: Command) -> anyhow::Result<serde_json::Value> {
    let output = command.output().context("running the PyTorch reference")?;
    if !output.status.success() {
        bail!("the PyTorch reference failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}
