//! `fugue bench`: speed figures printed side by side, as ratios, in one run.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::config::{BenchArgs, BenchCommand, IngestBenchArgs};
use crate::datasets::{IngestLimits, folder_uploads, ingest};

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match &args.which {
        BenchCommand::Ingest(args) => ingest_bench(args),
    }
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
