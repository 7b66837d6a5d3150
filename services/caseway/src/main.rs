//! The Caseway binary: one binary, many targets.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    no_transparent_huge_pages();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cli = caseway::cli::Cli::parse();
    runtime.block_on(caseway::cli::run(cli))
}

/// Turns transparent huge pages off for this process, before the runtime's threads allocate.
/// The allocator (mimalloc) asks for them where the kernel gives them on request (`madvise`, as
/// most distributions ship), and a 2 MiB page is resident once any byte of it is touched: that
/// more than doubled a node's resident set (every target: 161 MB at peak with them, 91 MB
/// without) for no throughput the benchmarks could measure (docs/benchmarks.md, memory).
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integers only and touches no memory of this process; on
    // a kernel without it the call fails and nothing changes.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
