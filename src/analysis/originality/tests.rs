use std::sync::Arc;

use super::*;
use crate::analysis::{AnalysisNote, TrainingPiece};
use crate::midi::{Note, Part, Score};

const TICKS: u64 = 480;

/// A seeded xorshift generator (the model's sampler sits in a layer above this one).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn note(pitch: u8, start_beat: f64, program: u8) -> AnalysisNote {
    AnalysisNote { pitch, program, start_beat, duration_beats: 0.5 }
}

/// A seeded random walk of `notes` notes: steps of up to `leap` semitones (at most
/// `span / 2`), inside `low..low + span`, onsets `gaps` (in beats) apart, a gap of 0
/// making a chord (its notes ascending, as the sequence reads them).
fn random_walk(seed: u64, notes: usize, low: u8, span: u8, leap: u8, gaps: &[f64]) -> Vec<AnalysisNote> {
    let mut rng = Rng::new(seed);
    let mut pick = |n: u64| rng.next_u64() % n;
    let (mut pitch, mut beat) = (low + span / 2, 0.0);
    let mut walk = Vec::with_capacity(notes);
    while walk.len() < notes {
        let step = pick(2 * u64::from(leap) + 1) as i16 - i16::from(leap);
        // Reflected off the range's edges, not held there: a walk stuck on an edge
        // repeats itself, and repeats match anything that repeats.
        let (lowest, highest) = (i16::from(low), i16::from(low + span - 1));
        let next = match i16::from(pitch) + step {
            below if below < lowest => 2 * lowest - below,
            above if above > highest => 2 * highest - above,
            inside => inside,
        } as u8;
        let gap = gaps[pick(gaps.len() as u64) as usize];
        if gap == 0.0 && next <= pitch {
            continue;
        }
        (pitch, beat) = (next, beat + gap);
        walk.push(note(pitch, beat, 0));
    }
    walk
}

/// A training piece from notes, through a 4/4 score (so bars are real).
fn training(name: &str, notes: &[AnalysisNote]) -> TrainingPiece {
    let ticks = |beats: f64| (beats * TICKS as f64).round() as u64;
    let notes: Vec<Note> = notes
        .iter()
        .map(|n| Note {
            pitch: n.pitch,
            velocity: 80,
            start: ticks(n.start_beat),
            duration: ticks(n.duration_beats),
        })
        .collect();
    TrainingPiece::from_score(name, &Score::of_parts(TICKS as u16, vec![Part::new(0, 0, notes)]))
}

/// Three pieces of 400 notes: quarters, eighths and chords over two octaves.
fn corpus() -> Vec<TrainingPiece> {
    (0..3)
        .map(|seed| training(&format!("piece{seed}"), &random_walk(seed, 400, 55, 24, 5, &[0.0, 0.5, 1.0])))
        .collect()
}

fn transposed(notes: &[AnalysisNote], semitones: i8) -> Vec<AnalysisNote> {
    notes.iter().map(|n| AnalysisNote { pitch: n.pitch.saturating_add_signed(semitones), ..*n }).collect()
}

fn plain(piece: &TrainingPiece) -> Vec<AnalysisNote> {
    piece.notes.iter().map(|training| training.note).collect()
}

#[test]
fn a_training_piece_played_back_is_copied_whole() {
    let corpus = corpus();
    let index = OriginalityIndex::build(&corpus).unwrap();
    let piece = plain(&corpus[1]);
    // From bar 3 on (beat 8), moved later by 5 bars: the onset pattern is the same.
    let excerpt: Vec<AnalysisNote> = piece
        .iter()
        .filter(|n| n.start_beat >= 8.0)
        .map(|n| AnalysisNote { start_beat: n.start_beat + 20.0, ..*n })
        .collect();
    let report = index.lookup(&excerpt, &[]);
    let whole = excerpt.len() as u32;
    for kind in CopyKind::ALL {
        let run = report.run(kind).unwrap();
        assert_eq!(
            (run.notes, run.piece.as_str(), run.bar, run.transposition),
            (whole, "piece1", 3, 0),
            "{kind:?}"
        );
        assert_eq!(run.query_start_beat, excerpt[0].start_beat);
    }

    let third_higher = index.lookup(&transposed(&excerpt, 4), &[]);
    let run = third_higher.transposed.as_ref().unwrap();
    assert_eq!((run.notes, run.piece.as_str(), run.bar, run.transposition), (whole, "piece1", 3, 4));
    assert!(third_higher.notes(CopyKind::Exact) < 10, "{third_higher:?}");
    assert!(third_higher.notes(CopyKind::OnsetOrder) < 10, "{third_higher:?}");
}

#[test]
fn a_random_walk_copies_almost_nothing() {
    let index = OriginalityIndex::build(&corpus()).unwrap();
    // 1,200 training notes and 500 query notes make 600,000 pairs of places to
    // match; a step repeats by chance with probability about 1/9 (11 steps, fewer
    // inside a chord), so chance runs are about log(600,000) / log(9) ≈ 6 steps,
    // 7 notes, and one of 10 notes is 9² times less likely again.
    for seed in 99..104 {
        let report = index.lookup(&random_walk(seed, 500, 55, 24, 5, &[0.0, 0.5, 1.0]), &[]);
        for kind in CopyKind::ALL {
            assert!(report.notes(kind) <= 8, "seed {seed} {kind:?}: {report:?}");
        }
    }
}

#[test]
fn excluded_notes_are_left_out_of_the_query() {
    let corpus = corpus();
    let index = OriginalityIndex::build(&corpus).unwrap();
    let piece = plain(&corpus[0]);
    // A primer of the piece's first 30 notes, then a random continuation.
    let primer_end = piece[30].start_beat;
    let continuation = random_walk(7, 100, 55, 24, 5, &[0.5, 1.0]);
    let primed: Vec<AnalysisNote> = piece[..30]
        .iter()
        .copied()
        .chain(continuation.iter().map(|n| AnalysisNote { start_beat: n.start_beat + primer_end, ..*n }))
        .collect();
    assert!(index.lookup(&primed, &[]).notes(CopyKind::Exact) >= 30);
    assert!(index.lookup(&primed, &[Exclusion::BeforeBeat(primer_end)]).notes(CopyKind::Exact) < 10);

    // The piece with a part of other notes at the same time: leaving that part out
    // finds the whole copy again.
    let accompanied: Vec<AnalysisNote> = piece
        .iter()
        .copied()
        .chain(piece.iter().map(|n| AnalysisNote { pitch: n.pitch - 24, program: 32, ..*n }))
        .collect();
    assert!(index.lookup(&accompanied, &[]).notes(CopyKind::Exact) < 10);
    let report = index.lookup(&accompanied, &[Exclusion::Program(32)]);
    assert_eq!(report.notes(CopyKind::Exact), piece.len() as u32);
}

#[test]
fn a_stored_index_answers_as_the_built_one_and_a_corrupt_one_is_refused() {
    let index = OriginalityIndex::build(&corpus()).unwrap();
    let json = serde_json::to_string(&index).unwrap();
    let read: OriginalityIndex = serde_json::from_str(&json).unwrap();
    assert_eq!(read, index);
    let mut corrupt: serde_json::Value = serde_json::from_str(&json).unwrap();
    corrupt["bars"].as_array_mut().unwrap().pop();
    assert!(serde_json::from_value::<OriginalityIndex>(corrupt).is_err());
    assert_eq!(
        OriginalityIndex::build(&[]).unwrap().lookup(&random_walk(1, 50, 60, 12, 3, &[1.0]), &[]).exact,
        None
    );
}

/// The onset sequence of some notes, written apart from the index's own: (grid
/// onset, pitch), sorted, one note per onset and pitch.
fn brute_force_sequence(notes: &[AnalysisNote]) -> Vec<(i64, i64)> {
    let mut sequence: Vec<(i64, i64)> =
        notes.iter().map(|n| ((n.start_beat * 24.0).round() as i64, i64::from(n.pitch))).collect();
    sequence.sort();
    sequence.dedup();
    sequence
}

/// Whether two runs of notes are the same under `kind`, compared note by note.
fn same_run(kind: CopyKind, a: &[(i64, i64)], b: &[(i64, i64)]) -> bool {
    let steps = |run: &[(i64, i64)]| -> Vec<(i64, i64)> {
        run.windows(2).map(|pair| (pair[1].0 - pair[0].0, pair[1].1 - pair[0].1)).collect()
    };
    let pitches = |run: &[(i64, i64)]| -> Vec<i64> { run.iter().map(|&(_, pitch)| pitch).collect() };
    match kind {
        CopyKind::Exact => {
            pitches(a) == pitches(b) && steps(a).iter().map(|s| s.0).eq(steps(b).iter().map(|s| s.0))
        }
        CopyKind::Transposed => steps(a) == steps(b),
        CopyKind::OnsetOrder => pitches(a) == pitches(b),
    }
}

/// The longest run of `query` found in any one training piece, by trying every
/// pair of windows.
fn brute_force_longest(kind: CopyKind, query: &[(i64, i64)], training: &[Vec<(i64, i64)>]) -> usize {
    let found = |length: usize| {
        query.windows(length).any(|run| {
            training.iter().any(|piece| piece.windows(length).any(|other| same_run(kind, run, other)))
        })
    };
    (2..=query.len()).take_while(|&length| found(length)).last().unwrap_or(0)
}

type Gaps = [f64; 3];
/// Pieces as the brute force reads them: (onset step, pitch) per note.
type Sequences = Vec<Vec<(i64, i64)>>;

/// Four random walks over a small alphabet (8 pitches, two gaps, chords) so that
/// copies come easily: the gaps, their index, and their sequences as the brute
/// force reads them.
fn small_alphabet_corpus() -> (Gaps, Arc<OriginalityIndex>, Sequences) {
    let gaps = [0.0, 0.5, 1.0];
    let corpus: Vec<TrainingPiece> =
        (0..4).map(|seed| training(&format!("t{seed}"), &random_walk(seed, 300, 60, 8, 3, &gaps))).collect();
    let index = Arc::new(OriginalityIndex::build(&corpus).unwrap());
    let training_sequences = corpus.iter().map(|piece| brute_force_sequence(&plain(piece))).collect();
    (gaps, index, training_sequences)
}

#[test]
fn the_guard_keeps_every_copied_run_within_the_limit() {
    const LIMIT: usize = 4;
    let (gaps, index, training_sequences) = small_alphabet_corpus();
    let mut forbidden_seen = 0;
    let mut unguarded_longest = 0;
    for seed in 0..60u64 {
        let mut rng = Rng::new(1000 + seed);
        let mut guard = CopyGuard::new(index.clone(), LIMIT as u32, &CopyKind::ALL);
        let (mut notes, mut last): (Vec<AnalysisNote>, Option<(f64, u8)>) = (Vec::new(), None);
        while notes.len() < 60 {
            let gap = gaps[(rng.next_u64() % 3) as usize];
            let beat = last.map_or(0.0, |(beat, _)| beat + gap);
            let forbidden = guard.forbidden_pitches(beat);
            forbidden_seen += forbidden.iter().count();
            let allowed: Vec<u8> = (60..68)
                .filter(|&pitch| !forbidden.contains(pitch))
                .filter(|&pitch| gap > 0.0 || last.is_none_or(|(_, previous)| pitch > previous))
                .collect();
            if allowed.is_empty() {
                continue;
            }
            let pitch = allowed[(rng.next_u64() % allowed.len() as u64) as usize];
            guard.push(pitch, beat);
            notes.push(note(pitch, beat, 0));
            last = Some((beat, pitch));
        }
        let sequence = brute_force_sequence(&notes);
        assert_eq!(sequence.len(), notes.len());
        let report = index.lookup(&notes, &[]);
        for kind in CopyKind::ALL {
            let longest = brute_force_longest(kind, &sequence, &training_sequences);
            assert!(longest <= LIMIT, "seed {seed} {kind:?}: a run of {longest} notes");
            assert_eq!(report.notes(kind) as usize, longest, "the lookup agrees, seed {seed} {kind:?}");
        }
        let unguarded = brute_force_sequence(&random_walk(2000 + seed, 60, 60, 8, 3, &gaps));
        unguarded_longest =
            unguarded_longest.max(brute_force_longest(CopyKind::Transposed, &unguarded, &training_sequences));
    }
    assert!(forbidden_seen > 100, "the guard had to forbid notes: {forbidden_seen}");
    assert!(unguarded_longest > LIMIT, "unguarded walks copy more: {unguarded_longest}");
}

#[test]
fn the_guard_holds_when_a_chord_comes_top_down() {
    // A model with parts writes its soprano before its bass: the notes of one onset
    // arrive in any order, while the lookup reads them bottom up.
    const LIMIT: usize = 4;
    let (_, index, training_sequences) = small_alphabet_corpus();
    let mut inserted_below = 0;
    for seed in 0..60u64 {
        let mut rng = Rng::new(3000 + seed);
        let mut guard =
            CopyGuard::new(index.clone(), LIMIT as u32, &[CopyKind::Transposed, CopyKind::OnsetOrder]);
        let mut notes: Vec<AnalysisNote> = Vec::new();
        let mut beat = 0.0;
        while notes.len() < 60 {
            beat += [0.5, 1.0][(rng.next_u64() % 2) as usize];
            let voices = 1 + rng.next_u64() % 3;
            let mut chord: Vec<u8> = Vec::new();
            for _ in 0..voices {
                let candidates = (60..68).fold(PitchSet::default(), |mut set, pitch| {
                    set.insert(pitch);
                    set
                });
                let forbidden = guard.forbidden(beat, candidates);
                // Below every note of the chord so far where possible: top down.
                let allowed: Vec<u8> = candidates.iter().filter(|&p| !forbidden.contains(p)).collect();
                let lower: Vec<u8> =
                    allowed.iter().copied().filter(|&p| chord.iter().all(|&c| p < c)).collect();
                let pick = if lower.is_empty() { &allowed } else { &lower };
                if pick.is_empty() {
                    break;
                }
                let pitch = pick[(rng.next_u64() % pick.len() as u64) as usize];
                inserted_below += usize::from(chord.iter().any(|&c| pitch < c));
                guard.push(pitch, beat);
                chord.push(pitch);
                notes.push(note(pitch, beat, 0));
            }
        }
        let sequence = brute_force_sequence(&notes);
        for kind in CopyKind::ALL {
            let longest = brute_force_longest(kind, &sequence, &training_sequences);
            assert!(longest <= LIMIT, "seed {seed} {kind:?}: a run of {longest} notes");
        }
    }
    assert!(inserted_below > 100, "chords came top down: {inserted_below}");
}

#[test]
fn a_stored_corpus_rebuilds_the_same_index_and_a_bad_one_is_refused() {
    let corpus = corpus();
    let index = OriginalityIndex::build(&corpus).unwrap();
    let stored = IndexedCorpus::of(&corpus);
    assert_eq!(stored.notes(), index.size().notes);
    let json = serde_json::to_string(&stored).unwrap();
    let read: IndexedCorpus = serde_json::from_str(&json).unwrap();
    assert_eq!(read.index().unwrap(), index);
    let mut bad: serde_json::Value = serde_json::from_str(&json).unwrap();
    bad["pieces"][0]["pitches"].as_array_mut().unwrap().pop();
    assert!(serde_json::from_value::<IndexedCorpus>(bad).is_err());
    let mut bad: serde_json::Value = serde_json::from_str(&json).unwrap();
    bad["pieces"][0]["pitches"][0] = 200.into();
    assert!(serde_json::from_value::<IndexedCorpus>(bad).is_err());
}
