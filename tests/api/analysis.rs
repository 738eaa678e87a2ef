//! Originality and statistics on the real chorales: the 410 files, one in ten held out.

use std::sync::Arc;

use fugue::analysis::originality::{CopyGuard, CopyKind, OriginalityIndex};
use fugue::analysis::statistics::{PieceStatistics, SetComparison};
use fugue::analysis::{AnalysisNote, TrainingPiece, notes_of};

use crate::support::{midi_files, shared_data};

/// (training pieces, held-out pieces' notes): every tenth file is held out.
fn chorales() -> (Vec<TrainingPiece>, Vec<Vec<AnalysisNote>>) {
    let files = midi_files(&shared_data("bach-chorales-midi"));
    assert_eq!(files.len(), 410, "the shared chorale corpus");
    let (mut training, mut held_out) = (Vec::new(), Vec::new());
    for (number, path) in files.iter().enumerate() {
        let score = fugue::midi::read(&std::fs::read(path).unwrap()).unwrap();
        if number % 10 == 9 {
            held_out.push(notes_of(&score));
        } else {
            let name = path.file_name().unwrap().to_string_lossy();
            training.push(TrainingPiece::from_score(name, &score));
        }
    }
    (training, held_out)
}

/// Distinct (onset, pitch) notes: what a run can at most cover.
fn distinct_notes(notes: &[AnalysisNote]) -> usize {
    let mut keys: Vec<(i64, u8)> =
        notes.iter().map(|note| ((note.start_beat * 24.0).round() as i64, note.pitch)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.len()
}

/// A walk over the C major scale from middle C in quarters and eighths, choosing
/// only pitches the guard, if any, allows (and telling it each note).
fn scale_walk(seed: u64, notes: usize, mut guard: Option<&mut CopyGuard>) -> Vec<AnalysisNote> {
    const SCALE: [u8; 15] = [48, 50, 52, 53, 55, 57, 59, 60, 62, 64, 65, 67, 69, 71, 72];
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let (mut degree, mut beat, mut walk) = (7usize, 0.0, Vec::new());
    while walk.len() < notes {
        beat += [0.5, 1.0][next(2)];
        let forbidden = guard.as_ref().map(|guard| guard.forbidden_pitches(beat)).unwrap_or_default();
        let allowed = |degrees: std::ops::Range<usize>| -> Vec<usize> {
            degrees.filter(|&d| !forbidden.contains(SCALE[d])).collect()
        };
        // Steps of up to three degrees; when the guard forbids them all (onset order
        // ignores rhythm, so waiting does not help), a leap anywhere in the scale.
        let near = allowed(degree.saturating_sub(3)..(degree + 4).min(SCALE.len()));
        let choices = if near.is_empty() { allowed(0..SCALE.len()) } else { near };
        assert!(!choices.is_empty(), "the guard forbids the whole scale after {} notes", walk.len());
        degree = choices[next(choices.len())];
        if let Some(guard) = guard.as_mut() {
            guard.push(SCALE[degree], beat);
        }
        walk.push(AnalysisNote { pitch: SCALE[degree], program: 0, start_beat: beat, duration_beats: 0.5 });
    }
    walk
}

#[test]
fn the_chorales_are_found_in_their_index_and_a_random_walk_is_not() {
    let (training, held_out) = chorales();
    let index = OriginalityIndex::build(&training).unwrap();
    assert_eq!(index.size().pieces, 369);
    for piece in &training {
        let notes: Vec<AnalysisNote> = piece.notes.iter().map(|training| training.note).collect();
        let report = index.lookup(&notes, &[]);
        let run = report.exact.as_ref().unwrap();
        assert_eq!(run.notes as usize, distinct_notes(&notes), "{}", piece.name);
        // A chorale can hold an earlier one whole (the corpus has a few repeated
        // harmonisations); otherwise it is found in itself, from its first note.
        if run.piece == piece.name {
            assert_eq!(run.bar, piece.notes[0].bar, "{}", piece.name);
        }
    }
    let walk = scale_walk(1, 500, None);
    let report = index.lookup(&walk, &[]);
    // Nothing alike in the chorales: a quarter/eighth walk over one scale matches
    // chorales' four-voice onset sequences only by chance, a few notes at a time.
    for kind in CopyKind::ALL {
        assert!(report.notes(kind) <= 8, "{kind:?}: {report:?}");
    }
    // Held-out chorales share tunes and cadences with the others but are not copies.
    let mut runs: Vec<u32> =
        held_out.iter().map(|notes| index.lookup(notes, &[]).notes(CopyKind::Exact)).collect();
    runs.sort_unstable();
    let median_length = {
        let mut lengths: Vec<usize> = held_out.iter().map(|notes| distinct_notes(notes)).collect();
        lengths.sort_unstable();
        lengths[lengths.len() / 2]
    };
    assert!((runs[runs.len() / 2] as usize) < median_length / 4, "held-out runs {runs:?}");
}

#[test]
fn the_guard_keeps_a_walk_from_copying_the_chorales() {
    let (training, _) = chorales();
    let index = Arc::new(OriginalityIndex::build(&training).unwrap());
    // At 3 notes, onset order leaves no pitch of the scale after some common
    // three-note orders: across 369 chorales, every pitch continues them somewhere.
    const LIMIT: u32 = 5;
    for seed in 0..20 {
        let mut guard = CopyGuard::new(index.clone(), LIMIT, &CopyKind::ALL);
        let walk = scale_walk(seed, 200, Some(&mut guard));
        let report = index.lookup(&walk, &[]);
        assert!(CopyKind::ALL.iter().all(|&kind| report.notes(kind) <= LIMIT), "seed {seed}: {report:?}");
    }
}

#[test]
fn held_out_chorales_resemble_the_training_ones_more_than_a_random_walk_does() {
    let (training, held_out) = chorales();
    let statistics = |pieces: &[Vec<AnalysisNote>]| -> Vec<PieceStatistics> {
        pieces.iter().filter_map(|notes| PieceStatistics::of(notes)).collect()
    };
    let training: Vec<Vec<AnalysisNote>> =
        training.iter().map(|piece| piece.notes.iter().map(|training| training.note).collect()).collect();
    let (training, held_out) = (statistics(&training), statistics(&held_out));
    let walks: Vec<Vec<AnalysisNote>> = (0..40).map(|seed| scale_walk(seed, 200, None)).collect();
    let chorales = SetComparison::of(&held_out, &training);
    let random = SetComparison::of(&statistics(&walks), &training);
    assert!(chorales.pitch_class_overlap > 0.9, "{chorales:?}");
    assert!(chorales.inter_onset_interval_overlap > 0.9, "{chorales:?}");
    assert!(chorales.melodic_interval_overlap > 0.9, "{chorales:?}");
    assert!(random.melodic_interval_overlap < chorales.melodic_interval_overlap, "{random:?}");
    assert!(random.reference.mean_polyphony > 3.0 && random.generated.mean_polyphony < 1.5);
    assert!(chorales.generated.mean_scale_consistency > 0.9, "{chorales:?}");
}
