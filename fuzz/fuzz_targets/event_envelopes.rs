//! Stored event envelopes (the store's JSON form, read back as `RocksStore` reads the
//! events column family) and their payloads decoded, upcast and checked against the
//! envelope by `culvert_migrations::decode`: arbitrary bytes never panic; an envelope that
//! reads writes back to the same envelope, and a domain event that decodes encodes
//! (`culvert_migrations::encode`) to an envelope that decodes to the same event.
#![no_main]

use culvert_migrations::Provenance;
use culvert_store::StoredEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(stored) = serde_json::from_slice::<StoredEvent>(data) else {
        return;
    };
    let json = serde_json::to_vec(&stored).expect("an envelope serialises");
    let again: StoredEvent = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "an envelope re-encoded to JSON it refuses ({e}): {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(again, stored, "envelope JSON round trip");

    let Ok(recorded) = culvert_migrations::decode(&stored) else {
        return;
    };
    let provenance = Provenance {
        actor: recorded.meta.actor.clone(),
        correlation_id: recorded.meta.correlation_id.clone(),
        causation_id: recorded.meta.causation_id.clone(),
        reason: recorded.meta.reason.clone(),
    };
    let new = culvert_migrations::encode(&recorded.event, &provenance);
    let rewritten = StoredEvent {
        seq: stored.seq,
        stream: new.stream,
        stream_version: stored.stream_version,
        event_type: new.event_type,
        schema_version: new.schema_version,
        recorded_at: stored.recorded_at,
        actor: new.actor,
        correlation_id: new.correlation_id,
        causation_id: new.causation_id,
        reason: new.reason,
        payload: new.payload,
    };
    let decoded = culvert_migrations::decode(&rewritten).unwrap_or_else(|e| {
        panic!(
            "an encoded event does not decode ({e}): {}",
            rewritten.payload.get()
        )
    });
    assert_eq!(
        decoded.event, recorded.event,
        "encode/decode changed the event"
    );
    assert_eq!(
        decoded.meta, recorded.meta,
        "encode/decode changed the metadata"
    );
});
