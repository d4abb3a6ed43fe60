//! A throw-away PostgreSQL server for unit tests (the same approach as the end-to-end
//! tests' `tests/pg.rs`): initialised in a temporary directory, started on a free loopback
//! port with logical replication on, stopped when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

pub(crate) struct TestPg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub(crate) port: u16,
}

fn newest_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL in /usr/lib/postgresql (make deps installs it)")
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql")
        .1
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

impl TestPg {
    pub(crate) fn start() -> TestPg {
        let dir = tempfile::Builder::new()
            .prefix("culvert-pg-unit")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = TestPg {
            dir,
            bin: newest_bin(),
            port,
        };
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(pg.dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = pg.dir.path().join("data");
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "culvert",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth=trust",
            ],
        );
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20 \
             -c fsync=off",
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("postgres.log");
        pg.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        pg
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self.command(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// A connection URL for database `postgres`.
    pub(crate) fn url(&self) -> String {
        format!(
            "postgres://culvert@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// A connected client.
    pub(crate) async fn client(&self) -> crate::Connection {
        crate::connect(&self.url().parse().unwrap(), "test")
            .await
            .unwrap()
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}
