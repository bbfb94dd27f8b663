//! aicfg-core: predict how an LLM serves on a GPU cluster (TTFT, TPOT, throughput, memory)
//! from an op-level performance model. No I/O beyond reading data files (and installing the
//! optional measured op database, `perfdb::install`); the binary prints.
pub mod admit;
pub mod backend;
pub mod bounded;
pub mod calibrate;
pub mod cost;
pub mod error;
pub mod estimate;
pub mod hardware;
pub mod input;
pub mod limits;
pub mod measure;
pub mod memory;
pub mod model;
pub mod perf;
pub mod perfdb;
pub mod quant;
pub mod search;
pub mod serve;
pub mod simulate;
pub mod suggest;
pub mod support;
pub mod task;
pub mod test_support;

pub use backend::Backend;
pub use error::{AicfgError, Result};
pub use estimate::{estimate, EstimateReport, EstimateRequest, WorkerSpec};
pub use hardware::{SystemRegistry, SystemSpec};
pub use model::{ModelRegistry, ModelSpec};
pub use perf::DatabaseMode;
pub use quant::QuantConfig;
pub use serve::{ServeMode, Workload};
