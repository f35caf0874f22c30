//! A stable order for the exposition text. The Prometheus exporter writes its families and
//! series in hash-map order, which changes from one scrape to the next; people diffing two
//! scrapes, and tests, want the same series on the same line.

/// `text` with its families sorted by name and, within each, its series by their labels. The
/// lines of one histogram series (its buckets, `_sum` and `_count`) stay together and in
/// their order.
pub fn sorted(text: &str) -> String {
    let mut families: Vec<Family> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        let starts_family = match line.strip_prefix("# ") {
            // A family opens with its HELP line, or with TYPE when it has no help text.
            Some(comment) => {
                comment.starts_with("HELP ")
                    || (comment.starts_with("TYPE ")
                        && families
                            .last()
                            .is_none_or(|f| !f.series.is_empty() || f.has_type))
            }
            None => families.is_empty(),
        };
        if starts_family {
            families.push(Family::default());
        }
        let family = families.last_mut().expect("a family was just opened");
        if line.starts_with('#') {
            family.has_type |= line.starts_with("# TYPE ");
            if family.name.is_empty() {
                family.name = line
                    .split_whitespace()
                    .nth(2)
                    .unwrap_or_default()
                    .to_owned();
            }
            family.header.push(line);
            continue;
        }
        let key = series_key(line);
        match family.series.last_mut() {
            Some((last, lines)) if *last == key => lines.push(line),
            _ => family.series.push((key, vec![line])),
        }
    }
    families.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::with_capacity(text.len());
    for mut family in families {
        family.series.sort_by(|a, b| a.0.cmp(&b.0));
        for line in family.header {
            out.push_str(line);
            out.push('\n');
        }
        for line in family.series.into_iter().flat_map(|(_, lines)| lines) {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[derive(Default)]
struct Family<'a> {
    name: String,
    header: Vec<&'a str>,
    has_type: bool,
    /// Each series' sort key and its lines.
    series: Vec<(String, Vec<&'a str>)>,
}

/// What identifies a sample line's series within its family: its labels without `le` (a
/// histogram bucket's bound), so `x_bucket{a="1",le="0.5"}`, `x_sum{a="1"}` and
/// `x_count{a="1"}` share the key `{a="1"}`.
fn series_key(line: &str) -> String {
    let series = line
        .rsplit_once(' ')
        .map_or(line, |(series, _value)| series);
    let Some(open) = series.find('{') else {
        return String::new();
    };
    let labels = &series[open..];
    for le in [",le=\"", "{le=\""] {
        if let Some(at) = labels.rfind(le) {
            let kept = &labels[..at];
            return if kept.is_empty() {
                String::new()
            } else {
                format!("{kept}}}")
            };
        }
    }
    labels.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_series_come_out_sorted() {
        let text = "# HELP b_total b\n# TYPE b_total counter\nb_total{x=\"2\"} 1\nb_total{x=\"1\"} 0\n\n\
                    # TYPE a gauge\na 3\n\n";
        assert_eq!(
            sorted(text),
            "# TYPE a gauge\na 3\n\n# HELP b_total b\n# TYPE b_total counter\n\
             b_total{x=\"1\"} 0\nb_total{x=\"2\"} 1\n\n"
        );
    }

    #[test]
    fn a_histogram_series_keeps_its_lines_together_and_in_order() {
        let series = |smsc: &str| {
            format!(
                "h_bucket{{smsc=\"{smsc}\",le=\"0.5\"}} 1\nh_bucket{{smsc=\"{smsc}\",le=\"+Inf\"}} 2\n\
                 h_sum{{smsc=\"{smsc}\"}} 0.7\nh_count{{smsc=\"{smsc}\"}} 2\n"
            )
        };
        let text = format!("# TYPE h histogram\n{}{}\n", series("b"), series("a"));
        assert_eq!(
            sorted(&text),
            format!("# TYPE h histogram\n{}{}\n", series("a"), series("b"))
        );
        let bare = "# TYPE h histogram\nh_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n\n";
        assert_eq!(sorted(bare), bare);
    }

    /// Route templates put braces inside label values.
    #[test]
    fn braces_inside_label_values_are_kept() {
        let text = "# TYPE r_total counter\nr_total{route=\"/c/{id}\",status=\"200\"} 4\n\
                    r_total{route=\"/a\",status=\"200\"} 1\n\n";
        assert_eq!(
            sorted(text),
            "# TYPE r_total counter\nr_total{route=\"/a\",status=\"200\"} 1\n\
             r_total{route=\"/c/{id}\",status=\"200\"} 4\n\n"
        );
    }

    #[test]
    fn the_same_text_in_another_order_renders_the_same() {
        let one = "# TYPE a_total counter\na_total{k=\"x\"} 1\na_total{k=\"y\"} 2\n\n# TYPE b gauge\nb 1\n\n";
        let two = "# TYPE b gauge\nb 1\n\n# TYPE a_total counter\na_total{k=\"y\"} 2\na_total{k=\"x\"} 1\n\n";
        assert_eq!(sorted(one), sorted(two));
    }
}
