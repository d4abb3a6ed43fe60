//! `culvert run`: start, ready, state rebuilt from the log, SIGTERM, and clear start-up errors.

use crate::harness::{data_dir, Server};
use culvert_commands::{ConnectorOrchestrator, Context, ControlPlaneWriter, PipelineOrchestrator};
use culvert_domain::{ConnectorType, Settings};
use culvert_projections::{ProjectionOptions, Projections};
use culvert_store::{EventLog, RocksStore, StoreOptions};
use std::sync::Arc;

fn field(line: &str, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(line).expect("json log line");
    v["fields"][name].clone()
}

#[test]
fn run_reports_ready_and_exits_zero_on_sigterm() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let ready = server.wait_for_line("culvert ready");
    assert_eq!(field(&ready, "pipelines"), 0);
    assert!(
        data.join("CURRENT").exists(),
        "RocksDB created under the data path"
    );
    server.terminate();
    assert!(server.wait().success(), "{:#?}", server.seen);
    assert!(server.seen.iter().any(|l| l.contains("stopped")));
}

#[test]
fn restart_rebuilds_the_state_written_before() {
    let (_dir, data) = data_dir();
    {
        let log: Arc<dyn EventLog> = Arc::new(
            RocksStore::open(
                &data,
                StoreOptions::default(),
                &culvert_migrations::layout(),
            )
            .unwrap(),
        );
        let (projections, _) =
            Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
        let writer = ControlPlaneWriter::new(log, Arc::new(projections));
        let pipelines = PipelineOrchestrator::new(writer.clone());
        let connectors = ConnectorOrchestrator::new(writer);
        let ctx = Context::new("user:test");
        for i in 0..3 {
            let p = pipelines.create(&ctx, &format!("p{i}"), "").unwrap();
            connectors
                .create(
                    &ctx,
                    &p.id,
                    ConnectorType::Source,
                    "builtin:generator",
                    "s",
                    Settings::new(),
                )
                .unwrap();
        }
    }
    for round in 0..2 {
        let mut server = Server::start(&data, &[]);
        let ready = server.wait_for_line("culvert ready");
        assert_eq!(field(&ready, "pipelines"), 3);
        assert_eq!(field(&ready, "connectors"), 3);
        assert_eq!(field(&ready, "head"), 9);
        if round == 1 {
            // The first run wrote a snapshot on shutdown; the second starts from it.
            assert_eq!(field(&ready, "snapshot_seq"), 9);
            assert_eq!(field(&ready, "folded"), 0);
        }
        server.terminate();
        assert!(server.wait().success());
    }
}

#[test]
fn a_second_server_on_the_same_directory_is_refused_clearly() {
    let (_dir, data) = data_dir();
    let mut first = Server::start(&data, &[]);
    first.wait_for_line("culvert ready");
    let mut second = Server::start(&data, &[]);
    let status = second.wait();
    assert_eq!(status.code(), Some(1));
    assert!(
        second
            .seen
            .iter()
            .any(|l| l.contains("in use by another process")),
        "{:#?}",
        second.seen
    );
    first.terminate();
    assert!(first.wait().success());
}

#[test]
fn a_foreign_directory_and_bad_flags_are_refused() {
    let (dir, _) = data_dir();
    std::fs::write(dir.path().join("notes.txt"), "not a database").unwrap();
    let mut server = Server::start(dir.path(), &[]);
    assert_eq!(server.wait().code(), Some(1));
    assert!(server
        .seen
        .iter()
        .any(|l| l.contains("is not a culvert data directory")));
    let (_dir2, data) = data_dir();
    let mut bad = Server::start(&data, &["--log.level", "no=such=level"]);
    assert_eq!(bad.wait().code(), Some(2));
    assert!(bad.seen.iter().any(|l| l.contains("invalid --log.level")));
}

#[test]
fn inmemory_store_needs_no_directory() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &["--db.type", "inmemory"]);
    server.wait_for_line("culvert ready");
    assert!(!data.exists());
    server.terminate();
    assert!(server.wait().success());
}
