//! Hostile standalone connector plugins (issue 24): the fixture connector
//! (`tests/fixtures/connector`, its source's `misbehave` setting) hangs in Read deaf to
//! its context, crashes mid-stream, floods stderr while it sends records, or sends
//! malformed records; a separate tiny program (`tests/fixtures/garbage-plugin`) completes
//! go-plugin's handshake and then answers garbage on its socket, and a script prints a
//! handshake line of binary junk. For each, on a real server: the server stays up and its
//! API answers, the pipeline ends as the host promises (degraded with an error naming the
//! plugin and the problem, or forced to a stop within a bound), a bystander pipeline
//! (built-in generator -> file) on the same server keeps producing, and a start after the
//! fault (the fixture misbehaves once, guarded by a marker file) delivers every record:
//! none lost, duplicates counted.

use crate::harness::{data_dir, wait_until, wait_until_within, LineCounter, Server};
use crate::http_client::call_any as call;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Build a Go program in `tests/fixtures/<dir>` (Go caches make a rebuild take seconds).
fn go_build(dir: &str, name: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("go-fixtures/{name}"));
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(dir),
        )
        .env("GONOSUMDB", "github.com/conduitio")
        .status()
        .expect("`go` on the PATH (make deps installs it) to build the fixtures");
    assert!(status.success(), "building {dir} failed");
    out
}

/// A server whose connectors directory holds the fixture connector; failed pipelines are
/// not restarted by the server (the tests restart them).
fn server_with_fixture(dir: &Path, extra: &[&str]) -> (Server, String) {
    let connectors = dir.join("connectors");
    std::fs::create_dir_all(&connectors).unwrap();
    std::fs::copy(
        go_build("connector", "fixture-connector"),
        connectors.join("fixture"),
    )
    .unwrap();
    let mut args = vec![
        "--connectors.path",
        connectors.to_str().unwrap(),
        "--pipelines.error-recovery.max-retries",
        "0",
    ];
    args.extend_from_slice(extra);
    let mut server = Server::start(&dir.join("data"), &args);
    let address = server.http_address();
    (server, address)
}

/// Create a pipeline with one source and one destination and start it; its id.
fn start_pipeline(address: &str, name: &str, source: Value, destination: Value) -> String {
    let (status, p) = call(
        address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": name}})),
    );
    assert_eq!(status, 200, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    for (kind, c) in [("TYPE_SOURCE", source), ("TYPE_DESTINATION", destination)] {
        let (status, created) = call(
            address,
            "POST",
            "/v1/connectors",
            Some(
                json!({"type": kind, "plugin": c["plugin"], "pipelineId": id,
                        "config": {"name": kind, "settings": c["settings"]}}),
            ),
        );
        assert_eq!(status, 200, "{created}");
    }
    start(address, &id);
    id
}

/// Start a pipeline. A plugin that fails at once may fail the start itself (the answer is
/// then `pipeline.start_failed` and the pipeline is degraded, as a run that failed).
fn start(address: &str, id: &str) {
    let (status, started) = call(address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    let failed_at_start =
        status == 500 && started["details"][0]["reason"] == "pipeline.start_failed";
    assert!(status == 200 || failed_at_start, "{status}: {started}");
}

/// Ask for a graceful stop (no force); the stop itself goes on in the background.
fn ask_to_stop(address: &str, id: &str) {
    let (status, stopped) = call(address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    assert_eq!(status, 200, "{stopped}");
}

fn state(address: &str, id: &str) -> Value {
    let (status, p) = call(address, "GET", &format!("/v1/pipelines/{id}"), None);
    assert_eq!(status, 200, "the API answers: {p}");
    p["state"].clone()
}

/// Wait for the pipeline to be degraded; its error.
fn degraded(address: &str, id: &str) -> String {
    wait_until("the pipeline degraded", || {
        state(address, id)["status"] == "STATUS_DEGRADED"
    });
    state(address, id)["error"].as_str().unwrap().to_owned()
}

/// A built-in generator -> file pipeline beside the hostile one; its output file.
fn bystander(address: &str, dir: &Path) -> PathBuf {
    let out = dir.join("bystander.jsonl");
    start_pipeline(
        address,
        "bystander",
        json!({"plugin": "builtin:generator", "settings": {"format.type": "raw",
               "format.options.id": "int", "recordCount": "100000000", "rate": "500"}}),
        json!({"plugin": "builtin:file", "settings": {"path": out.to_str().unwrap()}}),
    );
    out
}

/// Check the bystander still produces: more lines than `counter` saw last time.
fn bystander_produces(counter: &mut LineCounter, out: &Path) {
    let before = counter.count(out);
    wait_until("the bystander pipeline producing", || {
        counter.count(out) >= before + 50
    });
}

/// The fixture source's record numbers in a file destination's output: (distinct,
/// duplicates). A huge position `<n>#ppp...` counts as `n`.
fn tally(out: &Path) -> (HashMap<u64, usize>, usize) {
    let mut seen = HashMap::new();
    let mut duplicates = 0;
    for record in crate::harness::written_records(out) {
        let text = String::from_utf8_lossy(&record.position.0).into_owned();
        let n: u64 = text.split('#').next().unwrap().parse().expect("a counter");
        let count = seen.entry(n).or_insert(0);
        *count += 1;
        if *count > 1 {
            duplicates += 1;
        }
    }
    (seen, duplicates)
}

/// Every record `0..count` arrived; returns the duplicates.
fn all_arrived(out: &Path, count: u64) -> usize {
    wait_until(&format!("all {count} records"), || {
        tally(out).0.len() as u64 >= count
    });
    let (seen, duplicates) = tally(out);
    let lost: Vec<u64> = (0..count).filter(|n| !seen.contains_key(n)).collect();
    assert!(lost.is_empty(), "records lost: {lost:?}");
    assert_eq!(seen.len() as u64, count, "no record beyond {count}");
    duplicates
}

/// The server's resident set size, in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Processes whose parent is `parent` and whose command name is `name` (not zombies).
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let mut rest = stat[close + 2..].split(' ');
        let state = rest.next().unwrap_or("");
        let ppid: u32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent && &stat[open + 1..close] == name && state != "Z" {
            found.push(pid);
        }
    }
    found
}

/// No panic anywhere in what the server logged.
fn no_panic(server: &Server) {
    assert!(
        !server.seen.iter().any(|l| l.contains("panicked")),
        "the server panicked"
    );
}

/// Shared set-up: a server, a bystander, and the hostile pipeline's source settings.
struct Scene {
    dir: tempfile::TempDir,
    server: Server,
    address: String,
    bystander: PathBuf,
    counter: LineCounter,
}

impl Scene {
    fn new(extra: &[&str]) -> Scene {
        let (dir, _) = data_dir();
        let (server, address) = server_with_fixture(dir.path(), extra);
        let bystander = bystander(&address, dir.path());
        let mut counter = LineCounter::default();
        bystander_produces(&mut counter, &bystander);
        Scene {
            dir,
            server,
            address,
            bystander,
            counter,
        }
    }

    /// A fixture source misbehaving as `how` (once: a marker file) -> file destination.
    fn hostile(&self, how: &str, count: u64, after: u64) -> (String, PathBuf) {
        let out = self.dir.path().join(format!("{how}.jsonl"));
        let marker = self.dir.path().join(format!("{how}.marker"));
        let id = start_pipeline(
            &self.address,
            how,
            json!({"plugin": "standalone:fixture", "settings": {
                "recordCount": count.to_string(), "misbehave": how,
                "misbehaveAfter": after.to_string(), "marker": marker.to_str().unwrap()}}),
            json!({"plugin": "builtin:file", "settings": {"path": out.to_str().unwrap()}}),
        );
        (id, out)
    }

    /// The server answers and the bystander produces.
    fn unharmed(&mut self) {
        let (status, _) = call(&self.address, "GET", "/v1/pipelines", None);
        assert_eq!(status, 200);
        bystander_produces(&mut self.counter, &self.bystander);
    }

    /// Stop the server (it exits cleanly, having never panicked); every line it logged.
    fn finish(mut self) -> Vec<String> {
        self.server.terminate();
        assert!(self.server.wait().success(), "the server exits cleanly");
        no_panic(&self.server);
        std::mem::take(&mut self.server.seen)
    }
}

/// A standalone destination whose process dies while it has nothing to write is seen at
/// once: the pipeline fails (degraded here: no retries), it does not stay "running" with no
/// plugin behind it until the next record comes.
#[test]
fn a_destination_plugin_killed_while_idle_fails_its_pipeline_at_once() {
    let (dir, _) = data_dir();
    let (mut server, address) = server_with_fixture(dir.path(), &[]);
    let out = dir.path().join("idle.jsonl");
    let id = start_pipeline(
        &address,
        "idle",
        json!({"plugin": "builtin:generator", "settings": {"format.type": "raw",
            "format.options.id": "int", "recordCount": "100"}}),
        json!({"plugin": "standalone:fixture", "settings": {"path": out.to_str().unwrap()}}),
    );
    let mut counter = LineCounter::default();
    wait_until("every record written", || counter.count(&out) >= 100);
    let plugins = children_named(server.pid(), "fixture");
    assert_eq!(plugins.len(), 1, "one destination plugin: {plugins:?}");
    let status = Command::new("kill")
        .args(["-KILL", &plugins[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let error = degraded(&address, &id);
    assert!(
        error.contains("ended while the destination was idle") && error.contains("SIGKILL"),
        "{error}"
    );
    server.terminate();
    assert!(server.wait().success(), "the server exits cleanly");
    no_panic(&server);
}

#[test]
fn hostile_plugin_that_crashes_degrades_its_pipeline_and_a_restart_recovers() {
    let began = Instant::now();
    let mut scene = Scene::new(&[]);
    let (id, out) = scene.hostile("crash", 3_000, 1_000);
    let error = degraded(&scene.address, &id);
    assert!(error.contains("fixture"), "names the plugin: {error}");
    assert!(
        error.contains("exit status: 3"),
        "says how it ended: {error}"
    );
    assert!(
        error.contains("crashing on purpose"),
        "carries its last stderr lines: {error}"
    );
    wait_until("the crashed plugin reaped", || {
        children_named(scene.server.pid(), "fixture").is_empty()
    });
    scene.unharmed();
    // A start after the crash resumes from the last position: every record arrives.
    start(&scene.address, &id);
    let duplicates = all_arrived(&out, 3_000);
    assert_eq!(state(&scene.address, &id)["status"], "STATUS_RUNNING");
    scene.unharmed();
    let logged = scene.finish();
    // What the plugin wrote to os.Stderr once it served (go-plugin's GRPCStdio) is logged.
    assert!(
        logged
            .iter()
            .any(|l| l.contains("fixture source opened: a line on os.Stderr")),
        "the plugin's os.Stderr line is not in the server's log"
    );
    println!(
        "hostile crash: degraded with {error:?}; restart delivered 3000/3000, {duplicates} \
         duplicate(s); {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

#[test]
fn hostile_plugin_that_hangs_is_stopped_with_force_and_a_restart_recovers() {
    let began = Instant::now();
    let mut scene = Scene::new(&[]);
    let (id, out) = scene.hostile("hang", 200, 50);
    wait_until("the 50 records before the hang", || {
        tally(&out).0.len() >= 50
    });
    // A source may be idle for ever (the host reads with an idle timeout and hands the
    // engine empty batches; it has no read deadline): the pipeline keeps running, and
    // the server and its other pipelines are unharmed.
    scene.unharmed();
    assert_eq!(state(&scene.address, &id)["status"], "STATUS_RUNNING");
    assert_eq!(tally(&out).0.len(), 50, "nothing after the hang");
    let plugins = children_named(scene.server.pid(), "fixture");
    assert_eq!(plugins.len(), 1, "one plugin process runs the source");
    // Stopping it with force ends it at once and takes the hung process down.
    let asked = Instant::now();
    let (status, stopped) = call(
        &scene.address,
        "POST",
        &format!("/v1/pipelines/{id}/stop"),
        Some(json!({"force": true})),
    );
    assert_eq!(status, 200, "{stopped}");
    wait_until_within("the forced stop", Duration::from_secs(10), || {
        state(&scene.address, &id)["status"] == "STATUS_STOPPED"
    });
    let stop_took = asked.elapsed();
    wait_until_within(
        "the hung plugin process gone",
        Duration::from_secs(10),
        || children_named(scene.server.pid(), "fixture").is_empty(),
    );
    let gone_after = asked.elapsed();
    scene.unharmed();
    // Started again (it misbehaves once): the rest arrive, none lost.
    start(&scene.address, &id);
    let duplicates = all_arrived(&out, 200);
    scene.unharmed();
    scene.finish();
    println!(
        "hostile hang: forced stop took {:.3} s, plugin process gone after {:.3} s; restart \
         delivered 200/200, {duplicates} duplicate(s); {:.1} s",
        stop_took.as_secs_f64(),
        gone_after.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}

/// A graceful stop (no force) of a pipeline whose standalone source hangs in Read,
/// ignoring its context: the host gives Stop and Teardown 30 s, then kills the process, so
/// the stop ends on its own instead of hanging the pipeline; nothing is lost after it.
#[test]
fn hostile_plugin_that_hangs_is_killed_when_a_graceful_stop_times_out() {
    let mut scene = Scene::new(&[]);
    let (id, out) = scene.hostile("hang", 120, 40);
    wait_until("the 40 records before the hang", || {
        tally(&out).0.len() >= 40
    });
    let asked = Instant::now();
    ask_to_stop(&scene.address, &id);
    // 30 s for Stop and Teardown, then the kill: well within a minute and a half.
    let mut ended = Value::Null;
    wait_until_within("the graceful stop to end", Duration::from_secs(90), || {
        ended = state(&scene.address, &id);
        ended["status"] != "STATUS_RUNNING"
    });
    let stop_took = asked.elapsed();
    // The stop could not drain: the pipeline says so (degraded, with the reason), rather
    // than "stopped" as if it had.
    assert_eq!(ended["status"], "STATUS_DEGRADED", "{ended}");
    wait_until_within(
        "the hung plugin process gone",
        Duration::from_secs(10),
        || children_named(scene.server.pid(), "fixture").is_empty(),
    );
    scene.unharmed();
    start(&scene.address, &id);
    let duplicates = all_arrived(&out, 120);
    scene.unharmed();
    let seen = scene.finish();
    assert!(
        seen.iter()
            .any(|l| l.contains("did not finish within 30 s")),
        "the kill is logged with its reason"
    );
    println!(
        "hostile hang, graceful stop: ended {} after {:.1} s; restart delivered 120/120, \
         {duplicates} duplicate(s)",
        ended["status"],
        stop_took.as_secs_f64()
    );
}

#[test]
fn hostile_plugin_that_floods_stderr_still_delivers_every_record_with_bounded_memory() {
    const RECORDS: u64 = 20_000;
    let began = Instant::now();
    let mut scene = Scene::new(&[]);
    let before = rss_kib(scene.server.pid());
    let (id, out) = scene.hostile("flood", RECORDS, 0);
    // Sample the server's memory while the plugin floods and records flow.
    let mut peak = before;
    let mut samples = 0;
    wait_until_within(
        "every record through the flood",
        Duration::from_secs(180),
        || {
            peak = peak.max(rss_kib(scene.server.pid()));
            samples += 1;
            let arrived = tally(&out).0.len() as u64;
            if samples % 500 == 0 {
                println!("flood: {arrived} records, RSS peak {peak} KiB");
            }
            arrived >= RECORDS
        },
    );
    // Keep flooding a while after the records are in (the 64 MiB line, the rest).
    // A measurement window, not a wait for something to happen: RSS is sampled while the
    // plugin floods.
    let flood_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < flood_until {
        peak = peak.max(rss_kib(scene.server.pid()));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (seen, duplicates) = tally(&out);
    assert_eq!(seen.len() as u64, RECORDS);
    assert_eq!(duplicates, 0, "every record exactly once");
    assert_eq!(state(&scene.address, &id)["status"], "STATUS_RUNNING");
    scene.unharmed();
    // The flood reached the logs rate-limited, with a count of what was held back.
    scene.server.wait_for_line("line(s) not logged");
    let growth_mib = (peak.saturating_sub(before)) as f64 / 1024.0;
    assert!(
        growth_mib < 50.0,
        "the server's memory grew by {growth_mib:.1} MiB ({before} KiB -> peak {peak} KiB)"
    );
    ask_to_stop(&scene.address, &id);
    wait_until("the flooding pipeline stopped", || {
        state(&scene.address, &id)["status"] == "STATUS_STOPPED"
    });
    let logged = scene.finish();
    let relayed = logged
        .iter()
        .filter(|l| l.contains("flood: a log line"))
        .count();
    let held_back: u64 = logged
        .iter()
        .filter(|l| l.contains("line(s) not logged"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["fields"]["held_back"].as_u64())
        .sum();
    assert!(held_back > 0);
    println!(
        "hostile flood: {RECORDS}/{RECORDS} records exactly once; server RSS {before} KiB -> \
         peak {peak} KiB (+{growth_mib:.1} MiB, {samples} samples); {relayed} flood lines \
         logged, {held_back} held back by the rate limit; {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

#[test]
fn hostile_plugin_garbage_is_refused_with_a_clear_error_or_handled() {
    let began = Instant::now();
    let (dir, _) = data_dir();
    // Discovery of plugins that speak garbage: skipped with a warning, the server runs.
    let connectors = dir.path().join("connectors");
    std::fs::create_dir_all(&connectors).unwrap();
    std::fs::copy(
        go_build("garbage-plugin", "garbage-plugin"),
        connectors.join("garbage-socket"),
    )
    .unwrap();
    let junk = connectors.join("junk-handshake");
    std::fs::write(
        &junk,
        "#!/bin/sh\nprintf '\\377\\376|2|unix|\\001\\002|grpc|\\n'\nsleep 30\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut scene = Scene::new(&[]);
    // The scene's server has its own connectors directory; start a second server on this
    // one for discovery.
    let mut discovery = Server::start(
        &dir.path().join("data"),
        &["--connectors.path", connectors.to_str().unwrap()],
    );
    let discovery_address = discovery.http_address();
    let skipped: Vec<String> = discovery
        .seen
        .iter()
        .filter(|l| l.contains("standalone connector plugin skipped"))
        .cloned()
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:#?}");
    let socket = skipped
        .iter()
        .find(|l| l.contains("garbage-socket"))
        .expect("the garbage socket plugin skipped");
    let handshake = skipped
        .iter()
        .find(|l| l.contains("junk-handshake"))
        .expect("the junk handshake plugin skipped");
    assert!(handshake.contains("bad handshake"), "{handshake}");
    let (status, _) = call(&discovery_address, "GET", "/v1/pipelines", None);
    assert_eq!(status, 200);
    discovery.terminate();
    assert!(discovery.wait().success());
    no_panic(&discovery);

    // Malformed records from a running plugin.
    let mut outcomes = Vec::new();
    for how in ["garbage", "hugeposition", "badutf8"] {
        let (id, out) = scene.hostile(how, 100, 20);
        // Degraded with an error, or handled (every record delivered).
        let outcome =
            crate::harness::poll_until(crate::harness::DEADLINE, Duration::from_millis(50), || {
                let s = state(&scene.address, &id);
                if s["status"] == "STATUS_DEGRADED" {
                    return Ok(format!("degraded: {}", s["error"].as_str().unwrap()));
                }
                let arrived = tally(&out).0.len();
                if arrived >= 100 {
                    return Ok("handled: 100/100 delivered".to_owned());
                }
                Err(format!("{how}: {arrived} records, status {}", s["status"]))
            });
        if let Some(error) = outcome.strip_prefix("degraded: ") {
            assert!(
                error.contains("fixture"),
                "{how}: names the plugin: {error}"
            );
            assert!(error.len() < 64 * 1024, "{how}: a readable error");
        }
        scene.unharmed();
        // Started again after a degradation (it misbehaves once), everything arrives.
        if outcome.starts_with("degraded") {
            start(&scene.address, &id);
        }
        let duplicates = all_arrived(&out, 100);
        scene.unharmed();
        outcomes.push(format!(
            "{how}: {} ; then 100/100 delivered, {duplicates} duplicate(s)",
            &outcome[..outcome.len().min(400)]
        ));
    }
    scene.finish();
    let operation = &outcomes[0];
    assert!(
        operation.contains("degraded") && operation.contains("operation 99"),
        "{operation}"
    );
    println!(
        "hostile garbage: socket plugin skipped with {socket:?}; junk handshake skipped with \
         {handshake:?}; {outcomes:#?}; {:.1} s",
        began.elapsed().as_secs_f64()
    );
}
