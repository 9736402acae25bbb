//! Floors for the durable figures: what the disk and redb alone can do on this machine, for
//! the same work the engine did.

use crate::store::WriterStats;
use anyhow::{Context, Result};
use redb::{Database, TableDefinition};
use std::io::{Seek, SeekFrom, Write as _};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Transactions the store's writer committed, and how much they carried.
#[derive(Clone, Copy, Debug, Default)]
pub struct Batches {
    pub transactions: u64,
    pub writes: u64,
    pub bytes: u64,
}

impl Batches {
    pub fn read(stats: &WriterStats) -> Batches {
        Batches {
            transactions: stats.transactions.load(Ordering::Relaxed),
            writes: stats.writes.load(Ordering::Relaxed),
            bytes: stats.bytes.load(Ordering::Relaxed),
        }
    }

    /// What was committed between `earlier` and this reading.
    pub fn since(&self, earlier: &Batches) -> Batches {
        Batches {
            transactions: self.transactions - earlier.transactions,
            writes: self.writes - earlier.writes,
            bytes: self.bytes - earlier.bytes,
        }
    }

    pub fn writes_per_commit(&self) -> f64 {
        self.writes as f64 / self.transactions.max(1) as f64
    }
}

/// Raw `pwrite` + `fdatasync` of one 4 KiB block, per second.
pub fn fdatasync_per_s(dir: &Path, count: usize) -> Result<f64> {
    let path = dir.join("fdatasync.floor");
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let block = [7u8; 4096];
    let started = Instant::now();
    for _ in 0..count {
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&block)?;
        file.sync_data()?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// The time bare redb takes for the same durable transactions: as many commits, each with
/// the same number of inserts and bytes, from one thread and with nothing else to do.
pub fn redb_same_batches(dir: &Path, batches: &Batches) -> Result<Duration> {
    const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("floor");
    let db = Database::create(dir.join("floor.redb"))?;
    let commits = batches.transactions.max(1);
    let per_commit = batches.writes.div_ceil(commits).max(1);
    let value = vec![b'x'; (batches.bytes / batches.writes.max(1)) as usize];
    let mut key = 0u64;
    let started = Instant::now();
    for _ in 0..commits {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for _ in 0..per_commit {
                table.insert(key, value.as_slice())?;
                key += 1;
            }
        }
        txn.commit()?;
    }
    Ok(started.elapsed())
}

/// The median time of one durable bare-redb commit of a single `bytes`-sized insert.
pub fn redb_commit_latency(dir: &Path, bytes: usize, count: usize) -> Result<Duration> {
    const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("latency");
    let db = Database::create(dir.join("latency.redb"))?;
    let value = vec![b'x'; bytes];
    let mut samples = Vec::with_capacity(count);
    for key in 0..count as u64 {
        let started = Instant::now();
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?.insert(key, value.as_slice())?;
        txn.commit()?;
        samples.push(started.elapsed());
    }
    Ok(super::percentile(&mut samples, 50))
}
