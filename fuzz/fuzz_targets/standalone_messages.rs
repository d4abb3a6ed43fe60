//! The standalone connector protocol, from the plugin's side (untrusted: any binary in the
//! connectors directory): its go-plugin handshake line, and the protobuf messages a plugin
//! sends (a source's Run responses, a destination's acks, its specification, a WASM
//! processor's command responses), decoded from arbitrary bytes and their records converted
//! to domain records as the host does. A record that converts converts back (`to_proto`)
//! to one that converts to the same record.
#![no_main]

use culvert_hosts::pb;
use culvert_hosts::standalone::{from_proto, parse_handshake, to_proto};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// Convert a record as the host does, then check the round trip through `to_proto`.
fn record(record: pb::opencdc::v1::Record) {
    let Ok(domain) = from_proto(record) else {
        return;
    };
    let again = from_proto(to_proto(&domain)).expect("a record from to_proto converts");
    assert_eq!(again, domain, "proto round trip changed the record");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(line) = std::str::from_utf8(rest) {
                let _ = parse_handshake(line);
            }
        }
        1 => {
            if let Ok(message) = pb::connector::v2::source::run::Response::decode(rest) {
                message.records.into_iter().for_each(record);
            }
        }
        2 => {
            if let Ok(message) = pb::opencdc::v1::Record::decode(rest) {
                record(message);
            }
        }
        3 => {
            let _ = pb::connector::v2::destination::run::Response::decode(rest);
            let _ = pb::connector::v2::source::stop::Response::decode(rest);
        }
        4 => {
            let _ = pb::connector::v2::specifier::specify::Response::decode(rest);
        }
        _ => {
            use pb::processor::v1::command_response::Response;
            use pb::processor::v1::process::processed_record::Record as Processed;
            let Ok(answer) = pb::processor::v1::CommandResponse::decode(rest) else {
                return;
            };
            if let Some(Response::Process(process)) = answer.response {
                for processed in process.records {
                    if let Some(Processed::SingleRecord(r)) = processed.record {
                        record(r);
                    }
                }
            }
        }
    }
});
