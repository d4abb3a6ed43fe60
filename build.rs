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
//!
//! Release builds also lay out the functions a running server executes in one block
//! (`link/hot-symbols.txt`, made by `scripts/symbol-order` from a profile), so the pages a
//! server touches are few instead of spread over the binary's ~50 MB of code. Only the final
//! link reads the file; names it lists that the binary lacks are skipped. It is used on x86_64,
//! where lld is the toolchain's default linker (`CULVERT_SYMBOL_ORDER=0` turns it off, e.g.
//! with another linker).

use std::path::Path;

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        println!("cargo:rustc-link-arg-bins=-Wl,-z,keep-text-section-prefix");
        symbol_order();
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// Passes `link/hot-symbols.txt` to the linker in release builds.
fn symbol_order() {
    println!("cargo:rerun-if-env-changed=CULVERT_SYMBOL_ORDER");
    let order = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("link")
        .join("hot-symbols.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    // The file was made from an x86_64 build, where lld is the toolchain's default linker
    // (GNU ld does not know the option).
    let x86_64 = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "x86_64");
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let disabled = std::env::var("CULVERT_SYMBOL_ORDER").is_ok_and(|value| value == "0");
    if x86_64 && release && !disabled && order.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
