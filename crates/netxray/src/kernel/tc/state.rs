//! What outlives a killed netxray on the legacy tc path, written down so
//! that the next netxray can clean it up: one small file per clsact qdisc
//! netxray created, `/run/netxray/clsact/<netns inode>-<ifindex>`, holding
//! the pid of the netxray that made it, the namespace's cookie (namespace
//! inode numbers are reused; cookies are not) and the interface's name.
//! /run is a tmpfs: a reboot, which removes every qdisc, removes the
//! records too.

use std::io;
use std::path::PathBuf;

/// Where the records live.
pub const DIR: &str = "/run/netxray/clsact";

/// One clsact qdisc a netxray created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub netns_inode: u32,
    pub ifindex: u32,
    /// The netxray that created it.
    pub pid: u32,
    /// SO_NETNS_COOKIE of the namespace (0: the kernel has none, < 5.14).
    pub netns_cookie: u64,
    pub ifname: String,
}

fn path(netns_inode: u32, ifindex: u32) -> PathBuf {
    PathBuf::from(DIR).join(format!("{netns_inode}-{ifindex}"))
}

impl Record {
    fn render(&self) -> String {
        format!(
            "pid={}\nnetns_cookie={}\nifname={}\n",
            self.pid, self.netns_cookie, self.ifname
        )
    }

    fn parse(text: &str, netns_inode: u32, ifindex: u32) -> Option<Self> {
        let mut r = Record {
            netns_inode,
            ifindex,
            pid: 0,
            netns_cookie: 0,
            ifname: String::new(),
        };
        for line in text.lines() {
            match line.split_once('=')? {
                ("pid", v) => r.pid = v.parse().ok()?,
                ("netns_cookie", v) => r.netns_cookie = v.parse().ok()?,
                ("ifname", v) => r.ifname = v.to_string(),
                _ => {}
            }
        }
        (r.pid != 0).then_some(r)
    }

    /// Whether this record speaks of the namespace whose cookie is
    /// `cookie` (unknown cookies match: kernels before 5.14).
    pub fn same_netns(&self, cookie: u64) -> bool {
        self.netns_cookie == 0 || cookie == 0 || self.netns_cookie == cookie
    }
}

/// Write (or replace) a record.
pub fn write(r: &Record) -> io::Result<()> {
    std::fs::create_dir_all(DIR)?;
    let p = path(r.netns_inode, r.ifindex);
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, r.render())?;
    std::fs::rename(&tmp, &p)
}

pub fn read(netns_inode: u32, ifindex: u32) -> Option<Record> {
    let text = std::fs::read_to_string(path(netns_inode, ifindex)).ok()?;
    Record::parse(&text, netns_inode, ifindex)
}

pub fn remove(netns_inode: u32, ifindex: u32) {
    let _ = std::fs::remove_file(path(netns_inode, ifindex));
}

/// Every record (unreadable ones are skipped).
pub fn all() -> Vec<Record> {
    let Ok(rd) = std::fs::read_dir(DIR) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (ns, ifx) = name.split_once('-')?;
            let (ns, ifx) = (ns.parse().ok()?, ifx.parse().ok()?);
            let text = std::fs::read_to_string(e.path()).ok()?;
            Record::parse(&text, ns, ifx)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_ignored() {
        let r = Record {
            netns_inode: 4026532455,
            ifindex: 2,
            pid: 1234,
            netns_cookie: 7,
            ifname: "b0".into(),
        };
        assert_eq!(Record::parse(&r.render(), 4026532455, 2), Some(r.clone()));
        assert_eq!(Record::parse("pid=x\n", 1, 2), None);
        assert_eq!(Record::parse("", 1, 2), None);
        assert!(r.same_netns(7) && r.same_netns(0) && !r.same_netns(8));
        assert_eq!(
            path(5, 3),
            PathBuf::from("/run/netxray/clsact/5-3"),
            "the name the docs give"
        );
    }
}
