//! OpenCDC records in Conduit's JSON form (`Record::from_json`): arbitrary bytes never
//! panic, and every record that decodes encodes (`to_json`) to a form that decodes to it.
#![no_main]

use culvert_domain::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = Record::from_json(data) else {
        return;
    };
    let json = record.to_json();
    let again = Record::from_json(&json).unwrap_or_else(|e| {
        panic!(
            "to_json wrote what from_json refuses ({e}): {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(again, record, "JSON round trip changed the record");
    assert_eq!(again.to_json(), json, "to_json is not stable");
});
