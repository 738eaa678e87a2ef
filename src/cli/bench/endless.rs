//! `fugue bench endless`: one endless session of the engine, its clock simulated
//! (written as fast as the device allows, so an hour of music takes minutes),
//! with this process's RSS at checkpoints; then a stop, and what it would store.

use std::time::Instant;

use anyhow::{Context, bail};
use tokio::sync::mpsc;

use super::memory_mb;
use crate::cli::args::EndlessBenchArgs;
use crate::devices::WeightFormat;
use crate::generate::engine::{
    ENDLESS_KEPT_BARS, Engine, EngineConfig, SessionControl, SessionEvent, SessionRequest,
};
use crate::generate::request::{GenerateRequest, Pacing};

pub fn run(args: &EndlessBenchArgs) -> anyhow::Result<()> {
    tch::set_num_threads(args.threads.max(1));
    let engine = Engine::start(&EngineConfig::local(tch::Device::Cpu, 1, WeightFormat::default()));
    let representation = crate::model::artifact::read_meta(&args.model)?.representation;
    let request: GenerateRequest = serde_json::from_value(
        serde_json::json!({"length": {"endless": true}, "pacing": "realtime", "seed": args.seed}),
    )?;
    let mut validated = request.check(args.seed)?;
    // The simulated clock: nothing waits for a listener.
    validated.pacing = Pacing::Fast;
    let parts = crate::generate::parts::for_model(&representation, &validated)?;
    let (controls, controlled) = mpsc::unbounded_channel();
    let session = SessionRequest {
        model_id: "bench".into(),
        model_dir: args.model.clone(),
        validated,
        parts,
        given: None,
        primer: None,
        copy_guard: None,
        hold: None,
        controls: Some(controlled),
        span: tracing::Span::none(),
    };
    let mut events = engine.submit(session).map_err(|refused| anyhow::anyhow!("{refused:?}"))?;
    let checkpoints = 10u64;
    let every = (args.notes / checkpoints).max(1);
    let (started, mut checkpoint) = (Instant::now(), Instant::now());
    let (mut notes, mut music_seconds, mut last_beat) = (0u64, 0.0f64, 0.0f64);
    let mut rss = Vec::new();
    println!("endless: {} on the CPU, clock simulated, {} notes", args.model.display(), args.notes);
    println!("{:>8} {:>12} {:>8} {:>9} {:>9}", "notes", "music (min)", "bars", "RSS (MB)", "notes/s");
    let piece = loop {
        match events.blocking_recv().context("the engine stopped")? {
            SessionEvent::Notes(batch) => {
                for note in &batch {
                    notes += 1;
                    music_seconds = music_seconds.max(note.start_seconds);
                    last_beat = last_beat.max(note.start_beat);
                    if notes % every == 0 {
                        let mb = memory_mb(std::process::id(), "VmRSS")?;
                        rss.push(mb);
                        let rate = every as f64 / checkpoint.elapsed().as_secs_f64();
                        checkpoint = Instant::now();
                        println!(
                            "{notes:>8} {:>12.1} {:>8.0} {mb:>9.1} {rate:>9.0}",
                            music_seconds / 60.0,
                            last_beat / 4.0
                        );
                    }
                    if notes == args.notes {
                        let _ = controls.send(SessionControl::Stop);
                    }
                }
            }
            SessionEvent::Finished(piece) => break piece,
            SessionEvent::Failed(failure) => bail!(failure),
        }
    };
    let onsets = piece.notes.iter().map(|note| note.start_beat);
    let (first_onset, last_onset) =
        onsets.fold((f64::MAX, 0.0f64), |(low, high), at| (low.min(at), high.max(at)));
    let stored_bars = (last_onset / 4.0).ceil();
    let (first, last) = (rss.get(1).copied().unwrap_or_default(), rss.last().copied().unwrap_or_default());
    println!(
        "{notes} notes ({:.1} min of music, {:.0} bars) in {:.1} s; RSS {first:.1} MB at the second checkpoint, \
         {last:.1} MB at the last ({:+.1} MB)",
        music_seconds / 60.0,
        last_beat / 4.0,
        started.elapsed().as_secs_f64(),
        last - first
    );
    println!(
        "stopped: the stored piece keeps {} notes over {:.0} bars (the last {ENDLESS_KEPT_BARS} bars at most)",
        piece.notes.len(),
        stored_bars
    );
    if args.json {
        let summary = serde_json::json!({
            "notes": notes, "bars": last_beat / 4.0, "music_seconds": music_seconds, "rss_mb": rss,
            "stored_notes": piece.notes.len(), "stored_bars": stored_bars, "stored_first_onset": first_onset,
        });
        println!("{summary}");
    }
    Ok(())
}
