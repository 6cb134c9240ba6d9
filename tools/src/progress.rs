//! Progress bars: drawn on stderr, and only when both stdout and stderr are terminals and the
//! user did not ask for `--quiet` or `--json`. Otherwise every bar is hidden (a no-op), so the
//! callers never branch on it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress bars should be drawn.
pub fn enabled(quiet: bool, json: bool) -> bool {
    !quiet && !json && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// A byte-counting bar of `total` bytes (hidden unless `on`).
pub fn bytes_bar(on: bool, total: u64, what: &str) -> ProgressBar {
    if !on {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg:>12} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A spinner with a message (hidden unless `on`).
pub fn spinner(on: bool, what: &str) -> ProgressBar {
    if !on {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A `Read` that advances a bar as bytes go through.
pub struct ProgressRead<'a, R> {
    inner: R,
    bar: &'a ProgressBar,
}

impl<'a, R> ProgressRead<'a, R> {
    /// Wrap `inner`.
    pub fn new(inner: R, bar: &'a ProgressBar) -> Self {
        ProgressRead { inner, bar }
    }
}

impl<R: std::io::Read> std::io::Read for ProgressRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
