//! Unpacking uploaded zip archives in memory, refusing what could hurt: nested
//! archives, absolute or `..` paths, zip bombs (size and ratio), too many entries.
//! Nothing is ever written to disk by an entry's name.

use std::io::{Cursor, Read};
use std::path::{Component, Path};

use super::{IngestError, IngestLimits, Rejection, Upload};

pub fn is_zip(upload: &Upload) -> bool {
    upload.bytes.starts_with(b"PK\x03\x04") || upload.file_name.to_ascii_lowercase().ends_with(".zip")
}

/// Budget of uncompressed bytes left for the whole upload.
pub struct Budget {
    pub remaining: u64,
}

/// The archive's files as uploads named `archive.zip/inner/path.mid`, plus the
/// entries it refused, each with its reason.
pub fn unpack(
    archive: &Upload,
    limits: &IngestLimits,
    budget: &mut Budget,
) -> Result<(Vec<Upload>, Vec<Rejection>), IngestError> {
    let reject =
        |name: &str, reason: String| Rejection { file: format!("{}/{name}", archive.file_name), reason };
    let mut zip = match zip::ZipArchive::new(Cursor::new(&archive.bytes[..])) {
        Ok(zip) => zip,
        Err(error) => return Ok((vec![], vec![reject("", format!("not a readable zip archive: {error}"))])),
    };
    if zip.len() > limits.max_zip_entries {
        return Err(IngestError::TooManyEntries {
            archive: archive.file_name.clone(),
            limit: limits.max_zip_entries,
        });
    }
    let (mut files, mut rejected) = (Vec::new(), Vec::new());
    for index in 0..zip.len() {
        let mut entry = match zip.by_index(index) {
            Ok(entry) => entry,
            Err(error) => {
                rejected.push(reject(&format!("entry {index}"), format!("unreadable entry: {error}")));
                continue;
            }
        };
        let name = entry.name().map_or_else(|_| format!("entry {index}"), |name| name.into_owned());
        if entry.is_dir() {
            continue;
        }
        if let Some(reason) = unsafe_path(&name) {
            rejected.push(reject(&name, reason.to_owned()));
            continue;
        }
        if name.to_ascii_lowercase().ends_with(".zip") {
            rejected.push(reject(&name, "nested archives are not accepted".to_owned()));
            continue;
        }
        let (declared, compressed) = (entry.size(), entry.compressed_size().max(1));
        if declared / compressed > limits.max_compression_ratio {
            let reason = format!("compression ratio above {}:1", limits.max_compression_ratio);
            rejected.push(reject(&name, reason));
            continue;
        }
        if declared > budget.remaining {
            return Err(IngestError::TooManyBytes { limit: limits.max_uncompressed_bytes });
        }
        // The declared size can lie: read at most one byte past what is left.
        let mut bytes = Vec::with_capacity(declared.min(1 << 20) as usize);
        if let Err(error) = (&mut entry).take(budget.remaining + 1).read_to_end(&mut bytes) {
            rejected.push(reject(&name, format!("unreadable entry: {error}")));
            continue;
        }
        if bytes.len() as u64 > budget.remaining {
            return Err(IngestError::TooManyBytes { limit: limits.max_uncompressed_bytes });
        }
        budget.remaining -= bytes.len() as u64;
        files.push(Upload { file_name: format!("{}/{name}", archive.file_name), bytes });
    }
    Ok((files, rejected))
}

/// Why an entry path is refused, if it is.
fn unsafe_path(name: &str) -> Option<&'static str> {
    let path = Path::new(name);
    if path.is_absolute() || name.starts_with('\\') || name.contains(':') {
        return Some("absolute paths are not accepted");
    }
    if path.components().any(|c| matches!(c, Component::ParentDir))
        || name.split(['/', '\\']).any(|p| p == "..")
    {
        return Some("paths with `..` are not accepted");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_named() {
        assert_eq!(unsafe_path("/etc/passwd"), Some("absolute paths are not accepted"));
        assert_eq!(unsafe_path("C:\\x.mid"), Some("absolute paths are not accepted"));
        assert_eq!(unsafe_path("a/../../x.mid"), Some("paths with `..` are not accepted"));
        assert_eq!(unsafe_path("a\\..\\x.mid"), Some("paths with `..` are not accepted"));
        assert_eq!(unsafe_path("chorales/bwv1.6.mid"), None);
        assert_eq!(unsafe_path("odd..name.mid"), None);
    }
}
