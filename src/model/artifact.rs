//! Model artifacts on disk: one directory per model under the models directory,
//! holding `meta.json` (what the model is and how it was trained) beside its weights.

use std::path::{Path, PathBuf};

/// The file that makes a directory a model artifact.
pub const META_FILE: &str = "meta.json";

/// The models directory, and which of its models serves by default.
#[derive(Debug, Clone)]
pub struct ModelLibrary {
    dir: PathBuf,
    default_model: String,
}

impl ModelLibrary {
    pub fn new(dir: impl Into<PathBuf>, default_model: impl Into<String>) -> ModelLibrary {
        ModelLibrary { dir: dir.into(), default_model: default_model.into() }
    }

    pub fn default_model(&self) -> &str {
        &self.default_model
    }

    /// `ok` when the default model's artifact is present and its metadata readable,
    /// else what is wrong, for `/ready`.
    pub fn default_model_check(&self) -> String {
        let meta = self.dir.join(&self.default_model).join(META_FILE);
        match read_meta(&meta) {
            Ok(_) => "ok".to_owned(),
            Err(reason) => format!("default model `{}`: {reason}", self.default_model),
        }
    }
}

fn read_meta(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{} unreadable: {e}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(meta)) => Ok(meta),
        Ok(_) => Err(format!("{} is not a JSON object", path.display())),
        Err(e) => Err(format!("{} is not valid JSON: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_default_model_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let check = ModelLibrary::new(dir.path(), "bach").default_model_check();
        assert!(check.starts_with("default model `bach`: "), "{check}");
        assert!(check.contains("bach/meta.json unreadable"), "{check}");
    }

    #[test]
    fn corrupt_metadata_is_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bach")).unwrap();
        std::fs::write(dir.path().join("bach").join(META_FILE), "[1, 2").unwrap();
        let check = ModelLibrary::new(dir.path(), "bach").default_model_check();
        assert!(check.contains("not valid JSON"), "{check}");
    }

    #[test]
    fn readable_metadata_is_ready() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bach")).unwrap();
        std::fs::write(dir.path().join("bach").join(META_FILE), r#"{"preset": "fugue"}"#).unwrap();
        assert_eq!(ModelLibrary::new(dir.path(), "bach").default_model_check(), "ok");
    }
}
