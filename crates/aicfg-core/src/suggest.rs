//! "Did you mean" for names typed by users (systems, keys, profiles).

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
