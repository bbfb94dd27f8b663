//! `config.yaml`: the fully resolved experiment of one serving mode, in the experiment-file
//! layout (`exps:` plus the experiments), so `cli exp` can run it again. The experiment itself
//! comes from the task module ([`Experiment::from_search`]); this only names and annotates it.
use crate::error::Result;
use aicfg_core::search::{SearchRequest, SearchResult};
use aicfg_core::task::{study_yaml, Experiment};
use aicfg_core::ServeMode;

/// The experiment file of one mode: one experiment, or one per backend for `--backend auto`
/// (an experiment runs one backend; the best of them is the search's best).
pub fn experiment_yaml(
    req: &SearchRequest,
    result: &SearchResult,
    mode: ServeMode,
) -> Result<String> {
    let dir = crate::mode_dir(mode);
    let several = req.backends.len() > 1;
    let exps = req
        .backends
        .iter()
        .map(|&b| {
            let name = if several {
                format!("exp_{dir}_{}", b.name())
            } else {
                format!("exp_{dir}")
            };
            let mut e = Experiment::from_search(&name, req, result, mode, b)?;
            e.backend_version = Some(crate::genconfig::modelled_version(b).to_string());
            Ok(e)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut head = format!(
        "# Fully resolved {dir} experiment of this search; rerun with `aicfg cli exp --yaml_path config.yaml`.\n"
    );
    if req.calibration.is_some() {
        // No experiment key names a calibration file; say so rather than drop it silently.
        head.push_str(
            "# Searched with --calibration FILE; cli exp uses the embedded calibration.\n",
        );
    }
    Ok(head + &study_yaml(&exps)?)
}
