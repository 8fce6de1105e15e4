//! The filter parser and compiler never panic: random words from the
//! language (and random bytes) either parse and compile, or give an error
//! whose position lies inside the text.

use netxray::model::filter::{Filter, Frame};
use proptest::prelude::*;

const WORDS: &[&str] = &[
    "host",
    "net",
    "port",
    "portrange",
    "src",
    "dst",
    "or",
    "and",
    "not",
    "!",
    "&&",
    "||",
    "(",
    ")",
    "[",
    "]",
    ":",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "&",
    "|",
    "^",
    "<<",
    ">>",
    "ip",
    "ip6",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "arp",
    "rarp",
    "sctp",
    "ether",
    "vlan",
    "proto",
    "len",
    "less",
    "greater",
    "broadcast",
    "multicast",
    "mask",
    "llc",
    "mpls",
    "protochain",
    "0",
    "1",
    "4",
    "13",
    "80",
    "0x1fff",
    "65536",
    "4096",
    "198.18.0.1",
    "198.18",
    "2001:db8::1",
    "2001:db8::/32",
    "/",
    "24",
    "255.255.0.0",
    "00:11:22:33:44:55",
    "tcpflags",
    "tcp-syn",
    "icmp-echo",
    "\\tcp",
    "10-20",
    "domain",
    "gateway",
    "foo",
    "$",
    "::",
];

fn check(text: &str) {
    match Filter::parse(text) {
        Ok(f) => {
            let _ = f.to_ebpf();
            let frame = [0u8; 60];
            let _ = f.matches(&Frame::ethernet(&frame));
        }
        Err(e) => {
            assert!(
                e.pos <= text.len(),
                "{text:?}: position {} past the end",
                e.pos
            );
            let _ = e.to_string();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn random_words_never_panic(words in proptest::collection::vec(proptest::sample::select(WORDS), 0..14)) {
        check(&words.join(" "));
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,40}") {
        check(&text);
    }
}
