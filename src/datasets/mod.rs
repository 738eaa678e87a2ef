//! Datasets: uploaded MIDI files (and zips of them) read, checked, reported on and
//! stored immutably. Ingest is pure CPU work on bytes ([`ingest`]); [`Datasets`]
//! adds storage: content-addressed blobs plus rows, with nothing left behind when
//! any step fails.

mod archive;
mod blobs;
mod report;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use self::blobs::BlobStore;
pub use self::report::{AcceptedFile, IngestReport, PartSummary, Rejection, RepresentationTotals, Totals};
use crate::store::{DatasetDeletion, DatasetFileRow, DatasetRow, Store};
use crate::train::data::{TrainingData, TrainingFile};

/// One uploaded file, as received.
#[derive(Debug, Clone)]
pub struct Upload {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// Bounds on one upload; see the limits table in the README.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// MIDI files per dataset, after unpacking archives.
    pub max_files: usize,
    /// Entries per zip archive.
    pub max_zip_entries: usize,
    /// Bytes of all files together, after unpacking archives.
    pub max_uncompressed_bytes: u64,
    /// Uncompressed to compressed size, per zip entry.
    pub max_compression_ratio: u64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_files: 10_000,
            max_zip_entries: 10_000,
            max_uncompressed_bytes: 512 * 1024 * 1024,
            max_compression_ratio: 100,
        }
    }
}

/// Why a whole upload is refused (single files are rejected in the report instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("more than {limit} files in one dataset")]
    TooManyFiles { limit: usize },
    #[error("archive `{archive}` has more than {limit} entries")]
    TooManyEntries { archive: String, limit: usize },
    #[error("more than {limit} bytes of files once unpacked")]
    TooManyBytes { limit: u64 },
}

/// Every `.mid`, `.midi` and `.zip` file under `dir` (recursively), sorted by path,
/// as uploads named by their path: a dataset from a local folder.
pub fn folder_uploads(dir: &Path) -> std::io::Result<Vec<Upload>> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, found)?;
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["mid", "midi", "zip"].contains(&e.to_ascii_lowercase().as_str()))
            {
                found.push(path);
            }
        }
        Ok(())
    }
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    paths.sort();
    paths
        .into_iter()
        .map(|path| Ok(Upload { bytes: std::fs::read(&path)?, file_name: path.display().to_string() }))
        .collect()
}

/// What ingest makes of an upload: the report and the accepted files' bytes.
pub struct Ingested {
    pub report: IngestReport,
    pub files: Vec<(AcceptedFile, Vec<u8>)>,
}

/// Unpacks, reads and examines every file. CPU-bound: call it off the async runtime.
pub fn ingest(
    uploads: Vec<Upload>,
    include_drums: bool,
    limits: &IngestLimits,
) -> Result<Ingested, IngestError> {
    let mut budget = archive::Budget { remaining: limits.max_uncompressed_bytes };
    let (mut candidates, mut rejected) = (Vec::new(), Vec::new());
    for upload in uploads {
        if archive::is_zip(&upload) {
            let (files, refused) = archive::unpack(&upload, limits, &mut budget)?;
            candidates.extend(files);
            rejected.extend(refused);
        } else {
            budget.remaining = budget
                .remaining
                .checked_sub(upload.bytes.len() as u64)
                .ok_or(IngestError::TooManyBytes { limit: limits.max_uncompressed_bytes })?;
            candidates.push(upload);
        }
        if candidates.len() > limits.max_files {
            return Err(IngestError::TooManyFiles { limit: limits.max_files });
        }
    }
    let examined = report::examine_all(&candidates, include_drums);
    let mut accepted = Vec::new();
    let mut files = Vec::new();
    let mut summaries = Vec::new();
    for (upload, outcome) in candidates.into_iter().zip(examined) {
        match outcome {
            Ok(examined) => {
                accepted.push(examined.file.clone());
                summaries.push(examined.tokens);
                files.push((examined.file, upload.bytes));
            }
            Err(reason) => rejected.push(Rejection { file: upload.file_name, reason }),
        }
    }
    let totals = report::totals(&accepted, &summaries);
    Ok(Ingested { report: IngestReport { accepted, rejected, totals }, files })
}

/// A dataset as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Dataset {
    #[schema(example = "0b9f6a1e-6c1a-4f55-9f87-0f3c2f7f6d11")]
    pub id: String,
    #[schema(example = "bach chorales")]
    pub name: String,
    /// Whether drum parts (channel 10) were kept.
    pub include_drums: bool,
    pub file_count: i64,
    pub note_count: i64,
    /// RFC 3339.
    #[schema(example = "2026-11-21T23:50:00Z")]
    pub created_at: String,
    /// The ingest report; left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<IngestReport>,
}

impl Dataset {
    fn from_row(row: DatasetRow, with_report: bool) -> anyhow::Result<Dataset> {
        let report = if with_report { Some(serde_json::from_str(&row.report)?) } else { None };
        let created_at = crate::shared::rfc3339(row.created_at);
        Ok(Dataset {
            id: row.id,
            name: row.name,
            include_drums: row.include_drums,
            file_count: row.file_count,
            note_count: row.note_count,
            created_at,
            report,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Refused(#[from] IngestError),
    #[error("no file was accepted")]
    NothingAccepted(Box<IngestReport>),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Datasets with their storage.
#[derive(Clone)]
pub struct Datasets {
    store: Store,
    blobs: BlobStore,
    limits: IngestLimits,
}

impl Datasets {
    pub fn new(store: Store, blobs: BlobStore, limits: IngestLimits) -> Datasets {
        Datasets { store, blobs, limits }
    }

    /// The blob store, shared with compositions: one store, one write lock.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub async fn create(
        &self,
        name: String,
        uploads: Vec<Upload>,
        include_drums: bool,
    ) -> Result<Dataset, CreateError> {
        let limits = self.limits.clone();
        let ingested = tokio::task::spawn_blocking(move || ingest(uploads, include_drums, &limits))
            .await
            .map_err(anyhow::Error::from)??;
        let Ingested { report, files } = ingested;
        if files.is_empty() {
            return Err(CreateError::NothingAccepted(Box::new(report)));
        }
        let rows: Vec<DatasetFileRow> = files
            .iter()
            .map(|(file, bytes)| DatasetFileRow {
                file_name: file.file.clone(),
                sha256: file.sha256.clone(),
                bytes: bytes.len() as i64,
            })
            .collect();
        let row = DatasetRow {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            include_drums,
            file_count: rows.len() as i64,
            note_count: report.totals.notes as i64,
            report: serde_json::to_string(&report).map_err(anyhow::Error::from)?,
            created_at: 0,
        };
        let _writes = self.blobs.lock_writes().await;
        let hashes: Vec<String> = files.iter().map(|(file, _)| file.sha256.clone()).collect();
        // Marked before they are looked up: a collector on another node leaves them be.
        self.store.mark_blobs(&hashes, crate::store::now_ms()).await?;
        // The bytes move into the writer: an upload can be hundreds of megabytes.
        let contents: Vec<(String, Vec<u8>)> =
            files.into_iter().map(|(file, bytes)| (file.sha256, bytes)).collect();
        if let Err(error) = store_blobs(&self.blobs, contents).await {
            drop(_writes);
            self.collect_garbage().await;
            return Err(CreateError::Internal(error));
        }
        match self.store.insert_dataset(row, &rows).await {
            Ok(row) => Ok(Dataset::from_row(row, true)?),
            Err(error) => {
                // Marked and unreferenced: collected once the grace period is over.
                drop(_writes);
                self.collect_garbage().await;
                Err(CreateError::Internal(error))
            }
        }
    }

    pub async fn list(&self) -> anyhow::Result<Vec<Dataset>> {
        self.store.datasets().await?.into_iter().map(|row| Dataset::from_row(row, false)).collect()
    }

    pub async fn get(&self, id: &str) -> anyhow::Result<Option<Dataset>> {
        self.store.dataset(id).await?.map(|row| Dataset::from_row(row, true)).transpose()
    }

    /// One of the dataset's files, the `pick(count)`th in dataset order: read alone,
    /// not with the rest of the dataset. None when the dataset has no files (or is
    /// not there).
    pub async fn one_file(
        &self,
        id: &str,
        pick: impl FnOnce(usize) -> usize,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        let rows = self.store.dataset_files(id).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let row = &rows[pick(rows.len()) % rows.len()];
        let bytes = self.blobs.get(&row.sha256).await;
        Ok(Some(bytes.with_context(|| format!("reading {}", row.file_name))?))
    }

    /// The dataset's files read back from the blob store, ready to train on.
    pub async fn training_data(&self, id: &str) -> anyhow::Result<Option<TrainingData>> {
        let Some(dataset) = self.store.dataset(id).await? else { return Ok(None) };
        let rows = self.store.dataset_files(id).await?;
        let mut files = Vec::with_capacity(rows.len());
        for file in rows {
            let bytes =
                self.blobs.get(&file.sha256).await.with_context(|| format!("reading {}", file.file_name))?;
            files.push(TrainingFile { sha256: file.sha256, name: file.file_name, bytes });
        }
        let source = crate::model::artifact::Corpus::Dataset(id.to_owned());
        Ok(Some(TrainingData::files(files, dataset.include_drums, source)))
    }

    /// Deletes the dataset and the blobs no other dataset uses, unless a queued or
    /// running training job needs it.
    pub async fn delete(&self, id: &str) -> anyhow::Result<DatasetDeletion> {
        let deletion = {
            let _writes = self.blobs.lock_writes().await;
            self.store.delete_dataset(id).await?
        };
        if let DatasetDeletion::Deleted { .. } = &deletion {
            self.collect_garbage().await;
        }
        Ok(deletion)
    }

    /// Removes the blobs whose mark is older than the grace period and that no
    /// row references, safely against writers on any node (see `store::blobs`).
    /// Failures are logged: an uncollected blob is only wasted space. Returns how
    /// many were removed.
    pub async fn collect_garbage(&self) -> usize {
        let _writes = self.blobs.lock_writes().await;
        // Marks at or before now minus the grace period.
        let cutoff = crate::store::now_ms() + 1 - self.blobs.grace().as_millis() as i64;
        let candidates = match self.store.blobs_marked_before(cutoff, 1000).await {
            Ok(candidates) => candidates,
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "could not look for unused blobs");
                return 0;
            }
        };
        let mut removed = 0;
        for hash in candidates {
            match self.store.collect_blob(&hash, cutoff, || self.blobs.remove(&hash)).await {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%hash, error = format!("{error:#}"), "could not remove an unused blob")
                }
            }
        }
        removed
    }
}

/// Writes every blob (each once). On failure the ones written stay, marked:
/// the collector removes them after the grace period, unless another upload on
/// some node references them meanwhile.
async fn store_blobs(blobs: &BlobStore, files: Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    for (hash, bytes) in files {
        blobs.put(&hash, bytes).await.context("storing dataset files")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::midi::{Note, Part, Score};

    fn midi_file(channel: u8, pitches: &[u8]) -> Vec<u8> {
        let notes = pitches
            .iter()
            .zip(0u64..)
            .map(|(&pitch, i)| Note { pitch, velocity: 80, start: i * 480, duration: 480 })
            .collect();
        let part = Part { name: None, program: 0, channel, is_drum: channel == 9, notes };
        crate::midi::write(&Score::of_parts(480, vec![part]))
    }

    fn upload(name: &str, bytes: Vec<u8>) -> Upload {
        Upload { file_name: name.to_owned(), bytes }
    }

    fn zip_of(entries: &[(&str, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, bytes) in entries {
            writer.start_file(*name, options).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    fn reasons(report: &IngestReport) -> Vec<(&str, &str)> {
        report.rejected.iter().map(|r| (r.file.as_str(), r.reason.as_str())).collect()
    }

    #[test]
    fn accepts_music_and_says_why_it_rejects_the_rest() {
        let good = midi_file(0, &[60, 62, 64]);
        let uploads = vec![
            upload("a.mid", good.clone()),
            upload("notes.txt", b"hello".to_vec()),
            upload("drums.mid", midi_file(9, &[36, 38])),
            upload("cut.mid", good[..good.len() - 5].to_vec()),
        ];
        let ingested = ingest(uploads, false, &IngestLimits::default()).unwrap();
        let report = &ingested.report;
        assert_eq!(report.accepted.len(), 1);
        assert_eq!(report.accepted[0].notes, 3);
        assert_eq!(report.accepted[0].pitch_range, [60, 64]);
        assert_eq!(
            reasons(report),
            [
                ("notes.txt", "not a MIDI file (no MThd header)"),
                ("drums.mid", "drums only (drums are excluded)"),
                ("cut.mid", "truncated: the file ends inside a track"),
            ]
        );
        assert_eq!(report.totals.files, 1);
        // One token per half beat from the first onset to the last: C4 R D4 R E4.
        assert_eq!(report.totals.representations.note_chord_tokens, 5);
        assert_eq!(ingested.files[0].1, good);

        let with_drums =
            ingest(vec![upload("drums.mid", midi_file(9, &[36]))], true, &IngestLimits::default());
        assert_eq!(with_drums.unwrap().report.accepted.len(), 1);
    }

    #[test]
    fn zips_are_unpacked_and_their_dangers_refused() {
        let good = midi_file(0, &[60]);
        let archive = zip_of(
            &[
                ("set/one.mid", good.clone()),
                ("/etc/evil.mid", good.clone()),
                ("../../evil.mid", good.clone()),
                ("inner.zip", zip_of(&[("x.mid", good.clone())], zip::CompressionMethod::Stored)),
                ("bomb.mid", vec![0u8; 1 << 20]),
            ],
            zip::CompressionMethod::Deflated,
        );
        let ingested = ingest(vec![upload("corpus.zip", archive)], false, &IngestLimits::default()).unwrap();
        assert_eq!(ingested.report.accepted[0].file, "corpus.zip/set/one.mid");
        assert_eq!(
            reasons(&ingested.report),
            [
                ("corpus.zip//etc/evil.mid", "absolute paths are not accepted"),
                ("corpus.zip/../../evil.mid", "paths with `..` are not accepted"),
                ("corpus.zip/inner.zip", "nested archives are not accepted"),
                ("corpus.zip/bomb.mid", "compression ratio above 100:1"),
            ]
        );
        let broken = ingest(
            vec![upload("broken.zip", b"PK\x03\x04garbage".to_vec())],
            false,
            &IngestLimits::default(),
        );
        assert!(reasons(&broken.unwrap().report)[0].1.starts_with("not a readable zip archive"));
    }

    #[test]
    fn a_folder_gives_its_music_files_recursively_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("b.MID"), b"b").unwrap();
        std::fs::write(dir.path().join("sub").join("a.midi"), b"a").unwrap();
        std::fs::write(dir.path().join("c.zip"), b"c").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let uploads = folder_uploads(dir.path()).unwrap();
        let names: Vec<String> = uploads
            .iter()
            .map(|u| Path::new(&u.file_name).strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["b.MID", "c.zip", "sub/a.midi"]);
        assert_eq!(uploads[2].bytes, b"a");
    }

    #[test]
    fn limits_refuse_the_whole_upload() {
        let file = midi_file(0, &[60]);
        let small = IngestLimits {
            max_files: 2,
            max_zip_entries: 2,
            max_uncompressed_bytes: 1000,
            max_compression_ratio: 100,
        };
        let three =
            vec![upload("1.mid", file.clone()), upload("2.mid", file.clone()), upload("3.mid", file.clone())];
        assert_eq!(ingest(three, false, &small).err(), Some(IngestError::TooManyFiles { limit: 2 }));

        let entries = [("1.mid", file.clone()), ("2.mid", file.clone()), ("3.mid", file.clone())];
        let archive = zip_of(&entries, zip::CompressionMethod::Stored);
        assert_eq!(
            ingest(vec![upload("c.zip", archive)], false, &small).err(),
            Some(IngestError::TooManyEntries { archive: "c.zip".into(), limit: 2 })
        );

        let tight =
            IngestLimits { max_uncompressed_bytes: file.len() as u64 + 10, ..IngestLimits::default() };
        let two = vec![upload("1.mid", file.clone()), upload("2.mid", file.clone())];
        assert_eq!(
            ingest(two, false, &tight).err(),
            Some(IngestError::TooManyBytes { limit: file.len() as u64 + 10 })
        );
        let zipped =
            zip_of(&[("1.mid", file.clone()), ("2.mid", file.clone())], zip::CompressionMethod::Stored);
        assert_eq!(
            ingest(vec![upload("c.zip", zipped)], false, &tight).err(),
            Some(IngestError::TooManyBytes { limit: file.len() as u64 + 10 })
        );
    }
}
