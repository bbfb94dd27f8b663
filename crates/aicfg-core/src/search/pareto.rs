//! Pareto frontier of (tokens/s/user, tokens/s/gpu), both maximized (docs/model.md §8).

/// Indices of the non-dominated points, sorted by x ascending (then y descending). A point is
/// kept iff no other point is ≥ in both coordinates and > in one; exact duplicates keep the
/// first index only.
pub fn frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].0.is_finite() && points[i].1.is_finite())
        .collect();
    // Sweep from the largest x down, keeping points that raise the best y seen so far.
    idx.sort_by(|&a, &b| {
        points[b]
            .0
            .total_cmp(&points[a].0)
            .then(points[b].1.total_cmp(&points[a].1))
            .then(a.cmp(&b))
    });
    let mut best_y = f64::NEG_INFINITY;
    let mut kept = Vec::new();
    for i in idx {
        if points[i].1 > best_y {
            best_y = points[i].1;
            kept.push(i);
        }
    }
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_non_dominated() {
        let pts = [
            (1.0, 10.0),
            (2.0, 8.0),
            (2.0, 5.0),
            (3.0, 8.0),
            (4.0, 1.0),
            (0.5, 9.0),
        ];
        // (2,8) is dominated by (3,8); (2,5) and (0.5,9) by others.
        assert_eq!(frontier(&pts), vec![0, 3, 4]);
    }

    #[test]
    fn duplicates_and_nan() {
        let pts = [(1.0, 1.0), (1.0, 1.0), (f64::NAN, 5.0)];
        assert_eq!(frontier(&pts), vec![0]);
        assert!(frontier(&[]).is_empty());
    }
}
