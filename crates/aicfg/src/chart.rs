//! ASCII Pareto chart for the terminal: tokens/s/gpu (y) against tokens/s/user (x).

pub struct Series {
    pub label: String,
    pub mark: char,
    /// (x, y) sorted by x.
    pub points: Vec<(f64, f64)>,
}

const WIDTH: usize = 72;
const HEIGHT: usize = 24;

/// A round axis maximum ≥ v (1, 2, 2.5, 5 × 10^k).
fn nice_ceil(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let e = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * e >= v {
            return m * e;
        }
    }
    10.0 * e
}

fn fmt_tick(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Render series (lines through their points) and the best point marked `X`.
pub fn render(title: &str, series: &[Series], best: Option<(f64, f64)>) -> String {
    let xmax = nice_ceil(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(best.map(|b| b.0))
            .fold(0.0, f64::max)
            * 1.05,
    );
    let ymax = nice_ceil(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(best.map(|b| b.1))
            .fold(0.0, f64::max)
            * 1.05,
    );
    let mut grid = vec![vec![' '; WIDTH]; HEIGHT];
    let cell = |x: f64, y: f64| -> (usize, usize) {
        let c = ((x / xmax) * (WIDTH - 1) as f64)
            .round()
            .clamp(0.0, (WIDTH - 1) as f64) as usize;
        let r = ((1.0 - y / ymax) * (HEIGHT - 1) as f64)
            .round()
            .clamp(0.0, (HEIGHT - 1) as f64) as usize;
        (r, c)
    };
    for s in series {
        for (i, &(x, y)) in s.points.iter().enumerate() {
            let (r, c) = cell(x, y);
            grid[r][c] = s.mark;
            if let Some(&(nx, ny)) = s.points.get(i + 1) {
                // Fill the segment to the next point so the frontier reads as a line.
                let steps = 4 * WIDTH;
                for k in 1..steps {
                    let t = k as f64 / steps as f64;
                    let (r, c) = cell(x + (nx - x) * t, y + (ny - y) * t);
                    if grid[r][c] == ' ' {
                        grid[r][c] = s.mark;
                    }
                }
            }
        }
    }
    if let Some((x, y)) = best {
        let (r, c) = cell(x, y);
        grid[r][c] = 'X';
    }
    // Legend in the top-left corner.
    let mut legend: Vec<String> = series
        .iter()
        .map(|s| format!("{0}{0} {1}", s.mark, s.label))
        .collect();
    if best.is_some() {
        legend.push("XX best".into());
    }
    for (r, text) in legend.iter().enumerate().take(HEIGHT) {
        for (k, ch) in text.chars().enumerate() {
            if 1 + k < WIDTH {
                grid[r][1 + k] = ch;
            }
        }
    }
    let label_w = fmt_tick(ymax).len().max(4);
    let mut out = String::new();
    let pad = (label_w + 2 + WIDTH).saturating_sub(title.chars().count()) / 2;
    out.push_str(&format!("{}{}\n", " ".repeat(pad), title));
    out.push_str(&format!("{}┌{}┐\n", " ".repeat(label_w), "─".repeat(WIDTH)));
    for (r, row) in grid.iter().enumerate() {
        let tick = r % 4 == 0 || r == HEIGHT - 1;
        let label = if tick {
            fmt_tick(ymax * (1.0 - r as f64 / (HEIGHT - 1) as f64))
        } else {
            String::new()
        };
        let line: String = row.iter().collect();
        out.push_str(&format!(
            "{label:>label_w$}{}{line}│\n",
            if tick { '┤' } else { '│' }
        ));
    }
    // X axis with five ticks.
    let mut axis: Vec<char> = "─".repeat(WIDTH).chars().collect();
    let mut labels = vec![' '; WIDTH + 8];
    for k in 0..5 {
        let c = k * (WIDTH - 1) / 4;
        axis[c] = '┬';
        let text = fmt_tick(xmax * k as f64 / 4.0);
        let start = c.saturating_sub(text.len() / 2);
        for (j, ch) in text.chars().enumerate() {
            if start + j < labels.len() {
                labels[start + j] = ch;
            }
        }
    }
    out.push_str(&format!(
        "{}└{}┘\n",
        " ".repeat(label_w),
        axis.iter().collect::<String>()
    ));
    out.push_str(&format!(
        "{} {}\n",
        " ".repeat(label_w),
        labels.iter().collect::<String>().trim_end()
    ));
    let ylab = "tokens/s/gpu";
    let xlab = "tokens/s/user";
    let mid = label_w + 1 + WIDTH / 2 - xlab.len() / 2;
    out.push_str(&format!(
        "{ylab}{}{xlab}\n",
        " ".repeat(mid.saturating_sub(ylab.len()))
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(87.0), 100.0);
        assert_eq!(nice_ceil(1234.0), 1500.0);
    }

    #[test]
    fn marks_points_and_best() {
        let s = Series {
            label: "agg".into(),
            mark: 'a',
            points: vec![(10.0, 100.0), (50.0, 20.0)],
        };
        let out = render("t", &[s], Some((10.0, 100.0)));
        assert!(out.contains("aa agg"));
        assert!(out.contains("XX best"));
        assert_eq!(out.matches('X').count(), 3, "{out}");
        assert!(out.contains("tokens/s/user"));
    }
}
