//! The API's authentication, TLS and rate limit, against the real binary: every HTTP route
//! (from the served OpenAPI document) and every gRPC method (from the descriptor set)
//! refuses a missing or wrong token while the health checks stay open; the audit trail
//! names the token and keeps the caller's reason; mutual TLS accepts a client certificate
//! from the client CA (over gRPC, HTTPS and the CLI) and refuses others; a server on a
//! non-loopback address without authentication does not start; the rate limit answers
//! 429 / RESOURCE_EXHAUSTED.

use crate::harness::{culvert, data_dir, Server};
use crate::http_client::{request, request_tls, Reply};
use culvert_api::pb::api::v1 as pb;
use culvert_api::pb::culvert::api::v1 as ev;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;

/// A tokens file with one token named `name`, made by `culvert tokens create` (which
/// prints the token on stdout).
fn tokens_file(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join("tokens");
    let (code, stdout, stderr) = culvert(&[
        "tokens",
        "create",
        name,
        "--tokens-file",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim().to_owned();
    assert!(token.starts_with("cvt_"), "{stdout}");
    (path, token)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A JSON request with optional bearer token and extra headers.
fn http(
    address: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let authorization = token.map(bearer);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(value) = &authorization {
        headers.push(("authorization", value.as_str()));
    }
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
    request(address, method, path, &headers, bytes.as_deref())
}

/// The error body of a refused HTTP call: 401, grpc-gateway's shape with code 16, a
/// `WWW-Authenticate: Bearer` challenge, and the ErrorInfo reason.
fn assert_unauthorized(reply: &Reply, what: &str, reason: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.text());
    let body = reply.json();
    assert_eq!(body["code"], 16, "{what}: {body}");
    assert!(
        !body["message"].as_str().unwrap().is_empty(),
        "{what}: {body}"
    );
    assert_eq!(body["details"][0]["reason"], reason, "{what}: {body}");
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{what}: {:?}",
        reply.headers
    );
}

/// Every operation of the served OpenAPI document: (method, path with placeholders
/// filled, whether it answers with a stream).
fn operations(document: &Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let mut filled = String::new();
            let mut rest = path.as_str();
            while let Some(start) = rest.find('{') {
                let end = rest[start..].find('}').unwrap() + start;
                filled.push_str(&rest[..start]);
                filled.push_str("placeholder-id");
                rest = &rest[end + 1..];
            }
            filled.push_str(rest);
            let streams = operation["responses"]
                .as_object()
                .unwrap()
                .values()
                .any(|r| r["description"].as_str().unwrap_or("").contains("stream"));
            out.push((method.to_uppercase(), filled, streams));
        }
    }
    out
}

async fn grpc_channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the gRPC API")
}

/// Call `method` (a path) with an empty request message, as a stream so that every kind of
/// RPC goes the same way; the answer's status (Ok once the server answered with headers).
async fn grpc_call(
    channel: Channel,
    method: &str,
    token: Option<&str>,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("channel ready");
    let mut request = tonic::Request::new(tonic::codegen::tokio_stream::once(()));
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", bearer(token).parse().unwrap());
    }
    let path = method.parse().unwrap();
    grpc.streaming(request, path, tonic_prost::ProstCodec::<(), ()>::default())
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_rpc_needs_the_token_and_health_stays_open() {
    let (dir, data) = data_dir();
    let (tokens, token) = tokens_file(dir.path(), "ci");
    let mut server = Server::start(&data, &["--api.auth.tokens-file", tokens.to_str().unwrap()]);
    let grpc = server.grpc_address();
    let address = server.http_address();
    server.wait_for_line("culvert ready");

    // The document itself needs the token; with it, it lists every route.
    let document_path = "/openapi/api/v1/api.swagger.json";
    assert_unauthorized(
        &http(&address, "GET", document_path, None, None),
        "the OpenAPI document",
        "auth.missing",
    );
    let document = http(&address, "GET", document_path, Some(&token), None);
    assert_eq!(document.status, 200, "{}", document.text());
    let routes = operations(&document.json());
    assert!(
        routes.len() >= 30,
        "only {} routes: {routes:?}",
        routes.len()
    );
    assert!(
        routes.iter().any(|(_, _, streams)| *streams),
        "no streaming route"
    );

    let wrong = "cvt_not-the-right-token";
    for (method, path, streams) in &routes {
        let body = (method != "GET" && method != "DELETE").then(|| json!({}));
        let what = format!("{method} {path}");
        assert_unauthorized(
            &http(&address, method, path, None, body.clone()),
            &format!("{what} without a token"),
            "auth.missing",
        );
        assert_unauthorized(
            &http(&address, method, path, Some(wrong), body.clone()),
            &format!("{what} with a wrong token"),
            "auth.invalid_token",
        );
        let malformed = request(&address, method, path, &[("authorization", &token)], None);
        assert_unauthorized(
            &malformed,
            &format!("{what}, no Bearer scheme"),
            "auth.malformed",
        );
        // The right token gets past authentication (the placeholder ids may not exist;
        // a stream would not end, so streaming routes are only checked for refusals).
        if !streams {
            let reply = http(&address, method, path, Some(&token), body);
            assert_ne!(reply.status, 401, "{what} with the token: {}", reply.text());
        }
    }
    // Routes outside the document too: Swagger UI, unknown API paths, and anything but a
    // page load elsewhere.
    for (method, path) in [
        ("GET", "/openapi/"),
        ("GET", "/v1/no/such/route"),
        ("POST", "/no/such/route"),
        ("GET", "/assets/missing.js"),
    ] {
        let body = (method == "POST").then(|| json!({}));
        assert_unauthorized(
            &http(&address, method, path, None, body),
            path,
            "auth.missing",
        );
    }
    // The web UI's page and assets hold no data: open, so a browser can load the page and
    // sign in (tests/ui.rs).
    for path in ["/", "/no/such/route", "/assets/app.js"] {
        let reply = http(&address, "GET", path, None, None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        let kind = reply.header("content-type").unwrap();
        assert!(
            kind.starts_with("text/html") || kind.starts_with("text/javascript"),
            "{path}: {kind}"
        );
    }
    // Health checks stay open.
    for path in ["/healthz", "/readyz"] {
        let reply = http(&address, "GET", path, None, None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    let reply = http(&address, "GET", "/v1/pipelines", Some(&token), None);
    assert_eq!(reply.status, 200, "{}", reply.text());

    // gRPC: every method of every service, from the descriptor set.
    let methods = culvert_api::grpc_methods();
    assert!(methods.len() >= 30, "only {} methods", methods.len());
    assert!(methods
        .iter()
        .any(|m| m.path == "/culvert.api.v1.EventLogService/WatchEvents" && m.server_streaming));
    let channel = grpc_channel(&grpc).await;
    for method in &methods {
        let status = grpc_call(channel.clone(), &method.path, None)
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{}: {status:?}",
            method.path
        );
        assert!(
            status.message().contains("authentication required"),
            "{}: {}",
            method.path,
            status.message()
        );
        let status = grpc_call(channel.clone(), &method.path, Some(wrong))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{}: {status:?}",
            method.path
        );
        assert!(
            status.message().contains("invalid bearer token"),
            "{status:?}"
        );
        // The right token gets past authentication (an empty request may be refused for
        // what it lacks, never as unauthenticated).
        if let Err(status) = grpc_call(channel.clone(), &method.path, Some(&token)).await {
            assert_ne!(
                status.code(),
                Code::Unauthenticated,
                "{}: {status:?}",
                method.path
            );
        }
    }
    // The health service is open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health without a token");
    assert_eq!(
        answer.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // The CLI: without a token it says how to give one; with one (flag or environment,
    // or the CLI config file) it works.
    let config_home = tempfile::tempdir().unwrap();
    let cli = |args: &[&str], env: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_culvert"))
            .args(args)
            .env("XDG_CONFIG_HOME", config_home.path())
            .env_remove("CULVERT_TOKEN")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, _, stderr) = cli(&["pipelines", "ls", "--grpc.address", &grpc], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("--token") && stderr.contains("CULVERT_TOKEN"),
        "{stderr}"
    );
    let (code, _, stderr) = cli(
        &[
            "pipelines",
            "ls",
            "--grpc.address",
            &grpc,
            "--token",
            &token,
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = cli(
        &["events", "tail", "--grpc.address", &grpc],
        &[("CULVERT_TOKEN", &token)],
    );
    assert_eq!(code, 0, "{stderr}");
    let config = config_home.path().join("culvert").join("cli.yaml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, format!("grpc-address: {grpc}\ntoken: {token}\n")).unwrap();
    let (code, _, stderr) = cli(&["info"], &[]);
    assert_eq!(code, 0, "{stderr}");
    // The flag wins over the file.
    let (code, _, stderr) = cli(&["info", "--token", wrong], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("invalid bearer token"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_names_the_token_and_keeps_the_reason() {
    let (dir, data) = data_dir();
    let (tokens, token) = tokens_file(dir.path(), "deploy-bot");
    let mut server = Server::start(&data, &["--api.auth.tokens-file", tokens.to_str().unwrap()]);
    let grpc = server.grpc_address();
    let address = server.http_address();
    let authorization = bearer(&token);

    // Over HTTP, with a forged culvert-actor and a reason.
    let body = serde_json::to_vec(&json!({"config": {"name": "audited"}})).unwrap();
    let reply = request(
        &address,
        "POST",
        "/v1/pipelines",
        &[
            ("authorization", &authorization),
            ("culvert-actor", "mallory"),
            ("culvert-reason", "ticket OPS-42: nightly export"),
        ],
        Some(&body),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_owned();

    // Over gRPC, with a reason.
    let channel = grpc_channel(&grpc).await;
    let mut pipelines = pb::pipeline_service_client::PipelineServiceClient::new(channel.clone());
    let mut update = tonic::Request::new(pb::UpdatePipelineRequest {
        id: id.clone(),
        config: Some(pb::pipeline::Config {
            name: "audited".into(),
            description: "now described".into(),
        }),
        ..Default::default()
    });
    update
        .metadata_mut()
        .insert("authorization", authorization.parse().unwrap());
    update
        .metadata_mut()
        .insert("culvert-actor", "mallory".parse().unwrap());
    update
        .metadata_mut()
        .insert("culvert-reason", "describe it".parse().unwrap());
    pipelines.update_pipeline(update).await.expect("update");

    // A reason that is too long is refused, and nothing is recorded.
    let long = "x".repeat(513);
    let refused = request(
        &address,
        "PUT",
        &format!("/v1/pipelines/{id}"),
        &[("authorization", &authorization), ("culvert-reason", &long)],
        Some(&serde_json::to_vec(&json!({"config": {"name": "renamed"}})).unwrap()),
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("culvert-reason"),
        "{}",
        refused.text()
    );

    // Read back over the API: actor and reason of each event.
    let listed = request(
        &address,
        "GET",
        &format!("/v1/events?entity_id={id}"),
        &[("authorization", &authorization)],
        None,
    );
    assert_eq!(listed.status, 200, "{}", listed.text());
    let listed = listed.json();
    let events = listed["events"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "PipelineCreated",
                "token:deploy-bot",
                "ticket OPS-42: nightly export"
            ),
            ("PipelineUpdated", "token:deploy-bot", "describe it"),
        ]
    );
    let mut log = ev::event_log_service_client::EventLogServiceClient::new(channel);
    let mut list = tonic::Request::new(ev::ListEventsRequest {
        entity_id: id.clone(),
        ..Default::default()
    });
    list.metadata_mut()
        .insert("authorization", authorization.parse().unwrap());
    let events = log.list_events(list).await.unwrap().into_inner().events;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].actor, "token:deploy-bot");
    assert_eq!(events[0].reason, "ticket OPS-42: nightly export");

    // And offline, from the data directory.
    let data_flag = data.to_str().unwrap();
    let (code, stdout, stderr) = culvert(&["audit", &id, "--db.rocksdb.path", data_flag]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "token:deploy-bot PipelineCreated  (reason: \"ticket OPS-42: nightly export\")"
        ),
        "{stdout}"
    );
    let (code, stdout, stderr) = culvert(&[
        "events",
        "ls",
        "--entity",
        &id,
        "--json",
        "--db.rocksdb.path",
        data_flag,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let first: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["actor"], "token:deploy-bot");
    assert_eq!(first["reason"], "ticket OPS-42: nightly export");
}

/// A CA and certificates it signs, written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        Pki { dir, params, key }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `common_name` (and the loopback names): its (cert, key) files.
    fn issue(&self, common_name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let cert_file = self.dir.path().join(format!("{common_name}.pem"));
        let key_file = self.dir.path().join(format!("{common_name}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A rustls client trusting `ca`, presenting `identity` (cert and key files) if given.
fn https_client(ca: &Path, identity: Option<&(PathBuf, PathBuf)>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    };
    Arc::new(config)
}

/// A gRPC channel over TLS trusting `ca`, presenting `identity` if given; `Err` if the
/// connection is refused.
async fn tls_channel(
    address: &str,
    ca: &Path,
    identity: Option<&(PathBuf, PathBuf)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca)))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(read(cert), read(key)));
    }
    Channel::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

async fn list_pipelines(channel: Channel) -> Result<Vec<pb::Pipeline>, tonic::Status> {
    pb::pipeline_service_client::PipelineServiceClient::new(channel)
        .list_pipelines(pb::ListPipelinesRequest::default())
        .await
        .map(|r| r.into_inner().pipelines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_accepts_the_ca_s_clients_and_refuses_others() {
    let (_dir, data) = data_dir();
    let pki = Pki::new("Culvert test CA");
    let server_identity = pki.issue("culvert-server");
    let alice = pki.issue("alice");
    let rogue_pki = Pki::new("Rogue CA");
    let mallory = rogue_pki.issue("mallory");
    let mut server = Server::start(
        &data,
        &[
            "--api.tls.cert-file",
            server_identity.0.to_str().unwrap(),
            "--api.tls.key-file",
            server_identity.1.to_str().unwrap(),
            "--api.tls.client-ca-file",
            pki.ca_file().to_str().unwrap(),
        ],
    );
    let grpc = server.grpc_address();
    let address = server.http_address();
    server.wait_for_line("culvert ready");
    let ca = pki.ca_file();

    // gRPC: alice is let in and recorded as cert:alice.
    let channel = tls_channel(&grpc, &ca, Some(&alice))
        .await
        .expect("alice connects");
    let mut pipelines = pb::pipeline_service_client::PipelineServiceClient::new(channel.clone());
    let created = pipelines
        .create_pipeline(pb::CreatePipelineRequest {
            config: Some(pb::pipeline::Config {
                name: "by-alice".into(),
                description: String::new(),
            }),
        })
        .await
        .expect("alice creates a pipeline")
        .into_inner()
        .pipeline
        .unwrap();
    let mut log = ev::event_log_service_client::EventLogServiceClient::new(channel);
    let events = log
        .list_events(ev::ListEventsRequest {
            entity_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events[0].actor, "cert:alice");

    // gRPC: a certificate of another CA never gets an answer; no certificate is
    // UNAUTHENTICATED; health needs none.
    match tls_channel(&grpc, &ca, Some(&mallory)).await {
        Err(_) => {}
        Ok(channel) => {
            let refused = list_pipelines(channel).await;
            assert!(refused.is_err(), "mallory was answered: {refused:?}");
        }
    }
    let anonymous = tls_channel(&grpc, &ca, None)
        .await
        .expect("TLS without a certificate");
    let status = list_pipelines(anonymous.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    tonic_health::pb::health_client::HealthClient::new(anonymous)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health over TLS without a certificate");
    // Plain text is not served at all.
    let plain = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(plain) = plain {
        assert!(list_pipelines(plain).await.is_err());
    }

    // HTTPS: the same.
    let as_alice = https_client(&ca, Some(&alice));
    let body = serde_json::to_vec(&json!({"config": {"name": "by-alice-over-https"}})).unwrap();
    let reply = request_tls(
        &address,
        as_alice.clone(),
        "POST",
        "/v1/pipelines",
        &[],
        Some(&body),
    )
    .expect("alice over HTTPS");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let reply = request_tls(
        &address,
        as_alice,
        "GET",
        &format!("/v1/events?entity_id={id}"),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(reply.json()["events"][0]["actor"], "cert:alice");
    let refused = request_tls(
        &address,
        https_client(&ca, Some(&mallory)),
        "GET",
        "/v1/pipelines",
        &[],
        None,
    );
    assert!(
        refused.is_err(),
        "mallory was answered over HTTPS: {refused:?}"
    );
    let no_cert = https_client(&ca, None);
    let reply = request_tls(&address, no_cert.clone(), "GET", "/v1/pipelines", &[], None).unwrap();
    assert_unauthorized(&reply, "HTTPS without a certificate", "auth.missing");
    let reply = request_tls(&address, no_cert, "GET", "/healthz", &[], None).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());

    // The CLI with the CA and alice's certificate.
    let (code, stdout, stderr) = culvert(&[
        "pipelines",
        "ls",
        "--json",
        "--grpc.address",
        &grpc,
        "--tls-ca-file",
        ca.to_str().unwrap(),
        "--tls-cert-file",
        alice.0.to_str().unwrap(),
        "--tls-key-file",
        alice.1.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("by-alice"), "{stdout}");
    // `culvert top` scrapes /metrics over HTTPS with the same files.
    let (code, stdout, stderr) = culvert(&[
        "top",
        "--once",
        "--json",
        "--interval",
        "50ms",
        "--http.address",
        &address,
        "--tls-ca-file",
        ca.to_str().unwrap(),
        "--tls-cert-file",
        alice.0.to_str().unwrap(),
        "--tls-key-file",
        alice.1.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let view: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(view["pipelines"][0]["name"], "by-alice", "{view}");
    let (code, _, stderr) = culvert(&[
        "top",
        "--once",
        "--http.address",
        &format!("https://{address}"),
        "--tls-ca-file",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "without a certificate: {stderr}");
    // Without a certificate the CLI is told it must authenticate.
    let (code, _, stderr) = culvert(&[
        "pipelines",
        "ls",
        "--grpc.address",
        &format!("https://{grpc}"),
        "--tls-ca-file",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("authentication required"), "{stderr}");
}

#[test]
fn a_non_loopback_api_without_authentication_does_not_start() {
    for flag in ["--api.http.address", "--api.grpc.address"] {
        let (_dir, data) = data_dir();
        let (grpc, http) = match flag {
            "--api.http.address" => ("127.0.0.1:0", "0.0.0.0:0"),
            _ => ("0.0.0.0:0", "127.0.0.1:0"),
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_culvert"));
        command
            .args(["run", "--db.rocksdb.path"])
            .arg(&data)
            .args(["--log.format", "json", "--db.fsync", "false"])
            .args(["--api.grpc.address", grpc, "--api.http.address", http])
            .env_remove("CULVERT_API_AUTH_TOKENS_FILE");
        let mut server = Server::spawn(command);
        let status = server.wait();
        assert!(!status.success(), "{flag}: started: {:#?}", server.seen);
        let said = server.seen.join("\n");
        for needle in [
            "refusing to serve",
            flag,
            "culvert tokens create",
            "--api.auth.tokens-file",
            "--api.tls.client-ca-file",
            "--api.auth.allow-unauthenticated",
        ] {
            assert!(said.contains(needle), "{flag}: no {needle:?} in {said}");
        }
        assert!(!data.exists(), "{flag}: the data directory was opened");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_refuses_a_burst_over_it() {
    let (dir, data) = data_dir();
    let (tokens, token) = tokens_file(dir.path(), "ci");
    let mut server = Server::start(
        &data,
        &[
            "--api.auth.tokens-file",
            tokens.to_str().unwrap(),
            "--api.auth.rate-limit",
            "5",
            "--api.auth.rate-burst",
            "5",
        ],
    );
    let grpc = server.grpc_address();
    let address = server.http_address();

    // 20 calls as fast as they go: far more than 5 at once and 5 a second.
    let replies: Vec<Reply> = (0..20)
        .map(|_| http(&address, "GET", "/v1/pipelines", Some(&token), None))
        .collect();
    assert!(replies.iter().any(|r| r.status == 200), "none let in");
    let limited = replies
        .iter()
        .find(|r| r.status == 429)
        .expect("some of 20 calls refused");
    let body = limited.json();
    assert_eq!(body["code"], 8, "{body}");
    assert_eq!(body["details"][0]["reason"], "auth.rate_limited", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("token:ci") && message.contains("--api.auth.rate-limit"),
        "{message}"
    );
    assert!(
        limited.header("retry-after").is_some(),
        "{:?}",
        limited.headers
    );
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 429));
    // Health checks are not limited.
    assert_eq!(http(&address, "GET", "/healthz", None, None).status, 200);

    // gRPC shares the identity's bucket.
    let channel = grpc_channel(&grpc).await;
    let mut codes = Vec::new();
    for _ in 0..20 {
        let mut request = tonic::Request::new(pb::ListPipelinesRequest::default());
        request
            .metadata_mut()
            .insert("authorization", bearer(&token).parse().unwrap());
        let answer = pb::pipeline_service_client::PipelineServiceClient::new(channel.clone())
            .list_pipelines(request)
            .await;
        codes.push(answer.err().map(|s| (s.code(), s.message().to_owned())));
    }
    let refused = codes
        .iter()
        .flatten()
        .find(|(code, _)| *code == Code::ResourceExhausted)
        .unwrap_or_else(|| panic!("no call refused: {codes:?}"));
    assert!(refused.1.contains("rate limit exceeded"), "{refused:?}");
}

#[test]
fn without_authentication_the_rate_limit_is_per_client_address() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(
        &data,
        &["--api.auth.rate-limit", "2", "--api.auth.rate-burst", "2"],
    );
    let address = server.http_address();
    let statuses: Vec<u16> = (0..20)
        .map(|_| http(&address, "GET", "/v1/pipelines", None, None).status)
        .collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let limited = http(&address, "GET", "/v1/pipelines", None, None);
    if limited.status == 429 {
        let message = limited.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains("ip:127.0.0.1"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browsers_preflight_needs_no_token_but_its_calls_and_websockets_do() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let (dir, data) = data_dir();
    let (tokens, token) = tokens_file(dir.path(), "ui");
    let origin = "http://ui.example:3000";
    let mut server = Server::start(
        &data,
        &[
            "--api.auth.tokens-file",
            tokens.to_str().unwrap(),
            "--api.http.cors.allowed-origins",
            origin,
        ],
    );
    let address = server.http_address();
    // The preflight carries no credentials and is answered before authentication.
    let preflight = request(
        &address,
        "OPTIONS",
        "/v1/pipelines",
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ],
        None,
    );
    assert_eq!(preflight.status, 200, "{}", preflight.text());
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("authorization,content-type")
    );
    // The call itself needs the token; its 401 is readable by the page.
    let refused = request(
        &address,
        "GET",
        "/v1/pipelines",
        &[("Origin", origin)],
        None,
    );
    assert_unauthorized(
        &refused,
        "a cross-origin call without a token",
        "auth.missing",
    );
    assert_eq!(refused.header("access-control-allow-origin"), Some(origin));
    let authorization = bearer(&token);
    let allowed = request(
        &address,
        "GET",
        "/v1/pipelines",
        &[("Origin", origin), ("Authorization", &authorization)],
        None,
    );
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    // So does a WebSocket handshake.
    let url = format!("ws://{address}/v1/pipelines");
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("a WebSocket opened without a token"),
    }
    let mut with_token = url.as_str().into_client_request().unwrap();
    with_token
        .headers_mut()
        .insert("authorization", authorization.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(with_token).await.unwrap();
    let first = tokio_stream::StreamExt::next(&mut socket)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.into_text().unwrap().as_str(), "[]");
    // A browser cannot set that header on a WebSocket: it offers the token as a subprotocol
    // beside `culvert`, which the server chooses (the token is not echoed back).
    let offering = |token: &str| {
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            format!("culvert, culvert.bearer.{token}").parse().unwrap(),
        );
        request
    };
    let (mut socket, response) = tokio_tungstenite::connect_async(offering(&token))
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "culvert"
    );
    let first = tokio_stream::StreamExt::next(&mut socket)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.into_text().unwrap().as_str(), "[]");
    match tokio_tungstenite::connect_async(offering("cvt_wrong")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("a WebSocket opened with a wrong token"),
    }
}
