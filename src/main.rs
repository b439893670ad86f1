//! The `hodi` binary: see [`hodi::cli`].

fn main() -> anyhow::Result<()> {
    hodi::cli::main()
}
