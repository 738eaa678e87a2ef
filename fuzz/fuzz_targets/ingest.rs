//! Fuzzes the whole ingest pipeline, where the cost of a file lies: bytes (a MIDI
//! file, or a zip of them) through `fugue::datasets::ingest` (unpacking, reading
//! within the bounds, the representations the report counts, the report), then every
//! other representation and grid of each accepted file, and the events round trip.
//!
//! Run it with tight limits (`-rss_limit_mb=512 -timeout=2`): an input that costs
//! more time or memory than its notes should is a finding, as much as a panic.

#![no_main]

use fugue::datasets::{IngestLimits, Upload, ingest};
use fugue::midi::{read_usable, write};
use fugue::repr::events::{self, EventsConfig};
use fugue::repr::melody_chords::{self, MelodyChordsConfig};
use fugue::repr::note_chord::{self, NoteChordConfig};
use fugue::repr::pianoroll::{self, Grid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let upload = Upload { file_name: "input.mid".to_owned(), bytes: data.to_vec() };
    let Ok(ingested) = ingest(vec![upload], true, &IngestLimits::default()) else { return };
    for (file, bytes) in &ingested.files {
        let score = read_usable(bytes, true).expect("an accepted file reads again");
        assert_eq!(file.notes as usize, score.note_count());
        for grid in [Grid::Quarter, Grid::Eighth, Grid::Sixteenth] {
            pianoroll::encode(&score, grid);
        }
        let config = EventsConfig { with_program: true, ..EventsConfig::default() };
        let decoded = events::decode(&events::encode(&score, &config), &config);
        write(&decoded);
        note_chord::encode(&score, &NoteChordConfig { normal_order: true, ..NoteChordConfig::default() });
        melody_chords::encode(&score, &MelodyChordsConfig::default());
    }
});
