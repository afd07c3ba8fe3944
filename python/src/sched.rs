//! The scheduler slice the IO threads ask Linux for (`Engine(io_slice_us=…)`).
//!
//! Since Linux 6.12 the fair scheduler (EEVDF) takes `sched_attr.sched_runtime` of a
//! `SCHED_OTHER`/`SCHED_BATCH` thread as the length of the slice it asks for (clamped to
//! 0.1–100 ms), and a thread with a shorter slice preempts the running one when it
//! wakes. An IO thread woken by a PING then answers at once instead of waiting out the
//! slice of a Python thread busy with its game tick: on this project's 2-core bench
//! machine, ping p99 under a tick that spins with the GIL 5 ms of every 10 ms went from
//! 1.5–2.7 ms to 0.12–0.15 ms, with no change in throughput. Older kernels ignore the
//! field; other systems have no such call and are left alone.

/// Asks for a slice of `micros` µs for the calling thread, keeping its policy and nice
/// value; a realtime or deadline thread is left alone. Errors are the kernel's (none is
/// fatal: the engine runs either way).
#[cfg(target_os = "linux")]
pub(crate) fn ask_slice(micros: u64) -> std::io::Result<()> {
    /// `struct sched_attr` of `sched_setattr(2)`, its first version (48 bytes).
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    const SIZE: u32 = std::mem::size_of::<SchedAttr>() as u32;
    const SCHED_OTHER: u32 = 0;
    const SCHED_BATCH: u32 = 3;
    const SCHED_FLAG_RESET_ON_FORK: u64 = 1;
    let mut attr = SchedAttr::default();
    // SAFETY: `attr` is a live `sched_attr` of the size passed; pid 0 is this thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            SIZE,
            0,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if attr.policy != SCHED_OTHER && attr.policy != SCHED_BATCH {
        return Ok(());
    }
    attr.size = SIZE;
    attr.flags &= SCHED_FLAG_RESET_ON_FORK;
    attr.runtime = micros.saturating_mul(1000);
    // SAFETY: as above; the kernel only reads `attr`.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Not Linux: nothing to ask for.
#[cfg(not(target_os = "linux"))]
pub(crate) fn ask_slice(_micros: u64) -> std::io::Result<()> {
    Ok(())
}
