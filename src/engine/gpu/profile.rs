//! Per-kernel GPU timings from timestamp queries (`GpuContext::profiled`): every dispatch of a
//! profiled context is bracketed by two timestamps written inside its compute pass, labelled
//! with the kernel it ran; `GpuContext::take_kernel_times` resolves and reads them back. Only on
//! adapters with timestamp queries inside passes (native Vulkan, Metal, DX12; lavapipe has them),
//! and only where asked for: an ordinary context writes no timestamps.

use crate::engine::{EngineError, Result};
use std::sync::{Arc, Mutex};

/// Dispatches one profiled context can time between two reads (two queries each).
const CAPACITY: u32 = 2048;

/// One timed dispatch: the kernel's label and its duration in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// `shader.wgsl:entry` and the layer shape where the kernel has one (`IN=128 OUT=256`).
    pub kernel: Arc<str>,
    pub ns: f64,
}

/// The query set and the labels of the dispatches written into it since the last read.
pub(crate) struct Profiler {
    pub(crate) queries: wgpu::QuerySet,
    pub(crate) resolve: wgpu::Buffer,
    pub(crate) staging: wgpu::Buffer,
    /// Nanoseconds per timestamp tick (`Queue::get_timestamp_period`).
    period: f64,
    labels: Mutex<Labels>,
}

#[derive(Default)]
struct Labels {
    written: Vec<Arc<str>>,
    /// Dispatches past [`CAPACITY`] since the last read (not timed; reading reports them).
    dropped: u64,
}

impl Profiler {
    pub(crate) fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Self {
        let bytes = 16 * CAPACITY as u64;
        Profiler {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * CAPACITY,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kernel timestamps resolved"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            staging: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kernel timestamps staging"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            period: queue.get_timestamp_period() as f64,
            labels: Mutex::new(Labels::default()),
        }
    }

    /// Claims the next pair of queries for a dispatch of `kernel`; None when the set is full
    /// (the dispatch then runs untimed and the next read says how many were dropped).
    pub(crate) fn claim(&self, kernel: &Arc<str>) -> Option<u32> {
        let mut l = self.labels.lock().ok()?;
        if l.written.len() as u32 >= CAPACITY {
            l.dropped += 1;
            return None;
        }
        l.written.push(kernel.clone());
        Some(2 * (l.written.len() as u32 - 1))
    }

    /// The labels written since the last call (and forgets them), or an error if dispatches
    /// were dropped.
    pub(crate) fn take(&self) -> Result<Vec<Arc<str>>> {
        let mut l = self
            .labels
            .lock()
            .map_err(|_| EngineError::Device("profiler lock poisoned".into()))?;
        let labels = std::mem::take(&mut l.written);
        let dropped = std::mem::take(&mut l.dropped);
        if dropped > 0 {
            return Err(EngineError::Device(format!(
                "{dropped} dispatches past the profiler's {CAPACITY} were not timed: read the \
                 kernel times more often"
            )));
        }
        Ok(labels)
    }

    /// Pairs resolved (begin, end) ticks with their labels.
    pub(crate) fn times(&self, labels: Vec<Arc<str>>, ticks: &[u64]) -> Vec<KernelTime> {
        labels
            .into_iter()
            .zip(ticks.chunks_exact(2))
            .map(|(kernel, t)| KernelTime {
                kernel,
                ns: t[1].saturating_sub(t[0]) as f64 * self.period,
            })
            .collect()
    }
}

/// The label of a kernel: `shader:entry`, with the layer shape where its constants give one.
pub(crate) fn label(shader: &str, entry: &str, constants: &[(&str, f64)]) -> Arc<str> {
    let mut s = format!("{shader}:{entry}");
    for (name, value) in constants {
        if matches!(*name, "IN" | "OUT") {
            s.push_str(&format!(" {name}={value}"));
        }
    }
    s.into()
}
