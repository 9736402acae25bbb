//! Copying every record of one database into a new one (`weft db copy`), then checking the
//! copy: both sides are read back and compared record by record (a SHA-256 of each, per
//! kind), so a record lost, doubled or changed on the way fails the copy.
//!
//! The copy streams: the source is read in one snapshot and written in batches, so neither a
//! large history nor large plugins need to fit in memory. Batches commit one by one; a copy
//! that stops half-way leaves the target partly filled, and a new copy refuses it until it is
//! emptied.

use super::api::{Record, Store};
use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// Records written per transaction, at most.
const BATCH_RECORDS: usize = 1000;
/// Bytes written per transaction, about.
const BATCH_BYTES: usize = 8 << 20;
/// Records read ahead of the writer.
const READ_AHEAD: usize = 256;

/// What was copied: how many records of each kind.
pub type Counts = BTreeMap<&'static str, u64>;

/// The records of one database, by kind: a count and each record's digest, sorted.
#[derive(Default, PartialEq, Eq)]
struct Contents(BTreeMap<&'static str, Vec<[u8; 32]>>);

impl Contents {
    fn add(&mut self, record: &Record) {
        self.0.entry(record.kind()).or_default().push(digest(record));
    }

    fn sorted(mut self) -> Contents {
        for digests in self.0.values_mut() {
            digests.sort_unstable();
        }
        self
    }

    fn counts(&self) -> Counts {
        self.0.iter().map(|(k, v)| (*k, v.len() as u64)).collect()
    }
}

/// Feeds `Hash` into SHA-256.
struct Sha(Sha256);

impl Hasher for Sha {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only the SHA-256 digest is read")
    }
}

/// A record's digest. Timers count to the millisecond, the precision every backend keeps.
fn digest(record: &Record) -> [u8; 32] {
    let mut sha = Sha(Sha256::new());
    match record {
        Record::Timer(timer) => {
            let mut timer = timer.clone();
            timer.due = timer
                .due
                .replace_nanosecond(timer.due.millisecond() as u32 * 1_000_000)
                .unwrap_or(timer.due);
            Record::Timer(timer).hash(&mut sha);
        }
        other => other.hash(&mut sha),
    }
    sha.0.finalize().into()
}

/// Copies every record of `from` into `to`, which must be empty, and checks the copy.
/// `progress` hears of each batch: the kind of its last record and how many were copied.
pub async fn copy(from: &dyn Store, to: &dyn Store, progress: &mut dyn FnMut(&str, u64)) -> Result<Counts> {
    if !to.is_empty().await? {
        bail!(
            "{} is not empty: copy into a new, empty database (and stop every runner on it)",
            to.describe()
        );
    }
    let (sender, mut receiver) = tokio::sync::mpsc::channel(READ_AHEAD);
    let read = from.export(sender);
    let write = async {
        let mut source = Contents::default();
        let (mut batch, mut bytes, mut copied) = (Vec::new(), 0, 0u64);
        while let Some(record) = receiver.recv().await {
            source.add(&record);
            bytes += record.size();
            batch.push(record);
            if batch.len() >= BATCH_RECORDS || bytes >= BATCH_BYTES {
                copied += batch.len() as u64;
                let kind = batch.last().map_or("", Record::kind);
                to.import(std::mem::take(&mut batch))
                    .await
                    .with_context(|| format!("cannot write {kind} into {}", to.describe()))?;
                progress(kind, copied);
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            copied += batch.len() as u64;
            let kind = batch.last().map_or("", Record::kind);
            to.import(batch)
                .await
                .with_context(|| format!("cannot write {kind} into {}", to.describe()))?;
            progress(kind, copied);
        }
        anyhow::Ok(source)
    };
    let (read, written) = tokio::join!(read, write);
    read.with_context(|| format!("cannot read {}", from.describe()))?;
    let source = written?.sorted();
    let copied = contents(to).await?;
    if copied != source {
        let (want, got) = (source.counts(), copied.counts());
        let differs: Vec<String> = want
            .keys()
            .chain(got.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| source.0.get(*k) != copied.0.get(*k))
            .map(|k| {
                format!(
                    "{k} ({} read, {} in the copy)",
                    want.get(k).unwrap_or(&0),
                    got.get(k).unwrap_or(&0)
                )
            })
            .collect();
        bail!(
            "the copy in {} differs from {}: {}",
            to.describe(),
            from.describe(),
            differs.join(", ")
        );
    }
    Ok(source.counts())
}

/// Every record of `store`, read back.
async fn contents(store: &dyn Store) -> Result<Contents> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel(READ_AHEAD);
    let read = store.export(sender);
    let collect = async {
        let mut contents = Contents::default();
        while let Some(record) = receiver.recv().await {
            contents.add(&record);
        }
        contents
    };
    let (read, contents) = tokio::join!(read, collect);
    read.with_context(|| format!("cannot read back {}", store.describe()))?;
    Ok(contents.sorted())
}
