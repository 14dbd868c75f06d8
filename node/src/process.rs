//! Process-wide settings made first thing in `main`, before any thread starts: the C
//! allocator's for a long-running node, and the default SIGPIPE for the CLI's commands.
//!
//! **The allocator.** //! glibc's malloc gives each thread that allocates an arena of its own (up to eight per core),
//! and serves large blocks from them once it has seen such blocks freed (its threshold for
//! mapping them apart rises). Frames of up to a megabyte, read and freed by the thousand in a
//! flood, then stay in the arenas after the flood: measured in the hostile bench, 38 MiB of a
//! victim's 90 MiB growth. Two arenas, and blocks of 128 KiB and more always mapped apart
//! (and given back to the system when freed), keep a node's memory close to what it uses.

/// Applies the allocator's settings.
#[allow(unsafe_code)]
pub fn bound_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes the allocator's parameters; it is called before any
    // other thread exists, and a refusal (returned 0) leaves the defaults in place.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// Lets SIGPIPE end the process, as it ends any Unix tool whose reader went away
/// (`comity status | head -1`): Rust ignores it, and `println!` then panics on the closed
/// pipe. Not for `comity run`, which must outlive a closed log pipe or socket.
#[allow(unsafe_code)]
pub fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal before any other thread exists;
    // no handler of ours is involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
