//! Progress on stderr for searches that take longer than a second (never in JSON mode, never
//! when stderr is not a terminal).
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Bar {
    bar: ProgressBar,
    started: Instant,
    enabled: bool,
}

impl Bar {
    pub fn new(enabled: bool) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} searching {bar:40} {percent}% of layouts and xPyD compositions ({elapsed})",
            )
            .expect("static template is valid"),
        );
        Bar {
            bar,
            started: Instant::now(),
            enabled: enabled && std::io::stderr().is_terminal(),
        }
    }

    pub fn update(&self, done: usize, total: usize) {
        if !self.enabled {
            return;
        }
        if self.bar.is_hidden() && self.started.elapsed() > Duration::from_secs(1) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
    }

    pub fn finish(&self) {
        if !self.bar.is_hidden() {
            self.bar.finish_and_clear();
        }
    }
}
