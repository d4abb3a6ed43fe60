//! `builtin:s3` end to end, against a real S3-compatible server: moto in server mode
//! (`python -m moto.server`) on a free loopback port, one per test, stopped when its
//! handle drops. The server under test finds it through `AWS_ENDPOINT_URL`, as the AWS
//! SDKs (and Conduit's connector) do; the tests drive the bucket with boto3 from moto's
//! virtualenv.
//!
//! moto lives in a virtualenv outside the repository (`$CULVERT_MOTO_VENV`, else
//! `$HOME/.cache/culvert-moto`), made with pip the first time a test needs it, under a
//! file lock; `scripts/install-deps.sh` installs python3 with venv.
//!
//! * file -> s3 -> (a second pipeline) s3 -> file moves 100,000 lines exactly once, and
//!   objects created, changed and deleted while the s3 source runs arrive as `create`,
//!   `update` and `delete` records;
//! * s3 -> file across three SIGKILLs (during the snapshot and during change polling)
//!   loses no object (duplicates are allowed and reported).
//!
//! Throughput against Conduit's connector is a benchmark: `benches/s3.rs` (this file is
//! included there by path).

use crate::harness::{data_dir, xorshift, Server};
use crate::http_client::call;
use culvert_domain::{Data, Operation, Record};
use serde_json::json;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The moto release the tests run against.
const MOTO_VERSION: &str = "5.2.5";
const BUCKET: &str = "culvert-e2e";
/// How long a whole run may take (a debug build; a bound, not a goal).
const RUN_DEADLINE: Duration = Duration::from_secs(600);

/// A running moto server.
pub struct Moto {
    child: Child,
    /// Its endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// The virtualenv's python, the virtualenv made first if need be.
fn moto_python() -> PathBuf {
    let venv = std::env::var_os("CULVERT_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/culvert-moto")
        });
    let marker = venv.join(format!(".moto-{MOTO_VERSION}"));
    std::fs::create_dir_all(venv.parent().expect("the venv has a parent")).unwrap();
    let lock = std::fs::File::create(venv.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    if !marker.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 on the PATH (make deps installs it)");
        assert!(
            status.success(),
            "python3 -m venv {} failed",
            venv.display()
        );
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", &format!("moto[server]=={MOTO_VERSION}")])
            .status()
            .unwrap();
        assert!(status.success(), "pip install moto[server] failed");
        std::fs::write(&marker, "").unwrap();
    }
    venv.join("bin/python")
}

impl Moto {
    /// A running server with a versioned bucket [`BUCKET`], answering when this returns.
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(moto_python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!("moto exited before it answered: {status}");
            }
            assert!(Instant::now() < deadline, "moto did not answer within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto.python(
            "s3.create_bucket(Bucket=BUCKET)\n\
             s3.put_bucket_versioning(Bucket=BUCKET, \
             VersioningConfiguration={'Status': 'Enabled'})",
        );
        moto
    }

    /// Run python `code` with `s3` (a boto3 client of this server) and `BUCKET` defined;
    /// returns its standard output.
    pub fn python(&self, code: &str) -> String {
        let prelude = format!(
            "import boto3\n\
             s3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', \
             aws_secret_access_key='test', region_name='us-east-1')\n\
             BUCKET = '{BUCKET}'\n",
            self.endpoint
        );
        let output = Command::new(moto_python())
            .arg("-c")
            .arg(format!("{prelude}{code}"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The server's environment for this endpoint.
    fn env(&self) -> [(&'static str, &std::ffi::OsStr); 1] {
        [("AWS_ENDPOINT_URL", std::ffi::OsStr::new(&self.endpoint))]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Credentials (moto takes any), distinctive so that a test can look for them in output.
const ACCESS_KEY_ID: &str = "AKIACULVERTS3E2E";
const SECRET_ACCESS_KEY: &str = "culvert-s3-e2e-secret-access-key";

/// The s3 connector's settings for [`BUCKET`] under `prefix`, plus `extra`.
pub(crate) fn s3_settings(prefix: &str, extra: &[(&str, &str)]) -> serde_json::Value {
    let mut settings = json!({
        "aws.accessKeyId": ACCESS_KEY_ID,
        "aws.secretAccessKey": SECRET_ACCESS_KEY,
        "aws.region": "us-east-1",
        "aws.bucket": BUCKET,
        "prefix": prefix,
    });
    for (k, v) in extra {
        settings[*k] = json!(v);
    }
    settings
}

/// A pipeline `name` from one source to one destination (plugin, settings), started; its id.
pub(crate) fn start_pipeline(
    address: &str,
    name: &str,
    source: (&str, serde_json::Value),
    destination: (&str, serde_json::Value),
) -> String {
    let p = call(
        address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": name}})),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    for (kind, connector, (plugin, settings)) in [
        ("TYPE_SOURCE", "in", source),
        ("TYPE_DESTINATION", "out", destination),
    ] {
        call(
            address,
            "POST",
            "/v1/connectors",
            Some(json!({"type": kind, "plugin": plugin, "pipelineId": id,
                "config": {"name": connector, "settings": settings}})),
        );
    }
    call(address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    id
}

/// The whole records a file destination wrote so far.
pub(crate) fn records(path: &Path) -> Vec<Record> {
    crate::harness::written_records(path)
}

pub(crate) fn text(data: &Option<Data>) -> String {
    match data {
        Some(Data::Raw(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(Data::Structured(map)) => serde_json::to_string(map).unwrap(),
        None => String::new(),
    }
}

/// Wait (polling the output file: it has no change notification) until `done` holds for
/// its records; fails at `deadline`.
fn wait_for(out: &Path, what: &str, deadline: Duration, mut done: impl FnMut(&[Record]) -> bool) {
    crate::harness::wait_until_within(what, deadline, || done(&records(out)));
}

const LINES: usize = 100_000;

fn line(n: usize) -> String {
    format!("id-{n:07} {}", "x".repeat(n * 7 % 61))
}

/// How often each line id arrived, reading the JSON-lines objects that s3 -> file wrote
/// (records whose key starts with `skip` are left out).
fn line_counts(out: &Path, skip: &str) -> Vec<u32> {
    let mut seen = vec![0u32; LINES];
    for record in records(out) {
        if text(&record.key).starts_with(skip) {
            continue;
        }
        for object_line in text(&record.payload.after).lines() {
            let value: serde_json::Value = serde_json::from_str(object_line).expect("a JSON line");
            let payload = value["Payload"].as_str().expect("a Payload");
            let id: usize = payload[3..10].parse().expect("an id");
            assert_eq!(payload, line(id), "line {id} intact");
            seen[id] += 1;
        }
    }
    seen
}

#[test]
fn file_to_s3_to_file_moves_every_line_and_follows_changes() {
    let moto = Moto::start();
    let (dir, data) = data_dir();
    let (input, out) = (dir.path().join("in.txt"), dir.path().join("out.jsonl"));
    let mut text_in = String::new();
    for n in 0..LINES {
        text_in.push_str(&line(n));
        text_in.push('\n');
    }
    std::fs::write(&input, text_in).unwrap();
    let mut server = Server::start_with_env(&data, &[], &moto.env());
    let address = server.http_address();
    let started = Instant::now();
    // Both pipelines run at once: the s3 source reads objects while they are written.
    start_pipeline(
        &address,
        "s3-to-file",
        (
            "builtin:s3",
            s3_settings("batches/", &[("pollingPeriod", "200ms")]),
        ),
        ("builtin:file", json!({"path": out.to_str().unwrap()})),
    );
    start_pipeline(
        &address,
        "file-to-s3",
        ("builtin:file", json!({"path": input.to_str().unwrap()})),
        ("builtin:s3", s3_settings("batches", &[("format", "json")])),
    );
    wait_for(&out, "every line through s3", RUN_DEADLINE, |_| {
        line_counts(&out, "batches/zz-").iter().all(|n| *n > 0)
    });
    let elapsed = started.elapsed();
    let counts = line_counts(&out, "batches/zz-");
    let duplicated: u32 = counts.iter().map(|n| n.saturating_sub(1)).sum();
    let objects = records(&out).len();
    println!(
        "file -> s3 -> file: {LINES} lines in {objects} objects, {duplicated} duplicated, {:.1} s",
        elapsed.as_secs_f64()
    );
    assert_eq!(duplicated, 0, "no line twice without a crash");

    // Changes while the source runs: a create, an update and a delete of one object.
    let key = "batches/zz-extra.txt";
    let arrived = |operation: Operation, body: &'static str| {
        move |records: &[Record]| {
            records.iter().any(|r| {
                text(&r.key) == key && r.operation == operation && text(&r.payload.after) == body
            })
        }
    };
    moto.python(&format!(
        "s3.put_object(Bucket=BUCKET, Key='{key}', Body=b'created')"
    ));
    wait_for(
        &out,
        "the create",
        Duration::from_secs(180),
        arrived(Operation::Create, "created"),
    );
    moto.python(&format!(
        "s3.put_object(Bucket=BUCKET, Key='{key}', Body=b'changed')"
    ));
    wait_for(
        &out,
        "the update",
        Duration::from_secs(180),
        arrived(Operation::Update, "changed"),
    );
    moto.python(&format!("s3.delete_object(Bucket=BUCKET, Key='{key}')"));
    wait_for(
        &out,
        "the delete",
        Duration::from_secs(180),
        arrived(Operation::Delete, ""),
    );
    let extra: Vec<Operation> = records(&out)
        .iter()
        .filter(|r| text(&r.key) == key)
        .map(|r| r.operation)
        .collect();
    assert_eq!(
        extra,
        [Operation::Create, Operation::Update, Operation::Delete],
        "each change once, in order"
    );
    // The credentials are never shown: not by the API, not in the log.
    let listed = call(&address, "GET", "/v1/connectors", None).to_string();
    assert!(listed.contains("aws.bucket"), "{listed}");
    server.terminate();
    assert!(server.wait().success(), "{:#?}", server.seen);
    for secret in [ACCESS_KEY_ID, SECRET_ACCESS_KEY] {
        assert!(
            !listed.contains(secret),
            "the API shows a credential: {listed}"
        );
        assert!(
            !server.seen.iter().any(|l| l.contains(secret)),
            "the log shows a credential"
        );
    }
}

/// Objects `range` under `objs/`, each body its name.
fn put_objects(moto: &Moto, range: std::ops::Range<usize>) {
    moto.python(&format!(
        "for i in range({}, {}):\n    s3.put_object(Bucket=BUCKET, Key='objs/%06d' % i, Body=b'obj-%06d' % i)",
        range.start, range.end
    ));
}

/// How often each object id arrived in the s3 -> file output.
fn object_counts(out: &Path, total: usize) -> Vec<u32> {
    let mut seen = vec![0u32; total];
    for record in records(out) {
        let body = text(&record.payload.after);
        let id: usize = body
            .strip_prefix("obj-")
            .expect("an object body")
            .parse()
            .unwrap();
        assert_eq!(text(&record.key), format!("objs/{id:06}"));
        seen[id] += 1;
    }
    seen
}

#[test]
fn s3_to_file_loses_no_object_across_sigkills() {
    const SNAPSHOT: usize = 1_500;
    const LATER: usize = 600;
    const TOTAL: usize = SNAPSHOT + LATER;
    let moto = Moto::start();
    put_objects(&moto, 0..SNAPSHOT);
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start_with_env(&data, &[], &moto.env());
    let address = server.http_address();
    let started = Instant::now();
    start_pipeline(
        &address,
        "s3-to-file",
        (
            "builtin:s3",
            s3_settings("objs/", &[("pollingPeriod", "100ms")]),
        ),
        ("builtin:file", json!({"path": out.to_str().unwrap()})),
    );
    let mut seed = 0x530b_1ec7_u64;
    let delivered = |out: &Path| object_counts(out, TOTAL).iter().filter(|n| **n > 0).count();
    // Two kills during the snapshot, one while changes are polled.
    for round in 0..3 {
        let (low, span) = match round {
            0 => (SNAPSHOT / 5, SNAPSHOT / 5),
            1 => (SNAPSHOT / 2, SNAPSHOT / 5),
            _ => (SNAPSHOT + LATER / 5, LATER / 3),
        };
        if round == 2 {
            wait_for(&out, "the snapshot", RUN_DEADLINE, |_| {
                delivered(&out) >= SNAPSHOT
            });
            put_objects(&moto, SNAPSHOT..TOTAL);
        }
        let point = low + (xorshift(&mut seed) as usize) % span;
        wait_for(
            &out,
            &format!("object {point} (round {round})"),
            RUN_DEADLINE,
            |_| delivered(&out) >= point,
        );
        server.kill();
        server = Server::start_with_env(&data, &[], &moto.env());
        server.http_address();
    }
    wait_for(&out, "every object", RUN_DEADLINE, |_| {
        delivered(&out) == TOTAL
    });
    let counts = object_counts(&out, TOTAL);
    let duplicated: u32 = counts.iter().map(|n| n.saturating_sub(1)).sum();
    println!(
        "s3 -> file across 3 SIGKILLs: {TOTAL} objects, 0 lost, {duplicated} duplicated, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    server.terminate();
    assert!(server.wait().success(), "{:#?}", server.seen);
}
