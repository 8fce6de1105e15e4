//! Kernel addresses to function names, from /proc/kallsyms.

/// A sorted symbol table. Empty when kallsyms is unreadable or its addresses
/// are hidden (kptr_restrict): then locations print as hex.
#[derive(Debug, Default)]
pub struct Kallsyms {
    syms: Vec<(u64, String)>,
}

/// A symbol table read on a thread of its own, waited for at the first
/// lookup: reading and sorting /proc/kallsyms (a hundred thousand lines)
/// need not delay the start of a run.
#[derive(Debug, Default)]
pub struct LazyKallsyms {
    loading: std::sync::Mutex<Option<std::thread::JoinHandle<Kallsyms>>>,
    table: std::sync::OnceLock<Kallsyms>,
}

impl LazyKallsyms {
    /// Start reading now.
    pub fn spawn() -> Self {
        let loading = std::thread::Builder::new()
            .name("nx-kallsyms".into())
            .spawn(Kallsyms::load)
            .ok();
        Self {
            loading: std::sync::Mutex::new(loading),
            table: std::sync::OnceLock::new(),
        }
    }

    pub fn symbolize(&self, addr: u64) -> Option<String> {
        self.table
            .get_or_init(|| {
                let handle = self.loading.lock().ok().and_then(|mut h| h.take());
                handle.and_then(|h| h.join().ok()).unwrap_or_default()
            })
            .symbolize(addr)
    }
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
