//! `fugue bench originality`: the originality index over a folder of MIDI files
//! (the 410 chorales by default): its build time and size, the time to look up
//! pieces of 500 notes, and what the copy guard costs a decoder per note.
//!
//! Two kinds of query: pieces stitched from the training pieces themselves (long
//! copied runs, the deep end of the automata) and seeded random walks (short runs).

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::analysis::originality::{CopyGuard, CopyKind, OriginalityIndex};
use crate::analysis::{AnalysisNote, TrainingPiece};
use crate::cli::args::OriginalityBenchArgs;
use crate::datasets::folder_uploads;
use crate::model::sampling::Rng;

pub fn run(args: &OriginalityBenchArgs) -> anyhow::Result<()> {
    let uploads = folder_uploads(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    let pieces: Vec<TrainingPiece> = uploads
        .iter()
        .filter_map(|upload| {
            let score = crate::midi::read_usable(&upload.bytes, false).ok()?;
            Some(TrainingPiece::from_score(upload.file_name.as_str(), &score))
        })
        .collect();
    if pieces.is_empty() {
        bail!("no usable MIDI files in {}", args.data.display());
    }
    let started = Instant::now();
    let index = std::sync::Arc::new(OriginalityIndex::build(&pieces)?);
    let built_in = started.elapsed();
    let size = index.size();
    let json_bytes = serde_json::to_vec(&*index)?.len();
    println!(
        "index of {} pieces, {} notes: built in {:.3} s; {} states, {} edges; {:.2} MB in memory \
         ({:.0} bytes per note), {:.2} MB as JSON",
        size.pieces,
        size.notes,
        built_in.as_secs_f64(),
        size.states,
        size.edges,
        size.heap_bytes as f64 / 1e6,
        size.heap_bytes as f64 / size.notes as f64,
        json_bytes as f64 / 1e6,
    );
    let queries =
        [("stitched from the training pieces", stitched(&pieces, args)), ("random walks", walks(args))];
    for (name, queries) in &queries {
        let mut runs = Vec::new();
        let lookups = timed(queries, |query| runs.push(index.lookup(query, &[])));
        let longest = |kind| {
            let mut notes: Vec<u32> = runs.iter().map(|report| report.notes(kind)).collect();
            notes.sort_unstable();
            notes[notes.len() / 2]
        };
        println!(
            "lookup of {} {}-note pieces, {name}: median {}, p99 {}; median longest run: exact {}, \
             transposed {}, onset order {} notes",
            queries.len(),
            args.notes,
            millis(percentile(&lookups, 50)),
            millis(percentile(&lookups, 99)),
            longest(CopyKind::Exact),
            longest(CopyKind::Transposed),
            longest(CopyKind::OnsetOrder),
        );
        let mut steps = Vec::with_capacity(queries.len() * usize::from(args.notes));
        for query in queries {
            let mut guard = CopyGuard::new(index.clone(), args.max_copied_notes, &CopyKind::ALL);
            steps.extend(query.iter().map(|note| {
                let started = Instant::now();
                black_box(guard.forbidden_pitches(note.start_beat));
                guard.push(note.pitch, note.start_beat);
                started.elapsed()
            }));
        }
        println!(
            "  copy guard (max {} notes, 3 kinds), forbidden pitches + push per note: median {}, p99 {}",
            args.max_copied_notes,
            micros(percentile(&steps, 50)),
            micros(percentile(&steps, 99)),
        );
    }
    Ok(())
}

/// `args.queries` pieces of `args.notes` notes, each the training pieces one after
/// another from a different first piece.
fn stitched(pieces: &[TrainingPiece], args: &OriginalityBenchArgs) -> Vec<Vec<AnalysisNote>> {
    let length = usize::from(args.notes);
    (0..usize::from(args.queries))
        .map(|first| {
            let mut query: Vec<AnalysisNote> = Vec::with_capacity(length);
            for piece in pieces.iter().cycle().skip(first % pieces.len()) {
                let offset = query.last().map_or(0.0, |note| (note.start_beat + note.duration_beats).ceil());
                let notes = piece
                    .notes
                    .iter()
                    .map(|n| AnalysisNote { start_beat: n.note.start_beat + offset, ..n.note });
                query.extend(notes.take(length - query.len()));
                if query.len() == length {
                    break;
                }
            }
            query
        })
        .collect()
}

/// Seeded random walks: steps of up to 4 semitones within 48..84, onsets 0 (a
/// chord note above the last), ½ or 1 beat apart.
fn walks(args: &OriginalityBenchArgs) -> Vec<Vec<AnalysisNote>> {
    let length = usize::from(args.notes);
    (0..u64::from(args.queries))
        .map(|seed| {
            let mut rng = Rng::new(seed);
            let (mut pitch, mut beat) = (66u8, 0.0);
            let mut walk = Vec::with_capacity(length);
            while walk.len() < length {
                let next = (i64::from(pitch) + (rng.next_u64() % 9) as i64 - 4).clamp(48, 83) as u8;
                let gap = [0.0, 0.5, 1.0][(rng.next_u64() % 3) as usize];
                if gap == 0.0 && next <= pitch {
                    continue;
                }
                (pitch, beat) = (next, beat + gap);
                walk.push(AnalysisNote { pitch, program: 0, start_beat: beat, duration_beats: 0.5 });
            }
            walk
        })
        .collect()
}

/// How long `f` took on each query (after one untimed pass to warm the caches).
fn timed(queries: &[Vec<AnalysisNote>], mut f: impl FnMut(&[AnalysisNote])) -> Vec<Duration> {
    queries.iter().for_each(|query| black_box(&mut f)(query));
    queries
        .iter()
        .map(|query| {
            let started = Instant::now();
            f(query);
            started.elapsed()
        })
        .collect()
}

fn percentile(durations: &[Duration], percent: usize) -> Duration {
    let mut sorted = durations.to_vec();
    sorted.sort_unstable();
    sorted[(sorted.len() * percent / 100).min(sorted.len() - 1)]
}

fn millis(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1e3)
}

fn micros(duration: Duration) -> String {
    format!("{:.2} µs", duration.as_secs_f64() * 1e6)
}
