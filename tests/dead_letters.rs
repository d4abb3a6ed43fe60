//! Dead letters kept by the server (`culvert.api.v1.DeadLetterService`, its HTTP routes and
//! `culvert dlq ls|show|reinject`), on a real server with a file -> file pipeline whose
//! processor fails every tenth line: the letters are listed with their errors and where
//! they failed; re-injected (some while the pipeline is stopped, the rest while it runs,
//! after the user removed the failing processor) each reaches the destination exactly once,
//! the source's position does not move, the letters go, and each re-injection is in the
//! audit with its actor. Bad requests name their field and change nothing.

use crate::harness::{culvert, data_dir, decode_base64, wait_until, written_records, Server};
use crate::http_client::{call, call_any, file_to_file_pipeline, number};
use culvert_domain::Data;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

const LINES: usize = 2_000;
/// Lines whose number ends in 5 fail: one in ten.
const FAILED: usize = LINES / 10;

fn line(n: usize) -> String {
    format!("line-{n:06}")
}

fn lines_in(out: &Path) -> usize {
    std::fs::read_to_string(out)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// How many times each line reached the destination.
fn delivered(out: &Path) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for record in written_records(out) {
        let Some(Data::Raw(bytes)) = record.payload.after else {
            panic!("a raw payload: {record:?}");
        };
        *seen.entry(String::from_utf8(bytes).unwrap()).or_default() += 1;
    }
    seen
}

/// Every letter of the pipeline (one page of up to 1,000).
fn letters(address: &str, pipeline: &str) -> Vec<Value> {
    let page = call(
        address,
        "GET",
        &format!("/v1/pipelines/{pipeline}/dead-letters?limit=1000"),
        None,
    );
    page["letters"].as_array().cloned().unwrap_or_default()
}

fn pipeline_status(address: &str, pipeline: &str) -> Value {
    call(address, "GET", &format!("/v1/pipelines/{pipeline}"), None)["state"]["status"].clone()
}

/// A server running nothing yet, with a stopped file -> file pipeline of `lines` lines
/// whose pipeline processor fails every line whose number ends in 5, and a DLQ that takes
/// every failure (no window).
struct Setup {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    server: Server,
    grpc: String,
    address: String,
    pipeline: String,
    source: String,
    breaker: String,
    out: std::path::PathBuf,
}

fn setup(lines: usize) -> Setup {
    let (dir, data) = data_dir();
    let input = dir.path().join("in.txt");
    let out = dir.path().join("out.jsonl");
    let text: String = (1..=lines).map(|n| format!("{}\n", line(n))).collect();
    std::fs::write(&input, text).unwrap();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let address = server.http_address();
    let (pipeline, source, _) = file_to_file_pipeline(&address, "letters", &input, &out);
    // The file source's position is `<byte offset>:<line>`: lines ending in 5 fail.
    let breaker = call(
        &address,
        "POST",
        "/v1/processors",
        Some(
            json!({"plugin": "error", "parent": {"type": "TYPE_PIPELINE", "id": pipeline},
                    "config": {"settings": {"message": "poison line {{ print .Position }}"}},
                    "condition": "{{ hasSuffix \"5\" (print .Position) }}"}),
        ),
    );
    let breaker = breaker["id"].as_str().unwrap().to_owned();
    // No window: every failed record goes to the DLQ (and is kept by the server).
    call(
        &address,
        "PUT",
        &format!("/v1/pipelines/{pipeline}/dead-letter-queue"),
        Some(json!({"plugin": "builtin:log", "windowSize": "0", "windowNackThreshold": 0})),
    );
    Setup {
        _dir: dir,
        data,
        server,
        grpc,
        address,
        pipeline,
        source,
        breaker,
        out,
    }
}

/// Run the pipeline until every good line is written and every bad one kept, stop it and
/// remove the failing processor (the user mends the cause).
fn fail_then_mend(s: &Setup, lines: usize) {
    let (address, pipeline) = (&s.address, &s.pipeline);
    call(
        address,
        "POST",
        &format!("/v1/pipelines/{pipeline}/start"),
        None,
    );
    wait_until("the good lines written and the bad kept", || {
        lines_in(&s.out) == lines - lines / 10 && letter_count(address, pipeline) == lines / 10
    });
    stop_and_mend(s);
}

fn stop_and_mend(s: &Setup) {
    let (address, pipeline) = (&s.address, &s.pipeline);
    call(
        address,
        "POST",
        &format!("/v1/pipelines/{pipeline}/stop"),
        None,
    );
    wait_until("the pipeline stopped", || {
        pipeline_status(address, pipeline) == "STATUS_STOPPED"
    });
    call(
        address,
        "DELETE",
        &format!("/v1/processors/{}", s.breaker),
        None,
    );
}

/// How many letters the pipeline has (paging through them).
fn letter_count(address: &str, pipeline: &str) -> usize {
    let mut count = 0;
    let mut after = 0;
    loop {
        let page = call(
            address,
            "GET",
            &format!("/v1/pipelines/{pipeline}/dead-letters?limit=1000&after={after}"),
            None,
        );
        count += page["letters"].as_array().map_or(0, Vec::len);
        after = number(&page["nextAfter"]);
        if after == 0 {
            return count;
        }
    }
}

#[test]
fn dead_letters_are_listed_with_their_errors_and_reinjected_reach_the_destination_once() {
    let s = setup(LINES);
    let (grpc, address, pipeline, source, breaker, out) = (
        &s.grpc,
        &s.address,
        &s.pipeline,
        &s.source,
        &s.breaker,
        &s.out,
    );
    let (address, pipeline) = (address.as_str(), pipeline.as_str());
    // First run: every good line through, every tenth kept as a letter.
    call(
        address,
        "POST",
        &format!("/v1/pipelines/{pipeline}/start"),
        None,
    );
    wait_until("the good lines written and the bad kept", || {
        lines_in(out) == LINES - FAILED && letters(address, pipeline).len() == FAILED
    });
    let kept = letters(address, pipeline);
    let first = &kept[0];
    assert_eq!(number(&first["seq"]), 1, "{first}");
    assert_eq!(first["nodeId"], format!("processor {breaker}"), "{first}");
    assert_eq!(first["stage"], "pipeline", "{first}");
    assert_eq!(first["processorId"], breaker.as_str(), "{first}");
    assert_eq!(first["queued"], false, "{first}");
    let position = first["positionText"].as_str().unwrap().to_owned();
    assert!(position.ends_with(":5"), "{first}");
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains(&format!("poison line {position}")),
        "{first}"
    );
    assert_eq!(
        decode_base64(
            first["record"]["payload"]["after"]["rawData"]
                .as_str()
                .unwrap()
        ),
        line(5)
    );
    let one = call(
        address,
        "GET",
        &format!("/v1/pipelines/{pipeline}/dead-letters/1"),
        None,
    );
    assert_eq!(&one, first);
    // Pages: the first 100 by default, then from where it says.
    let page = call(
        address,
        "GET",
        &format!("/v1/pipelines/{pipeline}/dead-letters"),
        None,
    );
    assert_eq!(page["letters"].as_array().unwrap().len(), 100);
    assert_eq!(number(&page["nextAfter"]), 100);
    let (code, stdout, stderr) = culvert(&["dlq", "ls", pipeline, "--grpc.address", grpc]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("SEQ"), "{stdout}");
    assert!(
        stdout.contains("poison line") && stdout.contains("--after 100"),
        "{stdout}"
    );
    let (code, stdout, stderr) = culvert(&["dlq", "show", pipeline, "7", "--grpc.address", grpc]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("processor {breaker} (pipeline)")),
        "{stdout}"
    );

    // Bad requests name their field or say what is missing, and change nothing.
    let reinject = format!("/v1/pipelines/{pipeline}/dead-letters/reinject");
    for (body, code, says) in [
        (json!({}), 400, "seqs"),
        (json!({"seqs": ["1"], "all": true}), 400, "seqs"),
        (json!({"seqs": ["1", "99999"]}), 404, "99999"),
    ] {
        let (status, reply) = call_any(address, "POST", &reinject, Some(body.clone()));
        assert_eq!(status, code, "{body}: {reply}");
        assert!(
            reply["message"].as_str().unwrap().contains(says),
            "{body}: {reply}"
        );
    }
    let (status, reply) = call_any(
        address,
        "GET",
        &format!("/v1/pipelines/{pipeline}/dead-letters/0"),
        None,
    );
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = call_any(address, "GET", "/v1/pipelines/nope/dead-letters", None);
    assert_eq!(status, 404, "{reply}");
    assert!(
        letters(address, pipeline)
            .iter()
            .all(|l| l["queued"] == false),
        "nothing was queued"
    );

    // The user stops the pipeline and removes the failing processor, re-injects the first
    // half while it is stopped, and starts it: those arrive, once.
    stop_and_mend(&s);
    let half: Vec<String> = (1..=FAILED / 2).map(|n| n.to_string()).collect();
    let queued = call(address, "POST", &reinject, Some(json!({"seqs": half})));
    assert_eq!(
        queued["queued"].as_array().unwrap().len(),
        FAILED / 2,
        "{queued}"
    );
    let listed = letters(address, pipeline);
    assert_eq!(
        listed.iter().filter(|l| l["queued"] == true).count(),
        FAILED / 2
    );
    call(
        address,
        "POST",
        &format!("/v1/pipelines/{pipeline}/start"),
        None,
    );
    wait_until("the first half re-injected and delivered", || {
        lines_in(out) == LINES - FAILED / 2 && letters(address, pipeline).len() == FAILED / 2
    });

    // The rest while it runs, with the CLI.
    let (code, stdout, stderr) =
        culvert(&["dlq", "reinject", pipeline, "--all", "--grpc.address", grpc]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("Queued {} letter(s)", FAILED / 2)),
        "{stdout}"
    );
    wait_until("every letter re-injected and delivered", || {
        lines_in(out) == LINES && letters(address, pipeline).is_empty()
    });
    // Nothing left to re-inject.
    let (status, reply) = call_any(address, "POST", &reinject, Some(json!({"all": true})));
    assert_eq!(status, 400, "{reply}");

    // Every line exactly once; the source did not read anything again.
    let seen = delivered(out);
    assert_eq!(seen.len(), LINES, "every line arrived");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let position = call(
        address,
        "GET",
        &format!("/v1/connectors/{source}/position"),
        None,
    );
    assert!(
        position["positionText"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{LINES}")),
        "{position}"
    );

    // The audit: two re-injections, each with its actor and letters.
    let events = call(
        address,
        "GET",
        &format!("/v1/events?entity_id={pipeline}&type=DeadLettersReinjected"),
        None,
    );
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0]["data"]["letters"].as_array().unwrap().len(),
        FAILED / 2
    );
    assert_eq!(
        events[1]["data"]["letters"].as_array().unwrap().len(),
        FAILED / 2
    );
    assert!(events
        .iter()
        .all(|e| !e["actor"].as_str().unwrap().is_empty()));
}

/// Re-injection across SIGKILLs: 5,000 letters queued, the server killed three times while
/// they go in; every line arrives, none twice beyond what was in flight at a kill, and the
/// letters all go.
#[test]
fn reinjected_letters_lose_nothing_across_sigkills() {
    const MANY: usize = 50_000;
    const KILLS: usize = 3;
    let mut s = setup(MANY);
    fail_then_mend(&s, MANY);
    let reinject = format!("/v1/pipelines/{}/dead-letters/reinject", s.pipeline);
    let queued = call(&s.address, "POST", &reinject, Some(json!({"all": true})));
    assert_eq!(queued["queued"].as_array().unwrap().len(), MANY / 10);
    call(
        &s.address,
        "POST",
        &format!("/v1/pipelines/{}/start", s.pipeline),
        None,
    );
    // Kills that landed while letters were still queued (the rest hit an idle pipeline).
    let mut mid_flight = 0;
    for kill in 1..=KILLS {
        // Kill once a share of the letters arrived.
        let target = MANY - MANY / 10 + kill * MANY / 10 / (KILLS + 1);
        wait_until("some letters re-injected", || lines_in(&s.out) >= target);
        if letter_count(&s.address, &s.pipeline) > 0 {
            mid_flight += 1;
        }
        s.server.kill();
        s.server = Server::start(&s.data, &[]);
        s.address = s.server.http_address();
    }
    wait_until("every letter delivered", || {
        letter_count(&s.address, &s.pipeline) == 0
    });
    assert!(
        mid_flight > 0,
        "every kill came after the re-injection ended: the test proves nothing"
    );
    let seen = delivered(&s.out);
    let lost: Vec<_> = (1..=MANY)
        .map(line)
        .filter(|l| !seen.contains_key(l))
        .collect();
    assert!(
        lost.is_empty(),
        "{} lines lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let duplicated: usize = seen.values().map(|n| n - 1).sum();
    // At most a replay batch of letters in flight per kill.
    assert!(duplicated <= KILLS * 256, "{duplicated} duplicates");
}
