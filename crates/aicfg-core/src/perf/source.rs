//! The one door to the performance sources. Given a database mode, the empirical constants, a
//! backend and a system, [`SystemSource::open`] decides which source prices ops (roofline,
//! empirical, or the measured tables with empirical fallback), which serving constants go with it,
//! and which mode actually answers (`auto` resolved). Estimate, search, experiments and the
//! calibration bench all come through here, so a SILICON-mode miss is the same typed error
//! ([`AicfgError::PerfDataMissing`]) everywhere.
use super::{BackendCalib, DatabaseMode, EmpiricalParams, EmpiricalSource, PerfSource};
use super::{SiliconSource, SolSource};
use crate::backend::Backend;
use crate::error::{AicfgError, Result};
use crate::hardware::SystemSpec;
use crate::perfdb::{self, OpDb};
use std::sync::Arc;

enum Kind {
    Sol(SolSource),
    Empirical(EmpiricalSource),
    Measured(SiliconSource),
}

/// What prices the ops of one system, and the serving constants that belong with it.
pub struct SystemSource {
    kind: Kind,
    /// Host-side serving constants of the backend for this source.
    pub calib: BackendCalib,
    /// Benchmark length in waves (TTFT burst model) for this source.
    pub burst_waves: f64,
    /// The mode that answers: `auto` resolved to `hybrid` or `empirical`.
    pub mode: DatabaseMode,
    /// The measured op database read, if any.
    pub db: Option<Arc<OpDb>>,
}

impl SystemSource {
    /// Choose the source for `sys`/`backend` under `mode`. Errors when silicon/hybrid is asked
    /// for and nothing is installed, or when the asked backend version is not installed.
    pub fn open(
        mode: DatabaseMode,
        params: &EmpiricalParams,
        backend: Backend,
        sys: &SystemSpec,
        backend_version: Option<&str>,
    ) -> Result<SystemSource> {
        if mode == DatabaseMode::Sol {
            // The roofline has no host overheads.
            return Ok(SystemSource {
                kind: Kind::Sol(SolSource),
                calib: BackendCalib::ZERO,
                burst_waves: params.burst_waves,
                mode,
                db: None,
            });
        }
        let empirical =
            EmpiricalSource::new(params.clone(), backend.name(), params.overlap_us * 1e-3);
        let db = database(mode, backend, sys, backend_version)?;
        let measured = db.is_some();
        // The measured-table modes have serving constants of their own.
        let (calib, burst_waves) = params.serving(backend.name(), measured);
        let (kind, mode) = match &db {
            Some(db) => {
                let strict = mode == DatabaseMode::Silicon;
                // The fallback prices what the tables lack as isolated kernels, as before.
                let fallback = EmpiricalSource::new(params.clone(), backend.name(), 0.0);
                let mut s = SiliconSource::new(db.clone(), fallback, strict);
                s.overlap_ms = params.silicon.as_ref().map_or(0.0, |c| c.overlap_us * 1e-3);
                let effective = if strict {
                    DatabaseMode::Silicon
                } else {
                    DatabaseMode::Hybrid
                };
                (Kind::Measured(s), effective)
            }
            None => (Kind::Empirical(empirical), DatabaseMode::Empirical),
        };
        Ok(SystemSource {
            kind,
            calib,
            burst_waves,
            mode,
            db,
        })
    }

    pub fn source(&self) -> &dyn PerfSource {
        match &self.kind {
            Kind::Sol(s) => s,
            Kind::Empirical(s) => s,
            Kind::Measured(s) => s,
        }
    }

    /// Whether op times come from the measured tables (silicon or hybrid).
    pub fn is_measured(&self) -> bool {
        self.db.is_some()
    }

    /// Whether a SILICON miss makes the prediction fail.
    pub fn is_strict(&self) -> bool {
        self.mode == DatabaseMode::Silicon
    }

    /// SILICON: an op the tables could not answer since the last check fails the prediction,
    /// naming the op. Other modes never miss.
    pub fn check(&self) -> Result<()> {
        match &self.kind {
            Kind::Measured(s) => match s.take_miss() {
                Some(why) => Err(AicfgError::PerfDataMissing(why)),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// The sources of one deployment: the agg/prefill system, and the decode workers' system when
/// it is other hardware (disaggregated serving).
pub struct DeploymentSources {
    pub main: SystemSource,
    decode: Option<(String, SystemSource)>,
}

impl DeploymentSources {
    /// `decode_sys` is opened only when it names another system than `sys`.
    pub fn open(
        mode: DatabaseMode,
        params: &EmpiricalParams,
        backend: Backend,
        sys: &SystemSpec,
        decode_sys: Option<&SystemSpec>,
        backend_version: Option<&str>,
    ) -> Result<DeploymentSources> {
        let main = SystemSource::open(mode, params, backend, sys, backend_version)?;
        let decode = match decode_sys {
            Some(d) if d.name != sys.name => Some((
                d.name.clone(),
                SystemSource::open(mode, params, backend, d, backend_version)?,
            )),
            _ => None,
        };
        Ok(DeploymentSources { main, decode })
    }

    /// The source of the decode workers.
    pub fn decode(&self) -> &SystemSource {
        self.decode.as_ref().map_or(&self.main, |(_, s)| s)
    }

    /// The source of workers running on the system named `name`.
    pub fn for_system(&self, name: &str) -> &SystemSource {
        match &self.decode {
            Some((n, s)) if n == name => s,
            _ => &self.main,
        }
    }

    /// The mode that answers: measured tables if either system reads them.
    pub fn mode(&self) -> DatabaseMode {
        match &self.decode {
            Some((_, d)) if !self.main.is_measured() && d.is_measured() => d.mode,
            _ => self.main.mode,
        }
    }

    /// See [`SystemSource::check`]; both systems.
    pub fn check(&self) -> Result<()> {
        self.main.check()?;
        match &self.decode {
            Some((_, d)) => d.check(),
            None => Ok(()),
        }
    }
}

/// Builds the index cache (`perfdb::cache`) of the database every run picks by default — the
/// newest version of each installed (system, backend), with the NCCL tables the built-in system
/// pairs with it — so the first estimate after `aicfg data install` is as fast as later ones.
/// Returns each database with how its cache was used.
pub fn build_index_caches(
    data_dir: &std::path::Path,
) -> Result<Vec<(perfdb::DbKey, perfdb::CacheUse)>> {
    let Some(root) = perfdb::active_root(data_dir) else {
        return Ok(Vec::new());
    };
    let systems = crate::hardware::SystemRegistry::builtin();
    let mut out = Vec::new();
    for (sys, backends) in perfdb::inventory(&root) {
        let nccl = systems
            .get(&sys)
            .ok()
            .and_then(|s| s.misc.nccl_version.clone());
        for be in backends.keys() {
            let key = perfdb::resolve(&root, &sys, be, None)?;
            let db = OpDb::load(&key, nccl.as_deref())?;
            out.push((key, db.cache));
        }
    }
    Ok(out)
}

/// The measured database for `sys`/`backend` under `mode`: None for sol/empirical, and for
/// `auto` when nothing is installed for the system/backend; an error when silicon/hybrid is asked
/// for and nothing is installed, or when the asked backend version is not installed. Loaded once
/// per process.
pub fn database(
    mode: DatabaseMode,
    backend: Backend,
    sys: &SystemSpec,
    backend_version: Option<&str>,
) -> Result<Option<Arc<OpDb>>> {
    if !mode.uses_database() {
        return Ok(None);
    }
    let Some(root) = perfdb::data_dir().and_then(|d| perfdb::active_root(&d)) else {
        if mode == DatabaseMode::Auto && backend_version.is_none() {
            return Ok(None);
        }
        return Err(AicfgError::PerfDbMissing(format!(
            "no measured op database installed{}; run `aicfg data install` (or set AICFG_DATA_DIR)",
            perfdb::data_dir()
                .map(|d| format!(" in {}", d.display()))
                .unwrap_or_default()
        )));
    };
    let key = match perfdb::resolve(&root, &sys.name, backend.name(), backend_version) {
        Ok(k) => k,
        Err(AicfgError::PerfDbMissing(_)) if mode == DatabaseMode::Auto => return Ok(None),
        Err(e) => return Err(e),
    };
    perfdb::open_cached(&key, sys.misc.nccl_version.as_deref()).map(Some)
}
