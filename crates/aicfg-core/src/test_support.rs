//! Fixtures for tests of the serving models, shared by this crate's unit tests, its integration
//! tests and those of downstream crates: roofline-timed workers without host costs, so every
//! expected time is one [`Worker::step_ms`] call away.
use crate::backend::Backend;
use crate::error::Result;
use crate::hardware::SystemSpec;
use crate::model::graph::Parallel;
use crate::model::ModelSpec;
use crate::perf::{BackendCalib, SolSource};
use crate::quant::QuantConfig;
use crate::serve::{Worker, Workload};

/// A bf16 worker of `tp` GPUs priced by the roofline with no host costs; `kv_fraction` is the
/// KV-cache memory fraction (None: the backend's default), `nextn` the MTP draft tokens.
pub fn roofline_worker<'a>(
    model: &'a ModelSpec,
    system: &'a SystemSpec,
    backend: Backend,
    tp: u32,
    kv_fraction: Option<f64>,
    nextn: u32,
) -> Result<Worker<'a>> {
    let p = Parallel {
        tp,
        ..Parallel::single()
    };
    Worker::new(
        model,
        &p,
        &QuantConfig::default(),
        system,
        backend,
        BackendCalib::ZERO,
        &SolSource,
        kv_fraction,
        nextn,
    )
}

/// Requests of `isl` input and `osl` output tokens, no cached prefix, no MTP.
pub fn workload(isl: f64, osl: f64) -> Workload {
    Workload {
        isl,
        osl,
        prefix: 0.0,
        nextn: 0,
        nextn_accepted: 0.0,
    }
}

/// `a` is within the relative tolerance `rel` of `b`.
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a / b - 1.0).abs() <= rel
}
