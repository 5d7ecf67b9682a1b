//! `--version` names the commit a binary was built from: the Makefile exports
//! `HAKIT_COMMIT` (`git rev-parse`, `-dirty` with local changes); a plain `cargo build`
//! without it says the package version only.
fn main() {
    println!("cargo:rerun-if-env-changed=HAKIT_COMMIT");
    let commit = std::env::var("HAKIT_COMMIT").unwrap_or_default();
    if !commit.is_empty()
        && commit.len() <= 64
        && commit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        println!(
            "cargo:rustc-env=HAKIT_VERSION={} (commit {commit})",
            std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
        );
    }
}
