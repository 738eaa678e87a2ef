//! `fugue bench render`: the real-time factor of rendering a four-part piece
//! through the SoundFont on one core (the render is one thread).

use std::time::Instant;

use anyhow::Context;

use crate::audio::{CHANNELS, CHUNK_FRAMES, Render, load_font};
use crate::cli::args::RenderBenchArgs;
use crate::midi::{Note, Part, Score, TempoChange};

pub fn run(args: &RenderBenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let font = load_font(&args.soundfont)?;
    println!("font {}: loaded in {:.2} s", args.soundfont.display(), started.elapsed().as_secs_f64());
    let (score, what) = match &args.midi {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            (crate::midi::read(&bytes)?, path.display().to_string())
        }
        None => (quartet(args.bars), format!("generated wind quartet, {} bars", args.bars)),
    };
    let mut best = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    let mut seconds = 0.0;
    let mut checksum = 0i64;
    for _ in 0..args.repeat.max(1) {
        let started = Instant::now();
        let cpu_started = thread_cpu_seconds();
        let mut render = Render::new(&font, &score);
        let mut samples = Vec::with_capacity(CHUNK_FRAMES * CHANNELS);
        let mut bytes = Vec::with_capacity(CHUNK_FRAMES * CHANNELS * 2);
        loop {
            samples.clear();
            if !render.next_chunk(&mut samples) {
                break;
            }
            // What the server does with each chunk: little-endian bytes.
            bytes.clear();
            bytes.extend(samples.iter().flat_map(|sample| sample.to_le_bytes()));
            checksum = checksum.wrapping_add(i64::from(bytes[bytes.len() / 2]));
        }
        best = best.min(started.elapsed().as_secs_f64());
        if let (Some(from), Some(to)) = (cpu_started, thread_cpu_seconds()) {
            best_cpu = best_cpu.min(to - from);
        }
        seconds = render.seconds();
    }
    println!(
        "render: {what}: {} parts, {} notes, {seconds:.1} s of audio in {best:.3} s (best of {}): {:.0}x real time on one core (checksum {checksum})",
        score.parts.len(),
        score.note_count(),
        args.repeat.max(1),
        seconds / best,
    );
    if best_cpu.is_finite() {
        // On a shared machine the wall clock counts other processes' turns too.
        println!(
            "render: {best_cpu:.3} s of this thread's CPU time (best of {}): {:.0}x real time per core-second",
            args.repeat.max(1),
            seconds / best_cpu
        );
    }
    Ok(())
}

/// CPU time this thread has used, from Linux's `/proc/thread-self/schedstat`
/// (nanoseconds on the CPU, its first field); `None` elsewhere.
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanos / 1e9)
}

/// Four parts (flute, clarinet, bassoon, tuba: the README's quartet) at 100 bpm,
/// eighth and quarter notes in a seeded walk, each part in its range.
fn quartet(bars: u32) -> Score {
    const TICKS: u64 = 480;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let voices = [(73u8, 62u8, 79u8), (71, 55, 72), (70, 48, 67), (58, 40, 60)];
    let end = u64::from(bars) * 4 * TICKS;
    let parts = voices
        .iter()
        .enumerate()
        .map(|(index, &(program, low, high))| {
            let mut notes = Vec::new();
            let (mut tick, mut pitch) = (0u64, (low + high) / 2);
            while tick < end {
                let duration = if next() % 3 == 0 { TICKS } else { TICKS / 2 };
                let step = (next() % 5) as i16 - 2;
                pitch = (i16::from(pitch) + step).clamp(i16::from(low), i16::from(high)) as u8;
                let velocity = 60 + (next() % 40) as u8;
                notes.push(Note { pitch, velocity, start: tick, duration: duration.min(end - tick) });
                tick += duration;
            }
            let mut part = Part::new(index as u8, program, notes);
            part.name = Some(crate::midi::program_name(program).to_owned());
            part
        })
        .collect();
    let mut score = Score::of_parts(TICKS as u16, parts);
    score.tempos.push(TempoChange { tick: 0, micros_per_beat: 600_000 });
    score
}
