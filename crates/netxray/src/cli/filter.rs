//! The packet filter every subcommand takes: a pcap-filter expression (the
//! trailing words), plus the shorthand flags, which are sugar for
//! expressions (`--port 53` is `port 53`), and the scope pre-filters
//! (`--netns`, `--iface`, `--pid`) that the kernel tests before any packet
//! byte is read.

use crate::cli::FilterArgs;
use crate::error::{Error, Result};
use crate::kernel::netns;
use crate::model::filter::Filter;

/// Namespace inode, ifindex and tgid to restrict to (0: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The namespace selected (--netns, or netxray's own with -i), if any.
    pub ns: Option<netns::Netns>,
    /// Holds the selected namespace for the run (its inode is its name in
    /// the kernel's records: see [`netns::Pin`]).
    pub pin: netns::Pin,
    pub netns: u32,
    pub ifindex: u32,
    pub tgid: u32,
}

/// `--addr` and friends as an expression: a prefix length makes it a `net`.
fn addr_expr(flag: &str, v: &str, dir: &str) -> Result<String> {
    let (a, len) = match v.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (v, None),
    };
    let Ok(ip) = a.parse::<std::net::IpAddr>() else {
        return Err(Error::usage(format!(
            "{flag}: bad address '{v}': expected IPv4 or IPv6, optionally /prefix"
        )));
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    Ok(match len {
        Some(l) => {
            if !l.parse::<u8>().is_ok_and(|l| l <= max) {
                return Err(Error::usage(format!(
                    "{flag}: bad prefix length in '{v}': expected 0..={max}"
                )));
            }
            format!("{dir}net {a}/{l}")
        }
        None => format!("{dir}host {a}"),
    })
}

fn port_expr(flag: &str, v: &str, dir: &str) -> Result<String> {
    let bad = || {
        Error::usage(format!(
            "{flag}: bad port '{v}': expected 0..=65535 or a range lo-hi"
        ))
    };
    match v.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (
                a.parse::<u16>().map_err(|_| bad())?,
                b.parse::<u16>().map_err(|_| bad())?,
            );
            if a > b {
                return Err(bad());
            }
            Ok(format!("{dir}portrange {a}-{b}"))
        }
        None => {
            v.parse::<u16>().map_err(|_| bad())?;
            Ok(format!("{dir}port {v}"))
        }
    }
}

fn proto_expr(v: &str) -> Result<String> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "ip" | "ipv4" | "ip4" => "ip",
        "ip6" | "ipv6" => "ip6",
        "arp" => "arp",
        "tcp" => "tcp",
        "udp" => "udp",
        "icmp" => "icmp",
        "icmp6" | "icmpv6" => "icmp6",
        "sctp" => "sctp",
        other => {
            return Err(Error::usage(format!(
                "--proto: unknown protocol '{other}' (expected ip, ip6, arp, tcp, udp, icmp, icmp6 or sctp, or write an expression)"
            )))
        }
    }
    .to_string())
}

/// A filter file's expression: `#` comments dropped, lines joined.
fn from_file(text: &str) -> String {
    text.lines()
        .map(|l| l.split_once('#').map_or(l, |(code, _)| code).trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The expression words and the shorthand flags as one filter.
pub fn build(words: &[String], f: &FilterArgs) -> Result<Filter> {
    let user = match &f.filter_file {
        Some(path) => {
            if !words.is_empty() {
                return Err(Error::usage(format!(
                    "-F {}: the expression comes from the file; remove '{}' from the command line",
                    path.display(),
                    words.join(" ")
                )));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::usage(format!("-F: cannot read {}: {e}", path.display())))?;
            Filter::parse(&from_file(&text))
        }
        None => Filter::from_words(words),
    }
    .map_err(|e| Error::usage(format!("bad filter: {e}")))?;
    let mut parts = Vec::new();
    if let Some(p) = &f.proto {
        parts.push(proto_expr(p)?);
    }
    for (val, dir, flag) in [
        (&f.addr, "", "--addr"),
        (&f.saddr, "src ", "--saddr"),
        (&f.daddr, "dst ", "--daddr"),
    ] {
        if let Some(v) = val {
            parts.push(addr_expr(flag, v, dir)?);
        }
    }
    for (val, dir, flag) in [
        (&f.port, "", "--port"),
        (&f.sport, "src ", "--sport"),
        (&f.dport, "dst ", "--dport"),
    ] {
        if let Some(v) = val {
            parts.push(port_expr(flag, v, dir)?);
        }
    }
    if parts.is_empty() {
        return Ok(user);
    }
    let mut text = if user.matches_all() {
        String::new()
    } else {
        format!("({}) and ", user.text)
    };
    text.push_str(&parts.join(" and "));
    Filter::parse(&text).map_err(|e| Error::usage(format!("bad filter: {e}")))
}

/// Namespace, interface and process pre-filters.
pub fn scope(f: &FilterArgs) -> Result<Scope> {
    let ns = match &f.netns {
        Some(spec) => Some(netns::resolve(spec)?),
        None => None,
    };
    let (ns, ifindex) = match &f.iface {
        Some(name) => {
            let in_ns = match ns {
                Some(n) => n,
                None => netns::current()?,
            };
            let idx = netns::ifindex(&in_ns, name)?;
            (Some(in_ns), idx)
        }
        None => (ns, 0),
    };
    let netns_inode = ns.as_ref().map_or(0, |n| n.inode);
    if let Some(pid) = f.pid {
        if pid == 0 || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(Error::usage(format!("--pid {pid}: no such process")));
        }
    }
    Ok(Scope {
        pin: ns.as_ref().map(netns::Pin::hold).unwrap_or_default(),
        ns,
        netns: netns_inode,
        ifindex,
        tgid: f.pid.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> FilterArgs {
        FilterArgs::default()
    }

    #[test]
    fn flags_are_sugar_for_expressions() {
        let mut f = flags();
        f.proto = Some("udp".into());
        f.saddr = Some("198.18.0.0/15".into());
        f.dport = Some("50-60".into());
        let words = vec!["not".to_string(), "icmp".to_string()];
        let filter = build(&words, &f).unwrap();
        assert_eq!(
            filter.text,
            "(not icmp) and udp and src net 198.18.0.0/15 and dst portrange 50-60"
        );
        let f = FilterArgs {
            addr: Some("2001:db8::1".into()),
            ..flags()
        };
        assert_eq!(build(&[], &f).unwrap().text, "host 2001:db8::1");
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (f, want) in [
            (
                FilterArgs {
                    port: Some("99999".into()),
                    ..flags()
                },
                "--port",
            ),
            (
                FilterArgs {
                    addr: Some("nonsense".into()),
                    ..flags()
                },
                "--addr",
            ),
            (
                FilterArgs {
                    proto: Some("gre".into()),
                    ..flags()
                },
                "--proto",
            ),
        ] {
            let e = build(&[], &f).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let e = build(&["tcp".into(), "and".into()], &flags())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad filter"), "{e}");
        let f = FilterArgs {
            filter_file: Some("/nonexistent/filter".into()),
            ..flags()
        };
        let e = build(&[], &f).unwrap_err().to_string();
        assert!(e.contains("cannot read /nonexistent/filter"), "{e}");
        let e = build(&["tcp".into()], &f).unwrap_err().to_string();
        assert!(e.contains("comes from the file"), "{e}");
    }

    #[test]
    fn filter_files_have_comments_and_lines() {
        let text = "# web servers\nhost (198.18.0.1 or # the first\n  198.18.0.2)\n\nand tcp\n";
        assert_eq!(from_file(text), "host (198.18.0.1 or 198.18.0.2) and tcp");
    }

    #[test]
    fn a_filter_file_is_read() {
        let path = std::env::temp_dir().join(format!("nx-filter-{}", std::process::id()));
        std::fs::write(&path, "udp # only\n and port 53\n").unwrap();
        let f = FilterArgs {
            filter_file: Some(path.clone()),
            port: Some("53".into()),
            ..flags()
        };
        let got = build(&[], &f).map(|f| f.text);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got.unwrap(), "(udp and port 53) and port 53");
    }
}
