//! zstd for `cohere.embed`, which stores each embedding's JSON compressed (as Conduit
//! does): the `ruzstd` crate (pure Rust, no C build), at its fastest level (about zstd's
//! level 1). The frames differ in their bytes from the ones Conduit's Go encoder writes and
//! decode to the same data; any zstd decoder reads them.

use ruzstd::encoding::{compress_to_vec, CompressionLevel};

/// `data` in a zstd frame.
pub(super) fn frame(data: &[u8]) -> Vec<u8> {
    compress_to_vec(data, CompressionLevel::Fastest)
}

/// The content of a zstd frame.
#[cfg(test)]
pub(super) fn unframe(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut decoder = ruzstd::decoding::StreamingDecoder::new(bytes).expect("a zstd frame");
    let mut data = Vec::new();
    decoder.read_to_end(&mut data).expect("a whole frame");
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_conduits_frames_are_read() {
        for size in [0, 1, 13, 255, 256, 1025, 65_792, 300_000] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            assert_eq!(unframe(&frame(&data)), data, "{size}");
        }
        // What Conduit's encoder writes for its example's embedding.
        let conduits = b"\x28\xb5\x2f\xfd\x04\x00\x69\x00\x00[0.1,0.2,0.3]\x89\x5e\x78\x48";
        assert_eq!(unframe(conduits), b"[0.1,0.2,0.3]");
        // Embeddings repeat digits: they compress.
        let embedding = format!("[{}]", vec!["0.0123456789"; 1000].join(","));
        assert!(frame(embedding.as_bytes()).len() < embedding.len() / 4);
    }
}
