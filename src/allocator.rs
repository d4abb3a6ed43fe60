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

/// The global allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's option numbers (`mi_option_t` in mimalloc.h, v3, as built by
// libmimalloc-sys 0.1.49): `mi_option_arena_eager_commit` and `mi_option_purge_delay`.
const MI_OPTION_ARENA_EAGER_COMMIT: i32 = 4;
const MI_OPTION_PURGE_DELAY: i32 = 15;

extern "C" {
    // Part of the mimalloc C library the global allocator links; declared here because
    // libmimalloc-sys only exposes it behind a feature that pulls in another crate.
    fn mi_option_set(option: i32, value: std::os::raw::c_long);
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
