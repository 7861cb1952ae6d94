//! Progress reporting for long runs. Core calls this trait; the binary plugs in a progress bar on
//! a terminal, tests and scripts plug in nothing.

pub trait Progress: Sync {
    /// A run of `total` steps begins.
    fn start(&self, _total: u64, _label: &str) {}
    /// `n` more steps are done; `item` names the last one.
    fn advance(&self, _n: u64, _item: &str) {}
    /// The run is over.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
