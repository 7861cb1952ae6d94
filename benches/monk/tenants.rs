//! Foundation figures: creating tenants and listing the registry.

pub fn run() {
    println!("(tenant figures: see below)");
}
