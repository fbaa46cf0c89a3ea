//! The GPU context: instance, adapter, device and queue; shader modules compiled once; a cache of
//! specialised pipelines; readback through a staging buffer. Never panics on a missing adapter.

use super::profile::{self, KernelTime, Profiler};
use super::uniforms::{uniform_bytes, WGSL_STRUCTS};
use super::Kernel;
use crate::engine::{EngineError, EngineInfo, Result};
use bytemuck::Pod;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The shader files, each prefixed with `shaders/common.wgsl` (reductions, constants) and the
/// shared structs' declarations ([`WGSL_STRUCTS`]); the two dense ones also with
/// `shaders/dense_tile.wgsl` (the tiled and one-row products over the operands they define).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Shader {
    DenseForward,
    DenseBackward,
    Score,
    Softmax,
    Loss,
    Adam,
    Reduce,
    Tangent,
    Fisher,
}

impl Shader {
    const ALL: [Shader; 9] = [
        Shader::DenseForward,
        Shader::DenseBackward,
        Shader::Score,
        Shader::Softmax,
        Shader::Loss,
        Shader::Adam,
        Shader::Reduce,
        Shader::Tangent,
        Shader::Fisher,
    ];

    fn name(self) -> &'static str {
        match self {
            Shader::DenseForward => "dense_forward.wgsl",
            Shader::DenseBackward => "dense_backward.wgsl",
            Shader::Score => "score.wgsl",
            Shader::Softmax => "softmax.wgsl",
            Shader::Loss => "loss.wgsl",
            Shader::Adam => "adam.wgsl",
            Shader::Reduce => "reduce.wgsl",
            Shader::Tangent => "tangent.wgsl",
            Shader::Fisher => "fisher.wgsl",
        }
    }

    fn source(self) -> String {
        let body = match self {
            Shader::DenseForward => include_str!("../../../shaders/dense_forward.wgsl"),
            Shader::DenseBackward => include_str!("../../../shaders/dense_backward.wgsl"),
            Shader::Score => include_str!("../../../shaders/score.wgsl"),
            Shader::Softmax => include_str!("../../../shaders/softmax.wgsl"),
            Shader::Loss => include_str!("../../../shaders/loss.wgsl"),
            Shader::Adam => include_str!("../../../shaders/adam.wgsl"),
            Shader::Reduce => include_str!("../../../shaders/reduce.wgsl"),
            Shader::Tangent => include_str!("../../../shaders/tangent.wgsl"),
            Shader::Fisher => include_str!("../../../shaders/fisher.wgsl"),
        };
        let mut source = include_str!("../../../shaders/common.wgsl").to_string();
        for declaration in WGSL_STRUCTS {
            source.push('\n');
            source.push_str(declaration);
        }
        if matches!(self, Shader::DenseForward | Shader::DenseBackward) {
            source.push('\n');
            source.push_str(include_str!("../../../shaders/dense_tile.wgsl"));
        }
        source.push('\n');
        source.push_str(body);
        source
    }
}

/// A device plus everything built once for it. Cheap to clone; engines for several models can
/// share one context.
#[derive(Clone)]
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: EngineInfo,
    binding_limit: u64,
    modules: Arc<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Arc<Mutex<HashMap<String, wgpu::ComputePipeline>>>,
    /// Set by the device-lost callback or by an uncaptured error.
    fault: Arc<Mutex<Option<EngineError>>>,
    /// Present in a profiled context only: every dispatch is timed ([`Self::profiled`]).
    profiler: Option<Arc<Profiler>>,
}

impl GpuContext {
    /// Opens the default adapter. Natively, `METAREC_NO_GPU=1` hides every adapter (to exercise
    /// the CPU fallback) and `WGPU_BACKEND` picks backends as in wgpu.
    pub async fn new() -> Result<Self> {
        #[cfg(not(target_arch = "wasm32"))]
        if std::env::var("METAREC_NO_GPU").is_ok_and(|v| !v.is_empty() && v != "0") {
            return Err(EngineError::NoAdapter(
                "GPU disabled by METAREC_NO_GPU".into(),
            ));
        }
        Self::with_backends(None).await
    }

    /// Opens an adapter from the given backends only (`Some(Backends::empty())` finds none).
    pub async fn with_backends(backends: Option<wgpu::Backends>) -> Result<Self> {
        Self::open(backends, false).await
    }

    /// Opens the default adapter with every dispatch timed by timestamp queries (per-kernel
    /// timings: [`Self::take_kernel_times`]); an error if the adapter cannot write timestamps
    /// inside compute passes.
    pub async fn profiled() -> Result<Self> {
        Self::open(None, true).await
    }

    async fn open(backends: Option<wgpu::Backends>, profile: bool) -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if let Some(b) = backends {
            desc.backends = b;
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| EngineError::NoAdapter(e.to_string()))?;
        let a = adapter.get_info();
        let limits = adapter.limits();
        let timestamps =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        if profile && !adapter.features().contains(timestamps) {
            return Err(EngineError::Device(format!(
                "{} cannot write timestamps inside compute passes: no per-kernel timings",
                a.name
            )));
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("metarec"),
                required_limits: limits.clone(),
                required_features: if profile {
                    timestamps
                } else {
                    wgpu::Features::empty()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| EngineError::Device(e.to_string()))?;
        let fault = Arc::new(Mutex::new(None));
        let lost = fault.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut f) = lost.lock() {
                *f = Some(EngineError::DeviceLost(format!("{reason:?}: {message}")));
            }
        });
        let uncaptured = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut f) = uncaptured.lock() {
                f.get_or_insert(EngineError::Device(e.to_string()));
            }
        }));
        let info = EngineInfo {
            engine: "gpu".into(),
            adapter: if a.name.is_empty() {
                format!("{:?} adapter", a.backend)
            } else {
                a.name.clone()
            },
            backend: a.backend.to_string(),
            device_type: format!("{:?}", a.device_type).to_lowercase(),
            fallback: a.device_type == wgpu::DeviceType::Cpu,
        };
        let mut modules = HashMap::new();
        for shader in Shader::ALL {
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.name()),
                source: wgpu::ShaderSource::Wgsl(shader.source().into()),
            });
            if let Some(e) = scope.pop().await {
                return Err(EngineError::Shader {
                    shader: shader.name().into(),
                    message: e.to_string(),
                });
            }
            modules.insert(shader, module);
        }
        // wgpu's handles are Send + Sync natively; on wasm32 they are not, and nothing there is
        // shared across threads (the same holds for the modules and pipelines below)
        #[allow(clippy::arc_with_non_send_sync)]
        let profiler = profile.then(|| Arc::new(Profiler::new(&device, &queue)));
        Ok(GpuContext {
            profiler,
            binding_limit: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            device,
            queue,
            info,
            modules: Arc::new(modules),
            pipelines: Arc::new(Mutex::new(HashMap::new())),
            fault,
        })
    }

    /// Caps the bytes one storage binding may hold (below the device limit), so that tests can
    /// exercise catalog tiling on small catalogs.
    pub fn with_binding_limit(mut self, bytes: u64) -> Self {
        self.binding_limit = self.binding_limit.min(bytes.max(256));
        self
    }

    /// Adapter description.
    pub fn info(&self) -> &EngineInfo {
        &self.info
    }

    pub(crate) fn binding_limit(&self) -> u64 {
        self.binding_limit
    }

    /// Destroys the device, as a lost GPU would (tests and the page's device-loss drill).
    pub fn destroy(&self) {
        self.device.destroy();
    }

    /// The first device loss or uncaptured error since creation, if any.
    pub(crate) fn check(&self) -> Result<()> {
        match self.fault.lock() {
            Ok(f) => match &*f {
                Some(EngineError::DeviceLost(m)) => Err(EngineError::DeviceLost(m.clone())),
                Some(e) => Err(EngineError::Device(e.to_string())),
                None => Ok(()),
            },
            Err(_) => Err(EngineError::Device("fault lock poisoned".into())),
        }
    }

    /// A pipeline for `entry` of `shader` specialised with `constants`, built once and cached.
    pub(crate) async fn pipeline(
        &self,
        shader: Shader,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let key = format!("{}:{entry}:{constants:?}", shader.name());
        if let Some(p) = self.lock_pipelines()?.get(&key) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&key),
                layout: None,
                module: &self.modules[&shader],
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            });
        if let Some(e) = scope.pop().await {
            return Err(EngineError::Shader {
                shader: format!("{} ({entry})", shader.name()),
                message: e.to_string(),
            });
        }
        self.lock_pipelines()?.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    fn lock_pipelines(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<String, wgpu::ComputePipeline>>> {
        self.pipelines
            .lock()
            .map_err(|_| EngineError::Device("pipeline cache lock poisoned".into()))
    }

    /// A storage buffer of `bytes` (at least 16) usable as copy source and destination.
    pub(crate) fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// An empty uniform buffer for a `T` (see `uniforms.rs`), filled and rewritten with
    /// `queue.write_buffer`.
    pub(crate) fn uniform<T: Pod>(&self, label: &str) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: uniform_bytes::<T>(),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A bind group for group 0 of `pipeline`: `buffer` at each `(binding, buffer)`.
    pub(crate) fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, &wgpu::Buffer)],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = entries
            .iter()
            .map(|(binding, buffer)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// The pipeline for `entry` of `shader` specialised with `constants` (see [`Self::pipeline`])
    /// with its bind group: `buffer` at each `(binding, buffer)`.
    pub(crate) async fn kernel(
        &self,
        shader: Shader,
        entry: &str,
        constants: &[(&str, f64)],
        entries: &[(u32, &wgpu::Buffer)],
    ) -> Result<Kernel> {
        let pipeline = self.pipeline(shader, entry, constants).await?;
        let bind = self.bind(&pipeline, entries);
        let timed = self
            .profiler
            .as_ref()
            .map(|p| (p.clone(), profile::label(shader.name(), entry, constants)));
        Ok(Kernel {
            pipeline,
            bind,
            timed,
        })
    }

    /// The durations of the dispatches run since the last call, in order, on a profiled context
    /// ([`Self::profiled`]); waits for the device. An error on an ordinary context.
    pub async fn take_kernel_times(&self) -> Result<Vec<KernelTime>> {
        let p = self.profiler.as_ref().ok_or_else(|| {
            EngineError::Device(
                "kernel times need a profiled context (GpuContext::profiled)".into(),
            )
        })?;
        let labels = p.take()?;
        if labels.is_empty() {
            return Ok(Vec::new());
        }
        let n = 2 * labels.len() as u32;
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        enc.resolve_query_set(&p.queries, 0..n, &p.resolve, 0);
        let out = self
            .read_back(enc, &p.staging, &[(&p.resolve, 8 * n as u64)])
            .await?;
        // copied out, not cast in place: the bytes need not be 8-aligned
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&out[0]);
        Ok(p.times(labels, &ticks))
    }

    /// Submits `encoder` after copying each `(buffer, bytes)` into `staging`, then awaits the
    /// mapping and returns the bytes of each copy. The one place the engine reads back.
    pub(crate) async fn read_back(
        &self,
        mut encoder: wgpu::CommandEncoder,
        staging: &wgpu::Buffer,
        copies: &[(&wgpu::Buffer, u64)],
    ) -> Result<Vec<Vec<u8>>> {
        let mut offset = 0;
        for (buffer, bytes) in copies {
            encoder.copy_buffer_to_buffer(buffer, 0, staging, offset, *bytes);
            offset += bytes.next_multiple_of(8);
        }
        self.queue.submit([encoder.finish()]);
        let slice = staging.slice(..offset.max(8));
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| EngineError::Readback(e.to_string()))?;
        rx.await
            .map_err(|_| EngineError::Readback("map callback dropped".into()))?
            .map_err(|e| EngineError::Readback(e.to_string()))?;
        let out = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| EngineError::Readback(e.to_string()))?;
            let mut out = Vec::with_capacity(copies.len());
            let mut at = 0usize;
            for (_, bytes) in copies {
                out.push(view[at..at + *bytes as usize].to_vec());
                at += bytes.next_multiple_of(8) as usize;
            }
            out
        };
        staging.unmap();
        self.check()?;
        Ok(out)
    }
}
