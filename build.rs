//! Link settings for the `culvert` binary.
//!
//! On Linux with glibc the binary's relative relocations are packed (`DT_RELR`, glibc 2.36 and
//! binutils 2.38 or later): a position-independent executable otherwise carries ~2.4 MB of
//! them, which the loader reads in full at every start, so they count in the resident memory
//! of every server. Older linkers ignore the option with a warning; the loader of an older
//! glibc refuses the binary by name (`GLIBC_ABI_DT_RELR`).
//!
//! Code that only runs at start-up (C++ static initialisers, of which RocksDB has ~280) and
//! code compilers marked cold are kept in their own sections (`.text.startup`,
//! `.text.unlikely`) instead of being spread through `.text`: the kernel maps code in 64 KiB
//! windows around each page touched, so scattered initialisers pull in most of RocksDB.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        println!("cargo:rustc-link-arg-bins=-Wl,-z,keep-text-section-prefix");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
