//! Tokens of the pcap-filter(7) language, as libpcap's scanner makes them:
//! case-sensitive keywords, numbers in decimal, hex (`0x`) and octal
//! (leading `0`), dotted IPv4 (`198.18`, `198.18.0.1`), IPv6, MAC addresses,
//! named constants (`tcp-syn`, `icmp-echo`, ...), `\name` escapes, and
//! identifiers (host or service names).

use super::FilterError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    /// A keyword (`host`, `tcp`, `and`, ...), by its canonical spelling.
    Kw(&'static str),
    Num(u32),
    /// Dotted IPv4, possibly partial (`198.18`).
    Hid(String),
    Hid6(std::net::Ipv6Addr),
    Mac([u8; 6]),
    /// A name (`\tcp` gives `tcp`; `10-20` for portrange).
    Id(String),
    /// Punctuation and operators: `( ) [ ] : + - * / % & | ^ << >> < <= > >= = != !`.
    Op(&'static str),
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub tok: Tok,
    pub pos: usize,
    pub len: usize,
}

/// Keywords and the token each spelling stands for.
const KEYWORDS: &[(&str, &str)] = &[
    ("dst", "dst"),
    ("src", "src"),
    ("link", "ether"),
    ("ether", "ether"),
    ("ppp", "ether"),
    ("slip", "ether"),
    ("fddi", "ether"),
    ("tr", "ether"),
    ("wlan", "ether"),
    ("arp", "arp"),
    ("rarp", "rarp"),
    ("ip", "ip"),
    ("sctp", "sctp"),
    ("tcp", "tcp"),
    ("udp", "udp"),
    ("icmp", "icmp"),
    ("igmp", "igmp"),
    ("igrp", "igrp"),
    ("pim", "pim"),
    ("vrrp", "vrrp"),
    ("carp", "carp"),
    ("radio", "radio"),
    ("ip6", "ip6"),
    ("icmp6", "icmp6"),
    ("ah", "ah"),
    ("esp", "esp"),
    ("atalk", "atalk"),
    ("aarp", "aarp"),
    ("decnet", "decnet"),
    ("lat", "lat"),
    ("sca", "sca"),
    ("moprc", "moprc"),
    ("mopdl", "mopdl"),
    ("iso", "iso"),
    ("esis", "esis"),
    ("es-is", "esis"),
    ("isis", "isis"),
    ("is-is", "isis"),
    ("l1", "l1"),
    ("l2", "l2"),
    ("iih", "iih"),
    ("lsp", "lsp"),
    ("snp", "snp"),
    ("csnp", "csnp"),
    ("psnp", "psnp"),
    ("clnp", "clnp"),
    ("stp", "stp"),
    ("ipx", "ipx"),
    ("netbeui", "netbeui"),
    ("host", "host"),
    ("net", "net"),
    ("mask", "mask"),
    ("port", "port"),
    ("portrange", "portrange"),
    ("proto", "proto"),
    ("protochain", "protochain"),
    ("gateway", "gateway"),
    ("type", "type"),
    ("subtype", "subtype"),
    ("direction", "dir"),
    ("dir", "dir"),
    ("address1", "addr1"),
    ("addr1", "addr1"),
    ("address2", "addr2"),
    ("addr2", "addr2"),
    ("address3", "addr3"),
    ("addr3", "addr3"),
    ("address4", "addr4"),
    ("addr4", "addr4"),
    ("ra", "ra"),
    ("ta", "ta"),
    ("less", "less"),
    ("greater", "greater"),
    ("byte", "byte"),
    ("broadcast", "broadcast"),
    ("multicast", "multicast"),
    ("and", "and"),
    ("or", "or"),
    ("not", "not"),
    ("len", "len"),
    ("length", "len"),
    ("inbound", "inbound"),
    ("outbound", "outbound"),
    ("ifindex", "ifindex"),
    ("vlan", "vlan"),
    ("mpls", "mpls"),
    ("pppoed", "pppoed"),
    ("pppoes", "pppoes"),
    ("geneve", "geneve"),
    ("lane", "lane"),
    ("llc", "llc"),
    ("metac", "metac"),
    ("bcc", "bcc"),
    ("oam", "oam"),
    ("oamf4", "oamf4"),
    ("oamf4ec", "oamf4ec"),
    ("oamf4sc", "oamf4sc"),
    ("sc", "sc"),
    ("ilmic", "ilmic"),
    ("vpi", "vpi"),
    ("vci", "vci"),
    ("connectmsg", "connectmsg"),
    ("metaconnect", "metaconnect"),
    ("on", "ifname"),
    ("ifname", "ifname"),
    ("rset", "ruleset"),
    ("ruleset", "ruleset"),
    ("rnr", "rulenum"),
    ("rulenum", "rulenum"),
    ("srnr", "subrulenum"),
    ("subrulenum", "subrulenum"),
    ("reason", "reason"),
    ("action", "action"),
    ("fisu", "fisu"),
    ("lssu", "lssu"),
    ("lsu", "lssu"),
    ("msu", "msu"),
    ("hfisu", "hfisu"),
    ("hlssu", "hlssu"),
    ("hmsu", "hmsu"),
    ("sio", "sio"),
    ("opc", "opc"),
    ("dpc", "dpc"),
    ("sls", "sls"),
    ("hsio", "hsio"),
    ("hopc", "hopc"),
    ("hdpc", "hdpc"),
    ("hsls", "hsls"),
];

/// Named constants: they are numbers to the grammar.
const CONSTANTS: &[(&str, u32)] = &[
    ("icmptype", 0),
    ("icmpcode", 1),
    ("icmp-echoreply", 0),
    ("icmp-unreach", 3),
    ("icmp-sourcequench", 4),
    ("icmp-redirect", 5),
    ("icmp-echo", 8),
    ("icmp-routeradvert", 9),
    ("icmp-routersolicit", 10),
    ("icmp-timxceed", 11),
    ("icmp-paramprob", 12),
    ("icmp-tstamp", 13),
    ("icmp-tstampreply", 14),
    ("icmp-ireq", 15),
    ("icmp-ireqreply", 16),
    ("icmp-maskreq", 17),
    ("icmp-maskreply", 18),
    ("icmp6type", 0),
    ("icmp6code", 1),
    ("icmp6-destinationunreach", 1),
    ("icmp6-packettoobig", 2),
    ("icmp6-timeexceeded", 3),
    ("icmp6-parameterproblem", 4),
    ("icmp6-echo", 128),
    ("icmp6-echoreply", 129),
    ("icmp6-multicastlistenerquery", 130),
    ("icmp6-multicastlistenerreportv1", 131),
    ("icmp6-multicastlistenerdone", 132),
    ("icmp6-routersolicit", 133),
    ("icmp6-routeradvert", 134),
    ("icmp6-neighborsolicit", 135),
    ("icmp6-neighboradvert", 136),
    ("icmp6-redirect", 137),
    ("icmp6-routerrenum", 138),
    ("icmp6-nodeinformationquery", 139),
    ("icmp6-nodeinformationresponse", 140),
    ("icmp6-ineighbordiscoverysolicit", 141),
    ("icmp6-ineighbordiscoveryadvert", 142),
    ("icmp6-multicastlistenerreportv2", 143),
    ("icmp6-homeagentdiscoveryrequest", 144),
    ("icmp6-homeagentdiscoveryreply", 145),
    ("icmp6-mobileprefixsolicit", 146),
    ("icmp6-mobileprefixadvert", 147),
    ("icmp6-certpathsolicit", 148),
    ("icmp6-certpathadvert", 149),
    ("icmp6-multicastrouteradvert", 151),
    ("icmp6-multicastroutersolicit", 152),
    ("icmp6-multicastrouterterm", 153),
    ("tcpflags", 13),
    ("tcp-fin", 0x01),
    ("tcp-syn", 0x02),
    ("tcp-rst", 0x04),
    ("tcp-push", 0x08),
    ("tcp-ack", 0x10),
    ("tcp-urg", 0x20),
    ("tcp-ece", 0x40),
    ("tcp-cwr", 0x80),
];

/// Two-character operators first, so the longest match wins.
const OPS: &[&str] = &[
    ">=", "<=", "!=", "==", "<<", ">>", "&&", "||", "+", "-", "*", "/", "%", ":", "[", "]", "!",
    "<", ">", "(", ")", "&", "|", "^", "=",
];

fn word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':')
}

/// A number as libpcap reads one: decimal, `0x` hex, or octal with a
/// leading zero. None if the word is not a number or does not fit 32 bits.
pub(super) fn number(w: &str) -> Option<Result<u32, ()>> {
    let (digits, radix) = if let Some(h) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        (h, 16)
    } else if w.len() > 1 && w.starts_with('0') {
        (&w[1..], 8)
    } else {
        (w, 10)
    };
    if digits.is_empty() && radix == 16 {
        return None;
    }
    let all_digits = if radix == 16 {
        digits.bytes().all(|c| c.is_ascii_hexdigit())
    } else {
        digits.bytes().all(|c| c.is_ascii_digit())
    };
    if !all_digits {
        return None;
    }
    Some(u32::from_str_radix(digits, radix).map_err(|_| ()))
}

/// Dotted IPv4 with 2 to 4 parts of decimal numbers (libpcap's HID).
fn is_hid(w: &str) -> bool {
    let parts: Vec<&str> = w.split('.').collect();
    (2..=4).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && number(p).is_some_and(|n| n.is_ok()))
}

fn hex_byte(s: &str) -> Option<u8> {
    (1..=2)
        .contains(&s.len())
        .then(|| u8::from_str_radix(s, 16).ok())
        .flatten()
}

/// `aa:bb:cc:dd:ee:ff`, `aa-bb-...`, `aa.bb.cc.dd.ee.ff` or `aabb.ccdd.eeff`.
pub(super) fn mac(w: &str) -> Option<[u8; 6]> {
    for sep in [':', '-', '.'] {
        let parts: Vec<&str> = w.split(sep).collect();
        if parts.len() == 6 {
            let mut m = [0u8; 6];
            for (i, p) in parts.iter().enumerate() {
                m[i] = hex_byte(p)?;
            }
            return Some(m);
        }
    }
    let parts: Vec<&str> = w.split('.').collect();
    if parts.len() == 3 && parts.iter().all(|p| p.len() == 4) {
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            m[2 * i] = hex_byte(&p[..2])?;
            m[2 * i + 1] = hex_byte(&p[2..])?;
        }
        return Some(m);
    }
    None
}

/// Classify one word (no `:` handling: see `lex`).
fn classify(w: &str) -> Result<Tok, String> {
    if let Some((_, kw)) = KEYWORDS.iter().find(|(s, _)| *s == w) {
        return Ok(Tok::Kw(kw));
    }
    if let Some((_, v)) = CONSTANTS.iter().find(|(s, _)| *s == w) {
        return Ok(Tok::Num(*v));
    }
    if let Some(n) = number(w) {
        return n
            .map(Tok::Num)
            .map_err(|_| format!("number '{w}' does not fit in 32 bits"));
    }
    if is_hid(w) {
        return Ok(Tok::Hid(w.to_string()));
    }
    if let Some(m) = mac(w) {
        return Ok(Tok::Mac(m));
    }
    Ok(Tok::Id(w.to_string()))
}

pub(super) fn lex(text: &str) -> Result<Vec<Token>, FilterError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        // `\name`: an identifier, whatever it spells.
        if c == b'\\' {
            i += 1;
            while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'!' | b'(' | b')')
            {
                i += 1;
            }
            if i == start + 1 {
                return Err(FilterError::at(
                    text,
                    start,
                    1,
                    "'\\' must be followed by a name",
                ));
            }
            out.push(Token {
                tok: Tok::Id(text[start + 1..i].to_string()),
                pos: start,
                len: i - start,
            });
            continue;
        }
        let v6_start = c == b':' && b.get(i + 1) == Some(&b':');
        if c.is_ascii_alphanumeric() || v6_start {
            while i < b.len() && word_char(b[i]) {
                i += 1;
            }
            let mut w = &text[start..i];
            // With colons it must be an IPv6 or MAC address; otherwise the
            // colon is the `[off:size]` separator.
            if w.contains(':') {
                if let Ok(a) = w.parse::<std::net::Ipv6Addr>() {
                    out.push(Token {
                        tok: Tok::Hid6(a),
                        pos: start,
                        len: i - start,
                    });
                    continue;
                }
                if let Some(m) = mac(w) {
                    out.push(Token {
                        tok: Tok::Mac(m),
                        pos: start,
                        len: i - start,
                    });
                    continue;
                }
                let colon = w.find(':').unwrap_or(w.len());
                if colon == 0 || w[colon..].starts_with("::") && w.len() > colon + 2 {
                    return Err(FilterError::at(
                        text,
                        start,
                        w.len(),
                        format!("'{w}' is not a valid IPv6 or MAC address"),
                    ));
                }
                w = &w[..colon];
                i = start + colon;
            }
            // An identifier ends with a letter, digit or dot (libpcap's ID).
            while w.len() > 1 && (w.ends_with('-') || w.ends_with('_')) {
                w = &w[..w.len() - 1];
                i -= 1;
            }
            let tok =
                classify(w).map_err(|m| FilterError::at(text, start, w.len(), m.to_string()))?;
            out.push(Token {
                tok,
                pos: start,
                len: w.len(),
            });
            continue;
        }
        if let Some(op) = OPS.iter().find(|op| text[i..].starts_with(**op)) {
            let canon = match *op {
                "==" => "=",
                "&&" => "and",
                "||" => "or",
                "!" => "not",
                o => o,
            };
            let tok = if matches!(canon, "and" | "or" | "not") {
                Tok::Kw(canon)
            } else {
                Tok::Op(canon)
            };
            out.push(Token {
                tok,
                pos: start,
                len: op.len(),
            });
            i += op.len();
            continue;
        }
        let ch = text[i..].chars().next().unwrap_or('?');
        return Err(FilterError::at(
            text,
            start,
            ch.len_utf8(),
            format!("unexpected character '{ch}'"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn words_numbers_and_addresses() {
        assert_eq!(
            toks("tcp[13:1] & tcp-syn != 0"),
            vec![
                Tok::Kw("tcp"),
                Tok::Op("["),
                Tok::Num(13),
                Tok::Op(":"),
                Tok::Num(1),
                Tok::Op("]"),
                Tok::Op("&"),
                Tok::Num(2),
                Tok::Op("!="),
                Tok::Num(0),
            ]
        );
        assert_eq!(
            toks("0x10 010 10"),
            vec![Tok::Num(16), Tok::Num(8), Tok::Num(10)]
        );
        assert_eq!(
            toks("net 198.18/15"),
            vec![
                Tok::Kw("net"),
                Tok::Hid("198.18".into()),
                Tok::Op("/"),
                Tok::Num(15)
            ]
        );
        assert_eq!(
            toks("host 2001:db8::1"),
            vec![Tok::Kw("host"), Tok::Hid6("2001:db8::1".parse().unwrap())]
        );
        assert_eq!(
            toks("ether host 00:11:22:33:44:55"),
            vec![
                Tok::Kw("ether"),
                Tok::Kw("host"),
                Tok::Mac([0, 0x11, 0x22, 0x33, 0x44, 0x55])
            ]
        );
        assert_eq!(
            toks("proto \\tcp && !udp || portrange 10-20"),
            vec![
                Tok::Kw("proto"),
                Tok::Id("tcp".into()),
                Tok::Kw("and"),
                Tok::Kw("not"),
                Tok::Kw("udp"),
                Tok::Kw("or"),
                Tok::Kw("portrange"),
                Tok::Id("10-20".into()),
            ]
        );
        assert_eq!(
            toks("ip[2:2]-20"),
            vec![
                Tok::Kw("ip"),
                Tok::Op("["),
                Tok::Num(2),
                Tok::Op(":"),
                Tok::Num(2),
                Tok::Op("]"),
                Tok::Op("-"),
                Tok::Num(20),
            ]
        );
    }

    #[test]
    fn errors_point_at_the_character() {
        let e = lex("tcp and $").unwrap_err();
        assert_eq!(e.pos, 8);
        let e = lex("port 99999999999").unwrap_err();
        assert_eq!(e.pos, 5);
    }
}
