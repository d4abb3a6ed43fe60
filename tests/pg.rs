//! A throw-away PostgreSQL server for a test: initialised in a temporary directory, started
//! on a free loopback port with logical replication on, stopped (and its files removed)
//! when dropped. Uses the newest `/usr/lib/postgresql/*/bin` (`make deps` installs
//! PostgreSQL); as root, the server runs as the `postgres` user, since it refuses root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// The superuser's password, when the server checks passwords.
    password: Option<String>,
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
        .expect("a PostgreSQL server (initdb) under /usr/lib/postgresql")
        .1
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

impl Postgres {
    /// A running server with a `culvert` superuser (trust authentication, loopback only).
    pub fn start() -> Postgres {
        Self::start_with(None)
    }

    /// The same, but every connection must give the superuser's `password`
    /// (scram-sha-256): a client that connects used the real password.
    pub fn start_with_password(password: &str) -> Postgres {
        Self::start_with(Some(password.to_owned()))
    }

    fn start_with(password: Option<String>) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("culvert-pg")
            .tempdir()
            .unwrap();
        let bin = newest_bin();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres {
            dir,
            bin,
            port,
            password,
        };
        let pwfile = pg.dir.path().join("pwfile");
        if let Some(password) = &pg.password {
            std::fs::write(&pwfile, password).unwrap();
        }
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(pg.dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the data directory to postgres");
        }
        let data = pg.data();
        let pwfile_arg = format!("--pwfile={}", pwfile.display());
        let mut initdb = vec![
            "-D",
            data.to_str().unwrap(),
            "-U",
            "culvert",
            "-E",
            "UTF8",
            "--locale=C",
        ];
        if pg.password.is_some() {
            initdb.extend(["--auth=scram-sha-256", &pwfile_arg]);
        } else {
            initdb.push("--auth=trust");
        }
        pg.run("initdb", &initdb);
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 \
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

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
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

    /// A connection URL for database `db`.
    pub fn url(&self, db: &str) -> String {
        let password = self
            .password
            .as_ref()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        format!(
            "postgres://culvert{password}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Run SQL statements (each its own transaction) in database `db`.
    pub fn sql(&self, db: &str, statements: &str) {
        let psql = self.bin.join("psql");
        let psql = if psql.exists() {
            psql
        } else {
            Path::new("psql").to_owned()
        };
        let output = Command::new(psql)
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-d"])
            .arg(self.url(db))
            .arg("-c")
            .arg(statements)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql failed on {statements:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Postgres {
    /// The psql client that goes with the server.
    pub fn psql(&self) -> PathBuf {
        let psql = self.bin.join("psql");
        if psql.exists() {
            psql
        } else {
            PathBuf::from("psql")
        }
    }

    /// Run one query in database `db` and return its rows, one line each, columns
    /// separated by `|` (psql's unaligned, tuples-only output).
    pub fn query(&self, db: &str, sql: &str) -> String {
        let output = Command::new(self.psql())
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-d"])
            .arg(self.url(db))
            .arg("-c")
            .arg(sql)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
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
