//! The `hodi` binary: see [`hodi::cli`].

/// mimalloc: the notification path allocates and frees small buffers on every worker thread at
/// tens of thousands a second, where glibc's allocator spent a fifth of the CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    hodi::cli::main()
}
