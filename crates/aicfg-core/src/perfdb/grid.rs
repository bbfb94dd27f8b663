//! Interpolation over measured points (docs/model.md §5.3).
//!
//! A table slice (fixed exact keys) is a tree of sorted axes, outer → inner, whose leaves are
//! latencies in ms. A query resolves axis by axis:
//!
//! 1. **Exact hit** on an axis value collapses that level; all exact → the measured value.
//! 2. **Inside** the measured range of an axis: resolve the two bracketing children and blend
//!    linearly in the coordinate, `T⁻¹(T(lo) + w·(T(hi) − T(lo)))`, with `T = sqrt` on the sequence
//!    axis of context-type ops (their work grows ~quadratically with length) and `T = id` elsewhere.
//!    Grids may be ragged (an inner axis measured at different values under each outer value); each
//!    child is resolved on its own values, so no full rectangle is needed.
//! 3. **Above** the range: resolve at the last measured value and scale by the roofline ratio
//!    `SOL(q) / SOL(snapped)` — the op keeps the utilization (SOL/measured) of the nearest measured
//!    point, so latency grows like the physics bound.
//! 4. **Below** the range: hold the first measured latency. (Change from the reference, which holds
//!    utilization there too: below the smallest measured size kernels are launch/overhead-bound and a
//!    SOL ratio shrinks latency toward zero, the largest error source it reports.)
//!
//! SOL is a closure over the full coordinate vector, so the ratio in (3) is taken with the outer
//! axes at the grid values being resolved and the inner axes at the query.

/// Coordinates of one measured point (unused trailing axes are 0).
pub type Pt = [f64; 3];

/// Per-axis blending transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blend {
    Linear,
    Sqrt,
}

/// One axis level of a slice: its measured values are `keys[start..start + len]`; the value at
/// position `j` leads to node `child + j` (inner levels) or to latency `leaves[child + j]`
/// (innermost level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Node {
    pub start: u32,
    pub len: u32,
    pub child: u32,
}

/// A slice of a table: `dims` axes, outer → inner, stored flat (three arrays per slice, so
/// building, caching and loading one costs a few allocations however many points it has).
/// Node 0 is the outermost level; the nodes of one depth are contiguous.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grid {
    pub dims: usize,
    pub nodes: Vec<Node>,
    pub keys: Vec<f64>,
    pub leaves: Vec<f64>,
}

impl Grid {
    /// Build from points (coordinates, latency); `dims` ≤ 3 leading coordinates are used.
    /// Duplicate coordinates keep the first point.
    pub fn build(dims: usize, mut pts: Vec<(Pt, f64)>) -> Grid {
        assert!((1..=3).contains(&dims), "grids have 1 to 3 axes");
        pts.sort_by(|a, b| {
            for (x, y) in a.0.iter().zip(&b.0) {
                match x.total_cmp(y) {
                    std::cmp::Ordering::Equal => continue,
                    o => return o,
                }
            }
            std::cmp::Ordering::Equal
        });
        pts.dedup_by(|b, a| a.0 == b.0);
        let mut g = Grid {
            dims,
            ..Default::default()
        };
        if pts.is_empty() {
            return g;
        }
        // Breadth first: the point ranges of the nodes at the current depth.
        let mut ranges = vec![(0usize, pts.len())];
        for d in 0..dims {
            let leaf = d + 1 == dims;
            let mut next = Vec::new();
            let first_child = g.nodes.len() + ranges.len();
            let mut child = if leaf { 0 } else { first_child };
            for &(lo, hi) in &ranges {
                let start = g.keys.len();
                let node_child = if leaf { g.leaves.len() } else { child };
                let mut i = lo;
                while i < hi {
                    let k = pts[i].0[d];
                    let mut j = i;
                    while j < hi && pts[j].0[d] == k {
                        j += 1;
                    }
                    g.keys.push(k);
                    if leaf {
                        g.leaves.push(pts[i].1);
                    } else {
                        next.push((i, j));
                    }
                    i = j;
                }
                let len = g.keys.len() - start;
                g.nodes.push(Node {
                    start: start as u32,
                    len: len as u32,
                    child: node_child as u32,
                });
                if !leaf {
                    child += len;
                }
            }
            ranges = next;
        }
        g
    }

    /// Checks what [`Grid::build`] guarantees (a grid read from a cache file must pass before
    /// a query walks it): node ranges inside the arrays, each depth's children exactly the next
    /// depth's nodes, values finite and increasing within a node, latencies finite and positive.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(1..=3).contains(&self.dims) {
            return Err(format!("{} axes", self.dims));
        }
        if self.nodes.is_empty() {
            return match self.keys.is_empty() && self.leaves.is_empty() {
                true => Ok(()),
                false => Err("values without axes".into()),
            };
        }
        // Walk depth by depth: `lo..hi` are the node indices of the current depth.
        let (mut lo, mut hi) = (0usize, 1usize);
        let mut key_end = 0usize;
        for d in 0..self.dims {
            let leaf = d + 1 == self.dims;
            let mut expect = if leaf { 0 } else { hi };
            for n in self.nodes.get(lo..hi).ok_or("node index past the end")? {
                let (s, l, c) = (n.start as usize, n.len as usize, n.child as usize);
                if s != key_end || l == 0 || c != expect {
                    return Err("axis levels out of order".into());
                }
                key_end = s + l;
                let ks = self
                    .keys
                    .get(s..key_end)
                    .ok_or("axis values past the end")?;
                if !ks.iter().all(|k| k.is_finite()) || ks.windows(2).any(|p| p[0] >= p[1]) {
                    return Err("axis values not finite and increasing".into());
                }
                expect += l;
            }
            if leaf {
                if expect != self.leaves.len() || hi != self.nodes.len() {
                    return Err("latencies do not match the innermost axis".into());
                }
            } else {
                (lo, hi) = (hi, expect);
            }
        }
        if key_end != self.keys.len() {
            return Err("axis values left over".into());
        }
        if !self.leaves.iter().all(|x| x.is_finite() && *x > 0.0) {
            return Err("latencies not finite and positive".into());
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn keys_of(&self, n: &Node) -> &[f64] {
        &self.keys[n.start as usize..(n.start + n.len) as usize]
    }

    /// Measured range of the outermost axis.
    pub fn outer_range(&self) -> Option<(f64, f64)> {
        let k = self.keys_of(self.nodes.first()?);
        Some((*k.first()?, *k.last()?))
    }

    /// Latency at `q` (see the module rules). `sol` is the op's roofline at a coordinate vector.
    pub fn query(&self, q: &[f64], blend: &[Blend], sol: &dyn Fn(&[f64]) -> f64) -> Option<f64> {
        if self.is_empty() || q.len() != self.dims {
            return None;
        }
        let mut pt = [0.0f64; 3];
        let pt = &mut pt[..self.dims];
        pt.copy_from_slice(q);
        Some(self.resolve(0, 0, q, pt, blend, sol))
    }

    /// Child `c` (a node index, or a latency index at the innermost axis `d`).
    fn child(
        &self,
        c: usize,
        d: usize,
        q: &[f64],
        pt: &mut [f64],
        b: &[Blend],
        sol: &dyn Fn(&[f64]) -> f64,
    ) -> f64 {
        if d + 1 == self.dims {
            self.leaves[c]
        } else {
            self.resolve(c, d + 1, q, pt, b, sol)
        }
    }

    fn resolve(
        &self,
        node: usize,
        d: usize,
        q: &[f64],
        pt: &mut [f64],
        b: &[Blend],
        sol: &dyn Fn(&[f64]) -> f64,
    ) -> f64 {
        let l = &self.nodes[node];
        let base = l.child as usize;
        let c = q[d];
        let keys = self.keys_of(l);
        let n = keys.len();
        // First key ≥ c.
        let i = keys.partition_point(|k| *k < c);
        let out = if i < n && keys[i] == c {
            pt[d] = c;
            self.child(base + i, d, q, pt, b, sol)
        } else if i == 0 {
            // Below the range: hold the first measured latency.
            pt[d] = keys[0];
            self.child(base, d, q, pt, b, sol)
        } else if i == n {
            // Above the range: utilization held at the last measured value.
            let k = keys[n - 1];
            pt[d] = k;
            let v = self.child(base + n - 1, d, q, pt, b, sol);
            v * sol_ratio(pt, d, k, c, sol)
        } else {
            let (k0, k1) = (keys[i - 1], keys[i]);
            pt[d] = k0;
            let v0 = self.child(base + i - 1, d, q, pt, b, sol);
            pt[d] = k1;
            let v1 = self.child(base + i, d, q, pt, b, sol);
            let w = (c - k0) / (k1 - k0);
            match b.get(d).copied().unwrap_or(Blend::Linear) {
                Blend::Linear => v0 + w * (v1 - v0),
                Blend::Sqrt => {
                    let s = v0.max(0.0).sqrt() + w * (v1.max(0.0).sqrt() - v0.max(0.0).sqrt());
                    s * s
                }
            }
        };
        pt[d] = c;
        out
    }
}

/// Roofline ratio for moving axis `d` of `pt` from `from` to `to` (1 when SOL is degenerate).
fn sol_ratio(pt: &mut [f64], d: usize, from: f64, to: f64, sol: &dyn Fn(&[f64]) -> f64) -> f64 {
    pt[d] = from;
    let a = sol(pt);
    pt[d] = to;
    let b = sol(pt);
    if a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite() {
        b / a
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lin(_: &[f64]) -> f64 {
        1.0
    }

    #[test]
    fn exact_inside_above_below() {
        // 1-D: latency = 2·x measured at 10, 20, 40.
        let g = Grid::build(
            1,
            vec![
                ([10.0, 0.0, 0.0], 20.0),
                ([40.0, 0.0, 0.0], 80.0),
                ([20.0, 0.0, 0.0], 40.0),
            ],
        );
        let sol = |p: &[f64]| p[0];
        let q = |x: f64| g.query(&[x], &[Blend::Linear], &sol).unwrap();
        assert_eq!(q(20.0), 40.0);
        assert_eq!(q(30.0), 60.0);
        // Above: utilization of the point at 40 held → scales like SOL (∝ x).
        assert_eq!(q(80.0), 160.0);
        // Below: first latency held.
        assert_eq!(q(1.0), 20.0);
    }

    #[test]
    fn sqrt_blend_on_sequence_axis() {
        // Quadratic in s: L = s² at s = 10 and 30 → sqrt blend is exact at 20.
        let g = Grid::build(
            1,
            vec![([10.0, 0.0, 0.0], 100.0), ([30.0, 0.0, 0.0], 900.0)],
        );
        let v = g.query(&[20.0], &[Blend::Sqrt], &lin).unwrap();
        assert!((v - 400.0).abs() < 1e-9);
        let v = g.query(&[20.0], &[Blend::Linear], &lin).unwrap();
        assert!((v - 500.0).abs() < 1e-9);
    }

    #[test]
    fn ragged_two_axis_grid() {
        // Outer a ∈ {1, 3}; inner b measured at {1, 2} under a=1 and only {4} under a=3.
        let g = Grid::build(
            2,
            vec![
                ([1.0, 1.0, 0.0], 1.0),
                ([1.0, 2.0, 0.0], 2.0),
                ([3.0, 4.0, 0.0], 12.0),
            ],
        );
        let sol = |p: &[f64]| p[0] * p[1];
        // a=1, b=2 exact.
        assert_eq!(g.query(&[1.0, 2.0], &[Blend::Linear; 2], &sol), Some(2.0));
        // a=2, b=2: a=1 child exact (2), a=3 child below its range → holds 12; midpoint 7.
        assert_eq!(g.query(&[2.0, 2.0], &[Blend::Linear; 2], &sol), Some(7.0));
        // a=1, b=4: above a=1's range → 2 · (1·4)/(1·2) = 4.
        assert_eq!(g.query(&[1.0, 4.0], &[Blend::Linear; 2], &sol), Some(4.0));
    }

    #[test]
    fn built_grids_pass_the_check_and_damaged_ones_fail() {
        let g = Grid::build(
            3,
            vec![
                ([1.0, 1.0, 1.0], 1.0),
                ([1.0, 1.0, 2.0], 2.0),
                ([1.0, 5.0, 1.0], 3.0),
                ([2.0, 1.0, 7.0], 4.0),
            ],
        );
        assert_eq!(g.check(), Ok(()));
        assert_eq!((g.nodes.len(), g.keys.len(), g.leaves.len()), (6, 9, 4));
        assert_eq!(
            g.query(&[1.0, 5.0, 1.0], &[Blend::Linear; 3], &lin),
            Some(3.0)
        );
        let mut bad = g.clone();
        bad.nodes[1].child = 40;
        assert!(bad.check().is_err());
        let mut bad = g.clone();
        bad.keys.swap(0, 1);
        assert!(bad.check().is_err());
        let mut bad = g.clone();
        bad.leaves.pop();
        assert!(bad.check().is_err());
        let mut bad = g.clone();
        bad.leaves[0] = f64::NAN;
        assert!(bad.check().is_err());
        let mut bad = g;
        bad.dims = 2;
        assert!(bad.check().is_err());
    }

    #[test]
    fn empty_grid_answers_none() {
        let g = Grid::build(1, vec![]);
        assert!(g.query(&[1.0], &[Blend::Linear], &lin).is_none());
    }
}
