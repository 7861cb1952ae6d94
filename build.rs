use std::os::unix::fs::MetadataExt;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    // The tests that mount file systems of their own (tests/fulldisk.rs) need root. Built by
    // anyone else they are marked ignored, so `cargo test` shows them as not run instead of
    // passing them silently; CI runs as root and runs them.
    println!("cargo::rustc-check-cfg=cfg(monkctl_root)");
    println!("cargo:rerun-if-env-changed=USER");
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        println!("cargo:rustc-cfg=monkctl_root");
    }
}
