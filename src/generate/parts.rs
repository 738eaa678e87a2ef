//! Which of a model's parts a piece is written in: the request's `parts`, found by
//! name in the model's part table, or, when the request names none, the parts the
//! corpus's pieces typically have.

use super::decoder::PlannedPart;
use super::request::{Invalid, ValidatedRequest};
use crate::midi::{Part, Score};
use crate::model::artifact::Representation;
use crate::repr::events::{CorpusPart, Token};

/// The parts a model with parts writes this piece in; none for other models. An
/// `events` model trained without parts refuses a request that names some (other
/// families refuse every control they lack, `parts` among them, in `compose`).
pub fn for_model(
    representation: &Representation,
    request: &ValidatedRequest,
) -> Result<Vec<PlannedPart>, Invalid> {
    let Representation::Events { config, vocabulary, parts: table } = representation else {
        return Ok(Vec::new());
    };
    if config.max_parts == 0 {
        if request.given.is_some() {
            return Err(Invalid {
                field: "given".to_owned(),
                message: "this model was trained without parts, so it cannot write parts around a given one"
                    .to_owned(),
            });
        }
        if request.parts.is_empty() {
            return Ok(Vec::new());
        }
        return Err(Invalid {
            field: "parts".to_owned(),
            message: "this model was trained without parts; ask without `parts`".to_owned(),
        });
    }
    let most_parts = (0..config.max_parts)
        .take_while(|&index| vocabulary.id(&Token::Part(index).to_string()).is_some())
        .count();
    plan(request, table, most_parts)
}

/// The parts to write, in header order. `most_parts` is how many parts a piece of
/// the corpus declared at most (the model knows `Part_0` to `Part_{most_parts-1}`).
pub fn plan(
    request: &ValidatedRequest,
    table: &[CorpusPart],
    most_parts: usize,
) -> Result<Vec<PlannedPart>, Invalid> {
    if request.parts.is_empty() {
        return Ok(typical(table, most_parts)
            .into_iter()
            .map(|known| PlannedPart {
                declared: known.part.clone(),
                program: if request.program_asked { request.program } else { known.part.program },
                pitches: request.pitches,
                max_polyphony: None,
            })
            .collect());
    }
    if request.parts.len() > most_parts {
        return Err(Invalid {
            field: "parts".to_owned(),
            message: format!("this model knows pieces of at most {most_parts} parts"),
        });
    }
    request
        .parts
        .iter()
        .enumerate()
        .map(|(index, asked)| {
            let known = table
                .iter()
                .find(|known| {
                    known.part.name.as_deref().is_some_and(|name| name.eq_ignore_ascii_case(&asked.name))
                })
                .ok_or_else(|| Invalid {
                    field: format!("parts[{index}].name"),
                    message: format!("the model has no part `{}`; it knows {}", asked.name, names(table)),
                })?;
            let program = asked.program.or(request.program_asked.then_some(request.program));
            Ok(PlannedPart {
                declared: known.part.clone(),
                program: program.unwrap_or(known.part.program),
                pitches: asked.pitches,
                max_polyphony: asked.max_polyphony,
            })
        })
        .collect()
}

/// A primer's notes in the planned parts, so that the model reads them in the
/// parts it is about to write: the primer's part `k` plays planned part `k` (the
/// last one for any beyond), each declared as planned.
pub fn primer_in_parts(primer: &Score, planned: &[PlannedPart]) -> Score {
    let mut parts: Vec<Part> = planned
        .iter()
        .map(|part| Part {
            name: part.declared.name.clone(),
            is_drum: part.declared.drums,
            ..Part::new(0, part.declared.program, Vec::new())
        })
        .collect();
    for (index, part) in primer.parts.iter().enumerate() {
        if let Some(target) = parts.get_mut(index.min(planned.len().saturating_sub(1))) {
            target.notes.extend(part.notes.iter().copied());
        }
    }
    for part in &mut parts {
        part.notes.sort_by_key(|note| (note.start, note.pitch));
    }
    Score { parts, ..primer.clone() }
}

/// The parts most pieces have: those in at least half as many files as the most
/// common one, at most `most_parts`, highest first (by the middle of their range),
/// as scores list voices.
fn typical(table: &[CorpusPart], most_parts: usize) -> Vec<&CorpusPart> {
    let most_files = table.iter().map(|known| known.files).max().unwrap_or(0);
    let mut chosen: Vec<&CorpusPart> =
        table.iter().filter(|known| known.files * 2 >= most_files).take(most_parts.max(1)).collect();
    chosen.sort_by_key(|known| {
        std::cmp::Reverse(u16::from(known.pitch_range[0]) + u16::from(known.pitch_range[1]))
    });
    chosen
}

/// `Soprano, Alto, …`: the named parts of the table, for an error message.
fn names(table: &[CorpusPart]) -> String {
    let named: Vec<&str> = table.iter().filter_map(|known| known.part.name.as_deref()).take(20).collect();
    if named.is_empty() { "no named parts".to_owned() } else { named.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repr::events::PartSpec;

    fn known(name: &str, files: u64, pitch_range: [u8; 2]) -> CorpusPart {
        let part = PartSpec { name: Some(name.to_owned()), program: 52, drums: false };
        CorpusPart { part, files, notes: files * 10, pitch_range }
    }

    fn chorale_table() -> Vec<CorpusPart> {
        vec![
            known("Alto", 400, [53, 74]),
            known("Tenor", 400, [48, 69]),
            known("Bass", 400, [36, 64]),
            known("Soprano", 360, [60, 81]),
            known("Soprano 1", 10, [60, 81]),
        ]
    }

    fn request(parts: serde_json::Value) -> ValidatedRequest {
        serde_json::from_value::<super::super::request::GenerateRequest>(serde_json::json!({"parts": parts}))
            .unwrap()
            .check(1)
            .unwrap()
    }

    #[test]
    fn without_parts_asked_the_typical_voices_sing_highest_first() {
        let plain = serde_json::from_value::<super::super::request::GenerateRequest>(serde_json::json!({}))
            .unwrap()
            .check(1)
            .unwrap();
        let planned = plan(&plain, &chorale_table(), 4).unwrap();
        let names: Vec<_> = planned.iter().map(|part| part.declared.name.clone().unwrap()).collect();
        assert_eq!(names, ["Soprano", "Alto", "Tenor", "Bass"]);
    }

    #[test]
    fn asked_parts_are_found_by_name_whatever_the_case_and_keep_their_settings() {
        let asked = request(
            serde_json::json!([{"name": "bass", "program": 42, "pitch_range": [40, 60]}, {"name": "SOPRANO"}]),
        );
        let planned = plan(&asked, &chorale_table(), 4).unwrap();
        assert_eq!(planned[0].declared.name.as_deref(), Some("Bass"));
        assert_eq!((planned[0].program, planned[1].program), (42, 52));
        assert!(planned[0].pitches[40] && !planned[0].pitches[39] && !planned[0].pitches[61]);

        let unknown =
            plan(&request(serde_json::json!([{"name": "alto"}, {"name": "oboe"}])), &chorale_table(), 4);
        assert_eq!(unknown.unwrap_err().field, "parts[1].name");
        let five: Vec<_> = ["soprano", "alto", "tenor", "bass", "soprano 1"]
            .iter()
            .map(|name| serde_json::json!({"name": name}))
            .collect();
        assert_eq!(plan(&request(serde_json::json!(five)), &chorale_table(), 4).unwrap_err().field, "parts");
    }
}
