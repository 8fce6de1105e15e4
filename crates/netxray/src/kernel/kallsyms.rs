//! Kernel addresses to function names, from /proc/kallsyms.

/// A sorted symbol table. Empty when kallsyms is unreadable or its addresses
/// are hidden (kptr_restrict): then locations print as hex.
#[derive(Debug, Default)]
pub struct Kallsyms {
    syms: Vec<(u64, String)>,
}

impl Kallsyms {
    pub fn load() -> Self {
        std::fs::read_to_string("/proc/kallsyms")
            .map(|s| Self::parse(&s))
            .unwrap_or_default()
    }

    pub fn parse(text: &str) -> Self {
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                (addr != 0 && matches!(kind, "t" | "T" | "w" | "W"))
                    .then(|| (addr, name.to_string()))
            })
            .collect();
        syms.sort_unstable_by_key(|s| s.0);
        Self { syms }
    }

    /// `function+0xoff`, or None when the address is not covered.
    pub fn symbolize(&self, addr: u64) -> Option<String> {
        let i = self.syms.partition_point(|s| s.0 <= addr);
        let (base, name) = self.syms.get(i.checked_sub(1)?)?;
        Some(format!("{name}+{:#x}", addr - base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolizes() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T _stext\nffffffff81000100 t udp_rcv\n0000000000000000 D hidden\n",
        );
        assert_eq!(
            k.symbolize(0xffffffff81000105).as_deref(),
            Some("udp_rcv+0x5")
        );
        assert_eq!(
            k.symbolize(0xffffffff81000000).as_deref(),
            Some("_stext+0x0")
        );
        assert_eq!(k.symbolize(0x10), None);
    }
}
