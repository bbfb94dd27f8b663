//! "Did you mean" for names typed by users (models, systems, backends, formats, keys, profiles).
use crate::error::AicfgError;

/// Levenshtein distance, for "did you mean".
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known name closest to `given`, if it is close enough to be a plausible typo.
pub fn closest<'a>(given: &str, known: &[&'a str]) -> Option<&'a str> {
    let g = given.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&g, k), *k))
        .min()
        .filter(|(d, k)| *d <= (k.len() / 3).max(2) && *d < k.len())
        .map(|(_, k)| k)
}

/// The error for a name that is none of `candidates`: with the closest candidate as a
/// "did you mean" when one is a plausible typo. `known` is the list the message shows (it may
/// spell the candidates differently, e.g. with their Hugging Face ids).
pub fn unknown(what: &'static str, given: &str, candidates: &[&str], known: String) -> AicfgError {
    match closest(given.trim(), candidates) {
        Some(s) => AicfgError::UnknownNear {
            what,
            given: given.to_string(),
            suggestion: s.to_string(),
            known,
        },
        None => AicfgError::Unknown {
            what,
            given: given.to_string(),
            known,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_gets_the_closest_name_and_a_stranger_none() {
        let known = ["trtllm", "vllm", "sglang"];
        let e = unknown("backend", "trtlm", &known, known.join(", ")).to_string();
        assert_eq!(
            e,
            "unknown backend 'trtlm'; did you mean 'trtllm'? known: trtllm, vllm, sglang"
        );
        let e = unknown("backend", "onnxruntime", &known, known.join(", ")).to_string();
        assert_eq!(
            e,
            "unknown backend 'onnxruntime'; known: trtllm, vllm, sglang"
        );
    }
}
