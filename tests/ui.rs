//! The built-in web UI in a real browser: headless Chromium (Debian's `chromium`, which
//! `make deps` installs) driven over the DevTools protocol against the `culvert` binary.
//! The pipelines page lists a running pipeline with its status; stopping and starting it
//! from the page (the stop's confirmation accepted) changes the pipeline; its page shows
//! the flow, its history from the event log (the page's own stop and start by the actor
//! `user:ui`) and a deep link opens the live view, which fills with records over the
//! WebSocket; a processor's before/after view names the fields it changed, renamed
//! (removed and added); names are shown as text, never as markup. The page's routing (deep links,
//! reserved API paths, `--api.http.ui.enabled=false`) is checked over plain HTTP. With
//! bearer tokens on, the page asks for one, refuses a wrong one, and then works, its
//! WebSockets included.

use crate::harness::{data_dir, wait_until, Server, DEADLINE};
use crate::http_client::request;
use futures_util::SinkExt as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use tokio_stream::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium with one page, driven over the DevTools protocol; killed on drop.
struct Browser {
    child: Child,
    page: Socket,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let binary = std::env::var("CULVERT_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {binary} (install Debian's chromium: `make deps`): {e}")
            });
        // Chromium says where its DevTools endpoint listens on stderr.
        let stderr = child.stderr.take().unwrap();
        let endpoint = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let endpoint = lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|l| l.split("DevTools listening on ").nth(1).map(str::to_owned))
                .expect("Chromium's DevTools endpoint");
            // Keep draining, so Chromium never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
            endpoint
        })
        .await
        .unwrap();
        let port = endpoint
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let targets = devtools_targets(&port);
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (page, _) = tokio_tungstenite::connect_async(page).await.unwrap();
        let mut browser = Browser {
            child,
            page,
            next_id: 0,
            _profile: profile,
        };
        browser.call("Page.enable", json!({})).await;
        browser
    }

    /// Send a DevTools command and wait for its answer; accepts any JavaScript dialog (the
    /// stop confirmation) that opens meanwhile.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.page.send(Message::text(message)).await.unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = tokio::time::timeout(left, self.page.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} in time"))
                .expect("the DevTools connection is open")
                .unwrap();
            let Ok(text) = message.to_text() else {
                continue;
            };
            let answer: Value = serde_json::from_str(text).unwrap();
            if answer["method"] == "Page.javascriptDialogOpening" {
                self.next_id += 1;
                let accept = json!({"id": self.next_id, "method": "Page.handleJavaScriptDialog",
                                    "params": {"accept": true}});
                self.page
                    .send(Message::text(accept.to_string()))
                    .await
                    .unwrap();
                continue;
            }
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    async fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }

    /// The value of a JavaScript expression in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Wait (to the deadline) until `expression` is true in the page: the page checks it
    /// at once and again at every change of its DOM (a `MutationObserver`), and answers
    /// when it holds or the deadline passes.
    async fn wait_for(&mut self, what: &str, expression: &str) {
        let waited = format!(
            "new Promise((resolve) => {{
               const holds = () => {{ try {{ return Boolean({expression}); }} catch (_) {{ return false; }} }};
               if (holds()) return resolve(true);
               const observer = new MutationObserver(() => {{
                 if (holds()) {{ observer.disconnect(); resolve(true); }}
               }});
               observer.observe(document, {{ subtree: true, childList: true, characterData: true, attributes: true }});
               setTimeout(() => {{ observer.disconnect(); resolve(holds()); }}, {});
             }})",
            // Short of the DevTools call's own deadline, so the page answers first.
            DEADLINE.as_millis() - 5_000
        );
        if self.eval(&waited).await != json!(true) {
            panic!(
                "{what}: not so in time; the page: {}",
                self.eval("document.body.innerText").await
            );
        }
    }

    /// Who the history panel says recorded the (newest) event of type `event`.
    async fn actor_of(&mut self, event: &str) -> Value {
        self.eval(&format!(
            "document.querySelector('#events tr[data-type=\"{event}\"] td:nth-child(4)')\
             .textContent"
        ))
        .await
    }

    /// Select the live view's newest record; the whole record it then shows.
    async fn newest_record(&mut self) -> Value {
        self.eval("document.querySelector('#records tbody tr').click()")
            .await;
        let shown = self
            .eval("document.querySelector('#inspector-record').textContent")
            .await;
        serde_json::from_str(shown.as_str().unwrap()).unwrap()
    }
}

impl Browser {
    /// Open a processor's before/after view and select the newest record whose row matches
    /// the regular expression `row`: what it shows, as (kind, path, text) in the page's
    /// order (a heading per record out, when there are several: ("heading", "", text)).
    async fn diff_of(&mut self, processor: &str, row: &str) -> Vec<(String, String, String)> {
        self.eval(&format!(
            "document.querySelector('button[data-inspect=\"{processor}:diff\"]').click()"
        ))
        .await;
        let changed_row = format!(
            "[...document.querySelectorAll('#diffs tbody tr')]\
             .find((tr) => /{row}/.test(tr.textContent))"
        );
        self.wait_for(
            "a record in and out of the processor",
            &format!(
                "document.querySelector('#diff-in-state')?.textContent === 'live' && \
                 document.querySelector('#diff-out-state')?.textContent === 'live' && \
                 {changed_row}"
            ),
        )
        .await;
        self.eval(&format!("{changed_row}.click()")).await;
        let shown = self
            .eval(
                "[...document.querySelectorAll('#diff-detail li')]\
                 .map((li) => [li.dataset.kind || li.className, li.dataset.path || '', li.textContent])",
            )
            .await;
        serde_json::from_value(shown).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium's target list (`/json/list`), read to its Content-Length: its DevTools HTTP
/// server keeps the connection open whatever the request asks.
fn devtools_targets(address: &str) -> Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(stream, "GET /json/list HTTP/1.1\r\nHost: {address}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "DevTools closed the connection early");
        raw.extend_from_slice(&buffer[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("a Content-Length");
        if raw.len() >= end + 4 + length {
            return serde_json::from_slice(&raw[end + 4..end + 4 + length]).unwrap();
        }
    }
}

fn post(address: &str, path: &str, body: Value) -> Value {
    let reply = request(
        address,
        "POST",
        path,
        &[("content-type", "application/json")],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.json()
}

fn status(address: &str, id: &str) -> String {
    request(address, "GET", &format!("/v1/pipelines/{id}"), &[], None).json()["state"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A generator (`rate` records/s) -> field.set -> log pipeline named `name`: its id, the
/// source's and the processor's.
fn pipeline(address: &str, name: &str, rate: u32) -> (String, String, String) {
    let id = post(address, "/v1/pipelines", json!({"config": {"name": name}}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let source = post(
        address,
        "/v1/connectors",
        json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator", "pipelineId": id,
               "config": {"name": "generator", "settings": {"format.type": "structured",
                          "format.options.id": "int", "rate": rate.to_string()}}}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        address,
        "/v1/connectors",
        json!({"type": "TYPE_DESTINATION", "plugin": "builtin:log", "pipelineId": id,
               "config": {"name": "sink"}}),
    );
    let processor = post(
        address,
        "/v1/processors",
        json!({"plugin": "field.set", "parent": {"type": "TYPE_PIPELINE", "id": id},
               "config": {"settings": {"field": ".Metadata.seen", "value": "yes"}}}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, source, processor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_lists_operates_and_inspects_a_pipeline_in_a_browser() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let http = server.http_address();
    let (id, source, processor) = pipeline(&http, "orders", 50);
    // Two more processors, for their before/after view: one changes a field, one renames it.
    let more = |plugin: &str, settings: Value| {
        post(
            &http,
            "/v1/processors",
            json!({"plugin": plugin, "parent": {"type": "TYPE_PIPELINE", "id": id},
                   "config": {"settings": settings}}),
        )["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let convert = more(
        "field.convert",
        json!({"field": ".Payload.After.id", "type": "string"}),
    );
    let rename = more(
        "field.rename",
        json!({"mapping": ".Payload.After.id:ident"}),
    );
    // A name that is markup: the page must show it as text.
    let hostile = "<img src=x onerror=\"document.title='owned'\">";
    let (other, _, _) = pipeline(&http, hostile, 1);
    post(&http, &format!("/v1/pipelines/{id}/start"), json!({}));

    let mut browser = Browser::start().await;
    browser.open(&format!("http://{http}/")).await;
    let row = format!("document.querySelector('tr[data-id=\"{id}\"]')");
    browser
        .wait_for(
            "the running pipeline listed",
            &format!("{row}?.querySelector('[data-status]')?.dataset.status === 'running'"),
        )
        .await;
    assert_eq!(
        browser
            .eval(&format!("{row}.querySelector('a').textContent"))
            .await,
        "orders"
    );
    let hostile_row = format!("document.querySelector('tr[data-id=\"{other}\"]')");
    browser
        .wait_for("the other pipeline listed", &hostile_row)
        .await;
    assert_eq!(
        browser
            .eval(&format!("{hostile_row}.querySelector('a').textContent"))
            .await,
        hostile
    );
    assert_eq!(
        browser
            .eval("document.querySelectorAll('main img').length")
            .await,
        0
    );
    assert_ne!(browser.eval("document.title").await, "owned");
    browser
        .wait_for(
            "the page ready (health shown)",
            "document.querySelector('#health .status')?.textContent === 'ready'",
        )
        .await;

    // Stop (the confirmation accepted), then start again, from the page.
    browser
        .eval(&format!(
            "{row}.querySelector('[data-action=stop]').click()"
        ))
        .await;
    let stopped = {
        let (http, id) = (http.clone(), id.clone());
        move || status(&http, &id) == "STATUS_STOPPED"
    };
    tokio::task::spawn_blocking(move || wait_until("the pipeline stopped", stopped))
        .await
        .unwrap();
    browser
        .wait_for(
            "the pipeline shown stopped",
            &format!("{row}?.querySelector('[data-action=start]')"),
        )
        .await;
    browser
        .eval(&format!(
            "{row}.querySelector('[data-action=start]').click()"
        ))
        .await;
    browser
        .wait_for(
            "the pipeline shown running again",
            &format!("{row}?.querySelector('[data-status]')?.dataset.status === 'running'"),
        )
        .await;
    assert_eq!(status(&http, &id), "STATUS_RUNNING");

    // The pipeline's page: its flow, and the live view of its source from a deep link.
    browser
        .open(&format!("http://{http}/pipelines/{id}?inspect={source}"))
        .await;
    browser
        .wait_for(
            "the flow: source, processor",
            &format!(
                "document.querySelector('#flow [data-id=\"{source}\"]') && \
                 document.querySelector('#flow [data-id=\"{processor}\"]')"
            ),
        )
        .await;
    // Its history from the event log: the page's stop and start, by the UI.
    for event in [
        "PipelineStopRequested",
        "PipelineStartRequested",
        "PipelineCreated",
    ] {
        browser
            .wait_for(
                event,
                &format!("document.querySelector('#events tr[data-type=\"{event}\"]')"),
            )
            .await;
    }
    assert_eq!(browser.actor_of("PipelineStopRequested").await, "user:ui");
    assert_eq!(
        browser
            .eval(
                "(() => { const seqs = [...document.querySelectorAll('#events tbody tr \
                 td:first-child')].map((td) => Number(td.textContent)); \
                 return seqs.every((seq, i) => i === 0 || seqs[i - 1] > seq); })()"
            )
            .await,
        true,
        "newest first"
    );
    assert!(
        !browser
            .eval("document.querySelector('main').innerText")
            .await
            .as_str()
            .unwrap()
            .contains("null"),
        "nothing missing shows as null"
    );
    browser
        .wait_for(
            "records in the live view",
            "document.querySelector('#inspector-state')?.textContent === 'live' && \
             document.querySelectorAll('#records tbody tr').length >= 3",
        )
        .await;
    assert_eq!(
        browser
            .eval("document.querySelector('#records tbody tr td:nth-child(2)').textContent")
            .await,
        "create"
    );
    // Selecting a record shows all of it.
    let record = browser.newest_record().await;
    assert!(
        record["payload"]["after"]["structuredData"]["id"].is_number(),
        "{record}"
    );
    // The processor's outgoing records carry what it set.
    browser
        .eval(&format!(
            "document.querySelector('button[data-inspect=\"{processor}:out\"]').click()"
        ))
        .await;
    browser
        .wait_for(
            "the processor's records",
            "document.querySelectorAll('#records tbody tr').length >= 1",
        )
        .await;
    let record = browser.newest_record().await;
    assert_eq!(record["metadata"]["seen"], "yes", "{record}");
    assert_eq!(
        browser.eval("location.search").await,
        format!("?inspect={processor}%3Aout")
    );
    // What each processor did to each record, field by field (a processor that changes the
    // payload's shape also moves its schema version: bookkeeping, set apart here).
    let fields = |shown: Vec<(String, String, String)>| {
        let (schema, fields): (Vec<_>, Vec<_>) = shown
            .into_iter()
            .partition(|(_, path, _)| path.starts_with(".Metadata[\"opencdc.payload.schema"));
        assert!(
            schema.iter().all(|(kind, ..)| kind == "changed"),
            "{schema:?}"
        );
        fields
    };
    let changed = fields(browser.diff_of(&convert, "added|changed|removed").await);
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(
        (changed[0].0.as_str(), changed[0].1.as_str()),
        ("changed", ".Payload.After.id")
    );
    assert!(
        changed[0].2.contains("→ \""),
        "a number became a string: {changed:?}"
    );
    assert_eq!(
        browser.eval("location.search").await,
        format!("?inspect={convert}%3Adiff")
    );
    let renamed = fields(browser.diff_of(&rename, "added|changed|removed").await);
    let kinds: Vec<(&str, &str)> = renamed
        .iter()
        .map(|(kind, path, _)| (kind.as_str(), path.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("removed", ".Payload.After.id"),
            ("added", ".Payload.After.ident")
        ],
        "{renamed:?}"
    );

    // A processor that makes several records of one (split: they share its position)
    // shows each of them.
    let items = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(items.path(), r#"{"items":["a","b"]}"#).unwrap();
    let split_pipeline = post(&http, "/v1/pipelines", json!({"config": {"name": "items"}}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (kind, plugin, settings) in [
        (
            "TYPE_SOURCE",
            "builtin:generator",
            json!({"format.type": "file", "format.options.path": items.path(), "rate": "20"}),
        ),
        ("TYPE_DESTINATION", "builtin:log", json!({})),
    ] {
        post(
            &http,
            "/v1/connectors",
            json!({"type": kind, "plugin": plugin, "pipelineId": split_pipeline,
                   "config": {"name": kind, "settings": settings}}),
        );
    }
    let processor_of = |plugin: &str, field: &str| {
        post(
            &http,
            "/v1/processors",
            json!({"plugin": plugin, "parent": {"type": "TYPE_PIPELINE", "id": split_pipeline},
                   "config": {"settings": {"field": field}}}),
        )["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    processor_of("json.decode", ".Payload.After");
    let split = processor_of("split", ".Payload.After.items");
    post(
        &http,
        &format!("/v1/pipelines/{split_pipeline}/start"),
        json!({}),
    );
    browser
        .open(&format!("http://{http}/pipelines/{split_pipeline}"))
        .await;
    browser
        .wait_for(
            "the split processor shown",
            &format!("document.querySelector('button[data-inspect=\"{split}:diff\"]')"),
        )
        .await;
    let made = fields(browser.diff_of(&split, "2 records out").await);
    let kinds: Vec<(&str, &str)> = made
        .iter()
        .map(|(kind, path, _)| (kind.as_str(), path.as_str()))
        .collect();
    let each = [
        ("changed", ".Payload.After.items"),
        ("added", ".Metadata[\"split.index\"]"),
    ];
    assert_eq!(
        kinds,
        [&[("heading", "")][..], &each, &[("heading", "")], &each].concat(),
        "{made:?}"
    );
    assert!(made[1].2.contains(r#"["a","b"] → "a""#), "{made:?}");
    assert!(made[4].2.contains(r#"["a","b"] → "b""#), "{made:?}");
}

#[test]
fn the_ui_answers_page_paths_and_leaves_the_api_its_own() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let http = server.http_address();
    for page in ["/", "/pipelines/anything", "//pipelines"] {
        let reply = request(&http, "GET", page, &[], None);
        assert_eq!(reply.status, 200, "{page}");
        assert!(reply.text().contains("/assets/app.js"), "{page}");
        let policy = reply.header("content-security-policy").unwrap();
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains(&format!("ws://{http}")), "{policy}");
    }
    let script = request(&http, "GET", "/assets/app.js", &[], None);
    assert_eq!(script.status, 200);
    assert!(script
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    // The API's own paths, a file the page lacks and other methods are the API's.
    for (path, status) in [
        ("/v1/nope", 404),
        ("//v1/pipelines/nope", 404),
        ("/assets/missing.js", 404),
        ("/info", 200),
        ("/healthz", 200),
    ] {
        let reply = request(&http, "GET", path, &[], None);
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        assert!(reply.json().is_object(), "{path}");
    }
    let reply = request(&http, "POST", "/", &[], Some(b"{}"));
    assert_ne!(reply.status, 200);
    assert!(!reply.text().contains("app.js"));

    // Turned off, `/` is the API's 404.
    let (_dir, data) = data_dir();
    let mut off = Server::start(&data, &["--api.http.ui.enabled=false"]);
    let http = off.http_address();
    let reply = request(&http, "GET", "/", &[], None);
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["code"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_the_ui_asks_for_one_and_then_works() {
    let (dir, data) = data_dir();
    let tokens = dir.path().join("tokens");
    let (code, stdout, stderr) = crate::harness::culvert(&[
        "tokens",
        "create",
        "browser",
        "--tokens-file",
        tokens.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim().to_owned();
    let mut server = Server::start(&data, &["--api.auth.tokens-file", tokens.to_str().unwrap()]);
    let http = server.http_address();
    let authorization = format!("Bearer {token}");
    let call = |path: &str| {
        let reply = request(
            &http,
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("authorization", &authorization),
            ],
            Some(b"{\"config\": {\"name\": \"guarded\"}}"),
        );
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        reply.json()
    };
    let id = call("/v1/pipelines")["id"].as_str().unwrap().to_owned();

    let mut browser = Browser::start().await;
    browser.open(&format!("http://{http}/")).await;
    let sign_in = |token: &str| {
        format!(
            "document.querySelector('#token').value = {}; \
             document.querySelector('#sign-in button').click()",
            json!(token)
        )
    };
    // The page loads without a token and asks for one; a wrong one is refused.
    browser
        .wait_for("the sign-in form", "document.querySelector('#sign-in')")
        .await;
    browser.eval(&sign_in("cvt_wrong")).await;
    browser
        .wait_for(
            "the refusal",
            "document.querySelector('#sign-in-refused')?.textContent.includes('Refused')",
        )
        .await;
    // With the right one the page lists the pipeline, and its live views (WebSockets, the
    // token as a subprotocol) work.
    browser.eval(&sign_in(&token)).await;
    let row = format!("document.querySelector('tr[data-id=\"{id}\"]')");
    browser.wait_for("the pipeline listed", &row).await;
    browser.open(&format!("http://{http}/pipelines/{id}")).await;
    browser
        .wait_for(
            "the history, over a WebSocket",
            "document.querySelector('#history-state')?.textContent === 'live' && \
             document.querySelector('#events tr[data-type=\"PipelineCreated\"]')",
        )
        .await;
    assert_eq!(browser.actor_of("PipelineCreated").await, "token:browser");
    // Signing out forgets the token.
    browser
        .eval("document.querySelector('#sign-out').click()")
        .await;
    browser
        .wait_for(
            "the sign-in form again",
            "document.querySelector('#sign-in')",
        )
        .await;
}
