//! Standard MIDI file → [`Score`].
//!
//! Formats 0 and 1 with metrical timing. Conventions, chosen so that the result
//! is deterministic and writing it back reproduces it exactly:
//! - a part is one (track, channel, program at the note's onset); a program change
//!   anywhere in the file applies to its channel from its tick on, as on a synth;
//! - a note-on of a pitch that is already sounding on the channel ends the sounding
//!   note there (retrigger); the later, orphaned note-off is ignored;
//! - notes still sounding at a track's end are closed there; zero-length notes are
//!   inaudible and dropped;
//! - tempo, meter and key events are gathered from every track; at equal ticks the
//!   last one (in track order) wins.
//!
//! Bounds. A few hundred bytes of MIDI can describe days of music (a delta time
//! holds up to 2^28 ticks), and everything downstream (piano-roll frames, bars,
//! `Dur` tokens, note-chord steps) grows with time, not with bytes. So the reader
//! refuses, before anything is expanded, a file whose music lasts longer than
//! [`MAX_BEATS`] or [`MAX_SECONDS`], or whose notes sound for more than
//! [`MAX_SOUNDING_BEATS`] in total. A score from `read` therefore costs every
//! representation time and memory bounded by its notes and these numbers.

use std::collections::BTreeMap;

use midly::{Format, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use super::gm::DRUM_CHANNEL;
use super::score::{KeySignature, Note, Part, Score, TempoChange, TimeSignature};

/// Larger files are refused before parsing: memory per file stays bounded
/// (midly keeps every event, about 24 bytes each, and an event can take 2 bytes).
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// A file with more note-ons than this is refused.
pub const MAX_NOTES_PER_FILE: usize = 200_000;

/// The latest note end or tempo, meter or key change, in beats: 10,000 bars of
/// 4/4, five and a half hours at 120 bpm. No real piece is longer.
pub const MAX_BEATS: f64 = 40_000.0;

/// The same, in seconds at the file's tempos: six hours.
pub const MAX_SECONDS: f64 = 6.0 * 3600.0;

/// Every note's length, summed, in beats: 50 parts sounding without a rest for the
/// longest piece allowed. This bounds `Dur` tokens and piano-roll cells.
pub const MAX_SOUNDING_BEATS: f64 = 2_000_000.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    #[error("not a MIDI file (no MThd header)")]
    NotMidi,
    #[error("truncated: the file ends inside a track")]
    Truncated,
    #[error("corrupt MIDI data: {0}")]
    Corrupt(String),
    #[error("unsupported MIDI format 2 (sequential tracks)")]
    SequentialFormat,
    #[error("unsupported SMPTE timecode division (only ticks per beat are supported)")]
    SmpteTiming,
    #[error("larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("more than {MAX_NOTES_PER_FILE} notes")]
    TooManyNotes,
    #[error("lasts {beats:.0} beats: more than the {MAX_BEATS} allowed")]
    TooManyBeats { beats: f64 },
    #[error("lasts {seconds:.0} seconds: more than the {MAX_SECONDS} allowed")]
    TooManySeconds { seconds: f64 },
    #[error("its notes sound for {beats:.0} beats in all: more than the {MAX_SOUNDING_BEATS} allowed")]
    TooMuchSound { beats: f64 },
}

pub fn read(bytes: &[u8]) -> Result<Score, ReadError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge);
    }
    if !bytes.starts_with(b"MThd") {
        return Err(ReadError::NotMidi);
    }
    if ends_inside_a_chunk(bytes) {
        return Err(ReadError::Truncated);
    }
    let smf = Smf::parse(bytes).map_err(|error| ReadError::Corrupt(error.kind().message().to_owned()))?;
    if smf.header.format == Format::Sequential {
        return Err(ReadError::SequentialFormat);
    }
    let ticks_per_beat = match smf.header.timing {
        Timing::Metrical(ticks) => ticks.as_int().max(1),
        Timing::Timecode(..) => return Err(ReadError::SmpteTiming),
    };
    let tracks: Vec<Vec<(u64, &TrackEvent)>> = smf.tracks.iter().map(|track| absolute_ticks(track)).collect();
    let note_ons = tracks.iter().flatten().filter(|(_, event)| is_note_on(event)).count();
    if note_ons > MAX_NOTES_PER_FILE {
        return Err(ReadError::TooManyNotes);
    }
    let conductor = Conductor::gather(&tracks);
    let mut parts = BTreeMap::new();
    let mut sounding = SoundingNotes::new();
    for (index, track) in tracks.iter().enumerate() {
        read_track(index, track, &conductor.programs, &mut sounding, &mut parts);
    }
    check_length(ticks_per_beat, &conductor, parts.values())?;
    let parts = parts
        .into_values()
        .filter(|part: &Part| !part.notes.is_empty())
        .map(|mut part| {
            part.notes.sort_by_key(|note| (note.start, note.pitch));
            part
        })
        .collect();
    Ok(Score {
        ticks_per_beat,
        tempos: conductor.tempos,
        time_signatures: conductor.time_signatures,
        key_signatures: conductor.key_signatures,
        parts,
    })
}

/// Refuses music longer than the bounds in the module doc. Linear in the notes and
/// the conductor's events.
fn check_length<'a>(
    ticks_per_beat: u16,
    conductor: &Conductor,
    parts: impl Iterator<Item = &'a Part> + Clone,
) -> Result<(), ReadError> {
    let notes = parts.flat_map(|part| &part.notes);
    let beats = |ticks: f64| ticks / f64::from(ticks_per_beat);
    // In floating point: a sum of 200,000 durations of up to 2^47 ticks overflows u64.
    let sounding = beats(notes.clone().map(|note| note.duration as f64).sum());
    let last_change = [
        conductor.tempos.last().map(|change| change.tick),
        conductor.time_signatures.last().map(|change| change.tick),
        conductor.key_signatures.last().map(|change| change.tick),
    ];
    let end = notes.map(Note::end).chain(last_change.into_iter().flatten()).max().unwrap_or(0);
    if beats(end as f64) > MAX_BEATS {
        return Err(ReadError::TooManyBeats { beats: beats(end as f64) });
    }
    let seconds = super::score::seconds_at(ticks_per_beat, &conductor.tempos, end);
    if seconds > MAX_SECONDS {
        return Err(ReadError::TooManySeconds { seconds });
    }
    if sounding > MAX_SOUNDING_BEATS {
        return Err(ReadError::TooMuchSound { beats: sounding });
    }
    Ok(())
}

/// Walks the chunk headers: midly tolerates a chunk that claims more bytes than
/// the file has, which would silently drop the rest of a damaged file.
fn ends_inside_a_chunk(bytes: &[u8]) -> bool {
    let mut offset = 0usize;
    while offset < bytes.len() {
        let Some(header) = bytes.get(offset..offset + 8) else { return true };
        let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        offset = match offset.checked_add(8 + length) {
            Some(next) if next <= bytes.len() => next,
            _ => return true,
        };
    }
    false
}

fn is_note_on(event: &TrackEvent) -> bool {
    matches!(event.kind, TrackEventKind::Midi { message: MidiMessage::NoteOn { vel, .. }, .. } if vel.as_int() > 0)
}

fn absolute_ticks<'a>(track: &'a [TrackEvent<'a>]) -> Vec<(u64, &'a TrackEvent<'a>)> {
    let mut tick = 0u64;
    track
        .iter()
        .map(|event| {
            tick += u64::from(event.delta.as_int());
            (tick, event)
        })
        .collect()
}

/// File-wide state: tempo, meter, key, and each channel's program changes.
struct Conductor {
    tempos: Vec<TempoChange>,
    time_signatures: Vec<TimeSignature>,
    key_signatures: Vec<KeySignature>,
    /// Per channel, (tick, program) sorted by tick.
    programs: [Vec<(u64, u8)>; 16],
}

impl Conductor {
    fn gather(tracks: &[Vec<(u64, &TrackEvent)>]) -> Conductor {
        let mut conductor = Conductor {
            tempos: Vec::new(),
            time_signatures: Vec::new(),
            key_signatures: Vec::new(),
            programs: Default::default(),
        };
        for &(tick, event) in tracks.iter().flatten() {
            match event.kind {
                TrackEventKind::Meta(MetaMessage::Tempo(micros)) if micros.as_int() > 0 => {
                    conductor.tempos.push(TempoChange { tick, micros_per_beat: micros.as_int() });
                }
                TrackEventKind::Meta(MetaMessage::TimeSignature(numerator, power, _, _))
                    if numerator > 0 && power <= 6 =>
                {
                    conductor.time_signatures.push(TimeSignature {
                        tick,
                        numerator,
                        denominator: 1 << power,
                    });
                }
                TrackEventKind::Meta(MetaMessage::KeySignature(sharps, minor))
                    if (-7..=7).contains(&sharps) =>
                {
                    conductor.key_signatures.push(KeySignature { tick, sharps, minor });
                }
                TrackEventKind::Midi { channel, message: MidiMessage::ProgramChange { program } } => {
                    conductor.programs[usize::from(channel.as_int())].push((tick, program.as_int()));
                }
                _ => {}
            }
        }
        last_per_tick(&mut conductor.tempos, |change| change.tick);
        last_per_tick(&mut conductor.time_signatures, |signature| signature.tick);
        last_per_tick(&mut conductor.key_signatures, |signature| signature.tick);
        for changes in &mut conductor.programs {
            changes.sort_by_key(|&(tick, _)| tick);
        }
        conductor
    }
}

/// Sorts by tick (stably) and keeps the last event of each tick.
fn last_per_tick<T>(events: &mut Vec<T>, tick: impl Fn(&T) -> u64) {
    events.sort_by_key(&tick);
    // In place (a file can hold half a million tempo events): reversed, the last of
    // each tick comes first, and dedup keeps the first.
    events.reverse();
    events.dedup_by_key(|event| tick(event));
    events.reverse();
}

fn program_at(changes: &[(u64, u8)], tick: u64) -> u8 {
    let index = changes.partition_point(|&(at, _)| at <= tick);
    index.checked_sub(1).map_or(0, |last| changes[last].1)
}

#[derive(Clone, Copy)]
struct Sounding {
    start: u64,
    velocity: u8,
    program: u8,
}

type PartKey = (usize, u8, u8);

/// The notes sounding on each (channel, pitch) of the track being read. It is made
/// once per file and left empty after each track, and a track's end visits only the
/// slots that track used: a file of 20,000 one-note tracks costs 20,000 notes of
/// work, not 20,000 sweeps of 2,048 slots.
struct SoundingNotes {
    slots: Vec<Option<Sounding>>,
    used: Vec<usize>,
}

impl SoundingNotes {
    fn new() -> SoundingNotes {
        SoundingNotes { slots: vec![None; 16 * 128], used: Vec::new() }
    }

    fn slot(channel: u8, pitch: u8) -> usize {
        usize::from(channel) * 128 + usize::from(pitch)
    }

    fn take(&mut self, channel: u8, pitch: u8) -> Option<Sounding> {
        self.slots[Self::slot(channel, pitch)].take()
    }

    fn start(&mut self, channel: u8, pitch: u8, note: Sounding) {
        let slot = Self::slot(channel, pitch);
        self.slots[slot] = Some(note);
        self.used.push(slot);
    }

    /// Empties the table: what still sounds, by channel then pitch.
    fn drain(&mut self) -> Vec<(u8, u8, Sounding)> {
        self.used.sort_unstable();
        self.used.dedup();
        let slots = &mut self.slots;
        let still = self.used.drain(..).filter_map(|slot| {
            let note = slots[slot].take()?;
            Some(((slot / 128) as u8, (slot % 128) as u8, note))
        });
        still.collect()
    }
}

/// Adds the track's notes to `parts`.
fn read_track(
    index: usize,
    track: &[(u64, &TrackEvent)],
    programs: &[Vec<(u64, u8)>; 16],
    sounding: &mut SoundingNotes,
    parts: &mut BTreeMap<PartKey, Part>,
) {
    let name = track.iter().find_map(|(_, event)| match event.kind {
        TrackEventKind::Meta(MetaMessage::TrackName(bytes)) => {
            Some(String::from_utf8_lossy(bytes).trim().to_owned()).filter(|name| !name.is_empty())
        }
        _ => None,
    });
    let mut close = |channel: u8, pitch: u8, note: Sounding, end: u64| {
        if end > note.start {
            let part = parts.entry((index, channel, note.program)).or_insert_with(|| Part {
                name: name.clone(),
                program: note.program,
                channel,
                is_drum: channel == DRUM_CHANNEL,
                notes: Vec::new(),
            });
            part.notes.push(Note {
                pitch,
                velocity: note.velocity,
                start: note.start,
                duration: end - note.start,
            });
        }
    };
    for &(tick, event) in track {
        let TrackEventKind::Midi { channel, message } = event.kind else { continue };
        let channel = channel.as_int();
        let (pitch, velocity) = match message {
            MidiMessage::NoteOn { key, vel } => (key.as_int(), vel.as_int()),
            MidiMessage::NoteOff { key, .. } => (key.as_int(), 0),
            _ => continue,
        };
        if let Some(note) = sounding.take(channel, pitch) {
            close(channel, pitch, note, tick);
        }
        if velocity > 0 {
            let program = program_at(&programs[usize::from(channel)], tick);
            sounding.start(channel, pitch, Sounding { start: tick, velocity, program });
        }
    }
    let track_end = track.last().map_or(0, |&(tick, _)| tick);
    for (channel, pitch, note) in sounding.drain() {
        close(channel, pitch, note, track_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MIDI file from raw track bytes (delta times and events as written).
    fn smf(format: u16, division: u16, tracks: &[&[u8]]) -> Vec<u8> {
        let mut bytes = b"MThd\0\0\0\x06".to_vec();
        bytes.extend(format.to_be_bytes());
        bytes.extend((tracks.len() as u16).to_be_bytes());
        bytes.extend(division.to_be_bytes());
        for track in tracks {
            bytes.extend(b"MTrk");
            bytes.extend((track.len() as u32).to_be_bytes());
            bytes.extend(*track);
        }
        bytes
    }

    const END: [u8; 4] = [0x00, 0xff, 0x2f, 0x00];

    fn track(events: &[u8]) -> Vec<u8> {
        [events, &END].concat()
    }

    fn notes(score: &Score) -> Vec<(u8, u8, u64, u64)> {
        let notes = score.parts.iter().flat_map(|part| &part.notes);
        notes.map(|n| (n.pitch, n.velocity, n.start, n.duration)).collect()
    }

    #[test]
    fn running_status_and_velocity_zero_note_offs() {
        // on C4, then (running status) on E4; both ended by note-on velocity 0.
        let events = track(&[0x00, 0x90, 60, 100, 0x00, 64, 90, 0x60, 60, 0, 0x00, 64, 0]);
        let score = read(&smf(0, 96, &[&events])).unwrap();
        assert_eq!(notes(&score), vec![(60, 100, 0, 96), (64, 90, 0, 96)]);
        assert_eq!(score.ticks_per_beat, 96);
    }

    #[test]
    fn a_retriggered_pitch_ends_the_sounding_note() {
        // on 60 @0, on 60 @48, off 60 @96, off 60 @144 (orphan, ignored).
        let events = track(&[0x00, 0x90, 60, 80, 0x30, 0x90, 60, 70, 0x30, 0x80, 60, 0, 0x30, 0x80, 60, 0]);
        let score = read(&smf(0, 96, &[&events])).unwrap();
        assert_eq!(notes(&score), vec![(60, 80, 0, 48), (60, 70, 48, 48)]);
    }

    #[test]
    fn hanging_notes_close_at_the_track_end_and_empty_notes_drop() {
        // on 62 never released; on/off 64 at the same tick; track ends at 200.
        let events =
            track(&[0x00, 0x90, 62, 80, 0x00, 0x90, 64, 80, 0x00, 0x80, 64, 0, 0x81, 0x48, 0xff, 0x01, 0x00]);
        let score = read(&smf(0, 96, &[&events])).unwrap();
        assert_eq!(notes(&score), vec![(62, 80, 0, 200)]);
    }

    #[test]
    fn channels_programs_and_drums_make_parts() {
        let events = track(&[
            0x00, 0xC1, 40, // channel 1: violin
            0x00, 0x91, 67, 90, 0x00, 0x99, 36, 100, // channel 1 note, channel 10 kick
            0x60, 0x81, 67, 0, 0x00, 0x89, 36, 0,
        ]);
        let score = read(&smf(0, 96, &[&events])).unwrap();
        let summary: Vec<_> = score.parts.iter().map(|p| (p.channel, p.program, p.is_drum)).collect();
        assert_eq!(summary, vec![(1, 40, false), (9, 0, true)]);
        assert_eq!(score.pitch_range(), Some((67, 67)));
    }

    #[test]
    fn a_program_change_in_another_track_applies_to_its_channel() {
        let conductor = track(&[0x00, 0xC0, 19]); // church organ on channel 0
        let notes = track(&[0x10, 0x90, 60, 90, 0x60, 0x80, 60, 0]);
        let score = read(&smf(1, 96, &[&conductor, &notes])).unwrap();
        assert_eq!(score.parts.len(), 1);
        assert_eq!(score.parts[0].program, 19);
    }

    #[test]
    fn tempo_meter_and_key_are_read_with_the_last_one_per_tick() {
        let conductor = track(&[
            0x00, 0xff, 0x51, 0x03, 0x07, 0xa1, 0x20, // 500000 µs
            0x00, 0xff, 0x51, 0x03, 0x0f, 0x42, 0x40, // 1000000 µs, same tick: wins
            0x00, 0xff, 0x58, 0x04, 3, 2, 24, 8, // 3/4
            0x00, 0xff, 0x59, 0x02, 0xfe, 1, // two flats, minor: G minor
        ]);
        let score = read(&smf(1, 480, &[&conductor])).unwrap();
        assert_eq!(score.tempos, vec![TempoChange { tick: 0, micros_per_beat: 1_000_000 }]);
        assert_eq!(score.time_signatures, vec![TimeSignature { tick: 0, numerator: 3, denominator: 4 }]);
        assert_eq!(score.key_signatures, vec![KeySignature { tick: 0, sharps: -2, minor: true }]);
        assert!(score.parts.is_empty());
    }

    #[test]
    fn refusals_say_why() {
        let events = track(&[0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0]);
        assert_eq!(read(b"RIFF....WAVE"), Err(ReadError::NotMidi));
        assert_eq!(read(&smf(2, 96, &[&events])), Err(ReadError::SequentialFormat));
        assert_eq!(read(&smf(0, 0xE728, &[&events])), Err(ReadError::SmpteTiming));
        let whole = smf(0, 96, &[&events]);
        assert_eq!(read(&whole[..whole.len() - 3]), Err(ReadError::Truncated));
        assert_eq!(read(&whole[..10]), Err(ReadError::Truncated));
        assert!(matches!(read(&vec![0u8; MAX_FILE_BYTES + 1]), Err(ReadError::TooLarge)));
    }

    #[test]
    fn too_many_notes_are_refused() {
        let mut events = Vec::new();
        for _ in 0..=MAX_NOTES_PER_FILE {
            events.extend([0x00, 0x90, 60, 100, 0x01, 0x80, 60, 0]);
        }
        assert_eq!(read(&smf(0, 96, &[&track(&events)])), Err(ReadError::TooManyNotes));
    }

    /// A MIDI variable-length quantity.
    fn vlq(mut value: u32) -> Vec<u8> {
        let mut bytes = vec![(value & 0x7f) as u8];
        value >>= 7;
        while value > 0 {
            bytes.insert(0, 0x80 | (value & 0x7f) as u8);
            value >>= 7;
        }
        bytes
    }

    /// Notes on channel 0, all from tick 0, each `(pitch, ticks)` long.
    fn held_notes(notes: &[(u8, u32)]) -> Vec<u8> {
        let mut events = Vec::new();
        for &(pitch, _) in notes {
            events.extend([0x00, 0x90, pitch, 90]);
        }
        let mut now = 0;
        let mut by_end = notes.to_vec();
        by_end.sort_by_key(|&(_, ticks)| ticks);
        for (pitch, ticks) in by_end {
            events.extend(vlq(ticks - now));
            events.extend([0x80, pitch, 0]);
            now = ticks;
        }
        track(&events)
    }

    #[test]
    fn music_may_last_max_beats_and_not_a_tick_more() {
        // One tick per beat: a note of 40,000 ticks lasts 40,000 beats (20,000 s at 120 bpm).
        let last = MAX_BEATS as u32;
        assert!(read(&smf(0, 1, &[&held_notes(&[(60, last)])])).is_ok());
        let refused = read(&smf(0, 1, &[&held_notes(&[(60, last + 1)])]));
        assert_eq!(refused, Err(ReadError::TooManyBeats { beats: 40_001.0 }));
        assert_eq!(refused.unwrap_err().to_string(), "lasts 40001 beats: more than the 40000 allowed");
        // A tempo change counts as music too: downstream code walks bars up to it.
        let late_tempo = [&vlq(last + 1)[..], &[0xff, 0x51, 0x03, 0x07, 0xa1, 0x20]].concat();
        let conductor = track(&late_tempo);
        let refused = read(&smf(1, 1, &[&conductor, &held_notes(&[(60, 1)])]));
        assert_eq!(refused, Err(ReadError::TooManyBeats { beats: 40_001.0 }));
    }

    #[test]
    fn music_may_last_max_seconds_and_not_a_beat_more() {
        // 60 bpm: a second per beat, so 21,600 beats last exactly six hours.
        let sixty_bpm = track(&[0x00, 0xff, 0x51, 0x03, 0x0f, 0x42, 0x40]);
        let last = MAX_SECONDS as u32;
        assert!(read(&smf(1, 1, &[&sixty_bpm, &held_notes(&[(60, last)])])).is_ok());
        let refused = read(&smf(1, 1, &[&sixty_bpm, &held_notes(&[(60, last + 1)])]));
        assert_eq!(refused, Err(ReadError::TooManySeconds { seconds: 21_601.0 }));
    }

    #[test]
    fn notes_may_sound_for_max_sounding_beats_in_all_and_not_a_beat_more() {
        // 50 notes of 40,000 beats sound for exactly 2,000,000 beats.
        let whole = MAX_BEATS as u32;
        let mut notes: Vec<(u8, u32)> = (0..50).map(|pitch| (pitch, whole)).collect();
        assert_eq!(f64::from(whole) * notes.len() as f64, MAX_SOUNDING_BEATS);
        assert!(read(&smf(0, 1, &[&held_notes(&notes)])).is_ok());
        notes.push((100, 1));
        let refused = read(&smf(0, 1, &[&held_notes(&notes)]));
        assert_eq!(refused, Err(ReadError::TooMuchSound { beats: 2_000_001.0 }));
    }

    #[test]
    fn many_tracks_keep_their_own_hanging_notes() {
        // Two tracks: the first leaves 60 sounding to its end (tick 10), the second
        // plays 60 from 5 to 20. The reused table must not carry 60 across tracks.
        let first = track(&[0x00, 0x90, 60, 90, 0x0a, 0xff, 0x01, 0x00]);
        let second = track(&[0x05, 0x90, 60, 80, 0x0f, 0x80, 60, 0]);
        let score = read(&smf(1, 96, &[&first, &second])).unwrap();
        assert_eq!(notes(&score), vec![(60, 90, 0, 10), (60, 80, 5, 15)]);
    }
}
