//! A token vocabulary built from a corpus and saved with each model.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Tokens in a fixed order; an id is a token's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Vocabulary {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocabulary {
    /// The sorted, de-duplicated tokens of the given sequences.
    pub fn build<'a>(sequences: impl IntoIterator<Item = &'a [String]>) -> Vocabulary {
        let mut tokens: Vec<String> = sequences.into_iter().flatten().cloned().collect();
        tokens.sort_unstable();
        tokens.dedup();
        Vocabulary::from(tokens)
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Ids of the tokens, or the first token that is not in the vocabulary.
    pub fn encode(&self, tokens: &[String]) -> Result<Vec<u32>, String> {
        tokens.iter().map(|token| self.id(token).ok_or_else(|| token.clone())).collect()
    }
}

impl From<Vec<String>> for Vocabulary {
    fn from(tokens: Vec<String>) -> Vocabulary {
        let ids = tokens.iter().zip(0u32..).map(|(token, id)| (token.clone(), id)).collect();
        Vocabulary { tokens, ids }
    }
}

impl From<Vocabulary> for Vec<String> {
    fn from(vocabulary: Vocabulary) -> Vec<String> {
        vocabulary.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_sorted_unique_and_survives_json() {
        let a = vec!["G2".to_owned(), "R".to_owned(), "G2".to_owned()];
        let b = vec!["A2.F#3".to_owned()];
        let vocabulary = Vocabulary::build([a.as_slice(), b.as_slice()]);
        assert_eq!(vocabulary.len(), 3);
        assert_eq!(vocabulary.token(0), Some("A2.F#3"));
        assert_eq!(vocabulary.encode(&a), Ok(vec![1, 2, 1]));
        assert_eq!(vocabulary.encode(&["C9".to_owned()]), Err("C9".to_owned()));
        let json = serde_json::to_string(&vocabulary).unwrap();
        assert_eq!(json, r#"["A2.F#3","G2","R"]"#);
        assert_eq!(serde_json::from_str::<Vocabulary>(&json).unwrap(), vocabulary);
    }
}
