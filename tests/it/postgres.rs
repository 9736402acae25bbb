//! A real PostgreSQL server for the tests: one private cluster per test run, started on
//! first use with `initdb` and `pg_ctl` in a temporary directory on a free port (as the
//! `postgres` user when the tests run as root, which the server refuses), and stopped when
//! the test process exits. Each test gets a database of its own.
//!
//! The server's binaries come from the Debian `postgresql` package; `.ci/run` installs it
//! when missing. Without it these tests fail, saying what to install; they never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The running cluster.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// Runs the server's programs as `postgres` when we are root.
    as_postgres: bool,
    /// Kept for the cluster's lifetime (the whole process); removed at exit.
    dir: tempfile::TempDir,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The newest installed server's `bin` directory.
fn server_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): install it with \
             `apt-get install -y postgresql` (.ci/run does this)"
        )
    })
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        program_command(&self.bin, program, self.as_postgres)
    }
}

fn program_command(bin: &Path, program: &str, as_postgres: bool) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn run(mut command: Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({})\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

extern "C" fn stop_cluster() {
    if let Some(cluster) = CLUSTER.get() {
        let _ = cluster
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&cluster.data)
            .args(["-m", "immediate", "-w"])
            .output();
        // Statics are never dropped, so the directory would outlive every test process
        // (nextest runs each test in its own).
        let _ = std::fs::remove_dir_all(cluster.dir.path());
    }
}

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let bin = server_bin();
        // SAFETY: geteuid only reads the process's credentials.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("weft-pg-")
            .tempdir_in("/tmp")
            .expect("a temporary directory");
        if as_postgres {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres").arg(dir.path());
                    c
                },
                "chown of the cluster directory",
            );
        }
        let data = dir.path().join("data");
        let mut initdb = program_command(&bin, "initdb", as_postgres);
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "weft", "-E", "UTF8", "--no-sync"]);
        run(initdb, "initdb");
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=800 -c fsync=off \
             -c shared_buffers=64MB",
            dir.path().display()
        );
        let mut start = program_command(&bin, "pg_ctl", as_postgres);
        start
            .arg("start")
            .arg("-w")
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(dir.path().join("server.log"));
        run(start, "pg_ctl start");
        let cluster = Cluster {
            bin,
            data,
            port,
            as_postgres,
            dir,
        };
        // SAFETY: registering a plain extern "C" function to run at exit.
        unsafe {
            libc::atexit(stop_cluster);
        }
        cluster
    })
}

/// A fresh, empty database on the test cluster, as a `postgres://` URL.
pub fn database() -> String {
    let cluster = cluster();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    let mut create = cluster.command("psql");
    create
        .args(["-h", "127.0.0.1", "-U", "weft", "-d", "postgres", "-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .arg("-p")
        .arg(cluster.port.to_string());
    run(create, "CREATE DATABASE");
    format!("postgres://weft@127.0.0.1:{}/{name}", cluster.port)
}

/// Runs `sql` on the database at `url` (one of [`database`]'s).
pub fn execute(url: &str, sql: &str) {
    let cluster = cluster();
    let name = url.rsplit('/').next().expect("a database name");
    let mut psql = cluster.command("psql");
    psql.args([
        "-h",
        "127.0.0.1",
        "-U",
        "weft",
        "-d",
        name,
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
    ])
    .arg(sql)
    .arg("-p")
    .arg(cluster.port.to_string());
    run(psql, sql);
}

/// The names of every database on the test cluster.
pub fn database_names() -> Vec<String> {
    let cluster = cluster();
    let mut list = cluster.command("psql");
    list.args(["-h", "127.0.0.1", "-U", "weft", "-d", "postgres", "-At", "-c"])
        .arg("SELECT datname FROM pg_database")
        .arg("-p")
        .arg(cluster.port.to_string());
    let out = list.output().expect("psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every row of every table of the database at `url`, as text, with byte columns shown as
/// text where they are (JSON documents are): what someone reading the database would see.
pub fn dump_text(url: &str) -> String {
    let cluster = cluster();
    let psql = |sql: &str| {
        let mut command = cluster.command("psql");
        command.args(["-At", "-d", url, "-c", sql]);
        let out = command.output().expect("psql");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tables = psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    let selects: Vec<String> = tables
        .lines()
        .filter(|t| !t.is_empty())
        .map(|t| format!("SELECT t::text FROM {t} t"))
        .collect();
    psql(&format!(
        "SET bytea_output = 'escape'; {}",
        selects.join(" UNION ALL ")
    ))
}
