//! The connector against a real PostgreSQL (started by each test on loopback): snapshot
//! and stream exactly once, resume after acks, cancel safety, value types, the
//! destination's upserts and deletes, and a table copied through both.

use crate::test_pg::TestPg;
use crate::Postgres;
use culvert_domain::{Data, Operation, Position, Record};
use culvert_plugins::connector::{ConnectorPlugin, Destination, Settings, Source};
use culvert_plugins::testing::{check_cancel_safety, CancelSafety};
use serde_json::{json, Value};
use std::time::Duration;

fn settings(pairs: &[(&str, &str)]) -> Settings {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn source(pg: &TestPg, extra: &[(&str, &str)]) -> Box<dyn Source> {
    let mut s = settings(&[("url", &pg.url())]);
    s.extend(settings(extra));
    let plugin = Postgres::new();
    let s = culvert_plugins::spec::validate(plugin.specification().source.as_ref().unwrap(), &s)
        .unwrap();
    plugin.new_source(&s).unwrap()
}

fn destination(pg: &TestPg, extra: &[(&str, &str)]) -> Box<dyn Destination> {
    let mut s = settings(&[("url", &pg.url())]);
    s.extend(settings(extra));
    let plugin = Postgres::new();
    let s =
        culvert_plugins::spec::validate(plugin.specification().destination.as_ref().unwrap(), &s)
            .unwrap();
    plugin.new_destination(&s).unwrap()
}

/// Read until `want` records came (acking each batch), or fail after `limit`.
async fn read_n(source: &mut dyn Source, want: usize, limit: Duration) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {want} records came",
            got.len()
        );
        let batch = source.read(1000).await.unwrap();
        if let Some(last) = batch.last() {
            source.ack(last.position.clone()).await.unwrap();
        }
        got.extend(batch);
    }
    got
}

fn field(data: &Option<Data>, name: &str) -> Value {
    match data {
        Some(Data::Structured(map)) => map.get(name).cloned().unwrap_or(Value::Null),
        other => panic!("not structured: {other:?}"),
    }
}

fn id_of(record: &Record) -> i64 {
    let key = match &record.key {
        Some(Data::Structured(map)) => map,
        other => panic!("key not structured: {other:?}"),
    };
    key["id"].as_i64().unwrap()
}

async fn slot_lag(pg: &TestPg, slot: &str) -> i64 {
    let conn = pg.client().await;
    let row = conn
        .client
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_changes_arrive_exactly_once_in_order() {
    let pg = TestPg::start();
    let conn = pg.client().await;
    conn.client
        .batch_execute(
            "CREATE TABLE users (id int8 PRIMARY KEY, name text);
             INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 2500) g;",
        )
        .await
        .unwrap();
    let mut source = source(&pg, &[("tables", "users"), ("snapshot.fetchSize", "300")]);
    source.open(None).await.unwrap();
    // Changes made after the slot was created (the snapshot is being read): they must
    // come from the stream only, after the snapshot.
    conn.client
        .batch_execute(
            "INSERT INTO users VALUES (2501, 'late');
             UPDATE users SET name = 'renamed' WHERE id = 1;
             DELETE FROM users WHERE id = 2;",
        )
        .await
        .unwrap();
    let records = read_n(source.as_mut(), 2503, Duration::from_secs(60)).await;
    let (snapshot, changes) = records.split_at(2500);
    assert!(snapshot.iter().all(|r| r.operation == Operation::Snapshot));
    let ids: Vec<i64> = snapshot.iter().map(id_of).collect();
    assert_eq!(ids, (1..=2500).collect::<Vec<_>>());
    assert_eq!(field(&snapshot[0].payload.after, "name"), json!("user 1"));
    assert_eq!(snapshot[0].metadata["opencdc.collection"], "users");
    let ops: Vec<(Operation, i64)> = changes.iter().map(|r| (r.operation, id_of(r))).collect();
    assert_eq!(
        ops,
        [
            (Operation::Create, 2501),
            (Operation::Update, 1),
            (Operation::Delete, 2)
        ]
    );
    assert_eq!(field(&changes[1].payload.after, "name"), json!("renamed"));
    assert_eq!(changes[1].payload.before, None);
    assert_eq!(field(&changes[2].payload.before, "id"), json!(2));
    assert_eq!(changes[2].payload.after, None);
    // Nothing more.
    assert!(source.read(10).await.unwrap().is_empty());
    // The acks moved the slot: with nothing in flight its lag drops to 0.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let _ = source.read(10).await.unwrap();
        let lag = slot_lag(&pg, "conduitslot").await;
        if lag == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot lag stays {lag}"
        );
    }
    source.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_after_the_last_ack_even_inside_a_transaction() {
    let pg = TestPg::start();
    let conn = pg.client().await;
    conn.client
        .batch_execute("CREATE TABLE t (id int4 PRIMARY KEY, v text)")
        .await
        .unwrap();
    let config = [("tables", "t"), ("snapshotMode", "never")];
    let mut first = source(&pg, &config);
    first.open(None).await.unwrap();
    // Two interleaved transactions: b writes first but commits second.
    let other = pg.client().await;
    other
        .client
        .batch_execute("BEGIN; INSERT INTO t SELECT g, 'b' FROM generate_series(1000, 1099) g;")
        .await
        .unwrap();
    conn.client
        .batch_execute("INSERT INTO t SELECT g, 'a' FROM generate_series(1, 100) g")
        .await
        .unwrap();
    other.client.batch_execute("COMMIT").await.unwrap();
    // Read 150 records, ack the 150th (inside the second transaction), stop.
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 150 {
        assert!(tokio::time::Instant::now() < deadline);
        got.extend(first.read(150 - got.len()).await.unwrap());
    }
    first.ack(got[149].position.clone()).await.unwrap();
    let resume_at = got[149].position.clone();
    first.teardown().await.unwrap();
    let mut second = source(&pg, &config);
    second.open(Some(resume_at)).await.unwrap();
    let rest = read_n(second.as_mut(), 50, Duration::from_secs(30)).await;
    got.extend(rest);
    let ids: Vec<i64> = got.iter().map(id_of).collect();
    let want: Vec<i64> = (1..=100).chain(1000..=1099).collect();
    assert_eq!(ids, want);
    assert!(second.read(10).await.unwrap().is_empty());
    second.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_the_snapshot_loses_nothing() {
    let pg = TestPg::start();
    let conn = pg.client().await;
    conn.client
        .batch_execute(
            "CREATE TABLE a (id int4 PRIMARY KEY, v text);
             CREATE TABLE b (id int8 PRIMARY KEY, v text);
             INSERT INTO a SELECT g, 'a' FROM generate_series(1, 700) g;
             INSERT INTO b SELECT g, 'b' FROM generate_series(-5, 600) g;",
        )
        .await
        .unwrap();
    let config = [("tables", "a,b"), ("snapshot.fetchSize", "100")];
    let mut first = source(&pg, &config);
    first.open(None).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 250 {
        got.extend(first.read(250 - got.len()).await.unwrap());
    }
    let resume_at = got.last().unwrap().position.clone();
    first.ack(resume_at.clone()).await.unwrap();
    first.teardown().await.unwrap();
    // A change while no source runs: the stream (from the slot's consistent point) has it.
    conn.client
        .batch_execute("INSERT INTO b VALUES (601, 'late')")
        .await
        .unwrap();
    let mut second = source(&pg, &config);
    second.open(Some(resume_at)).await.unwrap();
    // Table b's snapshot had not begun: read now, it has the late row too, which the
    // stream then brings again (at-least-once after a restart mid-snapshot).
    let rest = read_n(
        second.as_mut(),
        700 + 607 - 250 + 1,
        Duration::from_secs(60),
    )
    .await;
    got.extend(rest);
    let snapshot: Vec<(String, i64)> = got
        .iter()
        .filter(|r| r.operation == Operation::Snapshot)
        .map(|r| (r.metadata["opencdc.collection"].to_string(), id_of(r)))
        .collect();
    let want: Vec<(String, i64)> = (1..=700)
        .map(|i| ("a".to_owned(), i))
        .chain((-5..=601).map(|i| ("b".to_owned(), i)))
        .collect();
    assert_eq!(snapshot, want);
    let last = got.last().unwrap();
    assert_eq!((last.operation, id_of(last)), (Operation::Create, 601));
    assert!(second.read(10).await.unwrap().is_empty());
    second.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_reads_are_cancel_safe() {
    let pg = TestPg::start();
    let conn = pg.client().await;
    conn.client
        .batch_execute(
            "CREATE TABLE c (id int4 PRIMARY KEY, v text);
             INSERT INTO c SELECT g, md5(g::text) FROM generate_series(1, 3000) g;",
        )
        .await
        .unwrap();
    let expected: Vec<Vec<u8>> = (1..=3000)
        .map(|i: i64| i.to_string().into_bytes())
        .collect();
    let options = CancelSafety {
        cancellations: 300,
        max_passes: 8,
        max_batch: 400,
        stall: Duration::from_secs(20),
        ..CancelSafety::default()
    };
    let make = || source(&pg, &[("tables", "c"), ("snapshot.fetchSize", "250")]);
    let report = check_cancel_safety(
        make,
        &expected,
        |r| id_of(r).to_string().into_bytes(),
        &options,
    )
    .await
    .unwrap();
    assert!(report.cancelled > 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reads_are_cancel_safe() {
    let pg = TestPg::start();
    let conn = pg.client().await;
    conn.client
        .batch_execute("CREATE TABLE s (id int4 PRIMARY KEY, v text)")
        .await
        .unwrap();
    // One slot per pass, all created before the changes, so each pass streams them all.
    const PASSES: usize = 6;
    for pass in 0..PASSES {
        conn.client
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&format!("pass_{pass}")],
            )
            .await
            .unwrap();
    }
    conn.client
        .batch_execute(
            "CREATE PUBLICATION conduitpub FOR TABLE s;
             INSERT INTO s SELECT g, 'x' FROM generate_series(1, 1500) g;
             UPDATE s SET v = 'y' WHERE id % 3 = 0;
             DELETE FROM s WHERE id % 5 = 0 AND id % 3 <> 0;",
        )
        .await
        .unwrap();
    let mut expected: Vec<Vec<u8>> = (1..=1500)
        .map(|i| format!("create {i}").into_bytes())
        .collect();
    expected.extend(
        (1..=1500)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("update {i}").into_bytes()),
    );
    // (The rows deleted were not updated, so the delete scans them in id order.)
    expected.extend(
        (1..=1500)
            .filter(|i| i % 5 == 0 && i % 3 != 0)
            .map(|i| format!("delete {i}").into_bytes()),
    );
    let options = CancelSafety {
        cancellations: 200,
        max_passes: PASSES,
        max_batch: 300,
        stall: Duration::from_secs(20),
        ..CancelSafety::default()
    };
    let mut pass = 0;
    let make = || {
        let slot = format!("pass_{pass}");
        pass += 1;
        source(
            &pg,
            &[
                ("tables", "s"),
                ("snapshotMode", "never"),
                ("logrepl.slotName", &slot),
            ],
        )
    };
    let identity = |r: &Record| format!("{} {}", r.operation.as_str(), id_of(r)).into_bytes();
    let report = check_cancel_safety(make, &expected, identity, &options)
        .await
        .unwrap();
    assert!(report.cancelled > 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_read_the_same_from_snapshot_and_stream() {
    let pg = TestPg::start();
    let conn = pg.client().await;
    let create = "CREATE TABLE typed (
        id int8 PRIMARY KEY, small int2, normal int4, big int8, real4 float4, double8 float8,
        amount numeric(12,3), flag bool, label text, chars varchar(10), at timestamptz,
        local timestamp, day date, doc json, docb jsonb, uid uuid, blob bytea,
        ints int4[], texts text[], empty text
    )";
    let row = "(%ID%, 2, 4, 8, 1.5, 2.25, 1234.500, true, 'héllo', 'abc',
        '2024-01-02 03:04:05.123456+00', '2024-01-02 03:04:05', '2024-01-02',
        '{\"a\": 1}', '{\"b\": [1, 2]}', 'bd94ee0b-564f-4088-bf4e-8d5e626caf66',
        '\\x00ff10', '{1,2,NULL}', '{\"a b\",c}', NULL)";
    conn.client
        .batch_execute(&format!(
            "{create}; INSERT INTO typed VALUES {};",
            row.replace("%ID%", "1")
        ))
        .await
        .unwrap();
    let mut source = source(&pg, &[("tables", "typed")]);
    source.open(None).await.unwrap();
    conn.client
        .batch_execute(&format!(
            "INSERT INTO typed VALUES {}",
            row.replace("%ID%", "2")
        ))
        .await
        .unwrap();
    let records = read_n(source.as_mut(), 2, Duration::from_secs(30)).await;
    source.teardown().await.unwrap();
    let want = json!({
        "id": 1, "small": 2, "normal": 4, "big": 8, "real4": 1.5, "double8": 2.25,
        "amount": "1234.500", "flag": true, "label": "héllo", "chars": "abc",
        "at": "2024-01-02T03:04:05.123456Z", "local": "2024-01-02T03:04:05Z",
        "day": "2024-01-02T00:00:00Z", "doc": "eyJhIjogMX0=", "docb": "eyJiIjogWzEsIDJdfQ==",
        "uid": "bd94ee0b-564f-4088-bf4e-8d5e626caf66", "blob": "AP8Q",
        "ints": [1, 2, null], "texts": ["a b", "c"], "empty": null
    });
    let Some(Data::Structured(snapshot)) = &records[0].payload.after else {
        panic!("snapshot payload");
    };
    assert_eq!(Value::Object(snapshot.as_map().clone()), want);
    let Some(Data::Structured(change)) = &records[1].payload.after else {
        panic!("change payload");
    };
    let mut want_change = want.clone();
    want_change["id"] = json!(2);
    assert_eq!(Value::Object(change.as_map().clone()), want_change);
}

/// id, name, amount, blob (hex), doc.
type TargetRow = (i64, String, Option<String>, Option<String>, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_destination_upserts_and_deletes_by_key_per_batch() {
    let pg = TestPg::start();
    let conn = pg.client().await;
    conn.client
        .batch_execute(
            "CREATE TABLE target (id int8 PRIMARY KEY, name text, amount numeric(10,2),
             blob bytea, at timestamptz, doc jsonb, tags text[])",
        )
        .await
        .unwrap();
    let mut dest = destination(&pg, &[]);
    dest.open().await.unwrap();
    let record = |op: Operation, id: i64, after: Option<Value>| Record {
        position: Position(vec![]),
        operation: op,
        metadata: [("opencdc.collection".to_owned(), "target".to_owned())].into(),
        key: Some(Data::Structured(
            json!({ "id": id }).as_object().unwrap().clone().into(),
        )),
        payload: culvert_domain::Change {
            before: None,
            after: after.map(|v| Data::Structured(v.as_object().unwrap().clone().into())),
        },
    };
    dest.write(&[
        record(
            Operation::Snapshot,
            1,
            Some(
                json!({"id": 1, "name": "one", "amount": "1/4", "blob": "AP8Q",
                        "at": "2024-01-02T03:04:05.5Z", "doc": {"x": [1]}, "tags": ["a", "b"]}),
            ),
        ),
        record(Operation::Create, 2, Some(json!({"id": 2, "name": "two"}))),
        record(Operation::Update, 1, Some(json!({"id": 1, "name": "uno"}))),
        record(
            Operation::Create,
            3,
            Some(json!({"id": 3, "name": "three"})),
        ),
        record(Operation::Delete, 2, None),
    ])
    .await
    .unwrap();
    // A raw JSON payload works too, as in Conduit.
    let mut raw = record(Operation::Create, 4, None);
    raw.payload.after = Some(Data::Raw(br#"{"id": 4, "name": "four"}"#.to_vec()));
    dest.write(&[raw]).await.unwrap();
    let rows = conn
        .client
        .query(
            "SELECT id, name, amount::text, encode(blob, 'hex'), at::text, doc::text, \
             tags::text FROM target ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<TargetRow> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(5)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1,
                "uno".into(),
                Some("0.25".into()),
                Some("00ff10".into()),
                Some("{\"x\": [1]}".into())
            ),
            (3, "three".into(), None, None, None),
            (4, "four".into(), None, None, None),
        ]
    );
    assert_eq!(rows[0].get::<_, String>(4), "2024-01-02 03:04:05.5+00");
    assert_eq!(rows[0].get::<_, String>(6), "{a,b}");
    // A failing record fails the whole batch: nothing of it is written.
    let error = dest
        .write(&[
            record(Operation::Create, 5, Some(json!({"id": 5}))),
            record(Operation::Create, 6, Some(json!({"id": 6, "nope": 1}))),
        ])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("nope"), "{error}");
    let error = dest
        .write(&[record(
            Operation::Create,
            7,
            Some(json!({"id": "not a number"})),
        )])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("record 0"), "{error}");
    let count: i64 = conn
        .client
        .query_one("SELECT count(*) FROM target", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 3);
    // The table template.
    let mut templated = destination(
        &pg,
        &[("table", "{{ index .Metadata \"opencdc.collection\" }}_copy")],
    );
    conn.client
        .batch_execute("CREATE TABLE target_copy (id int8 PRIMARY KEY, name text)")
        .await
        .unwrap();
    templated.open().await.unwrap();
    templated
        .write(&[record(
            Operation::Create,
            9,
            Some(json!({"id": 9, "name": "nine"})),
        )])
        .await
        .unwrap();
    let name: String = conn
        .client
        .query_one("SELECT name FROM target_copy WHERE id = 9", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "nine");
    dest.teardown().await.unwrap();
    templated.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_copied_through_source_and_destination_stays_identical() {
    let pg = TestPg::start();
    let conn = pg.client().await;
    let columns = "id int8 PRIMARY KEY, n int4, amount numeric(12,3), label text,
                   at timestamptz, doc jsonb, blob bytea, tags int4[]";
    conn.client
        .batch_execute(&format!(
            "CREATE TABLE origin ({columns}); CREATE TABLE copy ({columns});
             INSERT INTO origin SELECT g, g % 7, g / 3.0, 'row ' || g,
               '2024-01-01'::timestamptz + g * interval '1 second',
               jsonb_build_object('g', g), decode(md5(g::text), 'hex'), ARRAY[g, g + 1]
             FROM generate_series(1, 2000) g;"
        ))
        .await
        .unwrap();
    let mut source = source(&pg, &[("tables", "origin"), ("snapshot.fetchSize", "500")]);
    let mut dest = destination(&pg, &[("table", "copy")]);
    source.open(None).await.unwrap();
    dest.open().await.unwrap();
    conn.client
        .batch_execute(
            "UPDATE origin SET label = 'changed', doc = '{\"x\": null}' WHERE id % 10 = 0;
             DELETE FROM origin WHERE id % 13 = 0;
             INSERT INTO origin SELECT g, 1, 0.5, NULL, now(), NULL, NULL, NULL
               FROM generate_series(2001, 2100) g;
             UPDATE origin SET n = n + 1 WHERE id > 1990;",
        )
        .await
        .unwrap();
    let expected = 2000 + 200 + 153 + 100 + 110;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut moved = 0;
    while moved < expected {
        assert!(tokio::time::Instant::now() < deadline, "moved {moved}");
        let batch = source.read(700).await.unwrap();
        if batch.is_empty() {
            continue;
        }
        dest.write(&batch).await.unwrap();
        source
            .ack(batch.last().unwrap().position.clone())
            .await
            .unwrap();
        moved += batch.len();
    }
    let checksum = |table: &str| {
        format!("SELECT count(*), md5(string_agg(t::text, '|' ORDER BY id)) FROM {table} t")
    };
    let origin = conn
        .client
        .query_one(&checksum("origin"), &[])
        .await
        .unwrap();
    let copy = conn.client.query_one(&checksum("copy"), &[]).await.unwrap();
    assert_eq!(origin.get::<_, i64>(0), copy.get::<_, i64>(0));
    assert_eq!(origin.get::<_, String>(1), copy.get::<_, String>(1));
    source.teardown().await.unwrap();
    dest.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_connector_drops_its_slot_and_publication() {
    let pg = TestPg::start();
    let conn = pg.client().await;
    conn.client
        .batch_execute("CREATE TABLE d (id int4 PRIMARY KEY)")
        .await
        .unwrap();
    let config = [("tables", "d"), ("logrepl.slotName", "to_drop")];
    let mut first = source(&pg, &config);
    first.open(None).await.unwrap();
    first.teardown().await.unwrap();
    let mut fresh = source(&pg, &config);
    let mut s = settings(&config);
    s.insert("url".into(), pg.url());
    fresh.on_deleted(s).await.unwrap();
    let slots: i64 = conn
        .client
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .get(0);
    let publications: i64 = conn
        .client
        .query_one("SELECT count(*) FROM pg_publication", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((slots, publications), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_table() {
    let pg = TestPg::start();
    let conn = pg.client().await;
    conn.client
        .batch_execute("CREATE TABLE nokey (v text)")
        .await
        .unwrap();
    for (tables, want) in [("missing", "does not exist"), ("nokey", "no primary key")] {
        let mut s = source(&pg, &[("tables", tables)]);
        let error = s.open(None).await.unwrap_err().to_string();
        assert!(error.contains(tables) && error.contains(want), "{error}");
        assert!(error.contains("setting \"tables\""), "{error}");
    }
}
