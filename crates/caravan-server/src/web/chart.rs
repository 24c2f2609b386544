//! The frame of the pages' bar charts, drawn on the server as SVG: a fixed view box that scales
//! to the width, an accessible name and description, the axis, a grid line at the top of the
//! scale and its value (above the line, so a long amount never runs off the left); and the
//! escaping of text put into SVG or HTML by hand.

use std::fmt::Write as _;

/// Where a chart draws: its view box and the margins around the bars.
#[derive(Clone, Copy)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    /// Room left of the first bar, for the `0` tick.
    pub left: f64,
    /// Room under the axis, for the bars' labels.
    pub bottom: f64,
    /// Room above the top of the scale, for its value.
    pub top: f64,
}

impl Frame {
    /// The axis's height in the view box: bars stand on it.
    pub fn base(&self) -> f64 {
        self.height - self.bottom
    }

    /// How tall the largest bar is.
    pub fn plot(&self) -> f64 {
        self.height - self.bottom - self.top
    }

    /// The width each of `count` bars has, gaps included.
    pub fn slot(&self, count: usize) -> f64 {
        (self.width - self.left - 8.0) / count.max(1) as f64
    }

    /// The opening of a chart named `title` (`id` makes its labels unique on the page), with
    /// its axis and its scale topped at `top_value`; the caller adds the bars and `</svg>`.
    pub fn open(&self, id: &str, title: &str, description: &str, top_value: &str) -> String {
        let (width, height, left, top) = (self.width, self.height, self.left, self.top);
        let (id, title, description) = (escape(id), escape(title), escape(description));
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{id}-title {id}-desc" xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{title}</title><desc id="{id}-desc">{description}</desc>"#
        );
        let _ = write!(
            svg,
            r#"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" class="axis"/><line x1="{left}" y1="{top}" x2="{x2}" y2="{top}" class="grid"/><text x="{left}" y="{ty}" class="tick">{label}</text><text x="{tx}" y="{y}" class="tick" text-anchor="end">0</text>"#,
            y = self.base(),
            x2 = width - 4.0,
            tx = left - 6.0,
            ty = top - 8.0,
            label = escape(top_value),
        );
        svg
    }
}

/// Escapes text for SVG and HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
