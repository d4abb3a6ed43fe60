//! A throw-away Apache Kafka broker for a test: one KRaft node (broker and controller in
//! one JVM) on free loopback ports (plaintext, SASL for [`SASL_USER`], TLS, and mutual TLS
//! for a client certificate made here), its log directory in a temporary directory, stopped
//! (and its files removed) when the handle drops.
//!
//! The broker is Kafka's own jars from Maven Central, run with the machine's `java`
//! (17 or newer). They are resolved once, with `mvn` and the small pom in
//! `tests/fixtures/kafka/`, into `$CULVERT_KAFKA_CACHE` (default
//! `$HOME/.cache/culvert-kafka`), `<version>-r<pom revision>/libs`; a lock file makes concurrent tests
//! resolve them once. `make deps` (scripts/install-deps.sh) installs java and maven.
//!
//! Used by the end-to-end tests (a module of `tests/main.rs`) and by the unit tests of
//! `culvert-connector-kafka` (included there by path), so it uses only std, tempfile and
//! rcgen.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Kafka version the pom resolves (keep in step with `tests/fixtures/kafka/pom.xml`).
pub const KAFKA_VERSION: &str = "4.1.1";

/// The cache folder's name: the Kafka version and the pom's revision (bump it when the
/// pom changes, so caches resolved from an older pom are not used).
const CACHE_KEY: &str = "4.1.1-r2";

/// How long a broker may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running broker.
pub struct KafkaBroker {
    dir: tempfile::TempDir,
    child: Child,
    /// The broker's port (bootstrap servers: [`KafkaBroker::servers`]).
    pub port: u16,
    /// The port of its SASL listener ([`KafkaBroker::sasl_servers`]).
    pub sasl_port: u16,
    /// The port of its TLS listener ([`KafkaBroker::tls_servers`]).
    pub tls_port: u16,
    /// The port of its mutual-TLS listener ([`KafkaBroker::mtls_servers`]).
    pub mtls_port: u16,
    /// A client certificate and key (PEM) the mutual-TLS listener accepts.
    client: (String, String),
}

/// The SASL user the broker knows (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512).
pub const SASL_USER: &str = "alice";
/// Its password.
pub const SASL_PASSWORD: &str = "alice-secret";

/// `N` distinct free loopback ports: every listener is held until all are chosen, so the
/// kernel cannot hand the same port out twice (Kafka refuses two listeners on one port).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

fn repo_root() -> PathBuf {
    // tests/kafka.rs is compiled from the workspace root (e2e) or from
    // builtin-connectors/kafka (the crate's unit tests): find the pom either way.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|p| p.join("tests/fixtures/kafka/pom.xml").exists())
        .expect("the repository root (with tests/fixtures/kafka/pom.xml)")
        .to_owned()
}

/// The folder holding Kafka's jars, resolving them first if needed.
pub fn kafka_libs() -> PathBuf {
    let cache = std::env::var_os("CULVERT_KAFKA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/culvert-kafka")
        })
        .join(CACHE_KEY);
    let libs = cache.join("libs");
    let done = cache.join("complete");
    if done.exists() {
        return libs;
    }
    std::fs::create_dir_all(&cache).unwrap();
    // One resolver at a time (tests run in parallel, in several processes): an exclusive
    // lock file, created atomically; a stale one (older than 15 minutes) is taken over.
    let lock = cache.join("resolving.lock");
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if done.exists() {
            return libs;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(mut file) => {
                let _ = writeln!(file, "{}", std::process::id());
                break;
            }
            Err(_) => {
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(900))
                    .unwrap_or(false);
                if stale {
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
                assert!(
                    Instant::now() < deadline,
                    "waiting for {} to go",
                    lock.display()
                );
                // Another test is resolving: wait for it (polling the file system is the
                // only signal another process gives).
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    let pom = repo_root().join("tests/fixtures/kafka/pom.xml");
    let output = Command::new("mvn")
        .args(["-q", "-B", "-f"])
        .arg(&pom)
        .arg("dependency:copy-dependencies")
        .arg("-DincludeScope=runtime")
        .arg(format!("-DoutputDirectory={}", libs.display()))
        .output();
    let _ = std::fs::remove_file(&lock);
    let output = output.expect("running mvn (make deps installs maven)");
    assert!(
        output.status.success(),
        "resolving Kafka's jars with mvn failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&done, KAFKA_VERSION).unwrap();
    libs
}

fn java(libs: &Path) -> Command {
    let mut command = Command::new("java");
    command
        .arg("-Xms256m")
        .arg("-Xmx768m")
        .arg("-XX:+UseG1GC")
        .arg("-Djava.awt.headless=true")
        .arg("-cp")
        .arg(format!("{}/*", libs.display()));
    command
}

/// A client-certificate authority (its certificate, PEM) and a client certificate it
/// signed with the certificate's key (PEM each).
fn client_pki() -> (String, (String, String)) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "culvert test client CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "culvert-client");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_pem, (cert.pem(), key.serialize_pem()))
}

impl KafkaBroker {
    /// A running broker; topics are created on first use with one partition.
    pub fn start() -> KafkaBroker {
        let libs = kafka_libs();
        let dir = tempfile::Builder::new()
            .prefix("culvert-kafka")
            .tempdir()
            .unwrap();
        let [port, controller, sasl_port, tls_port, mtls_port] = free_ports::<5>();
        // Mutual TLS: the listener trusts client certificates signed by this authority.
        let (client_ca, client) = client_pki();
        let client_ca_path = dir.path().join("client-ca.pem");
        std::fs::write(&client_ca_path, client_ca).unwrap();
        // The TLS listener's key and self-signed certificate (for 127.0.0.1), made with
        // the JDK's keytool; clients trust the certificate itself (`ca_pem`).
        let keystore = dir.path().join("broker.p12");
        keytool(&[
            "-genkeypair",
            "-alias",
            "broker",
            "-keyalg",
            "EC",
            "-groupname",
            "secp256r1",
            "-validity",
            "2",
            "-dname",
            "CN=127.0.0.1",
            "-ext",
            "SAN=IP:127.0.0.1,DNS:localhost",
            "-storetype",
            "PKCS12",
            "-keypass",
            KEYSTORE_PASSWORD,
            "-keystore",
            keystore.to_str().unwrap(),
        ]);
        keytool(&[
            "-exportcert",
            "-rfc",
            "-alias",
            "broker",
            "-file",
            dir.path().join("ca.pem").to_str().unwrap(),
            "-keystore",
            keystore.to_str().unwrap(),
        ]);
        let properties = dir.path().join("server.properties");
        let logs = dir.path().join("data");
        std::fs::write(
            &properties,
            format!(
                "process.roles=broker,controller\n\
                 node.id=1\n\
                 controller.quorum.bootstrap.servers=127.0.0.1:{controller}\n\
                 listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port},\
                 SSL://127.0.0.1:{tls_port},MTLS://127.0.0.1:{mtls_port},\
                 CONTROLLER://127.0.0.1:{controller}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{port},\
                 SASL_PLAINTEXT://127.0.0.1:{sasl_port},SSL://127.0.0.1:{tls_port},\
                 MTLS://127.0.0.1:{mtls_port}\n\
                 listener.name.mtls.ssl.client.auth=required\n\
                 listener.name.mtls.ssl.truststore.type=PEM\n\
                 listener.name.mtls.ssl.truststore.location={client_ca}\n\
                 ssl.keystore.type=PKCS12\n\
                 ssl.keystore.location={keystore}\n\
                 ssl.keystore.password={KEYSTORE_PASSWORD}\n\
                 ssl.key.password={KEYSTORE_PASSWORD}\n\
                 controller.listener.names=CONTROLLER\n\
                 inter.broker.listener.name=PLAINTEXT\n\
                 listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,\
                 SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL\n\
                 sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512\n\
                 listener.name.sasl_plaintext.plain.sasl.jaas.config=\
                 org.apache.kafka.common.security.plain.PlainLoginModule required \
                 user_{SASL_USER}=\"{SASL_PASSWORD}\";\n\
                 listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=\
                 org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
                 listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=\
                 org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
                 log.dirs={logs}\n\
                 num.partitions=1\n\
                 auto.create.topics.enable=true\n\
                 offsets.topic.replication.factor=1\n\
                 offsets.topic.num.partitions=3\n\
                 transaction.state.log.replication.factor=1\n\
                 transaction.state.log.min.isr=1\n\
                 share.coordinator.state.topic.replication.factor=1\n\
                 share.coordinator.state.topic.min.isr=1\n\
                 group.initial.rebalance.delay.ms=0\n\
                 group.min.session.timeout.ms=1000\n\
                 log.flush.interval.messages=9223372036854775807\n",
                logs = logs.display(),
                keystore = keystore.display(),
                client_ca = client_ca_path.display()
            ),
        )
        .unwrap();
        // A KRaft node formats its storage before its first start.
        let format = java(&libs)
            .arg("kafka.tools.StorageTool")
            .args([
                "format",
                "--cluster-id",
                "q1Sh-9_ISia_zwGINzRvyQ",
                "--standalone",
            ])
            // SCRAM credentials live in the cluster's metadata: added when formatting.
            .args(["--add-scram", &scram("SCRAM-SHA-256")])
            .args(["--add-scram", &scram("SCRAM-SHA-512")])
            .arg("-c")
            .arg(&properties)
            .output()
            .expect("running java (make deps installs a JDK)");
        assert!(
            format.status.success(),
            "formatting Kafka's storage failed: {}{}",
            String::from_utf8_lossy(&format.stdout),
            String::from_utf8_lossy(&format.stderr)
        );
        let log4j = dir.path().join("log4j2.properties");
        std::fs::write(
            &log4j,
            "rootLogger.level=INFO\nrootLogger.appenderRef.stdout.ref=STDOUT\n\
             appender.stdout.type=Console\nappender.stdout.name=STDOUT\n\
             appender.stdout.layout.type=PatternLayout\n\
             appender.stdout.layout.pattern=[%d] %p %m (%c)%n\n\
             logger.kafka.name=kafka\nlogger.kafka.level=INFO\n\
             logger.apache.name=org.apache.kafka\nlogger.apache.level=WARN\n",
        )
        .unwrap();
        let mut child = java(&libs)
            .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
            .arg("kafka.Kafka")
            .arg(&properties)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the Kafka broker");
        // Ready when it says so; its output goes on to a file (read by `log()` on failure).
        let stdout = child.stdout.take().unwrap();
        let log_path = dir.path().join("broker.log");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log = std::fs::File::create(log_path).unwrap();
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                if line.contains("Kafka Server started") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        let broker = KafkaBroker {
            dir,
            child,
            port,
            sasl_port,
            tls_port,
            mtls_port,
            client,
        };
        if ready_rx.recv_timeout(START_TIMEOUT).is_err() {
            panic!(
                "the Kafka broker did not start within {START_TIMEOUT:?}:\n{}",
                broker.log()
            );
        }
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        broker
    }

    /// Bootstrap servers for clients.
    pub fn servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bootstrap servers of the SASL listener (user [`SASL_USER`], password
    /// [`SASL_PASSWORD`]; PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, no TLS).
    pub fn sasl_servers(&self) -> String {
        format!("127.0.0.1:{}", self.sasl_port)
    }

    /// Bootstrap servers of the mutual-TLS listener: its certificate is
    /// [`KafkaBroker::ca_pem`], and it requires a client certificate
    /// ([`KafkaBroker::client_pem`]).
    pub fn mtls_servers(&self) -> String {
        format!("127.0.0.1:{}", self.mtls_port)
    }

    /// A client certificate and its key (PEM) the mutual-TLS listener accepts.
    pub fn client_pem(&self) -> (&str, &str) {
        (&self.client.0, &self.client.1)
    }

    /// Bootstrap servers of the TLS listener (certificate: [`KafkaBroker::ca_pem`]).
    pub fn tls_servers(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port)
    }

    /// The TLS listener's (self-signed) certificate, PEM: what clients trust.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ca.pem")).unwrap()
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

/// The keystore's password (a throw-away key for a throw-away broker).
const KEYSTORE_PASSWORD: &str = "changeit";

/// Run the JDK's keytool.
fn keytool(args: &[&str]) {
    let output = Command::new("keytool")
        .args(args)
        .args(["-storepass", KEYSTORE_PASSWORD])
        .output()
        .expect("running keytool (part of the JDK; make deps installs it)");
    assert!(
        output.status.success(),
        "keytool {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A `--add-scram` argument of the storage tool for the test user.
fn scram(mechanism: &str) -> String {
    format!("{mechanism}=[name={SASL_USER},password={SASL_PASSWORD}]")
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        // The data is thrown away with the directory: no need for a clean shutdown.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
