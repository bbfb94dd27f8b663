//! Measurements of a running deployment: per-request records from a benchmark client, their
//! statistics (mean and percentiles, throughput, goodput), the seeded load schedule, and the
//! step from a measured point to a calibration-CSV row and correction scales. No I/O here:
//! `aicfg bench serve` drives the network and `aicfg eval` writes the files.
pub mod calib;
pub mod load;
pub mod stats;

pub use calib::{CalibRow, CorrectionScales, CALIB_COLUMNS};
pub use load::{LengthDist, SplitMix64};
pub use stats::{percentile, BenchSummary, Dist, RequestRecord, SloTargets};
