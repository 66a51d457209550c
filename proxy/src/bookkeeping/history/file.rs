//! The usage history's files in the data dir: `usage-recent.bin`, `usage-minutes.bin`,
//! `usage-hours.bin`, `usage-days.bin` (see `tiers::Part`). Each is one gzip stream (its CRC-32
//! catches damage) of a versioned binary body:
//!
//! ```text
//! "GWUSAGE\0"  version  part  written_at_ms
//! names of models, keys, deployments   (count, then length-prefixed UTF-8 each; id = position)
//! error classes                        (count, names; index = position)
//! histogram bounds in µs               (count, bounds)
//! frames                               (count, then start_ms and the encoded frame each)
//! totals per model                     (count, then model id and `ModelTotals` each)
//! ```
//!
//! all integers LEB128. A file is written whole to a temporary file and renamed over the old
//! one (`process::atomic_file`): no lock, no partial file, on a local disk as on an SMB share.
//! Reading translates the ids, classes and bounds of the file into the running process's, so a
//! file from another version or with its names in another order still reads. Blocking I/O.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::codec::{Reader, Writer};
use super::frame::{self, Counts, FrameBuilder, FrameSink, Hists, IdMaps, Series};
use super::histogram::{BOUNDS_US, BucketMap, DecodeError};
use super::names::{Dimension, Names};
use super::tiers::{Blob, Part};
use super::totals::ModelTotals;
use crate::bookkeeping::stats::ErrorClass;
use crate::process::atomic_file::write_atomically;
use crate::process::regular_file::{FileError, read_regular_file};

const MAGIC: &[u8; 8] = b"GWUSAGE\0";
const VERSION: u64 = 1;
/// The largest file read (compressed), and the most its content may expand to.
const FILE_LIMIT: usize = 1 << 30;
const CONTENT_LIMIT: u64 = 4 << 30;

/// What one file holds, ready to write.
pub struct PartContent<'a> {
    pub part: Part,
    pub written_at_ms: u64,
    pub names: &'a Names,
    pub frames: Vec<(u64, Blob)>,
    /// Per model id (recent part only).
    pub totals: Vec<(u32, ModelTotals)>,
}

impl PartContent<'_> {
    /// The file's bytes: the body, gzip-compressed.
    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        let frame_bytes: usize = self.frames.iter().map(|(_, b)| b.len() + 12).sum();
        let mut body = Writer::with_capacity(frame_bytes + 4096);
        body.raw(MAGIC);
        body.uint(VERSION);
        body.uint(self.part as u64);
        body.uint(self.written_at_ms);
        for dimension in Dimension::ALL {
            let names = self.names.table(dimension).names();
            body.uint(names.len() as u64);
            for name in names {
                body.text(name);
            }
        }
        body.uint(ErrorClass::ALL.len() as u64);
        for class in ErrorClass::ALL {
            body.text(class.as_str());
        }
        body.uint(BOUNDS_US.len() as u64);
        for bound in BOUNDS_US {
            body.uint(bound);
        }
        body.uint(self.frames.len() as u64);
        for (start, blob) in &self.frames {
            body.uint(*start);
            body.blob(blob);
        }
        body.uint(self.totals.len() as u64);
        for (model, totals) in &self.totals {
            body.uint((*model).into());
            totals.encode(&mut body);
        }
        let body = body.into_bytes();
        // The fastest level: the large files are rewritten every hour, and a higher level
        // saves little on these bytes for several times the CPU.
        let mut gzip = GzEncoder::new(Vec::with_capacity(body.len() / 3), Compression::fast());
        gzip.write_all(&body).context("compressing")?;
        gzip.finish().context("compressing")
    }
}

/// One file as read, its ids already translated into `names`.
#[derive(Debug, Default)]
pub struct ReadPart {
    pub frames: Vec<(u64, Blob)>,
    pub totals: Vec<(u32, ModelTotals)>,
    /// Whether a frame had to be re-encoded to translate it.
    pub translated: bool,
}

/// Reads a file's bytes (compressed) into `names`' ids.
pub fn decode(part: Part, compressed: &[u8], names: &mut Names) -> Result<ReadPart, DecodeError> {
    let mut body = Vec::new();
    GzDecoder::new(compressed)
        .take(CONTENT_LIMIT)
        .read_to_end(&mut body)
        .map_err(|_| DecodeError)?;
    let mut input = Reader::new(&body);
    if input.raw(MAGIC.len())? != MAGIC || input.uint()? != VERSION {
        return Err(DecodeError);
    }
    if input.uint()? != part as u64 {
        return Err(DecodeError);
    }
    let _written_at = input.uint()?;
    let mut ids: [Option<Vec<u32>>; 3] = [None, None, None];
    for dimension in Dimension::ALL {
        let count = input.count(1)?;
        let mut map = Vec::with_capacity(count);
        for _ in 0..count {
            map.push(names.intern(dimension, input.text()?));
        }
        let identity = map.iter().enumerate().all(|(i, id)| *id as usize == i);
        if !identity {
            ids[dimension.index()] = Some(map);
        }
    }
    let classes = input.count(1)?;
    let mut class_map = Vec::with_capacity(classes);
    for _ in 0..classes {
        let name = input.text()?;
        class_map.push(ErrorClass::ALL.iter().position(|c| c.as_str() == name));
    }
    let classes_same = class_map.len() == ErrorClass::ALL.len()
        && class_map.iter().enumerate().all(|(i, c)| *c == Some(i));
    let bound_count = input.count(1)?;
    let mut bounds = Vec::with_capacity(bound_count);
    for _ in 0..bound_count {
        bounds.push(input.uint()?);
    }
    let maps = IdMaps {
        ids,
        classes: (!classes_same).then_some(class_map),
        buckets: BucketMap::from_bounds(&bounds),
    };
    let identity = maps.is_identity();
    let frame_count = input.count(2)?;
    let mut read = ReadPart {
        frames: Vec::with_capacity(frame_count),
        translated: !identity,
        ..ReadPart::default()
    };
    for _ in 0..frame_count {
        let start = input.uint()?;
        let bytes = input.blob()?;
        // Checked whole now, so that a frame in memory always decodes. Copied out, so that
        // the file's buffer is not kept alive by its oldest frame.
        let blob: Blob = if identity {
            frame::decode(bytes, &maps, &mut Check)?;
            Blob::copy_from_slice(bytes)
        } else {
            let mut frame = FrameBuilder::default();
            frame.add_encoded(bytes, &maps)?;
            Blob::from(frame.encode())
        };
        read.frames.push((start, blob));
    }
    let totals = input.count(3)?;
    for _ in 0..totals {
        let stored = input.id()?;
        let model = match &maps.ids[Dimension::Model.index()] {
            None => stored,
            Some(map) => *map.get(stored as usize).ok_or(DecodeError)?,
        };
        read.totals
            .push((model, ModelTotals::decode(&mut input, &maps)?));
    }
    if !input.is_empty() {
        return Err(DecodeError);
    }
    Ok(read)
}

/// Reads a frame through without keeping anything: whether it decodes.
struct Check;

impl FrameSink for Check {
    fn cell(&mut self, _: Series, _: &Counts) {}

    fn route(&mut self, _: u32, _: u32) -> Option<&mut Hists> {
        None
    }

    fn key(&mut self, _: u32) -> Option<&mut Hists> {
        None
    }
}

pub fn path_of(dir: &Path, part: Part) -> PathBuf {
    dir.join(part.file_name())
}

/// Writes `content` over its file.
pub fn write(dir: &Path, content: &PartContent<'_>) -> anyhow::Result<()> {
    let bytes = content.encode()?;
    let path = path_of(dir, content.part);
    write_atomically(&path, &bytes).with_context(|| format!("writing {}", path.display()))
}

/// Reads one file. A missing file is an empty part; a file that cannot be read or decoded is
/// renamed aside (`NAME.damaged-MS`), logged, and read as empty, so that the next write does
/// not destroy what someone may still recover.
pub fn read(dir: &Path, part: Part, names: &mut Names, now_ms: u64) -> ReadPart {
    let path = path_of(dir, part);
    crate::process::atomic_file::remove_stale_temporaries(&path);
    let problem = match read_regular_file(&path, FILE_LIMIT) {
        Ok(bytes) => match decode(part, &bytes, names) {
            Ok(read) => return read,
            Err(err) => err.to_string(),
        },
        Err(FileError::Missing) => return ReadPart::default(),
        Err(err) => err.to_string(),
    };
    let aside = dir.join(format!("{}.damaged-{now_ms}", part.file_name()));
    match std::fs::rename(&path, &aside) {
        Ok(()) => tracing::warn!(
            file = %path.display(),
            kept_as = %aside.display(),
            problem = %problem,
            "usage history file unreadable; set aside, that part of the history starts empty"
        ),
        Err(err) => tracing::warn!(
            file = %path.display(),
            problem = %problem,
            error = %err,
            "usage history file unreadable and could not be set aside; that part of the history starts empty"
        ),
    }
    ReadPart::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bookkeeping::history::frame::{Measure, Series};

    fn content(names: &Names, frames: Vec<(u64, Blob)>) -> PartContent<'_> {
        PartContent {
            part: Part::Hours,
            written_at_ms: 1,
            names,
            frames,
            totals: Vec::new(),
        }
    }

    fn frame(names: &mut Names, model: &str, key: &str) -> Blob {
        let mut frame = FrameBuilder::default();
        frame.record(
            Series {
                model: names.model(Some(model)),
                key: names.key(Some(key)),
                deployment: names.deployment(Some("east"), Some("d")),
            },
            &Measure {
                succeeded: true,
                prompt_tokens: 7,
                latency_us: 3000,
                ..Measure::default()
            },
        );
        Blob::from(frame.encode())
    }

    #[test]
    fn a_part_reads_back_into_the_same_ids() {
        let mut names = Names::default();
        let blob = frame(&mut names, "m", "k");
        let bytes = content(&names, vec![(60_000, blob.clone())])
            .encode()
            .expect("encodes");
        let mut fresh = Names::default();
        let read = decode(Part::Hours, &bytes, &mut fresh).expect("decodes");
        assert!(!read.translated);
        assert_eq!(read.frames, vec![(60_000, blob)]);
        assert_eq!(fresh.table(Dimension::Model).find("m"), Some(1));
    }

    #[test]
    fn ids_of_a_file_with_other_names_are_translated() {
        let mut written = Names::default();
        let blob = frame(&mut written, "m", "k");
        let bytes = content(&written, vec![(0, blob)])
            .encode()
            .expect("encodes");
        let mut running = Names::default();
        running.model(Some("other"));
        let read = decode(Part::Hours, &bytes, &mut running).expect("decodes");
        assert!(read.translated);
        let mut back = FrameBuilder::default();
        back.add_encoded(&read.frames[0].1, &IdMaps::IDENTITY)
            .expect("decodes");
        let mut expected = FrameBuilder::default();
        expected.record(
            Series {
                model: 2,
                key: 1,
                deployment: 1,
            },
            &Measure {
                succeeded: true,
                prompt_tokens: 7,
                latency_us: 3000,
                ..Measure::default()
            },
        );
        assert_eq!(back.encode(), expected.encode());
    }

    #[test]
    fn any_damage_to_the_content_is_detected() {
        let mut names = Names::default();
        let blob = frame(&mut names, "m", "k");
        let bytes = content(&names, vec![(0, blob)]).encode().expect("encodes");
        // The gzip header's first 10 bytes (time stamp, OS) carry nothing that is read.
        for i in 10..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x55;
            assert!(
                decode(Part::Hours, &damaged, &mut Names::default()).is_err(),
                "a flipped byte at {i} went unnoticed"
            );
        }
        assert!(decode(Part::Days, &bytes, &mut Names::default()).is_err());
        assert!(
            decode(
                Part::Hours,
                &bytes[..bytes.len() - 1],
                &mut Names::default()
            )
            .is_err()
        );
    }

    #[test]
    fn a_damaged_file_is_set_aside_and_reads_as_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_of(dir.path(), Part::Days);
        std::fs::write(&path, b"not gzip").expect("write");
        let read = read(dir.path(), Part::Days, &mut Names::default(), 42);
        assert!(read.frames.is_empty());
        assert!(!path.exists());
        let aside = dir.path().join("usage-days.bin.damaged-42");
        assert_eq!(std::fs::read(aside).expect("kept"), b"not gzip");
        // A missing file is no problem.
        assert!(read_missing_is_empty(dir.path()));
    }

    fn read_missing_is_empty(dir: &Path) -> bool {
        read(dir, Part::Hours, &mut Names::default(), 1)
            .frames
            .is_empty()
    }
}
