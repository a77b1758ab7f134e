//! Line charts rendered as inline SVG on the server and in the browser alike (no script, no external service).

use leptos::prelude::*;

use types::views::Chart;

/// Colours of successive lines.
const COLOURS: [&str; 4] = ["#3558d6", "#d2691e", "#2e8b57", "#8b3a8b"];
const W: f64 = 360.0;
const H: f64 = 170.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 28.0;

/// `title` as an element id: lower-case words joined by `-`.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// A compact number for axis labels.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The polyline points of each series in SVG coordinates, and the (x, y) ranges.
pub fn layout(chart: &Chart) -> (Vec<String>, (f64, f64), (f64, f64)) {
    let all =
        chart.series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) =
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        return (vec![String::new(); chart.series.len()], (0.0, 1.0), (0.0, 1.0));
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        let pad = y0.abs().max(1.0) * 0.05;
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let sy = |y: f64| TOP + (y1 - y) / (y1 - y0) * (H - TOP - BOTTOM);
    let lines = chart
        .series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    (lines, (x0, x1), (y0, y1))
}

/// One chart with its title, axes and legend.
#[component]
pub fn LineChart(chart: Chart) -> impl IntoView {
    let (lines, (x0, x1), (y0, y1)) = layout(&chart);
    let id = format!("chart-{}", slug(&chart.title));
    let empty = chart.series.iter().all(|s| s.points.is_empty());
    let legend: Vec<(String, &'static str)> =
        chart.series.iter().enumerate().map(|(i, s)| (s.name.clone(), COLOURS[i % COLOURS.len()])).collect();
    view! {
        <figure class="chart" id=id>
            <figcaption>{chart.title.clone()}</figcaption>
            <svg viewBox=format!("0 0 {W} {H}") width=W height=H role="img" aria-label=chart.title.clone()>
                <line x1=LEFT y1=TOP x2=LEFT y2=H - BOTTOM class="axis"/>
                <line x1=LEFT y1=H - BOTTOM x2=W - RIGHT y2=H - BOTTOM class="axis"/>
                <text x=LEFT - 4.0 y=TOP + 8.0 text-anchor="end" class="tick">{short(y1)}</text>
                <text x=LEFT - 4.0 y=H - BOTTOM text-anchor="end" class="tick">{short(y0)}</text>
                <text x=LEFT y=H - BOTTOM + 14.0 text-anchor="start" class="tick">{short(x0)}</text>
                <text x=W - RIGHT y=H - BOTTOM + 14.0 text-anchor="end" class="tick">{short(x1)}</text>
                <text x=(LEFT + W - RIGHT) / 2.0 y=H - 4.0 text-anchor="middle" class="tick">{chart.x.clone()}</text>
                {lines.into_iter().enumerate().map(|(i, points)| {
                    let colour = COLOURS[i % COLOURS.len()];
                    // Sparse lines (a few versions) also get a dot per point.
                    let dots: Vec<(String, String)> = if chart.series[i].points.len() <= 20 {
                        points.split(' ').filter_map(|p| p.split_once(',')).map(|(x, y)| (x.to_string(), y.to_string())).collect()
                    } else {
                        Vec::new()
                    };
                    view! {
                        <polyline points=points fill="none" stroke=colour stroke-width="2"
                            data-series=chart.series[i].name.clone()/>
                        {dots.into_iter().map(|(x, y)| view! { <circle cx=x cy=y r="2.5" fill=colour/> }).collect_view()}
                    }
                }).collect_view()}
                {empty.then(|| view! { <text x=W / 2.0 y=H / 2.0 text-anchor="middle" class="tick">"no data yet"</text> })}
            </svg>
            <div class="legend">
                {legend.into_iter().map(|(name, colour)| view! {
                    <span><i style=format!("background:{colour}")></i>{name}</span>
                }).collect_view()}
            </div>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::views::Series;

    #[test]
    fn points_span_the_plot_area_and_labels_are_short() {
        let chart = Chart {
            title: "Loss — job 3 (train rm)".into(),
            x: "step".into(),
            series: vec![Series { name: "train".into(), points: vec![(1.0, 0.7), (2.0, 0.5), (3.0, 0.3)] }],
        };
        let (lines, xs, ys) = layout(&chart);
        assert_eq!((xs, ys), ((1.0, 3.0), (0.3, 0.7)));
        assert_eq!(
            lines[0],
            format!(
                "{LEFT:.1},{TOP:.1} {:.1},{:.1} {:.1},{:.1}",
                (LEFT + W - RIGHT) / 2.0,
                (TOP + H - BOTTOM) / 2.0,
                W - RIGHT,
                H - BOTTOM
            )
        );
        assert_eq!(slug(&chart.title), "loss-job-3-train-rm");
        assert_eq!(
            (short(0.12345), short(1234.6), short(1e-6), short(2.0)),
            ("0.123".into(), "1235".into(), "1.0e-6".into(), "2".into())
        );
        let flat = Chart {
            title: "x".into(),
            x: "x".into(),
            series: vec![Series { name: "a".into(), points: vec![(0.0, 2.0)] }],
        };
        assert!(!layout(&flat).0[0].contains("NaN"));
    }
}
