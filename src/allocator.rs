//! The process's allocator: mimalloc, sized for a server that should stay small.
//!
//! mimalloc instead of glibc's allocator: records are allocated by one task and freed by
//! another, on other threads, which glibc's arenas handle poorly (a third of the pipeline
//! benchmark's time went to malloc/free; see BENCHMARKS.md).
//!
//! Two of mimalloc's defaults suit a database more than a data-integration server that
//! holds a few batches at a time, so they are changed before the first allocation:
//!
//! * `arena_eager_commit` 0 (mimalloc's default commits an arena's memory as it reserves
//!   it on Linux): memory is committed as it is used; about 19 MiB less resident memory
//!   at rest and 22 MiB less at the peak of the pipeline benchmark;
//! * `purge_delay` 10 ms (default 1 s, times 10 for arenas): freed pages go back to the
//!   OS soon, so the start-up transients (opening the store, building the API) and a
//!   burst's batches do not stay resident; about 7 MiB less at the peak. 0 (purge at once)
//!   saves a little more but purges and faults the same pages again under a steady load.
//!
//! Either can be set back with mimalloc's own environment variables
//! (`MIMALLOC_ARENA_EAGER_COMMIT`, `MIMALLOC_PURGE_DELAY`): a variable that is set wins.
//!
//! RocksDB's C++ allocations go to glibc's `malloc`, which keeps what is freed: a memtable
//! flushed or a compaction's buffers stay resident, and every thread that allocates may
//! get an arena of its own. So glibc is held to 2 arenas (`M_ARENA_MAX`, unless
//! `MALLOC_ARENA_MAX` is set), and [`trim_c_heap`] gives its free pages back (the server
//! calls it every [`TRIM_EVERY`]), as mimalloc's purge does for Rust's.

/// The global allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's option numbers (`mi_option_t` in mimalloc.h, v3, as built by
// libmimalloc-sys 0.1.49): `mi_option_arena_eager_commit` and `mi_option_purge_delay`.
const MI_OPTION_ARENA_EAGER_COMMIT: i32 = 4;
const MI_OPTION_PURGE_DELAY: i32 = 15;

extern "C" {
    // Part of the mimalloc C library the global allocator links; declared here because
    // libmimalloc-sys only exposes them behind a feature that pulls in another crate.
    fn mi_option_set(option: i32, value: std::os::raw::c_long);
    fn mi_process_info(
        elapsed_msecs: *mut usize,
        user_msecs: *mut usize,
        system_msecs: *mut usize,
        current_rss: *mut usize,
        peak_rss: *mut usize,
        current_commit: *mut usize,
        peak_commit: *mut usize,
        page_faults: *mut usize,
    );
}

/// glibc's `struct mallinfo2` (malloc.h): its heap's figures, every arena summed.
#[repr(C)]
#[derive(Default)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    // glibc 2.33 and later.
    fn mallinfo2() -> MallInfo2;
    fn malloc_trim(pad: usize) -> std::os::raw::c_int;
    fn mallopt(param: std::os::raw::c_int, value: std::os::raw::c_int) -> std::os::raw::c_int;
}

/// glibc's `M_ARENA_MAX` (malloc.h).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const M_ARENA_MAX: std::os::raw::c_int = -8;

/// How often the server gives the C heap's free pages back ([`trim_c_heap`]).
#[allow(dead_code)] // the pipeline benchmark includes this file and does not use it
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Give the C heap's free pages back to the OS (glibc's `malloc_trim`): what RocksDB freed
/// stays counted as resident otherwise. Takes a few milliseconds; call it off the async
/// workers.
#[allow(unsafe_code, dead_code)] // the pipeline benchmark includes this file and does not call it
pub fn trim_c_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's arenas under their locks.
    unsafe {
        malloc_trim(0);
    }
}

/// The C heap (glibc's `malloc`, which RocksDB's C++ allocations use; Rust's go to
/// mimalloc): bytes in use and bytes free but kept by its arenas, or `None` off glibc.
#[allow(unsafe_code, dead_code)] // the pipeline benchmark includes this file and does not call it
pub fn c_heap_bytes() -> Option<(u64, u64)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters and returns them by value.
        let info = unsafe { mallinfo2() };
        Some(((info.uordblks + info.hblkhd) as u64, info.fordblks as u64))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// The memory mimalloc has committed now, in bytes: what the process allocated plus what
/// the allocator keeps for reuse (for `culvert_allocator_committed_bytes`).
#[allow(unsafe_code, dead_code)] // the pipeline benchmark includes this file and does not call it
pub fn committed_bytes() -> u64 {
    let mut figures = [0usize; 8];
    let [elapsed, user, system, rss, peak_rss, commit, peak_commit, faults] = &mut figures;
    // SAFETY: every pointer is to a distinct live `usize`; mimalloc only writes them.
    unsafe {
        mi_process_info(
            elapsed,
            user,
            system,
            rss,
            peak_rss,
            commit,
            peak_commit,
            faults,
        );
    }
    figures[5] as u64
}

/// Runs before `main` and before the Rust runtime allocates (an ELF initialiser), so the
/// options are in place when mimalloc reserves its first arena.
#[allow(unsafe_code)]
extern "C" fn set_allocator_options() {
    for (option, variable, value) in [
        (
            MI_OPTION_ARENA_EAGER_COMMIT,
            "MIMALLOC_ARENA_EAGER_COMMIT",
            0,
        ),
        (MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 10),
    ] {
        // `var_os` does not allocate for a missing variable; the user's setting wins.
        if std::env::var_os(variable).is_none() {
            // SAFETY: mimalloc's option setter only stores the value; any thread may call it.
            unsafe { mi_option_set(option, value) };
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only stores the limit; no other thread runs yet.
        unsafe { mallopt(M_ARENA_MAX, 2) };
    }
}

// An ELF initialiser (what C's `__attribute__((constructor))` makes): the dynamic loader
// calls it with the other initialisers of the executable, before `main`.
#[allow(unsafe_code)]
#[used]
#[link_section = ".init_array"]
static SET_ALLOCATOR_OPTIONS: extern "C" fn() = set_allocator_options;

#[cfg(test)]
mod tests {
    // Everything the test needs is inside it: the pipeline benchmark includes this file and
    // builds without a test harness, which drops the test.
    #[test]
    fn what_is_allocated_is_counted_as_committed() {
        let held = vec![1u8; 64 << 20];
        assert!(super::committed_bytes() >= 64 << 20);
        drop(held);
    }

    #[test]
    #[allow(unsafe_code)]
    fn the_c_heap_counts_what_malloc_holds() {
        extern "C" {
            fn malloc(size: usize) -> *mut std::ffi::c_void;
            fn free(pointer: *mut std::ffi::c_void);
        }
        if super::c_heap_bytes().is_none() {
            return; // not glibc: nothing to read
        }
        // SAFETY: a plain malloc/free pair of C's allocator.
        let held = unsafe { malloc(8 << 20) };
        assert!(!held.is_null());
        let (during, _) = super::c_heap_bytes().unwrap();
        // SAFETY: `held` came from malloc above and is freed once.
        unsafe { free(held) };
        // At least what is held now (other tests' threads may free meanwhile).
        assert!(during >= 8 << 20, "{during}");
    }

    #[test]
    #[allow(unsafe_code)]
    fn the_options_are_in_place_before_main_unless_the_environment_sets_them() {
        extern "C" {
            fn mi_option_get(option: i32) -> std::os::raw::c_long;
        }
        for (option, variable, value) in [
            (
                super::MI_OPTION_ARENA_EAGER_COMMIT,
                "MIMALLOC_ARENA_EAGER_COMMIT",
                0,
            ),
            (super::MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 10),
        ] {
            if std::env::var_os(variable).is_none() {
                // SAFETY: a read of an option's value.
                assert_eq!(unsafe { mi_option_get(option) }, value, "{variable}");
            }
        }
    }
}
