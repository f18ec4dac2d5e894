//! Line charts as inline SVG, drawn on the server: no script and no asset from elsewhere,
//! each with a text description for screen readers.

use std::fmt::Write as _;

use crate::html::esc;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// Line colours (dark enough on white) and dash patterns, so lines differ without colour.
const STYLES: [(&str, &str); 6] = [
    ("#1f5fbf", ""),
    ("#b3261e", "6 3"),
    ("#1e7a3c", "2 3"),
    ("#7a4bb3", "8 3 2 3"),
    ("#8a5a00", "4 4"),
    ("#0f6e78", "1 2"),
];

/// One line: its name and a value per x position (NaN: no value there).
#[derive(Clone, Debug)]
pub struct Series<'a> {
    pub name: &'a str,
    pub values: &'a [f64],
}

/// A chart of `series` over x positions labelled `x_first` … `x_last`; `unit` names the y
/// values. `id` makes the SVG's title and description referable.
pub fn line_chart(
    id: &str,
    title: &str,
    unit: &str,
    series: &[Series<'_>],
    x_first: &str,
    x_last: &str,
) -> String {
    let points = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = nice_ceiling(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| {
        LEFT + if points > 1 { plot_w * i as f64 / (points - 1) as f64 } else { plot_w / 2.0 }
    };
    let y = |v: f64| TOP + plot_h - if top > 0.0 { plot_h * v / top } else { 0.0 };

    let mut desc = format!("{title}, from {x_first} to {x_last}.");
    for s in series {
        if let Some(last) = s.values.iter().rev().find(|v| v.is_finite()) {
            let _ = write!(desc, " {}: latest {} {unit}.", s.name, trim(*last));
        }
    }
    let mut svg = format!(
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" class=\"chart\">\
<title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        esc(title),
        esc(&desc)
    );
    // Axes and gridlines at 0, half and the top.
    for frac in [0.0, 0.5, 1.0] {
        let v = top * frac;
        let yy = y(v);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#c8c8c8\"/>\
<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"#333\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            esc(&trim(v))
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{}\" font-size=\"11\" fill=\"#333\">{}</text>\
<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#333\">{}</text>",
        HEIGHT - 8.0,
        esc(x_first),
        WIDTH - RIGHT,
        HEIGHT - 8.0,
        esc(x_last)
    );
    for (i, s) in series.iter().enumerate() {
        let (colour, dash) = STYLES[i % STYLES.len()];
        let mut d = String::new();
        let mut pen_down = false;
        for (j, v) in s.values.iter().enumerate() {
            if !v.is_finite() {
                pen_down = false;
                continue;
            }
            let _ = write!(d, "{}{:.1} {:.1} ", if pen_down { "L" } else { "M" }, x(j), y(*v));
            pen_down = true;
        }
        if d.is_empty() {
            continue;
        }
        let dash =
            if dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{dash}\"") };
        let _ = write!(
            svg,
            "<path d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>",
            d.trim_end()
        );
    }
    svg.push_str("</svg>");
    let mut legend = String::from("<ul class=\"legend\">");
    for (i, s) in series.iter().enumerate() {
        let (colour, dash) = STYLES[i % STYLES.len()];
        let dash =
            if dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{dash}\"") };
        let _ = write!(
            legend,
            "<li><svg width=\"28\" height=\"10\" aria-hidden=\"true\"><line x1=\"0\" x2=\"28\" y1=\"5\" y2=\"5\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/></svg>{}</li>",
            esc(s.name)
        );
    }
    legend.push_str("</ul>");
    format!(
        "<figure class=\"chart\">{svg}<figcaption>{} ({})</figcaption>{legend}</figure>",
        esc(title),
        esc(unit)
    )
}

/// A round number at or above `v`: 1, 2 or 5 times a power of ten.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// A number with at most two decimals, trailing zeros removed.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_each_series_and_describes_it() {
        let a = [1.0, 2.0, f64::NAN, 4.0];
        let b = [0.5, 0.5, 0.5, 0.5];
        let svg = line_chart(
            "c1",
            "GPUs <leased>",
            "GPUs",
            &[Series { name: "h100", values: &a }, Series { name: "a100", values: &b }],
            "2 h ago",
            "now",
        );
        assert_eq!(svg.matches("<path ").count(), 2);
        // The gap (NaN) lifts the pen.
        assert_eq!(svg.matches(" M").count() + svg.matches("\"M").count(), 3);
        assert!(svg.contains("GPUs &lt;leased&gt;"), "title escaped");
        assert!(svg.contains("h100: latest 4 GPUs.") && svg.contains("a100: latest 0.5 GPUs."));
        assert!(svg.contains("aria-labelledby=\"c1-t c1-d\""));
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(17.0), 20.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_ceiling(0.031), 0.05);
    }
}
