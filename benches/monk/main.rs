//! The monkctl benchmark: each figure is monkctl's time beside a baseline measured in the same
//! run, and their ratio. Run with `cargo bench --bench monk -- [SUITE...]` (all suites when none
//! is named). Targets are printed beside the ratios; nothing here fails on a slow machine.

mod util;

#[path = "../../tests/standin/mod.rs"]
mod standin;

mod archive;
mod doctor;
mod fixtures;
mod live;
mod migrate;
mod pgarchive;
mod postgres;
mod query;
mod tenants;

fn main() {
    // Re-executed by the `live` suite as the API stand-in.
    if standin::main_if_asked() {
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let suites: &[(&str, fn())] = &[
        ("tenants", tenants::run),
        ("fixtures", fixtures::run),
        ("migrate", migrate::run),
        ("archive", archive::run),
        ("doctor", doctor::run),
        ("live", live::run),
        ("query", query::run),
        ("postgres", postgres::run),
        ("pgarchive", pgarchive::run),
    ];
    let mut ran = 0;
    for (name, run) in suites {
        if args.is_empty() || args.iter().any(|a| a == name) {
            println!("\n## {name}");
            run();
            ran += 1;
        }
    }
    if ran == 0 {
        let names: Vec<&str> = suites.iter().map(|s| s.0).collect();
        eprintln!("unknown suite; choose from: {}", names.join(", "));
        std::process::exit(2);
    }
}
