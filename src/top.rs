//! `culvert top`: a live view of every pipeline of a running server, like `vector top`:
//! its status, records read per source and written per destination (totals and per
//! second), the time its processors spend, its dead-letter queue and the records read
//! but not yet acked.
//!
//! It reads the server's Prometheus endpoint (`GET /metrics` on the HTTP API,
//! `docs/metrics.md`) twice `--interval` apart; rates are the differences over the time
//! between the two scrapes. Interactive, it clears the terminal and redraws every interval
//! until Ctrl-C; `--once` scrapes twice, prints once and exits (with `-o json|yaml` or
//! `--json`, the numbers as one JSON or YAML document). The token and TLS settings are the other client verbs' (`client::Access`);
//! TLS when the address is `https://...` or TLS files are given. The age of the last
//! saved position is not shown: the server has no metric for it yet.
//!
//! Exit codes as the other verbs: 2 bad usage, 3 the server cannot be reached or refuses
//! us, 1 anything else.

use crate::cli::{print_value, OutputFormat};
use crate::client::{self, Access};
use crate::prom::{self, Sample};
use crate::tools::{self, Failure};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default address of a server's HTTP API.
const DEFAULT_HTTP_ADDRESS: &str = "127.0.0.1:8080";
/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// `culvert top`'s flags.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// Where the server's HTTP API listens: host:port, or https://host:port for TLS
    /// (default 127.0.0.1:8080, or `http-address` in the CLI config file).
    #[arg(long = "http.address", env = "CULVERT_API_HTTP_ADDRESS")]
    pub http_address: Option<String>,
    /// The token, TLS files and CLI config file.
    #[command(flatten)]
    pub access: Access,
    /// Time between two scrapes; rates are over it (Go syntax: 500ms, 1s, 2m).
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Scrape twice, one interval apart, print the table once and exit.
    #[arg(long)]
    pub once: bool,
    /// With --once: the numbers as one JSON document (the same as `--output json`).
    #[arg(long, requires = "once")]
    pub json: bool,
    /// With --once: `table` (the default), `json` or `yaml` (the numbers as one document).
    #[arg(
        long = "output",
        short = 'o',
        value_enum,
        requires = "once",
        conflicts_with = "json"
    )]
    pub output: Option<OutputFormat>,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    match culvert_plugins::spec::parse_duration(text) {
        Some(d) if !d.is_zero() => Ok(d),
        Some(_) => Err("the interval must be more than 0".to_owned()),
        None => Err(format!(
            "{text:?} is not a duration (such as 500ms, 1s, 2m)"
        )),
    }
}

/// Run `culvert top`.
pub fn run(args: TopArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return tools::exit(Err(Failure(1, format!("starting the runtime: {e}")))),
    };
    tools::exit(runtime.block_on(top(args)))
}

async fn top(args: TopArgs) -> Result<(), Failure> {
    let settings = args
        .access
        .http_settings(args.http_address.clone(), DEFAULT_HTTP_ADDRESS)
        .map_err(|e| Failure(e.code, e.message))?;
    let scraper = Scraper::new(&settings)?;
    let mut before = scraper.scrape().await?;
    let mut at = Instant::now();
    if args.once {
        tokio::time::sleep(args.interval).await;
        let after = scraper.scrape().await?;
        let view = view(&before, &after, at.elapsed(), unix_now());
        let format = if args.json {
            OutputFormat::Json
        } else {
            args.output.unwrap_or_default()
        };
        if !print_value(format, &view)? {
            print!("{}", table(&view));
        }
        return Ok(());
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let next = async {
            tokio::time::sleep(args.interval).await;
            scraper.scrape().await
        };
        let body = tokio::select! {
            // Cancel-safety: losing the scrape in flight on Ctrl-C loses nothing.
            _ = &mut ctrl_c => {
                println!();
                return Ok(());
            }
            // Cancel-safety: ctrl_c is pinned outside the loop and polled again next time.
            scraped = next => match scraped {
                Ok(after) => {
                    let now = Instant::now();
                    let text = table(&view(&before, &after, now - at, unix_now()));
                    (before, at) = (after, now);
                    text
                }
                Err(Failure(_, message)) => format!("{message} (retrying)\n"),
            },
        };
        let header = format!(
            "culvert top: {} every {:?} at {} (Ctrl-C to quit)\n\n",
            settings.address,
            args.interval,
            chrono::Utc::now().format("%H:%M:%S")
        );
        let mut out = std::io::stdout().lock();
        // Home, clear the screen, draw.
        let _ = write!(out, "\x1b[H\x1b[2J{header}{body}");
        let _ = out.flush();
    }
}

/// GETs `/metrics` from one server.
struct Scraper {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    uri: Uri,
    authorization: Option<HeaderValue>,
    address: String,
}

impl Scraper {
    fn new(settings: &client::Settings) -> Result<Self, Failure> {
        let usage = |message: String| Failure(2, message);
        let address = settings.address.trim_end_matches('/');
        let wants_tls = settings.ca_file.is_some()
            || settings.cert_file.is_some()
            || settings.key_file.is_some();
        let base = if address.contains("://") {
            if wants_tls && address.starts_with("http://") {
                return Err(usage(format!(
                    "--http.address {address} asks for plain text, but TLS files are given: \
                     use https://"
                )));
            }
            address.to_owned()
        } else if wants_tls {
            format!("https://{address}")
        } else {
            format!("http://{address}")
        };
        let uri: Uri = format!("{base}/metrics")
            .parse()
            .map_err(|e| usage(format!("invalid --http.address {address:?}: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(usage(format!(
                "invalid --http.address {address:?}: want host:port or http(s)://host:port"
            )));
        }
        let authorization = match settings.token.as_deref() {
            None => None,
            Some(token) => Some(HeaderValue::try_from(format!("Bearer {token}")).map_err(
                |_| usage("the token holds characters an HTTP header cannot carry".to_owned()),
            )?),
        };
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector(settings)?),
            uri,
            authorization,
            address: address.to_owned(),
        })
    }

    /// The counters the server shows now.
    async fn scrape(&self) -> Result<Counts, Failure> {
        let unreachable = |what: String| {
            Failure(
                3,
                format!("cannot reach the server at {}: {what}", self.address),
            )
        };
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = self.uri.clone();
        if let Some(value) = &self.authorization {
            request.headers_mut().insert(AUTHORIZATION, value.clone());
        }
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| unreachable(client::chain(&e)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(client::chain(&e)))?
                .to_bytes();
            Ok::<_, Failure>((status, body))
        };
        let (status, body) = tokio::time::timeout(SCRAPE_TIMEOUT, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {SCRAPE_TIMEOUT:?}")))??;
        let text = String::from_utf8_lossy(&body);
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(Failure(
                    3,
                    format!(
                        "GET {}: {status} (hint: the server requires authentication: pass a \
                         token with --token or CULVERT_TOKEN, or `token:` in the CLI config \
                         file)",
                        self.uri
                    ),
                ))
            }
            _ => {
                return Err(Failure(
                    1,
                    format!("GET {}: {status}: {}", self.uri, text.trim()),
                ))
            }
        }
        let samples = prom::parse(&text)
            .map_err(|e| Failure(1, format!("GET {}: not Prometheus text: {e}", self.uri)))?;
        Ok(counts(&samples))
    }
}

/// An HTTP(S) connector: the CA file's roots (else the Mozilla roots built in) and the
/// client certificate, if given.
fn connector(settings: &client::Settings) -> Result<HttpsConnector<HttpConnector>, Failure> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let usage = |message: String| Failure(2, message);
    let pem = |flag: &str, path: &Path, e: &dyn std::fmt::Display| {
        usage(format!("{flag} {}: {e}", path.display()))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match (&settings.ca_file, &settings.cert_file, &settings.key_file) {
        (None, None, None) => builder
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| usage(format!("TLS settings: {e}")))?,
        (None, _, _) => {
            return Err(usage(
                "a client certificate for `culvert top` needs --tls-ca-file too".to_owned(),
            ))
        }
        (Some(ca), cert, key) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| pem("--tls-ca-file", ca, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem("--tls-ca-file", ca, &e))?;
            for cert in certs {
                roots.add(cert).map_err(|e| pem("--tls-ca-file", ca, &e))?;
            }
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| usage(format!("TLS settings: {e}")))?
                .with_root_certificates(roots);
            let config = match (cert, key) {
                (Some(cert), Some(key)) => {
                    let chain = CertificateDer::pem_file_iter(cert)
                        .map_err(|e| pem("--tls-cert-file", cert, &e))?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| pem("--tls-cert-file", cert, &e))?;
                    let key = PrivateKeyDer::from_pem_file(key)
                        .map_err(|e| pem("--tls-key-file", key, &e))?;
                    config
                        .with_client_auth_cert(chain, key)
                        .map_err(|e| usage(format!("the client certificate: {e}")))?
                }
                (None, None) => config.with_no_client_auth(),
                _ => {
                    return Err(usage(
                        "--tls-cert-file and --tls-key-file go together (a client certificate \
                         and its key)"
                            .to_owned(),
                    ))
                }
            };
            builder.with_tls_config(config)
        }
    };
    Ok(builder.https_or_http().enable_http1().build())
}

/// The counters of one scrape, by pipeline name.
#[derive(Debug, Default, Clone)]
struct Counts {
    pipelines: BTreeMap<String, PipelineCounts>,
}

#[derive(Debug, Default, Clone)]
struct PipelineCounts {
    /// `conduit_pipeline_status`: Conduit's status number.
    status: Option<i64>,
    /// By (kind, id): sources first, then destinations.
    connectors: BTreeMap<(Kind, String), ConnectorCounts>,
    processors: BTreeMap<String, ProcessorCounts>,
    dlq_records: f64,
    acks_pending: Option<f64>,
    /// `culvert_position_saved_timestamp_seconds`: Unix time of the last saved position.
    position_saved_at: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Source,
    Destination,
}

#[derive(Debug, Default, Clone)]
struct ConnectorCounts {
    plugin: String,
    records: f64,
    bytes: f64,
}

#[derive(Debug, Default, Clone)]
struct ProcessorCounts {
    plugin: String,
    batches: f64,
    seconds: f64,
}

/// The counters `culvert top` shows, out of a document's samples.
fn counts(samples: &[Sample]) -> Counts {
    let mut counts = Counts::default();
    for sample in samples {
        let pipeline = || sample.label("pipeline_name").to_owned();
        let value = sample.value;
        match sample.name.as_str() {
            "conduit_pipeline_status" => {
                counts.pipelines.entry(pipeline()).or_default().status = Some(value as i64);
            }
            "conduit_connector_bytes_count" | "conduit_connector_bytes_sum" => {
                let kind = match sample.label("type") {
                    "source" => Kind::Source,
                    "destination" => Kind::Destination,
                    _ => continue,
                };
                let id = sample.label("component_id").to_owned();
                let entry = counts.pipelines.entry(pipeline()).or_default();
                let connector = entry.connectors.entry((kind, id)).or_default();
                connector.plugin = sample.label("plugin").to_owned();
                if sample.name.ends_with("_count") {
                    connector.records = value;
                } else {
                    connector.bytes = value;
                }
            }
            "conduit_processor_execution_duration_seconds_count"
            | "conduit_processor_execution_duration_seconds_sum" => {
                let id = sample.label("component_id").to_owned();
                let entry = counts.pipelines.entry(pipeline()).or_default();
                let processor = entry.processors.entry(id).or_default();
                processor.plugin = sample.label("processor").to_owned();
                if sample.name.ends_with("_count") {
                    processor.batches = value;
                } else {
                    processor.seconds = value;
                }
            }
            "conduit_dlq_bytes_count" => {
                counts.pipelines.entry(pipeline()).or_default().dlq_records += value;
            }
            "culvert_acks_pending" => {
                counts.pipelines.entry(pipeline()).or_default().acks_pending = Some(value);
            }
            "culvert_position_saved_timestamp_seconds" => {
                counts
                    .pipelines
                    .entry(pipeline())
                    .or_default()
                    .position_saved_at = Some(value);
            }
            _ => {}
        }
    }
    counts
}

/// What `culvert top` shows (and `--json` prints).
#[derive(Debug, Serialize, PartialEq)]
struct View {
    /// The time between the two scrapes the rates are over.
    interval_seconds: f64,
    pipelines: Vec<PipelineView>,
}

#[derive(Debug, Serialize, PartialEq)]
struct PipelineView {
    name: String,
    /// Conduit's status name (`running`, `userstopped`, ...), `unknown` for a pipeline
    /// that has counters but no status (deleted).
    status: String,
    /// Records read by all its sources, and per second.
    records_in: u64,
    records_in_per_second: f64,
    /// Records written by all its destinations, and per second.
    records_out: u64,
    records_out_per_second: f64,
    dlq_records: u64,
    /// Records read and not yet acked (absent before the pipeline first ran).
    acks_pending: Option<u64>,
    /// Seconds since the pipeline last saved a source position (absent before it first
    /// saved one): how long nothing was acked. Growing while records are pending means the
    /// pipeline is stuck; growing while idle only means nothing came.
    position_age_seconds: Option<f64>,
    connectors: Vec<ConnectorView>,
    processors: Vec<ProcessorView>,
}

#[derive(Debug, Serialize, PartialEq)]
struct ConnectorView {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    plugin: String,
    records: u64,
    records_per_second: f64,
    bytes: u64,
    bytes_per_second: f64,
}

#[derive(Debug, Serialize, PartialEq)]
struct ProcessorView {
    id: String,
    plugin: String,
    batches: u64,
    /// Time spent processing, in all.
    seconds: f64,
    /// Share of the interval spent processing (0.25 = a quarter of the time).
    busy: f64,
}

/// Conduit's name of a `conduit_pipeline_status` number.
fn status_name(status: Option<i64>) -> &'static str {
    match status {
        Some(1) => "running",
        Some(2) => "systemstopped",
        Some(3) => "userstopped",
        Some(4) => "degraded",
        Some(5) => "recovering",
        _ => "unknown",
    }
}

/// Now, in Unix seconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How long ago, in words (`0.4s`, `12s`, `5m`, `3h`), for the table.
fn age(seconds: f64) -> String {
    match seconds {
        s if s < 10.0 => format!("{s:.1}s"),
        s if s < 120.0 => format!("{s:.0}s"),
        s if s < 7200.0 => format!("{:.0}m", s / 60.0),
        s => format!("{:.0}h", s / 3600.0),
    }
}

/// The view of `after`, with rates against `before` over `elapsed`; position ages as of
/// `now` (Unix seconds).
fn view(before: &Counts, after: &Counts, elapsed: Duration, now: f64) -> View {
    let seconds = elapsed.as_secs_f64();
    // Per second; a counter that went back (a restart of the server) counts from zero.
    let rate = |now: f64, then: f64| {
        let delta = if now >= then { now - then } else { now };
        if seconds > 0.0 {
            delta / seconds
        } else {
            0.0
        }
    };
    let empty = PipelineCounts::default();
    let pipelines = after
        .pipelines
        .iter()
        .map(|(name, counted)| {
            let then = before.pipelines.get(name).unwrap_or(&empty);
            let connectors: Vec<ConnectorView> = counted
                .connectors
                .iter()
                .map(|(key, c)| {
                    let prior = then.connectors.get(key);
                    ConnectorView {
                        id: key.1.clone(),
                        kind: match key.0 {
                            Kind::Source => "source",
                            Kind::Destination => "destination",
                        },
                        plugin: c.plugin.clone(),
                        records: c.records as u64,
                        records_per_second: rate(c.records, prior.map_or(0.0, |p| p.records)),
                        bytes: c.bytes as u64,
                        bytes_per_second: rate(c.bytes, prior.map_or(0.0, |p| p.bytes)),
                    }
                })
                .collect();
            let processors = counted
                .processors
                .iter()
                .map(|(id, p)| ProcessorView {
                    id: id.clone(),
                    plugin: p.plugin.clone(),
                    batches: p.batches as u64,
                    seconds: p.seconds,
                    busy: rate(
                        p.seconds,
                        then.processors.get(id).map_or(0.0, |q| q.seconds),
                    ),
                })
                .collect();
            let sum = |kind: &str, f: fn(&ConnectorView) -> f64| {
                connectors
                    .iter()
                    .filter(|c| c.kind == kind)
                    .map(f)
                    // Not `sum`, which gives -0.0 for nothing.
                    .fold(0.0, |a, b| a + b)
            };
            PipelineView {
                name: name.clone(),
                status: status_name(counted.status).to_owned(),
                records_in: sum("source", |c| c.records as f64) as u64,
                records_in_per_second: sum("source", |c| c.records_per_second),
                records_out: sum("destination", |c| c.records as f64) as u64,
                records_out_per_second: sum("destination", |c| c.records_per_second),
                dlq_records: counted.dlq_records as u64,
                acks_pending: counted.acks_pending.map(|n| n as u64),
                position_age_seconds: counted.position_saved_at.map(|at| (now - at).max(0.0)),
                connectors,
                processors,
            }
        })
        .collect();
    View {
        interval_seconds: seconds,
        pipelines,
    }
}

/// The view as a table: a line per pipeline, then one per connector and processor.
fn table(view: &View) -> String {
    if view.pipelines.is_empty() {
        return "no pipelines\n".to_owned();
    }
    let header = [
        "NAME", "KIND", "STATUS", "IN/S", "OUT/S", "IN", "OUT", "PROC", "DLQ", "PENDING",
        "POS AGE", "PLUGIN",
    ];
    let per_second = |n: f64| format!("{n:.1}");
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for p in &view.pipelines {
        rows.push(vec![
            p.name.clone(),
            "pipeline".into(),
            p.status.clone(),
            per_second(p.records_in_per_second),
            per_second(p.records_out_per_second),
            p.records_in.to_string(),
            p.records_out.to_string(),
            String::new(),
            p.dlq_records.to_string(),
            p.acks_pending.map_or("-".into(), |n| n.to_string()),
            p.position_age_seconds.map_or("-".into(), age),
            String::new(),
        ]);
        for c in &p.connectors {
            let (rate, total) = (per_second(c.records_per_second), c.records.to_string());
            let (in_rate, out_rate, records_in, records_out) = if c.kind == "source" {
                (rate, String::new(), total, String::new())
            } else {
                (String::new(), rate, String::new(), total)
            };
            rows.push(vec![
                format!("  {}", c.id),
                c.kind.into(),
                String::new(),
                in_rate,
                out_rate,
                records_in,
                records_out,
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                c.plugin.clone(),
            ]);
        }
        for q in &p.processors {
            let mut row = vec![String::new(); header.len()];
            row[0] = format!("  {}", q.id);
            row[1] = "processor".into();
            row[7] = format!("{:.1}%", q.busy * 100.0);
            row[11] = q.plugin.clone();
            rows.push(row);
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                // Names and words to the left, numbers to the right.
                if (3..=10).contains(&i) {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(written: u64, busy_seconds: f64) -> Counts {
        let text = format!(
            "# TYPE conduit_pipeline_status gauge\n\
             conduit_pipeline_status{{pipeline_name=\"demo\"}} 1\n\
             conduit_pipeline_status{{pipeline_name=\"idle\"}} 3\n\
             conduit_connector_bytes_count{{pipeline_name=\"demo\",plugin=\"builtin:generator\",type=\"source\",component_id=\"gen\"}} {read}\n\
             conduit_connector_bytes_sum{{pipeline_name=\"demo\",plugin=\"builtin:generator\",type=\"source\",component_id=\"gen\"}} {bytes}\n\
             conduit_connector_bytes_count{{pipeline_name=\"demo\",plugin=\"builtin:file\",type=\"destination\",component_id=\"out\"}} {written}\n\
             conduit_processor_execution_duration_seconds_count{{pipeline_name=\"demo\",processor=\"field.set\",component_id=\"p1\"}} 10\n\
             conduit_processor_execution_duration_seconds_sum{{pipeline_name=\"demo\",processor=\"field.set\",component_id=\"p1\"}} {busy_seconds}\n\
             conduit_dlq_bytes_count{{pipeline_name=\"demo\",plugin=\"builtin:log\"}} 2\n\
             culvert_acks_pending{{pipeline_name=\"demo\"}} 7\n\
             culvert_position_saved_timestamp_seconds{{pipeline_name=\"demo\"}} 1000.5\n\
             # EOF\n",
            read = written + 7,
            bytes = (written + 7) * 100,
        );
        counts(&prom::parse(&text).unwrap())
    }

    #[test]
    fn rates_are_differences_over_the_time_between_scrapes() {
        let view = view(
            &document(1000, 0.5),
            &document(3000, 1.0),
            Duration::from_secs(2),
            1003.0,
        );
        assert_eq!(view.interval_seconds, 2.0);
        let names: Vec<&str> = view.pipelines.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["demo", "idle"]);
        let demo = &view.pipelines[0];
        assert_eq!(demo.status, "running");
        assert_eq!((demo.records_in, demo.records_out), (3007, 3000));
        assert_eq!(demo.records_in_per_second, 1000.0);
        assert_eq!(demo.records_out_per_second, 1000.0);
        assert_eq!((demo.dlq_records, demo.acks_pending), (2, Some(7)));
        assert_eq!(demo.position_age_seconds, Some(2.5));
        let kinds: Vec<(&str, &str)> = demo
            .connectors
            .iter()
            .map(|c| (c.id.as_str(), c.kind))
            .collect();
        assert_eq!(kinds, [("gen", "source"), ("out", "destination")]);
        assert_eq!(demo.connectors[0].plugin, "builtin:generator");
        assert_eq!(demo.connectors[0].bytes, 300_700);
        assert_eq!(demo.connectors[0].bytes_per_second, 100_000.0);
        assert_eq!(demo.processors[0].plugin, "field.set");
        assert_eq!(demo.processors[0].busy, 0.25);
        let idle = &view.pipelines[1];
        assert_eq!(idle.status, "userstopped");
        assert_eq!((idle.records_out, idle.acks_pending), (0, None));
        assert_eq!(idle.position_age_seconds, None);
    }

    #[test]
    fn a_counter_that_went_back_counts_from_zero_and_new_ones_from_nothing() {
        let view = view(
            &document(5000, 2.0),
            &document(100, 0.0),
            Duration::from_secs(1),
            0.0,
        );
        assert_eq!(view.pipelines[0].records_out_per_second, 100.0);
        let view = super::view(
            &Counts::default(),
            &document(100, 0.0),
            Duration::from_secs(1),
            0.0,
        );
        assert_eq!(view.pipelines[0].records_out_per_second, 100.0);
        let view = super::view(&Counts::default(), &Counts::default(), Duration::ZERO, 0.0);
        assert!(view.pipelines.is_empty());
        assert_eq!(table(&view), "no pipelines\n");
    }

    #[test]
    fn the_table_has_a_line_per_pipeline_and_component() {
        let text = table(&view(
            &document(1000, 0.5),
            &document(3000, 1.0),
            Duration::from_secs(2),
            1003.0,
        ));
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines,
            [
                vec![
                    "NAME", "KIND", "STATUS", "IN/S", "OUT/S", "IN", "OUT", "PROC", "DLQ",
                    "PENDING", "POS", "AGE", "PLUGIN"
                ],
                vec![
                    "demo", "pipeline", "running", "1000.0", "1000.0", "3007", "3000", "2", "7",
                    "2.5s"
                ],
                vec!["gen", "source", "1000.0", "3007", "builtin:generator"],
                vec!["out", "destination", "1000.0", "3000", "builtin:file"],
                vec!["p1", "processor", "25.0%", "field.set"],
                vec![
                    "idle",
                    "pipeline",
                    "userstopped",
                    "0.0",
                    "0.0",
                    "0",
                    "0",
                    "0",
                    "-",
                    "-"
                ],
            ]
        );
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age(0.25), "0.2s");
        assert_eq!(age(42.0), "42s");
        assert_eq!(age(600.0), "10m");
        assert_eq!(age(36_000.0), "10h");
    }

    #[test]
    fn addresses_and_intervals() {
        let settings = |address: &str| client::Settings {
            address: address.to_owned(),
            ..client::Settings::default()
        };
        let uri = |address: &str| Scraper::new(&settings(address)).map(|s| s.uri.to_string());
        assert_eq!(
            uri("127.0.0.1:8080").ok().unwrap(),
            "http://127.0.0.1:8080/metrics"
        );
        assert_eq!(uri("https://h:1/").ok().unwrap(), "https://h:1/metrics");
        assert_eq!(uri("ftp://h:1").err().unwrap().0, 2);
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("soon").is_err());
    }
}
