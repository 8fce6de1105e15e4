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
            .spawn(|| {
                let k = Kallsyms::load();
                crate::kernel::sys::release_freed_memory();
                k
            })
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
    /// Read line by line: the whole file is about 10 MB of text, of which
    /// the table keeps the functions.
    pub fn load() -> Self {
        use std::io::BufRead;
        let Ok(f) = std::fs::File::open("/proc/kallsyms") else {
            return Self::default();
        };
        let mut syms = Vec::new();
        let mut line = String::new();
        let mut r = std::io::BufReader::with_capacity(1 << 16, f);
        while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
            if let Some(s) = Self::parse_line(&line) {
                syms.push(s);
            }
            line.clear();
        }
        Self::sorted(syms)
    }

    pub fn parse(text: &str) -> Self {
        Self::sorted(text.lines().filter_map(Self::parse_line).collect())
    }

    /// `ADDR KIND NAME [module]`: functions only, and not hidden addresses.
    fn parse_line(l: &str) -> Option<(u64, String)> {
        let mut it = l.split_whitespace();
        let addr = u64::from_str_radix(it.next()?, 16).ok()?;
        let kind = it.next()?;
        let name = it.next()?;
        (addr != 0 && matches!(kind, "t" | "T" | "w" | "W")).then(|| (addr, name.to_string()))
    }

    fn sorted(mut syms: Vec<(u64, String)>) -> Self {
        syms.sort_unstable_by_key(|s| s.0);
        syms.shrink_to_fit();
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
