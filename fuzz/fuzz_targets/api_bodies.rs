//! The HTTP API's JSON request bodies (protojson, as `ProtoJson<T>` reads them with
//! serde_json): arbitrary bytes into every request type a route takes never panic, and a
//! body that decodes re-encodes to JSON that decodes to the same JSON again.
#![no_main]

use culvert_api::export::PipelineExport;
use culvert_api::pb::api::v1 as conduit;
use culvert_api::pb::culvert::api::v1 as culvert;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Decode `body` as `T`; if it decodes, its JSON must decode again to the same JSON. The
/// comparison is on JSON values, not messages, so that NaN (not equal to itself) does not
/// count, and not on JSON text: prost maps are `HashMap`s, so a message with two or more
/// map entries (a processor's settings) writes its keys in an order that differs from one
/// message to the next, which protojson allows (map order is unspecified) and no client
/// may rely on.
fn body<T: DeserializeOwned + Serialize>(bytes: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(bytes) else {
        return;
    };
    let json = serde_json::to_string(&value).expect("a decoded body serialises");
    let again: T = serde_json::from_str(&json).unwrap_or_else(|e| {
        panic!(
            "{} re-encoded to JSON it refuses ({e}): {json}",
            std::any::type_name::<T>()
        )
    });
    let json_again = serde_json::to_string(&again).expect("a decoded body serialises");
    let value = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text).expect("serde_json writes JSON")
    };
    assert_eq!(
        value(&json_again),
        value(&json),
        "{} round trip",
        std::any::type_name::<T>()
    );
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the route's body type (all of them see the rest).
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 15 {
        0 => body::<conduit::CreatePipelineRequest>(rest),
        1 => body::<conduit::UpdatePipelineRequest>(rest),
        2 => body::<conduit::StopPipelineRequest>(rest),
        3 => body::<conduit::pipeline::Dlq>(rest),
        4 => body::<PipelineExport>(rest),
        5 => body::<conduit::PlanPipelineRequest>(rest),
        6 => body::<conduit::ApplyPipelineRequest>(rest),
        7 => body::<conduit::CreateConnectorRequest>(rest),
        8 => body::<conduit::ValidateConnectorRequest>(rest),
        9 => body::<conduit::UpdateConnectorRequest>(rest),
        10 => body::<conduit::CreateProcessorRequest>(rest),
        11 => body::<conduit::UpdateProcessorRequest>(rest),
        12 => body::<culvert::RevertRequest>(rest),
        13 => body::<culvert::SetSourcePositionRequest>(rest),
        _ => body::<culvert::ReinjectDeadLettersRequest>(rest),
    }
});
