//! A running `culvert run` process with its stderr captured line by line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long any wait in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A server process; killed on drop if still running.
pub struct Server {
    child: Child,
    lines: Receiver<String>,
    /// Every stderr line seen so far.
    pub seen: Vec<String>,
}

impl Server {
    /// Start `culvert run` with `args` on the data directory `data`.
    pub fn start(data: &Path, args: &[&str]) -> Server {
        Self::start_with_env(data, args, &[])
    }

    /// As [`Server::start`], with environment variables (a pipeline file's `${VAR}`s).
    pub fn start_with_env(data: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_culvert"));
        command
            .arg("run")
            .arg("--db.rocksdb.path")
            .arg(data)
            .args(["--log.format", "json", "--db.fsync", "false"])
            .args(["--api.grpc.address", "127.0.0.1:0"])
            .args(["--api.http.address", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied());
        Self::spawn(command)
    }

    /// Start a prepared `culvert` command, capturing its stderr.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn culvert");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            lines,
            seen: vec![],
        }
    }

    /// Wait for a stderr line containing `needle`; returns it. Fails at the deadline or when
    /// the process ends first.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line with {needle:?} in time; saw {:#?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("server exited before {needle:?}; saw {:#?}", self.seen)
                }
            }
        }
    }

    /// The address the gRPC API listens on (read from its start-up log line).
    pub fn grpc_address(&mut self) -> String {
        self.listening_address("gRPC API listening")
    }

    /// The address the HTTP API listens on (read from its start-up log line).
    pub fn http_address(&mut self) -> String {
        self.listening_address("HTTP API listening")
    }

    fn listening_address(&mut self, message: &str) -> String {
        let line = self.wait_for_line(message);
        let v: serde_json::Value = serde_json::from_str(&line).expect("json log line");
        v["fields"]["address"]
            .as_str()
            .expect("address field")
            .to_owned()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Kill the process with SIGKILL (no chance to clean up) and reap it.
    pub fn kill(&mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait();
    }

    /// Wait for the process to exit (with the deadline), draining its output.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit in time");
            // Poll the child; there is no portable blocking wait with a timeout.
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(20)) {
                self.seen.push(line);
            }
        }
    }

    /// Wait (up to `limit`) for the process to exit by itself, draining its output; fails
    /// the test at once if it logs a line containing `fatal` first (so a run that went
    /// wrong says why instead of running into the limit).
    pub fn wait_for_exit_unless(&mut self, limit: Duration, fatal: &str) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(fatal)) {
                panic!("the server logged {fatal:?} before it exited: {line}");
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit in time");
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(20)) {
                self.seen.push(line);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server said.
        if std::thread::panicking() {
            self.seen.extend(self.lines.try_iter());
            eprintln!("---- server log ({} lines) ----", self.seen.len());
            for line in &self.seen {
                eprintln!("{line}");
            }
        }
    }
}

/// A fresh temp dir and a data path inside it.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}

/// Decode standard base64 (padded) to text: positions in JSON records are base64.
pub fn decode_base64(text: &str) -> String {
    String::from_utf8(decode_base64_bytes(text)).expect("UTF-8 text")
}

/// The bytes of standard base64 text (raw data in a record's JSON).
pub fn decode_base64_bytes(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// Run the `culvert` binary with `args` (a client verb or tool): (exit code, stdout, stderr).
pub fn culvert(args: &[&str]) -> (i32, String, String) {
    culvert_with_env(args, &[])
}

/// As [`culvert`], with these environment variables set as well.
pub fn culvert_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_culvert"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Poll `condition` (a file, a status over the API: things with no change notification)
/// until it holds; fails the test at the deadline, naming `what`.
pub fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    wait_until_within(what, DEADLINE, condition);
}

/// As [`wait_until`], with its own time limit (for long runs).
pub fn wait_until_within(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    poll_until(limit, Duration::from_millis(20), || {
        if condition() {
            Ok(())
        } else {
            Err(format!("waiting for {what}"))
        }
    });
}

/// Call `step` every `every` until it returns `Ok`; fails the test after `limit` with the
/// last `Err` it gave (which says how far things got). For conditions with no change
/// notification to wait on (a file, a broker, a status over the API).
pub fn poll_until<T>(
    limit: Duration,
    every: Duration,
    mut step: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match step() {
            Ok(done) => return done,
            Err(progress) => assert!(
                Instant::now() < deadline,
                "timed out after {limit:?}: {progress}"
            ),
        }
        std::thread::sleep(every);
    }
}

/// A small deterministic generator for seeded choices such as kill points (xorshift).
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The whole OpenCDC records a file destination has written so far (a line being written
/// is left out).
pub fn written_records(path: &Path) -> Vec<culvert_domain::Record> {
    std::fs::read(path)
        .unwrap_or_default()
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .map(|l| culvert_domain::Record::from_json(&l[..l.len() - 1]).expect("a whole record"))
        .collect()
}

/// The whole JSON lines of a file written so far (a line being written is left out).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| serde_json::from_str(l).expect("a whole JSON line"))
        .collect()
}

/// The `name` of every plugin a listing route answers (such as
/// `/v1/processors/plugins?name=standalone:.*`), in order.
pub fn listed_names(address: &str, route: &str) -> Vec<String> {
    let plugins = crate::http_client::call(address, "GET", route, None);
    plugins
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {plugins}"))
        .iter()
        .map(|p| p["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// The api.v1 gRPC clients a test drives a server with, on one channel.
pub struct GrpcClients {
    pub pipelines: culvert_api::pb::api::v1::pipeline_service_client::PipelineServiceClient<
        tonic::transport::Channel,
    >,
    pub connectors: culvert_api::pb::api::v1::connector_service_client::ConnectorServiceClient<
        tonic::transport::Channel,
    >,
    pub processors: culvert_api::pb::api::v1::processor_service_client::ProcessorServiceClient<
        tonic::transport::Channel,
    >,
}

/// Connect the api.v1 clients to the gRPC API at `address`.
pub async fn grpc_clients(address: &str) -> GrpcClients {
    use culvert_api::pb::api::v1 as pb;
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the gRPC API");
    GrpcClients {
        pipelines: pb::pipeline_service_client::PipelineServiceClient::new(channel.clone()),
        connectors: pb::connector_service_client::ConnectorServiceClient::new(channel.clone()),
        processors: pb::processor_service_client::ProcessorServiceClient::new(channel),
    }
}

/// Counts the lines of a growing file, reading only what was added since the last look.
#[derive(Default)]
pub struct LineCounter {
    read: u64,
    lines: usize,
}

impl LineCounter {
    /// The whole lines in `path` now (0 while it does not exist).
    pub fn count(&mut self, path: &Path) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(path) else {
            return 0;
        };
        let mut added = Vec::new();
        file.seek(SeekFrom::Start(self.read)).unwrap();
        file.read_to_end(&mut added).unwrap();
        // Count whole lines only; a partly written one is read again next time.
        let whole = added.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.read += whole as u64;
        self.lines += added[..whole].iter().filter(|b| **b == b'\n').count();
        self.lines
    }
}

/// Build a published connector pinned in `tests/fixtures/upstream` (`generator`, `file` or
/// `postgres`), with its version stamped as its release build does.
pub fn upstream_connector(name: &str, version: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("go-fixtures/{name}"));
    let module = format!("github.com/conduitio/conduit-connector-{name}");
    let status = Command::new("go")
        .args(["build", "-ldflags"])
        .arg(format!("-X '{module}.version={version}'"))
        .arg("-o")
        .arg(&out)
        .arg(format!("{module}/cmd/connector"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upstream"))
        .env("GONOSUMDB", "github.com/conduitio")
        .status()
        .expect("`go` on the PATH (make deps installs it) to build the upstream connectors");
    assert!(status.success(), "building the {name} connector failed");
    out
}
