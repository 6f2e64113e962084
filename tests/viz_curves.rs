//! `viz::line_plot_svg`: the SVG parses as XML, draws one polyline per series inside the plot
//! area, labels ticks with round numbers, escapes text, and rejects bad input with an error.

use candle_explain::viz::{line_plot_svg, Series};
use roxmltree::{Document, Node};

/// Deletion-style curves: model output falling as a fraction of pixels is removed.
fn deletion_curves() -> Vec<Series> {
    let x: Vec<f64> = (0..=10).map(|i| i as f64 * 0.1).collect();
    let curve = |rate: f64| x.iter().map(|f| (-rate * f).exp()).collect::<Vec<_>>();
    vec![
        Series::new("Saliency", x.clone(), curve(1.0)),
        Series::new("Integrated Gradients", x.clone(), curve(3.0)),
        Series::new("LRP-ε", x.clone(), curve(5.0)),
    ]
}

fn parse(svg: &str) -> Document<'_> {
    Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed XML ({e}):\n{svg}"))
}

fn with_class<'a, 'i>(doc: &'a Document<'i>, class: &str) -> Vec<Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .collect()
}

fn texts(node: Node) -> Vec<String> {
    node.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").to_string())
        .collect()
}

fn polyline_points(doc: &Document) -> Vec<Vec<(f64, f64)>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .map(|n| {
            n.attribute("points")
                .unwrap()
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

/// `(x, y, width, height)` of the plot area.
fn plot_area(doc: &Document) -> (f64, f64, f64, f64) {
    let r = with_class(doc, "plot-area")[0];
    let a = |k: &str| r.attribute(k).unwrap().parse::<f64>().unwrap();
    (a("x"), a("y"), a("width"), a("height"))
}

fn assert_inside(doc: &Document) {
    let (ax, ay, aw, ah) = plot_area(doc);
    for (x, y) in polyline_points(doc).into_iter().flatten() {
        assert!(
            (ax..=ax + aw).contains(&x) && (ay..=ay + ah).contains(&y),
            "({x}, {y}) outside the plot area {:?}",
            (ax, ay, aw, ah)
        );
    }
}

/// Tick labels are short, print as Rust's shortest form of their value, are evenly spaced on
/// a 1, 2 or 5 × 10^k step, and there are about five of them.
fn assert_nice_ticks(labels: &[String]) {
    assert!(
        (3..=7).contains(&labels.len()),
        "{} ticks: {labels:?}",
        labels.len()
    );
    let values: Vec<f64> = labels
        .iter()
        .map(|l| {
            l.parse()
                .unwrap_or_else(|_| panic!("tick label {l:?} is not a number"))
        })
        .collect();
    for (l, v) in labels.iter().zip(&values) {
        assert!(l.len() <= 8, "tick label {l:?} is not compact");
        let shortest = if l.contains('e') {
            format!("{v:e}")
        } else {
            format!("{v}")
        };
        assert_eq!(l, &shortest, "tick label {l:?} has spurious digits");
    }
    let step = values[1] - values[0];
    let mantissa = step / 10f64.powf((step.log10() + 1e-9).floor());
    assert!(
        [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6),
        "step {step} of {labels:?} is not 1, 2 or 5 × 10^k"
    );
    for w in values.windows(2) {
        assert!(
            ((w[1] - w[0]) - step).abs() <= 1e-9 * step,
            "uneven ticks {labels:?}"
        );
        let k = w[1] / step;
        assert!(
            (k - k.round()).abs() < 1e-6,
            "tick {} is not a multiple of the step {step}",
            w[1]
        );
    }
}

#[test]
fn svg_is_well_formed_with_one_polyline_per_series() {
    let series = deletion_curves();
    let svg = line_plot_svg(
        "Deletion",
        "fraction of pixels removed",
        "p(class)",
        &series,
    )
    .unwrap();
    let doc = parse(&svg);
    let root = doc.root_element();
    assert!(root.has_tag_name("svg"));
    assert_eq!(root.attribute("viewBox"), Some("0 0 640 400"));
    assert!(
        !svg.contains("<script") && !svg.contains("@import") && !svg.contains("href"),
        "must be self-contained"
    );
    let lines = polyline_points(&doc);
    assert_eq!(lines.len(), series.len());
    for (line, s) in lines.iter().zip(&series) {
        assert_eq!(line.len(), s.x.len(), "{}", s.name);
    }
    let groups = with_class(&doc, "series");
    assert_eq!(groups.len(), series.len());
    for g in &groups {
        assert_eq!(
            g.descendants().filter(|n| n.has_tag_name("circle")).count(),
            11,
            "markers on short series"
        );
    }
    let colours: Vec<_> = groups
        .iter()
        .map(|g| g.attribute("stroke").unwrap())
        .collect();
    assert!(
        colours[0] != colours[1] && colours[1] != colours[2] && colours[0] != colours[2],
        "{colours:?}"
    );
    let legend = texts(with_class(&doc, "legend")[0]);
    assert_eq!(
        legend,
        series.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
    );
    for (class, want) in [
        ("title", "Deletion"),
        ("x-label", "fraction of pixels removed"),
        ("y-label", "p(class)"),
    ] {
        assert_eq!(with_class(&doc, class)[0].text(), Some(want));
    }
    assert_inside(&doc);
}

#[test]
fn markers_only_for_series_of_at_most_30_points() {
    let s = |n: usize| {
        Series::new(
            format!("{n}"),
            (0..n).map(|i| i as f64).collect(),
            (0..n).map(|i| (i as f64).sqrt()).collect(),
        )
    };
    let svg = line_plot_svg("n", "x", "y", &[s(30), s(31), s(500)]).unwrap();
    let doc = parse(&svg);
    let circles: Vec<usize> = with_class(&doc, "series")
        .iter()
        .map(|g| g.descendants().filter(|n| n.has_tag_name("circle")).count())
        .collect();
    assert_eq!(circles, [30, 0, 0]);
    assert_eq!(
        polyline_points(&doc)
            .iter()
            .map(Vec::len)
            .collect::<Vec<_>>(),
        [30, 31, 500]
    );
}

#[test]
fn tick_labels_are_nice_numbers() {
    // x summed in steps of 0.1 (0.30000000000000004 and friends), y of various magnitudes.
    let mut x = vec![0.0];
    for _ in 0..9 {
        x.push(x.last().unwrap() + 0.1);
    }
    let cases: [(f64, f64); 7] = [
        (0.0, 1.0),
        (0.1, 0.7),
        (-3.0, 17.0),
        (1e-6, 7e-6),
        (2.5e6, 9.1e6),
        (-0.02, 0.013),
        (1234.5, 1236.25),
    ];
    for (lo, hi) in cases {
        let y: Vec<f64> = (0..x.len())
            .map(|i| lo + (hi - lo) * i as f64 / (x.len() - 1) as f64)
            .collect();
        let svg = line_plot_svg(
            "Sensitivity-n",
            "n",
            "correlation",
            &[Series::new("IG", x.clone(), y)],
        )
        .unwrap();
        let doc = parse(&svg);
        for class in ["x-ticks", "y-ticks"] {
            let labels = texts(with_class(&doc, class)[0]);
            assert_nice_ticks(&labels);
        }
        assert!(!svg.contains("0000000"), "long float in {svg}");
        // Tick marks lie on the plot area's edges, within its extent.
        let (ax, ay, aw, ah) = plot_area(&doc);
        for t in with_class(&doc, "y-ticks")[0]
            .children()
            .filter(|n| n.has_tag_name("text"))
        {
            let ty: f64 = t.attribute("y").unwrap().parse().unwrap();
            assert!(
                (ay..=ay + ah).contains(&ty),
                "y tick at {ty} outside the plot for {lo}..{hi}"
            );
        }
        for t in with_class(&doc, "x-ticks")[0]
            .children()
            .filter(|n| n.has_tag_name("text"))
        {
            let tx: f64 = t.attribute("x").unwrap().parse().unwrap();
            assert!(
                (ax..=ax + aw).contains(&tx),
                "x tick at {tx} outside the plot"
            );
        }
    }
}

#[test]
fn text_is_escaped() {
    let name = "a<&>\"b' c";
    let s = Series::new(name, vec![0.0, 1.0], vec![1.0, 0.0]);
    let svg = line_plot_svg("x & y < z", "<n>", "\"r\"", &[s]).unwrap();
    assert!(svg.contains("a&lt;&amp;&gt;&quot;b&#39; c"), "{svg}");
    assert!(!svg.contains(name) && !svg.contains("x & y"));
    let doc = parse(&svg);
    assert_eq!(texts(with_class(&doc, "legend")[0]), [name]);
    assert_eq!(with_class(&doc, "title")[0].text(), Some("x & y < z"));
    assert_eq!(with_class(&doc, "x-label")[0].text(), Some("<n>"));
    assert_eq!(with_class(&doc, "y-label")[0].text(), Some("\"r\""));
    // Characters XML cannot carry at all are replaced, so the document still parses.
    let svg = line_plot_svg(
        "bell\u{7}",
        "x",
        "y",
        &[Series::new("nul\u{0}", vec![0.0], vec![0.0])],
    )
    .unwrap();
    parse(&svg);
}

#[test]
fn bad_input_is_an_error() {
    let ok = || Series::new("ok", vec![0.0, 1.0], vec![0.0, 1.0]);
    let err = |series: Vec<Series>| {
        line_plot_svg("t", "x", "y", &series).expect_err("bad input must be an error")
    };
    assert!(err(vec![]).contains("at least one series"));
    let e = err(vec![
        ok(),
        Series::new("short", vec![0.0, 1.0, 2.0], vec![0.0, 1.0]),
    ]);
    assert!(
        e.contains("series 1") && e.contains("\"short\"") && e.contains("3") && e.contains("2"),
        "{e}"
    );
    let e = err(vec![Series::new("empty", vec![], vec![])]);
    assert!(e.contains("\"empty\"") && e.contains("at least one"), "{e}");
    let e = err(vec![
        ok(),
        Series::new("nan", vec![0.0, 1.0], vec![0.5, f64::NAN]),
    ]);
    assert!(
        e.contains("\"nan\"") && e.contains("y[1]") && e.contains("finite"),
        "{e}"
    );
    let e = err(vec![Series::new(
        "inf",
        vec![f64::INFINITY, 1.0],
        vec![0.0, 1.0],
    )]);
    assert!(
        e.contains("\"inf\"") && e.contains("x[0]") && e.contains("finite"),
        "{e}"
    );
    let e = err(vec![Series::new(
        "-inf",
        vec![0.0],
        vec![f64::NEG_INFINITY],
    )]);
    assert!(e.contains("y[0]"), "{e}");
    // Finite but too far apart to subtract: still an error, not a panic or a broken picture.
    let e = err(vec![Series::new(
        "huge",
        vec![0.0, 1.0],
        vec![-f64::MAX, f64::MAX],
    )]);
    assert!(e.contains("too wide"), "{e}");
}

#[test]
fn constant_and_single_point_series_still_plot() {
    let cases = [
        vec![Series::new("flat", vec![0.0, 0.5, 1.0], vec![0.3; 3])],
        vec![Series::new("zero", vec![0.0, 0.5, 1.0], vec![0.0; 3])],
        vec![Series::new("one point", vec![2.0], vec![-7.5])],
        vec![Series::new("same x", vec![1.0, 1.0], vec![0.0, 1.0])],
        vec![
            Series::new("one point", vec![0.0], vec![1.0]),
            Series::new("flat", vec![0.0, 4.0], vec![1.0, 1.0]),
        ],
    ];
    for series in cases {
        let svg = line_plot_svg("t", "x", "y", &series).unwrap_or_else(|e| panic!("{e}"));
        let doc = parse(&svg);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let lines = polyline_points(&doc);
        assert_eq!(
            lines.iter().map(Vec::len).collect::<Vec<_>>(),
            series.iter().map(|s| s.x.len()).collect::<Vec<_>>()
        );
        assert_inside(&doc);
        for class in ["x-ticks", "y-ticks"] {
            assert_nice_ticks(&texts(with_class(&doc, class)[0]));
        }
        // A constant series draws a horizontal line strictly inside the area, not on its edge.
        let (_, ay, _, ah) = plot_area(&doc);
        for (_, y) in lines.iter().flatten() {
            assert!(
                *y > ay && *y < ay + ah,
                "{y} on the edge of {ay}..{}",
                ay + ah
            );
        }
    }
}

#[test]
fn points_are_monotone_in_x_and_inside_the_plot_area() {
    let x: Vec<f64> = (0..50).map(|i| -2.0 + (i as f64).powf(1.3) * 0.1).collect();
    let series = [
        Series::new("sin", x.clone(), x.iter().map(|v| v.sin()).collect()),
        Series::new(
            "cubic",
            x.clone(),
            x.iter().map(|v| 0.01 * v.powi(3)).collect(),
        ),
    ];
    let svg = line_plot_svg("curves", "x", "y", &series).unwrap();
    let doc = parse(&svg);
    assert_inside(&doc);
    let (ax, ay, aw, ah) = plot_area(&doc);
    for (line, s) in polyline_points(&doc).iter().zip(&series) {
        assert!(
            line.windows(2).all(|w| w[1].0 > w[0].0),
            "{}: x not increasing",
            s.name
        );
        // Larger data y is higher on screen (smaller SVG y).
        for (i, j) in (0..line.len()).flat_map(|i| (0..line.len()).map(move |j| (i, j))) {
            if s.y[i] > s.y[j] + 1e-9 {
                assert!(line[i].1 < line[j].1 + 0.011, "{}: y not inverted", s.name);
            }
        }
    }
    // The x axis spans the data: the first and last points sit on the left and right edges.
    let first = polyline_points(&doc)[0][0].0;
    let last = polyline_points(&doc)[0].last().unwrap().0;
    assert!(
        (first - ax).abs() < 0.01 && (last - (ax + aw)).abs() < 0.01,
        "{first} {last} vs {ax}..{}",
        ax + aw
    );
    // The y axis has 5 % padding: no point touches the top or bottom edge.
    let ys = polyline_points(&doc).into_iter().flatten().map(|p| p.1);
    let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(l, u), y| (l.min(y), u.max(y)));
    let pad = ah / 1.1 * 0.05;
    assert!(
        (lo - (ay + pad)).abs() < 0.02 && (ay + ah - pad - hi).abs() < 0.02,
        "{lo}..{hi} in {ay}..{}",
        ay + ah
    );
}

#[test]
fn output_is_deterministic_and_many_series_stay_distinct() {
    let series = deletion_curves();
    assert_eq!(
        line_plot_svg("t", "x", "y", &series).unwrap(),
        line_plot_svg("t", "x", "y", &series.clone()).unwrap()
    );
    let many: Vec<Series> = (0..12)
        .map(|i| Series::new(format!("m{i}"), vec![0.0, 1.0], vec![i as f64, 0.0]))
        .collect();
    let svg = line_plot_svg("many", "x", "y", &many).unwrap();
    let doc = parse(&svg);
    assert_eq!(polyline_points(&doc).len(), 12);
    let style: Vec<(String, Option<String>)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .map(|n| {
            (
                n.parent().unwrap().attribute("stroke").unwrap().to_string(),
                n.attribute("stroke-dasharray").map(String::from),
            )
        })
        .collect();
    for i in 0..style.len() {
        for j in 0..i {
            assert_ne!(style[i], style[j], "series {i} and {j} look the same");
        }
    }
    assert_eq!(texts(with_class(&doc, "legend")[0]).len(), 12);
}

/// Error bars: one path per point of a series that has them, spanning y ± e in pixels, the y
/// axis widened to hold them inside the plot area; a bad bar is an error naming it.
#[test]
fn error_bars_span_their_interval_inside_the_plot() {
    let x = vec![0.1, 0.5, 0.9];
    let with = Series::new("seeds", x.clone(), vec![0.8, 0.6, 0.5]).with_error(vec![0.05, 0.2, 0.4]);
    let svg = line_plot_svg("ROAR", "fraction", "accuracy", &[with.clone(), Series::new("plain", x.clone(), vec![0.7, 0.7, 0.7])]).unwrap();
    let doc = parse(&svg);
    let bars = with_class(&doc, "error-bar");
    assert_eq!(bars.len(), 3, "one bar per point of the series with errors only");
    let (_, ay, _, ah) = plot_area(&doc);
    let pts = &polyline_points(&doc)[0];
    for (bar, ((_, py), e)) in bars.iter().zip(pts.iter().zip([0.05, 0.2, 0.4])) {
        // "Mx a Vb M…": the vertical segment's two ends.
        let d = bar.attribute("d").unwrap();
        let nums: Vec<f64> = d.split(|c: char| c.is_ascii_alphabetic() || c == ' ').filter(|t| !t.is_empty()).map(|t| t.parse().unwrap()).collect();
        let (a, b) = (nums[1], nums[2]);
        assert!((ay..=ay + ah).contains(&a) && (ay..=ay + ah).contains(&b), "bar {d} leaves the plot area");
        // Symmetric about the point, and as long as 2e in the axis' pixels per unit.
        assert!(((a + b) / 2.0 - py).abs() < 0.02, "bar {d} not centred on y = {py}");
        let per_unit = (pts[0].1 - pts[2].1).abs() / 0.3;
        assert!(((a - b).abs() - 2.0 * e * per_unit).abs() < 0.05, "bar {d}: length for ±{e}");
    }
    for bad in [vec![0.1, 0.1], vec![0.1, -0.1, 0.1], vec![0.1, f64::NAN, 0.1]] {
        let e = line_plot_svg("t", "x", "y", &[Series::new("s", x.clone(), vec![0.8, 0.6, 0.5]).with_error(bad)]).unwrap_err();
        assert!(e.contains("error"), "{e}");
    }
}
