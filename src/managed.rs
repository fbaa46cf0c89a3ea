//! [`ManagedEngine`]: an engine that outlives its GPU device. It holds the engine, why the CPU
//! engine runs where the GPU was wanted, and how often the engine was rebuilt; a call that
//! fails on a device fault (the GPU device lost, destroyed, or failing its readbacks) rebuilds
//! the engine from the policy and runs again, any other failure is returned as it is. The
//! browser classes of `src/web/` each hold one.

use crate::engine::{AnyEngine, Engine, EngineError, EngineInfo, Preference};
use crate::model::ModelConfig;
use crate::policy::Policy;
use serde::Serialize;

/// An error that may mean the device is gone (and the engine worth rebuilding).
pub trait DeviceFault {
    fn is_device_fault(&self) -> bool;
}

impl DeviceFault for EngineError {
    fn is_device_fault(&self) -> bool {
        matches!(
            self,
            EngineError::DeviceLost(_) | EngineError::Device(_) | EngineError::Readback(_)
        )
    }
}

impl DeviceFault for crate::simulate::StepError {
    fn is_device_fault(&self) -> bool {
        matches!(self, crate::simulate::StepError::Engine(e) if e.is_device_fault())
    }
}

/// The engine in use, as the page's `engineInfo()` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ManagedEngineInfo {
    #[serde(flatten)]
    pub info: EngineInfo,
    /// Why the CPU engine runs when the GPU was wanted, if it does.
    pub fallback_reason: Option<String>,
    /// Times the engine was rebuilt after a device fault.
    pub recoveries: u32,
}

/// An engine, the preference it was made with, why it is the CPU engine (if it is where the
/// GPU was wanted) and how often it was rebuilt after a device fault.
pub struct ManagedEngine {
    engine: AnyEngine,
    fallback: Option<String>,
    preference: Preference,
    recoveries: u32,
}

impl ManagedEngine {
    /// The preferred engine for `model` (see [`AnyEngine::new`]).
    pub async fn new(model: &ModelConfig, preference: Preference) -> Result<Self, EngineError> {
        let (engine, fallback) = AnyEngine::new(model, preference).await?;
        Ok(ManagedEngine {
            engine,
            fallback,
            preference,
            recoveries: 0,
        })
    }

    /// The preferred engine for `policy`, loaded with it.
    pub async fn for_policy(policy: &Policy, preference: Preference) -> Result<Self, EngineError> {
        let mut managed = Self::new(&policy.model, preference).await?;
        policy.load_into(&mut managed.engine)?;
        Ok(managed)
    }

    /// Replaces the engine by a new one for `policy` (same preference; the recoveries so far
    /// are kept).
    pub async fn load(&mut self, policy: &Policy) -> Result<(), EngineError> {
        let recoveries = self.recoveries;
        *self = Self::for_policy(policy, self.preference).await?;
        self.recoveries = recoveries;
        Ok(())
    }

    pub fn engine(&mut self) -> &mut AnyEngine {
        &mut self.engine
    }

    pub fn preference(&self) -> Preference {
        self.preference
    }

    pub fn recoveries(&self) -> u32 {
        self.recoveries
    }

    pub fn info(&self) -> ManagedEngineInfo {
        ManagedEngineInfo {
            info: self.engine.info(),
            fallback_reason: self.fallback.clone(),
            recoveries: self.recoveries,
        }
    }

    /// Destroys the GPU device, as a driver reset would (for tests and drills). No-op on the
    /// CPU engine.
    pub fn simulate_device_loss(&self) {
        if let AnyEngine::Gpu(g) = &self.engine {
            g.context().destroy();
        }
    }

    /// Runs `call` on the engine; when it fails on a device fault, rebuilds the engine from
    /// `policy` (the GPU when one can be had again, else the CPU engine) and runs it once more.
    /// `call` must leave nothing changed when its engine fails (the state it works on lives
    /// outside the engine).
    pub async fn run<T, E>(
        &mut self,
        policy: &Policy,
        mut call: impl AsyncFnMut(&mut AnyEngine) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: DeviceFault + From<EngineError>,
    {
        match call(&mut self.engine).await {
            Err(e) if e.is_device_fault() => {
                self.load(policy).await?;
                self.recoveries += 1;
                call(&mut self.engine).await
            }
            other => other,
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let model = ModelConfig {
            input: 4,
            hidden: vec![8],
            output: 4,
            head: crate::model::Head::Policy { items: 6 },
            max_rows: 4,
            ..ModelConfig::reference_policy()
        };
        Policy {
            params: vec![0.1; model.param_count()],
            items: vec![0.5; 6 * model.output],
            model,
            adapt: Default::default(),
            parts: None,
        }
    }

    #[test]
    fn recovers_only_from_device_faults() {
        let policy = policy();
        let mut managed =
            pollster::block_on(ManagedEngine::for_policy(&policy, Preference::Cpu)).unwrap();
        let mut calls = 0;
        let r: Result<(), EngineError> = pollster::block_on(managed.run(&policy, async |_| {
            calls += 1;
            Err(EngineError::Input("a bad slate size".into()))
        }));
        assert!(matches!(r, Err(EngineError::Input(_))));
        assert_eq!((calls, managed.recoveries()), (1, 0));

        let mut calls = 0;
        let r = pollster::block_on(managed.run(&policy, async |_| {
            calls += 1;
            if calls == 1 {
                Err(EngineError::DeviceLost("destroyed".into()))
            } else {
                Ok(calls)
            }
        }));
        assert_eq!(r.unwrap(), 2);
        assert_eq!(managed.recoveries(), 1);
        assert_eq!(managed.info().recoveries, 1);
    }
}
