//! The generation request (shared by `POST /v1/generate` and the WebSocket stream),
//! its limits, and its validation into [`ValidatedRequest`] settings.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::midi::KeySignature;
use crate::model::sampling::Sampling;

/// Most notes one request may ask for.
pub const MAX_NOTES: u32 = 2_000;
/// Most tokens (model steps) one request may ask for.
pub const MAX_TOKENS: u32 = 10_000;
/// Most bars one request may ask for.
pub const MAX_BARS: u32 = 256;
/// Most seconds of music one request may ask for.
pub const MAX_SECONDS: f64 = 600.0;
/// Most notes of an explicit primer.
pub const MAX_PRIMER_NOTES: usize = 2_000;
/// Largest primer MIDI file (decoded), in bytes.
pub const MAX_PRIMER_MIDI_BYTES: usize = 1024 * 1024;
/// Most primer tokens fed to the model; a longer primer keeps its last ones.
pub const MAX_PRIMER_TOKENS: usize = 2_048;
/// Most parts one request may ask for.
pub const MAX_PARTS: usize = 16;
/// `max_copied_notes`: the fewest notes a copy limit may allow. Below 3, copying
/// by onset order forbids nearly every pitch after nearly every note (almost
/// every pair of pitches follows one another somewhere in a corpus).
pub const MIN_COPIED_NOTES: u32 = 3;
/// `max_copied_notes`: the most (the longest piece a request may ask for).
pub const MAX_COPIED_NOTES: u32 = MAX_NOTES;

/// Ask a model for music.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"model": "default", "length": {"notes": 128}, "temperature": 0.9, "top_p": 0.95,
    "seed": 7, "key": "D", "scale": "minor", "pitch_range": [48, 84], "tempo_bpm": 96, "time_signature": [3, 4],
    "program": 0, "pacing": "realtime"}))]
pub struct GenerateRequest {
    /// A model id; the default model when omitted.
    pub model: Option<String>,
    /// What the model continues from; nothing when omitted.
    pub primer: Option<Primer>,
    /// How much music; default `{"notes": 128}`.
    pub length: Option<Length>,
    /// Above 0, at most 5; default 1.
    pub temperature: Option<f64>,
    /// Keep only the k likeliest tokens (1 to 1000); all when omitted.
    pub top_k: Option<i64>,
    /// Nucleus: keep the likeliest tokens whose probability reaches p (above 0, at most 1).
    pub top_p: Option<f64>,
    /// Same model, seed and request give the same notes. Random when omitted; the
    /// answer always says which was used.
    pub seed: Option<u64>,
    /// Always take the likeliest token (the tutorials' arg-max); overrides the sampling settings.
    pub greedy: Option<bool>,
    /// Tonic of the scale: `C`, `C#`, `Db`, ..., `B`. Needs `scale` (default `major`).
    #[schema(example = "D")]
    pub key: Option<String>,
    /// Only notes of this scale on `key`.
    pub scale: Option<Scale>,
    /// Lowest and highest MIDI pitch, inclusive (0 to 127).
    pub pitch_range: Option<[u8; 2]>,
    /// Most notes sounding at once (1 to 16).
    pub max_polyphony: Option<u8>,
    /// Tempo in beats per minute (20 to 300); the model's own when omitted.
    pub tempo_bpm: Option<f64>,
    /// `[numerator, denominator]`, e.g. `[3, 4]`; the model's own when omitted.
    pub time_signature: Option<[u8; 2]>,
    /// General MIDI program (instrument) 0 to 127; default 0, acoustic grand piano.
    pub program: Option<u8>,
    /// Stop at a bar line rather than mid-bar (default true for `events` models).
    pub end_on_bar: Option<bool>,
    /// WebSocket only: `fast` sends notes as computed; `realtime` when they would sound.
    pub pacing: Option<Pacing>,
    /// The parts to write, in order, for a model trained with parts (at most 16):
    /// which of its parts, by name, and each one's instrument, range and polyphony.
    /// The model's own parts when omitted.
    #[schema(example = json!([{"name": "soprano", "program": 52, "pitch_range": [60, 81], "max_polyphony": 1},
        {"name": "bass", "program": 42, "pitch_range": [36, 62]}]))]
    pub parts: Option<Vec<PartRequest>>,
    /// The longest run of consecutive notes the piece may copy from any one of the
    /// model's training pieces (exactly, transposed, or in onset order): while
    /// decoding, any pitch that would make a longer run is masked. 3 to 2000;
    /// needs a model with an originality index.
    #[schema(example = 6)]
    pub max_copied_notes: Option<u32>,
    /// A part you bring, to harmonize or accompany (a model with parts): its notes
    /// come back exactly, the model writes the piece's other parts around them, and
    /// the piece ends on the bar line after its last note. It sets the length, so
    /// leave `length` and `primer` out.
    #[schema(example = json!({"part": "soprano", "notes": [
        {"pitch": 67, "start_beat": 0, "duration_beats": 1}, {"pitch": 69, "start_beat": 1, "duration_beats": 1},
        {"pitch": 71, "start_beat": 2, "duration_beats": 2}]}))]
    pub given: Option<Given>,
}

/// A part the user brings: its notes, or one track of a MIDI file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Given {
    /// Which of the piece's parts these notes are: a name (`"soprano"`), or an index
    /// into the request's `parts` (the model's typical parts when those are omitted).
    pub part: PartReference,
    /// The notes (1 to 2000); exactly one of `notes` and `midi_base64`.
    pub notes: Option<Vec<PrimerNote>>,
    /// A MIDI file, base64 (at most 1 MiB decoded); its tempo and meter become the
    /// piece's unless the request sets them.
    pub midi_base64: Option<String>,
    /// With `midi_base64`: which of the file's tracks that hold notes, from 0
    /// (default 0).
    pub track: Option<u32>,
    /// How the model reads the given part: `lookahead` (default) weighs several
    /// candidate harmonies by how well each fits the given notes still to come;
    /// `forced` writes left to right, seeing the given part only up to now.
    pub decoding: Option<GivenDecoding>,
}

/// A part by name or by index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PartReference {
    Index(u8),
    Name(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GivenDecoding {
    #[default]
    Lookahead,
    Forced,
}

/// One part to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartRequest {
    /// One of the model's parts, by name; case does not matter (`"soprano"`).
    pub name: String,
    /// General MIDI program (0 to 127) of this part's track; the model's own when omitted.
    pub program: Option<u8>,
    /// Lowest and highest MIDI pitch of this part, inclusive (0 to 127).
    pub pitch_range: Option<[u8; 2]>,
    /// Most notes of this part sounding at once (1 to 16).
    pub max_polyphony: Option<u8>,
}

/// How much music: exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Length {
    /// Notes (1 to 2000).
    Notes(u32),
    /// Model steps (1 to 10000).
    Tokens(u32),
    /// Bars (1 to 256; `events` models).
    Bars(u32),
    /// Seconds of music (above 0, at most 600; `events` models).
    Seconds(f64),
    /// `true`: music until the listener stops (WebSocket, `"pacing": "realtime"`,
    /// `events` models); nothing is stored.
    Endless(bool),
}

/// What the model continues from: exactly one of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Primer {
    /// Explicit notes (at most 2000).
    Notes(Vec<PrimerNote>),
    /// A MIDI file, base64 (at most 1 MiB decoded).
    MidiBase64(String),
    /// Continue an earlier composition.
    CompositionId(String),
    /// `true`: a random window of the model's training corpus, as the tutorials did
    /// (the corpus must be a dataset on this server).
    Corpus(bool),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrimerNote {
    /// MIDI pitch 0 to 127.
    pub pitch: u8,
    /// Onset in beats from the start (0 or more).
    pub start_beat: f64,
    /// Length in beats (above 0, at most 64).
    pub duration_beats: f64,
    /// 1 to 127; default 80.
    pub velocity: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scale {
    Major,
    /// Natural minor.
    Minor,
    HarmonicMinor,
    Dorian,
    Mixolydian,
    PentatonicMajor,
    PentatonicMinor,
    Chromatic,
}

impl Scale {
    /// Semitones above the tonic.
    fn steps(self) -> &'static [u8] {
        match self {
            Scale::Major => &[0, 2, 4, 5, 7, 9, 11],
            Scale::Minor => &[0, 2, 3, 5, 7, 8, 10],
            Scale::HarmonicMinor => &[0, 2, 3, 5, 7, 8, 11],
            Scale::Dorian => &[0, 2, 3, 5, 7, 9, 10],
            Scale::Mixolydian => &[0, 2, 4, 5, 7, 9, 10],
            Scale::PentatonicMajor => &[0, 2, 4, 7, 9],
            Scale::PentatonicMinor => &[0, 3, 5, 7, 10],
            Scale::Chromatic => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        }
    }

    /// The key signature for this scale on `tonic`. A MIDI key signature knows only
    /// major and minor, so a scale is written as the major or minor key on its
    /// tonic, by its third (D dorian as D minor); a chromatic scale has none. A key
    /// beyond seven sharps or flats is written as its enharmonic twin (G# major as
    /// A♭ major).
    fn signature(self, tonic: Tonic) -> Option<KeySignature> {
        let minor = match self {
            Scale::Chromatic => return None,
            scale => scale.steps().contains(&3),
        };
        let mut sharps = tonic.fifths - if minor { 3 } else { 0 };
        if sharps > 7 {
            sharps -= 12;
        } else if sharps < -7 {
            sharps += 12;
        }
        Some(KeySignature { tick: 0, sharps, minor })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pacing {
    #[default]
    Fast,
    Realtime,
}

/// New settings for the rest of a streaming piece, sent while it plays (a
/// WebSocket `control` message). Fields left out keep their value; each is checked
/// as the request's field of the same name is.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub temperature: Option<f64>,
    pub top_k: Option<i64>,
    pub top_p: Option<f64>,
    pub greedy: Option<bool>,
    pub key: Option<String>,
    pub scale: Option<Scale>,
    pub pitch_range: Option<[u8; 2]>,
    pub max_polyphony: Option<u8>,
    pub tempo_bpm: Option<f64>,
    pub program: Option<u8>,
    /// Settings for some of the stream's parts, each named as it plays; a part
    /// left out keeps its settings.
    pub parts: Option<Vec<PartRequest>>,
}

impl GenerateRequest {
    /// This request with the controlled fields changed, checked as a request is;
    /// `stream_parts` names the parts the stream plays, in order (none for a model
    /// without parts). Controlled parts make the request name every part of the
    /// stream, so that it still asks for the same parts.
    pub fn controlled(
        &self,
        control: &Control,
        seed: u64,
        stream_parts: &[String],
    ) -> Result<(GenerateRequest, ValidatedRequest), Invalid> {
        let mut request = self.clone();
        if let Some(controlled) = &control.parts {
            request.parts = Some(with_controlled_parts(self.parts.as_deref(), controlled, stream_parts)?);
        }
        request.temperature = control.temperature.or(request.temperature);
        request.top_k = control.top_k.or(request.top_k);
        request.top_p = control.top_p.or(request.top_p);
        request.greedy = control.greedy.or(request.greedy);
        request.key = control.key.clone().or(request.key);
        request.scale = control.scale.or(request.scale);
        request.pitch_range = control.pitch_range.or(request.pitch_range);
        request.max_polyphony = control.max_polyphony.or(request.max_polyphony);
        request.tempo_bpm = control.tempo_bpm.or(request.tempo_bpm);
        request.program = control.program.or(request.program);
        let validated =
            request.check(seed).map_err(|refused| as_the_control_wrote(refused, control, &request))?;
        Ok((request, validated))
    }
}

/// A refusal of the merged request (`merged`), named by the field the control
/// wrote: the merged request lists every part in the stream's order, and a part's
/// range left without a pitch is the fault of the control's own `parts[i]`, or of
/// its new key, scale or range when the control did not touch that part.
fn as_the_control_wrote(refused: Invalid, control: &Control, merged: &GenerateRequest) -> Invalid {
    let Some((index, rest)) = refused
        .field
        .strip_prefix("parts[")
        .and_then(|tail| tail.split_once(']'))
        .and_then(|(index, rest)| Some((index.parse::<usize>().ok()?, rest)))
    else {
        return refused;
    };
    let Some(part) = merged.parts.as_deref().and_then(|parts| parts.get(index)) else {
        return refused;
    };
    let controlled = control.parts.as_deref().unwrap_or_default();
    if let Some(at) = controlled.iter().position(|c| c.name.trim().eq_ignore_ascii_case(&part.name)) {
        return Invalid { field: format!("parts[{at}]{rest}"), ..refused };
    }
    let changed = [
        ("key", control.key.is_some()),
        ("scale", control.scale.is_some()),
        ("pitch_range", control.pitch_range.is_some()),
    ];
    match changed.iter().find(|(_, set)| *set) {
        Some((field, _)) => Invalid {
            field: (*field).to_owned(),
            message: format!("leaves the {} part no pitch in its range: {}", part.name, refused.message),
        },
        None => refused,
    }
}

/// Every part of the stream, in its order, with the request's settings for it and
/// the control's over them.
fn with_controlled_parts(
    asked: Option<&[PartRequest]>,
    controlled: &[PartRequest],
    stream_parts: &[String],
) -> Result<Vec<PartRequest>, Invalid> {
    if stream_parts.is_empty() {
        return Err(invalid("parts", "this stream plays no named parts"));
    }
    let mut parts: Vec<PartRequest> = stream_parts
        .iter()
        .map(|name| {
            let earlier =
                asked.and_then(|asked| asked.iter().find(|part| part.name.eq_ignore_ascii_case(name)));
            earlier.cloned().unwrap_or_else(|| PartRequest {
                name: name.clone(),
                program: None,
                pitch_range: None,
                max_polyphony: None,
            })
        })
        .collect();
    // Each controlled field is checked where the client wrote it.
    check_parts(controlled, &[true; 128])?;
    for (index, control) in controlled.iter().enumerate() {
        let part = parts
            .iter_mut()
            .find(|part| part.name.eq_ignore_ascii_case(control.name.trim()))
            .ok_or_else(|| Invalid {
                field: format!("parts[{index}].name"),
                message: format!("this stream plays {}", stream_parts.join(", ")),
            })?;
        part.program = control.program.or(part.program);
        part.pitch_range = control.pitch_range.or(part.pitch_range);
        part.max_polyphony = control.max_polyphony.or(part.max_polyphony);
    }
    Ok(parts)
}

/// A request that passed validation, with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedRequest {
    pub length: Length,
    pub sampling: Sampling,
    pub seed: u64,
    /// 128 flags: may this pitch sound.
    pub pitches: [bool; 128],
    pub max_polyphony: Option<u8>,
    pub tempo_bpm: Option<f64>,
    pub time_signature: Option<(u8, u8)>,
    pub program: u8,
    /// Whether `program` was asked for (it then plays every part a request
    /// without `parts` gets), or is the default.
    pub program_asked: bool,
    /// The key signature the MIDI file states, when a key was asked for.
    pub key_signature: Option<KeySignature>,
    pub end_on_bar: bool,
    pub pacing: Pacing,
    /// The parts asked for, in order; empty when the request names none.
    pub parts: Vec<ValidatedPart>,
    pub given: Option<ValidatedGiven>,
    /// Which constraints were asked for, by field name, so that a model that cannot
    /// honour one is refused naming it.
    pub constrained: Vec<&'static str>,
    /// The copy limit, in notes.
    pub max_copied_notes: Option<u32>,
}

/// A part that passed validation; its name is still to be found among the model's.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedPart {
    pub name: String,
    pub program: Option<u8>,
    /// 128 flags: may this pitch sound in this part (its range, within the key).
    pub pitches: [bool; 128],
    pub max_polyphony: Option<u8>,
}

/// A given part that passed validation; its notes are read and placed on the
/// model's grid when the model is known (`super::given`).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedGiven {
    pub part: PartReference,
    pub source: GivenSource,
    pub decoding: GivenDecoding,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GivenSource {
    Notes(Vec<PrimerNote>),
    Midi { base64: String, track: usize },
}

/// A field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid { field: field.to_owned(), message: message.into() }
}

impl GenerateRequest {
    /// Checks every field against its limit; `fresh_seed` is used when none is given.
    pub fn check(&self, fresh_seed: u64) -> Result<ValidatedRequest, Invalid> {
        let length = self.length.unwrap_or(Length::Notes(128));
        match length {
            Length::Notes(n) if !(1..=MAX_NOTES).contains(&n) => {
                return Err(invalid("length.notes", format!("must be 1 to {MAX_NOTES}")));
            }
            Length::Tokens(n) if !(1..=MAX_TOKENS).contains(&n) => {
                return Err(invalid("length.tokens", format!("must be 1 to {MAX_TOKENS}")));
            }
            Length::Bars(n) if !(1..=MAX_BARS).contains(&n) => {
                return Err(invalid("length.bars", format!("must be 1 to {MAX_BARS}")));
            }
            Length::Seconds(s) if !(s > 0.0 && s <= MAX_SECONDS) => {
                return Err(invalid("length.seconds", format!("must be above 0 and at most {MAX_SECONDS}")));
            }
            Length::Endless(false) => {
                return Err(invalid("length.endless", "must be true (or give another length)"));
            }
            Length::Endless(true) if self.pacing != Some(Pacing::Realtime) => {
                return Err(invalid(
                    "length.endless",
                    "an endless piece plays as it is written: ask for \"pacing\": \"realtime\"",
                ));
            }
            _ => {}
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !(temperature > 0.0 && temperature <= 5.0) {
            return Err(invalid("temperature", "must be above 0 and at most 5"));
        }
        let top_k = self.top_k.unwrap_or(0);
        if self.top_k.is_some() && !(1..=1000).contains(&top_k) {
            return Err(invalid("top_k", "must be 1 to 1000"));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(invalid("top_p", "must be above 0 and at most 1"));
        }
        let mut constrained = Vec::new();
        let mut pitches = [true; 128];
        if let Some([low, high]) = self.pitch_range {
            if low > high || high > 127 {
                return Err(invalid("pitch_range", "must be [low, high] with 0 ≤ low ≤ high ≤ 127"));
            }
            for (pitch, allowed) in pitches.iter_mut().enumerate() {
                *allowed &= (usize::from(low)..=usize::from(high)).contains(&pitch);
            }
            constrained.push("pitch_range");
        }
        let mut key_signature = None;
        match (&self.key, self.scale) {
            (None, Some(_)) => return Err(invalid("key", "`scale` needs a `key` (its tonic), e.g. \"D\"")),
            (Some(key), scale) => {
                let tonic = parse_key(key)
                    .ok_or_else(|| invalid("key", "must be a note name: C, C#, Db, D, ..., B"))?;
                let scale = scale.unwrap_or(Scale::Major);
                for (pitch, allowed) in pitches.iter_mut().enumerate() {
                    *allowed &= scale.steps().contains(&(((pitch as u8 + 12) - tonic.pitch_class) % 12));
                }
                key_signature = scale.signature(tonic);
                constrained.push("key");
            }
            (None, None) => {}
        }
        if !pitches.iter().any(|&allowed| allowed) {
            return Err(invalid("pitch_range", "no pitch of the key and scale lies in this range"));
        }
        if let Some(max) = self.max_polyphony {
            if !(1..=16).contains(&max) {
                return Err(invalid("max_polyphony", "must be 1 to 16"));
            }
            constrained.push("max_polyphony");
        }
        if let Some(bpm) = self.tempo_bpm
            && !(20.0..=300.0).contains(&bpm)
        {
            return Err(invalid("tempo_bpm", "must be 20 to 300"));
        }
        if let Some([numerator, denominator]) = self.time_signature {
            if !(1..=32).contains(&numerator) || ![1, 2, 4, 8, 16].contains(&denominator) {
                return Err(invalid(
                    "time_signature",
                    "must be [numerator 1 to 32, denominator 1, 2, 4, 8 or 16]",
                ));
            }
            constrained.push("time_signature");
        }
        let program = self.program.unwrap_or(0);
        if program > 127 {
            return Err(invalid("program", "must be 0 to 127"));
        }
        if let Some(primer) = &self.primer {
            check_primer(primer)?;
        }
        if self.end_on_bar == Some(true) {
            constrained.push("end_on_bar");
        }
        let parts = match &self.parts {
            Some(parts) => {
                constrained.push("parts");
                check_parts(parts, &pitches)?
            }
            None => Vec::new(),
        };
        let given = match &self.given {
            Some(given) => {
                if self.length.is_some() {
                    return Err(invalid("length", "a given part sets the length; leave `length` out"));
                }
                if self.primer.is_some() {
                    return Err(invalid("primer", "a given part is the start; leave `primer` out"));
                }
                constrained.push("given");
                Some(check_given(given)?)
            }
            None => None,
        };
        if let Some(max) = self.max_copied_notes {
            if !(MIN_COPIED_NOTES..=MAX_COPIED_NOTES).contains(&max) {
                return Err(invalid(
                    "max_copied_notes",
                    format!("must be {MIN_COPIED_NOTES} to {MAX_COPIED_NOTES}"),
                ));
            }
            constrained.push("max_copied_notes");
        }
        let greedy = self.greedy.unwrap_or(false);
        // An endless piece keeps one tempo and meter, so that it needs no more
        // memory the longer it plays.
        let endless = matches!(length, Length::Endless(_));
        let tempo_bpm = self.tempo_bpm.or(endless.then_some(120.0));
        let time_signature = self.time_signature.map(|[n, d]| (n, d)).or(endless.then_some((4, 4)));
        Ok(ValidatedRequest {
            length,
            sampling: Sampling { temperature, top_k, top_p, greedy },
            seed: self.seed.unwrap_or(fresh_seed),
            pitches,
            max_polyphony: self.max_polyphony,
            tempo_bpm,
            time_signature,
            program,
            program_asked: self.program.is_some(),
            key_signature,
            end_on_bar: self.end_on_bar.unwrap_or(true),
            pacing: self.pacing.unwrap_or_default(),
            parts,
            given,
            constrained,
            max_copied_notes: self.max_copied_notes,
        })
    }
}

/// Each part's fields, against its limits and the others; `pitches` is what the
/// key and the request's own range allow.
fn check_parts(parts: &[PartRequest], pitches: &[bool; 128]) -> Result<Vec<ValidatedPart>, Invalid> {
    if parts.is_empty() || parts.len() > MAX_PARTS {
        return Err(invalid("parts", format!("must hold 1 to {MAX_PARTS} parts")));
    }
    let mut checked: Vec<ValidatedPart> = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let field = |name: &str| format!("parts[{index}].{name}");
        let name = part.name.trim();
        if name.is_empty() {
            return Err(Invalid {
                field: field("name"),
                message: "must name one of the model's parts".into(),
            });
        }
        if checked.iter().any(|earlier| earlier.name.eq_ignore_ascii_case(name)) {
            return Err(Invalid { field: field("name"), message: format!("`{name}` is asked for twice") });
        }
        if part.program.is_some_and(|program| program > 127) {
            return Err(Invalid { field: field("program"), message: "must be 0 to 127".into() });
        }
        let mut allowed = *pitches;
        if let Some([low, high]) = part.pitch_range {
            if low > high || high > 127 {
                return Err(Invalid {
                    field: field("pitch_range"),
                    message: "must be [low, high] with 0 ≤ low ≤ high ≤ 127".into(),
                });
            }
            for (pitch, flag) in allowed.iter_mut().enumerate() {
                *flag &= (usize::from(low)..=usize::from(high)).contains(&pitch);
            }
            if !allowed.iter().any(|&flag| flag) {
                return Err(Invalid {
                    field: field("pitch_range"),
                    message: "no pitch of the key, scale and request range lies in this range".into(),
                });
            }
        }
        if part.max_polyphony.is_some_and(|max| !(1..=16).contains(&max)) {
            return Err(Invalid { field: field("max_polyphony"), message: "must be 1 to 16".into() });
        }
        checked.push(ValidatedPart {
            name: name.to_owned(),
            program: part.program,
            pitches: allowed,
            max_polyphony: part.max_polyphony,
        });
    }
    Ok(checked)
}

fn check_primer(primer: &Primer) -> Result<(), Invalid> {
    match primer {
        Primer::Notes(notes) => check_notes(notes, "primer.notes"),
        Primer::MidiBase64(text) => check_midi_base64(text, "primer.midi_base64"),
        Primer::Corpus(false) => Err(invalid("primer.corpus", "must be true (or leave the primer out)")),
        _ => Ok(()),
    }
}

fn check_given(given: &Given) -> Result<ValidatedGiven, Invalid> {
    if let PartReference::Name(name) = &given.part
        && name.trim().is_empty()
    {
        return Err(invalid("given.part", "must name one of the piece's parts, or give its index"));
    }
    let source = match (&given.notes, &given.midi_base64) {
        (Some(notes), None) => {
            if given.track.is_some() {
                return Err(invalid("given.track", "goes with `midi_base64`, not with `notes`"));
            }
            check_notes(notes, "given.notes")?;
            GivenSource::Notes(notes.clone())
        }
        (None, Some(text)) => {
            check_midi_base64(text, "given.midi_base64")?;
            let track = given.track.unwrap_or(0);
            if track >= 1024 {
                return Err(invalid("given.track", "must be 0 to 1023"));
            }
            GivenSource::Midi { base64: text.clone(), track: track as usize }
        }
        _ => return Err(invalid("given", "must hold exactly one of `notes` and `midi_base64`")),
    };
    Ok(ValidatedGiven { part: given.part.clone(), source, decoding: given.decoding.unwrap_or_default() })
}

/// Explicit notes (a primer's or a given part's), each field against its limit.
fn check_notes(notes: &[PrimerNote], field: &str) -> Result<(), Invalid> {
    if notes.is_empty() || notes.len() > MAX_PRIMER_NOTES {
        return Err(invalid(field, format!("must hold 1 to {MAX_PRIMER_NOTES} notes")));
    }
    for (index, note) in notes.iter().enumerate() {
        let field = |name: &str| format!("{field}[{index}].{name}");
        if note.pitch > 127 {
            return Err(Invalid { field: field("pitch"), message: "must be 0 to 127".into() });
        }
        if !(note.start_beat >= 0.0 && note.start_beat <= 10_000.0) {
            return Err(Invalid { field: field("start_beat"), message: "must be 0 to 10000".into() });
        }
        if !(note.duration_beats > 0.0 && note.duration_beats <= 64.0) {
            return Err(Invalid {
                field: field("duration_beats"),
                message: "must be above 0 and at most 64".into(),
            });
        }
        if note.velocity.is_some_and(|v| !(1..=127).contains(&v)) {
            return Err(Invalid { field: field("velocity"), message: "must be 1 to 127".into() });
        }
    }
    Ok(())
}

fn check_midi_base64(text: &str, field: &str) -> Result<(), Invalid> {
    // Base64 is 4/3 of the bytes it holds.
    if text.len() > MAX_PRIMER_MIDI_BYTES / 3 * 4 + 4 {
        return Err(invalid(field, "must decode to at most 1 MiB"));
    }
    Ok(())
}

/// A tonic as the request spelled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tonic {
    pitch_class: u8,
    /// Its place on the circle of fifths from C: the sharps (flats when negative) of
    /// its major key. `F#` is 6 and `Gb` is -6.
    fifths: i8,
}

/// `C`, `C#`, `Db`, ... → the tonic.
fn parse_key(key: &str) -> Option<Tonic> {
    let mut chars = key.trim().chars();
    let letter = chars.next()?.to_ascii_uppercase();
    let base = crate::repr::letter_pitch_class(letter)?;
    let shift: i8 = match chars.as_str() {
        "" => 0,
        "#" | "♯" => 1,
        "b" | "♭" => -1,
        _ => return None,
    };
    let letter_fifths = "FCGDAEB".find(letter)? as i8 - 1;
    Some(Tonic {
        pitch_class: (base + i16::from(shift)).rem_euclid(12) as u8,
        fifths: letter_fifths + 7 * shift,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(json: serde_json::Value) -> Result<ValidatedRequest, Invalid> {
        serde_json::from_value::<GenerateRequest>(json).unwrap().check(42)
    }

    fn field(json: serde_json::Value) -> String {
        check(json).unwrap_err().field
    }

    #[test]
    fn defaults_fill_in() {
        let checked = check(serde_json::json!({})).unwrap();
        assert_eq!(checked.length, Length::Notes(128));
        assert_eq!(checked.seed, 42);
        assert!(checked.pitches.iter().all(|&allowed| allowed));
        assert!(checked.constrained.is_empty());
    }

    #[test]
    fn a_refused_control_names_the_field_the_control_wrote() {
        let request: GenerateRequest = serde_json::from_value(
            json!({"key": "C", "scale": "major", "parts": [{"name": "Bass", "pitch_range": [60, 60]}]}),
        )
        .unwrap();
        let stream = ["Soprano", "Alto", "Tenor", "Bass"].map(String::from);
        let refused = |control: serde_json::Value| {
            let control: Control = serde_json::from_value(control).unwrap();
            request.controlled(&control, 1, &stream).unwrap_err()
        };
        // The soprano is the stream's first part and this control's second; C# is not in C major.
        let soprano =
            refused(json!({"parts": [{"name": "Tenor"}, {"name": "soprano", "pitch_range": [61, 61]}]}));
        assert_eq!(soprano.field, "parts[1].pitch_range", "{soprano:?}");
        // D major leaves the bass's C, set by the request, no pitch: the key is at fault.
        let key = refused(json!({"key": "D"}));
        assert_eq!(key.field, "key", "{key:?}");
        assert!(key.message.contains("Bass part"), "{key:?}");
    }

    #[test]
    fn key_and_scale_keep_their_notes_in_range() {
        let checked =
            check(serde_json::json!({"key": "D", "scale": "minor", "pitch_range": [60, 72]})).unwrap();
        let allowed: Vec<usize> = (0..128).filter(|&p| checked.pitches[p]).collect();
        // D minor: D E F G A Bb C.
        assert_eq!(allowed, [60, 62, 64, 65, 67, 69, 70, 72]);
        assert_eq!(parse_key("Bb"), Some(Tonic { pitch_class: 10, fifths: -2 }));
        assert_eq!(parse_key("F#"), Some(Tonic { pitch_class: 6, fifths: 6 }));
        assert_eq!(parse_key("H"), None);
    }

    #[test]
    fn parts_are_checked_each_by_its_own_field() {
        let soprano = json!({"name": "Soprano", "program": 52, "pitch_range": [60, 81], "max_polyphony": 1});
        let checked = check(json!({"key": "C", "parts": [soprano, {"name": "bass"}]})).unwrap();
        assert_eq!(checked.constrained, ["key", "parts"]);
        let [first, second] = &checked.parts[..] else { panic!("two parts: {:?}", checked.parts) };
        assert_eq!((first.name.as_str(), first.program, first.max_polyphony), ("Soprano", Some(52), Some(1)));
        let first_pitches: Vec<usize> = (0..128).filter(|&p| first.pitches[p]).collect();
        assert_eq!((first_pitches[0], first_pitches[first_pitches.len() - 1]), (60, 81));
        assert!(!first.pitches[61], "C# is outside C major");
        assert_eq!(second.pitches, checked.pitches, "a part without a range keeps the request's pitches");

        assert_eq!(field(json!({"parts": []})), "parts");
        let seventeen: Vec<_> = (0..17).map(|i| json!({"name": format!("p{i}")})).collect();
        assert_eq!(field(json!({"parts": seventeen})), "parts");
        assert_eq!(field(json!({"parts": [{"name": " "}]})), "parts[0].name");
        assert_eq!(field(json!({"parts": [{"name": "alto"}, {"name": "Alto"}]})), "parts[1].name");
        assert_eq!(field(json!({"parts": [{"name": "alto", "program": 128}]})), "parts[0].program");
        assert_eq!(
            field(json!({"parts": [{"name": "alto", "pitch_range": [70, 60]}]})),
            "parts[0].pitch_range"
        );
        assert_eq!(
            field(json!({"pitch_range": [40, 50], "parts": [{"name": "alto", "pitch_range": [60, 70]}]})),
            "parts[0].pitch_range"
        );
        assert_eq!(field(json!({"parts": [{"name": "alto", "max_polyphony": 0}]})), "parts[0].max_polyphony");
        let given = |extra: serde_json::Value| {
            let mut given = json!({"part": "soprano", "midi_base64": "TVRoZA=="});
            given.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            field(json!({ "given": given }))
        };
        assert_eq!(given(json!({"track": 1024})), "given.track");
        assert_eq!(given(json!({"part": " "})), "given.part");
        assert!(check(json!({"given": {"part": 0, "midi_base64": "TVRoZA==", "track": 1023}})).is_ok());
    }

    #[test]
    fn every_limit_names_its_field() {
        assert_eq!(field(json!({"length": {"notes": 0}})), "length.notes");
        assert_eq!(field(json!({"length": {"notes": 2001}})), "length.notes");
        assert_eq!(field(json!({"length": {"tokens": 10001}})), "length.tokens");
        assert_eq!(field(json!({"length": {"bars": 257}})), "length.bars");
        assert_eq!(field(json!({"length": {"seconds": 601.0}})), "length.seconds");
        assert_eq!(field(json!({"temperature": 0.0})), "temperature");
        assert_eq!(field(json!({"top_k": 0})), "top_k");
        assert_eq!(field(json!({"top_p": 1.5})), "top_p");
        assert_eq!(field(json!({"scale": "major"})), "key");
        assert_eq!(field(json!({"key": "H"})), "key");
        assert_eq!(field(json!({"pitch_range": [80, 60]})), "pitch_range");
        assert_eq!(field(json!({"key": "C", "scale": "major", "pitch_range": [61, 61]})), "pitch_range");
        assert_eq!(field(json!({"max_polyphony": 0})), "max_polyphony");
        assert_eq!(field(json!({"tempo_bpm": 10})), "tempo_bpm");
        assert_eq!(field(json!({"time_signature": [3, 5]})), "time_signature");
        assert_eq!(field(json!({"program": 128})), "program");
        assert_eq!(field(json!({"primer": {"notes": []}})), "primer.notes");
        let bad_note = json!({"primer": {"notes": [{"pitch": 60, "start_beat": 0, "duration_beats": 0}]}});
        assert_eq!(field(bad_note), "primer.notes[0].duration_beats");
        assert_eq!(field(json!({"primer": {"corpus": false}})), "primer.corpus");
        let huge = "A".repeat(MAX_PRIMER_MIDI_BYTES / 3 * 4 + 8);
        assert_eq!(field(json!({"primer": {"midi_base64": huge}})), "primer.midi_base64");
    }

    #[test]
    fn keys_are_written_as_their_major_or_minor_signature() {
        let signature = |key: &str, scale: &str| {
            check(json!({"key": key, "scale": scale})).unwrap().key_signature.map(|k| (k.sharps, k.minor))
        };
        assert_eq!(signature("D", "minor"), Some((-1, true)));
        assert_eq!(signature("D", "major"), Some((2, false)));
        assert_eq!(signature("A", "minor"), Some((0, true)));
        assert_eq!(signature("C#", "harmonic-minor"), Some((4, true)));
        assert_eq!(signature("Eb", "major"), Some((-3, false)));
        assert_eq!(signature("F#", "major"), Some((6, false)));
        assert_eq!(signature("Gb", "major"), Some((-6, false)));
        assert_eq!(signature("G#", "major"), Some((-4, false)), "written as Ab major");
        assert_eq!(signature("D", "dorian"), Some((-1, true)));
        assert_eq!(signature("G", "mixolydian"), Some((1, false)));
        assert_eq!(signature("E", "pentatonic-minor"), Some((1, true)));
        assert_eq!(signature("C", "chromatic"), None);
        assert_eq!(check(json!({})).unwrap().key_signature, None);
    }
}
