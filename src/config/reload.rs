//! The outcome of the last configuration reload, for `leakwatch_config_last_reload_*`.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

/// Outcome of the last configuration reload.
#[derive(Debug)]
pub struct ReloadStatus {
    pub last_ok: AtomicBool,
    pub last_success_unix: Mutex<f64>,
}

impl Default for ReloadStatus {
    fn default() -> Self {
        ReloadStatus {
            last_ok: AtomicBool::new(true),
            last_success_unix: Mutex::new(crate::units::unix_now_f64()),
        }
    }
}
