//! The x-ray picture of a packet's path (the tracepkt post's drawing): one
//! box per network namespace, the interfaces in the order the packet crossed
//! them, arrows for the direction, the request and its reply. Plain text,
//! at most [`WIDTH`] columns; too wide a path is drawn as a list instead.
//!
//! ```text
//!   nxa  |         nxbr         |  nxb
//! +------+----------------------+--------+
//! | a0 ------> br-a ---> br-b ------> b0 |  request
//! | a0 <------ br-a <--- br-b <------ b0 |  reply
//! +------+----------------------+--------+
//! ```

/// Widest drawing, in columns.
pub const WIDTH: usize = 100;

/// One path to draw: the interfaces crossed, each with its namespace name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapPath {
    /// `request`, `reply`, ... shown at the right of the row.
    pub label: String,
    /// (namespace, interface) in the order crossed; consecutive repeats of
    /// the same interface are one stop.
    pub hops: Vec<(String, String)>,
}

impl MapPath {
    /// The stops: consecutive duplicates removed.
    fn stops(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for h in &self.hops {
            if out.last() != Some(h) {
                out.push(h.clone());
            }
        }
        out
    }
}

/// Draw `paths`: the first sets the layout; a later path that crosses the
/// same interfaces backwards (a reply) shares it with reversed arrows; any
/// other path gets a drawing of its own.
pub fn render(paths: &[MapPath]) -> String {
    let mut out = String::new();
    let mut rest: Vec<&MapPath> = paths.iter().filter(|p| !p.hops.is_empty()).collect();
    while !rest.is_empty() {
        let first = rest.remove(0);
        let stops = first.stops();
        let mut rows = vec![(first.label.as_str(), false)];
        rest.retain(|p| {
            let mut back = p.stops();
            back.reverse();
            if back == stops {
                rows.push((p.label.as_str(), true));
                false
            } else {
                true
            }
        });
        match boxed(&stops, &rows) {
            Some(drawing) => out.push_str(&drawing),
            None => out.push_str(&listed(&stops, &rows)),
        }
    }
    out
}

/// The boxed drawing, or None when it would not fit [`WIDTH`].
///
/// Column 0 is the box's left edge. Each namespace's interfaces are joined
/// by ` ---> `; between namespaces the arrow is longer and the box's
/// separator crosses it (`cut`), far enough right for the name above.
fn boxed(stops: &[(String, String)], rows: &[(&str, bool)]) -> Option<String> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (ns, ifname) in stops {
        match groups.last_mut() {
            Some((n, ifs)) if *n == ns.as_str() => ifs.push(ifname),
            _ => groups.push((ns, vec![ifname])),
        }
    }
    let width = |s: &str| s.chars().count();
    // Where each interface starts, where each cut is, and the right edge.
    let mut at: Vec<usize> = Vec::new();
    let mut cuts: Vec<usize> = Vec::new();
    // (start, dashes) of each arrow between two stops, in order.
    let mut arrows: Vec<(usize, usize)> = Vec::new();
    let mut x = 2;
    let mut left = 0;
    for (k, (name, ifs)) in groups.iter().enumerate() {
        for (j, ifname) in ifs.iter().enumerate() {
            if j > 0 {
                arrows.push((x, 3));
                x += 6;
            }
            at.push(x);
            x += width(ifname);
        }
        if k + 1 < groups.len() {
            // " " + dashes + ">" + " ", the cut inside the dashes, at least
            // 3 dashes after it, and room for the name over this column.
            let min_cut = x + 3;
            let cut = min_cut.max(left + width(name) + 3);
            let dashes = cut - x - 1 + 4;
            arrows.push((x, dashes));
            cuts.push(cut);
            left = cut;
            x = x + dashes + 3;
        }
    }
    let last = groups.last()?.0;
    let right = (x + 1).max(left + width(last) + 3);
    let label_w = rows.iter().map(|(l, _)| width(l)).max().unwrap_or(0);
    if right + 3 + label_w > WIDTH {
        return None;
    }
    let mut bounds = vec![0];
    bounds.extend(&cuts);
    bounds.push(right);

    let mut s = String::new();
    let mut head = vec![' '; right + 1];
    for (k, (name, _)) in groups.iter().enumerate() {
        if k > 0 {
            head[bounds[k]] = '|';
        }
        let start = bounds[k] + 1 + (bounds[k + 1] - bounds[k] - 1).saturating_sub(width(name)) / 2;
        for (j, c) in name.chars().enumerate() {
            head[start + j] = c;
        }
    }
    push_line(&mut s, &head);
    let border: Vec<char> = (0..=right)
        .map(|i| if bounds.contains(&i) { '+' } else { '-' })
        .collect();
    push_line(&mut s, &border);
    for (label, back) in rows {
        let mut row = vec![' '; right + 1];
        row[0] = '|';
        row[right] = '|';
        for (i, (_, ifname)) in stops.iter().enumerate() {
            for (j, c) in ifname.chars().enumerate() {
                row[at[i] + j] = c;
            }
        }
        for &(start, dashes) in &arrows {
            // " ---> " or " <--- ": a space, the arrow, a space.
            for c in row.iter_mut().skip(start + 1).take(dashes + 1) {
                *c = '-';
            }
            if *back {
                row[start + 1] = '<';
            } else {
                row[start + dashes + 1] = '>';
            }
        }
        let mut line: String = row.into_iter().collect();
        line.push_str("  ");
        line.push_str(label);
        s.push_str(line.trim_end());
        s.push('\n');
    }
    push_line(&mut s, &border);
    Some(s)
}

/// The same information, one stop per line, for paths too wide to box.
fn listed(stops: &[(String, String)], rows: &[(&str, bool)]) -> String {
    let mut s = String::new();
    for (label, back) in rows {
        s.push_str(label);
        s.push_str(":\n");
        let order: Vec<&(String, String)> = if *back {
            stops.iter().rev().collect()
        } else {
            stops.iter().collect()
        };
        let mut last_ns: Option<&str> = None;
        for (ns, ifname) in order {
            if last_ns != Some(ns.as_str()) {
                s.push_str(&format!("  [{ns}]\n"));
                last_ns = Some(ns);
            }
            s.push_str(&format!("    -> {ifname}\n"));
        }
    }
    s
}

fn push_line(s: &mut String, chars: &[char]) {
    let line: String = chars.iter().collect();
    s.push_str(line.trim_end());
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(label: &str, hops: &[(&str, &str)]) -> MapPath {
        MapPath {
            label: label.into(),
            hops: hops
                .iter()
                .map(|(n, i)| (n.to_string(), i.to_string()))
                .collect(),
        }
    }

    #[test]
    fn bridged_request_and_reply() {
        let req = path(
            "request",
            &[
                ("nxa", "a0"),
                ("nxa", "a0"),
                ("nxbr", "br-a"),
                ("nxbr", "br-b"),
                ("nxb", "b0"),
            ],
        );
        let rep = path(
            "reply",
            &[
                ("nxb", "b0"),
                ("nxbr", "br-b"),
                ("nxbr", "br-a"),
                ("nxa", "a0"),
            ],
        );
        let got = render(&[req, rep]);
        let want = [
            "  nxa  |         nxbr         |  nxb",
            "+------+----------------------+--------+",
            "| a0 ------> br-a ---> br-b ------> b0 |  request",
            "| a0 <------ br-a <--- br-b <------ b0 |  reply",
            "+------+----------------------+--------+",
            "",
        ]
        .join("\n");
        assert_eq!(got, want, "\n{got}");
        assert!(got.lines().all(|l| l.chars().count() <= WIDTH));
    }

    #[test]
    fn long_names_widen_their_column_and_other_paths_get_their_own_box() {
        let req = path(
            "request",
            &[("host-namespace-with-a-long-name", "veth0"), ("c1", "eth0")],
        );
        let other = path("retransmit", &[("c1", "eth0"), ("c2", "eth9")]);
        let got = render(&[req, other]);
        let lines: Vec<&str> = got.lines().collect();
        assert!(
            lines[0].contains("host-namespace-with-a-long-name"),
            "{got}"
        );
        assert_eq!(
            lines.iter().filter(|l| l.starts_with('+')).count(),
            4,
            "{got}"
        );
        assert!(got.contains("eth0 ------> eth9"), "{got}");
    }

    #[test]
    fn too_wide_becomes_a_list() {
        let hops: Vec<(String, String)> = (0..12)
            .map(|i| (format!("namespace{i}"), format!("interface{i}")))
            .collect();
        let p = MapPath {
            label: "request".into(),
            hops,
        };
        let got = render(&[p]);
        assert!(
            got.starts_with("request:\n  [namespace0]\n    -> interface0\n"),
            "{got}"
        );
        assert!(got.lines().all(|l| l.chars().count() <= WIDTH));
    }
}
