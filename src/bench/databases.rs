//! Where the bench keeps its data: fresh redb files in a temporary directory, or fresh
//! databases on a PostgreSQL server (`weft bench --db postgres://...`), created for the run
//! and dropped after it. Every figure starts from an empty database of its own.

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub enum Databases {
    /// redb files under this directory.
    Files(PathBuf),
    /// Databases created on the server of `url` (whose user may create databases).
    Postgres {
        url: String,
        created: Mutex<Vec<String>>,
    },
}

impl Databases {
    /// Files under `dir`, or databases on the server of `url`.
    pub fn new(dir: &Path, url: Option<&str>) -> Result<Databases> {
        Ok(match url {
            None => Databases::Files(dir.to_owned()),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Databases::Postgres {
                    url: url.to_owned(),
                    created: Mutex::new(Vec::new()),
                }
            }
            Some(other) => {
                bail!("--db {other}: weft bench takes a postgres:// URL (without one it uses redb files)")
            }
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Databases::Postgres { .. })
    }

    /// What the figures run on, for the table's heading.
    pub fn describe(&self) -> String {
        match self {
            Databases::Files(_) => "redb files in a temporary directory".to_owned(),
            Databases::Postgres { url, .. } => {
                format!("PostgreSQL at {}", crate::store::mask_password(url))
            }
        }
    }

    /// A new, empty database named after `what`, as a `--db` argument.
    pub async fn fresh(&self, what: &str) -> Result<String> {
        match self {
            Databases::Files(dir) => Ok(dir.join(format!("{what}.redb")).display().to_string()),
            Databases::Postgres { url, created } => {
                let name = format!("weft_bench_{}_{what}", std::process::id()).replace('-', "_");
                let client = connect(url).await?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                    .await?;
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .with_context(|| {
                        format!(
                            "cannot create the database {name} on {} (the user needs CREATEDB)",
                            crate::store::mask_password(url)
                        )
                    })?;
                created.lock().expect("created lock").push(name.clone());
                with_database(url, &name)
            }
        }
    }

    /// Drops the databases this bench created.
    pub async fn clean_up(&self) -> Result<()> {
        if let Databases::Postgres { url, created } = self {
            let names = std::mem::take(&mut *created.lock().expect("created lock"));
            let client = connect(url).await?;
            for name in names {
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .with_context(|| format!("cannot drop the bench database {name}"))?;
            }
        }
        Ok(())
    }
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| anyhow!("--db: {e}"))?;
    parsed.set_path(&format!("/{name}"));
    Ok(parsed.to_string())
}

/// A connection of its own to `url`, driven on a task.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("cannot connect to {}", crate::store::mask_password(url)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The median time of one bare single-row `INSERT` commit of `bytes` bytes on `url`.
pub async fn pg_commit_latency(url: &str, bytes: usize, count: usize) -> Result<Duration> {
    let client = connect(url).await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS floor_latency (id bigserial PRIMARY KEY, doc bytea NOT NULL)",
        )
        .await?;
    let insert = client
        .prepare("INSERT INTO floor_latency (doc) VALUES ($1)")
        .await?;
    let value = vec![b'x'; bytes];
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        client.execute(&insert, &[&value]).await?;
        samples.push(started.elapsed());
    }
    Ok(super::percentile(&mut samples, 50))
}

/// Bare single-row `INSERT` commits per second on `url` from `connections` connections at
/// once, each committing `per_connection` in turn.
pub async fn pg_commits_per_s(
    url: &str,
    bytes: usize,
    connections: usize,
    per_connection: usize,
) -> Result<f64> {
    connect(url)
        .await?
        .batch_execute("CREATE TABLE IF NOT EXISTS floor_load (id bigserial PRIMARY KEY, doc bytea NOT NULL)")
        .await?;
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = connect(url).await?;
        let insert = client.prepare("INSERT INTO floor_load (doc) VALUES ($1)").await?;
        clients.push((client, insert));
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for (client, insert) in clients {
        let value = vec![b'x'; bytes];
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_connection {
                client.execute(&insert, &[&value]).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok((connections * per_connection) as f64 / started.elapsed().as_secs_f64())
}

/// The time bare PostgreSQL takes for the same transactions as the engine's writer: as many
/// commits, each with the same number of inserts and bytes, pipelined on one connection.
pub async fn pg_same_batches(url: &str, batches: &super::floors::Batches) -> Result<Duration> {
    let mut client = connect(url).await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS floor_batches (id bigserial PRIMARY KEY, doc bytea NOT NULL)",
        )
        .await?;
    let insert = client
        .prepare("INSERT INTO floor_batches (doc) VALUES ($1)")
        .await?;
    let commits = batches.transactions.max(1);
    let per_commit = batches.writes.div_ceil(commits).max(1) as usize;
    let value = vec![b'x'; (batches.bytes / batches.writes.max(1)) as usize];
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&value];
    let started = Instant::now();
    for _ in 0..commits {
        let txn = client.transaction().await?;
        let inserts = (0..per_commit).map(|_| txn.execute(&insert, &params));
        futures_util::future::try_join_all(inserts).await?;
        txn.commit().await?;
    }
    Ok(started.elapsed())
}
