//! The scrape-time collector: builds every series of `/metrics` from the targets'
//! current state, the kernel-log follower's health and the last reload, on each request.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::emit;
use super::sink::{LabelledSamples, Sink, encode_groups};
use crate::config::ReloadStatus;
use crate::dump;
use crate::kernel_log::KernelLogStatus;
use crate::targets::Targets;

/// Builds every series at scrape time from the targets' current state.
#[derive(Debug)]
pub struct TargetsCollector {
    pub targets: Arc<Targets>,
    pub kernel: Arc<KernelLogStatus>,
    pub reload: Arc<ReloadStatus>,
    pub dumps: Arc<dump::DumpManager>,
}

impl Collector for TargetsCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::result::Result<(), std::fmt::Error> {
        let targets = self.targets.snapshot();
        let mut groups = Vec::with_capacity(targets.len() + 1);
        let mut global = Sink::new();
        global.gauge_with("leakwatch_build_info", &[env!("CARGO_PKG_VERSION")], 1u64);
        global.gauge("leakwatch_targets", targets.len() as u64);
        global.gauge(
            "leakwatch_config_last_reload_successful",
            self.reload
                .last_ok
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        global.gauge(
            "leakwatch_config_last_reload_success_timestamp_seconds",
            *self
                .reload
                .last_success_unix
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if let Some((source, ok)) = self
            .kernel
            .readable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            global.gauge_with("leakwatch_kernel_log_readable", &[&source], ok);
            global.counter(
                "leakwatch_host_oom_kills",
                self.kernel
                    .host_kills
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
        }
        groups.push(LabelledSamples {
            target_labels: Vec::new(),
            samples: global.samples,
        });
        for t in &targets {
            let mut sink = Sink::new();
            emit::target(t, &mut sink);
            emit::dumps(&self.dumps, &t.config.name, &mut sink);
            groups.push(LabelledSamples {
                target_labels: t.config.label_pairs(),
                samples: sink.samples,
            });
        }
        encode_groups(&groups, encoder)
    }
}
