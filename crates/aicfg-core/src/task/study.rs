//! Running a study: every parsed experiment searched in order, an infeasible one recorded with
//! its reason while the study goes on. `cli exp` and the web page's experiment tab both run this.
use super::Experiment;
use crate::error::{AicfgError, Result};
use crate::hardware::SystemRegistry;
use crate::limits::SearchLimits;
use crate::model::ModelRegistry;
use crate::search::{SearchRequest, SearchResult, MAX_TOP_N};

/// One experiment with its search result.
pub struct Outcome {
    pub experiment: Experiment,
    pub request: SearchRequest,
    pub result: SearchResult,
}

/// An experiment that could not run (no deployment fits, an unsupported combination, ...).
pub struct Failed {
    pub experiment: Experiment,
    pub reason: String,
}

/// Every experiment of a study: those that ran and those that could not.
pub struct Study {
    pub outcomes: Vec<Outcome>,
    pub failed: Vec<Failed>,
}

/// Search parsed experiments in order with `top_n` rows per table; `run` runs one search (the
/// CLI adds a progress bar, the webapp a cancellation check).
pub fn search_all(
    exps: Vec<Experiment>,
    models: &ModelRegistry,
    systems: &SystemRegistry,
    top_n: usize,
    limits: &SearchLimits,
    run: impl Fn(&SearchRequest) -> Result<SearchResult>,
) -> Result<Study> {
    if top_n == 0 || top_n > MAX_TOP_N {
        return Err(AicfgError::invalid(
            "top_n",
            format!("must be between 1 and {MAX_TOP_N}, got {top_n}"),
        ));
    }
    let mut study = Study {
        outcomes: Vec::with_capacity(exps.len()),
        failed: Vec::new(),
    };
    for e in exps {
        let searched = e.search_request(models, systems).and_then(|mut req| {
            req.top_n = top_n;
            req.limits = *limits;
            run(&req).map(|mut r| {
                e.label_quant(&mut r);
                (req, r)
            })
        });
        match searched {
            Ok((request, result)) => study.outcomes.push(Outcome {
                experiment: e,
                request,
                result,
            }),
            Err(err) => study.failed.push(Failed {
                experiment: e,
                reason: err.to_string(),
            }),
        }
    }
    Ok(study)
}
